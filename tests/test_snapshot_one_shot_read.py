"""read_db_state(one_shot=True) (the snapshot's read, issue 9: one worker thread, a plain sqlite3
connection, text not interned) gives the very records and errors the shared read gives, and
never writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from opcockpit.adapters.leon.sandbox_db import read_db_state
from opcockpit.demo.fleet import generate_fleet
from opcockpit.ports.errors import SourceError
from tests.cli_support import build_leon_db


async def test_one_shot_read_equals_the_shared_read_on_a_generated_fleet(tmp_path: Path) -> None:
    db = str(generate_fleet(tmp_path / "fleet", leases=60, seed=3).sandbox_db)
    shared = await read_db_state(db)
    once = await read_db_state(db, one_shot=True, now=shared.read_at)
    assert once == shared
    assert len(once.leases) == 60 and once.terminals and once.chat_sessions


async def test_one_shot_read_keeps_the_bad_row_vetting(tmp_path: Path) -> None:
    db = build_leon_db(tmp_path / "sandbox.db")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE sandbox_leases SET updated_at = 'not a time', version = 'x' WHERE rowid = 1")
        conn.execute("UPDATE abstract_terminals SET lease_id = CAST('lease' AS BLOB) WHERE rowid = 2")
    shared = await read_db_state(str(db))
    once = await read_db_state(str(db), one_shot=True, now=shared.read_at)
    assert once == shared
    assert once.lease_problems and once.problems  # the odd rows are reported alike


async def test_one_shot_read_never_writes_and_cannot(tmp_path: Path) -> None:
    """The plain sqlite3 connection keeps sqlite_ro's discipline: URI mode=ro and query_only."""
    import hashlib

    from opcockpit.adapters.leon.sandbox_db import _drive, _OneShotReader

    db = build_leon_db(tmp_path / "sandbox.db")
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    assert len((await read_db_state(str(db), one_shot=True)).leases) == 4
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    reader = _OneShotReader(str(db))
    _drive(reader.open())
    try:
        with pytest.raises(sqlite3.OperationalError):
            _drive(reader._conn.execute("UPDATE sandbox_leases SET version = 99"))  # type: ignore[union-attr]
    finally:
        _drive(reader.close())
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


async def test_one_shot_read_reports_bad_files_like_the_shared_read(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("CREATE TABLE t (a)").connection.close()
    for path in (tmp_path / "missing.db", junk, empty, tmp_path):
        with pytest.raises(SourceError) as shared:
            await read_db_state(str(path))
        with pytest.raises(SourceError) as once:
            await read_db_state(str(path), one_shot=True)
        assert (once.value.kind, str(once.value)) == (shared.value.kind, str(shared.value))
    assert not (tmp_path / "missing.db").exists()


async def test_one_shot_read_takes_odd_resource_snapshot_values_like_the_shared_read(tmp_path: Path) -> None:
    db = str(generate_fleet(tmp_path / "fleet", leases=30, seed=5).sandbox_db)
    with sqlite3.connect(db) as conn:
        rowids = [r[0] for r in conn.execute("SELECT rowid FROM lease_resource_snapshots LIMIT 4")]
        assert len(rowids) == 4
        odd = [
            "cpu_used = '12.5', memory_used_mb = 7, probe_mode = CAST('m' AS BLOB)",
            "disk_used_gb = 'lots', observed_state = 42, collected_at = 'not a time'",
            "probe_error = CAST('boom' AS BLOB), memory_total_mb = NULL, collected_at = 1700000000.5",
            "cpu_used = 1e999, collected_at = '2026-12-06T05:02:00+08:00'",
        ]
        for rowid, sets in zip(rowids, odd, strict=True):
            conn.execute(f"UPDATE lease_resource_snapshots SET {sets} WHERE rowid = ?", (rowid,))
    shared = await read_db_state(db)
    once = await read_db_state(db, one_shot=True, now=shared.read_at)
    assert once == shared
