"""Evaluation: a parsed Query + its Dataset -> a Plan (typed predicate, time window, stages), and a
Plan over rows (dicts of field -> typed value) -> a Result. Pure functions; rows come from the
explore service.

Semantics (docs/explore.md): `field:value` is a loose match (text: case-insensitive, `*` globs;
time: at or after; others: equal); `=`/`!=` exact; `< > <= >=` by the field's type; `~` a regex
search; `in (...)` any loose match; free text a case-insensitive substring of any text field;
`null` (bare) matches an empty value. `since:`/`until:` bound the dataset's time field. A missing
value never matches a comparison except `!=`.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from opcockpit.domain.query.ast import (
    And,
    Compare,
    Count,
    CountByTime,
    Expr,
    GroupBy,
    InList,
    Limit,
    Literal,
    Not,
    Or,
    Query,
    Sort,
    Stage,
    Text,
)
from opcockpit.domain.query.catalog import DATASETS, Dataset
from opcockpit.domain.query.errors import MissingParameterError, QueryError, QueryTimeout, UnknownNameError
from opcockpit.domain.query.filter import AnyText, Atom, Bool, Filter, predicate
from opcockpit.domain.timeutil import parse_duration, parse_ts

Row = dict[str, Any]
Pred = Callable[[Row], bool]

DEFAULT_CAP = 10_000  # rows returned without an explicit limit; more are counted and reported
FACET_TOP = 10
PSEUDO = ("since", "until")
_REL = re.compile(r"^[+-]\s*\d")


@dataclass(frozen=True, slots=True)
class Plan:
    query: Query
    dataset: Dataset
    predicate: Pred | None
    since: datetime | None  # a lower bound on the time field every matching row satisfies
    until: datetime | None
    stages: tuple[Stage, ...]
    columns: tuple[str, ...]  # of the result (after aggregation stages)
    filter: Filter | None = None  # the typed filter `predicate` evaluates (a source may run it in SQL)


@dataclass(slots=True)
class Result:
    dataset: str
    columns: tuple[str, ...]
    rows: list[Row]
    matched: int  # rows the filter matched (before stages)
    total: int  # result rows before the cap
    capped: bool  # rows were cut to the cap (not by the query's own limit)
    cap: int
    facets: dict[str, list[tuple[Any, int]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # stale sources etc.: shown, never hidden
    elapsed_s: float = 0.0

    @property
    def notice(self) -> str | None:
        if not self.capped:
            return None
        return (
            f"showing the first {len(self.rows)} of {self.total} rows (capped at {self.cap}); "
            "narrow the query or add `| limit N` / --limit N"
        )


def resolve(query: Query) -> Dataset:
    spec = DATASETS.get(query.dataset)
    if spec is None:
        raise UnknownNameError(
            f"unknown dataset {query.dataset!r} (datasets: {', '.join(DATASETS)})",
            text=query.text or None,
            column=query.dataset_column,
        )
    return spec


def bind(query: Query, params: Mapping[str, str]) -> Query:
    """`:name` literals replaced by `params[name]` (as quoted strings); MissingParameterError
    names every missing one."""
    missing = [p for p in query.params() if p not in params]
    if missing:
        raise MissingParameterError(
            f"missing parameter{'s' if len(missing) > 1 else ''} {', '.join(':' + m for m in missing)}; "
            f"pass {' '.join(f'--param {m}=VALUE' for m in missing)}"
        )

    def lit(v: Literal) -> Literal:
        if v.kind != "param":
            return v
        return Literal("string", str(params[v.text]), v.column)

    def walk(e: Expr | None) -> Expr | None:
        if e is None:
            return None
        if isinstance(e, Compare):
            return Compare(e.field, e.op, lit(e.value), e.column)
        if isinstance(e, Text):
            return Text(lit(e.value))
        if isinstance(e, InList):
            return InList(e.field, tuple(lit(v) for v in e.values), e.column)
        if isinstance(e, Not):
            return Not(walk(e.expr))  # type: ignore[arg-type]
        return type(e)(tuple(walk(i) for i in e.items))  # type: ignore[misc]

    return Query(query.dataset, walk(query.where), query.stages, query.text, query.dataset_column)


# --------------------------------------------------------------------------- compile


class _Compiler:
    def __init__(self, query: Query, spec: Dataset, now: datetime, local_tz: tzinfo | None) -> None:
        self.q, self.spec, self.now, self.tz = query, spec, now, local_tz

    def err(self, message: str, column: int | None) -> QueryError:
        return QueryError(message, text=self.q.text or None, column=column or None)

    def unknown_field(self, name: str, column: int, names: Iterable[str]) -> UnknownNameError:
        return UnknownNameError(
            f"unknown field {name!r} in {self.spec.name} (fields: {', '.join(names)})",
            text=self.q.text or None,
            column=column or None,
        )

    # values ------------------------------------------------------------------
    def as_time(self, v: Literal) -> datetime:
        t = v.text.strip()
        if t.lower() == "now":
            return self.now
        if v.kind != "time" and _REL.match(t):
            sign = -1 if t.startswith("-") else 1
            try:
                return self.now + sign * parse_duration(t[1:])
            except ValueError:
                pass
        numeric = t.lstrip("+-").replace(".", "").isdigit()  # parse_ts reads numbers as epochs
        parsed = parse_ts(t, local_tz=self.tz) if t and not numeric else None
        if parsed is None:
            raise self.err(f"{t!r} is not a time (use -2h, -1d, now or 2026-12-01T14:00)", v.column)
        return parsed

    def coerce(self, typ: str, v: Literal, fname: str) -> Any:
        if typ == "time":
            return self.as_time(v)
        if typ in ("int", "float"):
            try:
                num = float(v.text)
            except ValueError:
                raise self.err(f"field {fname} is a number; {v.text!r} is not", v.column) from None
            return int(num) if typ == "int" and num.is_integer() else num
        if typ == "bool":
            low = v.text.lower()
            if low in ("true", "yes", "1", "y"):
                return True
            if low in ("false", "no", "0", "n"):
                return False
            raise self.err(f"field {fname} is true/false; {v.text!r} is neither", v.column)
        return v.text

    # the typed filter (domain.query.filter: one tree for Python and SQL) ------------------
    def compile(self, e: Expr) -> Filter:
        if isinstance(e, And):
            return Bool("and", tuple(self.compile(i) for i in e.items))
        if isinstance(e, Or):
            return Bool("or", tuple(self.compile(i) for i in e.items))
        if isinstance(e, Not):
            return Bool("not", (self.compile(e.expr),))
        if isinstance(e, Text):
            return AnyText(e.value.text.lower(), self.spec.text_fields)
        if isinstance(e, InList):
            return Bool("or", tuple(self.compare(Compare(e.field, ":", v, e.column)) for v in e.values))
        return self.compare(e)

    def compare(self, c: Compare) -> Atom:
        name, op = c.field, c.op
        if name in PSEUDO:
            if op not in (":", "=", ">", ">=", "<", "<="):
                raise self.err(f"{name} takes a time, e.g. {name}:-2h", c.column)
            bound = self.as_time(c.value)
            return Atom(self.spec.time_field, ">=" if name == "since" else "<", bound)
        fdef = self.spec.field(name)
        if fdef is None:
            raise self.unknown_field(name, c.column, (*self.spec.names, *PSEUDO))
        v = c.value
        if v.kind == "word" and v.text.lower() == "null" and op in (":", "=", "!="):
            return Atom(name, "notnull" if op == "!=" else "null")
        if op == "~":
            try:
                re.compile(v.text)
            except re.error as exc:
                raise self.err(f"bad regex {v.text!r}: {exc}", v.column) from None
            return Atom(name, "re", v.text)
        typ = fdef.type
        want = self.coerce(typ, v, name)
        if op == ":":
            if typ == "time":
                op = ">="
            elif typ == "text":
                low = want.lower()
                return Atom(name, "glob" if "*" in low or "?" in low else "ieq", low)
            else:
                op = "="
        return Atom(name, op, want)

    # the time window every match lies in (pushed down to the source as a pre-filter) -----------
    def window(self, e: Expr | None) -> tuple[datetime | None, datetime | None]:
        lo: datetime | None = None
        hi: datetime | None = None
        items = e.items if isinstance(e, And) else (e,) if e is not None else ()
        tf = self.spec.time_field
        for c in items:
            if not isinstance(c, Compare):
                continue
            is_tf = c.field == tf
            if c.field == "since" or (is_tf and c.op in (":", ">", ">=")):
                t = self.as_time(c.value)
                lo = t if lo is None else max(lo, t)
            elif c.field == "until" or (is_tf and c.op in ("<", "<=")):
                t = self.as_time(c.value)
                hi = t if hi is None else min(hi, t)
        return lo, hi

    # stages ------------------------------------------------------------------
    def stages(self) -> tuple[str, ...]:
        cols: tuple[str, ...] = self.spec.names
        group: tuple[str, ...] | None = None
        for st in self.q.stages:
            if isinstance(st, Sort):
                for k in st.keys:
                    if k.field not in cols:
                        raise UnknownNameError(
                            f"cannot sort by {k.field!r} here (columns: {', '.join(cols)})",
                            text=self.q.text or None, column=k.column or None,
                        )  # fmt: skip
            elif isinstance(st, GroupBy | Count):
                names = st.fields if isinstance(st, GroupBy) else st.by
                for n, col in zip(names, st.columns, strict=False):
                    if n not in cols:
                        raise self.unknown_field(n, col, cols)
                if isinstance(st, GroupBy):
                    group = names
                    cols = (*names, "count")
                else:
                    cols = (*(names or group or ()), "count")
                    group = None
            elif isinstance(st, CountByTime):
                if self.spec.time_field not in cols and group is None:
                    raise self.err(
                        "count by time needs the rows' time field: put it before other counts", None
                    )
                cols = (*(group or ()), "time", "count")
                group = None
        return cols


def compile_query(
    query: Query,
    *,
    now: datetime,
    params: Mapping[str, str] | None = None,
    local_tz: tzinfo | None = None,
) -> Plan:
    """Check names and types, bind parameters and build the plan (raises QueryError subclasses)."""
    spec = resolve(query)
    query = bind(query, params or {})
    c = _Compiler(query, spec, now, local_tz)
    filt = c.compile(query.where) if query.where is not None else None
    since, until = c.window(query.where)
    cols = c.stages()
    pred = predicate(filt) if filt is not None else None
    return Plan(query, spec, pred, since, until, query.stages, cols, filt)


# --------------------------------------------------------------------------- run


def _sort(rows: list[Row], keys: tuple[Any, ...]) -> list[Row]:
    # stable multi-key sort: last key first; None sorts last in both directions
    for k in reversed(keys):
        present = [r for r in rows if r.get(k.field) is not None]
        absent = [r for r in rows if r.get(k.field) is None]
        try:
            present.sort(key=lambda r, f=k.field: r[f], reverse=k.desc)
        except TypeError:
            present.sort(key=lambda r, f=k.field: str(r[f]), reverse=k.desc)
        rows = present + absent
    return rows


def _bucket(t: datetime, size_s: float) -> datetime:
    ts = t.timestamp()
    return datetime.fromtimestamp(ts - ts % size_s, tz=UTC)


def run_plan(
    plan: Plan,
    rows: Iterable[Row],
    *,
    cap: int | None = None,
    facets: bool = False,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Result:
    """Filter, facet and run the stages over `rows`. `cap` (default DEFAULT_CAP) bounds the rows
    returned when the query has no limit of its own; `deadline` (clock() value) stops a runaway
    evaluation with QueryTimeout."""
    cap = DEFAULT_CAP if cap is None else cap
    pred = plan.predicate
    matched: list[Row] = []
    for i, r in enumerate(rows):
        if deadline is not None and not i & 0x1FFF and clock() > deadline:
            raise QueryTimeout(
                f"the query ran past its time budget after {i} rows and was stopped; narrow it"
            )
        if pred is None or pred(r):
            matched.append(r)
    n_matched = len(matched)
    facet_counts: dict[str, list[tuple[Any, int]]] = {}
    if facets:
        for f in plan.dataset.facets:
            cnt = Counter(r.get(f) for r in matched)
            facet_counts[f] = cnt.most_common(FACET_TOP)
    out, limited = _run_stages(matched, plan.stages, plan.dataset.time_field)
    return _finish(plan, out, n_matched, limited, cap, facet_counts)


def _finish(
    plan: Plan, out: list[Row], matched: int, limited: bool, cap: int, facets: dict[str, list[Any]]
) -> Result:
    total = len(out)
    capped = not limited and total > cap
    rows_out = out[:cap] if capped else out
    return Result(plan.dataset.name, plan.columns, rows_out, matched, total, capped, cap, facets)


def _run_stages(out: list[Row], stages: tuple[Stage, ...], tf: str) -> tuple[list[Row], bool]:
    group: tuple[str, ...] | None = None  # `group by` waits for its `count` (implicit if absent)
    limited = False
    for st in stages:
        if isinstance(st, GroupBy):
            group = st.fields
            continue
        if isinstance(st, Count):
            out, group = _count(out, st.by or group or ()), None
            continue
        if isinstance(st, CountByTime):
            out, group = _count_time(out, group or (), tf, st.bucket_s), None
            continue
        if group is not None:
            out, group = _count(out, group), None
        if isinstance(st, Sort):
            out = _sort(out, st.keys)
        elif isinstance(st, Limit):
            out = out[: st.n]
            limited = True
    if group is not None:
        out = _count(out, group)
    return out, limited


@dataclass(frozen=True, slots=True)
class CountPush:
    """The leading count a source may compute itself: counts per `by` values, which consumes the
    first `consumed` stages (`group by f | count`, `count by f`, `count`, an implicit count)."""

    by: tuple[str, ...]
    consumed: int


def count_pushdown(plan: Plan) -> CountPush | None:
    """The count the plan starts with, when its stages start with one (else None)."""
    st = plan.stages
    if not st:
        return None
    if isinstance(st[0], Count):
        return CountPush(st[0].by, 1)
    if isinstance(st[0], GroupBy):
        if len(st) > 1 and isinstance(st[1], Count):
            return CountPush(st[1].by or st[0].fields, 2)
        if len(st) > 1 and isinstance(st[1], GroupBy | CountByTime):
            return None
        return CountPush(st[0].fields, 1)
    return None


def run_counted(
    plan: Plan, push: CountPush, counts: Iterable[tuple[tuple[Any, ...], int]], *, cap: int | None = None
) -> Result:
    """The Result of `plan` from counts a source computed (`(values of push.by, n)` pairs): the
    same rows, order and totals `run_plan` gives over the matching rows."""
    cap = DEFAULT_CAP if cap is None else cap
    pairs = [(tuple(k), n) for k, n in counts if n]
    matched = sum(n for _, n in pairs)
    if not push.by:
        out: list[Row] = [{"count": matched}]
    else:
        ordered = sorted(pairs, key=lambda kv: (-kv[1], tuple(str(x) for x in kv[0])))
        out = [{**dict(zip(push.by, k, strict=True)), "count": n} for k, n in ordered]
    out, limited = _run_stages(out, plan.stages[push.consumed :], plan.dataset.time_field)
    return _finish(plan, out, matched, limited, cap, {})


def _count(rows: list[Row], by: tuple[str, ...]) -> list[Row]:
    """One row per distinct `by` value with its count, biggest first; no `by`: one total row."""
    if not by:
        return [{"count": len(rows)}]
    cnt = Counter(tuple(r.get(f) for f in by) for r in rows)
    ordered = sorted(cnt.items(), key=lambda kv: (-kv[1], tuple(str(x) for x in kv[0])))
    return [{**dict(zip(by, k, strict=True)), "count": n} for k, n in ordered]


def _count_time(rows: list[Row], by: tuple[str, ...], tf: str, size_s: float) -> list[Row]:
    """Rows per time bucket of the time field (and per `by` value), oldest bucket first."""
    cnt: Counter = Counter()
    for r in rows:
        t = r.get(tf)
        if t is not None:
            cnt[(*(r.get(k) for k in by), _bucket(t, size_s))] += 1
    ordered = sorted(cnt.items(), key=lambda kv: (kv[0][-1], tuple(str(x) for x in kv[0][:-1])))
    return [dict(zip((*by, "time", "count"), (*k, n), strict=True)) for k, n in ordered]


__all__ = [
    "DEFAULT_CAP", "FACET_TOP", "CountPush", "Plan", "Result", "bind", "compile_query", "count_pushdown",
    "resolve", "run_counted", "run_plan",
]  # fmt: skip
