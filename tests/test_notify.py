"""Notifications against a real loopback HTTP receiver and real commands: retries with backoff,
once per alert (recorded in the ledger: no resend after a restart), failures visible, never raised."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.domain.alerts import AlertsConfig, CommandConfig, WebhookConfig
from opcockpit.wiring import build_alert_engine
from tests.alerts_support import Clock, ground_truth, listing, sandbox_db
from tests.notify_support import ALWAYS, Receiver, recovering_fleet

L1, L2 = "lease-aaaaaaaaaaaa", "lease-bbbbbbbbbbbb"


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    return recovering_fleet(tmp_path / "sandbox.db", (L1, L2))


def _gt(db: Path, clock: Clock):  # type: ignore[no-untyped-def]
    return ground_truth(db, [listing("docker", "docker", listed_at=clock.now)], clock.now)


def _cfg(**kw: object) -> AlertsConfig:
    return AlertsConfig(recovering_for_s=0, **kw)  # type: ignore[arg-type]


def test_webhook_retries_then_delivers_once_and_never_resends_after_restart(
    tmp_path: Path, fleet: Path
) -> None:
    sleeps: list[float] = []
    ledger = tmp_path / "ledger.db"
    clock = Clock()
    with Receiver(fail_first=2) as rx:
        cfg = _cfg(webhook=WebhookConfig(url=rx.url, attempts=4, backoff_s=0.5, headers={"x-team": "sre"}))
        eng = build_alert_engine(AlertStore.open(ledger), cfg, clock)
        eng.notifier.sleep = sleeps.append  # record the backoff instead of sleeping it
        snap = eng.evaluate(_gt(fleet, clock))
        assert len(snap.newly_firing) == 2
        by_alert = {d.alert_id: d for d in snap.deliveries}
        assert all(d.ok for d in snap.deliveries) and len(by_alert) == 2
        first = min(by_alert)
        assert by_alert[first].attempts == 3  # two 500s, then 204
        assert sleeps == [0.5, 1.0]  # exponential backoff between attempts
        assert len(rx.accepted) == 2
        body = rx.accepted[0]
        assert body["type"] == "alert" and body["event"] == "firing" and body["rule"] == "lease_recovering"
        assert {e["id"] for e in body["evidence"]} & {L1, L2}
        assert rx.requests[0]["headers"]["x-team"] == "sre"
        stored = eng.get(first).deliveries
        assert [(d.channel, d.status, d.attempts) for d in stored] == [("webhook", "ok", 3)]
        assert stored[0].target == f"http://127.0.0.1:{rx.server.server_address[1]}/…"
        eng.store.close()

        clock.advance(60)
        eng2 = build_alert_engine(AlertStore.open(ledger), cfg, clock)  # restart
        snap2 = eng2.evaluate(_gt(fleet, clock))
        assert snap2.deliveries == () and len(snap2.active) == 2
        assert len(rx.requests) == 4  # nothing resent


def test_failures_are_recorded_returned_and_retried_in_later_rounds(tmp_path: Path, fleet: Path) -> None:
    clock = Clock()
    with Receiver(fail_first=ALWAYS, fail_status=503) as rx:
        cfg = _cfg(webhook=WebhookConfig(url=rx.url, attempts=2, backoff_s=0, max_rounds=2))
        eng = build_alert_engine(AlertStore.open(tmp_path / "ledger.db"), cfg, clock)
        snap = eng.evaluate(_gt(fleet, clock))  # must not raise
        assert len(snap.active) == 2
        errs = snap.notify_errors
        assert len(errs) == 2 and not any(d.ok for d in errs)
        tried = [d for d in errs if d.attempts]
        skipped = [d for d in errs if not d.attempts]
        assert len(tried) == 1 and len(skipped) == 1  # endpoint down: the 2nd alert is not hammered
        assert "HTTP 503 after 2 attempt(s)" in (tried[0].error or "")
        assert "SECRET-TOKEN" not in json.dumps([d.error for d in errs])
        assert len(rx.requests) == 2
        rec = eng.get(tried[0].alert_id).deliveries[0]
        assert rec.status == "failed" and "503" in (rec.last_error or "")

        clock.advance(60)
        snap = eng.evaluate(_gt(fleet, clock))  # round 2: retried, then given up
        gave_up = [d for d in snap.deliveries if d.gave_up]
        assert len(gave_up) == 1 and eng.get(gave_up[0].alert_id).deliveries[0].status == "gave_up"
        other = ({a.id for a in snap.active} - {gave_up[0].alert_id}).pop()
        # still skipped while the first one was being retried: recorded as not attempted, no round used
        assert [(d.status, d.attempts, d.rounds) for d in eng.get(other).deliveries] == [("failed", 0, 0)]
        clock.advance(60)
        snap = eng.evaluate(_gt(fleet, clock))  # round 3: the first gave up, the second gets its turn
        assert [(d.alert_id, d.attempts, d.gave_up) for d in snap.deliveries] == [(other, 2, False)]
        clock.advance(60)
        snap = eng.evaluate(_gt(fleet, clock))
        assert [(d.alert_id, d.gave_up) for d in snap.deliveries] == [(other, True)]
        n = len(rx.requests)
        assert n == 8  # 4 rounds x 2 attempts
        clock.advance(60)
        assert eng.evaluate(_gt(fleet, clock)).deliveries == () and len(rx.requests) == n


def test_client_error_is_permanent(tmp_path: Path, fleet: Path) -> None:
    clock = Clock()
    with Receiver(fail_first=ALWAYS, fail_status=400) as rx:
        cfg = _cfg(webhook=WebhookConfig(url=rx.url, attempts=5, backoff_s=0))
        eng = build_alert_engine(AlertStore.open(tmp_path / "ledger.db"), cfg, clock)
        snap = eng.evaluate(_gt(fleet, clock))
        assert [d.attempts for d in snap.deliveries] == [1, 1]  # no retry of a rejected body
        assert all(d.gave_up for d in snap.deliveries)
        clock.advance(60)
        assert eng.evaluate(_gt(fleet, clock)).deliveries == ()
        assert len(rx.requests) == 2


def test_muted_alerts_are_not_notified_until_the_mute_ends(tmp_path: Path, fleet: Path) -> None:
    clean = sandbox_db(tmp_path / "clean.db", lambda c: None)
    clock = Clock()
    with Receiver() as rx:
        cfg = _cfg(webhook=WebhookConfig(url=rx.url, backoff_s=0))
        eng = build_alert_engine(AlertStore.open(tmp_path / "ledger.db"), cfg, clock)
        first = eng.evaluate(_gt(fleet, clock)).active
        assert len(rx.accepted) == 2
        for a in first:
            eng.mute(a.id, clock.now + timedelta(hours=1))  # silence this key for an hour
        clock.advance(60)
        eng.evaluate(_gt(clean, clock))  # resolved
        clock.advance(60)
        again = eng.evaluate(_gt(fleet, clock))  # new episodes inherit the time mute
        assert {a.id for a in again.active}.isdisjoint({a.id for a in first})
        assert again.unmuted == () and again.deliveries == () and len(rx.accepted) == 2
        clock.advance(3600)
        late = eng.evaluate(_gt(fleet, clock))  # mute over, still firing: now they are sent
        assert len(late.deliveries) == 2 and all(d.ok for d in late.deliveries)
        assert sorted(b["id"] for b in rx.accepted[2:]) == sorted(a.id for a in again.active)


def test_command_channel_stdin_env_and_failures(tmp_path: Path, fleet: Path) -> None:
    out = tmp_path / "out.jsonl"
    script = tmp_path / "hook.py"
    script.write_text(
        "import json, os, sys\n"
        "body = json.load(sys.stdin)\n"
        "line = json.dumps([os.environ['OPCOCKPIT_ALERT_ID'], body['key']])\n"
        f"open({str(out)!r}, 'a').write(line + '\\n')\n"
    )
    clock = Clock()
    cfg = _cfg(command=CommandConfig(argv=[sys.executable, str(script)]))
    eng = build_alert_engine(AlertStore.open(tmp_path / "ledger.db"), cfg, clock)
    snap = eng.evaluate(_gt(fleet, clock))
    assert all(d.ok and d.channel == "command" for d in snap.deliveries) and len(snap.deliveries) == 2
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(k for _, k in lines) == [f"lease_recovering:{L1}", f"lease_recovering:{L2}"]
    assert {int(i) for i, _ in lines} == {a.id for a in snap.active}

    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nsys.stderr.write('pager service says no\\n')\nsys.exit(3)\n")
    cfg2 = _cfg(command=CommandConfig(argv=[sys.executable, str(bad)], max_rounds=1))
    eng2 = build_alert_engine(AlertStore.open(tmp_path / "ledger2.db"), cfg2, clock)
    snap2 = eng2.evaluate(_gt(fleet, clock))
    assert snap2.notify_errors and "exit 3 pager service says no" in (snap2.notify_errors[0].error or "")
    assert snap2.notify_errors[0].gave_up

    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(30)\n")
    cfg3 = _cfg(command=CommandConfig(argv=[sys.executable, str(slow)], timeout_s=0.5))
    snap3 = build_alert_engine(AlertStore.open(tmp_path / "ledger3.db"), cfg3, clock).evaluate(
        _gt(fleet, clock)
    )
    assert "timed out after 0.5s" in (snap3.notify_errors[0].error or "")

    cfg4 = _cfg(command=CommandConfig(argv=[str(tmp_path / "missing-binary")]))
    snap4 = build_alert_engine(AlertStore.open(tmp_path / "ledger4.db"), cfg4, clock).evaluate(
        _gt(fleet, clock)
    )
    assert snap4.notify_errors and all(d.gave_up for d in snap4.notify_errors if d.attempts)


def test_url_from_env_is_never_shown(tmp_path: Path, fleet: Path) -> None:
    clock = Clock()
    with Receiver() as rx:
        cfg = _cfg(webhook=WebhookConfig(url_env="OPC_TEST_HOOK", backoff_s=0))
        eng = build_alert_engine(AlertStore.open(tmp_path / "ledger.db"), cfg, clock)
        eng.notifier.env = {"OPC_TEST_HOOK": rx.url}
        snap = eng.evaluate(_gt(fleet, clock))
        assert all(d.ok for d in snap.deliveries) and len(rx.accepted) == 2
        assert all("SECRET" not in d.target for d in snap.deliveries)
        eng.notifier.env = {}
        clock.advance(1)
        # unset env var: a visible, permanent failure for new alerts (none here), never a crash
        assert eng.evaluate(_gt(fleet, clock)).deliveries == ()
