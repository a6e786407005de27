"""`opcockpit events` in a subprocess on a real ledger; the flapping rule from ledger events;
alert events from the engine."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.adapters.ledger.events import EventLog
from opcockpit.domain.alerts import AlertsConfig
from opcockpit.domain.events import EventQuery, LeaseConvergenceChanged, LeaseView, ProviderListingFailed
from opcockpit.wiring import build_alert_engine
from tests.alerts_support import T0, Clock, ground_truth, inst, listing
from tests.cli_support import clean_env, run_cli
from tests.test_events_diff import L1, _db


def _flip(at: datetime, before: str, after: str, lease: str = L1) -> LeaseConvergenceChanged:
    def v(c: str) -> LeaseView:
        return LeaseView(convergence=c, desired_state="running", observed_state="running")

    return LeaseConvergenceChanged(
        observed_at=at, source="provider_list", lease_id=lease, thread_id="m_t-1", provider="e2b",
        before=v(before), after=v(after),
    )  # fmt: skip


def test_events_command_filters_and_formats(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    now = datetime.now(UTC)
    log = EventLog(ledger)
    log.append(
        [
            _flip(now - timedelta(hours=3), "converged", "diverged", "lease-old"),
            _flip(now - timedelta(minutes=5), "converged", "diverged"),
            ProviderListingFailed(
                observed_at=now - timedelta(minutes=1),
                source="provider_list",
                provider="docker",
                data={"note": "\x1b]0;pwned\x07"},
            ),
        ]
    )
    log.close()
    env = clean_env(tmp_path)
    res = run_cli("events", "--ledger", str(ledger), "--since", "1h", "--format", "ndjson", env=env)
    assert res.code == 0, res.err
    docs = [json.loads(line) for line in res.out.splitlines()]
    assert [d["type"] for d in docs] == ["provider.listing_failed", "lease.convergence_changed"]
    assert docs[1]["lease_id"] == L1 and docs[1]["after"]["convergence"] == "diverged"
    res = run_cli("events", "--ledger", str(ledger), "--lease", "lease-old", "--format", "json", env=env)
    assert [d["lease_id"] for d in json.loads(res.out)] == ["lease-old"]
    table = run_cli("events", "--ledger", str(ledger), env=env)
    assert table.code == 0 and "converged → diverged" in table.out and "\x1b" not in table.out
    assert table.out.splitlines()[0].split()[:2] == ["OBSERVED", "TYPE"]
    typed = run_cli("events", "--ledger", str(ledger), "--type", "provider.listing_failed", env=env)
    assert "docker" in typed.out and L1 not in typed.out
    bad = run_cli("events", "--ledger", str(ledger), "--since", "yesterday-ish", env=env)
    assert bad.code == 2 and len(bad.err.splitlines()) == 1 and "--since" in bad.err
    bad = run_cli("events", "--ledger", str(ledger), "--type", "lease.nope", env=env)
    assert bad.code == 2 and "lease.nope" in bad.err
    missing = run_cli("events", "--ledger", str(tmp_path / "none.db"), env=env)
    assert missing.code == 0 and "(no events recorded)" in missing.out
    assert not (tmp_path / "none.db").exists()  # a read never creates the ledger
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"garbage" * 500)
    res = run_cli("events", "--ledger", str(broken), env=env)
    assert res.code == 3 and len(res.err.splitlines()) == 1 and str(broken) in res.err


def test_flapping_fires_from_ledger_events_and_alert_events_are_recorded(tmp_path: Path) -> None:
    db = _db(tmp_path)
    clock = Clock()
    log = EventLog(tmp_path / "ledger.db")
    states = ["converged", "diverged", "converged", "diverged", "converged"]
    log.append([_flip(T0 - timedelta(minutes=10 - i), states[i], states[i + 1]) for i in range(4)])
    cfg = AlertsConfig(flapping_transitions=4, flapping_window_s=900)
    eng = build_alert_engine(AlertStore.open(tmp_path / "ledger.db"), cfg, clock, events=log)
    gt = ground_truth(
        db, [listing("e2b", "e2b", [inst("e2b", "sbx-1"), inst("e2b", "sbx-2")], listed_at=T0)], T0
    )
    snap = eng.evaluate(gt)
    assert [a.key for a in snap.active] == [f"flapping:{L1}"]
    assert "4 convergence changes" in snap.active[0].summary
    eng.ack(snap.active[0].id, "sre@host")
    fired = log.query(EventQuery(types=("alert.fired", "alert.acked")))
    assert [e.type for e in fired] == ["alert.acked", "alert.fired"]
    assert fired[1].lease_id == L1 and fired[1].after.rule == "flapping"
    assert fired[0].after.who == "sre@host" and fired[0].source.value == "operator"
    clock.advance(3600)  # the flaps leave the window: resolved, and recorded so
    snap = eng.evaluate(gt)
    assert snap.active == () and [a.key for a in snap.newly_resolved] == [f"flapping:{L1}"]
    assert log.query(EventQuery(limit=1))[0].type == "alert.resolved"
    # fewer flips than the threshold: nothing
    quiet = build_alert_engine(AlertStore.open(tmp_path / "l2.db"), AlertsConfig(flapping_transitions=5),
                               clock, events=log)  # fmt: skip
    assert [a.key for a in quiet.evaluate(gt, now=T0).active] == []
