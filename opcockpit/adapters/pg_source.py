"""LEON's sandbox tables in PostgreSQL (Mycel, `LEON_STORAGE_STRATEGY=supabase`): the same reader
contract as sandbox.db (`read_db_state`, `SandboxDbReader`), read-only by construction.

- Every session is opened with `default_transaction_read_only=on` and every read runs in
  `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY` (the connection's transaction settings, so the
  BEGIN carries them: no extra round trip): one consistent snapshot per call (as SQLite's read
  transaction), and the server refuses any write whatever the role may.
- Tables are LEON's names in the configured schema (Mycel's `LEON_DB_SCHEMA`, default `public`),
  reached through the session's `search_path`. Columns are introspected from `pg_catalog` (visible
  to every role, so a role without SELECT gets "permission denied", not "no such table") and
  selected by name; absent optional columns read as NULL, exactly like the SQLite reader.
- The queries, row builders and bad-row vetting are the sandbox.db reader's (`leon.reader_base`,
  `leon.reader_details` over `leon.dialect.POSTGRES`); this module is the connection, the
  read-only snapshot and the introspection. PostgreSQL types are turned into what SQLite would
  have returned first (`pg_source_values`): timestamps -> ISO text made by the server (a naive
  `timestamp` gives back LEON's naive local string, `timestamptz` an offset), booleans -> 0/1,
  json/jsonb -> JSON text, numeric -> int/float. So `snapshot` over PostgreSQL equals `snapshot`
  over the same rows in SQLite.
- Mycel has no `lease_events` on PostgreSQL; its monitor reads `provider_events` by
  `matched_lease_id` instead. So does `lease_events()` here when the table is absent (the
  dialect's `history_fallback`): `lease_history_source` says which table the history came from,
  and each record's `source` is "provider_events" in that case.
- The URL's password is never shown: messages carry `redact_url(url)`; errors are SourceError
  with one line.

The LEON writer on PostgreSQL is out of scope: `refused_writer` refuses every write with the
reason, and wiring exposes that reason to the action gate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from opcockpit.adapters.leon.dialect import POSTGRES, Q
from opcockpit.adapters.leon.reader_base import EarlyRecords, LeonReaderBase
from opcockpit.adapters.leon.sandbox_rows import _TABLES_OF_INTEREST, _Schema
from opcockpit.adapters.leon.sandbox_rows_once import ONE_SHOT_BUILDERS
from opcockpit.adapters.pg_source_values import (
    PgSchema,
    PgSourceSpec,
    connect_options,
    map_pg_error,
    sqlstate,
)
from opcockpit.adapters.pg_sync import SyncSession
from opcockpit.adapters.sync_drive import drive
from opcockpit.domain.gcpause import gc_paused
from opcockpit.domain.models import DbState
from opcockpit.domain.secrets import redact_url
from opcockpit.domain.timeutil import make_parser
from opcockpit.ports.errors import SourceError
from opcockpit.ports.leon import WriteError

__all__ = [
    "PG_WRITE_REFUSAL",
    "PgSandboxReader",
    "PgSourceSpec",
    "map_pg_error",
    "read_pg_state",
    "refused_writer",
    "source_label",
]

CONNECT_TIMEOUT_S = 5
PG_WRITE_REFUSAL = (
    "the platform source is PostgreSQL: LEON's writes (desired_state + lease history) are only "
    "supported on a sandbox.db file; act from LEON/Mycel itself"
)


def source_label(spec: PgSourceSpec) -> str:
    """What `DbState.path` (snapshot's `db.path`) says for this source: safe to print."""
    return f"{redact_url(spec.url)}#{spec.schema}"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PgSandboxReader(LeonReaderBase):
    """Read-only connection to LEON's tables in one PostgreSQL schema; `async with` it.

    Same methods and results as `SandboxDbReader`. A broken connection (server restarted) is
    replaced on the next call: reconnection is automatic; while the server is down every call
    raises SourceError (the collector keeps the last good picture, stale, with its age).
    """

    dialect = POSTGRES
    # The schema probe at connect: a reconnected session of a reader that keeps its introspected
    # schema needs the search_path set before its first query (the one-shot read introspects on
    # every connection, and the introspection sets it: one round trip fewer).
    _probe_at_connect = True

    def __init__(self, spec: PgSourceSpec, *, local_tz: tzinfo | None = None, **_: Any) -> None:
        self.spec = spec
        self.path = self._apath = source_label(spec)
        self._parse = make_parser(local_tz)
        self._tz = local_tz
        self._conn: Any = None
        self._schema: PgSchema | None = None

    # ---------------------------------------------------------------- lifecycle

    def _psycopg(self) -> Any:
        try:
            from opcockpit.adapters.lean_psycopg import psycopg
        except ImportError:  # pragma: no cover - psycopg is a runtime dependency
            raise SourceError(
                "missing", f"PostgreSQL source {self.spec.shown}: needs psycopg 3 (pip install psycopg)"
            ) from None
        return psycopg

    def _connect_args(self) -> dict[str, Any]:
        return {
            "autocommit": True,
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": "opcockpit-source",
            "options": connect_options(),
        }

    async def _connect(self) -> Any:
        psycopg = self._psycopg()
        try:
            conn = await psycopg.AsyncConnection.connect(self.spec.url, **self._connect_args())
        except Exception as exc:
            raise map_pg_error(exc, self.spec) from None
        return await self._prepare(conn, psycopg)

    async def _prepare(self, conn: Any, psycopg: Any) -> Any:
        """The session's read-only snapshot settings and search_path; closes `conn` on failure."""
        try:
            await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)  # sent with BEGIN
            await conn.set_read_only(True)
            if self._probe_at_connect:
                # One round trip: the schema's existence and the search_path (set only when it exists).
                row = await (
                    await conn.execute(
                        "SELECT set_config('search_path', %s, false) FROM pg_namespace WHERE nspname = %s",
                        (_quote_ident(self.spec.schema), self.spec.schema),
                    )
                ).fetchone()
                if row is None:
                    raise self._no_schema()
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

    def _missing(self, schema: _Schema) -> tuple[str, ...]:
        # On PostgreSQL (Mycel) provider_events stands in for lease_events: not a missing table.
        missing = schema.missing_tables
        if "lease_events" in missing and schema.has("provider_events"):
            missing = tuple(t for t in missing if t != "lease_events")
        return missing

    # ---------------------------------------------------------------- plumbing

    def _no_schema(self) -> SourceError:
        return SourceError(
            "not_leon",
            f"PostgreSQL source {self.spec.shown}: schema {self.spec.schema!r} does not exist "
            "(set [sources] schema / $LEON_DB_SCHEMA)",
            path=self.spec.shown,
        )

    async def _introspect(self, conn: Any) -> PgSchema:
        # Also sets the search_path (so a session introspected at once needs no probe at connect:
        # `_probe_at_connect`); no row at all: the schema does not exist.
        cur = await conn.execute(
            "SELECT set_config('search_path', %s, false), c.relname, a.attname, "
            "format_type(a.atttypid, a.atttypmod) FROM pg_namespace n "
            "LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'v', 'm', 'p', 'f') "
            "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE n.nspname = %s",
            (_quote_ident(self.spec.schema), self.spec.schema),
        )
        rows = await cur.fetchall()
        if not rows:
            raise self._no_schema()
        names: set[str] = set()
        types: dict[str, dict[str, str]] = {}
        for _, rel, col, typ in rows:
            if rel is None:
                continue  # the schema exists and holds no table
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
        schema = PgSchema(tables, frozenset(names), types)
        for t in ("sandbox_leases", "abstract_terminals", "chat_sessions"):
            if t in tables:
                schema.select(t, (), self.path)  # required columns: fail loudly now
        return schema

    async def _snapshot(self, build: Callable[[PgSchema], list[Q]]) -> tuple[PgSchema, list[list[tuple]]]:
        """Run `build(schema)`'s queries in one read-only snapshot;
        rows come back normalised to SQLite's value types. Reconnects once on a dead connection
        and re-introspects once when a table or column vanished."""
        for attempt in range(2):
            try:
                return await self._run(build)
            except SourceError:
                raise
            except Exception as exc:
                code = sqlstate(exc)
                retry = attempt == 0 and (code in ("42P01", "42703") or code is None or code.startswith("08"))
                if code in ("42P01", "42703"):
                    self._schema = None
                if not retry:
                    raise map_pg_error(exc, self.spec, getattr(exc, "_table", None)) from None
                if code is None or code.startswith("08"):
                    await self.close()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run(self, build: Callable[[PgSchema], list[Q]]) -> tuple[PgSchema, list[list[tuple]]]:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            self._conn = conn = await self._connect()
        try:
            return await self._run_pipelined(conn, build)
        except Exception as exc:
            code = sqlstate(exc)
            if code is None or code.startswith(("08", "57P")) or conn.closed or conn.broken:
                raise
        # A pipeline reports a failed statement on whichever result is fetched next: once more
        # one statement at a time, so the error names its table (errors are rare; reads are not).
        return await self._run_stepwise(conn, build)

    async def _run_pipelined(
        self, conn: Any, build: Callable[[PgSchema], list[Q]]
    ) -> tuple[PgSchema, list[list[tuple]]]:
        """BEGIN, the queries and COMMIT sent together: the server runs them back to back while
        the client loads the first rows; one round trip for the snapshot instead of one per
        statement (two when the schema is introspected first)."""
        async with conn.pipeline(), conn.transaction():  # BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY
            if self._schema is None:
                self._schema = await self._introspect(conn)
            schema = self._schema
            queries = build(schema)
            cursors = [await conn.execute(sql, tuple(params)) for sql, params, _, _ in queries]
            results = [
                schema.fix(table, cols, await cur.fetchall())
                for cur, (_, _, table, cols) in zip(cursors, queries, strict=True)
            ]
        return schema, results

    async def _run_stepwise(
        self, conn: Any, build: Callable[[PgSchema], list[Q]]
    ) -> tuple[PgSchema, list[list[tuple]]]:
        async with conn.transaction():
            if self._schema is None:
                self._schema = await self._introspect(conn)
            schema = self._schema
            results = []
            for sql, params, table, cols in build(schema):
                try:
                    cur = await conn.execute(sql, tuple(params))
                    rows = await cur.fetchall()
                except Exception as exc:
                    exc._table = table  # type: ignore[attr-defined]  # named in the message
                    raise
                results.append(schema.fix(table, cols, rows))
        return schema, results


class _OneShotPgReader(PgSandboxReader):
    """The reader of `read_pg_state(one_shot=True)`: the same records, read in one worker thread
    over a blocking connection (`pg_sync`), text not interned.

    `sandbox_rows` interns repeated text for the live cockpit's hours-long picture (issue 10); a
    `snapshot` process prints its records and exits, and the ~300k intern calls at 10k leases
    (~0.1 s CPU) buy it nothing (the sandbox.db one-shot read does the same). Its statements
    are staggered (`_run_pipelined`): the server runs one while the client loads the last."""

    _builders = ONE_SHOT_BUILDERS
    _probe_at_connect = False
    _early: list[EarlyRecords | None] | None = None  # set by read_state: see _arrived

    async def read_state(self, *, now: datetime | None = None) -> DbState:
        """The reconcile input, each table's records built as soon as its rows are in (`_arrived`),
        while the server runs the next statement: the client no longer idles through the server's
        run of chat_sessions (~35 ms of executor time at 10k leases, ~100 ms of waiting with the
        transfer) and then converts everything at the end."""
        with gc_paused():
            self._early = [None] * len(self._builders)
            try:
                schema, (lrows, trows, srows, rrows) = await self._snapshot(self._state_queries)
                return await self._state(schema, lrows, trows, srows, rrows, now, built=self._early)
            finally:
                self._early = None

    def _arrived(self, index: int, rows: list[tuple]) -> list[tuple]:
        """Rows of the state query `index` are in: build their records now (read_state)."""
        if self._early is not None and index < len(self._early):
            self._early[index] = EarlyRecords(rows, self._builders[index](rows, self._parse))
        return rows

    async def _connect(self) -> Any:
        psycopg = self._psycopg()
        self._schema = None  # a new session is introspected, which sets its search_path
        try:
            conn = psycopg.Connection.connect(self.spec.url, **self._connect_args())
        except Exception as exc:
            raise map_pg_error(exc, self.spec) from None
        return await self._prepare(SyncSession(conn), psycopg)

    async def _convert(self, fn: Callable[[], Any], nrows: int) -> Any:
        return fn()  # already off the event loop: the whole read runs in one worker thread

    async def _run_pipelined(
        self, conn: Any, build: Callable[[PgSchema], list[Q]]
    ) -> tuple[PgSchema, list[list[tuple]]]:
        """The same snapshot, staggered: each statement is sent, then the rows of the one ahead
        of it are loaded, then a Sync waits for the new one's result; so the server runs each
        statement while this thread turns the previous one's rows into Python objects (issue 12).
        Sent all at once, the first `fetchall` waited for every statement (psycopg fetches every
        queued result; the server flushes its output at a Sync): the client idled through the
        server's whole run (~90 ms at 10k leases, more on a busy server), then the server idled
        while the client converted. A Sync inside the transaction block ends no transaction."""
        async with conn.pipeline() as pipeline, conn.transaction():
            if self._schema is None:
                self._schema = await self._introspect(conn)
            schema = self._schema
            queries = build(schema)
            results: list[list[tuple]] = [[] for _ in queries]

            async def load(cur: Any, i: int) -> None:
                q = queries[i]
                results[i] = self._arrived(i, schema.fix(q.table, q.cols, await cur.fetchall()))

            ahead: tuple[Any, int] | None = None
            for i in _send_order(queries):
                q = queries[i]
                cur = await conn.execute(q.sql, tuple(q.params))  # sent: the server starts on it
                if ahead is not None:  # its result is here (the last Sync): load it meanwhile
                    await load(*ahead)
                pipeline.sync()  # waits for `cur`'s result (the server flushes it at the Sync)
                ahead = (cur, i)
            if ahead is not None:
                await load(*ahead)
        return schema, results


# The one-shot read's statements, cheapest for the server first (the client waits for it with
# nothing to do), then each one sent while the client builds a bigger table's records: at 10k
# leases the server runs resource snapshots in ~5 ms, leases ~22, chat sessions ~35 (hidden by
# the leases' build), terminals ~16 (by the sessions'). Unnamed tables keep their place, last.
_SEND_FIRST = ("lease_resource_snapshots", "sandbox_leases", "chat_sessions", "abstract_terminals")


def _send_order(queries: list[Q]) -> list[int]:
    """Indexes of `queries` in the order the one-shot read sends them (see _SEND_FIRST)."""
    rank = {t: n for n, t in enumerate(_SEND_FIRST)}
    return sorted(range(len(queries)), key=lambda i: rank.get(queries[i].table or "", len(rank)))


async def read_pg_state(
    spec: PgSourceSpec,
    *,
    now: datetime | None = None,
    local_tz: tzinfo | None = None,
    one_shot: bool = False,
) -> DbState:
    """Connect, read the reconcile input in one read-only snapshot, close. Raises SourceError.
    No separate validating snapshot (`open()`'s): the read introspects and checks the schema in
    its own, one transaction fewer for `opcockpit snapshot`. `one_shot` (the `snapshot`
    command): the whole read in one worker thread, records for a process that prints them and
    exits (`_OneShotPgReader`)."""
    if one_shot:
        return await asyncio.to_thread(read_pg_state_now, spec, now=now, local_tz=local_tz)
    reader = PgSandboxReader(spec, local_tz=local_tz)
    try:
        reader._conn = await reader._connect()
        return await reader.read_state(now=now)
    finally:
        await reader.close()


_BLOCKING = "the blocking PostgreSQL reader"  # its awaits complete at once (adapters/pg_sync.py)


def read_pg_state_now(
    spec: PgSourceSpec, *, now: datetime | None = None, local_tz: tzinfo | None = None
) -> DbState:
    """read_pg_state(one_shot=True) in the calling thread (blocking)."""
    reader = _OneShotPgReader(spec, local_tz=local_tz)
    try:
        reader._conn = drive(reader._connect(), _BLOCKING)
        return drive(reader.read_state(now=now), _BLOCKING)
    finally:
        drive(reader.close(), _BLOCKING)


def refused_writer(*_: Any, **__: Any) -> Any:
    """The LEON writer with a PostgreSQL source: every write refused, nothing touched."""
    raise WriteError("read_only", PG_WRITE_REFUSAL)


refused_writer.refusal = PG_WRITE_REFUSAL  # type: ignore[attr-defined]  # read by the action gate
