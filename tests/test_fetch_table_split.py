"""The tracker's full read fetches a table's timestamp columns in a scan of their own (issue 10,
RSS: their text no longer alternates with the kept ids in pymalloc's pools) and puts them back in
column order: the rows equal one plain `SELECT ... ORDER BY rowid`, on real sandbox.db files in
LEON's schema variants (older ones lack columns: NULL), with a NULL, an odd and a numeric time."""

from __future__ import annotations

import pytest

from opcockpit.adapters.leon.sandbox_changes import _TABLES
from opcockpit.adapters.leon.sandbox_db import SandboxDbReader
from opcockpit.adapters.leon.sandbox_scan import _fetch_rows, _fetch_table
from tests.fixtures.leon_db import (
    add_lease,
    add_resource_snapshot,
    add_session,
    add_terminal,
    create_sandbox_db,
)


@pytest.mark.parametrize("variant", ["leonai", "mycel", "older"])
async def test_split_rows_equal_one_select(tmp_path, variant: str) -> None:
    path = tmp_path / "sandbox.db"
    conn = create_sandbox_db(str(path), variant=variant)
    for i in range(7):
        lid = f"lease-{i}"
        add_lease(conn, lid, "local", current_instance_id=f"i-{i}", observed_state="running")
        add_terminal(conn, f"term-{i}", f"thread-{i}", lid)
        add_session(conn, f"sess-{i}", f"thread-{i}", f"term-{i}", lid)
        add_resource_snapshot(conn, lid, "local", cpu_used=float(i))
    conn.execute("UPDATE sandbox_leases SET refresh_hint_at = NULL WHERE lease_id = 'lease-1'")
    conn.execute("UPDATE sandbox_leases SET created_at = 'not a time' WHERE lease_id = 'lease-2'")
    conn.execute("UPDATE abstract_terminals SET created_at = 1767225600 WHERE terminal_id = 'term-3'")
    conn.execute("DELETE FROM chat_sessions WHERE chat_session_id = 'sess-4'")
    conn.commit()
    conn.close()
    reader = await SandboxDbReader(str(path)).open()
    try:
        ap = reader._apath

        async def run(c, s):
            out = []
            for table, cols in _TABLES:
                if s.has(table):
                    whole = await _fetch_rows(c, f"{s.select(table, cols, ap)} ORDER BY rowid", table, cols)
                    out.append((table, await _fetch_table(c, s, table, cols, ap), whole))
            return out

        _, pairs = await reader._transaction(run)
    finally:
        await reader.close()
    assert {t for t, _, _ in pairs} >= {"sandbox_leases", "abstract_terminals", "chat_sessions"}
    for table, split, whole in pairs:
        assert split == whole, table
        assert len(whole) >= 6
