"""Read-only SQLite plumbing shared by the sandbox.db and events.db readers.

Discipline (reading must never write):
- open with URI `file:<path>?mode=ro`: SQLite opens the main file O_RDONLY and never creates it;
- `PRAGMA query_only=1` as a second guard; no journal_mode/WAL pragmas, no checkpoints, no DDL;
- pre-checks use stat()/access() only. We never open() the DB file ourselves: closing any fd on a
  file drops every POSIX lock this process holds on it, including those of a live SQLite
  connection (sqlite.org/howtocorrupt.html §2.2).

WAL behaviour of a read-only connection (SQLite 3.40, verified in tests/test_sources_nowrite.py):
- -wal/-shm present: reads work; only the -shm (the shared-memory wal-index, not data) changes.
- WAL DB closed cleanly (no -wal/-shm): SQLite's reader creates an empty -wal and a -shm next to
  the DB (as root it chowns them to the DB owner). The DB bytes are untouched.
- -shm missing or not creatable because the directory is read-only: SQLite refuses
  (SQLITE_READONLY_DIRECTORY / SQLITE_CANTOPEN) -> SourceError(kind="permission").
- a read-only -shm with a writable -wal works (SQLite falls back to heap memory).
- a ro connection never checkpoints on close (it cannot take the exclusive lock).
"""

from __future__ import annotations

import os
import sqlite3
import stat as _stat
from urllib.parse import quote

import aiosqlite

from opcockpit.ports.errors import SourceError


def precheck(path: str, label: str, hint: str) -> str:
    """Classify obviously bad paths before SQLite sees them; return the absolute path."""
    apath = os.path.abspath(os.path.expanduser(path))
    try:
        st = os.stat(apath)
    except FileNotFoundError:
        raise SourceError(
            "missing", f"{label} at {apath} does not exist; {hint} (nothing was created)", path=apath
        ) from None
    except PermissionError:
        raise SourceError(
            "permission",
            f"{label} at {apath} cannot be reached: a parent directory is not searchable by uid "
            f"{_uid()}; run as the DB owner or grant access",
            path=apath,
        ) from None
    except OSError as exc:
        raise SourceError(
            "missing", f"{label} at {apath} cannot be accessed ({exc.strerror}); {hint}", path=apath
        ) from None
    if _stat.S_ISDIR(st.st_mode):
        guess = os.path.join(apath, label)
        tip = f"; did you mean {guess}?" if os.path.isfile(guess) else f"; pass the {label} file itself"
        raise SourceError(
            "not_sqlite", f"{label} path {apath} is a directory, not a SQLite file{tip}", path=apath
        )
    if not _stat.S_ISREG(st.st_mode):
        raise SourceError(
            "not_sqlite", f"{label} at {apath} is not a regular file; pass LEON's {label}", path=apath
        )
    if not os.access(apath, os.R_OK):
        raise SourceError(
            "permission",
            f"{label} at {apath} is not readable by uid {_uid()}; run as the DB owner or grant read "
            "access (chmod/ACL)",
            path=apath,
        )
    if st.st_size == 0:
        raise SourceError(
            "not_leon",
            f"{label} at {apath} is empty (0 bytes): LEON has not initialised it; {hint}",
            path=apath,
        )
    return apath


def _uid() -> int | str:
    return os.geteuid() if hasattr(os, "geteuid") else "?"


async def connect_ro(apath: str, label: str, busy_timeout_ms: int) -> aiosqlite.Connection:
    """Open `apath` read-only through aiosqlite (autocommit: we issue BEGIN/COMMIT ourselves)."""
    uri = "file:" + quote(apath, safe="/") + "?mode=ro"
    timeout_s = max(busy_timeout_ms, 0) / 1000.0
    try:
        conn = await aiosqlite.connect(uri, uri=True, timeout=timeout_s, isolation_level=None)
    except sqlite3.Error as exc:
        raise map_sqlite_error(exc, apath, label, busy_timeout_ms) from None
    try:
        await conn.execute(f"PRAGMA busy_timeout={int(max(busy_timeout_ms, 0))}")
        await conn.execute("PRAGMA query_only=1")
    except sqlite3.Error as exc:
        await conn.close()
        raise map_sqlite_error(exc, apath, label, busy_timeout_ms) from None
    return conn


def connect_ro_now(apath: str, label: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """connect_ro on a plain sqlite3 connection, for a read that runs in one thread."""
    uri = "file:" + quote(apath, safe="/") + "?mode=ro"
    timeout_s = max(busy_timeout_ms, 0) / 1000.0
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout_s, isolation_level=None)
    except sqlite3.Error as exc:
        raise map_sqlite_error(exc, apath, label, busy_timeout_ms) from None
    try:
        conn.execute(f"PRAGMA busy_timeout={int(max(busy_timeout_ms, 0))}")
        conn.execute("PRAGMA query_only=1")
    except sqlite3.Error as exc:
        conn.close()
        raise map_sqlite_error(exc, apath, label, busy_timeout_ms) from None
    return conn


def map_sqlite_error(exc: BaseException, apath: str, label: str, busy_timeout_ms: int) -> SourceError:
    """One actionable line for an sqlite3 error raised while reading `apath`."""
    if isinstance(exc, SourceError):
        return exc
    name = getattr(exc, "sqlite_errorname", "") or ""
    msg = str(exc) or name or type(exc).__name__
    low = msg.lower()
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in low:
        return SourceError(
            "locked",
            f"{label} at {apath} is locked by another process (lock held for >{busy_timeout_ms / 1000:g}s, "
            "e.g. an exclusive transaction or locking_mode=EXCLUSIVE); retry, raise the busy timeout, or "
            "check for a running migration",
            path=apath,
        )
    if name == "SQLITE_NOTADB" or "not a database" in low:
        return SourceError(
            "not_sqlite",
            f"{label} at {apath} is not a SQLite database (bad header); point opcockpit at LEON's {label}",
            path=apath,
        )
    if name.startswith("SQLITE_CORRUPT") or "malformed" in low:
        return SourceError(
            "corrupt",
            f"{label} at {apath} is corrupt or truncated (SQLite: {msg}); restore it from a backup "
            "or let LEON recreate it",
            path=apath,
        )
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in low:
        return SourceError(
            "corrupt",
            f"{label} at {apath} could not be read (SQLite I/O error: {msg}); the file may be "
            "truncated or the disk failing",
            path=apath,
        )
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")) or (
        "unable to open" in low or "readonly" in low
    ):
        if not os.path.exists(apath):
            return SourceError(
                "missing", f"{label} at {apath} disappeared while opening it; retry", path=apath
            )
        if not os.access(apath, os.R_OK):
            return SourceError(
                "permission",
                f"{label} at {apath} is not readable by uid {_uid()}; run as the DB owner or "
                "grant read access",
                path=apath,
            )
        return _wal_permission_error(apath, label, msg)
    return SourceError("corrupt", f"{label} at {apath} could not be read (SQLite: {msg})", path=apath)


def _wal_permission_error(apath: str, label: str, msg: str) -> SourceError:
    directory = os.path.dirname(apath) or "."
    parts = []
    for suffix in ("-wal", "-shm"):
        side = apath + suffix
        if not os.path.exists(side):
            parts.append(f"{suffix} missing")
        elif not os.access(side, os.R_OK):
            parts.append(f"{suffix} unreadable")
    if not os.access(directory, os.W_OK):
        parts.append(f"directory {directory} not writable")
    detail = ", ".join(parts) or msg
    return SourceError(
        "permission",
        f"{label} at {apath} is in WAL mode and SQLite's read-only reader cannot open or create its "
        f"-wal/-shm files ({detail}; uid {_uid()}); run opcockpit as the DB owner, or read a copy made with "
        f"`sqlite3 {apath} .backup`",
        path=apath,
    )
