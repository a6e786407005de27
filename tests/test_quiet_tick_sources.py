"""A tick in which nothing is due (issue 10, idle tick), on real parts: the tracker says sandbox.db
is unchanged from stat() alone (no statement), the paced collector is `settled` only while no
source changed and no listing is due, and the picture carried to a later time
(`domain/carry.py`) equals a reconcile of the same inputs at that time."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.leon.sandbox_changes import SandboxDbTracker
from opcockpit.domain.carry import carried
from opcockpit.domain.models import ProviderStatus
from opcockpit.domain.reconcile import reconcile
from opcockpit.doubles.e2b import E2BDouble
from tests.cli_support import build_leon_db
from tests.test_snapshot_collector import KEY, KEY_ENV, double, paced_e2b_collector  # noqa: F401 (double: a fixture)

LEASES = [(f"lease-{i:04d}", "local", f"i-{i}", "running", "running") for i in range(6)]


def _touch_lease(db: Path, lease_id: str) -> None:
    with sqlite3.connect(db) as conn:  # a LEON-way write from another connection
        conn.execute(
            "UPDATE sandbox_leases SET desired_state = 'paused', version = version + 1 WHERE lease_id = ?",
            (lease_id,),
        )


async def test_the_tracker_knows_nothing_was_committed_without_a_statement(tmp_path: Path) -> None:
    db = build_leon_db(tmp_path / "sandbox.db", LEASES)
    clock = [0.0]
    tracker = SandboxDbTracker(str(db), resync_s=300, monotonic=lambda: clock[0])
    statements: list[str] = []
    try:
        assert not tracker.unchanged()  # nothing read yet
        await tracker.read_state()
        await tracker.set_trace(statements.append)
        assert tracker.unchanged() and tracker.unchanged()
        assert statements == []  # stat() only: no query, no thread hop
        _touch_lease(db, "lease-0003")
        assert not tracker.unchanged()  # a commit by another connection
        state = await tracker.read_state()
        assert {lease.lease_id: lease.desired_state for lease in state.leases}["lease-0003"] == "paused"
        assert tracker.unchanged()
        tracker.invalidate("asked")
        assert not tracker.unchanged()  # a full read is due
        await tracker.read_state()
        assert tracker.unchanged()
        clock[0] = 301.0
        assert not tracker.unchanged()  # the periodic resync is due
    finally:
        await tracker.aclose()


async def test_a_paced_collector_is_settled_only_while_nothing_is_due(
    tmp_path: Path,
    double: E2BDouble,  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    iid = double.add(state="running").instance_id
    db = build_leon_db(
        tmp_path / "sandbox.db", [*LEASES, ("lease-e2b000000001", "e2b", iid, "running", "running")]
    )
    clock = [0.0]
    collector = paced_e2b_collector(db, double, clock)
    try:
        assert not collector.settled()  # no picture yet
        gt = await collector.refresh()
        assert collector.settled()
        later = gt.generated_at + timedelta(seconds=7)
        # The picture carried to a later time is what reconciling the same inputs then returns.
        assert carried(gt, later) == reconcile(collector.last_db_state, collector.listings, later)

        _touch_lease(db, "lease-0002")
        assert not collector.settled()  # sandbox.db changed
        await collector.refresh()
        assert collector.settled()

        await collector.look("e2b", [iid])  # a provider event named an instance
        assert not collector.settled()
        await collector.refresh()
        assert collector.settled()

        collector.relist("e2b")  # an action asked for a listing
        assert not collector.settled()
        await collector.refresh()
        assert collector.settled()

        clock[0] = 31.0  # the listing is due, and it fails: the provider's rows are stale
        assert not collector.settled()
        double.faults.error_status = 503
        gt = await collector.refresh()
        assert {p.name: p.status for p in gt.providers}["e2b"] is ProviderStatus.STALE
        assert not collector.settled()  # its rows' ages follow the clock: never carried
        assert carried(gt, gt.generated_at + timedelta(seconds=2)) is None
    finally:
        await collector.aclose()
