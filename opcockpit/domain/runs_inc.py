"""Runs kept up to date from events.db by seq watermark (issue 10): pure merge rules.

`EventsDbReader.runs` derives a run from one GROUP BY over all of its events. The live cockpit
cannot afford that every alert round (the drift, like LEON, appends run_events all the time), so
it keeps one `RunAgg` per run and folds in only the events above the last seq it has read: every
aggregate is a MIN/MAX/COUNT, so the events of one run read in two parts merge into exactly what
one read of all of them gives (tests/test_runs_incremental.py holds that on random writes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from opcockpit.domain.runs import ACTIVITY_PREFIX, RunHealth, RunSummary, StuckRun

__all__ = [
    "DETAILS", "STATUSES", "RunAgg", "RunSeqs", "carried", "error_text", "health_until", "merge",
    "run_status", "status_of", "summary",
]  # fmt: skip

# The seqs of a RunAgg whose event time (or, for `err`, data) a summary reads: a reader may look
# up only some of them (EventsDbReader.run_aggs(details=...)).
DETAILS = frozenset(("first", "last", "start", "done", "err"))


@dataclass(frozen=True, slots=True)
class RunAgg:
    """One run's aggregates over the events read so far; `*_at` are events.db's raw created_at
    of the seq beside them (parsed only when a summary is built)."""

    run_id: str
    thread_id: str  # MIN(thread_id)
    count: int
    first: int
    last: int
    start: int | None  # first run_start
    done: int | None  # last run_done
    err: int | None  # last error
    cancel: int | None
    retry: int | None
    max_created: Any  # MAX(created_at): the window filter
    first_at: Any
    last_at: Any
    start_at: Any
    done_at: Any
    err_data: str | None


class RunSeqs(NamedTuple):
    """A run's aggregates without times (EventsDbReader.run_seqs): enough for its status. A
    tuple, so tens of thousands cost little; `agg()` for the runs a query keeps."""

    run_id: str
    thread_id: str
    count: int
    first: int
    last: int
    start: int | None
    done: int | None
    err: int | None
    cancel: int | None
    retry: int | None

    def agg(self) -> RunAgg:
        return RunAgg(*self, None, None, None, None, None, None)


def _lo(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _hi(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _max_created(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return b if a is None else a
    try:
        return max(a, b)
    except TypeError:  # odd types in created_at: SQLite orders numbers before text
        return a if isinstance(a, str) else b


def merge(old: RunAgg, new: RunAgg) -> RunAgg:
    """`old` (events up to a seq) and `new` (events after it) as one run."""
    start = _lo(old.start, new.start)
    done = _hi(old.done, new.done)
    err = _hi(old.err, new.err)
    return RunAgg(
        run_id=old.run_id,
        thread_id=min(old.thread_id, new.thread_id),
        count=old.count + new.count,
        first=min(old.first, new.first),
        last=max(old.last, new.last),
        start=start,
        done=done,
        err=err,
        cancel=_hi(old.cancel, new.cancel),
        retry=_hi(old.retry, new.retry),
        max_created=_max_created(old.max_created, new.max_created),
        first_at=old.first_at if old.first <= new.first else new.first_at,
        last_at=new.last_at if new.last >= old.last else old.last_at,
        start_at=old.start_at if start is not None and start == old.start else new.start_at,
        done_at=old.done_at if done is not None and done == old.done else new.done_at,
        err_data=old.err_data if err is not None and err == old.err else new.err_data,
    )


def run_status(a: RunAgg | RunSeqs) -> tuple[str, int | None]:
    """(status, the seq of the error that counts) from the seqs alone: no event time or data."""
    return status_of(a.done, a.err, a.cancel, a.retry)


STATUSES = ("running", "completed", "error", "cancelled")  # every status status_of gives


def status_of(
    done: int | None, err: int | None, cancel: int | None, retry: int | None
) -> tuple[str, int | None]:
    """run_status from a run's last run_done, error, cancelled and retry seqs; a run with none of
    them (nor a run_start) is `running`."""
    if err is not None and retry is not None and retry > err:
        err = None  # a `retry` after the error: LEON retried the stream, the error was not final
    if cancel is not None and (err is None or cancel > err):
        return "cancelled", err
    if err is not None:
        return "error", err
    return ("completed" if done is not None else "running"), err


def summary(a: RunAgg, parse: Any) -> RunSummary:
    """The RunSummary `EventsDbReader.runs` gives for these aggregates (`parse`: created_at)."""
    status, err = run_status(a)
    started: datetime | None = parse(a.start_at if a.start is not None else a.first_at)
    return RunSummary(
        run_id=a.run_id,
        thread_id=a.thread_id,
        status=status,
        started_at=started,
        ended_at=parse(a.done_at) if a.done is not None else None,
        last_event_at=parse(a.last_at),
        error=error_text(a.err_data) if err is not None else None,
        event_count=int(a.count),
        first_seq=int(a.first),
        last_seq=int(a.last),
    )


def error_text(data: str | None) -> str | None:
    """data.error of an `error` event; the raw data when it is not the expected JSON object."""
    if data is None:
        return None
    try:
        obj = json.loads(data)
    except (TypeError, ValueError):
        return data
    if isinstance(obj, dict) and "error" in obj:
        err = obj["error"]
        return err if isinstance(err, str) else json.dumps(err)
    return data


# --------------------------------------------------------------------------- run health over time

_NEVER = datetime.max.replace(tzinfo=UTC)


def health_until(
    runs: Iterable[RunSummary], now: datetime, *, window_s: float, stuck_after_s: float
) -> datetime:
    """The last moment up to which `run_health(runs, t)`, for t from `now` on, differs from
    `run_health(runs, now)` only by `carried`: no run leaves the window (kept while its last
    activity is within `window_s` of t) and no running run becomes stuck (idle > `stuck_after_s`).
    A run out of the window never comes back as time goes forward."""
    cutoff = now - timedelta(seconds=window_s)
    window, stuck = timedelta(seconds=window_s), timedelta(seconds=stuck_after_s)
    until = _NEVER
    for run in runs:
        last = run.last_event_at or run.started_at
        if last is None or last < cutoff or run.run_id.startswith(ACTIVITY_PREFIX):
            continue
        until = min(until, last + window)
        if run.status == "running" and last + stuck >= now:
            until = min(until, last + stuck)
    return until


def carried(base: RunHealth, now: datetime) -> RunHealth:
    """`base` (run_health at base.generated_at) at a later `now` within `health_until`: the
    same runs and counts; each stuck run's idle time is now's (the order, longest idle first,
    does not change: every idle time grew by the same)."""
    if now == base.generated_at:
        return base
    stuck = tuple(  # built directly: dataclasses.replace per stuck run was ~17 ms a round at 10k
        StuckRun(
            s.run_id, s.thread_id, s.started_at, s.last_event_at, (now - last).total_seconds(), s.event_count
        )
        for s in base.stuck
        if (last := s.last_event_at or s.started_at) is not None
    )
    return replace(base, generated_at=now, by_status=dict(base.by_status), stuck=stuck)
