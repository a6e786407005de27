"""Explore over the PostgreSQL platform source (`[sources] kind = "postgres"`).

- Datasets: the LEON ones (sessions, lease_events, provider_events, commands, and the thread ->
  lease map that `runs` and `run_events` are joined with) are read from the PostgreSQL schema;
  events.db (run_events, runs) stays a file, read as before; the cockpit ledger's datasets
  (events, audit, alerts) are read wherever the ledger is, a file or PostgreSQL (the `LedgerRows`
  given: adapters/ledger/explore_ledger.py). The query language's filter is not pushed into
  PostgreSQL: its semantics (Unicode case folding, globs, regexes, LEON's several time formats)
  are the Python functions SQLite runs inside SQL, which PostgreSQL cannot. So the rows stream
  in a stable order and the evaluator filters and counts them exactly; values get SQLite's types
  first (`sqlite_value`), so a row equals its sandbox.db twin. Where Mycel has no `lease_events`
  table, the `lease_events` dataset is the provider_events matched to a lease
  (`matched_lease_id`), as the lease history of the reader is: each row's `source` says
  "provider_events".
- SQL mode (`PgReadOnlySql`): one statement in a READ ONLY transaction, on a session whose
  default is read-only, under `statement_timeout`. Sent with the extended protocol, which refuses
  a second statement (so `...; COMMIT; SET ...` cannot leave the read-only transaction). Only
  LEON's tables in the configured schema (no events.db or ledger attached: the ledger datasets
  are queried with the language).

Every connection: the source URL (password never printed), `search_path` = the schema.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from opcockpit.adapters.leon.explore_rows import ExploreRows, LedgerRows
from opcockpit.adapters.leon.explore_sql import Col, Source, _cols
from opcockpit.adapters.pg_source_values import (
    PgSourceSpec,
    connect_options,
    map_pg_error,
    sqlite_value,
    sqlstate,
)
from opcockpit.domain.query import Filter, QueryTimeout
from opcockpit.domain.secrets import scrub
from opcockpit.domain.text import one_line
from opcockpit.ports.errors import SourceError
from opcockpit.ports.explore import SqlRefused, SqlResult

__all__ = ["PgExploreRows", "PgReadOnlySql", "pg_explore"]

_SB = "sandbox.db"
_DAY = timedelta(days=1)
CONNECT_TIMEOUT_S = 5
# A stable row order without SQLite's rowid: time, then the row's id.
_ORDER = {
    "sessions": "s.started_at, s.chat_session_id",
    "lease_events": "e.created_at, e.event_id",
    "provider_events": "created_at, event_id",
    "commands": "c.created_at, c.command_id",
}
# A command's output: its chunks joined in one aggregate over the chunks table (a subquery per
# command would scan the table once per command where Mycel has no index on command_id).
_OUTPUT_JOIN = (
    " LEFT JOIN (SELECT command_id, string_agg(content, '' ORDER BY chunk_id) AS output"
    " FROM terminal_command_chunks GROUP BY command_id) k ON k.command_id = c.command_id"
)
# Mycel keeps no lease_events in PostgreSQL: its monitor reads the matched provider events.
_LEASE_HISTORY = Source(
    _SB, "provider_events",
    "(SELECT * FROM provider_events WHERE matched_lease_id IS NOT NULL) e"
    " LEFT JOIN sandbox_leases l ON l.lease_id = e.matched_lease_id",
    _cols("event_id='pe-' || e.event_id, lease_id=e.matched_lease_id, provider=l.provider_name,"
          " event_type=e.event_type, source='provider_events', payload=e.payload_json, error=NULL,"
          " created=e.created_at@ts"),
    "created", _ORDER["lease_events"],
)  # fmt: skip


def _connect(spec: PgSourceSpec, statement_timeout_ms: int) -> Any:
    """A read-only session on the source with `search_path` = its schema (SourceError if not)."""
    from opcockpit.adapters.lean_psycopg import psycopg

    try:
        conn = psycopg.connect(
            spec.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
            application_name="opcockpit-explore", options=connect_options(statement_timeout_ms),
        )  # fmt: skip
    except Exception as exc:
        raise map_pg_error(exc, spec) from None
    try:
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (spec.schema,)).fetchone() is None:
            raise SourceError(
                "not_leon", f"PostgreSQL source {spec.shown}: schema {spec.schema!r} does not exist",
                path=spec.shown,
            )  # fmt: skip
        quoted = '"' + spec.schema.replace('"', '""') + '"'
        conn.execute("SELECT set_config('search_path', %s, false)", (quoted,))
    except BaseException as exc:
        conn.close()
        if isinstance(exc, SourceError) or not isinstance(exc, Exception):
            raise
        raise map_pg_error(exc, spec) from None
    return conn


_NAMED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(?<![:\w]):([A-Za-z_]\w*)|%")


def _pg_params(sql: str, params: Mapping[str, Any] | Sequence[Any]) -> tuple[str, Any]:
    """The SQL mode's `:name` parameters (what saved queries use on sandbox.db) as psycopg's
    `%(name)s`, outside quoted text and `::type` casts; every literal `%` doubled. No parameters:
    the text goes as it is (psycopg then leaves `%` alone)."""
    if not params:
        return sql, None
    if not isinstance(params, Mapping):
        return sql, params

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return f"%({m.group(1)})s"
        return m.group(0).replace("%", "%%")  # psycopg reads every '%', quoted ones too

    return _NAMED.sub(sub, sql), dict(params)


def _timeout_ms(deadline: float | None, default_ms: int = 30_000) -> int:
    if deadline is None:
        return default_ms
    return max(int((deadline - time.monotonic()) * 1000), 1)


class PgExploreRows(ExploreRows):
    """ExploreRows whose LEON datasets come from the PostgreSQL source (see the module docstring)."""

    def __init__(self, spec: PgSourceSpec, events_db: str | None, ledger: LedgerRows | None = None) -> None:
        super().__init__(None, events_db, ledger)
        self.spec = spec

    def _query(
        self, which: str, sql: str, params: list[Any], *, deadline: float | None = None
    ) -> Iterator[tuple]:
        if which != _SB:
            return super()._query(which, sql, params, deadline=deadline)
        return self._pg_rows(sql, params, deadline)

    def _pg_rows(self, sql: str, params: list[Any], deadline: float | None) -> Iterator[tuple]:
        from opcockpit.adapters.lean_psycopg import psycopg

        conn = _connect(self.spec, _timeout_ms(deadline))
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                # A server-side cursor: the rows stream into the evaluator, not all at once.
                with conn.cursor(name="opcockpit_explore") as cur:
                    cur.itersize = 2000  # rows per round trip (psycopg's 100 made 10k rows ~100 trips)
                    cur.execute(sql, params or None)
                    for row in cur:
                        yield tuple(sqlite_value(v) for v in row)
        except psycopg.errors.QueryCanceled:
            raise QueryTimeout("the query ran past its time budget and was stopped; narrow it") from None
        except psycopg.Error as exc:
            raise map_pg_error(exc, self.spec) from None
        finally:
            conn.close()

    def _tables(self, which: str) -> set[str]:
        if which != _SB:
            return super()._tables(which)
        sql = (
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'v', 'm', 'p', 'f')"
        )
        return {r[0] for r in self._pg_rows(sql, [self.spec.schema], None)}

    def _source(self, dataset: str) -> Source | None:
        src = super()._source(dataset)
        if src is None and dataset == "lease_events" and "provider_events" in self._tables(_SB):
            return _LEASE_HISTORY
        if src is None or src.db != _SB:
            return src
        src = replace(src, order=_ORDER.get(dataset, src.order))
        out = src.col("output")
        if out is not None and out.expr != "NULL":
            cols = tuple(Col(c.field, "k.output", c.kind) if c is out else c for c in src.cols)
            src = replace(src, from_=src.from_ + _OUTPUT_JOIN, cols=cols)
        return src

    def _select(
        self, src: Source, since: datetime | None, until: datetime | None, where: Filter | None
    ) -> tuple[str, list[Any]]:
        if src.db != _SB:
            return super()._select(src, since, until, where)
        cols = ", ".join(c.expr for c in src.sql_cols)
        cond, params = _window(src, since, until)
        return f"SELECT {cols} FROM {src.from_}{cond} ORDER BY {src.order}", params

    def _countable(self, src: Source) -> bool:
        return src.db != _SB  # the evaluator counts PostgreSQL's rows (see the module docstring)


_TEXTUAL = "('text', 'character varying', 'timestamp without time zone', 'timestamp with time zone', 'date')"


def _window(src: Source, since: datetime | None, until: datetime | None) -> tuple[str, list[Any]]:
    """The time window as a loose pre-filter (a superset: the evaluator applies the exact bounds),
    like sandbox.db's: the column's text against the date a day early / two days late, so zones
    and 'T' vs ' ' cannot matter; NULLs and values that are not text or time (epoch numbers) pass."""
    c = src.col(src.time_field)
    if c is None or c.kind != "ts" or (since is None and until is None):
        return "", []
    conds, params = [], []
    for op, bound in ((">=", since and since - _DAY), ("<", until and until + 2 * _DAY)):
        if bound is not None:
            conds.append(
                f"({c.expr} IS NULL OR pg_typeof({c.expr})::text NOT IN {_TEXTUAL} OR {c.expr}::text {op} %s)"
            )
            params.append(bound.date().isoformat())
    return " WHERE " + " AND ".join(conds), params


class PgReadOnlySql:
    """The Explore SQL mode over the PostgreSQL source: `execute(sql, params, limit=, timeout_s=)`
    -> SqlResult; SqlRefused for a refused or stopped statement, SourceError when the server
    cannot be reached. Parameters are `:name`, as on sandbox.db."""

    def __init__(self, spec: PgSourceSpec) -> None:
        self.spec = spec

    def execute(
        self,
        sql: str,
        params: Mapping[str, Any] | Sequence[Any] = (),
        *,
        limit: int = 1000,
        timeout_s: float = 5.0,
    ) -> SqlResult:
        from opcockpit.adapters.lean_psycopg import psycopg

        if not sql.strip():
            raise SqlRefused("empty SQL statement")
        ms = max(int(timeout_s * 1000), 1)
        conn = _connect(self.spec, ms)
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cur = conn.cursor()
                # prepare=True: the extended protocol, which refuses a second statement.
                cur.execute(*_pg_params(sql, params), prepare=True)
                rows = (
                    [tuple(sqlite_value(v) for v in r) for r in cur.fetchmany(limit + 1)]
                    if cur.description
                    else []
                )
                columns = tuple(d.name for d in cur.description or ())
        except psycopg.Error as exc:
            raise self._refusal(exc, timeout_s) from None
        finally:
            conn.close()
        return SqlResult(columns, rows[:limit], len(rows) > limit, limit)

    def _refusal(self, exc: BaseException, timeout_s: float) -> Exception:
        code = sqlstate(exc) or ""
        msg = one_line(scrub(str(exc) or type(exc).__name__))
        if code == "57014":
            return SqlRefused(
                f"stopped after {timeout_s:g}s (the SQL mode's time limit); narrow the query or add LIMIT"
            )
        if code == "25006":
            return SqlRefused(f"refused: the SQL mode is read-only ({msg}); nothing changed")
        if code == "42601" and "multiple commands" in msg:
            return SqlRefused("the SQL mode runs one statement at a time; remove the extra ';' part")
        if code[:2] in ("", "08", "28", "3D", "57") and code != "57014":
            return map_pg_error(exc, self.spec)
        return SqlRefused(f"SQL error: {msg}")


def pg_explore(
    sources: Any, events_db: str | None, ledger: LedgerRows | None
) -> tuple[PgExploreRows, PgReadOnlySql]:
    """Explore's rows and SQL mode for `[sources] kind = "postgres"` (wiring.build_explore)."""
    spec = PgSourceSpec(sources.resolve_url() or "", getattr(sources, "db_schema", "public"))
    return PgExploreRows(spec, events_db, ledger), PgReadOnlySql(spec)
