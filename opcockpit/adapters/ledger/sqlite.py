"""The cockpit's own SQLite ledger (audit log, alert state, ack/mute) in the XDG data dir.

Never the platform's DB: this file belongs to opcockpit. Each component (audit, alerts, ...) owns
its tables and registers its DDL here with a version, so components evolve independently.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from opcockpit.ports.ledger import LedgerError

__all__ = ["LEDGER_ENV", "LedgerError", "default_ledger_path", "ensure_schema", "guarded", "open_ledger"]

LEDGER_ENV = "OPCOCKPIT_LEDGER"


P = ParamSpec("P")
R = TypeVar("R")


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def ledger_call(path: object, fn: Callable[[], R]) -> R:
    """`fn()`, with every sqlite3/OS error it raises turned into LedgerError(path, reason)."""
    try:
        return fn()
    except (sqlite3.Error, OSError) as exc:
        raise LedgerError(None if path is None else str(path), _reason(exc)) from exc


def guarded(method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
    """Method decorator for ledger stores: sqlite3/OS errors -> LedgerError(self.path, reason)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.Error, OSError) as exc:
            path = getattr(self, "path", None)
            raise LedgerError(None if path is None else str(path), _reason(exc)) from exc

    return wrapper


def default_ledger_path() -> Path:
    """$OPCOCKPIT_LEDGER, else <XDG data dir>/opcockpit/ledger.db."""
    override = os.environ.get(LEDGER_ENV)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_path

    return user_data_path("opcockpit", appauthor=False) / "ledger.db"


def open_ledger(path: str | os.PathLike[str] | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the ledger with WAL and a busy timeout; autocommit off.

    Raises LedgerError; a connection whose setup fails (a corrupt file) is closed, not leaked.
    """
    target = Path(path) if path is not None else default_ledger_path()
    conn: sqlite3.Connection | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(target, timeout=5.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS ledger_schema ( component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        conn.commit()
    except (sqlite3.Error, OSError) as exc:
        if conn is not None:
            conn.close()
        raise LedgerError(str(target), _reason(exc)) from exc
    return conn


def connection_path(conn: sqlite3.Connection) -> str | None:
    """The main database file of `conn` (None for in-memory or when it cannot be asked)."""
    try:
        row = conn.execute("PRAGMA database_list").fetchone()
    except sqlite3.Error:
        return None
    return (row[2] or None) if row else None


def ensure_schema(conn: sqlite3.Connection, component: str, migrations: Sequence[Sequence[str]]) -> None:
    """Apply `migrations[i]` (a list of statements) for every version i+1 not yet applied.

    Append new migrations; never edit old ones. Raises LedgerError.
    """
    ledger_call(connection_path(conn), lambda: _migrate(conn, component, migrations))


def _migrate(conn: sqlite3.Connection, component: str, migrations: Sequence[Sequence[str]]) -> None:
    row = conn.execute("SELECT version FROM ledger_schema WHERE component = ?", (component,)).fetchone()
    current = row[0] if row else 0
    for version, statements in enumerate(migrations, start=1):
        if version <= current:
            continue
        with conn:
            for stmt in statements:
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO ledger_schema(component, version) VALUES (?, ?) "
                "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                (component, version),
            )
