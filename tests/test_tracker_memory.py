"""The sandbox.db tracker keeps records, not raw rows (issue 10's memory budget), on real parts:
a real sandbox.db in LEON's schema read through the tracker's live read-only connection."""

from __future__ import annotations

from datetime import UTC, datetime

from opcockpit.adapters.leon import sandbox_rows
from opcockpit.adapters.leon.sandbox_changes import SandboxDbTracker
from opcockpit.adapters.leon.sandbox_db import read_db_state
from tests.fixtures.leon_db import local_fleet

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_a_resync_keeps_the_records_of_unchanged_rows_without_a_module_cache(tmp_path):
    path = tmp_path / "sandbox.db"
    conn = local_fleet(path, 20, sessions=False)
    tracker = SandboxDbTracker(str(path), resync_s=10_000)
    try:
        first = await tracker.read_state(now=NOW)
        conn.execute("UPDATE sandbox_leases SET desired_state = 'paused' WHERE lease_id = 'lease-4'")
        conn.commit()
        tracker.invalidate("test")
        again = await tracker.read_state(now=NOW)
        assert tracker.stats.full_reads == 2
        old = {r.lease_id: r for r in first.leases}
        new = {r.lease_id: r for r in again.leases}
        assert new["lease-5"] is old["lease-5"]  # unchanged row: the same record object
        assert new["lease-4"] is not old["lease-4"] and new["lease-4"].desired_state == "paused"
        assert again == await read_db_state(str(path), now=NOW)
        assert not hasattr(sandbox_rows, "_REUSE")  # records live in the tracker, not a module
    finally:
        await tracker.aclose()
        conn.close()


async def test_a_bad_child_row_shows_on_its_unchanged_lease_after_a_delta(tmp_path):
    path = tmp_path / "sandbox.db"
    conn = local_fleet(path, 20, sessions=False)
    tracker = SandboxDbTracker(str(path), resync_s=10_000)
    try:
        await tracker.read_state(now=NOW)
        conn.execute(
            "UPDATE abstract_terminals SET state_version = 'not a number', updated_at = '2099-01-01T00:00:00'"
            " WHERE terminal_id = 'term-9'"
        )
        conn.commit()
        state = await tracker.read_state(now=NOW)
        assert tracker.stats.full_reads == 1  # a delta, not a resync
        assert "lease-9" in state.lease_problems  # the parent lease was read in the delta
        assert state == await read_db_state(str(path), now=NOW)
    finally:
        await tracker.aclose()
        conn.close()


def test_record_text_is_one_object_per_distinct_value():
    rows = [
        (f"lease-{i}", "docker", None, "running", "running", "active", 1, 0, None,
         None, None, None, None, None, "running", None, None, None)
        for i in range(3)
    ]  # fmt: skip
    rows = [tuple("".join(v) if isinstance(v, str) else v for v in r) for r in rows]  # fresh str objects
    recs = sandbox_rows._leases(rows, lambda v: None)
    assert recs[0].provider_name is recs[2].provider_name
    assert recs[0].observed_state is recs[1].desired_state
