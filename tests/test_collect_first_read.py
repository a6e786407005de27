"""A live (paced) collector reads sandbox.db through the change-detecting tracker from its first
refresh (issue 10, RSS: a one-shot first read left a second set of records behind at the
tracker's first read); a one-shot collector keeps the plain full read. Real parts: a sandbox.db in
LEON's schema, the wiring's LEON readers, no provider but LEON's `local`."""

from __future__ import annotations

from pathlib import Path

from opcockpit.adapters.leon.sandbox_db import read_db_state
from opcockpit.domain.reconcile import reconcile
from opcockpit.wiring import build_collector
from tests.cli_support import build_leon_db
from tests.test_snapshot_collector import make_config

LEASES = [(f"lease-{i:04d}", "local", f"i-{i}", "running", "running") for i in range(12)]


async def test_a_paced_collector_reads_through_the_tracker_from_the_first_refresh(tmp_path: Path) -> None:
    db = build_leon_db(tmp_path / "sandbox.db", LEASES)
    collector = build_collector(make_config(db, None))
    collector.paced = True
    try:
        gt = await collector.refresh()
        tracker = collector._tracker
        assert tracker is not None and tracker.stats.full_reads == 1  # no one-shot read first
        assert collector.last_db_state is not None
        state = await read_db_state(str(db), now=collector.last_db_state.read_at)
        assert collector.last_db_state == state
        assert gt == reconcile(state, list(collector.listings.values()), gt.generated_at)
        await collector.refresh()
        assert tracker.stats.full_reads == 1 and tracker.stats.unchanged == 1  # nothing committed
    finally:
        await collector.aclose()


async def test_a_one_shot_collector_reads_once_without_a_tracker(tmp_path: Path) -> None:
    db = build_leon_db(tmp_path / "sandbox.db", LEASES)
    collector = build_collector(make_config(db, None))
    try:
        gt = await collector.refresh()
        assert collector._tracker is None
        assert len(gt.rows) == len(LEASES)
    finally:
        await collector.aclose()
