"""Read the stored picture's fingerprint (domain/picture_mark.py) from a SQLite ledger file, alone.

`EventLog.last_picture()` loads every entry (10k+ rows, JSON-decoded); a one-shot `snapshot` only
needs the one entry under `MARK_KEY` to learn whether anything changed (issue 9). The mark is
written by the history service through `EventLog.append(picture=...)`, in the same transaction as
the entries it describes; this module only reads it, over its own read-only connection (the
ledger file is never created, migrated or written here).

Anything unexpected (no file, no table yet, a locked or broken file, a PostgreSQL ledger) reads as
"no mark": the caller then takes the full path, which reports ledger problems properly.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from opcockpit.domain.picture_mark import MARK_KEY

__all__ = ["read_mark"]

_BUSY_MS = 2000  # a writer commits in milliseconds; past this, the full path decides


def read_mark(path: str | os.PathLike[str] | None) -> str | None:
    """The mark stored in the ledger file at `path`, or None (none, unreadable, not SQLite)."""
    if path is None or not Path(path).is_file():
        return None
    try:
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_MS / 1000, isolation_level=None)
    except (sqlite3.Error, OSError, ValueError):
        return None
    try:
        row = conn.execute("SELECT value FROM event_picture WHERE key = ?", (MARK_KEY,)).fetchone()
    except sqlite3.Error:  # not a ledger yet (no table), locked past the timeout, not a database
        return None
    finally:
        conn.close()
    if row is None or not isinstance(row[0], str):
        return None
    try:
        value = json.loads(row[0])
    except ValueError:
        return None
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return None
