"""Reading run health: events.db (through the EventsReader port) -> domain.runs.run_health."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opcockpit.domain.models import GroundTruth
from opcockpit.domain.runs import (
    DEFAULT_STUCK_AFTER_S,
    DEFAULT_WINDOW_S,
    ProviderCounts,
    ProviderSandboxes,
    RunHealth,
    RunSummary,
    provider_counts,
    provider_sandboxes,
    run_health,
    unavailable,
)
from opcockpit.domain.runs_inc import DETAILS, RunAgg, carried, health_until, merge, summary
from opcockpit.domain.timeutil import make_parser, to_sqlite_utc
from opcockpit.ports.errors import SourceError
from opcockpit.ports.leon import EventsReader

__all__ = ["RESYNC_S", "RunReads", "load_run_health", "signature"]

# The TUI asks for run health every alert round, and events.db changes all the time (LEON, like
# the demo's drift, appends run_events as agents work). Re-reading the window (a GROUP BY over
# every run_event) cost ~17 % of a core at 10k leases, so a cockpit keeps its runs (`RunReads`) and
# reads only the events above the highest seq it has seen (issue 10), folding them into their
# runs (domain.runs_inc.merge). LEON's retention deletes a thread's older runs when a new one
# finishes: the threads that had new events are recounted through the thread index. Any other
# delete (the runs' events no longer add up to the table's), a seq going backwards, a replaced file
# or RESYNC_S since the last full read re-reads everything, like an informer's resync. An
# unchanged file (inode, size, mtime of it and its WAL) is not opened at all.
RESYNC_S = 300.0
_RESYNC_CHUNK = 1000  # runs whose details a resync looks up at a time


def _last(a: RunAgg) -> int:
    return a.last


class _Runs:
    """One events.db's runs as last read: aggregates and summaries by run id, the seq watermark."""

    def __init__(self, sig: tuple[object, ...] | None, now: datetime) -> None:
        self.sig = sig
        self.full_at = now
        self.aggs: dict[str, RunAgg] = {}
        self.sums: dict[str, RunSummary] = {}
        # thread id -> its run id, or a tuple of them when it has several (`thread_runs`): a
        # thread mostly has one (LEON's retention keeps the latest), and a one-element tuple per
        # thread was ~0.55 MB at 10k runs (issue 10, RSS); never a set (~1.4 MB more)
        self.by_thread: dict[str, str | tuple[str, ...]] = {}
        self.seq = 0  # every event at or below it has been read
        self.total = 0  # events of the runs in `aggs`
        # newest first; the aggregates only (their summaries by id): a list of (agg, summary)
        # pairs was 8k new tuples every alert round that saw new events (issue 10, RSS)
        self.ordered: list[RunAgg] | None = None
        self.version = 0  # moves whenever a run was added, changed or dropped

    def put(self, a: RunAgg, parse: Callable[[object], datetime | None]) -> None:
        old = self.aggs.get(a.run_id)
        if old is not None and old.thread_id != a.thread_id:
            self._unthread(old.thread_id, a.run_id)
        self.aggs[a.run_id] = a
        self.sums[a.run_id] = summary(a, parse)
        runs = self.thread_runs(a.thread_id)
        if a.run_id not in runs:
            self.by_thread[a.thread_id] = (*runs, a.run_id) if runs else a.run_id

    def drop(self, rid: str) -> None:
        a = self.aggs.pop(rid)
        del self.sums[rid]
        self._unthread(a.thread_id, rid)

    def thread_runs(self, thread_id: str) -> tuple[str, ...]:
        """The run ids of `thread_id` (empty when none)."""
        runs = self.by_thread.get(thread_id, ())
        return (runs,) if runs.__class__ is str else runs  # type: ignore[return-value]

    def _unthread(self, thread_id: str, rid: str) -> None:
        runs = self.thread_runs(thread_id)
        if rid in runs:
            rest = tuple(r for r in runs if r != rid)
            if len(rest) > 1:
                self.by_thread[thread_id] = rest
            elif rest:
                self.by_thread[thread_id] = rest[0]
            else:
                del self.by_thread[thread_id]


@dataclass(frozen=True, slots=True)
class _Health:
    """The last run health computed from one `_Runs` (issue 10, idle tick): carried to a later
    `now` (domain.runs_inc.carried) until a run leaves the window or becomes stuck."""

    runs: _Runs
    version: int
    params: tuple[float, float, int]  # window_s, stuck_after_s, top_n
    base: RunHealth  # without providers
    until: datetime  # health_until
    cut_limit: str | None  # the runs window stays the same while its cut is <= this (raw text)

    def at(self, st: _Runs | None, now: datetime, params: tuple[float, float, int]) -> RunHealth | None:
        if st is not self.runs or st.version != self.version or params != self.params:
            return None
        if not self.base.generated_at <= now <= self.until:
            return None
        cut = to_sqlite_utc(now - timedelta(seconds=params[0]))
        if self.cut_limit is not None and cut > self.cut_limit:
            return None  # a run's last event left the window: the runs list shrinks
        return carried(self.base, now)


class RunReads:
    """The runs read per events.db: one per cockpit (`Cockpit.run_reads`, the alert engine's),
    never module state, so two cockpits in one process never share a read."""

    def __init__(self) -> None:
        self._by_path: dict[str, _Runs] = {}
        self._health: dict[str, _Health] = {}
        # provider_counts of the last ground truth's rows and orphans (the same objects when the
        # fleet did not change: the incremental reconcile keeps them)
        self._counts: tuple[object, object, ProviderCounts] | None = None
        self.health_hits = 0  # rounds whose run health was carried, not recomputed (tests)
        self._parse = make_parser()  # created_at is UTC text: the local zone is never consulted
        self.reads = 0  # full reads of events.db (tests, diagnostics)
        self.delta_reads = 0  # watermark reads

    def forget(self, path: str) -> None:
        self._by_path.pop(path, None)
        self._health.pop(path, None)

    def health(
        self, path: str, sig: tuple[object, ...] | None, now: datetime, params: tuple[float, float, int]
    ) -> RunHealth | None:
        """The last run health carried to `now`, without opening events.db or walking its runs,
        when the file and its runs are as they were and no run crossed a threshold since."""
        st = self._by_path.get(path)
        memo = self._health.get(path)
        if st is None or memo is None or sig is None or st.sig != sig or not self._young(st, now):
            return None
        rh = memo.at(st, now, params)
        if rh is not None:
            self.health_hits += 1
        return rh

    def keep_health(
        self,
        path: str,
        rh: RunHealth,
        runs: list[RunSummary],
        since: datetime,
        params: tuple[float, float, int],
    ) -> None:
        """Remember `rh` (= run_health(runs, rh.generated_at), no providers) for `health`."""
        st = self._by_path.get(path)
        if st is None:
            return
        cut = to_sqlite_utc(since)
        kept = [
            a.max_created for a in st.ordered or () if isinstance(a.max_created, str) and a.max_created >= cut
        ]
        until = health_until(runs, rh.generated_at, window_s=params[0], stuck_after_s=params[1])
        self._health[path] = _Health(st, st.version, params, rh, until, min(kept) if kept else None)

    def providers(self, gt: GroundTruth) -> tuple[ProviderSandboxes, ...]:
        """provider_sandboxes(gt), counting the rows again only when they are other objects."""
        was = self._counts
        if was is None or was[0] is not gt.rows or was[1] is not gt.orphans:
            was = self._counts = (gt.rows, gt.orphans, provider_counts(gt))
        return provider_sandboxes(gt, was[2])

    def cached(
        self, path: str, sig: tuple[object, ...] | None, now: datetime, since: datetime | None
    ) -> list[RunSummary] | None:
        """The runs since `since` without opening events.db, when it is the same file unchanged."""
        st = self._by_path.get(path)
        if st is None or sig is None or st.sig != sig or not self._young(st, now):
            return None
        return self._window(st, since)

    async def read(
        self,
        reader: EventsReader,
        path: str,
        sig: tuple[object, ...] | None,
        now: datetime,
        since: datetime | None,
    ) -> list[RunSummary]:
        """= `reader.runs(since=since)`, reading only what changed since the last call (Explore's
        runs dataset reads through it too, so a cockpit's queries reuse the alert rounds' runs)."""
        if not hasattr(reader, "run_aggs"):  # a reader without the watermark queries: read all
            self.reads += 1
            return await reader.runs(since=since)
        r: Any = reader
        st = self._by_path.get(path)
        same_file = st is not None and _inode(st.sig) is not None and _inode(st.sig) == _inode(sig)
        if st is None or not same_file:
            st = await self._full(r, sig, now)
        elif not self._young(st, now) or not await self._delta(r, st):
            await self._resync(r, st, now)
        st.sig = sig
        self._by_path[path] = st
        return self._window(st, since)

    @staticmethod
    def _young(st: _Runs, now: datetime) -> bool:
        return abs((now - st.full_at).total_seconds()) < RESYNC_S

    @staticmethod
    def _window(st: _Runs, since: datetime | None) -> list[RunSummary]:
        sums = st.sums
        if st.ordered is None:
            st.ordered = sorted(st.aggs.values(), key=_last, reverse=True)
        if since is None:  # = no HAVING: every run
            return [sums[a.run_id] for a in st.ordered]
        cut = to_sqlite_utc(since)
        # = SQL's HAVING MAX(created_at) >= cut: NULL never passes, a number sorts before text.
        return [sums[a.run_id] for a in st.ordered if isinstance(a.max_created, str) and a.max_created >= cut]

    async def _full(self, reader: Any, sig: tuple[object, ...] | None, now: datetime) -> _Runs:
        self.reads += 1
        st = _Runs(sig, now)
        _, top = await reader.run_totals()  # first: a run event committed after it is above it
        aggs: list[RunAgg] = await reader.run_aggs()
        for a in aggs:
            st.put(a, self._parse)
        st.total = sum(a.count for a in aggs)
        st.seq = max([top, *(a.last for a in aggs)])
        return st

    async def _resync(self, reader: Any, st: _Runs, now: datetime) -> None:
        """A full read of the same file compared into `st` in place: a run whose aggregates
        are as known keeps its objects, only the runs that differ are replaced and those gone
        dropped (= `_full`, whose fresh set of every run and summary, built while the old set
        still lived, left ~7 MB of pymalloc arenas pinned at 10k runs every RESYNC_S; issue 10,
        RSS). The fetched aggregates of unchanged runs are dropped at once."""
        self.reads += 1
        _, top = await reader.run_totals()
        # The aggregates first, their event times and data per chunk of runs: a whole read's
        # details (a dict of every seq looked up, a second RunAgg per run) were most of its
        # ~16 MB peak at 10k runs.
        bare: list[RunAgg] = await reader.run_aggs(details=frozenset())
        seen: set[str] = set()
        changed = False
        total, seq = 0, top
        for i in range(0, len(bare), _RESYNC_CHUNK):
            for a in await reader.run_details(bare[i : i + _RESYNC_CHUNK], DETAILS):
                seen.add(a.run_id)
                total += a.count
                seq = max(seq, a.last)
                if st.aggs.get(a.run_id) != a:
                    st.put(a, self._parse)
                    changed = True
        del bare
        gone = [rid for rid in st.aggs if rid not in seen]
        for rid in gone:
            st.drop(rid)
        if changed or gone:
            st.ordered = None
            st.version += 1
        st.total, st.seq, st.full_at = total, seq, now

    async def _delta(self, reader: Any, st: _Runs) -> bool:
        """Fold in the events above the watermark; False when in doubt (then a full read)."""
        self.delta_reads += 1
        new: list[RunAgg] = await reader.run_aggs(after_seq=st.seq)
        merged: dict[str, RunAgg] = {}
        total, seq = st.total, st.seq
        for a in new:
            old = st.aggs.get(a.run_id)
            merged[a.run_id] = a if old is None else merge(old, a)
            total += a.count
            seq = max(seq, a.last)
        gone: list[str] = []
        if new:
            threads = sorted({a.thread_id for a in new})
            counts: dict[str, int] = await reader.run_counts(threads)
            touched = set(merged).union(*(st.thread_runs(t) for t in threads))
            for rid in sorted(touched):
                a = merged.get(rid) or st.aggs[rid]
                n = counts.get(rid)
                if n is None:  # LEON's retention deleted it
                    gone.append(rid)
                    total -= a.count
                elif n != a.count:
                    return False  # part of a run gone, or written meanwhile: read it all
        table_total, top = await reader.run_totals()
        if table_total != total or top < seq:
            return False  # a delete elsewhere, a write meanwhile, or the seq went backwards
        for a in merged.values():
            st.put(a, self._parse)
        for rid in gone:
            st.drop(rid)
        if merged or gone:
            st.ordered = None
            st.version += 1
        st.total, st.seq = total, seq
        return True


def _inode(sig: tuple[object, ...] | None) -> object:
    """events.db's inode in a signature (a checkpoint changes its size and mtime, not its inode)."""
    return sig[0][0] if sig is not None and isinstance(sig[0], tuple) else None


def signature(path: str) -> tuple[object, ...] | None:
    out: list[object] = []
    for p in (path, path + "-wal"):
        try:
            st = os.stat(p)
        except OSError:
            out.append(None)
            continue
        # An empty WAL appearing or being reset by a reader is no change to the data.
        out.append((st.st_ino, st.st_size, st.st_mtime_ns) if st.st_size else None)
    return tuple(out) if out[0] is not None else None


_signature = signature  # the name tests/test_runs_incremental.py imports


async def load_run_health(
    events_db: str | Path | None,
    now: datetime,
    *,
    events_reader: Callable[[str], EventsReader],
    window_s: float = DEFAULT_WINDOW_S,
    stuck_after_s: float = DEFAULT_STUCK_AFTER_S,
    top_n: int = 10,
    ground_truth: GroundTruth | None = None,
    reads: RunReads | None = None,
) -> RunHealth:
    """Read the runs active in the window from events.db; a read failure becomes `error`, never
    an exception (the cockpit keeps working without events.db). With `reads` (the cockpit's),
    only what changed in events.db since the last call is read."""
    kw = {"window_s": window_s, "stuck_after_s": stuck_after_s, "ground_truth": ground_truth}
    if events_db is None:
        return unavailable(now, "no events.db configured", **kw)  # type: ignore[arg-type]
    path = str(events_db)
    since = now - timedelta(seconds=window_s)
    sig = signature(path) if reads is not None else None
    params = (window_s, stuck_after_s, top_n)
    if reads is not None and (rh := reads.health(path, sig, now, params)) is not None:
        # events.db unchanged and no run crossed a threshold: nothing to walk (issue 10)
        return replace(rh, providers=reads.providers(ground_truth)) if ground_truth is not None else rh
    runs = reads.cached(path, sig, now, since) if reads is not None else None
    if runs is None:
        try:
            async with events_reader(path) as reader:
                if reads is None:
                    runs = await reader.runs(since=since)
                else:
                    runs = await reads.read(reader, path, sig, now, since)
        except SourceError as exc:
            if reads is not None:
                reads.forget(path)
            return unavailable(now, str(exc), **kw)  # type: ignore[arg-type]
    if reads is None:
        return run_health(
            runs, now, window_s=window_s, stuck_after_s=stuck_after_s, top_n=top_n, ground_truth=ground_truth
        )
    if (rh := reads.health(path, sig, now, params)) is None:  # read again, but nothing had changed
        rh = run_health(runs, now, window_s=window_s, stuck_after_s=stuck_after_s, top_n=top_n)
        reads.keep_health(path, rh, runs, since, params)
    return replace(rh, providers=reads.providers(ground_truth)) if ground_truth is not None else rh
