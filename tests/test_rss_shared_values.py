"""Issue 10 (RSS): the live reader shares one object per distinct number, as it does for text, on
real parts: a real sandbox.db in LEON's schema read through the tracker's live connection, the
result equal to the one-shot read (which shares nothing)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from opcockpit.adapters.leon import sandbox_rows
from opcockpit.adapters.leon.sandbox_changes import SandboxDbTracker
from opcockpit.adapters.leon.sandbox_db import read_db_state
from tests.fixtures.leon_db import (
    add_lease,
    add_resource_snapshot,
    add_session,
    add_terminal,
    create_sandbox_db,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_shared_numbers_keep_their_type_and_sign():
    n = sandbox_rows._n
    big = int("86400")
    assert n(big) is n(int("86400"))
    assert type(n(1.0)) is float and type(n(1)) is int  # 1 == 1.0: never handed the other type
    assert n(1.0) is not n(1)
    assert math.copysign(1.0, n(-0.0)) == -1.0 and math.copysign(1.0, n(0.0)) == 1.0
    assert math.isnan(n(float("nan")))
    assert n(None) is None and n("x") == "x"
    assert n(True) is True  # a bool is not an int here


async def test_the_live_read_shares_repeated_numbers_and_equals_the_one_shot_read(tmp_path):
    path = tmp_path / "sandbox.db"
    conn = create_sandbox_db(str(path))
    for i in range(6):
        lid = f"lease-{i}"
        add_lease(conn, lid, "local", current_instance_id=f"i-{i}", observed_state="running")
        add_terminal(conn, f"term-{i}", f"thread-{i}", lid)
        add_session(
            conn, f"sess-{i}", f"thread-{i}", f"term-{i}", lid, idle_ttl_sec=300, max_duration_sec=86400
        )
        add_resource_snapshot(
            conn, lid, "local", memory_total_mb=2048.5, cpu_used=12.5, probe_error="probe timed out"
        )
    conn.commit()
    tracker = SandboxDbTracker(str(path), resync_s=10_000)
    try:
        state = await tracker.read_state(now=NOW)
    finally:
        await tracker.aclose()
        conn.close()
    assert state == await read_db_state(str(path), now=NOW)
    sessions = state.chat_sessions
    assert len({id(s.max_duration_sec) for s in sessions}) == 1 and sessions[0].max_duration_sec == 86400
    assert len({id(s.idle_ttl_sec) for s in sessions}) == 1
    snaps = list(state.resource_snapshots.values())
    assert len(snaps) == 6
    assert len({id(s.memory_total_mb) for s in snaps}) == 1 and snaps[0].memory_total_mb == 2048.5
    assert len({id(s.cpu_used) for s in snaps}) == 1
    assert len({id(s.probe_error) for s in snaps}) == 1


def test_a_full_read_shares_repeated_text_as_it_fetches_and_leaves_odd_columns_raw():
    import sqlite3

    from opcockpit.adapters.leon import sandbox_scan

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a TEXT, b)")
    rows = [(f"st{'x' * 20}", i if i == 5 else f"v{'y' * 20}") for i in range(sandbox_scan._FETCH_CHUNK + 7)]
    conn.executemany("INSERT INTO t VALUES (?, ?)", rows)
    got = sandbox_scan._shared_rows(conn.execute("SELECT a, b FROM t ORDER BY rowid"), [0, 1])
    assert got == rows
    assert len({id(r[0]) for r in got}) == 1  # one str for the whole column, across chunks
    first = got[: sandbox_scan._FETCH_CHUNK]  # b holds an int in this chunk: left as fetched
    assert len({id(r[1]) for r in first if isinstance(r[1], str)}) == len(first) - 1
    rest = got[sandbox_scan._FETCH_CHUNK :]
    assert len({id(r[1]) for r in rest}) == 1
