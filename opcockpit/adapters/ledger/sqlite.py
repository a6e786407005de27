"""The cockpit's own SQLite ledger (audit log, alert state, ack/mute) in the XDG data dir.

Never the platform's DB: this file belongs to opcockpit. Each component (audit, alerts, ...) owns
its tables and registers its DDL here with a version, so components evolve independently.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

LEDGER_ENV = "OPCOCKPIT_LEDGER"


class LedgerError(Exception):
    """The ledger file cannot be opened, read or written (corrupt, read-only, locked, ...).

    Distinct from `sources.errors.SourceError` (sandbox.db / events.db): the fleet view never
    depends on the ledger. `str()` is one line naming the file.
    """

    def __init__(self, path: str | os.PathLike[str] | None, message: str) -> None:
        self.path = None if path is None else str(path)
        self.message = " ".join(message.split())
        super().__init__(self.message)

    def __str__(self) -> str:
        where = self.path or "(path unknown)"
        return f"cockpit ledger {where} is unusable: {self.message}"


def default_ledger_path() -> Path:
    """$OPCOCKPIT_LEDGER, else <XDG data dir>/opcockpit/ledger.db."""
    override = os.environ.get(LEDGER_ENV)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_path

    return user_data_path("opcockpit", appauthor=False) / "ledger.db"


def open_ledger(path: str | os.PathLike[str] | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the ledger with WAL and a busy timeout; autocommit off."""
    target = Path(path) if path is not None else default_ledger_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(target, timeout=5.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS ledger_schema ( component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    conn.commit()
    return conn


def ensure_schema(conn: sqlite3.Connection, component: str, migrations: Sequence[Sequence[str]]) -> None:
    """Apply `migrations[i]` (a list of statements) for every version i+1 not yet applied.

    Append new migrations; never edit old ones.
    """
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
