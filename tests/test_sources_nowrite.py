"""Reading never writes: sandbox.db (and its -wal) are byte-identical after every query.

SQLite facts these tests pin (3.40; see opcockpit/adapters/leon/sqlite_ro.py):
- the -shm file is the shared-memory wal-index, not data: a WAL reader may update it;
- on a cleanly closed WAL DB, SQLite's read-only reader creates an empty -wal and a -shm;
- the main file is opened O_RDONLY, so the OS itself refuses any write to it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opcockpit.adapters.leon.events_db import EventsDbReader
from opcockpit.adapters.leon.sandbox_db import SandboxDbReader, read_db_state
from tests.fixtures.leon_db import (
    CMD1,
    CMD3,
    EXAMPLE_TZ,
    L1,
    L3,
    T1,
    T3,
    TERM1,
    TERM3B,
    utc_of,
    write_worked_example,
)


def digest(p: Path) -> str | None:
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None


def data_hashes(db: Path) -> dict[str, str | None]:
    """sandbox.db and its -wal: the files that hold data (the -shm is an index a reader may touch)."""
    return {"db": digest(db), "wal": digest(Path(str(db) + "-wal"))}


async def read_everything(db: Path, events: Path | None = None) -> int:
    """Every public query of the readers; returns a row count so the reads are observable."""
    n = 0
    state = await read_db_state(str(db), local_tz=EXAMPLE_TZ)
    n += len(state.leases) + len(state.terminals) + len(state.chat_sessions) + len(state.resource_snapshots)
    async with SandboxDbReader(str(db), local_tz=EXAMPLE_TZ) as r:
        s2 = await r.read_state()
        n += len(s2.leases)
        n += (await r.lease(L1)) is not None
        n += len(await r.leases_by_ids([L1, L3]))
        n += len(await r.lease_events())
        n += len(await r.lease_events(L3, since=utc_of("09:00"), until=utc_of("12:00"), limit=5))
        n += len(await r.provider_events(provider="e2b", lease_ids=[L1], since=utc_of("09:00")))
        n += len(await r.provider_events())
        n += len(await r.instance_history(L1))
        n += len(await r.thread_terminals(T3))
        n += len(await r.thread_sessions(T1))
        n += len(await r.terminal_commands([TERM1, TERM3B]))
        n += len(await r.threads_for_lease(L3))
        n += len(await r.find_leases("lease-"))
        n += (await r.thread_pointer(T3)) is not None
        n += len((await r.command_output(CMD3)).chunks)
        n += len((await r.command_output(CMD1, tail_bytes=4)).chunks)
        n += len(await r.volumes()) + len(await r.volumes(["vol-x"])) + len(await r.sync_files(T1))
    if events is not None:
        async with EventsDbReader(str(events)) as e:
            runs = await e.runs()
            n += len(runs) + len(await e.runs(T1, limit=1)) + await e.latest_seq()
            for run in runs:
                n += len(await e.run_events(run.run_id, after_seq=0, limit=10))
    return n


async def test_rollback_journal_db_unchanged(tmp_path: Path) -> None:
    ex = write_worked_example(tmp_path, journal="delete")
    names = sorted(p.name for p in tmp_path.iterdir())
    before = data_hashes(ex.sandbox_db)
    ev_before = digest(ex.events_db)
    assert await read_everything(ex.sandbox_db) > 0
    assert data_hashes(ex.sandbox_db) == before
    assert before["wal"] is None
    # events.db is WAL and closed cleanly: only SQLite's reader files may appear next to it.
    assert digest(ex.events_db) == ev_before
    extra = set(p.name for p in tmp_path.iterdir()) - set(names)
    assert extra == set()  # no journal, no -wal/-shm for the rollback-journal sandbox.db


@pytest.mark.parametrize("variant", ["mycel", "older"])
async def test_other_variants_unchanged_including_mycel_tables(tmp_path: Path, variant: str) -> None:
    """Mycel's sandbox_volumes/sync_files and the absent-table paths of `older` read without writing."""
    ex = write_worked_example(tmp_path, variant=variant, journal="delete")
    if variant == "mycel":
        conn = sqlite3.connect(ex.sandbox_db)
        conn.execute("INSERT INTO sync_files VALUES (?, 'a.txt', 'c', 1773979200)", (T1,))
        conn.commit()
        conn.close()
    before = data_hashes(ex.sandbox_db)
    names = sorted(p.name for p in tmp_path.iterdir())
    n = await read_everything(ex.sandbox_db)
    async with SandboxDbReader(str(ex.sandbox_db), local_tz=EXAMPLE_TZ) as r:
        mycel_rows = len(await r.volumes()) + len(await r.sync_files(T1))
    assert n > 0 and mycel_rows == (4 if variant == "mycel" else 0)
    assert data_hashes(ex.sandbox_db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == names


async def test_clean_wal_db_unchanged_and_only_empty_wal_created(tmp_path: Path) -> None:
    ex = write_worked_example(tmp_path)
    assert not Path(str(ex.sandbox_db) + "-wal").exists()
    before = digest(ex.sandbox_db)
    assert await read_everything(ex.sandbox_db, ex.events_db) > 0
    assert digest(ex.sandbox_db) == before
    wal = Path(str(ex.sandbox_db) + "-wal")
    if wal.exists():  # created by SQLite's ro WAL reader: it must hold no frames
        assert wal.stat().st_size == 0


WRITER = textwrap.dedent("""
    import os, queue, sqlite3, sys, threading
    path, autockpt = sys.argv[1], int(sys.argv[2])
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA busy_timeout=10000")
    c.execute(f"PRAGMA wal_autocheckpoint={autockpt}")
    i = 0
    def write():
        global i
        now = "2026-03-20T12:%02d:%02d.%06d" % (i // 3600 % 60, i // 60 % 60, i % 1000000)
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO sandbox_leases (lease_id, provider_name, desired_state, observed_state, "
                  "instance_status, created_at, updated_at) VALUES (?, 'docker', 'running', 'running', "
                  "'running', ?, ?)", (f"lease-w{i:011d}", now, now))
        c.execute("INSERT INTO abstract_terminals (terminal_id, thread_id, lease_id, cwd, created_at, "
                  "updated_at) VALUES (?, ?, ?, '/w', ?, ?)",
                  (f"term-w{i:011d}", f"th-w{i}", f"lease-w{i:011d}", now, now))
        c.execute("COMMIT")
        i += 1
    mode = sys.argv[3]
    if mode == "hold":
        for _ in range(int(sys.argv[4])):
            write()
        print("ready", i, flush=True)
        cmd = sys.stdin.readline().strip()
        if cmd == "crash":
            os._exit(0)  # no close, no checkpoint: the -wal keeps its frames
        c.close()
        sys.exit(0)
    # mode == "loop": write until told to pause/stop. A reader thread feeds commands through a queue
    # (select() on a buffered stdin misses lines already pulled into Python's buffer).
    cmds = queue.Queue()
    threading.Thread(target=lambda: [cmds.put(line.strip()) for line in sys.stdin], daemon=True).start()
    while True:
        try:
            cmd = cmds.get_nowait()
        except queue.Empty:
            cmd = ""
        if cmd == "pause":
            print("paused", i, flush=True)
            cmd = cmds.get()
        if cmd == "stop":
            break
        write()
    print("stopped", i, flush=True)
    c.close()
""")


def start_writer(db: Path, *args: str, autocheckpoint: int = 0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(autocheckpoint), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def tell(proc: subprocess.Popen[str], cmd: str) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(cmd + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip() if cmd in ("pause", "stop") else ""


def first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


async def test_wal_with_live_writer_and_uncheckpointed_frames(tmp_path: Path) -> None:
    ex = write_worked_example(tmp_path)
    proc = start_writer(ex.sandbox_db, "hold", "25")
    try:
        assert first_line(proc) == "ready 25"
        wal = Path(str(ex.sandbox_db) + "-wal")
        assert wal.stat().st_size > 0  # frames not checkpointed into sandbox.db
        before = data_hashes(ex.sandbox_db)
        assert await read_everything(ex.sandbox_db, ex.events_db) > 0
        assert data_hashes(ex.sandbox_db) == before
        state = await read_db_state(str(ex.sandbox_db))
        assert len(state.leases) == 3 + 25  # rows that live only in the -wal are visible
        assert data_hashes(ex.sandbox_db) == before
    finally:
        tell(proc, "close")
        proc.wait(timeout=30)


async def test_wal_left_by_a_crashed_writer(tmp_path: Path) -> None:
    ex = write_worked_example(tmp_path)
    proc = start_writer(ex.sandbox_db, "hold", "10")
    assert first_line(proc) == "ready 10"
    tell(proc, "crash")
    proc.wait(timeout=30)
    wal = Path(str(ex.sandbox_db) + "-wal")
    assert wal.stat().st_size > 0
    for drop_shm in (False, True):  # also when the -shm is gone and must be rebuilt from the -wal
        shm = Path(str(ex.sandbox_db) + "-shm")
        if drop_shm and shm.exists():
            shm.unlink()
        before = data_hashes(ex.sandbox_db)
        assert await read_everything(ex.sandbox_db) > 0
        assert data_hashes(ex.sandbox_db) == before  # no checkpoint, no recovery written to the DB
        assert len((await read_db_state(str(ex.sandbox_db))).leases) == 13


async def test_concurrent_writer_consistent_snapshots_and_no_writes(tmp_path: Path) -> None:
    ex = write_worked_example(tmp_path)
    # autocheckpoint on: the writer itself checkpoints into sandbox.db while we read.
    proc = start_writer(ex.sandbox_db, "loop", autocheckpoint=50)
    try:
        seen = []
        for _ in range(15):
            state = await read_db_state(str(ex.sandbox_db))
            # Leases and terminals come from one read transaction: each write adds one of each.
            assert len(state.leases) - 3 == len(state.terminals) - 4
            seen.append(len(state.leases))
        assert seen == sorted(seen)  # snapshots never go back in time
        for _ in range(3):  # reads between writes of a live writer change no data bytes
            reply = tell(proc, "pause")
            assert reply.startswith("paused")
            before = data_hashes(ex.sandbox_db)
            assert await read_everything(ex.sandbox_db, ex.events_db) > 0
            assert data_hashes(ex.sandbox_db) == before
            tell(proc, "resume")
        written = int(tell(proc, "stop").split()[1])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert written > 0
    state = await read_db_state(str(ex.sandbox_db))
    assert len(state.leases) == 3 + written  # every committed write is there: we broke nothing
    conn = sqlite3.connect(f"file:{ex.sandbox_db}?mode=ro", uri=True)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


@pytest.mark.skipif(not Path("/proc/self/fdinfo").exists(), reason="needs Linux /proc fdinfo")
async def test_main_file_is_opened_read_only_by_the_os(tmp_path: Path) -> None:
    ex = write_worked_example(tmp_path)
    target = os.path.realpath(ex.sandbox_db)
    async with SandboxDbReader(str(ex.sandbox_db)) as r:
        await r.read_state()
        modes = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") != target:
                    continue
                flags = next(
                    line
                    for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines()
                    if line.startswith("flags:")
                )
            except (OSError, StopIteration):
                continue
            modes.append(int(flags.split()[1], 8) & os.O_ACCMODE)
        assert modes, "the reader holds no fd on sandbox.db?"
        assert all(m == os.O_RDONLY for m in modes)


async def test_query_only_blocks_writes_even_through_the_connection(tmp_path: Path) -> None:
    # Belt and braces: if code ever tried to write through the reader's connection, SQLite refuses.
    ex = write_worked_example(tmp_path)
    async with SandboxDbReader(str(ex.sandbox_db)) as r:
        conn = r._conn
        assert conn is not None
        with pytest.raises(sqlite3.OperationalError):
            await conn.execute("UPDATE sandbox_leases SET version = 99")
        with pytest.raises(sqlite3.OperationalError):
            await conn.execute("CREATE TABLE x (a)")
    before = data_hashes(ex.sandbox_db)
    assert (await read_db_state(str(ex.sandbox_db))).leases[0].version == 4
    assert data_hashes(ex.sandbox_db) == before
