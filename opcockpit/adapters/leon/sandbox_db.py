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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from types import TracebackType
from typing import Any

import aiosqlite

from opcockpit.adapters.leon.rowcheck import ABSENT, INT, INT_OPT, JSON, KEY, LINK, OPT, REQ, TS, vet
from opcockpit.adapters.leon.schema import OPTIONAL_TABLES
from opcockpit.adapters.leon.sqlite_ro import connect_ro, map_sqlite_error, precheck
from opcockpit.domain.fastbuild import fast_factory
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
    ResourceSnapshotRecord,
    SyncFileRecord,
    TerminalCommandRecord,
    TerminalRecord,
    ThreadPointerRecord,
    VolumeRecord,
)
from opcockpit.domain.timeutil import local_zone, make_parser, to_local_naive_iso
from opcockpit.ports.errors import SourceError

__all__ = ["REQUIRED_COLUMNS", "SandboxDbReader", "read_db_state"]

LABEL = "sandbox.db"
HINT = "check --db / LEON_SANDBOX_DB_PATH (LEON's default is ~/.leon/sandbox.db)"
DEFAULT_BUSY_TIMEOUT_MS = 2000
_CHUNK = 500  # ids per IN (...) list, far below SQLITE_MAX_VARIABLE_NUMBER
_OFFLOOP_ROWS = 2000  # convert bigger results in a worker thread so the UI loop stays responsive

# Columns each table must have for the reader to make sense of it (`schema` error otherwise).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "sandbox_leases": ("lease_id", "provider_name", "desired_state", "observed_state"),
    "abstract_terminals": ("terminal_id", "thread_id", "lease_id"),
    "chat_sessions": ("chat_session_id", "thread_id", "terminal_id", "lease_id", "status"),
    "sandbox_instances": ("instance_id", "lease_id"),
    "lease_events": ("event_id", "lease_id", "event_type"),
    "provider_events": ("event_id", "provider_name", "instance_id", "event_type"),
    "lease_resource_snapshots": ("lease_id",),
    "terminal_commands": ("command_id", "terminal_id"),
    "thread_terminal_pointers": ("thread_id",),
    "terminal_command_chunks": ("command_id", "content"),
    "sandbox_volumes": ("volume_id",),  # Mycel only
    "sync_files": ("thread_id", "relative_path"),  # Mycel only
}
_TABLES_OF_INTEREST = tuple(REQUIRED_COLUMNS)

# Select lists, in the positional order the builders below expect.
_LEASE_COLS = (
    "lease_id",
    "provider_name",
    "current_instance_id",
    "desired_state",
    "observed_state",
    "status",
    "version",
    "needs_refresh",
    "last_error",
    "instance_created_at",
    "observed_at",
    "refresh_hint_at",
    "created_at",
    "updated_at",
    "instance_status",
    "workspace_key",
    "recipe_id",
    "volume_id",
)
_TERMINAL_COLS = (
    "terminal_id",
    "thread_id",
    "lease_id",
    "cwd",
    "state_version",
    "created_at",
    "updated_at",
    "env_delta_json",
)
_SESSION_COLS = (
    "chat_session_id",
    "thread_id",
    "terminal_id",
    "lease_id",
    "status",
    "started_at",
    "last_active_at",
    "ended_at",
    "close_reason",
    "runtime_id",
    "idle_ttl_sec",
    "max_duration_sec",
)
_SNAPSHOT_COLS = (
    "lease_id",
    "provider_name",
    "observed_state",
    "probe_mode",
    "cpu_used",
    "cpu_limit",
    "memory_used_mb",
    "memory_total_mb",
    "disk_used_gb",
    "disk_total_gb",
    "network_rx_kbps",
    "network_tx_kbps",
    "probe_error",
    "collected_at",
)
# Column kinds for `rowcheck.vet`, in select-list order (LEON's NOT NULL columns are REQ/INT).
_LEASE_KINDS = (KEY, REQ, OPT, REQ, REQ, OPT, INT, INT, OPT, TS, TS, TS, TS, TS, OPT, OPT, OPT, OPT)
_TERMINAL_KINDS = (KEY, REQ, LINK, REQ, INT_OPT, TS, TS, JSON)
_SESSION_KINDS = (KEY, REQ, REQ, LINK, REQ, TS, TS, TS, OPT, OPT, INT_OPT, INT_OPT)
_INSTANCE_COLS = ("instance_id", "lease_id", "provider_session_id", "status", "created_at", "last_seen_at")
_LEASE_EVENT_COLS = ("event_id", "lease_id", "event_type", "source", "payload_json", "error", "created_at")
_PROVIDER_EVENT_COLS = (
    "event_id",
    "provider_name",
    "instance_id",
    "event_type",
    "payload_json",
    "matched_lease_id",
    "created_at",
)
_COMMAND_COLS = (
    "command_id",
    "terminal_id",
    "chat_session_id",
    "command_line",
    "cwd",
    "status",
    "exit_code",
    "created_at",
    "updated_at",
    "finished_at",
)
_POINTER_COLS = ("thread_id", "active_terminal_id", "default_terminal_id", "updated_at")
_CHUNK_COLS = ("chunk_id", "stream", "content", "created_at")
_VOLUME_COLS = ("volume_id", "name", "source", "created_at")
_SYNC_FILE_COLS = ("thread_id", "relative_path", "checksum", "last_synced")
DEFAULT_TAIL_BYTES = 8192

Parser = Callable[[object], datetime | None]
Query = tuple[str, Sequence[Any]]


# --------------------------------------------------------------------------- value coercion


def _int0(v: object) -> int:
    if v.__class__ is int:
        return v  # type: ignore[return-value]
    return _int_or_none(v) or 0


def _int_or_none(v: object) -> int | None:
    if v is None or v.__class__ is int:
        return v  # type: ignore[return-value]
    try:
        return int(v)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError, OverflowError):  # OverflowError: a REAL inf in an INTEGER column
        return None


def _float(v: object) -> float | None:
    if v is None or v.__class__ is float:
        return v  # type: ignore[return-value]
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _str(v: object) -> str | None:
    return v if v is None or v.__class__ is str else str(v)


def _bool(v: object) -> bool:
    if v.__class__ is int:
        return v != 0
    return _int0(v) != 0


# --------------------------------------------------------------------------- row builders
# Comprehensions with tuple unpacking: the fastest plain-Python shape for tens of thousands of rows.
# Records are made by `fast_factory` constructors (plain slot stores instead of a frozen
# dataclass's object.__setattr__ per field: ~5x cheaper); the select lists above are exactly the
# records' field order, which fast_factory verifies at import.

_new_lease = fast_factory(LeaseRecord, _LEASE_COLS)
_new_terminal = fast_factory(TerminalRecord, _TERMINAL_COLS)
_new_session = fast_factory(ChatSessionRecord, _SESSION_COLS)
_new_snapshot = fast_factory(ResourceSnapshotRecord, _SNAPSHOT_COLS)


def _leases(rows: Iterable[tuple], p: Parser) -> list[LeaseRecord]:
    new = _new_lease
    return [
        new(
            a,
            b,
            c,
            d,
            e,
            f,
            g if g.__class__ is int else _int0(g),
            h != 0 if h.__class__ is int else _bool(h),
            i,
            p(j),
            p(k),
            p(m),
            p(n),
            p(o),
            q,
            r,
            s,
            t,
        )
        for (a, b, c, d, e, f, g, h, i, j, k, m, n, o, q, r, s, t) in rows
    ]


def _terminals(rows: Iterable[tuple], p: Parser) -> list[TerminalRecord]:
    new = _new_terminal
    return [
        new(a, b, c, d or "", e if e.__class__ is int else _int0(e), p(f), p(g), h)
        for (a, b, c, d, e, f, g, h) in rows
    ]


def _sessions(rows: Iterable[tuple], p: Parser) -> list[ChatSessionRecord]:
    new = _new_session
    return [
        new(
            a,
            b,
            c,
            d,
            e,
            p(f),
            p(g),
            p(h),
            i,
            j,
            k if k.__class__ is int else _int_or_none(k),
            m if m.__class__ is int else _int_or_none(m),
        )
        for (a, b, c, d, e, f, g, h, i, j, k, m) in rows
    ]


# Records of the previous read_state per (path, parser, table), keyed by their raw row tuple.
# LEON rows rarely change between refreshes: an unchanged row costs a tuple hash instead of a
# record build plus timestamp parses. The map is built lazily from the previous read's (rows,
# records) when the next read needs it, so a one-shot read (`opcockpit snapshot`) never pays
# for hashing every row. Each read replaces the entry, so it never outgrows one table.
_REUSE: dict[tuple[Any, ...], tuple[list[tuple], tuple[Any, ...]]] = {}
_REUSE_MAX_KEYS = 16  # distinct (db path, zone, table) combinations remembered


def _reuse(
    key: tuple[Any, ...], rows: list[tuple], build: Callable[[Iterable[tuple], Parser], list[Any]], p: Parser
) -> tuple[Any, ...]:
    prev = _REUSE.get(key)
    if not prev or not prev[0]:
        out = tuple(build(rows, p))
    else:
        get = dict(zip(*prev, strict=True)).get
        recs = [get(r) for r in rows]
        misses = [i for i, rec in enumerate(recs) if rec is None]
        if misses:
            for i, rec in zip(misses, build([rows[i] for i in misses], p), strict=True):
                recs[i] = rec
        out = tuple(recs)
    if key not in _REUSE and len(_REUSE) >= _REUSE_MAX_KEYS:
        _REUSE.pop(next(iter(_REUSE)))
    _REUSE[key] = (rows, out)
    return out


def _snapshots(rows: Iterable[tuple], p: Parser) -> dict[str, ResourceSnapshotRecord]:
    new = _new_snapshot
    f = _float
    return {
        a: new(
            a,
            _utf8(b),
            _utf8(c),
            _utf8(d),
            f(e),
            f(g),
            f(h),
            f(i),
            f(j),
            f(k),
            f(m),
            f(n),
            o if o is None or o.__class__ is str else _utf8(o),  # a BLOB probe_error: text, not bytes
            p(q),
        )
        for (a, b, c, d, e, g, h, i, j, k, m, n, o, q) in rows
    }


def _instances(rows: Iterable[tuple], p: Parser) -> list[InstanceHistoryRecord]:
    # Detail query (a few rows): text columns made text whatever SQLite stored (BLOB, NULL).
    return [
        InstanceHistoryRecord(_utf8(a), _utf8(b), _str_or_none(c), _str_or_none(d), p(e), p(f))
        for (a, b, c, d, e, f) in rows
    ]


def _str_or_none(v: object) -> str | None:
    return None if v is None else _utf8(v)


def _lease_events(rows: Iterable[tuple], p: Parser) -> list[LeaseEventRecord]:
    return [LeaseEventRecord(a, b, c, d or "", e, f, p(g)) for (a, b, c, d, e, f, g) in rows]


def _provider_events(rows: Iterable[tuple], p: Parser) -> list[ProviderEventRecord]:
    return [ProviderEventRecord(_int0(a), b, c, d, e, f, p(g)) for (a, b, c, d, e, f, g) in rows]


def _commands(rows: Iterable[tuple], p: Parser) -> list[TerminalCommandRecord]:
    return [
        TerminalCommandRecord(a, b, c, d or "", e or "", f or "", _int_or_none(g), p(h), p(i), p(j))
        for (a, b, c, d, e, f, g, h, i, j) in rows
    ]


def _utf8(v: object) -> str:
    if v is None:
        return ""
    if v.__class__ is bytes:  # a BLOB where LEON meant TEXT: show it, never crash
        return v.decode("utf-8", "replace")  # type: ignore[attr-defined,no-any-return]
    return v if v.__class__ is str else str(v)


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _is_decode_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "could not decode to utf-8" in str(exc).lower()


def _tail(text: str, nbytes: int) -> tuple[str, bool]:
    """The last `nbytes` UTF-8 bytes of `text` (a split character is dropped) and whether it was cut."""
    if nbytes < 0:
        return text, False
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= nbytes:
        return text, False
    return raw[len(raw) - nbytes :].decode("utf-8", "ignore"), True


# --------------------------------------------------------------------------- schema introspection


@dataclass(frozen=True, slots=True)
class _Schema:
    version: int
    tables: dict[str, frozenset[str]]  # table name -> column names (tables of interest only)
    all_tables: frozenset[str]

    def has(self, table: str) -> bool:
        return table in self.tables

    def select(self, table: str, cols: Sequence[str], apath: str) -> str:
        """`SELECT <cols> FROM table`, NULL for absent columns; schema error if required ones lack."""
        present = self.tables[table]
        missing = [c for c in REQUIRED_COLUMNS.get(table, ()) if c not in present]
        if missing:
            raise SourceError(
                "schema",
                f"sandbox.db at {apath}: table {table} lacks required column(s) {', '.join(missing)}; "
                "this is not a LEON schema opcockpit understands (LEON would say 'schema mismatch: "
                "purge and retry')",
                path=apath,
            )
        exprs = ", ".join(f'"{c}"' if c in present else "NULL" for c in cols)
        return f'SELECT {exprs} FROM "{table}"'

    def col(self, table: str, name: str) -> str:
        """`name` quoted, or NULL when this variant lacks it (keeps ORDER BY/WHERE valid)."""
        return f'"{name}"' if name in self.tables.get(table, ()) else "NULL"

    @property
    def variant(self) -> str:
        lease_cols = self.tables.get("sandbox_leases", frozenset())
        if "volume_id" in lease_cols or "recipe_id" in lease_cols or "sandbox_volumes" in self.all_tables:
            return "mycel"
        if "instance_status" in lease_cols:
            return "leonai"
        return "older"

    @property
    def missing_tables(self) -> tuple[str, ...]:
        return tuple(t for t in OPTIONAL_TABLES if t not in self.all_tables)


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _limit(limit: int | None) -> int:
    return -1 if limit is None or limit <= 0 else int(limit)  # -1: SQLite's "no limit"


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
        conn = self._conn
        if conn is None:
            raise RuntimeError("SandboxDbReader is not open; use `async with SandboxDbReader(path)`")
        results: list[list[tuple]] = []
        try:
            await conn.execute("BEGIN")
            try:
                rows = await conn.execute_fetchall("PRAGMA schema_version")
                version = int(next(iter(rows))[0])
                if self._schema is None or self._schema.version != version:
                    self._schema = await self._introspect(conn, version)
                schema = self._schema
                for sql, params in build(schema):
                    results.append(list(await conn.execute_fetchall(sql, params)))
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
                return await self._snapshot(build)
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


def _where(conds: list[str], ts: str = "NULL") -> str:
    """AND the conditions; `{ts}` stands for the table's timestamp column expression."""
    return (" WHERE " + " AND ".join(f"({c.format(ts=ts)})" for c in conds)) if conds else ""


def _kinds(schema: _Schema, table: str, cols: Sequence[str], kinds: Sequence[str]) -> tuple[str, ...]:
    present = schema.tables.get(table, frozenset())
    return tuple(k if c in present else ABSENT for c, k in zip(cols, kinds, strict=True))


Vetted = tuple[
    tuple[LeaseRecord, ...],
    tuple[TerminalRecord, ...],
    tuple[ChatSessionRecord, ...],
    dict[str, tuple[str, ...]],
    tuple[str, ...],
]


def _vetted(
    schema: _Schema,
    p: Parser,
    leases: tuple[list[tuple], tuple[LeaseRecord, ...]],
    terminals: tuple[list[tuple], tuple[TerminalRecord, ...]],
    sessions: tuple[list[tuple], tuple[ChatSessionRecord, ...]],
) -> Vetted:
    """Leases, terminals and sessions with odd rows cleaned (see `rowcheck`).

    A lease's own problems, and those of the terminals and sessions bound to it, are returned by
    lease_id (its row shows them). Child rows whose lease_id is unusable cannot be
    bound to any lease: they are dropped and counted in the returned table-level problems.
    """
    lrecs, lp = vet(
        leases[0], leases[1], _LEASE_COLS, _kinds(schema, "sandbox_leases", _LEASE_COLS, _LEASE_KINDS),
        lambda r: _leases(r, p),
    )  # fmt: skip
    trecs, tp = vet(
        terminals[0], terminals[1], _TERMINAL_COLS,
        _kinds(schema, "abstract_terminals", _TERMINAL_COLS, _TERMINAL_KINDS), lambda r: _terminals(r, p),
    )  # fmt: skip
    srecs, sp = vet(
        sessions[0], sessions[1], _SESSION_COLS,
        _kinds(schema, "chat_sessions", _SESSION_COLS, _SESSION_KINDS), lambda r: _sessions(r, p),
    )  # fmt: skip
    if not (lp or tp or sp):
        return tuple(lrecs), tuple(trecs), tuple(srecs), {}, ()
    inherited: dict[str, list[str]] = {}
    notes: list[str] = []
    kept: dict[str, list[Any]] = {}
    for table, recs, found, ident in (
        ("abstract_terminals", trecs, tp, "terminal_id"),
        ("chat_sessions", srecs, sp, "chat_session_id"),
    ):
        dropped = []
        for i, texts in found.items():
            rec = recs[i]
            if any(t.startswith("lease_id ") for t in texts):
                dropped.append(i)
                continue
            rid = getattr(rec, ident)
            inherited.setdefault(rec.lease_id, []).extend(f"{table} {rid}: {t}" for t in texts)
        if dropped:
            gone = set(dropped)
            ids = ", ".join(str(getattr(recs[i], ident)) for i in dropped[:3])
            more = ", ..." if len(dropped) > 3 else ""
            notes.append(
                f"{table}: ignored {len(dropped)} row(s) with a NULL or non-text lease_id ({ids}{more})"
            )
            recs = [r for i, r in enumerate(recs) if i not in gone]
        kept[table] = recs
    by_lease: dict[str, list[str]] = {}
    for i, texts in lp.items():
        by_lease.setdefault(lrecs[i].lease_id, []).extend(texts)
    known = {r.lease_id for r in lrecs} if inherited else set()
    for lid, texts in inherited.items():
        if lid in known:  # rows of deleted leases stay ignored, as reconcile ignores them
            by_lease.setdefault(lid, []).extend(texts)
    problems = {lid: tuple(texts) for lid, texts in by_lease.items()}
    return (
        tuple(lrecs),
        tuple(kept["abstract_terminals"]),
        tuple(kept["chat_sessions"]),
        problems,
        tuple(notes),
    )


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
