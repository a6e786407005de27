"""Explore's table-backed datasets as SQL, and the typed filter (domain.query.filter) in SQL.

Each dataset is a `Source`: its database, FROM clause and one column expression per field, with
how the value becomes the row's value: `raw` (as stored), `ts` (LEON text time, parsed with the
one `parse_ts`), `us` (the ledger's epoch microseconds) or `py` (filled in Python afterwards: not
filterable in SQL).

The filter is translated atom by atom with the same semantics as `predicate` (Python functions
registered on the connection do the case folding, globs, regexes and time parsing, so Unicode,
timezones and LEON's several time formats agree exactly). Every translated atom yields 0 or 1,
never NULL, so `NOT` stays exact. What cannot be translated stays with the evaluator: a
conjunct is dropped from SQL (the rows are a superset) and a count is not pushed down at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opcockpit.domain.query.filter import AnyText, Bool, Filter, glob, has_text, ieq, regex

__all__ = [
    "SOURCES",
    "THREAD_SEP",
    "Col",
    "FacetQuery",
    "Source",
    "commands_source",
    "count_sql",
    "facet_sql",
    "from_us",
    "register_functions",
    "select_sql",
    "thread_map_json",
    "to_us",
    "translate",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY = timedelta(days=1)
_US = timedelta(microseconds=1)


def to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _US


def from_us(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, slots=True)
class Col:
    field: str
    expr: str
    kind: str = "raw"  # raw / ts / us / py


@dataclass(frozen=True, slots=True)
class Source:
    db: str  # sandbox.db / events.db / ledger
    table: str | None  # must exist (older LEON schemas lack some tables); None: always there
    from_: str
    cols: tuple[Col, ...]
    time_field: str
    order: str  # a stable row order, whatever index a filter makes SQLite use

    @property
    def sql_cols(self) -> tuple[Col, ...]:
        return tuple(c for c in self.cols if c.kind != "py")

    @property
    def py_fields(self) -> tuple[str, ...]:
        return tuple(c.field for c in self.cols if c.kind == "py")

    def col(self, name: str) -> Col | None:
        for c in self.cols:
            if c.field == name:
                return c
        return None


def _cols(spec: str) -> tuple[Col, ...]:
    """'field=expr[@kind], ...' -> Cols (kind defaults to raw)."""
    out = []
    for part in _split(spec):
        name, _, rest = part.strip().partition("=")
        expr, _, kind = rest.partition("@")
        out.append(Col(name.strip(), expr.strip(), kind.strip() or "raw"))
    return tuple(out)


def _split(spec: str) -> list[str]:
    """Split on the commas outside parentheses and quotes (expressions have their own)."""
    parts, depth, quote, cur = [], 0, "", []
    for ch in spec:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return parts


_CHUNKS = (
    "(SELECT group_concat(content, '') FROM (SELECT content FROM terminal_command_chunks k"
    " WHERE k.command_id = c.command_id ORDER BY chunk_id))"
)

SOURCES: dict[str, Source] = {
    "run_events": Source(
        "events.db", None, "run_events",
        _cols("seq=seq, thread_id=thread_id, run_id=run_id, event_type=event_type, data=data,"
              " message_id=message_id, created=created_at@ts, lease_id=@py, provider=@py"),
        "created", "seq",
    ),
    "sessions": Source(
        "sandbox.db", None,
        "chat_sessions s LEFT JOIN sandbox_leases l ON l.lease_id = s.lease_id",
        _cols("session_id=s.chat_session_id, thread_id=s.thread_id, terminal_id=s.terminal_id,"
              " lease_id=s.lease_id, provider=l.provider_name, runtime_id=s.runtime_id, status=s.status,"
              " idle_ttl=s.idle_ttl_sec, max_duration=s.max_duration_sec, started=s.started_at@ts,"
              " last_active=s.last_active_at@ts, ended=s.ended_at@ts, close_reason=s.close_reason"),
        "started", "s.rowid",
    ),
    "lease_events": Source(
        "sandbox.db", "lease_events",
        "lease_events e LEFT JOIN sandbox_leases l ON l.lease_id = e.lease_id",
        _cols("event_id=e.event_id, lease_id=e.lease_id, provider=l.provider_name, event_type=e.event_type,"
              " source=e.source, payload=e.payload_json, error=e.error, created=e.created_at@ts"),
        "created", "e.rowid",
    ),
    "provider_events": Source(
        "sandbox.db", "provider_events", "provider_events",
        _cols("event_id=event_id, provider=provider_name, instance_id=instance_id, event_type=event_type,"
              " payload=payload_json, lease_id=matched_lease_id, created=created_at@ts"),
        "created", "rowid",
    ),
    # the cockpit's event ledger (adapters/ledger/events.py): before/after are JSON in `body`
    "events": Source(
        "ledger", "events", "events",
        _cols("id=id, type=type, occurred_at=occurred_us@us, observed_at=observed_us@us, source=source,"
              " lease_id=lease_id, instance_id=instance_id, thread_id=thread_id, provider=provider,"
              " before=json_extract(body, '$.before'), after=json_extract(body, '$.after')"),
        "observed_at", "id",
    ),
}  # fmt: skip


def commands_source(has_chunks: bool) -> Source:
    return Source(
        "sandbox.db", None,
        "terminal_commands c LEFT JOIN abstract_terminals t ON t.terminal_id = c.terminal_id"
        " LEFT JOIN sandbox_leases l ON l.lease_id = t.lease_id",
        _cols("command_id=c.command_id, terminal_id=c.terminal_id, session_id=c.chat_session_id,"
              " thread_id=t.thread_id, lease_id=t.lease_id, provider=l.provider_name, command=c.command_line,"
              " cwd=c.cwd, status=c.status, exit_code=c.exit_code, stdout=c.stdout, stderr=c.stderr,"
              f" output={_CHUNKS if has_chunks else 'NULL'}, created=c.created_at@ts,"
              " finished=c.finished_at@ts"),
        "created", "c.rowid",
    )  # fmt: skip


def register_functions(conn: sqlite3.Connection, parse: Callable[[object], datetime | None]) -> None:
    """The evaluator's semantics as SQL functions (exact: the same Python code runs)."""

    def ts(v: object) -> int | None:
        dt = parse(v)
        return None if dt is None else to_us(dt)

    def has(needle: str, *values: Any) -> int:
        return int(has_text(needle, values))

    conn.create_function("oc_ts", 1, ts, deterministic=True)
    conn.create_function("oc_ieq", 2, lambda x, w: int(ieq(x, w)), deterministic=True)
    conn.create_function("oc_glob", 2, lambda x, w: int(glob(x, w)), deterministic=True)
    conn.create_function("oc_re", 2, lambda x, w: int(regex(x, w)), deterministic=True)
    conn.create_function("oc_has", -1, has, deterministic=True)


# The fields the rows path fills from thread_id (ExploreRows.thread_leases: lease, provider), and
# the CTE facet_sql joins them from: its first parameter is THREAD_MAP, which the caller replaces
# by `thread_map_json(...)` of that map.
THREAD_FIELDS = ("lease_id", "provider")
THREAD_MAP = object()
THREAD_CTE = (
    "WITH tl(thread, lease_id, provider) AS MATERIALIZED (SELECT key, json_extract(value, '$[0]'),"
    " json_extract(value, '$[1]') FROM json_each(?))"
)


def thread_map_json(threads: Mapping[str, tuple[str, str]]) -> str:
    return json.dumps(threads)


# --------------------------------------------------------------------------- translation

_CMP = {"<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _value_expr(c: Col) -> str:
    return f"oc_ts({c.expr})" if c.kind == "ts" else c.expr


def _param(c: Col, v: Any) -> Any:
    if c.kind in ("ts", "us"):
        return to_us(v) if isinstance(v, datetime) else _Untranslatable
    if isinstance(v, bool | datetime):
        return _Untranslatable
    return v


class _Untranslatable:
    pass


def translate(f: Filter, src: Source) -> tuple[str, list[Any]] | None:
    """`f` as an SQL condition over `src` (0/1 for every row), or None when it cannot be exact."""
    if isinstance(f, Bool):
        parts = [translate(i, src) for i in f.items]
        if any(p is None for p in parts):
            return None
        params = [x for p in parts for x in p[1]]  # type: ignore[index]
        if f.op == "not":
            return f"(NOT {parts[0][0]})", params  # type: ignore[index]
        return "(" + f" {f.op.upper()} ".join(p[0] for p in parts) + ")", params  # type: ignore[index]
    if isinstance(f, AnyText):
        cols = [src.col(n) for n in f.fields]
        if any(c is None or c.kind != "raw" for c in cols):
            return None
        return f"oc_has(?, {', '.join(c.expr for c in cols)})", [f.needle]  # type: ignore[union-attr]
    c = src.col(f.field)
    if c is None or c.kind == "py":
        return None
    e, op = _value_expr(c), f.op
    if op == "null":
        return (f"({e} IS NULL OR {e} = '')" if c.kind == "raw" else f"({e} IS NULL)"), []
    if op == "notnull":
        return (f"({e} IS NOT NULL AND {e} <> '')" if c.kind == "raw" else f"({e} IS NOT NULL)"), []
    if op in ("ieq", "glob", "re"):
        if c.kind != "raw":  # the evaluator compares the parsed value's str(): not the column's
            return None
        return f"oc_{op}({e}, ?)", [f.value]
    v = _param(c, f.value)
    if v is _Untranslatable:
        return None
    if c.kind == "ts" and op in ("=", "!=", *_CMP):
        return _ts_compare(c.expr, op, f.value, v)
    if op == "=":
        return f"IFNULL({e} = ?, 0)", [v]
    if op == "!=":
        return f"({e} IS NOT ?)", [v]
    if op in _CMP:
        return f"IFNULL({e} {_CMP[op]} ?, 0)", [v]
    return None


# SQLite's CURRENT_TIMESTAMP text, which `parse_ts` reads as UTC: when the date and time it
# names, printed back by SQLite, is the text itself, it is a valid time of exactly that shape
# (the julianday round trip normalises Feb 30 and 24:00, which datetime() alone passes through,
# and rejects 'T', fractions, zones), so its order as text is its order in time and the
# comparison runs in C. Year 0000 is valid for SQLite only (a substr: `e >= '0001'` would compare
# with the number 1, the column having numeric affinity). Every other value (naive local ISO,
# offsets, epochs, garbage) goes through oc_ts, the one parser, as before.
_CANONICAL = "(datetime(julianday({e})) = {e} AND substr({e}, 1, 4) <> '0000')"


def _sqlite_utc_text(dt: datetime) -> str:
    """`dt` as CURRENT_TIMESTAMP text with the microseconds when it has some: compared as text
    with whole-second values it orders exactly as the times do ('…:51' < '…:51.5' < '…:52')."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.isoformat(sep=" ")


def _ts_compare(expr: str, op: str, when: Any, us: int) -> tuple[str, list[Any]]:
    """A comparison of a LEON text-time column with a time: in C for CURRENT_TIMESTAMP text (about
    all of events.db, 460k rows at 10k leases), through oc_ts for the rest; 0/1, never NULL."""
    sql_op = {"=": "=", "!=": "<>", **_CMP}[op]
    slow = f"(oc_ts({expr}) IS NOT ?)" if op == "!=" else f"IFNULL(oc_ts({expr}) {sql_op} ?, 0)"
    fast = f"({expr} {sql_op} ?)"
    sql = f"(CASE WHEN {_CANONICAL.format(e=expr)} THEN {fast} ELSE {slow} END)"
    return sql, [_sqlite_utc_text(when), us]


def _conjuncts(f: Filter | None) -> list[Filter]:
    if f is None:
        return []
    if isinstance(f, Bool) and f.op == "and":
        return [x for i in f.items for x in _conjuncts(i)]
    return [f]


def _window(src: Source, since: datetime | None, until: datetime | None) -> tuple[list[str], list[Any]]:
    """A cheap pre-filter on the time column: exact for epoch microseconds; for LEON's text times,
    the date compared a day early/late (zones and 'T' vs ' ' cannot matter), non-text passes."""
    c = src.col(src.time_field)
    assert c is not None
    where: list[str] = []
    params: list[Any] = []
    if c.kind == "us":
        if since is not None:
            where.append(f"{c.expr} >= ?")
            params.append(to_us(since))
        if until is not None:
            where.append(f"{c.expr} <= ?")
            params.append(to_us(until))
        return where, params
    if since is not None:
        where.append(f"({c.expr} >= ? OR typeof({c.expr}) <> 'text')")
        params.append((since - _DAY).date().isoformat())
    if until is not None:
        where.append(f"({c.expr} < ? OR typeof({c.expr}) <> 'text')")
        params.append((until + 2 * _DAY).date().isoformat())
    return where, params


def _where(
    src: Source, since: datetime | None, until: datetime | None, f: Filter | None, *, exact: bool
) -> tuple[str, list[Any]] | None:
    where, params = _window(src, since, until)
    for part in _conjuncts(f):
        t = translate(part, src)
        if t is None:
            if exact:
                return None
            continue
        where.append(t[0])
        params.extend(t[1])
    return (" WHERE " + " AND ".join(where) if where else ""), params


def select_sql(
    src: Source, since: datetime | None, until: datetime | None, f: Filter | None
) -> tuple[str, list[Any]]:
    """SELECT of every SQL column, filtered by what translates (a superset of the matches)."""
    w = _where(src, since, until, f, exact=False)
    assert w is not None
    cols = ", ".join(c.expr for c in src.sql_cols)
    return f"SELECT {cols} FROM {src.from_}{w[0]} ORDER BY {src.order}", w[1]


def count_sql(
    src: Source, since: datetime | None, until: datetime | None, f: Filter | None, by: tuple[str, ...]
) -> tuple[str, list[Any]] | None:
    """`SELECT by..., COUNT(*) ... GROUP BY` when the whole filter and every `by` are exact."""
    cols = [src.col(b) for b in by]
    if any(c is None or c.kind != "raw" for c in cols):
        return None
    w = _where(src, since, until, f, exact=True)
    if w is None:
        return None
    exprs = [c.expr for c in cols]  # type: ignore[union-attr]
    group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(exprs)))}" if exprs else ""
    return f"SELECT {', '.join([*exprs, 'COUNT(*)'])} FROM {src.from_}{w[0]}{group}", w[1]


# group_concat's separator for thread ids (the unit separator: never in LEON's ids; an id that
# holds it splits into more parts than the group has rows, which sends the caller to the join)
THREAD_SEP = "\x1f"


@dataclass(frozen=True, slots=True)
class FacetQuery:
    """One pass for a count and its facets (facet_sql). Its groups are rows `(*values, COUNT,
    MIN(row order))`, or, when `thread_at` is set, `(*plain values, COUNT, MIN(row order),
    group_concat(thread_id))`: the caller counts each group's threads and maps them to
    lease_id/provider; `thread_at[i]` names, for value column i, its index in THREAD_FIELDS
    (None: a plain value, in order). A group's MIN(row order) is then not the MIN of each thread
    value in it, which only a tie between two such values' counts asks for: `fallback` is the
    same pass with the thread map joined in SQLite (THREAD_CTE; its first parameter THREAD_MAP),
    exact for everything."""

    sql: str
    params: list[Any]
    by_at: list[int]
    facet_at: list[int]
    thread_at: tuple[int | None, ...] | None = None
    fallback: tuple[str, list[Any]] | None = None


def facet_sql(
    src: Source,
    since: datetime | None,
    until: datetime | None,
    f: Filter | None,
    by: tuple[str, ...],
    fields: tuple[str, ...],
) -> FacetQuery | None:
    """One pass for a count and its facets: `SELECT cols..., COUNT(*), MIN(row order) ... GROUP BY
    cols` over the rows matching the whole filter (None when it or a field is not exact), with the
    column index of each `by` and each facet field. The caller adds the groups up per `by` and per
    facet; MIN(row order) is where a value first appears (Counter.most_common keeps first-seen
    order among equal counts). One pass, so an expensive filter runs once.

    A field the rows path fills from the thread (lease_id, provider) is not a column: the groups
    are by the other fields only, each with its rows' thread ids (group_concat), which the caller
    counts (collections.Counter, in C) and maps. At 10k leases (~380k run_events in 24 h) joining
    the thread map per row and sorting every row by (event_type, provider) cost ~1.2 s of CPU,
    grouping by thread_id as well about as much; the sort by event_type alone and the
    concatenation about half of it."""
    exprs: list[str] = []
    thread = src.col("thread_id")
    if thread is not None and thread.kind != "raw":
        thread = None

    def index(name: str) -> int | None:
        c = src.col(name)
        if c is not None and c.kind == "py":  # lease_id/provider: the thread's
            if thread is None or name not in THREAD_FIELDS:
                return None
            c = Col(name, f"tl.{name}")
        if c is None or c.kind not in ("raw", "py"):
            return None
        if c.expr not in exprs:
            exprs.append(c.expr)
        return exprs.index(c.expr)

    by_at = [index(b) for b in by]
    facet_at = [index(x) for x in fields]
    if any(i is None for i in (*by_at, *facet_at)):
        return None
    w = _where(src, since, until, f, exact=True)
    if w is None:
        return None
    cond, params = w
    mine = [int(i) for i in by_at], [int(i) for i in facet_at]

    def grouped(values: list[str], join: str, *extra: str) -> str:
        # `+col` (a no-op on the value) keeps SQLite from walking the (thread_id, run_id, seq)
        # index for GROUP BY thread_id: in index order every row is a random table lookup
        cols = ", ".join([*(f"+{e}" for e in values), "COUNT(*)", f"MIN({src.order})", *extra])
        group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(values)))}" if values else ""
        return f"SELECT {cols} FROM {src.from_}{join}{cond}{group}"

    if not any(e.startswith("tl.") for e in exprs):
        return FacetQuery(grouped(exprs, ""), params, *mine)
    assert thread is not None
    join = f" LEFT JOIN tl ON tl.thread = {thread.expr}"
    fallback = THREAD_CTE + " " + grouped(exprs, join), [THREAD_MAP, *params]
    plain = [e for e in exprs if not e.startswith("tl.")]
    thread_at = tuple(THREAD_FIELDS.index(e[3:]) if e.startswith("tl.") else None for e in exprs)
    sql = grouped(plain, "", f"group_concat({thread.expr}, char({ord(THREAD_SEP)}))")
    return FacetQuery(sql, params, *mine, thread_at, fallback)
