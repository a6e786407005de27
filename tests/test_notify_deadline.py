"""Notifications must not hold up an evaluation (a cron `snapshot --check`) beyond the delivery
deadline: a receiver that accepts and never answers, or one that says 429 Retry-After: 60, leaves
an undelivered record in the ledger (retried on the next run) and the evaluation returns.
Ctrl-C during a delivery stops `snapshot --check` at once.

Hang guards (20 s joins / subprocess timeouts) are only there so a regression fails instead of
hanging the suite; nothing here asserts how fast anything is.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.alerts import AlertSnapshot, AlertStore
from opcockpit.domain.alerts import AlertsConfig, WebhookConfig
from opcockpit.services.alert_engine import AlertEngine
from opcockpit.wiring import build_alert_engine
from tests.alerts_support import Clock, ground_truth, listing, sandbox_db
from tests.cli_support import REPO, clean_env
from tests.fixtures.leon_db import add_lease
from tests.notify_support import ALWAYS, Receiver, recovering_fleet

L1, L2 = "lease-aaaaaaaaaaaa", "lease-bbbbbbbbbbbb"
HANG_GUARD_S = 20


class Blackhole:
    """Accepts TCP connections on 127.0.0.1 and never reads or answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.conns: list[socket.socket] = []
        self.accepted = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.accepted.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hooks/SECRET-TOKEN-123"

    def __enter__(self) -> Blackhole:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    return recovering_fleet(tmp_path / "sandbox.db", (L1, L2))


def _evaluate_guarded(eng: AlertEngine, db: Path, clock: Clock) -> AlertSnapshot:
    """engine.evaluate in a thread; fails (instead of hanging the suite) if it never returns."""
    gt = ground_truth(db, [listing("docker", "docker", listed_at=clock.now)], clock.now)
    box: list[AlertSnapshot] = []
    t = threading.Thread(target=lambda: box.append(eng.evaluate(gt)), daemon=True)
    t.start()
    t.join(HANG_GUARD_S)
    assert not t.is_alive(), "evaluation held up by notification retries"
    return box[0]


def test_blackhole_receiver_does_not_hold_the_run_and_leaves_undelivered_records(
    tmp_path: Path, fleet: Path
) -> None:
    clock = Clock()
    with Blackhole() as hole:
        # Per attempt 30 s, 4 attempts: without a round deadline this is minutes.
        hook = WebhookConfig(url=hole.url, timeout_s=30, attempts=4, backoff_s=1)
        cfg = AlertsConfig(recovering_for_s=0, webhook=hook, notify_deadline_s=1)
        eng = build_alert_engine(AlertStore.open(tmp_path / "ledger.db"), cfg, clock)
        snap = _evaluate_guarded(eng, fleet, clock)
        assert hole.accepted.is_set()
        assert len(snap.active) == 2 and len(snap.deliveries) == 2
        assert not any(d.ok or d.gave_up for d in snap.deliveries)
        for a in snap.active:
            rec = eng.get(a.id).deliveries
            assert [(d.channel, d.status) for d in rec] == [("webhook", "failed")]
            assert "deadline" in (rec[0].last_error or "")
            assert "SECRET-TOKEN" not in (rec[0].last_error or "")
        # Not given up and still due: the next run tries again.
        clock.advance(60)
        again = _evaluate_guarded(eng, fleet, clock)
        assert len(again.deliveries) == 2 and not any(d.ok for d in again.deliveries)


def test_retry_after_beyond_the_deadline_is_left_for_the_next_run(tmp_path: Path, fleet: Path) -> None:
    clock = Clock()
    with Receiver(ALWAYS, 429, fail_headers={"retry-after": "60"}, path="/hook") as rx:
        # Defaults otherwise (attempts 4, max_backoff 30): honouring Retry-After 60 would sleep 90 s.
        cfg = AlertsConfig(recovering_for_s=0, webhook=WebhookConfig(url=rx.url))
        eng = build_alert_engine(AlertStore.open(tmp_path / "ledger.db"), cfg, clock)
        snap = _evaluate_guarded(eng, fleet, clock)
        assert len(rx.requests) == 1  # one 429, then the endpoint counts as down for this round
        tried = [d for d in snap.deliveries if d.attempts]
        assert len(tried) == 1 and "HTTP 429" in (tried[0].error or "")
        assert not tried[0].gave_up
        rec = eng.get(tried[0].alert_id).deliveries
        assert [(d.status, d.attempts, d.rounds) for d in rec] == [("failed", 1, 1)]
        assert "retry after 60s" in (rec[0].last_error or "")


def test_deadline_is_configurable_and_bounded() -> None:
    assert AlertsConfig().notify_deadline_s == 5.0
    assert AlertsConfig(notify_deadline_s=2.5).notify_deadline_s == 2.5
    for bad in (0, -1, float("inf"), float("nan"), 3601):
        with pytest.raises(ValueError):
            AlertsConfig(notify_deadline_s=bad)


def test_ctrl_c_interrupts_snapshot_check_during_a_delivery(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    db = sandbox_db(
        tmp_path / "sandbox.db",
        lambda c: add_lease(
            c,
            L1,
            "local",
            status="recovering",
            created_at=datetime.now() - timedelta(hours=1),
            updated_at=datetime.now() - timedelta(minutes=30),
        ),
    )
    with Blackhole() as hole:
        cfg = tmp_path / "config.toml"
        cfg.write_text(
            "[alerts]\nrecovering_for_s = 0\nnotify_deadline_s = 600\n"
            f"[alerts.webhook]\nurl = {json.dumps(hole.url)}\ntimeout_s = 600\nattempts = 3\n"
        )
        env = clean_env(home, OPCOCKPIT_LEDGER=str(tmp_path / "ledger.db"))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opcockpit.cli",
                "snapshot",
                "--check",
                "--config",
                str(cfg),
                "--db",
                str(db),
            ],
            env=env,
            cwd=str(REPO),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert hole.accepted.wait(HANG_GUARD_S), "the webhook was never called"
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=HANG_GUARD_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130, err
        assert "interrupted" in err and "SECRET-TOKEN" not in err
