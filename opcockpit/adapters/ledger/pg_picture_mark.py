"""Read the stored picture's fingerprint (domain/picture_mark.py) from a PostgreSQL ledger, alone.

The PostgreSQL twin of `picture_mark.read_mark` (issue 12: the snapshot's budget with the ledger on
PostgreSQL). Without it a one-shot `snapshot` on a PostgreSQL ledger loads and diffs the whole
stored picture (10k+ rows: ~0.1 s at 10k leases) to learn that nothing changed; with it, one
short session reads the one entry under `MARK_KEY`.

The session is read-only (`default_transaction_read_only`), autocommit (one statement, no
transaction left open) and short-timed: this module never creates, migrates or writes the ledger.
Anything unexpected (server down, no table yet, no such role, a broken value) reads as "no mark":
the caller then takes the full path, which reports ledger problems properly. The URL's password
never leaves this module (no exception text is kept).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from opcockpit.domain.picture_mark import MARK_KEY

__all__ = ["PrefetchedMarkReader", "read_mark_pg"]

CONNECT_TIMEOUT_S = 5
# A writer commits in milliseconds; past this the full path decides (and reports what is wrong).
STATEMENT_TIMEOUT_MS = 2000


def read_mark_pg(url: str | None) -> str | None:
    """The mark stored in the PostgreSQL ledger at `url`, or None (none, unreachable, not a ledger)."""
    if not url:
        return None
    conn = _connect(url)
    return _read_on(conn) if conn is not None else None


class PrefetchedMarkReader:
    """`read_mark_pg(url)` whose session is opened ahead, in a daemon thread started when it is
    built (the one-shot cockpit is built before it reads its source): the mark is still read
    when asked, in one round trip, but the connection (a backend fork and a SCRAM exchange,
    ~10-20 ms) is no longer on the snapshot's path. Each later call reads on a session of its own.
    A session that could not be opened reads as "no mark", as `read_mark_pg` does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._thread: threading.Thread | None = threading.Thread(
            target=self._open, name="opcockpit-mark-connect", daemon=True
        )
        self._thread.start()

    def _open(self) -> None:
        self._conn = _connect(self.url)

    def __call__(self) -> str | None:
        thread, self._thread = self._thread, None
        if thread is None:
            return read_mark_pg(self.url)
        thread.join()  # bounded by CONNECT_TIMEOUT_S
        conn, self._conn = self._conn, None
        return _read_on(conn) if conn is not None else None


def _connect(url: str) -> Any:
    """A read-only, autocommit, short-timed session on the ledger, or None (no exception kept:
    its text may hold the URL)."""
    try:
        from opcockpit.adapters.lean_psycopg import psycopg
    except ImportError:  # pragma: no cover - psycopg is a runtime dependency
        return None
    try:
        return psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name="opcockpit-mark",
            options=f"-c default_transaction_read_only=on -c statement_timeout={STATEMENT_TIMEOUT_MS}",
        )
    except Exception:  # psycopg.Error, OSError: no mark; the full path reports the ledger's state
        return None


def _read_on(conn: Any) -> str | None:
    """The mark read on `conn`, which is closed after."""
    try:
        with conn:
            row = conn.execute("SELECT value FROM event_picture WHERE key = %s", (MARK_KEY,)).fetchone()
    except Exception:  # no table yet, a dropped session, ...: no mark
        return None
    return _mark_of(row[0] if row is not None else None)


def _mark_of(value: Any) -> str | None:
    """The mark in a stored picture entry (JSON text of a one-string list), or None."""
    if not isinstance(value, str):
        return None
    try:
        entry = json.loads(value)
    except ValueError:
        return None
    if isinstance(entry, list) and entry and isinstance(entry[0], str):
        return entry[0]
    return None
