"""Live alert rounds with nothing to judge are not run (issue 10, idle tick; services/alert_quiet.py).

Real LEON-schema sandbox.db and events.db, the real reader, reconcile and ledger; the picture is
carried between rounds as the TUI carries it on a quiet tick (same rows, later time). A round on
unchanged inputs with nothing due asks the ledger nothing but the one `last_evaluated_at` write;
a hold, a mute, a change of the inputs, an ack or the safety interval make the round run in full.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.domain.alerts import AlertsConfig
from opcockpit.domain.alerts_due import window_change_at
from opcockpit.domain.carry import carried
from opcockpit.domain.models import GroundTruth, LeaseEventRecord
from opcockpit.domain.runs import RunHealth
from opcockpit.services.alert_engine import AlertEngine
from opcockpit.services.alert_quiet import QUIET_MAX_S
from opcockpit.services.alerting import evaluate_refresh
from tests.alerts_support import (
    T0,
    Clock,
    edit_db,
    engine,
    events_db,
    ground_truth,
    inst,
    listing,
    naive,
    sandbox_db,
)
from tests.fixtures.leon_db import add_lease, add_lease_event, add_terminal

L1 = "lease-aaaaaaaaaaaa"
HOLD_S = 605.0  # not on a safety round (every QUIET_MAX_S from the first)


def _paused_lease_db(tmp_path: Path) -> Path:
    """One lease LEON wants running whose instance is paused at the provider: diverged."""

    def build(conn) -> None:  # type: ignore[no-untyped-def]
        add_lease(
            conn, L1, "e2b", current_instance_id="sbx-1", desired_state="running",
            observed_state="running", created_at=naive(T0 - timedelta(hours=1)),
        )  # fmt: skip
        add_terminal(conn, "term-000000000001", "m_t-1", L1, pointer=True)

    return sandbox_db(tmp_path / "sandbox.db", build)


class Fleet:
    """A diverged lease, its ledger and engine; `round()` is a live round on the carried picture."""

    def __init__(self, tmp_path: Path, cfg: AlertsConfig | None = None) -> None:
        self.clock = Clock()
        self.db = _paused_lease_db(tmp_path)
        self.edb = events_db(tmp_path / "events.db", lambda c: None)
        self.engine: AlertEngine = engine(tmp_path, self.clock, cfg or AlertsConfig(diverged_for_s=HOLD_S))
        self.statements: list[str] = []
        self.engine.store.conn.set_trace_callback(self.statements.append)  # type: ignore[attr-defined]
        self.gt = self.read()

    def read(self) -> GroundTruth:
        lst = listing("e2b", "e2b", [inst("e2b", "sbx-1", "paused")], listed_at=self.clock.now)
        return ground_truth(self.db, [lst], self.clock.now)

    def round(self, after_s: float = 10.0) -> tuple[object, RunHealth]:
        now = self.clock.advance(after_s)
        gt = carried(self.gt, now)
        assert gt is not None
        self.statements.clear()
        return asyncio.run(
            evaluate_refresh(self.engine, gt, sandbox_db=self.db, events_db=self.edb, now=now, local_tz=UTC)
        )

    @property
    def skipped(self) -> int:
        return self.engine.quiet.skipped


def _writes_only_the_round_time(statements: list[str]) -> bool:
    """The firing alerts' mark read (one row), then the round's time written; nothing else."""
    asked = [s for s in statements if s.split()[0].upper() not in ("BEGIN", "COMMIT")]
    return (
        len(asked) == 2
        and asked[0].startswith("SELECT count(*), max(id), count(acked_at)")  # active_mark
        and asked[1].startswith("INSERT INTO alert_meta")
        and "last_evaluated_at" in asked[1]
    )


def test_a_round_with_nothing_due_asks_the_ledger_nothing(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    fleet.round(0)  # the first round is full: the lease is pending within its hold
    assert fleet.skipped == 0 and fleet.engine.last is not None and fleet.engine.last.pending == 1
    snap, rh = fleet.round()
    assert fleet.skipped == 1
    assert _writes_only_the_round_time(fleet.statements), fleet.statements
    assert snap.now == fleet.clock.now and snap.pending == 1 and snap.active == ()  # type: ignore[attr-defined]
    assert rh.generated_at == fleet.clock.now
    # What a full round on the same inputs writes: the firing alerts were seen now.
    assert fleet.engine.store.last_evaluated_at() == fleet.clock.now


def test_a_hold_running_out_with_no_change_fires_on_time(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    fleet.round(0)
    while fleet.clock.now + timedelta(seconds=10) < T0 + timedelta(seconds=HOLD_S):
        snap, _ = fleet.round()
        assert snap.active == ()  # type: ignore[attr-defined]
    skipped = fleet.skipped
    assert skipped >= 50  # ~59 rounds in the hold; a full one at least every QUIET_MAX_S
    snap, _ = fleet.round(
        (T0 + timedelta(seconds=HOLD_S) - fleet.clock.now).total_seconds()
    )  # the hold's end
    assert fleet.skipped == skipped  # judged in full
    assert [a.key for a in snap.active] == [f"lease_diverged:{L1}"]  # type: ignore[attr-defined]
    assert snap.active[0].fired_at == T0 + timedelta(seconds=HOLD_S)  # type: ignore[attr-defined]
    assert [a.key for a in snap.newly_firing] == [f"lease_diverged:{L1}"]  # type: ignore[attr-defined]
    fleet.round()
    assert fleet.skipped == skipped + 1  # firing, nothing due: quiet again, notified once


def test_a_mute_running_out_is_a_round(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, AlertsConfig(diverged_for_s=0))
    snap, _ = fleet.round(0)
    alert = snap.active[0]  # type: ignore[attr-defined]
    fleet.engine.mute(alert.id, fleet.clock.now + timedelta(seconds=25), who="op")
    fleet.round()  # the mute: in full
    assert fleet.skipped == 0
    fleet.round()  # T0+20: the mute stands
    assert fleet.skipped == 1
    snap, _ = fleet.round()  # T0+30: it ran out
    assert fleet.skipped == 1
    assert not snap.active[0].is_muted(fleet.clock.now)  # type: ignore[attr-defined]


def test_changed_inputs_an_ack_and_the_safety_interval_run_in_full(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, AlertsConfig(diverged_for_s=0))
    snap, _ = fleet.round(0)
    fleet.round()
    assert fleet.skipped == 1
    # sandbox.db written (a failed intent): its events are read and judged
    edit_db(fleet.db, lambda c: add_lease_event(c, L1, "intent.resume", "cockpit", error="boom",
                                                created_at=naive(fleet.clock.now)))  # fmt: skip
    fleet.round()
    assert fleet.skipped == 1
    fleet.round()
    assert fleet.skipped == 2
    # an ack (here; another cockpit's comes through Alerting.poll_changes)
    fleet.engine.ack(snap.active[0].id, "op")  # type: ignore[attr-defined]
    fleet.round()
    assert fleet.skipped == 2
    # the same rows in a new tuple (a refresh after a listing that found nothing new): quiet
    fleet.gt = GroundTruth(
        fleet.gt.generated_at, fleet.gt.providers, tuple(list(fleet.gt.rows)), fleet.gt.orphans
    )
    fleet.round()
    assert fleet.skipped == 3
    # the picture's rows are other objects (a refresh that judged them again)
    fleet.gt = fleet.read()
    fleet.round()
    assert fleet.skipped == 3
    # quiet rounds for QUIET_MAX_S, then a full one
    full_at = fleet.clock.now
    while fleet.clock.now + timedelta(seconds=10) < full_at + timedelta(seconds=QUIET_MAX_S):
        before = fleet.skipped
        fleet.round()
        assert fleet.skipped == before + 1
    fleet.round((full_at + timedelta(seconds=QUIET_MAX_S) - fleet.clock.now).total_seconds())
    assert fleet.skipped == before + 1  # not skipped


def test_window_change_at_is_the_first_event_entering_or_leaving_a_window() -> None:
    now = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
    cfg = AlertsConfig(intent_window_s=600)

    def ev(at: datetime, error: str | None = "boom", kind: str = "intent.resume") -> LeaseEventRecord:
        return LeaseEventRecord(
            event_id=f"e-{at.timestamp()}", lease_id=L1, event_type=kind, source="cockpit",
            payload_json=None, error=error, created_at=at,
        )  # fmt: skip

    assert window_change_at(cfg, now, [], [], []) is None
    older, newer = now - timedelta(seconds=500), now - timedelta(seconds=100)
    assert window_change_at(cfg, now, [ev(newer), ev(older)], None, None) == older + timedelta(seconds=600)
    assert window_change_at(cfg, now, [ev(older, error=None)], None, None) is None  # not counted
    future = now + timedelta(seconds=30)
    assert window_change_at(cfg, now, [ev(older), ev(future)], None, None) == future
    gone = now - timedelta(seconds=700)  # out of the window already: it moves nothing
    assert window_change_at(cfg, now, [ev(gone)], None, None) is None


def test_another_cockpits_ack_between_rounds_is_read_by_the_next_one(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, AlertsConfig(diverged_for_s=0))
    snap, _ = fleet.round(0)
    alert = snap.active[0]  # type: ignore[attr-defined]
    mate = AlertStore.open(tmp_path / "ledger.db")
    try:
        mate.ack(alert.id, "alice@bastion-2", "looking", now=fleet.clock.now)
    finally:
        mate.close()
    snap, _ = fleet.round()
    assert fleet.skipped == 0  # the ledger's firing alerts moved: read in full
    assert [a.acked_by for a in snap.active] == ["alice@bastion-2"]  # type: ignore[attr-defined]
    fleet.round()
    assert fleet.skipped == 1
