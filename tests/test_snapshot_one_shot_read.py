"""read_db_state(one_shot=True) (the snapshot's read, issue 9) gives the very records the shared
read gives, on a generated LEON fleet and on a DB with odd rows; only the interning differs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from opcockpit.adapters.leon.sandbox_db import read_db_state
from opcockpit.demo.fleet import generate_fleet
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
