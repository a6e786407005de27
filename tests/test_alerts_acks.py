"""Two operators ack the same alert at once (the TUI and a shell, two ledger connections): both
acks are kept, in order, instead of the second silently overwriting the first."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.cli.alerts_cli import format_detail
from opcockpit.domain.alerts import AlertsConfig
from opcockpit.wiring import build_alert_engine
from tests.alerts_support import T0, Clock, ground_truth, listing, naive, sandbox_db
from tests.fixtures.leon_db import add_lease

LEASE = "lease-aaaaaaaaaaaa"


def _firing(tmp_path: Path, ledger: Path) -> int:
    db = sandbox_db(
        tmp_path / "sandbox.db",
        lambda c: add_lease(
            c, LEASE, "docker", status="recovering", created_at=naive(T0), updated_at=naive(T0)
        ),
    )
    clock = Clock()
    eng = build_alert_engine(AlertStore.open(ledger), AlertsConfig(recovering_for_s=0), clock)
    snap = eng.evaluate(ground_truth(db, [listing("docker", "docker", listed_at=clock.now)], clock.now))
    eng.store.close()
    (alert,) = snap.active
    return alert.id


def test_concurrent_acks_from_two_connections_are_both_kept(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    aid = _firing(tmp_path, ledger)
    tui, shell = AlertStore.open(ledger), AlertStore.open(ledger)
    try:
        # Both looked at the alert before either acked it.
        assert tui.get(aid).acks == () and shell.get(aid).acks == ()
        tui.ack(aid, "alice@tui", "restarting the provider", now=T0 + timedelta(minutes=1))
        shell.ack(f"#{aid}", "bob@shell", "looking too", now=T0 + timedelta(minutes=2))
        for store in (tui, shell):
            got = store.get(aid)
            assert [(k.who, k.comment, k.at) for k in got.acks] == [
                ("alice@tui", "restarting the provider", T0 + timedelta(minutes=1)),
                ("bob@shell", "looking too", T0 + timedelta(minutes=2)),
            ]
            # the latest ack stays the episode's summary fields
            assert (got.acked_by, got.ack_comment) == ("bob@shell", "looking too")
        d = tui.get(aid).to_dict(T0)
        assert [(k["by"], k["comment"]) for k in d["acks"]] == [
            ("alice@tui", "restarting the provider"),
            ("bob@shell", "looking too"),
        ]
        text = format_detail(tui.get(aid), T0 + timedelta(minutes=3))
        assert "acked by alice@tui: restarting the provider (2m ago)" in text
        assert "acked by bob@shell: looking too (1m ago)" in text
    finally:
        tui.close()
        shell.close()


def test_acks_survive_reopening_the_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    aid = _firing(tmp_path, ledger)
    with AlertStore.open(ledger) as store:
        store.ack(aid, "carol", None, now=T0)
    with AlertStore.open(ledger) as store:
        assert [(k.who, k.comment) for k in store.get(aid).acks] == [("carol", None)]
