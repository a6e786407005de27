"""The tracker's periodic resync of a picture it already holds compares every row's signature
and reads only the rows that differ (issue 10, RSS: it fetched every row every resync_s); it
still catches a change nothing else saw, and equals a from-scratch read. Real sandbox.db files in
LEON's schema, the tracker's live read-only connection."""

from __future__ import annotations

from datetime import UTC, datetime

from opcockpit.adapters.leon.sandbox_changes import SandboxDbTracker
from opcockpit.adapters.leon.sandbox_db import read_db_state
from tests.fixtures.leon_db import local_fleet

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _paced(path) -> tuple[list[float], SandboxDbTracker]:
    """A tracker resyncing every 300 s of the returned clock (a one-item list the test moves)."""
    clock = [0.0]
    return clock, SandboxDbTracker(str(path), resync_s=300, monotonic=lambda: clock[0])


async def test_a_resync_of_an_unchanged_fleet_reads_no_row(tmp_path) -> None:
    path = tmp_path / "sandbox.db"
    conn = local_fleet(path, 40)
    clock, tracker = _paced(path)
    try:
        first = await tracker.read_state(now=NOW)
        clock[0] = 301.0
        again = await tracker.read_state(now=NOW)
        assert tracker.stats.full_reads == 2 and tracker.stats.last_resync_reason == "periodic resync"
        assert tracker.stats.rows_fetched == 0
        assert again is first  # nothing differed: the same picture
        clock[0] = 302.0
        await tracker.read_state(now=NOW)
        assert tracker.stats.full_reads == 2  # the next resync is resync_s after this one
    finally:
        await tracker.aclose()
        conn.close()


async def test_a_resync_catches_a_change_nothing_else_saw(tmp_path) -> None:
    path = tmp_path / "sandbox.db"
    conn = local_fleet(path, 40)
    clock, tracker = _paced(path)
    try:
        await tracker.read_state(now=NOW)
        conn.execute("UPDATE sandbox_leases SET desired_state = 'paused' WHERE lease_id = 'lease-7'")
        conn.execute("DELETE FROM chat_sessions WHERE chat_session_id = 'sess-3'")
        conn.commit()
        tracker._dv = await tracker._data_version(await tracker._open_reader())  # as if missed
        stale = await tracker.read_state(now=NOW)
        assert {r.lease_id: r.desired_state for r in stale.leases}["lease-7"] == "running"
        clock[0] = 301.0
        state = await tracker.read_state(now=NOW)
        assert 1 <= tracker.stats.rows_fetched <= 2  # the changed lease (the session is gone)
        assert state == await read_db_state(str(path), now=NOW)
        assert {r.lease_id: r.desired_state for r in state.leases}["lease-7"] == "paused"
    finally:
        await tracker.aclose()
        conn.close()
