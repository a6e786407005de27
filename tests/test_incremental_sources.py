"""Change detection at sandbox.db and paced provider listings (issue 10), on real parts: a real
sandbox.db in LEON's schema, the tracker's live read-only connection traced by sqlite3, provider
listings through a real adapter against its loopback double."""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime

from opcockpit.adapters.leon.sandbox_changes import SandboxDbTracker
from opcockpit.adapters.leon.sandbox_db import read_db_state
from opcockpit.domain.models import ProviderListing
from opcockpit.domain.reconcile import reconcile
from opcockpit.domain.reconcile_inc import IncrementalReconciler
from tests.fixtures.leon_db import add_lease, add_lease_event, add_terminal, create_sandbox_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _fleet(path, n: int = 50) -> sqlite3.Connection:
    conn = create_sandbox_db(str(path))
    for i in range(n):
        add_lease(conn, f"lease-{i}", "local", current_instance_id=f"i-{i}", observed_state="running")
        add_terminal(conn, f"term-{i}", f"thread-{i}", f"lease-{i}")
    conn.commit()
    return conn


async def test_no_change_tick_runs_no_query_and_a_change_reads_only_the_changed_row(tmp_path):
    path = tmp_path / "sandbox.db"
    conn = _fleet(path)
    tracker = SandboxDbTracker(str(path), resync_s=10_000)
    statements: list[str] = []
    try:
        first = await tracker.read_state(now=NOW)
        await tracker.set_trace(statements.append)
        again = await tracker.read_state(now=NOW)
        assert again is first  # nothing committed: the same picture, no table read
        assert statements == ["PRAGMA data_version"]

        statements.clear()
        conn.execute(
            "UPDATE sandbox_leases SET desired_state = 'paused', version = version + 1"
            " WHERE lease_id = 'lease-7'"
        )
        conn.commit()
        changed = await tracker.read_state(now=NOW)
        fetched = [s for s in statements if "WHERE rowid IN" in s]
        assert len(fetched) == 1 and "sandbox_leases" in fetched[0]  # only the changed table's row
        assert tracker.stats.rows_fetched == 1
        by_id = {lease.lease_id: lease for lease in changed.leases}
        assert by_id["lease-7"].desired_state == "paused"
        # unchanged records are the same objects (what the incremental reconciler relies on)
        old = {lease.lease_id: lease for lease in first.leases}
        assert by_id["lease-8"] is old["lease-8"]
        assert changed.terminals is not None and len(changed.terminals) == 50

        conn.execute("DELETE FROM sandbox_leases WHERE lease_id = 'lease-3'")
        conn.commit()
        after = await tracker.read_state(now=NOW)
        assert "lease-3" not in {lease.lease_id for lease in after.leases}
        full = await read_db_state(str(path), now=NOW)
        assert reconcile(after, [], NOW) == reconcile(full, [], NOW)
    finally:
        await tracker.aclose()
        conn.close()


async def test_replaced_database_is_read_afresh_never_mixed(tmp_path):
    path = tmp_path / "sandbox.db"
    conn = _fleet(path, 5)
    tracker = SandboxDbTracker(str(path), resync_s=10_000)
    try:
        await tracker.read_state(now=NOW)
        other = tmp_path / "restored.db"
        c2 = _fleet(other, 2)  # a restored backup with fewer leases
        c2.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c2.close()
        conn.close()
        for suffix in ("-wal", "-shm"):
            if os.path.exists(str(path) + suffix):
                os.unlink(str(path) + suffix)
        os.replace(other, path)
        state = await tracker.read_state(now=NOW)
        assert sorted(lease.lease_id for lease in state.leases) == ["lease-0", "lease-1"]
        assert tracker.stats.last_resync_reason == "file replaced (new inode)"
    finally:
        await tracker.aclose()


async def test_periodic_resync_reads_everything(tmp_path):
    path = tmp_path / "sandbox.db"
    conn = _fleet(path, 3)
    clock = [0.0]
    tracker = SandboxDbTracker(str(path), resync_s=300, monotonic=lambda: clock[0])
    try:
        await tracker.read_state(now=NOW)
        await tracker.read_state(now=NOW)
        assert tracker.stats.full_reads == 1
        clock[0] = 301.0
        await tracker.read_state(now=NOW)
        assert tracker.stats.full_reads == 2
        assert tracker.stats.last_resync_reason == "periodic resync"
    finally:
        await tracker.aclose()
        conn.close()


async def test_tick_cost_when_nothing_changed_is_printed(tmp_path):
    """Not a benchmark and no assertion on time: prints what a no-change tick costs vs the full path."""
    path = tmp_path / "sandbox.db"
    conn = _fleet(path, 2000)
    tracker = SandboxDbTracker(str(path), resync_s=10_000)
    inc = IncrementalReconciler()
    listings = [ProviderListing(provider="local", kind="local", ok=True, has_api=False, listed_at=NOW)]
    try:
        db = await tracker.read_state(now=NOW)
        inc.step(db, listings, NOW)
        t0 = time.perf_counter()
        for _ in range(20):
            gt = inc.step(await tracker.read_state(now=NOW), listings, NOW)
        quiet = (time.perf_counter() - t0) / 20
        t0 = time.perf_counter()
        for _ in range(5):
            full = reconcile(await read_db_state(str(path), now=NOW), listings, NOW)
        before = (time.perf_counter() - t0) / 5
        assert gt == full
        assert inc.judged == 0
        print(
            f"\n2000 leases: no-change tick {quiet * 1000:.2f} ms (incremental)"
            f" vs {before * 1000:.1f} ms (full)"
        )
    finally:
        await tracker.aclose()
        conn.close()


async def test_a_leon_way_commit_is_read_by_watermark_without_a_full_signature_scan(tmp_path):
    """LEON's apply() bumps updated_at (or, on its error path, appends a lease_events row): the
    delta read finds the lease through those watermarks; the full `SELECT rowid, <signature>`
    of every table (~280 ms of CPU at 10k leases) is left for commits nothing explains."""
    path = tmp_path / "sandbox.db"
    conn = _fleet(path)
    tracker = SandboxDbTracker(str(path), resync_s=10_000)
    statements: list[str] = []

    def full_scans() -> list[str]:
        return [q for q in statements if q.startswith("SELECT rowid, quote(") and " WHERE " not in q]

    try:
        await tracker.read_state(now=NOW)
        await tracker.set_trace(statements.append)
        conn.execute(
            "UPDATE sandbox_leases SET desired_state = 'paused', version = version + 1,"
            " updated_at = '2099-01-01T00:00:00' WHERE lease_id = 'lease-7'"
        )
        conn.commit()
        state = await tracker.read_state(now=NOW)
        assert {lease.lease_id: lease for lease in state.leases}["lease-7"].desired_state == "paused"
        assert full_scans() == []
        assert tracker.stats.rows_fetched == 1

        statements.clear()  # the error path: no updated_at, one lease_events row
        conn.execute(
            "UPDATE sandbox_leases SET version = version + 1, last_error = 'boom', needs_refresh = 1"
            " WHERE lease_id = 'lease-9'"
        )
        add_lease_event(conn, "lease-9", "intent.pause", "api", error="boom")
        conn.commit()
        state = await tracker.read_state(now=NOW)
        assert {lease.lease_id: lease for lease in state.leases}["lease-9"].last_error == "boom"
        assert full_scans() == []

        statements.clear()  # the highest row deleted and its rowid reused: count and sum agree
        top = conn.execute("SELECT lease_id FROM sandbox_leases ORDER BY rowid DESC LIMIT 1").fetchone()[0]
        conn.execute("DELETE FROM sandbox_leases WHERE lease_id = ?", (top,))
        add_lease(conn, "lease-new", "local", current_instance_id="i-new", updated_at=NOW)
        conn.commit()
        state = await tracker.read_state(now=NOW)
        ids = {lease.lease_id for lease in state.leases}
        assert "lease-new" in ids and top not in ids
        full = await read_db_state(str(path), now=NOW)
        assert reconcile(state, [], NOW) == reconcile(full, [], NOW)
    finally:
        await tracker.aclose()
        conn.close()
