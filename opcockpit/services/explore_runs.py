"""Explore's `runs` dataset: run summaries joined with thread -> lease -> provider, built for the
query at hand (issue 11: `runs status:error since:-6h | group by provider | count` <= 1 s at
10k leases, about 460k run_events).

A run's status, event count, thread, lease and provider come with the GROUP BY over run_events;
its times and error message need one event lookup each, and parsing them is most of what the
summaries cost. So, from scratch (the CLI), the conjuncts of the filter that read only those
cheap fields run first over cheap rows, then only the runs they keep get the event details the
plan still reads (domain.query.projection): all of them when the rows are shown, only the
filter's (e.g. `last_event` for `since:`) when the query starts with a count. The evaluator
applies the whole filter again, so the rows it sees are exactly the matches a full build gives.

With a `RunReads` (the cockpit's watermark cache of events.db's runs, services/runs.py), the
summaries the alert rounds keep up to date are reused instead: an unchanged events.db is not
opened at all, a changed one is read from the last seq seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from opcockpit.domain.query import Plan
from opcockpit.domain.query.filter import Filter, predicate
from opcockpit.domain.query.projection import filter_fields, needed_fields, split_filter
from opcockpit.domain.runs import RunSummary
from opcockpit.domain.runs_inc import DETAILS, RunAgg, RunSeqs, run_status, summary
from opcockpit.domain.timeutil import to_sqlite_utc
from opcockpit.ports.leon import EventsReader

__all__ = ["CHEAP_FIELDS", "run_rows", "summary_row", "window_rows"]

# Known from the GROUP BY alone (plus the thread map): no event lookup, no timestamp parsing.
CHEAP_FIELDS = frozenset(("run_id", "thread_id", "status", "events", "lease_id", "provider"))
# The RunAgg seqs (DETAILS) whose event each expensive field reads.
_FIELD_DETAILS: dict[str, tuple[str, ...]] = {
    "started": ("start", "first"),
    "ended": ("done",),
    "last_event": ("last",),
    "error": ("err",),
}
_NONE = (None, None)
_SQLITE_UTC = "%Y-%m-%d %H:%M:%S"
Threads = Mapping[str, tuple[str, str]]


def summary_row(r: RunSummary, threads: Threads) -> dict[str, Any]:
    """The runs dataset's row of one run summary (every field)."""
    lease, prov = threads.get(r.thread_id, _NONE)
    return {
        "run_id": r.run_id, "thread_id": r.thread_id, "status": r.status, "started": r.started_at,
        "ended": r.ended_at, "last_event": r.last_event_at, "error": r.error,
        "events": r.event_count, "lease_id": lease, "provider": prov,
    }  # fmt: skip


def _cheap_row(a: RunAgg | RunSeqs, threads: Threads) -> dict[str, Any]:
    lease, prov = threads.get(a.thread_id, _NONE)
    return {
        "run_id": a.run_id, "thread_id": a.thread_id, "status": run_status(a)[0], "events": a.count,
        "lease_id": lease, "provider": prov,
    }  # fmt: skip


async def run_rows(
    reader: EventsReader,
    threads: Threads,
    plan: Plan,
    *,
    facets: bool,
    parse: Any,
) -> list[dict[str, Any]]:
    """The rows of the runs dataset `plan` reads, newest activity first: every run in the plan's
    window the cheap conjuncts keep, with the fields the plan reads (all, unless it counts)."""
    r: Any = reader
    if not hasattr(r, "run_details"):  # a reader without the split queries: summaries of all
        return [summary_row(s, threads) for s in await reader.runs(since=plan.since)]
    # Every run (no window: run_seqs has no times) unless the reader cannot do without a sort.
    seqs_only = hasattr(r, "run_seqs")
    runs: list[Any] = (
        await r.run_seqs(only=_status_test(plan.filter))
        if seqs_only
        else await r.run_aggs(since=plan.since, details=frozenset())
    )
    cheap, _ = split_filter(plan.filter, CHEAP_FIELDS)
    if cheap is not None:
        runs = _keep(runs, cheap, threads)
    aggs: list[RunAgg] = [s.agg() for s in runs] if seqs_only else runs
    need = needed_fields(plan, facets=facets)
    have: frozenset[str] = frozenset()  # details looked up already
    if seqs_only and plan.since is not None:
        need = None if need is None else need | {"last_event"}
        have = frozenset(("last",))
        aggs = await _window(r, await r.run_details(aggs, have), plan.since, parse)
    if need is None:
        aggs = await r.run_details(aggs, DETAILS - have)
        return [summary_row(summary(a, parse), threads) for a in aggs]
    expensive = [f for f in _FIELD_DETAILS if f in need]
    aggs = await r.run_details(aggs, {d for f in expensive for d in _FIELD_DETAILS[f]} - have)
    out = []
    for a in aggs:
        row = _cheap_row(a, threads)
        if expensive:
            full = summary_row(summary(a, parse), threads)  # the one place a run's fields are derived
            for f in expensive:
                row[f] = full[f]
        out.append(row)
    return out


def _status_test(f: Filter | None) -> Callable[[str], bool] | None:
    """The conjuncts of `f` that read only `status`, as a test of a status (None: there are none):
    the reader skips the runs it rejects before anything else is built for them."""
    on_status, _ = split_filter(f, frozenset(("status",)))
    if on_status is None:
        return None
    keep = predicate(on_status)
    return lambda status: keep({"status": status})


def _keep(aggs: list[Any], cheap: Filter, threads: Threads) -> list[Any]:
    """The runs `cheap` matches. It reads a few cheap fields (status, provider: few values), so
    it is evaluated once per distinct combination of their values, not once per run."""
    get = {
        "run_id": lambda a: a.run_id,
        "thread_id": lambda a: a.thread_id,
        "status": lambda a: run_status(a)[0],
        "events": lambda a: a.count,
        "lease_id": lambda a: threads.get(a.thread_id, _NONE)[0],
        "provider": lambda a: threads.get(a.thread_id, _NONE)[1],
    }
    getters = [get[f] for f in sorted(filter_fields(cheap))]
    keep = predicate(cheap)
    memo: dict[tuple[Any, ...], bool] = {}
    out = []
    for a in aggs:
        key = tuple([g(a) for g in getters])
        ok = memo.get(key)
        if ok is None:
            ok = memo[key] = keep(_cheap_row(a, threads))
        if ok:
            out.append(a)
    return out


async def _window(r: Any, aggs: list[RunAgg], since: datetime, parse: Any) -> list[RunAgg]:
    """The runs `run_aggs(since=...)` keeps (HAVING MAX(created_at) >= since as text), or more
    that the plan's filter drops anyway. A plan's `since` is one of its filter's conjuncts
    (`last_event >= since`), so a run whose last event time is CURRENT_TIMESTAMP text either
    fails that conjunct or has MAX(created_at) >= its last event >= the cut: kept, the evaluator
    decides. Only runs with another kind of last time (rare) have MAX(created_at) looked up."""
    cut = to_sqlite_utc(since)
    unsure = [a for a in aggs if not _utc_text(a.last_at, parse)]
    if not unsure:
        return aggs
    found = {a.run_id: a.max_created for a in await r.run_max_created(unsure)}
    return [
        a
        for a in aggs
        if a.run_id not in found or (isinstance(found[a.run_id], str) and found[a.run_id] >= cut)
    ]


def _utc_text(v: Any, parse: Any) -> bool:
    """v is exactly SQLite CURRENT_TIMESTAMP text of a valid time (its text order is time order)."""
    if v.__class__ is not str or len(v) != 19 or v[10] != " ":
        return False
    dt = parse(v)
    return dt is not None and dt.strftime(_SQLITE_UTC) == v


def window_rows(runs: list[RunSummary], threads: Threads) -> Iterator[dict[str, Any]]:
    """Rows of summaries already built (RunReads): every field, no lookups; lazily, so they are
    built where they are consumed (the evaluator's worker thread, not the event loop)."""
    return (summary_row(s, threads) for s in runs)
