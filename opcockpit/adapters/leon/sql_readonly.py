"""The Explore SQL mode: one read-only SELECT over sandbox.db (main), events.db (`events`) and the
cockpit ledger (`ledger`), each attached with a `mode=ro` URI.

Four guards, so a statement that would write is refused before it changes anything:
1. every file is opened `mode=ro` (SQLite itself cannot write them);
2. `PRAGMA query_only=1`;
3. an authorizer that allows only reads (SELECT, column reads, functions, recursive CTEs):
   INSERT/UPDATE/DELETE/CREATE/DROP/PRAGMA/ATTACH/... are denied while the statement is prepared,
   i.e. before it runs;
4. one statement only (sqlite3 refuses a second one).
A progress handler interrupts a statement past its time budget; rows beyond the limit are not read.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from opcockpit.adapters.leon.sqlite_ro import map_sqlite_error, precheck
from opcockpit.ports.explore import SqlRefused, SqlResult

__all__ = ["ReadOnlySql"]

_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}
_ALLOWED.add(getattr(sqlite3, "SQLITE_RECURSIVE", 33))
_ACTIONS = (
    "CREATE_INDEX CREATE_TABLE CREATE_TEMP_INDEX CREATE_TEMP_TABLE CREATE_TEMP_TRIGGER CREATE_TEMP_VIEW"
    " CREATE_TRIGGER CREATE_VIEW DELETE DROP_INDEX DROP_TABLE DROP_TEMP_INDEX DROP_TEMP_TABLE"
    " DROP_TEMP_TRIGGER DROP_TEMP_VIEW DROP_TRIGGER DROP_VIEW INSERT PRAGMA TRANSACTION UPDATE ATTACH"
    " DETACH ALTER_TABLE REINDEX ANALYZE CREATE_VTABLE DROP_VTABLE SAVEPOINT"
)
_ACTION_NAMES = {
    getattr(sqlite3, "SQLITE_" + n): n.lower().replace("_", " ")
    for n in _ACTIONS.split()
    if hasattr(sqlite3, "SQLITE_" + n)
}
_PROGRESS_OPS = 20_000  # VM instructions between deadline checks (~ms)


def _uri(path: str) -> str:
    return "file:" + quote(path, safe="/") + "?mode=ro"


class ReadOnlySql:
    """`execute(sql, params, limit=, timeout_s=)` -> SqlResult; SqlRefused for a refused or stopped
    statement, SourceError for a file that cannot be read."""

    def __init__(
        self, sandbox_db: str, events_db: str | None = None, ledger: str | os.PathLike[str] | None = None
    ):
        self.sandbox_db = str(sandbox_db)
        self.events_db = None if events_db is None else str(events_db)
        self.ledger = None if ledger is None else str(ledger)

    def _connect(self) -> sqlite3.Connection:
        apath = precheck(self.sandbox_db, "sandbox.db", "check --db or the config")
        try:
            conn = sqlite3.connect(_uri(apath), uri=True, timeout=2.0, check_same_thread=False)
        except sqlite3.Error as exc:
            raise map_sqlite_error(exc, apath, "sandbox.db", 2000) from None
        try:
            if self.events_db is not None:
                epath = precheck(self.events_db, "events.db", "check --events-db or the config")
                conn.execute("ATTACH DATABASE ? AS events", (_uri(epath),))
            if self.ledger is not None and os.path.exists(self.ledger):
                conn.execute("ATTACH DATABASE ? AS ledger", (_uri(os.path.abspath(self.ledger)),))
            conn.execute("PRAGMA query_only=1")
        except sqlite3.Error as exc:
            conn.close()
            raise map_sqlite_error(exc, apath, "sandbox.db", 2000) from None
        except BaseException:
            conn.close()
            raise
        conn.text_factory = lambda b: b.decode("utf-8", "replace")
        return conn

    def execute(
        self,
        sql: str,
        params: Mapping[str, Any] | Sequence[Any] = (),
        *,
        limit: int = 1000,
        timeout_s: float = 5.0,
    ) -> SqlResult:
        if not sql.strip():
            raise SqlRefused("empty SQL statement")
        conn = self._connect()
        denied: list[str] = []

        def authorize(action: int, a1: Any, a2: Any, db: Any, trigger: Any) -> int:
            if action in _ALLOWED:
                return sqlite3.SQLITE_OK
            denied.append(_ACTION_NAMES.get(action, str(action)) + (f" {a1}" if a1 else ""))
            return sqlite3.SQLITE_DENY

        deadline = time.monotonic() + timeout_s
        conn.set_authorizer(authorize)
        conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, _PROGRESS_OPS)
        try:
            cur = conn.execute(sql, params)
            rows = cur.fetchmany(limit + 1)
            columns = tuple(d[0] for d in cur.description or ())
        except sqlite3.ProgrammingError as exc:
            if "one statement" in str(exc):
                raise SqlRefused(
                    "the SQL mode runs one statement at a time; remove the extra ';' part"
                ) from None
            raise SqlRefused(f"SQL refused: {' '.join(str(exc).split())}") from None
        except sqlite3.DatabaseError as exc:
            msg = " ".join(str(exc).split())
            if denied:
                raise SqlRefused(
                    f"refused before it ran: the SQL mode is read-only ({denied[0]} is not allowed);"
                    " nothing changed"
                ) from None
            if "interrupted" in msg:
                raise SqlRefused(
                    f"stopped after {timeout_s:g}s (the SQL mode's time limit); narrow the query or add LIMIT"
                ) from None
            if "readonly" in msg or "read-only" in msg or "query_only" in msg:
                raise SqlRefused(f"refused: the SQL mode is read-only ({msg}); nothing changed") from None
            raise SqlRefused(f"SQL error: {msg}") from None
        finally:
            conn.set_progress_handler(None, 0)
            conn.close()
        capped = len(rows) > limit
        return SqlResult(columns, rows[:limit], capped, limit)
