"""LEON's sandbox tables in PostgreSQL (Mycel, `LEON_STORAGE_STRATEGY=supabase`): the same reader
contract as sandbox.db (`read_db_state`, `SandboxDbReader`), read-only by construction.

- Every session is opened with `default_transaction_read_only=on` and every read runs in
  `BEGIN ... SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`: one consistent snapshot
  per call (as SQLite's read transaction), and the server refuses any write whatever the role may.
- Tables are LEON's names in the configured schema (Mycel's `LEON_DB_SCHEMA`, default `public`),
  reached through the session's `search_path`. Columns are introspected from `pg_catalog` (visible
  to every role, so a role without SELECT gets "permission denied", not "no such table") and
  selected by name; absent optional columns read as NULL, exactly like the SQLite reader.
- PostgreSQL types are turned into what SQLite would have returned before the rows are vetted and
  built by the same code (`sandbox_rows`): timestamps -> ISO text (a naive `timestamp` gives
  back LEON's naive local string byte for byte, `timestamptz` an offset), booleans -> 0/1,
  json/jsonb -> JSON text, numeric -> float. So `snapshot` over PostgreSQL equals `snapshot`
  over the same rows in SQLite.
- Mycel has no `lease_events` on PostgreSQL; its monitor reads `provider_events` by
  `matched_lease_id` instead. So does `lease_events()` here when the table is absent:
  `lease_history_source` says which table the history came from ("lease_events" or
  "provider_events"), and each record's `source` is "provider_events" in that case.
- The URL's password is never shown: messages carry `redact_url(url)`; errors are SourceError
  with one line.

The LEON writer on PostgreSQL is out of scope: `refused_writer` refuses every write with the
reason, and wiring exposes that reason to the action gate.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal
from types import TracebackType
from typing import Any

from opcockpit.adapters.leon.sandbox_rows import (
    _COMMAND_COLS,
    _INSTANCE_COLS,
    _LEASE_COLS,
    _LEASE_EVENT_COLS,
    _POINTER_COLS,
    _PROVIDER_EVENT_COLS,
    _SESSION_COLS,
    _SNAPSHOT_COLS,
    _SYNC_FILE_COLS,
    _TABLES_OF_INTEREST,
    _TERMINAL_COLS,
    _VOLUME_COLS,
    DEFAULT_TAIL_BYTES,
    _commands,
    _instances,
    _int_or_none,
    _lease_events,
    _leases,
    _provider_events,
    _Schema,
    _sessions,
    _snapshots,
    _str,
    _tail,
    _terminals,
    _utf8,
    _vetted,
)
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
from opcockpit.domain.secrets import redact_url, remember_url, scrub
from opcockpit.domain.text import one_line
from opcockpit.domain.timeutil import make_parser
from opcockpit.ports.errors import SourceError
from opcockpit.ports.leon import WriteError

__all__ = [
    "PG_WRITE_REFUSAL",
    "PgSandboxReader",
    "PgSourceSpec",
    "read_pg_state",
    "refused_writer",
    "source_label",
]

CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 30_000
PG_WRITE_REFUSAL = (
    "the platform source is PostgreSQL: LEON's writes (desired_state + lease history) are only "
    "supported on a sandbox.db file; act from LEON/Mycel itself"
)
_TS_TYPES = ("timestamp", "date", "time")
_JSON_TYPES = ("json", "jsonb")


class PgSourceSpec:
    """Where the source lives: a URL (password registered with the redactor) and a schema."""

    __slots__ = ("schema", "shown", "url")

    def __init__(self, url: str, schema: str = "public") -> None:
        remember_url(url)
        self.url = url
        self.schema = schema or "public"
        self.shown = f"{redact_url(url)} schema {self.schema}"

    def __repr__(self) -> str:  # never the password, even in a traceback's locals
        return f"PgSourceSpec({self.shown!r})"


def source_label(spec: PgSourceSpec) -> str:
    """What `DbState.path` (snapshot's `db.path`) says for this source: safe to print."""
    return f"{redact_url(spec.url)}#{spec.schema}"


# --------------------------------------------------------------------------- errors


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None)


def map_pg_error(exc: BaseException, spec: PgSourceSpec, table: str | None = None) -> SourceError:
    """One clear, secret-free line for a PostgreSQL failure."""
    where = f"PostgreSQL source {spec.shown}"
    raw = one_line(scrub(str(exc) or type(exc).__name__))
    code = _sqlstate(exc)
    if code is None and "authentication failed" in raw:  # a failed connect carries no SQLSTATE
        code = "28P01"
    elif code is None and "does not exist" in raw and "database" in raw:
        code = "3D000"
    if code in ("28P01", "28000"):
        return SourceError(
            "permission", f"{where}: authentication failed (wrong user or password)", path=spec.shown
        )
    if code == "42501":
        what = f" on {spec.schema}.{table}" if table else ""
        return SourceError(
            "permission",
            f"{where}: this role may not read{what} ({raw}); GRANT USAGE ON SCHEMA and SELECT on "
            "LEON's tables to it (docs/postgres.md)",
            path=spec.shown,
        )
    if code == "3D000":
        return SourceError("missing", f"{where}: database does not exist ({raw})", path=spec.shown)
    if code in ("42P01", "3F000"):
        return SourceError("not_leon", f"{where}: {raw}", path=spec.shown)
    if code in ("42703",):
        return SourceError("schema", f"{where}: {raw}", path=spec.shown)
    if code == "25006":  # read_only_sql_transaction: something tried to write
        return SourceError(
            "permission", f"{where}: refused a write (read-only source): {raw}", path=spec.shown
        )
    if code == "57014":
        return SourceError(
            "locked", f"{where}: query cancelled after {STATEMENT_TIMEOUT_MS // 1000}s", path=spec.shown
        )
    if code is None or code.startswith("08") or code.startswith("57P"):
        return SourceError("missing", f"{where}: cannot reach the server ({raw})", path=spec.shown)
    return SourceError("corrupt", f"{where}: {raw}", path=spec.shown)


# --------------------------------------------------------------------------- value normalisation


def _ts_text(v: Any) -> Any:
    if isinstance(v, datetime | date | time):
        return v.isoformat()
    return v


def _bool_int(v: Any) -> Any:
    return int(v) if isinstance(v, bool) else v


def _json_text(v: Any) -> Any:
    return v if v is None or isinstance(v, str) else json.dumps(v, separators=(", ", ": "))


def _num(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() and abs(v) < 2**63 else float(v)
    return v


def _fixer(pgtype: str) -> Callable[[Any], Any] | None:
    t = pgtype.lower()
    if t.startswith(_TS_TYPES):
        return _ts_text
    if t == "boolean":
        return _bool_int
    if t in _JSON_TYPES:
        return _json_text
    if t.startswith("numeric"):
        return _num
    return None


class _PgSchema(_Schema):
    """`_Schema` plus the column types (for the value normalisation)."""

    __slots__ = ("types",)

    def __init__(
        self, tables: dict[str, frozenset[str]], all_tables: frozenset[str], types: dict[str, dict[str, str]]
    ) -> None:
        super().__init__(0, tables, all_tables)
        object.__setattr__(self, "types", types)

    def fix(self, table: str, cols: Sequence[str], rows: list[tuple]) -> list[tuple]:
        """Rows as SQLite would have returned them (only the columns whose type needs it)."""
        types = self.types.get(table, {})
        fixes = [(i, f) for i, c in enumerate(cols) if c in types and (f := _fixer(types[c])) is not None]
        if not fixes or not rows:
            return rows
        out = []
        for r in rows:
            row = list(r)
            for i, f in fixes:
                row[i] = f(row[i])
            out.append(tuple(row))
        return out


# --------------------------------------------------------------------------- the reader


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PgSandboxReader:
    """Read-only connection to LEON's tables in one PostgreSQL schema; `async with` it.

    Same methods and results as `SandboxDbReader`. A broken connection (server restarted) is
    replaced on the next call: reconnection is automatic; while the server is down every call
    raises SourceError (the collector keeps the last good picture, stale, with its age).
    """

    def __init__(self, spec: PgSourceSpec, *, local_tz: tzinfo | None = None, **_: Any) -> None:
        self.spec = spec
        self.path = source_label(spec)
        self._parse = make_parser(local_tz)
        self._tz = local_tz
        self._conn: Any = None
        self._schema: _PgSchema | None = None

    # ---------------------------------------------------------------- lifecycle

    async def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError:  # pragma: no cover - psycopg is a runtime dependency
            raise SourceError(
                "missing", f"PostgreSQL source {self.spec.shown}: needs psycopg 3 (pip install psycopg)"
            ) from None
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.spec.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="opcockpit-source",
                options=f"-c default_transaction_read_only=on -c statement_timeout={STATEMENT_TIMEOUT_MS}",
            )
        except Exception as exc:
            raise map_pg_error(exc, self.spec) from None
        try:
            row = await (
                await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.spec.schema,))
            ).fetchone()
            if row is None:
                raise SourceError(
                    "not_leon",
                    f"PostgreSQL source {self.spec.shown}: schema {self.spec.schema!r} does not exist "
                    "(set [sources] schema / $LEON_DB_SCHEMA)",
                    path=self.spec.shown,
                )
            await conn.execute(
                "SELECT set_config('search_path', %s, false)", (_quote_ident(self.spec.schema),)
            )
        except SourceError:
            await conn.close()
            raise
        except Exception as exc:
            await conn.close()
            raise map_pg_error(exc, self.spec) from None
        return conn

    async def open(self) -> PgSandboxReader:
        self._conn = await self._connect()
        try:
            await self._snapshot(lambda s: [])  # validates the schema now
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def __aenter__(self) -> PgSandboxReader:
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
        return _missing(self._schema) if self._schema else ()

    @property
    def lease_history_source(self) -> str:
        """Which table `lease_events()` reads: "lease_events", else Mycel's "provider_events"."""
        if (
            self._schema is not None
            and not self._schema.has("lease_events")
            and self._schema.has("provider_events")
        ):
            return "provider_events"
        return "lease_events"

    # ---------------------------------------------------------------- plumbing

    async def _introspect(self, conn: Any) -> _PgSchema:
        cur = await conn.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'v', 'm', 'p', 'f')",
            (self.spec.schema,),
        )
        names: set[str] = set()
        types: dict[str, dict[str, str]] = {}
        for rel, col, typ in await cur.fetchall():
            names.add(rel)
            if rel in _TABLES_OF_INTEREST and col is not None:
                types.setdefault(rel, {})[col] = typ
        tables = {t: frozenset(cols) for t, cols in types.items()}
        where = f"PostgreSQL source {self.spec.shown}"
        if "sandbox_leases" not in tables:
            shown = ", ".join(sorted(names)[:8]) + (", ..." if len(names) > 8 else "")
            what = f"has no sandbox_leases table (tables: {shown})" if names else "has no tables"
            raise SourceError(
                "not_leon",
                f"{where}: schema {self.spec.schema!r} {what}: not LEON's tables; "
                "check [sources] url / schema ($LEON_DB_SCHEMA)",
                path=self.spec.shown,
            )
        if "abstract_terminals" not in tables:
            raise SourceError(
                "schema",
                f"{where}: sandbox_leases but no abstract_terminals table; "
                "not a LEON schema opcockpit understands",
                path=self.spec.shown,
            )
        schema = _PgSchema(tables, frozenset(names), types)
        for t in ("sandbox_leases", "abstract_terminals", "chat_sessions"):
            if t in tables:
                schema.select(t, (), self.path)  # required columns: fail loudly now
        return schema

    async def _snapshot(
        self, build: Callable[[_PgSchema], list[tuple[str, str, Sequence[str], Sequence[Any]]]]
    ) -> tuple[_PgSchema, list[list[tuple]]]:
        """Run `build(schema)`'s queries (table, sql, cols, params) in one read-only snapshot;
        rows come back normalised to SQLite's value types. Reconnects once on a dead connection
        and re-introspects once when a table or column vanished."""
        for attempt in range(2):
            try:
                return await self._run(build)
            except SourceError:
                raise
            except Exception as exc:
                code = _sqlstate(exc)
                retry = attempt == 0 and (code in ("42P01", "42703") or code is None or code.startswith("08"))
                if code in ("42P01", "42703"):
                    self._schema = None
                if not retry:
                    raise map_pg_error(exc, self.spec, getattr(exc, "_table", None)) from None
                if code is None or code.startswith("08"):
                    await self.close()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run(
        self, build: Callable[[_PgSchema], list[tuple[str, str, Sequence[str], Sequence[Any]]]]
    ) -> tuple[_PgSchema, list[list[tuple]]]:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            self._conn = conn = await self._connect()
        async with conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if self._schema is None:
                self._schema = await self._introspect(conn)
            schema = self._schema
            results = []
            for table, sql, cols, params in build(schema):
                try:
                    cur = await conn.execute(sql, tuple(params))
                    rows = await cur.fetchall()
                except Exception as exc:
                    exc._table = table  # type: ignore[attr-defined]  # named in the message
                    raise
                results.append(schema.fix(table, cols, rows))
        return schema, results

    # ---------------------------------------------------------------- reconcile input

    async def read_state(self, *, now: datetime | None = None) -> DbState:
        ap = self.path

        def build(s: _PgSchema) -> list[Any]:
            qs = [
                ("sandbox_leases", s.select("sandbox_leases", _LEASE_COLS, ap), _LEASE_COLS, ()),
                (
                    "abstract_terminals",
                    s.select("abstract_terminals", _TERMINAL_COLS, ap),
                    _TERMINAL_COLS,
                    (),
                ),
            ]
            for t, cols in (("chat_sessions", _SESSION_COLS), ("lease_resource_snapshots", _SNAPSHOT_COLS)):
                qs.append((t, s.select(t, cols, ap) if s.has(t) else "SELECT 1 WHERE false", cols, ()))
            return qs

        with gc_paused():
            schema, (lrows, trows, srows, rrows) = await self._snapshot(build)
            return self.state(schema, lrows, trows, srows, rrows, now)

    def state(
        self,
        schema: _PgSchema,
        lrows: list[tuple],
        trows: list[tuple],
        srows: list[tuple],
        rrows: list[tuple],
        now: datetime | None,
    ) -> DbState:
        p = self._parse
        leases, terminals, sessions, lease_problems, problems = _vetted(
            schema,
            p,
            (lrows, tuple(_leases(lrows, p))),
            (trows, tuple(_terminals(trows, p))),
            (srows, tuple(_sessions(srows, p))),
        )
        return DbState(
            path=self.path,
            schema_variant=schema.variant,
            read_at=now if now is not None else datetime.now(UTC),
            leases=leases,
            terminals=terminals,
            chat_sessions=sessions,
            resource_snapshots=_snapshots(rrows, p),
            missing_tables=_missing(schema),
            lease_problems=lease_problems,
            problems=problems,
        )

    # ---------------------------------------------------------------- detail queries

    def _q(
        self, s: _PgSchema, table: str, cols: Sequence[str], tail: str = "", params: Sequence[Any] = ()
    ) -> tuple[str, str, Sequence[str], Sequence[Any]]:
        return (table, s.select(table, cols, self.path) + tail, cols, params)

    def _since_until(
        self, since: datetime | None, until: datetime | None, ts: str
    ) -> tuple[list[str], list[Any]]:
        """Time filters compared as text with LEON's naive local strings (exact for LEON-written
        text); for timestamp columns the text form of the value is compared the same way."""
        from opcockpit.domain.timeutil import local_zone, to_local_naive_iso

        where: list[str] = []
        params: list[Any] = []
        zone = self._tz if self._tz is not None else local_zone()
        for op, value in ((">=", since), ("<=", until)):
            if value is not None and ts != "NULL":
                where.append(f"replace({ts}::text, ' ', 'T') {op} %s")
                params.append(to_local_naive_iso(value, zone))
        return where, params

    async def lease(self, lease_id: str) -> LeaseRecord | None:
        _, (rows,) = await self._snapshot(
            lambda s: [self._q(s, "sandbox_leases", _LEASE_COLS, " WHERE lease_id = %s", (lease_id,))]
        )
        leases = _leases(rows, self._parse)
        return leases[0] if leases else None

    async def leases_by_ids(self, ids: Iterable[str]) -> list[LeaseRecord]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        _, (rows,) = await self._snapshot(
            lambda s: [self._q(s, "sandbox_leases", _LEASE_COLS, " WHERE lease_id = ANY(%s)", (wanted,))]
        )
        by_id = {r.lease_id: r for r in _leases(rows, self._parse)}
        return [by_id[i] for i in wanted if i in by_id]

    async def lease_events(
        self,
        lease_id: str | None = None,
        *,
        limit: int | None = 200,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[LeaseEventRecord]:
        """lease_events newest first; where the table is absent (Mycel on PostgreSQL), the
        provider_events matched to the lease (`matched_lease_id`), as Mycel's monitor does."""

        def build(s: _PgSchema) -> list[Any]:
            table = (
                "lease_events"
                if s.has("lease_events")
                else "provider_events"
                if s.has("provider_events")
                else None
            )
            if table is None:
                return []
            ts = s.col(table, "created_at")
            where, params = self._since_until(since, until, ts)
            key = "lease_id" if table == "lease_events" else "matched_lease_id"
            if lease_id is not None:
                where.insert(0, f"{key} = %s")
                params.insert(0, lease_id)
            elif table == "provider_events":
                where.insert(0, "matched_lease_id IS NOT NULL")
            cond = (" WHERE " + " AND ".join(where)) if where else ""
            cols = _LEASE_EVENT_COLS if table == "lease_events" else _PROVIDER_EVENT_COLS
            return [
                self._q(
                    s,
                    table,
                    cols,
                    f"{cond} ORDER BY {ts} DESC NULLS LAST, event_id DESC LIMIT %s",
                    (*params, _limit(limit)),
                )
            ]

        schema, results = await self._snapshot(build)
        if not results:
            return []
        if schema.has("lease_events"):
            return _lease_events(results[0], self._parse)
        return [
            LeaseEventRecord(
                f"pe-{e.event_id}",
                e.matched_lease_id or "",
                e.event_type,
                "provider_events",
                e.payload_json,
                None,
                e.created_at,
            )
            for e in _provider_events(results[0], self._parse)
        ]

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
        ids = None if lease_ids is None else list(dict.fromkeys(lease_ids))
        if ids is not None and not ids:
            return []

        def build(s: _PgSchema) -> list[Any]:
            if not s.has("provider_events"):
                return []
            ts = s.col("provider_events", "created_at")
            where, params = self._since_until(since, until, ts)
            for cond, value in (
                ("provider_name = %s", provider),
                ("instance_id = %s", instance_id),
                ("matched_lease_id = ANY(%s)", ids),
            ):
                if value is not None:
                    where.append(cond)
                    params.append(value)
            cond = (" WHERE " + " AND ".join(where)) if where else ""
            return [
                self._q(
                    s,
                    "provider_events",
                    _PROVIDER_EVENT_COLS,
                    f"{cond} ORDER BY {ts} DESC NULLS LAST, event_id DESC LIMIT %s",
                    (*params, _limit(limit)),
                )
            ]

        _, results = await self._snapshot(build)
        return _provider_events(results[0], self._parse) if results else []

    async def instance_history(self, lease_id: str) -> list[InstanceHistoryRecord]:
        def build(s: _PgSchema) -> list[Any]:
            if not s.has("sandbox_instances"):
                return []
            ts = s.col("sandbox_instances", "created_at")
            return [
                self._q(
                    s,
                    "sandbox_instances",
                    _INSTANCE_COLS,
                    f" WHERE lease_id = %s ORDER BY {ts} DESC NULLS LAST, instance_id DESC",
                    (lease_id,),
                )
            ]

        _, results = await self._snapshot(build)
        return _instances(results[0], self._parse) if results else []

    async def thread_terminals(self, thread_id: str) -> list[TerminalRecord]:
        _, (rows,) = await self._snapshot(
            lambda s: [
                self._q(
                    s,
                    "abstract_terminals",
                    _TERMINAL_COLS,
                    f" WHERE thread_id = %s ORDER BY {s.col('abstract_terminals', 'created_at')}"
                    " DESC NULLS LAST, terminal_id DESC",
                    (thread_id,),
                )
            ]
        )
        return _terminals(rows, self._parse)

    async def thread_sessions(self, thread_id: str) -> list[ChatSessionRecord]:
        def build(s: _PgSchema) -> list[Any]:
            if not s.has("chat_sessions"):
                return []
            ts = s.col("chat_sessions", "started_at")
            return [
                self._q(
                    s,
                    "chat_sessions",
                    _SESSION_COLS,
                    f" WHERE thread_id = %s ORDER BY {ts} DESC NULLS LAST, chat_session_id DESC",
                    (thread_id,),
                )
            ]

        _, results = await self._snapshot(build)
        return _sessions(results[0], self._parse) if results else []

    async def terminal_commands(
        self, terminal_ids: Iterable[str], limit: int | None = 50
    ) -> list[TerminalCommandRecord]:
        ids = [terminal_ids] if isinstance(terminal_ids, str) else list(dict.fromkeys(terminal_ids))
        if not ids:
            return []

        def build(s: _PgSchema) -> list[Any]:
            if not s.has("terminal_commands"):
                return []
            ts = s.col("terminal_commands", "created_at")
            return [
                self._q(
                    s,
                    "terminal_commands",
                    _COMMAND_COLS,
                    f" WHERE terminal_id = ANY(%s) ORDER BY {ts} DESC NULLS LAST, command_id DESC LIMIT %s",
                    (ids, _limit(limit)),
                )
            ]

        _, results = await self._snapshot(build)
        return _commands(results[0], self._parse) if results else []

    async def thread_pointer(self, thread_id: str) -> ThreadPointerRecord | None:
        def build(s: _PgSchema) -> list[Any]:
            if not s.has("thread_terminal_pointers"):
                return []
            return [
                self._q(s, "thread_terminal_pointers", _POINTER_COLS, " WHERE thread_id = %s", (thread_id,))
            ]

        _, results = await self._snapshot(build)
        if not results or not results[0]:
            return None
        a, b, c, d = results[0][0]
        return ThreadPointerRecord(_utf8(a), _str(b), _str(c), self._parse(d))

    async def command_output(
        self, command_id: str, *, tail_bytes: int | None = DEFAULT_TAIL_BYTES
    ) -> CommandOutput:
        """A command's output (chunks in order, else the stdout/stderr tails), its last
        `tail_bytes` bytes; the chunks are cut on the server by a running byte sum."""
        limit = -1 if tail_bytes is None or tail_bytes <= 0 else int(tail_bytes)
        chunk_cols = ("chunk_id", "stream", "content", "created_at", "total")

        def build(s: _PgSchema) -> list[Any]:
            qs: list[Any] = []
            cmd_cols = (*_COMMAND_COLS, "stdout", "stderr")
            if s.has("terminal_commands"):
                qs.append(self._q(s, "terminal_commands", cmd_cols, " WHERE command_id = %s", (command_id,)))
            else:
                qs.append(("terminal_commands", "SELECT 1 WHERE false", (), ()))
            if s.has("terminal_command_chunks"):
                t = "terminal_command_chunks"
                sel = ", ".join(f"{s.col(t, c)} AS c{i}" for i, c in enumerate(chunk_cols[:4]))
                size = "octet_length(content)"
                order = s.col(t, "chunk_id")
                qs.append(
                    (
                        t,
                        "SELECT c0, c1, c2, c3, total FROM ("
                        f"SELECT {sel}, {order} AS k, SUM({size}) OVER (ORDER BY {order} DESC"
                        " ROWS UNBOUNDED PRECEDING)"
                        f" - {size} AS after, SUM({size}) OVER () AS total FROM {t} WHERE command_id = %s) x"
                        " WHERE %s < 0 OR after < %s ORDER BY k",
                        chunk_cols,
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
            total = int(chunk_rows[0][4] or 0)
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
        ids = None if volume_ids is None else list(dict.fromkeys(volume_ids))
        if ids is not None and not ids:
            return []

        def build(s: _PgSchema) -> list[Any]:
            if not s.has("sandbox_volumes"):
                return []
            cond = "" if ids is None else " WHERE volume_id = ANY(%s)"
            order = f" ORDER BY {s.col('sandbox_volumes', 'created_at')}, volume_id"
            return [self._q(s, "sandbox_volumes", _VOLUME_COLS, cond + order, () if ids is None else (ids,))]

        _, results = await self._snapshot(build)
        p = self._parse
        return [VolumeRecord(_utf8(a), _str(b), _utf8(c), p(d)) for rows in results for a, b, c, d in rows]

    async def sync_files(self, thread_id: str) -> list[SyncFileRecord]:
        def build(s: _PgSchema) -> list[Any]:
            if not s.has("sync_files"):
                return []
            return [
                self._q(
                    s,
                    "sync_files",
                    _SYNC_FILE_COLS,
                    " WHERE thread_id = %s ORDER BY relative_path",
                    (thread_id,),
                )
            ]

        _, results = await self._snapshot(build)
        p = self._parse
        rows = results[0] if results else []
        return [SyncFileRecord(_utf8(a), _utf8(b), _str(c), p(d)) for a, b, c, d in rows]

    async def threads_for_lease(self, lease_id: str) -> list[str]:
        def build(s: _PgSchema) -> list[Any]:
            qs = [
                (
                    "abstract_terminals",
                    "SELECT thread_id FROM abstract_terminals WHERE lease_id = %s "
                    f"ORDER BY {s.col('abstract_terminals', 'created_at')} DESC NULLS LAST, terminal_id DESC",
                    ("thread_id",),
                    (lease_id,),
                )
            ]
            if s.has("chat_sessions"):
                qs.append(
                    (
                        "chat_sessions",
                        "SELECT thread_id FROM chat_sessions WHERE lease_id = %s "
                        f"ORDER BY {s.col('chat_sessions', 'started_at')} DESC NULLS LAST,"
                        " chat_session_id DESC",
                        ("thread_id",),
                        (lease_id,),
                    )
                )
            return qs

        _, results = await self._snapshot(build)
        return list(dict.fromkeys(r[0] for rows in results for r in rows if r[0] is not None))

    async def find_leases(self, prefix: str) -> list[LeaseRecord]:
        """Leases whose lease_id, current_instance_id or bound thread_id starts with `prefix`
        (exact matches win), ordered by lease_id."""
        prefix = prefix.strip()
        if not prefix:
            return []
        n = len(prefix)

        def build(s: _PgSchema) -> list[Any]:
            cond = "left(lease_id, %s) = %s"
            params: list[Any] = [n, prefix]
            if "current_instance_id" in s.tables["sandbox_leases"]:
                cond += " OR left(current_instance_id, %s) = %s"
                params += [n, prefix]
            return [
                self._q(
                    s,
                    "sandbox_leases",
                    _LEASE_COLS,
                    f" WHERE {cond} OR lease_id IN (SELECT lease_id FROM abstract_terminals"
                    " WHERE left(thread_id, %s) = %s)"
                    " ORDER BY lease_id",
                    (*params, n, prefix),
                ),
                (
                    "abstract_terminals",
                    "SELECT DISTINCT lease_id, thread_id FROM abstract_terminals"
                    " WHERE left(thread_id, %s) = %s",
                    ("lease_id", "thread_id"),
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


def _limit(limit: int | None) -> int | None:
    return None if limit is None or limit <= 0 else int(limit)  # LIMIT NULL: no limit


def _missing(schema: _Schema) -> tuple[str, ...]:
    # On PostgreSQL (Mycel) provider_events stands in for lease_events: not a missing table.
    missing = schema.missing_tables
    if "lease_events" in missing and schema.has("provider_events"):
        missing = tuple(t for t in missing if t != "lease_events")
    return missing


async def read_pg_state(
    spec: PgSourceSpec, *, now: datetime | None = None, local_tz: tzinfo | None = None
) -> DbState:
    """Connect, read the reconcile input in one read-only snapshot, close. Raises SourceError."""
    async with PgSandboxReader(spec, local_tz=local_tz) as reader:
        return await reader.read_state(now=now)


def refused_writer(*_: Any, **__: Any) -> Any:
    """The LEON writer with a PostgreSQL source: every write refused, nothing touched."""
    raise WriteError("read_only", PG_WRITE_REFUSAL)


refused_writer.refusal = PG_WRITE_REFUSAL  # type: ignore[attr-defined]  # read by the action gate
