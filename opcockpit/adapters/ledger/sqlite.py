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


def is_db_error(exc: BaseException) -> bool:
    """sqlite3 / OS / psycopg errors: the ledger is unusable (psycopg is never imported for it)."""
    if isinstance(exc, (sqlite3.Error, OSError)):
        return True
    return any(c.__module__.split(".")[0] == "psycopg" for c in type(exc).__mro__)


def reason(exc: BaseException) -> str:
    """One scrubbed line: psycopg's connection errors are multi-line and may quote the DSN."""
    from opcockpit.domain.secrets import scrub

    text = str(exc) or type(exc).__name__
    return scrub(" ".join(text.split()))


_reason = reason
_is_db_error = is_db_error


def _shown(path: object) -> str | None:
    """What a LedgerError names: a path, or a URL with its password masked."""
    if path is None:
        return None
    from opcockpit.domain.secrets import redact_url

    text = str(path)
    return redact_url(text) if "://" in text else text


def ledger_call(path: object, fn: Callable[[], R]) -> R:
    """`fn()`, with every sqlite3/OS error it raises turned into LedgerError(path, reason)."""
    try:
        return fn()
    except LedgerError:
        raise
    except Exception as exc:
        if not _is_db_error(exc):
            raise
        raise LedgerError(_shown(path), _reason(exc)) from exc


def guarded(method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
    """Method decorator for ledger stores: sqlite3/OS errors -> LedgerError(self.path, reason)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except LedgerError:
            raise
        except Exception as exc:  # sqlite3 / OS / psycopg errors only; a bug stays a bug
            if not _is_db_error(exc):
                raise
            raise LedgerError(_shown(getattr(self, "path", None)), _reason(exc)) from exc

    return wrapper


def default_ledger_path() -> Path:
    """$OPCOCKPIT_LEDGER, else <XDG data dir>/opcockpit/ledger.db.

    When $OPCOCKPIT_LEDGER holds a postgresql:// URL (backend.LedgerTarget reads it), this is the
    XDG file: the components that are SQLite-only so far keep their tables there."""
    override = os.environ.get(LEDGER_ENV)
    if override and "://" not in override:
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
