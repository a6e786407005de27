"""Bad input never crashes with a traceback and never writes: each case is one typed SourceError."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from opcockpit.adapters.leon.events_db import EventsDbReader
from opcockpit.adapters.leon.sandbox_db import SandboxDbReader, read_db_state
from opcockpit.adapters.leon.schema import create_sandbox_db
from opcockpit.ports.errors import KINDS, SourceError
from tests.fixtures.leon_db import add_lease, write_worked_example

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
SETPRIV = shutil.which("setpriv")
REPO = Path(__file__).resolve().parents[1]


def listing(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}


async def expect(path: Path | str, kind: str, *needles: str) -> SourceError:
    with pytest.raises(SourceError) as info:
        await read_db_state(str(path))
    err = info.value
    assert err.kind == kind, str(err)
    msg = str(err)
    assert "\n" not in msg and "Traceback" not in msg
    assert str(path) in msg  # names the path
    for n in needles:
        assert n in msg, msg
    return err


async def test_missing_file_is_not_created(tmp_path: Path) -> None:
    p = tmp_path / "sandbox.db"
    await expect(p, "missing", "does not exist", "LEON_SANDBOX_DB_PATH")
    assert list(tmp_path.iterdir()) == []  # no empty DB, no -wal/-shm


async def test_missing_parent_directory(tmp_path: Path) -> None:
    await expect(tmp_path / "nope" / "sandbox.db", "missing")
    assert not (tmp_path / "nope").exists()


async def test_directory_suggests_the_file_inside(tmp_path: Path) -> None:
    await expect(tmp_path, "not_sqlite", "is a directory")
    write_worked_example(tmp_path)
    err = await expect(tmp_path, "not_sqlite", "did you mean")
    assert str(tmp_path / "sandbox.db") in str(err)


@pytest.mark.parametrize(
    "content",
    [os.urandom(8192), b"this is a text file, not a database\n" * 50, b"SQLite format 3"],
    ids=["random-bytes", "text", "short-header"],
)
async def test_not_sqlite(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "sandbox.db"
    p.write_bytes(content)
    before = listing(tmp_path)
    await expect(p, "not_sqlite", "not a SQLite database")
    assert listing(tmp_path) == before


async def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "sandbox.db"
    p.write_bytes(b"")
    await expect(p, "not_leon", "empty (0 bytes)")
    assert p.read_bytes() == b""


async def test_sqlite_but_not_leon(tmp_path: Path) -> None:
    p = tmp_path / "other.db"
    conn = sqlite3.connect(p)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    before = listing(tmp_path)
    await expect(p, "not_leon", "sandbox_leases", "users")
    assert listing(tmp_path) == before


async def test_sqlite_without_tables(tmp_path: Path) -> None:
    p = tmp_path / "blank.db"
    conn = sqlite3.connect(p)
    conn.execute("PRAGMA user_version = 7")  # a valid, table-less database file
    conn.commit()
    conn.close()
    await expect(p, "not_leon", "no tables")


async def test_lease_table_missing_required_columns(tmp_path: Path) -> None:
    p = tmp_path / "sandbox.db"
    conn = sqlite3.connect(p)
    conn.execute("CREATE TABLE sandbox_leases (lease_id TEXT PRIMARY KEY, provider TEXT, state TEXT)")
    conn.execute("CREATE TABLE abstract_terminals (terminal_id TEXT, thread_id TEXT, lease_id TEXT)")
    conn.commit()
    conn.close()
    err = await expect(p, "schema", "sandbox_leases", "provider_name", "desired_state", "observed_state")
    assert "lease_id" not in str(err).split("column(s)")[1]  # only the missing ones are named


async def test_missing_abstract_terminals_is_schema(tmp_path: Path) -> None:
    p = tmp_path / "sandbox.db"
    conn = sqlite3.connect(p)
    conn.execute(
        "CREATE TABLE sandbox_leases (lease_id TEXT, provider_name TEXT, desired_state TEXT, "
        "observed_state TEXT)"
    )
    conn.commit()
    conn.close()
    await expect(p, "schema", "abstract_terminals")


async def test_chat_sessions_missing_columns_is_schema(tmp_path: Path) -> None:
    p = tmp_path / "sandbox.db"
    create_sandbox_db(str(p), optional=False).close()
    conn = sqlite3.connect(p)
    conn.execute("DROP TABLE chat_sessions")
    conn.execute("CREATE TABLE chat_sessions (chat_session_id TEXT, thread_id TEXT)")
    conn.commit()
    conn.close()
    await expect(p, "schema", "chat_sessions", "terminal_id", "lease_id", "status")


@pytest.mark.parametrize("journal", ["wal", "delete"])
async def test_truncated_db_is_corrupt(tmp_path: Path, journal: str) -> None:
    p = tmp_path / "sandbox.db"
    conn = create_sandbox_db(str(p))
    for i in range(400):  # enough pages that half the file loses real b-tree pages
        add_lease(conn, f"lease-{i:012x}", "docker", last_error="x" * 300)
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute(f"PRAGMA journal_mode={journal}")
    conn.close()
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    before = p.read_bytes()
    await expect(p, "corrupt", "corrupt or truncated")
    assert p.read_bytes() == before


LOCKER = textwrap.dedent("""
    import sqlite3, sys, time
    c = sqlite3.connect(sys.argv[1], isolation_level=None)
    c.execute("PRAGMA locking_mode=EXCLUSIVE")
    c.execute("BEGIN EXCLUSIVE")
    c.execute("UPDATE sandbox_leases SET version = version + 1")
    if sys.argv[2] == "commit":
        c.execute("COMMIT")  # exclusive locking mode keeps the lock after the commit
    print("locked", flush=True)
    sys.stdin.readline()  # hold the lock until the test says so
""")


@pytest.mark.parametrize("journal", ["wal", "delete"])
@pytest.mark.parametrize("phase", ["in-transaction", "commit"])
async def test_exclusive_lock_by_another_process(tmp_path: Path, journal: str, phase: str) -> None:
    ex = write_worked_example(tmp_path, journal=journal)
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(ex.sandbox_db), phase],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(SourceError) as info:
            await read_db_state(str(ex.sandbox_db), busy_timeout_ms=200)
        assert info.value.kind == "locked"
        assert "locked by another process" in str(info.value) and ">0.2s" in str(info.value)
        assert str(ex.sandbox_db) in str(info.value)
    finally:
        proc.kill()
        proc.wait()
    # Once the holder is gone the same file reads fine (the lock, not the file, was the problem).
    state = await read_db_state(str(ex.sandbox_db))
    assert len(state.leases) == 3


@pytest.mark.skipif(IS_ROOT, reason="root bypasses file permissions; see the setpriv variant below")
async def test_unreadable_file_is_permission(tmp_path: Path) -> None:
    ex = write_worked_example(tmp_path, journal="delete")
    ex.sandbox_db.chmod(0)
    try:
        await expect(ex.sandbox_db, "permission", "not readable")
    finally:
        ex.sandbox_db.chmod(0o644)


PERMISSION_PROBE = textwrap.dedent("""
    import asyncio, sys
    from opcockpit.ports.errors import SourceError
    from opcockpit.adapters.leon.sandbox_db import read_db_state
    try:
        asyncio.run(read_db_state(sys.argv[1]))
        print("ok")
    except SourceError as e:
        print(e.kind + "|" + str(e))
""")


def _as_nobody(path: Path) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin"),
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/nonexistent",
    }
    out = subprocess.run(
        [
            SETPRIV or "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            PERMISSION_PROBE,
            str(path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd="/",
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


needs_setpriv = pytest.mark.skipif(not (IS_ROOT and SETPRIV), reason="needs root + setpriv to drop to nobody")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory nobody can traverse (pytest's tmp root is 0700)."""
    d = Path(tempfile.mkdtemp(prefix="opcockpit-perm-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        for sub in d.rglob("*"):
            if sub.is_dir():
                sub.chmod(0o755)
        shutil.rmtree(d, ignore_errors=True)


@needs_setpriv
def test_unreadable_file_is_permission_as_nobody(open_dir: Path) -> None:
    ex = write_worked_example(open_dir, journal="delete")
    ex.sandbox_db.chmod(0o600)  # owned by root: nobody cannot read it
    kind, _, msg = _as_nobody(ex.sandbox_db).partition("|")
    assert kind == "permission" and "not readable by uid 65534" in msg


@needs_setpriv
def test_wal_db_in_readonly_directory_is_permission_not_a_write(open_dir: Path) -> None:
    # A cleanly closed WAL DB has no -wal/-shm; SQLite's reader must create them, and cannot here.
    d = open_dir / "ro"
    ex = write_worked_example(d)  # WAL, closed cleanly: files are gone
    assert sorted(p.name for p in d.iterdir()) == ["events.db", "sandbox.db"]
    for p in d.iterdir():
        p.chmod(0o644)
    d.chmod(0o555)
    before = listing(d)
    try:
        kind, _, msg = _as_nobody(ex.sandbox_db).partition("|")
    finally:
        d.chmod(0o755)
    assert kind == "permission", msg
    assert "WAL mode" in msg and "-wal missing" in msg and "not writable" in msg
    assert listing(d) == before


CRASH_WRITER = textwrap.dedent("""
    import os, sqlite3, sys
    c = sqlite3.connect(sys.argv[1])
    c.execute("PRAGMA wal_autocheckpoint=0")
    c.execute("UPDATE sandbox_leases SET version = version + 10")
    c.commit()
    os._exit(0)  # leaves the frames in -wal
""")


@needs_setpriv
def test_wal_frames_without_shm_in_readonly_directory(open_dir: Path) -> None:
    # A crashed writer left -wal frames; the -shm is gone and cannot be created: refuse, write nothing.
    d = open_dir / "ro"
    ex = write_worked_example(d)
    subprocess.run([sys.executable, "-c", CRASH_WRITER, str(ex.sandbox_db)], check=True, timeout=60)
    Path(str(ex.sandbox_db) + "-shm").unlink()
    assert Path(str(ex.sandbox_db) + "-wal").stat().st_size > 0
    for p in d.iterdir():
        p.chmod(0o644)
    d.chmod(0o555)
    before = listing(d)
    try:
        kind, _, msg = _as_nobody(ex.sandbox_db).partition("|")
    finally:
        d.chmod(0o755)
    assert kind == "permission", msg
    assert "-shm missing" in msg and "not writable" in msg and "-wal missing" not in msg
    assert listing(d) == before


def test_source_error_contract() -> None:
    assert set(KINDS) == {"missing", "not_sqlite", "not_leon", "locked", "corrupt", "permission", "schema"}
    err = SourceError("locked", "sandbox.db at /x is locked\nby another process")
    assert str(err) == "sandbox.db at /x is locked by another process"  # always one line
    assert err.kind == "locked"
    with pytest.raises(ValueError):
        SourceError("nope", "x")  # type: ignore[arg-type]


async def test_events_db_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        async with EventsDbReader(str(tmp_path / "events.db")):
            pass
    assert info.value.kind == "missing" and not (tmp_path / "events.db").exists()
    (tmp_path / "junk.db").write_bytes(os.urandom(4096))
    with pytest.raises(SourceError) as info:
        async with EventsDbReader(str(tmp_path / "junk.db")) as r:
            await r.runs()
    assert info.value.kind == "not_sqlite"


async def test_reader_methods_after_failed_open_raise_cleanly(tmp_path: Path) -> None:
    reader = SandboxDbReader(str(tmp_path / "absent.db"))
    with pytest.raises(SourceError):
        await reader.open()
    with pytest.raises(RuntimeError, match="not open"):
        await reader.read_state()
