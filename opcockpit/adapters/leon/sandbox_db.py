"""Read-only reader of LEON's sandbox.db (leonai, Mycel and older schema variants).

`read_db_state(path)` loads what reconcile needs (leases, terminals, chat sessions, resource
snapshots) in one read transaction, one query per table. `SandboxDbReader` adds the on-demand
detail queries of the TUI (lease events, provider events, instance history, commands, ...).

Columns are selected by name after `PRAGMA table_info`, absent optional columns read as NULL, so
every variant maps onto the same dataclasses. Timestamps are normalised to aware UTC by
`opcockpit.domain.timeutil`. Reading never writes: see `_sqlite_ro` for the discipline and the WAL notes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, tzinfo
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite

from opcockpit.adapters.leon.sandbox_rows import (
    _CHUNK_COLS,
    _COMMAND_COLS,
    _INSTANCE_COLS,
    _LEASE_COLS,
    _LEASE_EVENT_COLS,
    _OFFLOOP_ROWS,
    _POINTER_COLS,
    _PROVIDER_EVENT_COLS,
    _SESSION_COLS,
    _SNAPSHOT_COLS,
    _SYNC_FILE_COLS,
    _TABLES_OF_INTEREST,
    _TERMINAL_COLS,
    _VOLUME_COLS,
    DEFAULT_BUSY_TIMEOUT_MS,
    DEFAULT_TAIL_BYTES,
    HINT,
    LABEL,
    REQUIRED_COLUMNS,
    Query,
    _chunks,
    _commands,
    _instances,
    _int0,
    _int_or_none,
    _is_decode_error,
    _lease_events,
    _leases,
    _lenient_text,
    _limit,
    _new_lease,
    _new_session,
    _new_snapshot,
    _new_terminal,
    _placeholders,
    _provider_events,
    _reuse,
    _Schema,
    _sessions,
    _snapshots,
    _str,
    _tail,
    _terminals,
    _utf8,
    _vetted,
    _where,
)
from opcockpit.adapters.leon.sqlite_ro import connect_ro, map_sqlite_error, precheck
from opcockpit.domain.gcpause import gc_paused
from opcockpit.domain.models import (
    ChatSessionRecord,
    CommandChunk,
    CommandOutput,
    DbState,
    InstanceHistoryRecord,
    LeaseEventRecord,
    LeaseRecord,
    ProviderEventRecord,
    SyncFileRecord,
    TerminalCommandRecord,
    TerminalRecord,
    ThreadPointerRecord,
    VolumeRecord,
)
from opcockpit.domain.timeutil import local_zone, make_parser, to_local_naive_iso
from opcockpit.ports.errors import SourceError

__all__ = ["REQUIRED_COLUMNS", "SandboxDbReader", "read_db_state"]

_T = TypeVar("_T")

# Compat: tests/test_fast_paths.py checks the row builders by their old home (sandbox_rows now).
_ROW_BUILDERS = (_new_lease, _new_terminal, _new_session, _new_snapshot)

# --------------------------------------------------------------------------- the reader


class SandboxDbReader:
    """Read-only connection to one sandbox.db; `async with SandboxDbReader(path) as r: ...`.

    Every method runs in its own read transaction (a consistent snapshot) and re-introspects the
    schema when `PRAGMA schema_version` changes (LEON creates some tables lazily).
    Errors surface as `SourceError`; nothing is ever written to the DB.
    """

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
        self._conn = await connect_ro(self._apath, LABEL, self.busy_timeout_ms)
        try:
            await self._snapshot(lambda s: [])  # validates the file and the schema now
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):  # a read-only connection has nothing to flush
                await conn.close()

    async def __aenter__(self) -> SandboxDbReader:
        return await self.open()

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def schema_variant(self) -> str | None:
        return self._schema.variant if self._schema else None

    @property
    def missing_tables(self) -> tuple[str, ...]:
        return self._schema.missing_tables if self._schema else ()

    # ---------------------------------------------------------------- plumbing

    def _err(self, exc: BaseException) -> SourceError:
        return map_sqlite_error(exc, self._apath, LABEL, self.busy_timeout_ms)

    async def _snapshot(self, build: Callable[[_Schema], list[Query]]) -> tuple[_Schema, list[list[tuple]]]:
        """Run the queries `build(schema)` returns inside one read transaction."""

        async def run(conn: aiosqlite.Connection, schema: _Schema) -> list[list[tuple]]:
            return [list(await conn.execute_fetchall(sql, params)) for sql, params in build(schema)]

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

    async def _convert(self, fn: Callable[[], Any], nrows: int) -> Any:
        if nrows > _OFFLOOP_ROWS:
            return await asyncio.to_thread(fn)
        return fn()

    def _local_iso(self, dt: datetime) -> str:
        return to_local_naive_iso(dt, self._tz if self._tz is not None else local_zone())

    # ---------------------------------------------------------------- reconcile input

    async def read_state(self, *, now: datetime | None = None) -> DbState:
        """Leases, terminals, chat sessions and resource snapshots, from one consistent snapshot."""
        ap = self._apath

        def build(s: _Schema) -> list[Query]:
            qs: list[Query] = [
                (s.select("sandbox_leases", _LEASE_COLS, ap), ()),
                (s.select("abstract_terminals", _TERMINAL_COLS, ap), ()),
            ]
            qs.append(
                (s.select("chat_sessions", _SESSION_COLS, ap), ())
                if s.has("chat_sessions")
                else ("SELECT 1 WHERE 0", ())
            )
            qs.append(
                (s.select("lease_resource_snapshots", _SNAPSHOT_COLS, ap), ())
                if s.has("lease_resource_snapshots")
                else ("SELECT 1 WHERE 0", ())
            )
            return qs

        # Fetching and converting ~50k rows allocates as many tuples and records: see gcpause.
        with gc_paused():
            schema, (lrows, trows, srows, rrows) = await self._snapshot(build)
            return await self._state(schema, lrows, trows, srows, rrows, now)

    async def _state(
        self,
        schema: _Schema,
        lrows: list[tuple],
        trows: list[tuple],
        srows: list[tuple],
        rrows: list[tuple],
        now: datetime | None,
    ) -> DbState:
        ap = self._apath
        p = self._parse
        read_at = now if now is not None else datetime.now(UTC)

        key = (ap, id(p))

        def convert() -> DbState:
            leases, terminals, sessions, lease_problems, problems = _vetted(
                schema,
                p,
                (lrows, _reuse((*key, "l"), lrows, _leases, p)),
                (trows, _reuse((*key, "t"), trows, _terminals, p)),
                (srows, _reuse((*key, "s"), srows, _sessions, p)),
            )
            return DbState(
                path=ap,
                schema_variant=schema.variant,
                read_at=read_at,
                leases=leases,
                terminals=terminals,
                chat_sessions=sessions,
                resource_snapshots=_snapshots(rrows, p),
                missing_tables=schema.missing_tables,
                lease_problems=lease_problems,
                problems=problems,
            )

        return await self._convert(convert, len(lrows) + len(trows) + len(srows))  # type: ignore[no-any-return]

    # ---------------------------------------------------------------- detail queries

    async def lease(self, lease_id: str) -> LeaseRecord | None:
        ap = self._apath
        _, (rows,) = await self._snapshot(
            lambda s: [(s.select("sandbox_leases", _LEASE_COLS, ap) + " WHERE lease_id = ?", (lease_id,))]
        )
        leases = _leases(rows, self._parse)
        return leases[0] if leases else None

    async def leases_by_ids(self, ids: Iterable[str]) -> list[LeaseRecord]:
        """The leases among `ids` that exist, in the order of `ids` (duplicates dropped)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        ap = self._apath

        def build(s: _Schema) -> list[Query]:
            base = s.select("sandbox_leases", _LEASE_COLS, ap)
            return [
                (f"{base} WHERE lease_id IN ({_placeholders(len(c))})", tuple(c)) for c in _chunks(wanted)
            ]

        _, results = await self._snapshot(build)
        by_id = {r.lease_id: r for rows in results for r in _leases(rows, self._parse)}
        return [by_id[i] for i in wanted if i in by_id]

    async def lease_events(
        self,
        lease_id: str | None = None,
        *,
        limit: int | None = 200,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[LeaseEventRecord]:
        """lease_events, newest first. `since`/`until` are inclusive and compared with LEON's
        local-time strings in SQL (exact for LEON-written rows)."""
        ap = self._apath
        where, params = self._time_filter(since, until)
        if lease_id is not None:
            where.insert(0, "lease_id = ?")
            params.insert(0, lease_id)

        def build(s: _Schema) -> list[Query]:
            if not s.has("lease_events"):
                return []
            ts = s.col("lease_events", "created_at")
            sql = s.select("lease_events", _LEASE_EVENT_COLS, ap) + _where(where, ts)
            return [(f"{sql} ORDER BY {ts} DESC, rowid DESC LIMIT ?", (*params, _limit(limit)))]

        _, results = await self._snapshot(build)
        return _lease_events(results[0], self._parse) if results else []

    async def provider_events(
        self,
        *,
        provider: str | None = None,
        lease_ids: Iterable[str] | None = None,
        instance_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = 500,
    ) -> list[ProviderEventRecord]:
        """Webhook log (`provider_events`), newest first; [] when LEON never created the table."""
        ap = self._apath
        where, params = self._time_filter(since, until)
        if provider is not None:
            where.append("provider_name = ?")
            params.append(provider)
        if instance_id is not None:
            where.append("instance_id = ?")
            params.append(instance_id)
        if lease_ids is not None:
            ids = list(dict.fromkeys(lease_ids))
            if not ids:
                return []
            # One IN list: operators filter by a handful of leases, not thousands.
            where.append(f"matched_lease_id IN ({_placeholders(len(ids))})")
            params.extend(ids)

        def build(s: _Schema) -> list[Query]:
            if not s.has("provider_events"):
                return []
            ts = s.col("provider_events", "created_at")
            sql = s.select("provider_events", _PROVIDER_EVENT_COLS, ap) + _where(where, ts)
            return [(f"{sql} ORDER BY {ts} DESC, event_id DESC LIMIT ?", (*params, _limit(limit)))]

        _, results = await self._snapshot(build)
        return _provider_events(results[0], self._parse) if results else []

    async def instance_history(self, lease_id: str) -> list[InstanceHistoryRecord]:
        """`sandbox_instances` rows of a lease, newest first."""
        ap = self._apath

        def build(s: _Schema) -> list[Query]:
            if not s.has("sandbox_instances"):
                return []
            sql = s.select("sandbox_instances", _INSTANCE_COLS, ap)
            ts = s.col("sandbox_instances", "created_at")
            return [(f"{sql} WHERE lease_id = ? ORDER BY {ts} DESC, rowid DESC", (lease_id,))]

        _, results = await self._snapshot(build)
        return _instances(results[0], self._parse) if results else []

    async def thread_terminals(self, thread_id: str) -> list[TerminalRecord]:
        """Terminals of a thread, newest first."""
        ap = self._apath
        _, (rows,) = await self._snapshot(
            lambda s: [
                (
                    s.select("abstract_terminals", _TERMINAL_COLS, ap)
                    + " WHERE thread_id = ?"
                    + f" ORDER BY {s.col('abstract_terminals', 'created_at')} DESC, rowid DESC",
                    (thread_id,),
                )
            ]
        )
        return _terminals(rows, self._parse)

    async def thread_sessions(self, thread_id: str) -> list[ChatSessionRecord]:
        """All chat sessions of a thread, closed ones included (with close_reason), newest first."""
        ap = self._apath

        def build(s: _Schema) -> list[Query]:
            if not s.has("chat_sessions"):
                return []
            sql = s.select("chat_sessions", _SESSION_COLS, ap)
            ts = s.col("chat_sessions", "started_at")
            return [(f"{sql} WHERE thread_id = ? ORDER BY {ts} DESC, rowid DESC", (thread_id,))]

        _, results = await self._snapshot(build)
        return _sessions(results[0], self._parse) if results else []

    async def terminal_commands(
        self, terminal_ids: Iterable[str], limit: int | None = 50
    ) -> list[TerminalCommandRecord]:
        """Commands of the given terminals, newest first, at most `limit` in total (no stdout/stderr)."""
        ids = [terminal_ids] if isinstance(terminal_ids, str) else list(dict.fromkeys(terminal_ids))
        if not ids:
            return []
        ap = self._apath

        def build(s: _Schema) -> list[Query]:
            if not s.has("terminal_commands"):
                return []
            sql = (
                s.select("terminal_commands", _COMMAND_COLS, ap)
                + f" WHERE terminal_id IN ({_placeholders(len(ids))})"
                + f" ORDER BY {s.col('terminal_commands', 'created_at')} DESC, rowid DESC LIMIT ?"
            )
            return [(sql, (*ids, _limit(limit)))]

        _, results = await self._snapshot(build)
        return _commands(results[0], self._parse) if results else []

    async def thread_pointer(self, thread_id: str) -> ThreadPointerRecord | None:
        """The thread's `thread_terminal_pointers` row (active/default terminal), None if absent."""
        ap = self._apath

        def build(s: _Schema) -> list[Query]:
            if not s.has("thread_terminal_pointers"):
                return []
            return [
                (
                    s.select("thread_terminal_pointers", _POINTER_COLS, ap) + " WHERE thread_id = ?",
                    (thread_id,),
                )
            ]

        _, results = await self._snapshot(build)
        if not results or not results[0]:
            return None
        a, b, c, d = results[0][0]
        return ThreadPointerRecord(_utf8(a), _str(b), _str(c), self._parse(d))

    async def command_output(
        self, command_id: str, *, tail_bytes: int | None = DEFAULT_TAIL_BYTES
    ) -> CommandOutput:
        """A command's output in chunk order, at most its last `tail_bytes` bytes (None/<=0: all).

        `terminal_command_chunks` hold the full streams; a command without chunks (a synchronous
        result stored whole, or a DB without the chunks table) falls back to the stdout/stderr
        tails in `terminal_commands`. Chunk and command row come from one read transaction.
        """
        ap = self._apath
        limit = _limit(tail_bytes)

        def build(s: _Schema) -> list[Query]:
            qs: list[Query] = []
            if s.has("terminal_commands"):
                cols = (*_COMMAND_COLS, "stdout", "stderr")
                qs.append((s.select("terminal_commands", cols, ap) + " WHERE command_id = ?", (command_id,)))
            else:
                qs.append(("SELECT 1 WHERE 0", ()))
            if s.has("terminal_command_chunks"):
                t = "terminal_command_chunks"
                sel = ", ".join(f"{s.col(t, c)} AS c{i}" for i, c in enumerate(_CHUNK_COLS))
                order = s.col("terminal_command_chunks", "chunk_id")
                if order == "NULL":
                    order = "rowid"
                size = "length(CAST(content AS BLOB))"
                # Newest-first running byte sum: keep the chunks that reach back to `limit` bytes
                # (the oldest kept one may be cut below), so a chatty build never loads whole.
                qs.append(
                    (
                        "SELECT c0, c1, c2, c3, total FROM ("
                        f"SELECT {sel}, {order} AS k, SUM({size}) OVER (ORDER BY {order} DESC"
                        f" ROWS UNBOUNDED PRECEDING) - {size} AS after, SUM({size}) OVER () AS total"
                        " FROM terminal_command_chunks WHERE command_id = ?)"
                        " WHERE ? < 0 OR after < ? ORDER BY k",
                        (command_id, limit, limit),
                    )
                )
            return qs

        _, results = await self._snapshot(build)
        cmd_rows = results[0]
        chunk_rows = results[1] if len(results) > 1 else []
        p = self._parse
        command = _commands([r[:10] for r in cmd_rows], p)[0] if cmd_rows else None
        if chunk_rows:
            chunks = [
                CommandChunk(_int_or_none(a), b or "stdout", _utf8(c), p(d)) for a, b, c, d, _ in chunk_rows
            ]
            total = _int0(chunk_rows[0][4])
            truncated = limit >= 0 and total > limit
            if truncated:
                kept = sum(len(c.content.encode("utf-8", "surrogatepass")) for c in chunks[1:])
                first = chunks[0]
                text, _ = _tail(first.content, max(limit - kept, 0))
                chunks[0] = CommandChunk(first.chunk_id, first.stream, text, first.created_at)
            return CommandOutput(command_id, command, tuple(chunks), "chunks", truncated)
        tails: list[CommandChunk] = []
        truncated = False
        if cmd_rows:
            for stream, raw in (("stdout", cmd_rows[0][10]), ("stderr", cmd_rows[0][11])):
                text, cut = _tail(_utf8(raw), limit)
                truncated |= cut
                if text:
                    tails.append(CommandChunk(None, stream, text, None))
        return CommandOutput(command_id, command, tuple(tails), "tails" if tails else "none", truncated)

    async def volumes(self, volume_ids: Iterable[str] | None = None) -> list[VolumeRecord]:
        """Mycel `sandbox_volumes` (all, or those among `volume_ids`), oldest first; [] elsewhere."""
        ids = None if volume_ids is None else list(dict.fromkeys(volume_ids))
        if ids is not None and not ids:
            return []
        ap = self._apath

        def build(s: _Schema) -> list[Query]:
            if not s.has("sandbox_volumes"):
                return []
            sql = s.select("sandbox_volumes", _VOLUME_COLS, ap)
            order = f" ORDER BY {s.col('sandbox_volumes', 'created_at')}, volume_id"
            if ids is None:
                return [(sql + order, ())]
            return [
                (f"{sql} WHERE volume_id IN ({_placeholders(len(c))}){order}", tuple(c)) for c in _chunks(ids)
            ]

        _, results = await self._snapshot(build)
        p = self._parse
        return [VolumeRecord(_utf8(a), _str(b), _utf8(c), p(d)) for rows in results for a, b, c, d in rows]

    async def sync_files(self, thread_id: str) -> list[SyncFileRecord]:
        """Mycel `sync_files` of a thread, by path; [] when the table does not exist."""
        ap = self._apath

        def build(s: _Schema) -> list[Query]:
            if not s.has("sync_files"):
                return []
            sql = s.select("sync_files", _SYNC_FILE_COLS, ap)
            return [(f"{sql} WHERE thread_id = ? ORDER BY relative_path", (thread_id,))]

        _, results = await self._snapshot(build)
        p = self._parse  # last_synced is epoch seconds (INTEGER); the parser handles it
        rows = results[0] if results else []
        return [SyncFileRecord(_utf8(a), _utf8(b), _str(c), p(d)) for a, b, c, d in rows]

    async def threads_for_lease(self, lease_id: str) -> list[str]:
        """Threads bound to a lease: through abstract_terminals first (newest terminal first), then
        threads known only from chat_sessions (terminals deleted with the thread; newest first)."""

        def build(s: _Schema) -> list[Query]:
            qs: list[Query] = [
                (
                    "SELECT thread_id FROM abstract_terminals WHERE lease_id = ? "
                    f"ORDER BY {s.col('abstract_terminals', 'created_at')} DESC, rowid DESC",
                    (lease_id,),
                )
            ]
            if s.has("chat_sessions"):
                qs.append(
                    (
                        "SELECT thread_id FROM chat_sessions WHERE lease_id = ? "
                        f"ORDER BY {s.col('chat_sessions', 'started_at')} DESC, rowid DESC",
                        (lease_id,),
                    )
                )
            return qs

        _, results = await self._snapshot(build)
        return list(dict.fromkeys(r[0] for rows in results for r in rows if r[0] is not None))

    async def find_leases(self, prefix: str) -> list[LeaseRecord]:
        """Leases whose lease_id, current_instance_id or bound thread_id starts with `prefix`.

        Exact matches win: if any id equals `prefix`, only those leases are returned. The caller
        decides what to do with 0 or >1 matches (e.g. "ambiguous prefix"). Ordered by lease_id.
        """
        prefix = prefix.strip()
        if not prefix:
            return []
        ap = self._apath
        n = len(prefix)

        def build(s: _Schema) -> list[Query]:
            base = s.select("sandbox_leases", _LEASE_COLS, ap)
            cond = "substr(lease_id, 1, ?) = ?"
            if "current_instance_id" in s.tables["sandbox_leases"]:
                cond += " OR substr(current_instance_id, 1, ?) = ?"
            params = tuple(v for _ in range(cond.count("substr")) for v in (n, prefix))
            return [
                (
                    f"{base} WHERE {cond} OR lease_id IN (SELECT lease_id FROM abstract_terminals "
                    "WHERE substr(thread_id, 1, ?) = ?) ORDER BY lease_id",
                    (*params, n, prefix),
                ),
                (
                    "SELECT DISTINCT lease_id, thread_id FROM abstract_terminals"
                    " WHERE substr(thread_id, 1, ?) = ?",
                    (n, prefix),
                ),
            ]

        _, (rows, thread_rows) = await self._snapshot(build)
        leases = _leases(rows, self._parse)
        exact_threads = {lid for lid, tid in thread_rows if tid == prefix}
        exact = [
            r
            for r in leases
            if r.lease_id == prefix or r.current_instance_id == prefix or r.lease_id in exact_threads
        ]
        return exact or leases

    # ---------------------------------------------------------------- helpers

    def _time_filter(self, since: datetime | None, until: datetime | None) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if since is not None:
            where.append("{ts} >= ?")
            params.append(self._local_iso(since))
        if until is not None:
            where.append("{ts} <= ?")
            params.append(self._local_iso(until))
        return where, params


async def read_db_state(
    path: str,
    *,
    now: datetime | None = None,
    local_tz: tzinfo | None = None,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
) -> DbState:
    """Open `path` read-only, read the reconcile input, close. Raises SourceError on bad input."""
    async with SandboxDbReader(path, local_tz=local_tz, busy_timeout_ms=busy_timeout_ms) as reader:
        return await reader.read_state(now=now)
