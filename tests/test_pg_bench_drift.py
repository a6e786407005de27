# ruff: noqa: F811  (pytest fixtures imported by name)
"""bench/pg_drift.py (issue 12 benches): sandbox.db's writes reach the PostgreSQL copy, so the
steady-state bench on PostgreSQL measures a cockpit that sees the same drift as on sandbox.db."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

from bench.pg_drift import PgMirror
from opcockpit.adapters.pg_source import PgSourceSpec, read_pg_state
from opcockpit.adapters.pg_source_track import PgSourceTracker
from opcockpit.demo.fleet import generate_fleet
from tests.fixtures.postgres import pg_server, pg_url  # noqa: F401
from tests.test_pg_source import copy_fleet


async def test_mirror_carries_updates_inserts_and_deletes(tmp_path: Path, pg_url: str) -> None:
    fleet = generate_fleet(tmp_path / "fleet", leases=40, seed=3)
    mirror = PgMirror(fleet.sandbox_db, pg_url)
    mirror.baseline()
    copy_fleet(fleet.sandbox_db, pg_url)
    tracker = PgSourceTracker(PgSourceSpec(pg_url))
    try:
        await tracker.read_state()
        lite = sqlite3.connect(fleet.sandbox_db, isolation_level=None)
        lid, tid = lite.execute("SELECT lease_id, terminal_id FROM abstract_terminals LIMIT 1").fetchone()
        with psycopg.connect(pg_url, autocommit=True) as pg:
            assert mirror.tick(pg) == 0  # nothing written yet: nothing sent
            lite.execute(
                "UPDATE sandbox_leases SET desired_state = 'destroyed', version = version + 1,"
                " updated_at = strftime('%Y-%m-%dT%H:%M:%f', 'now') WHERE lease_id = ?",
                (lid,),
            )
            lite.execute("DELETE FROM abstract_terminals WHERE terminal_id = ?", (tid,))
            assert mirror.tick(pg) == 2
            row = pg.execute(
                "SELECT desired_state FROM sandbox_leases WHERE lease_id = %s", (lid,)
            ).fetchone()
            assert row == ("destroyed",)
            assert (
                pg.execute("SELECT 1 FROM abstract_terminals WHERE terminal_id = %s", (tid,)).fetchone()
                is None
            )
        lite.close()
        state = await tracker.read_state()  # the cockpit's reader sees the mirrored writes
        assert next(x for x in state.leases if x.lease_id == lid).desired_state == "destroyed"
        assert tid not in {t.terminal_id for t in state.terminals}
        assert len(state.leases) == len((await read_pg_state(PgSourceSpec(pg_url))).leases) == 40
    finally:
        await tracker.aclose()
        mirror.stop()
