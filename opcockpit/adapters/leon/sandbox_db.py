"""Read-only reader of LEON's sandbox.db (leonai, Mycel and older schema variants).

`read_db_state(path)` loads what reconcile needs (leases, terminals, chat sessions, resource
snapshots) in one read transaction, one query per table. `SandboxDbReader` adds the on-demand
detail queries of the TUI (lease events, provider events, instance history, commands, ...).

The queries, row builders and bad-row vetting are shared with the PostgreSQL source
(`reader_base.LeonReaderBase` over `dialect.SQLITE`); this module is the SQLite half: the
connection, the read transaction and the schema introspection.

Columns are selected by name after `PRAGMA table_info`, absent optional columns read as NULL, so
every variant maps onto the same dataclasses. Timestamps are normalised to aware UTC by
`opcockpit.domain.timeutil`. Reading never writes: see `sqlite_ro` for the discipline and the WAL notes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import datetime, tzinfo
from typing import Any, TypeVar

import aiosqlite

from opcockpit.adapters.leon.dialect import SQLITE, Q
from opcockpit.adapters.leon.reader_base import LeonReaderBase
from opcockpit.adapters.leon.sandbox_rows import (
    _LEASE_COLS,
    _SESSION_COLS,
    _SNAPSHOT_COLS,
    _TABLES_OF_INTEREST,
    _TERMINAL_COLS,
    DEFAULT_BUSY_TIMEOUT_MS,
    HINT,
    LABEL,
    REQUIRED_COLUMNS,
    _is_decode_error,
    _lenient_text,
    _new_lease,
    _new_session,
    _new_snapshot,
    _new_terminal,
    _Schema,
)
from opcockpit.adapters.leon.sandbox_rows_once import ONE_SHOT_BUILDERS
from opcockpit.adapters.leon.sqlite_ro import connect_ro, connect_ro_now, map_sqlite_error, precheck
from opcockpit.adapters.sync_drive import drive
from opcockpit.domain.models import DbState
from opcockpit.domain.timeutil import make_parser
from opcockpit.ports.errors import SourceError

__all__ = ["REQUIRED_COLUMNS", "SandboxDbReader", "read_db_state"]

_T = TypeVar("_T")

# Compat: tests/test_fast_paths.py checks the row builders and select lists by their old home.
_ROW_BUILDERS = (_new_lease, _new_terminal, _new_session, _new_snapshot)
_SELECT_LISTS = (_LEASE_COLS, _TERMINAL_COLS, _SESSION_COLS, _SNAPSHOT_COLS)


class SandboxDbReader(LeonReaderBase):
    """Read-only connection to one sandbox.db; `async with SandboxDbReader(path) as r: ...`.

    Every method runs in its own read transaction (a consistent snapshot) and re-introspects the
    schema when `PRAGMA schema_version` changes (LEON creates some tables lazily).
    Errors surface as `SourceError`; nothing is ever written to the DB.
    """

    dialect = SQLITE

    def __init__(
        self,
        path: str,
        *,
        local_tz: tzinfo | None = None,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    ) -> None:
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._tz = local_tz
        self._parse = make_parser(local_tz)
        self._apath = self.path
        self._conn: aiosqlite.Connection | None = None
        self._schema: _Schema | None = None
        # One connection: concurrent callers (the TUI loads details while a refresh reads) take
        # turns, else the second BEGIN fails with "cannot start a transaction within a transaction".
        self._turn: asyncio.Lock | None = None

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> SandboxDbReader:
        self._apath = precheck(self.path, LABEL, HINT)
        self._conn = await self._connect()
        try:
            await self._snapshot(lambda s: [])  # validates the file and the schema now
        except BaseException:
            await self.close()
            raise
        return self

    async def _connect(self) -> aiosqlite.Connection:
        """The read-only connection `open` validates (`_OneShotReader`: a plain sqlite3 one)."""
        return await connect_ro(self._apath, LABEL, self.busy_timeout_ms)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):  # a read-only connection has nothing to flush
                await conn.close()

    # ---------------------------------------------------------------- plumbing

    def _err(self, exc: BaseException) -> SourceError:
        return map_sqlite_error(exc, self._apath, LABEL, self.busy_timeout_ms)

    async def _snapshot(self, build: Callable[[_Schema], list[Q]]) -> tuple[_Schema, list[list[tuple]]]:
        """Run the queries `build(schema)` returns inside one read transaction."""

        async def run(conn: aiosqlite.Connection, schema: _Schema) -> list[list[tuple]]:
            return [list(await conn.execute_fetchall(q[0], q[1])) for q in build(schema)]

        return await self._transaction(run)

    async def _transaction(
        self, fn: Callable[[aiosqlite.Connection, _Schema], Awaitable[_T]]
    ) -> tuple[_Schema, _T]:
        """Run `fn(conn, schema)` inside one read transaction (a consistent snapshot), with the
        schema re-introspected when `PRAGMA schema_version` moved. Retried once with lenient
        text decoding when a TEXT value is not UTF-8. Callers take turns on the connection."""
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            return await self._transaction_now(fn)

    @staticmethod
    async def _begin(conn: aiosqlite.Connection) -> None:
        """BEGIN a read transaction. A caller cancelled while its BEGIN was queued (the TUI cancels
        a detail load when the cursor moves) can leave one open with no COMMIT to follow: end it
        and begin ours (a read transaction holds nothing worth keeping)."""
        try:
            await conn.execute("BEGIN")
        except sqlite3.OperationalError as exc:
            if "within a transaction" not in str(exc):
                raise
            await conn.execute("COMMIT")
            await conn.execute("BEGIN")

    async def _transaction_now(
        self, fn: Callable[[aiosqlite.Connection, _Schema], Awaitable[_T]]
    ) -> tuple[_Schema, _T]:
        conn = self._conn
        if conn is None:
            raise RuntimeError("SandboxDbReader is not open; use `async with SandboxDbReader(path)`")
        try:
            await self._begin(conn)
            try:
                rows = await conn.execute_fetchall("PRAGMA schema_version")
                version = int(next(iter(rows))[0])
                if self._schema is None or self._schema.version != version:
                    self._schema = await self._introspect(conn, version)
                schema = self._schema
                results = await fn(conn, schema)
            finally:
                # Ends the read transaction; on the error path it may already be gone.
                with contextlib.suppress(sqlite3.Error):
                    await conn.execute("COMMIT")
        except SourceError:
            raise
        except sqlite3.Error as exc:
            if _is_decode_error(exc) and conn.text_factory is str:
                # TEXT that is not UTF-8 fails the whole fetch; decode leniently (U+FFFD for bad
                # bytes) from now on. Only odd DBs pay the Python-level decoder.
                conn.text_factory = _lenient_text
                return await self._transaction_now(fn)
            raise self._err(exc) from None
        return schema, results

    async def _introspect(self, conn: aiosqlite.Connection, version: int) -> _Schema:
        names = [
            r[0]
            for r in await conn.execute_fetchall(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
            )
        ]
        all_tables = frozenset(names)
        tables: dict[str, frozenset[str]] = {}
        for t in _TABLES_OF_INTEREST:
            if t in all_tables:
                info = await conn.execute_fetchall(f'PRAGMA table_info("{t}")')
                tables[t] = frozenset(r[1] for r in info)
        if "sandbox_leases" not in tables:
            if not names:
                what = "an empty SQLite database (no tables)"
            else:
                shown = ", ".join(sorted(names)[:8]) + (", ..." if len(names) > 8 else "")
                what = f"a SQLite database without a sandbox_leases table (tables: {shown})"
            raise SourceError(
                "not_leon",
                f"sandbox.db at {self._apath} is {what}: not a LEON sandbox.db; {HINT}",
                path=self._apath,
            )
        if "abstract_terminals" not in tables:
            raise SourceError(
                "schema",
                f"sandbox.db at {self._apath} has sandbox_leases but no abstract_terminals table; "
                "LEON creates both together, so this schema is not one opcockpit understands",
                path=self._apath,
            )
        schema = _Schema(version, tables, all_tables)
        # Fail loudly now, like LEON's REQUIRED_*_COLUMNS checks, for the tables reconcile needs.
        for t in ("sandbox_leases", "abstract_terminals", "chat_sessions"):
            if t in tables:
                schema.select(t, (), self._apath)
        return schema


async def read_db_state(
    path: str,
    *,
    now: datetime | None = None,
    local_tz: tzinfo | None = None,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    one_shot: bool = False,
) -> DbState:
    """Open `path` read-only, read the reconcile input, close. Raises SourceError on bad input.

    `one_shot` (the `snapshot` command): the same records, read for a process that prints them
    and exits: the whole read runs in one worker thread on a plain sqlite3 connection (one hop
    instead of ~25 aiosqlite round trips, which a loaded machine makes slow) and their text is
    not interned (~0.1 s less at 10k leases; the live cockpit keeps both for issue 10)."""
    if one_shot:
        return await asyncio.to_thread(
            read_state_now, path, now=now, local_tz=local_tz, busy_timeout_ms=busy_timeout_ms
        )
    async with SandboxDbReader(path, local_tz=local_tz, busy_timeout_ms=busy_timeout_ms) as reader:
        return await reader.read_state(now=now)


def read_state_now(
    path: str,
    *,
    now: datetime | None = None,
    local_tz: tzinfo | None = None,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
) -> DbState:
    """read_db_state(one_shot=True) in the calling thread (blocking): the very reader code,
    driven over a plain sqlite3 connection (see `_OneShotReader`)."""
    reader = _OneShotReader(path, local_tz=local_tz, busy_timeout_ms=busy_timeout_ms)
    _drive(reader.open())
    try:
        return _drive(reader.read_state(now=now))  # type: ignore[no-any-return]
    finally:
        _drive(reader.close())


def _drive(coro: Coroutine[Any, Any, _T]) -> _T:
    return drive(coro, "the one-shot sandbox.db reader")


class _SyncConnection:
    """The part of aiosqlite.Connection the reader awaits, over a plain sqlite3 connection: each
    call completes at once, in the calling thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def text_factory(self) -> Any:
        return self._conn.text_factory

    @text_factory.setter
    def text_factory(self, factory: Any) -> None:
        self._conn.text_factory = factory

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._conn.execute(sql, params).fetchall()

    async def close(self) -> None:
        self._conn.close()


class _OneShotReader(SandboxDbReader):
    """SandboxDbReader on `_SyncConnection`, converting in place, text not interned."""

    _builders = ONE_SHOT_BUILDERS

    async def _connect(self) -> Any:
        return _SyncConnection(connect_ro_now(self._apath, LABEL, self.busy_timeout_ms))

    async def _convert(self, fn: Callable[[], Any], nrows: int) -> Any:
        return fn()  # already off the event loop: the whole read runs in one worker thread
