"""LEON's detail queries written once, over either dialect (`dialect.SQLITE` for sandbox.db,
`dialect.POSTGRES` for Mycel's tables): the lease, its events and instances, a thread's terminals,
sessions, commands and their output, volumes and synced files, lookups by id prefix.

`LeonDetailQueries` needs `_snapshot(build)` from the reader (`reader_base.LeonReaderBase` and
its two concrete readers): it runs the `Q`s `build(schema)` returns in one read-only snapshot and
returns the rows as SQLite would have (the PostgreSQL reader converts its types first), so the
row builders of `sandbox_rows` serve both sources.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, ClassVar

from opcockpit.adapters.leon.dialect import Dialect, Q
from opcockpit.adapters.leon.sandbox_rows import (
    _CHUNK_COLS,
    _COMMAND_COLS,
    _INSTANCE_COLS,
    _LEASE_COLS,
    _LEASE_EVENT_COLS,
    _POINTER_COLS,
    _PROVIDER_EVENT_COLS,
    _SESSION_COLS,
    _SYNC_FILE_COLS,
    _TERMINAL_COLS,
    _VOLUME_COLS,
    DEFAULT_TAIL_BYTES,
    _commands,
    _instances,
    _int0,
    _int_or_none,
    _lease_events,
    _leases,
    _provider_events,
    _Schema,
    _sessions,
    _str,
    _tail,
    _terminals,
    _utf8,
    _where,
)
from opcockpit.domain.models import (
    ChatSessionRecord,
    LeaseEventRecord,
    LeaseRecord,
    ProviderEventRecord,
    TerminalRecord,
)
from opcockpit.domain.timeutil import local_zone, to_local_naive_iso

if TYPE_CHECKING:  # detail records: created on first use (domain/detail_records.py, issue 9)
    from opcockpit.domain.detail_records import (
        CommandChunk,
        CommandOutput,
        InstanceHistoryRecord,
        SyncFileRecord,
        TerminalCommandRecord,
        ThreadPointerRecord,
        VolumeRecord,
    )

__all__ = ["Build", "LeonDetailQueries"]

Build = Callable[[Any], list[Q]]


class LeonDetailQueries:
    """The detail queries of `SandboxDbReader` and `PgSandboxReader` (see the module docstring)."""

    dialect: ClassVar[Dialect]
    _apath: str
    _tz: tzinfo | None
    _parse: Callable[[object], datetime | None]
    _schema: Any

    async def _snapshot(self, build: Build) -> tuple[Any, list[list[tuple]]]:
        """Run `build(schema)`'s queries in one read-only snapshot (supplied by the reader)."""
        raise NotImplementedError

    def _history_table(self, s: _Schema | None) -> str | None:
        if s is None or s.has("lease_events"):
            return "lease_events"
        if self.dialect.history_fallback and s.has("provider_events"):
            return "provider_events"
        return None

    # ---------------------------------------------------------------- plumbing

    def _sel(self, s: _Schema, table: str, cols: tuple[str, ...], tail: str = "", params: Any = ()) -> Q:
        return Q(s.select(table, cols, self._apath) + tail, tuple(params), table, cols)

    def _time_filter(
        self, since: datetime | None, until: datetime | None, ts: str
    ) -> tuple[list[str], list[Any]]:
        """since/until (inclusive) compared with LEON's naive local-time strings in SQL (exact for
        LEON-written rows); for a timestamp column, its text form is compared the same way."""
        d = self.dialect
        where: list[str] = []
        params: list[Any] = []
        if ts == "NULL" and d.skip_absent_ts:
            return where, params
        zone = self._tz if self._tz is not None else local_zone()
        for op, value in ((">=", since), ("<=", until)):
            if value is not None:
                where.append(f"{d.ts_text.format(ts)} {op} {d.p}")
                params.append(to_local_naive_iso(value, zone))
        return where, params

    def _order(self, s: _Schema, table: str, ts: str, key: str) -> str:
        """Newest first by `ts` (NULL times last), ties by the dialect's row order."""
        return f" ORDER BY {s.col(table, ts)} {self.dialect.desc}, {self.dialect.tiebreak(key)} DESC"

    # ---------------------------------------------------------------- detail queries

    async def lease(self, lease_id: str) -> LeaseRecord | None:
        P = self.dialect.p
        _, (rows,) = await self._snapshot(
            lambda s: [self._sel(s, "sandbox_leases", _LEASE_COLS, f" WHERE lease_id = {P}", (lease_id,))]
        )
        leases = _leases(rows, self._parse)
        return leases[0] if leases else None

    async def leases_by_ids(self, ids: Iterable[str]) -> list[LeaseRecord]:
        """The leases among `ids` that exist, in the order of `ids` (duplicates dropped)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []

        def build(s: _Schema) -> list[Q]:
            return [
                self._sel(s, "sandbox_leases", _LEASE_COLS, f" WHERE {cond}", params)
                for cond, params in self.dialect.in_chunks("lease_id", wanted)
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
        """lease_events, newest first. Where the table is absent on PostgreSQL (Mycel), the
        provider_events matched to the lease (`matched_lease_id`), as Mycel's monitor does: each
        record's `source` is then "provider_events" (and `lease_history_source` says so)."""
        d = self.dialect

        def build(s: _Schema) -> list[Q]:
            table = self._history_table(s)
            if table is None:
                return []
            ts = s.col(table, "created_at")
            where, params = self._time_filter(since, until, ts)
            if lease_id is not None:
                where.insert(0, f"{'lease_id' if table == 'lease_events' else 'matched_lease_id'} = {d.p}")
                params.insert(0, lease_id)
            elif table == "provider_events":
                where.insert(0, "matched_lease_id IS NOT NULL")
            if table == "lease_events":
                cols, key = _LEASE_EVENT_COLS, d.tiebreak("event_id")
            else:
                cols, key = _PROVIDER_EVENT_COLS, "event_id"
            tail = f"{_where(where)} ORDER BY {ts} {d.desc}, {key} DESC LIMIT {d.p}"
            return [self._sel(s, table, cols, tail, (*params, d.limit(limit)))]

        schema, results = await self._snapshot(build)
        if not results:
            return []
        if self._history_table(schema) == "lease_events":
            return _lease_events(results[0], self._parse)
        return [
            LeaseEventRecord(
                f"pe-{e.event_id}", e.matched_lease_id or "", e.event_type, "provider_events",
                e.payload_json, None, e.created_at,
            )
            for e in _provider_events(results[0], self._parse)
        ]  # fmt: skip

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
        d = self.dialect
        ids = None if lease_ids is None else list(dict.fromkeys(lease_ids))
        if ids is not None and not ids:
            return []

        def build(s: _Schema) -> list[Q]:
            if not s.has("provider_events"):
                return []
            ts = s.col("provider_events", "created_at")
            where, params = self._time_filter(since, until, ts)
            for cond, value in (("provider_name", provider), ("instance_id", instance_id)):
                if value is not None:
                    where.append(f"{cond} = {d.p}")
                    params.append(value)
            if ids is not None:
                # One IN list: operators filter by a handful of leases, not thousands.
                cond, more = d.in_list("matched_lease_id", ids)
                where.append(cond)
                params.extend(more)
            tail = f"{_where(where)} ORDER BY {ts} {d.desc}, event_id DESC LIMIT {d.p}"
            return [self._sel(s, "provider_events", _PROVIDER_EVENT_COLS, tail, (*params, d.limit(limit)))]

        _, results = await self._snapshot(build)
        return _provider_events(results[0], self._parse) if results else []

    async def instance_history(self, lease_id: str) -> list[InstanceHistoryRecord]:
        """`sandbox_instances` rows of a lease, newest first."""
        t, P = "sandbox_instances", self.dialect.p

        def build(s: _Schema) -> list[Q]:
            if not s.has(t):
                return []
            tail = f" WHERE lease_id = {P}" + self._order(s, t, "created_at", "instance_id")
            return [self._sel(s, t, _INSTANCE_COLS, tail, (lease_id,))]

        _, results = await self._snapshot(build)
        return _instances(results[0], self._parse) if results else []

    async def thread_terminals(self, thread_id: str) -> list[TerminalRecord]:
        """Terminals of a thread, newest first."""
        t, P = "abstract_terminals", self.dialect.p

        def build(s: _Schema) -> list[Q]:
            tail = f" WHERE thread_id = {P}" + self._order(s, t, "created_at", "terminal_id")
            return [self._sel(s, t, _TERMINAL_COLS, tail, (thread_id,))]

        _, (rows,) = await self._snapshot(build)
        return _terminals(rows, self._parse)

    async def thread_sessions(self, thread_id: str) -> list[ChatSessionRecord]:
        """All chat sessions of a thread, closed ones included (with close_reason), newest first."""
        t, P = "chat_sessions", self.dialect.p

        def build(s: _Schema) -> list[Q]:
            if not s.has(t):
                return []
            tail = f" WHERE thread_id = {P}" + self._order(s, t, "started_at", "chat_session_id")
            return [self._sel(s, t, _SESSION_COLS, tail, (thread_id,))]

        _, results = await self._snapshot(build)
        return _sessions(results[0], self._parse) if results else []

    async def terminal_commands(
        self, terminal_ids: Iterable[str], limit: int | None = 50
    ) -> list[TerminalCommandRecord]:
        """Commands of the given terminals, newest first, at most `limit` in total (no stdout/stderr)."""
        ids = [terminal_ids] if isinstance(terminal_ids, str) else list(dict.fromkeys(terminal_ids))
        if not ids:
            return []
        t, d = "terminal_commands", self.dialect

        def build(s: _Schema) -> list[Q]:
            if not s.has(t):
                return []
            cond, params = d.in_list("terminal_id", ids)
            tail = f" WHERE {cond}" + self._order(s, t, "created_at", "command_id") + f" LIMIT {d.p}"
            return [self._sel(s, t, _COMMAND_COLS, tail, (*params, d.limit(limit)))]

        _, results = await self._snapshot(build)
        return _commands(results[0], self._parse) if results else []

    async def thread_pointer(self, thread_id: str) -> ThreadPointerRecord | None:
        """The thread's `thread_terminal_pointers` row (active/default terminal), None if absent."""
        t, P = "thread_terminal_pointers", self.dialect.p

        def build(s: _Schema) -> list[Q]:
            return (
                [self._sel(s, t, _POINTER_COLS, f" WHERE thread_id = {P}", (thread_id,))] if s.has(t) else []
            )

        _, results = await self._snapshot(build)
        if not results or not results[0]:
            return None
        from opcockpit.domain.detail_records import ThreadPointerRecord

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
        from opcockpit.domain.detail_records import CommandChunk, CommandOutput

        d = self.dialect
        limit = -1 if tail_bytes is None or tail_bytes <= 0 else int(tail_bytes)

        def build(s: _Schema) -> list[Q]:
            qs: list[Q] = []
            cols = (*_COMMAND_COLS, "stdout", "stderr")
            if s.has("terminal_commands"):
                qs.append(
                    self._sel(s, "terminal_commands", cols, f" WHERE command_id = {d.p}", (command_id,))
                )
            else:
                qs.append(Q(d.nothing, (), "terminal_commands", cols))
            t = "terminal_command_chunks"
            if s.has(t):
                sel = ", ".join(f"{s.value(t, c)} AS c{i}" for i, c in enumerate(_CHUNK_COLS))
                order = s.col(t, "chunk_id")
                if order == "NULL" and d.rowid:
                    order = d.rowid
                size = d.byte_len.format("content")
                # Newest-first running byte sum: keep the chunks that reach back to `limit` bytes
                # (the oldest kept one may be cut below), so a chatty build never loads whole.
                sql = (
                    "SELECT c0, c1, c2, c3, total FROM ("
                    f"SELECT {sel}, {order} AS k, SUM({size}) OVER (ORDER BY {order} DESC"
                    f" ROWS UNBOUNDED PRECEDING) - {size} AS after, SUM({size}) OVER () AS total"
                    f" FROM {t} WHERE command_id = {d.p}) x"
                    f" WHERE {d.p} < 0 OR after < {d.p} ORDER BY k"
                )
                qs.append(Q(sql, (command_id, limit, limit), t, (*_CHUNK_COLS, "total")))
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
        t = "sandbox_volumes"

        def build(s: _Schema) -> list[Q]:
            if not s.has(t):
                return []
            order = f" ORDER BY {s.col(t, 'created_at')}, volume_id"
            if ids is None:
                return [self._sel(s, t, _VOLUME_COLS, order)]
            return [
                self._sel(s, t, _VOLUME_COLS, f" WHERE {cond}{order}", params)
                for cond, params in self.dialect.in_chunks("volume_id", ids)
            ]

        _, results = await self._snapshot(build)
        from opcockpit.domain.detail_records import VolumeRecord

        p = self._parse
        return [VolumeRecord(_utf8(a), _str(b), _utf8(c), p(d)) for rows in results for a, b, c, d in rows]

    async def sync_files(self, thread_id: str) -> list[SyncFileRecord]:
        """Mycel `sync_files` of a thread, by path; [] when the table does not exist."""
        t, P = "sync_files", self.dialect.p

        def build(s: _Schema) -> list[Q]:
            if not s.has(t):
                return []
            return [
                self._sel(
                    s, t, _SYNC_FILE_COLS, f" WHERE thread_id = {P} ORDER BY relative_path", (thread_id,)
                )
            ]

        _, results = await self._snapshot(build)
        from opcockpit.domain.detail_records import SyncFileRecord

        p = self._parse  # last_synced is epoch seconds (INTEGER); the parser handles it
        rows = results[0] if results else []
        return [SyncFileRecord(_utf8(a), _utf8(b), _str(c), p(d)) for a, b, c, d in rows]

    async def threads_for_lease(self, lease_id: str) -> list[str]:
        """Threads bound to a lease: through abstract_terminals first (newest terminal first), then
        threads known only from chat_sessions (terminals deleted with the thread; newest first)."""
        P = self.dialect.p

        def build(s: _Schema) -> list[Q]:
            qs = []
            for t, ts, key in (
                ("abstract_terminals", "created_at", "terminal_id"),
                ("chat_sessions", "started_at", "chat_session_id"),
            ):
                if s.has(t):
                    sql = f"SELECT thread_id FROM {t} WHERE lease_id = {P}" + self._order(s, t, ts, key)
                    qs.append(Q(sql, (lease_id,), t, ("thread_id",)))
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
        d, n = self.dialect, len(prefix)

        def build(s: _Schema) -> list[Q]:
            conds = [d.starts("lease_id")]
            if "current_instance_id" in s.tables["sandbox_leases"]:
                conds.append(d.starts("current_instance_id"))
            params = [v for _ in conds for v in (n, prefix)]
            in_thread = f"SELECT lease_id FROM abstract_terminals WHERE {d.starts('thread_id')}"
            tail = f" WHERE {' OR '.join(conds)} OR lease_id IN ({in_thread}) ORDER BY lease_id"
            threads = (
                f"SELECT DISTINCT lease_id, thread_id FROM abstract_terminals WHERE {d.starts('thread_id')}"
            )
            return [
                self._sel(s, "sandbox_leases", _LEASE_COLS, tail, (*params, n, prefix)),
                Q(threads, (n, prefix), "abstract_terminals", ("lease_id", "thread_id")),
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
