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

from collections.abc import Mapping
from typing import Any

from opcockpit.domain.query import Plan
from opcockpit.domain.query.filter import predicate
from opcockpit.domain.query.projection import needed_fields, split_filter
from opcockpit.domain.runs import RunSummary
from opcockpit.domain.runs_inc import DETAILS, RunAgg, run_status, summary
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
Threads = Mapping[str, tuple[str, str]]


def summary_row(r: RunSummary, threads: Threads) -> dict[str, Any]:
    """The runs dataset's row of one run summary (every field)."""
    lease, prov = threads.get(r.thread_id, _NONE)
    return {
        "run_id": r.run_id, "thread_id": r.thread_id, "status": r.status, "started": r.started_at,
        "ended": r.ended_at, "last_event": r.last_event_at, "error": r.error,
        "events": r.event_count, "lease_id": lease, "provider": prov,
    }  # fmt: skip


def _cheap_row(a: RunAgg, threads: Threads) -> dict[str, Any]:
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
    aggs: list[RunAgg] = await r.run_aggs(since=plan.since, details=frozenset())
    cheap, _ = split_filter(plan.filter, CHEAP_FIELDS)
    if cheap is not None:
        keep = predicate(cheap)
        aggs = [a for a in aggs if keep(_cheap_row(a, threads))]
    need = needed_fields(plan, facets=facets)
    if need is None:
        aggs = await r.run_details(aggs, DETAILS)
        return [summary_row(summary(a, parse), threads) for a in aggs]
    expensive = [f for f in _FIELD_DETAILS if f in need]
    aggs = await r.run_details(aggs, {d for f in expensive for d in _FIELD_DETAILS[f]})
    out = []
    for a in aggs:
        row = _cheap_row(a, threads)
        if expensive:
            full = summary_row(summary(a, parse), threads)  # the one place a run's fields are derived
            for f in expensive:
                row[f] = full[f]
        out.append(row)
    return out


def window_rows(runs: list[RunSummary], threads: Threads) -> list[dict[str, Any]]:
    """Rows of summaries already built (RunReads): every field, no lookups."""
    return [summary_row(s, threads) for s in runs]
