"""Explore's ledger datasets (`events`, `audit`, `alerts`) on the ledger's own backend.

The ledger is a SQLite file or a team's PostgreSQL (`backend.LedgerTarget`); the rows are the same
on both, field for field and type for type (`LedgerExploreRows.rows`):
- SQLite: opened read-only (`mode=ro`, `query_only`: Explore never writes, nor creates a missing
  file: no ledger yet means nothing was audited or alerted). The `events` dataset pushes its
  filter and time window into SQLite and may be counted there (adapters/leon/explore_sql), as
  before; audit and alerts are small and stream whole.
- PostgreSQL: through the backend seam (`backend.connect`: the same URL, role and redaction as the
  stores), one READ ONLY transaction under `statement_timeout` (the query's remaining budget),
  rows streamed by a server-side cursor. The query language's filter cannot run there exactly
  (its semantics are Python functions only SQLite can run inside SQL): the `events` time window
  does (exact: integer microseconds), and so does a count with no filter (`events | count by
  type`); the text atoms become a pre-filter that keeps a superset of the matches (`_pg_loose`);
  the evaluator filters and counts exactly (`aggregate` -> None). `before`/`after` are
  always text on both (`_sqlite_json_text`, `_pg_json_text`), so a row equals its SQLite twin.
Errors: a PostgreSQL ledger that cannot be read is LedgerError (one line, password masked); a
SQLite file SourceError, as every file source. Past the deadline: QueryTimeout.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from opcockpit.adapters.ledger.backend import LedgerTarget, connect, to_pg
from opcockpit.adapters.ledger.sqlite import is_db_error, reason
from opcockpit.adapters.leon.explore_rows import LEDGER_DATASETS, ro_query
from opcockpit.adapters.leon.explore_sql import SOURCES, Col, Source, count_sql, from_us, select_sql, to_us
from opcockpit.domain.query import Filter, QueryTimeout
from opcockpit.domain.query.filter import AnyText, Bool
from opcockpit.domain.timeutil import make_parser
from opcockpit.ports.explore import SqlRefused, SqlResult
from opcockpit.ports.ledger import LedgerError

__all__ = ["LEDGER_DATASETS", "LedgerExploreRows", "LedgerSqlNote"]

_LABEL = "ledger"
_TABLE = {"events": "events", "audit": "audit_log", "alerts": "alerts"}
_AUDIT_SQL = (
    "SELECT id, op_id, at, operator, action, provider, lease_id, instance_id, thread_id, result,"
    " outcome, error, duration_ms, dry_run, read_only, convergence, settled_at FROM audit_log ORDER BY id"
)
# A firing alert seen again unchanged is not rewritten each round (alert store, issue 10): unless
# `held` (kept unseen), its last sighting is the last evaluation, as AlertStore reads it back.
_LAST_EVALUATED = "(SELECT v FROM alert_meta WHERE k = 'last_evaluated_at')"
_ALERTS_SQL = (
    "SELECT id, rule, severity, state, key, summary, scope, fired_at,"
    f" CASE WHEN state = 'firing' AND held = 0 AND {_LAST_EVALUATED} > last_seen"
    f" THEN {_LAST_EVALUATED} ELSE last_seen END, resolved_at,"
    " acked_by, muted_until, mute_until_resolved FROM alerts ORDER BY id"
)
_DEFAULT_BUDGET_MS = 30_000


def _sqlite_json_text(key: str) -> str:
    """`before`/`after` always text (a text field: the filter's text operators call .lower() on
    it): a JSON string as its text, null as NULL, anything else as its JSON text (numbers,
    true/false, objects, arrays). json_extract alone gave 3 or 1 for a number or true."""
    path = f"'$.{key}'"
    return (
        f"CASE json_type(body, {path}) WHEN 'text' THEN json_extract(body, {path})"
        f" WHEN 'null' THEN NULL ELSE body -> {path} END"
    )


def _pg_json_text(key: str, doc: str = "body::json") -> str:
    """The same in PostgreSQL: `json` (not jsonb) keeps a value's text as written, compact here."""
    v = f"({doc} -> '{key}')"
    return (
        f"CASE json_typeof({v}) WHEN 'string' THEN {doc} ->> '{key}' WHEN 'null' THEN NULL ELSE {v}::text END"
    )


def _events_source(json_text: Callable[[str], str], from_: str = "events") -> Source:
    base = SOURCES["events"]
    cols = tuple(
        Col(c.field, json_text(c.field), c.kind) if c.field in ("before", "after") else c for c in base.cols
    )
    return replace(base, from_=from_, cols=cols)


# The `events` dataset per backend (the SQL is SQLite's spelling; `to_pg` turns `?` into `%s`).
_EVENTS = {"sqlite": _events_source(_sqlite_json_text), "postgres": _events_source(_pg_json_text)}
# PostgreSQL's rows: the body parsed once per row, not once per use (OFFSET 0 keeps the planner
# from inlining it back): 100k rows 0.55 s instead of 0.86 s on the server.
_PG_ROWS = _events_source(
    lambda k: _pg_json_text(k, "x.j"), "events CROSS JOIN LATERAL (SELECT body::json AS j OFFSET 0) x"
)


# The text fields of `events` (catalog: text), where PostgreSQL may pre-filter (`_pg_loose`).
_PG_TEXT = frozenset(
    {"type", "source", "lease_id", "instance_id", "thread_id", "provider", "before", "after"}
)
_NON_ASCII = r"[^\x01-\x7f]|\\"  # a PostgreSQL regex: any character outside ASCII, or a backslash


def _pg_loose(f: Filter, src: Source) -> tuple[str, list[Any]] | None:
    """A condition PostgreSQL can run that keeps at least every row `f` matches (None: none).
    Only the case-insensitive text atoms, and only for ASCII values: on a value that is ASCII
    PostgreSQL's lower() (ASCII-only under COLLATE "C") is Python's, and a value with any other
    character always passes (Unicode case rules, e.g. the Kelvin sign lowering to "k", stay with
    the evaluator, which applies the whole filter exactly). No NOT: a superset's negation is not."""
    if isinstance(f, Bool):
        parts = [] if f.op == "not" else [_pg_loose(i, src) for i in f.items]
        kept = [p for p in parts if p is not None]
        if not kept or (f.op == "or" and len(kept) < len(parts)):
            return None
        return "(" + f" {f.op.upper()} ".join(p[0] for p in kept) + ")", [x for p in kept for x in p[1]]
    if isinstance(f, AnyText):
        if not f.needle.isascii() or not set(f.fields) <= _PG_TEXT:
            return None
        # before/after: the raw body instead (cheap: no JSON parsing for rows that do not pass).
        # A superset: with no escape in an ASCII body, their text is a piece of the body as is.
        named = ("body" if n in ("before", "after") else src.col(n).expr for n in f.fields)  # type: ignore[union-attr]
        exprs = list(dict.fromkeys(named))
        conds = [f"(strpos(lower({e}), ?) > 0 OR {e} ~ ?)" for e in exprs]
        return "(" + " OR ".join(conds) + ")", [x for _ in exprs for x in (f.needle, _NON_ASCII)]
    want = f.value
    if f.field not in _PG_TEXT or not isinstance(want, str) or not want.isascii():
        return None
    e = src.col(f.field).expr  # type: ignore[union-attr]
    if f.op == "ieq":
        return f"(lower({e}) = ? OR {e} ~ ?)", [want, _NON_ASCII]
    if f.op == "glob" and "[" not in want:  # fnmatch's sets have no LIKE form: left to the evaluator
        like = (
            want.replace("\\", "\\\\")
            .replace("%", "\\%")
            .replace("_", "\\_")
            .replace("*", "%")
            .replace("?", "_")
        )
        return f"(lower({e}) LIKE ? OR {e} ~ ?)", [like, _NON_ASCII]
    return None


class LedgerExploreRows:
    """The ledger datasets' `rows`/`aggregate` (adapters.leon.explore_rows.LedgerRows) for `target`."""

    def __init__(self, target: Any = None) -> None:
        self.target = LedgerTarget.parse(target)
        self._parse = make_parser()

    def __repr__(self) -> str:  # the target's own repr masks a URL's password
        return f"LedgerExploreRows({self.target!r})"

    # ------------------------------------------------------------------ the datasets
    def rows(
        self,
        dataset: str,
        *,
        since: datetime | None,
        until: datetime | None,
        where: Filter | None = None,
        deadline: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        if dataset not in LEDGER_DATASETS:
            raise KeyError(dataset)
        if dataset == "events":
            return self._events(since, until, where, deadline)
        return self._audit(deadline) if dataset == "audit" else self._alerts(deadline)

    def aggregate(
        self,
        dataset: str,
        *,
        since: datetime | None,
        until: datetime | None,
        where: Filter | None,
        by: tuple[str, ...],
        deadline: float | None = None,
    ) -> list[tuple[tuple[Any, ...], int]] | None:
        """`events` counted in the ledger when that is exact: SQLite when the filter translates,
        PostgreSQL when there is no filter; else None (the evaluator counts), as for audit/alerts."""
        if dataset != "events" or (where is not None and self.target.kind != "sqlite"):
            return None  # PostgreSQL cannot run the filter's functions: the evaluator counts
        sql = count_sql(_EVENTS[self.target.kind], since, until, where, by)
        if sql is None:
            return None
        if not self._has("events"):
            return [] if by else [((), 0)]
        return [(tuple(r[:-1]), int(r[-1])) for r in self._fetch(sql[0], sql[1], deadline)]

    def _events(
        self, since: datetime | None, until: datetime | None, where: Filter | None, deadline: float | None
    ) -> Iterator[dict[str, Any]]:
        if not self._has("events"):
            return
        if self.target.kind == "sqlite":
            src = _EVENTS["sqlite"]
            sql, params = select_sql(src, since, until, where)
        else:
            src = _PG_ROWS
            sql, params = self._pg_select(src, since, until, where)
        names = [c.field for c in src.sql_cols]
        for r in self._fetch(sql, params, deadline):
            row = dict(zip(names, r, strict=True))
            row["occurred_at"], row["observed_at"] = from_us(r[2]), from_us(r[3])
            yield row

    @staticmethod
    def _pg_select(
        src: Source, since: datetime | None, until: datetime | None, where: Filter | None
    ) -> tuple[str, list[Any]]:
        """PostgreSQL's SELECT: the time window (exact: integer microseconds) and `_pg_loose`."""
        conds, params = [], []
        for cond, bound in (("observed_us >= ?", since), ("observed_us <= ?", until)):
            if bound is not None:
                conds.append(cond)
                params.append(to_us(bound))
        loose = None if where is None else _pg_loose(where, src)
        if loose is not None:
            conds.append(loose[0])
            params.extend(loose[1])
        cols = ", ".join(c.expr for c in src.sql_cols)
        cond = " WHERE " + " AND ".join(conds) if conds else ""
        return f"SELECT {cols} FROM {src.from_}{cond} ORDER BY {src.order}", params

    def _audit(self, deadline: float | None) -> Iterator[dict[str, Any]]:
        if not self._has("audit"):
            return
        p = self._parse
        for r in self._fetch(_AUDIT_SQL, [], deadline):
            yield {
                "id": r[0], "op_id": r[1], "at": p(r[2]), "operator": r[3], "action": r[4], "provider": r[5],
                "lease_id": r[6], "instance_id": r[7], "thread_id": r[8], "result": r[9], "outcome": r[10],
                "error": r[11], "duration_ms": r[12], "dry_run": bool(r[13]), "read_only": bool(r[14]),
                "convergence": r[15], "settled": p(r[16]),
            }  # fmt: skip

    def _alerts(self, deadline: float | None) -> Iterator[dict[str, Any]]:
        if not self._has("alerts"):
            return
        p = self._parse
        now = datetime.now().astimezone()
        for r in self._fetch(_ALERTS_SQL, [], deadline):
            until_t = p(r[11])
            yield {
                "id": r[0], "rule": r[1], "severity": r[2], "state": r[3], "key": r[4], "summary": r[5],
                "scope": r[6], "fired": p(r[7]), "last_seen": p(r[8]), "resolved": p(r[9]),
                "acked_by": r[10], "muted": bool(r[12]) or (until_t is not None and until_t > now),
            }  # fmt: skip

    # ------------------------------------------------------------------ plumbing
    def _has(self, dataset: str) -> bool:
        """Whether the dataset's table exists (a ledger nothing was written to has none)."""
        t = self.target
        if t.kind == "sqlite":
            assert t.path is not None
            if not t.path.exists():
                return False
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            sql = "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?"
        return any(True for _ in self._fetch(sql, [_TABLE[dataset]], None))

    def _fetch(self, sql: str, params: Sequence[Any], deadline: float | None) -> Iterator[tuple]:
        """The rows of `sql` (SQLite's spelling, `?` placeholders) on the ledger, read-only."""
        if self.target.kind == "sqlite":
            assert self.target.path is not None
            return ro_query(str(self.target.path), _LABEL, sql, list(params), self._parse, deadline=deadline)
        return self._pg_fetch(sql, params, deadline)

    def _pg_fetch(self, sql: str, params: Sequence[Any], deadline: float | None) -> Iterator[tuple]:
        import psycopg

        db = connect(self.target)  # LedgerError (one line, no password) when it cannot connect
        try:
            conn = db.conn  # type: ignore[attr-defined]
            budget = _DEFAULT_BUDGET_MS if deadline is None else int((deadline - time.monotonic()) * 1000)
            with conn.transaction():
                # Explore only reads: the server refuses any write in this transaction.
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(max(budget, 1)),))
                with conn.cursor(name="opcockpit_explore_ledger") as cur:
                    cur.itersize = 2000  # rows per round trip: they stream into the evaluator
                    cur.execute(to_pg(sql), tuple(params))
                    yield from cur
        except psycopg.errors.QueryCanceled:
            raise QueryTimeout("the query ran past its time budget and was stopped; narrow it") from None
        except Exception as exc:
            if isinstance(exc, LedgerError) or not is_db_error(exc):
                raise
            raise LedgerError(self.target.shown, f"cannot read the ledger: {reason(exc)}") from None
        finally:
            db.close()


# A statement that named the ledger (`ledger.audit_log`) where it is not attached: SQLite's and
# PostgreSQL's wording of "no such table".
_NAMES_LEDGER = re.compile(r"""(no such table: |relation "|schema ")ledger\b""", re.IGNORECASE)


class LedgerSqlNote:
    """The SQL mode (ports.explore.SqlReadonlyPort) where the ledger is NOT attached (a ledger on
    PostgreSQL, or a platform source on PostgreSQL): a statement over `ledger.*` gets one clear
    line saying so, instead of the database's "no such table"."""

    def __init__(self, inner: Any, target: LedgerTarget) -> None:
        self.inner = inner
        self.target = target

    def execute(
        self, sql: str, params: Mapping[str, Any] | Sequence[Any] = (), *, limit: int = 1000,
        timeout_s: float = 5.0,
    ) -> SqlResult:  # fmt: skip
        try:
            return self.inner.execute(sql, params, limit=limit, timeout_s=timeout_s)
        except SqlRefused as exc:
            if not _NAMES_LEDGER.search(str(exc)):
                raise
            where = "on PostgreSQL" if self.target.kind == "postgres" else "a SQLite file"
            raise SqlRefused(
                f"the ledger ({where}: {self.target.shown}) is not attachable in this SQL mode;"
                " query its datasets with the language: audit ..., alerts ..., events ..."
            ) from None
