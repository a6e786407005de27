"""Read-only reader of LEON's events.db (`run_events`): runs derived from events.

There is no runs table (domain brief §7.1). A run is every event sharing one `run_id`:
user_message, run_start, text/tool_call/tool_result/status/retry/notice ..., then `error` or
`cancelled` when it failed, and `run_done` always last. `activity_<thread>` run ids carry
per-thread activity streams (background tasks/commands) and are not runs. Retention keeps only
the latest run per thread. `created_at` is SQLite CURRENT_TIMESTAMP (UTC text).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from itertools import chain
from operator import attrgetter
from sys import intern as _intern
from types import TracebackType
from typing import Any

import aiosqlite

from opcockpit.adapters.leon.sqlite_ro import connect_ro, map_sqlite_error, precheck
from opcockpit.domain.models import RunEventRecord
from opcockpit.domain.runs import ACTIVITY_PREFIX, RunSummary  # re-exported: they live in domain
from opcockpit.domain.runs_inc import DETAILS, STATUSES, RunAgg, RunSeqs, status_of, summary
from opcockpit.domain.timeutil import make_parser, to_sqlite_utc
from opcockpit.ports.errors import SourceError

__all__ = ["ACTIVITY_PREFIX", "DETAILS", "EventsDbReader", "RunSummary"]

LABEL = "events.db"
_last_seq = attrgetter("last")
HINT = "check LEON_RUN_EVENT_DB_PATH (LEON keeps it next to leon.db, default ~/.leon/events.db)"
_REQUIRED = ("seq", "thread_id", "run_id", "event_type")


# Every run's status seqs (RunSeqs.start..retry) from the status events only, by run id.
_STATUS_SEQS = (
    "SELECT run_id, MIN(CASE WHEN event_type = 'run_start' THEN seq END) AS st,"
    " MAX(CASE WHEN event_type = 'run_done' THEN seq END) AS d,"
    " MAX(CASE WHEN event_type = 'error' THEN seq END) AS e,"
    " MAX(CASE WHEN event_type = 'cancelled' THEN seq END) AS c,"
    " MAX(CASE WHEN event_type = 'retry' THEN seq END) AS r FROM run_events"
    " WHERE event_type IN ('run_start', 'run_done', 'error', 'cancelled', 'retry')"
    " AND substr(run_id, 1, ?) <> ? GROUP BY run_id"
)
# domain.runs_inc.status_of over _STATUS_SEQS' columns (an error a later retry superseded does not
# count; a cancel after the error that counts, or with none, wins), held to it by
# tests/test_explore_speed_runs.py; the reader checks its rows with status_of again.
_STATUS_SQL = (
    "(CASE WHEN c IS NOT NULL AND (e IS NULL OR (r IS NOT NULL AND r > e) OR c > e) THEN 'cancelled'"
    " WHEN e IS NOT NULL AND (r IS NULL OR r <= e) THEN 'error'"
    " WHEN d IS NOT NULL THEN 'completed' ELSE 'running' END)"
)


class EventsDbReader:
    """`async with EventsDbReader(path) as r:`; absent file -> SourceError(missing); absent
    run_events table -> empty results. Same read-only discipline as the sandbox.db reader."""

    def __init__(self, path: str, *, busy_timeout_ms: int = 2000) -> None:
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._apath = self.path
        self._conn: aiosqlite.Connection | None = None
        self._has_table = False
        self._parse = make_parser()  # created_at is UTC text: the local zone is never consulted
        self.seek_reads = 0  # run_seqs that looked up only the kept runs (tests, diagnostics)

    async def open(self) -> EventsDbReader:
        self._apath = precheck(self.path, LABEL, HINT)
        self._conn = await connect_ro(self._apath, LABEL, self.busy_timeout_ms)
        try:
            await self._check_table()
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                await conn.close()

    async def __aenter__(self) -> EventsDbReader:
        return await self.open()

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ---------------------------------------------------------------- plumbing

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple]:
        if self._conn is None:
            raise RuntimeError("EventsDbReader is not open; use `async with EventsDbReader(path)`")
        try:
            rows = list(await self._conn.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            if _is_decode_error(exc) and self._conn.text_factory is str:
                # TEXT that is not UTF-8 fails the whole fetch: decode leniently from now on.
                self._conn.text_factory = _lenient_text
                return await self._fetch(sql, params)
            raise map_sqlite_error(exc, self._apath, LABEL, self.busy_timeout_ms) from None
        # A BLOB where LEON writes TEXT (data, ids) would reach JSON and regexes as bytes: decode.
        # (the types collected in C: a generator per value was ~0.3 s of CPU at 90k rows)
        if rows and bytes in set(map(type, chain.from_iterable(rows))):
            rows = [tuple(_lenient_text(v) if v.__class__ is bytes else v for v in row) for row in rows]
        return rows

    async def _fetch_in(self, sql: str, values: list[Any], chunk: int = 500) -> list[list[tuple]]:
        """`sql` (with `{}` where its IN list goes) run per `chunk` of `values`, within SQLite's
        bound-variable limit: the rows of each chunk."""
        out = []
        for i in range(0, len(values), chunk):
            part = values[i : i + chunk]
            out.append(await self._fetch(sql.format(",".join("?" * len(part))), tuple(part)))
        return out

    async def _check_table(self) -> bool:
        """True once run_events exists (LEON creates it lazily; re-checked until it appears)."""
        if self._has_table:
            return True
        rows = await self._fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
        names = {r[0] for r in rows}
        if "run_events" not in names:
            return False
        cols = {r[1] for r in await self._fetch('PRAGMA table_info("run_events")')}
        missing = [c for c in _REQUIRED if c not in cols]
        if missing:
            raise SourceError(
                "schema",
                f"events.db at {self._apath}: run_events lacks column(s) {', '.join(missing)}; "
                "not a LEON events.db opcockpit understands",
                path=self._apath,
            )
        self._has_table = True
        return True

    # ---------------------------------------------------------------- queries

    async def latest_seq(self) -> int:
        """Highest seq (0 when empty): a cheap change detector for "follow" views."""
        if not await self._check_table():
            return 0
        rows = await self._fetch("SELECT MAX(seq) FROM run_events")
        return int(rows[0][0] or 0) if rows else 0

    async def runs(
        self, thread_id: str | None = None, *, since: datetime | None = None, limit: int | None = None
    ) -> list[RunSummary]:
        """Runs (activity streams excluded), newest activity first.

        One GROUP BY pass over run_events, then one primary-key lookup for the handful of rows
        whose timestamps/data the summaries need. `since` keeps runs with an event at or after it.
        """
        aggs = await self.run_aggs(thread_id=thread_id, since=since, limit=limit)
        p = self._parse
        return [summary(a, p) for a in aggs]

    async def run_aggs(
        self,
        thread_id: str | None = None,
        *,
        since: datetime | None = None,
        limit: int | None = None,
        after_seq: int = 0,
        details: frozenset[str] | None = None,
    ) -> list[RunAgg]:
        """Per-run aggregates of the events with seq > `after_seq` (activity streams excluded),
        newest activity first: `runs()` from scratch, or what a watermark reader folds in.
        `details` names the event times/data to look up (DETAILS; None: all of them): Explore
        reads only what its query needs, and only for the runs its cheap filter kept
        (`run_details`), which at 10k leases is most of a query's time otherwise."""
        if not await self._check_table():
            return []
        where = ["substr(run_id, 1, ?) <> ?"]
        params: list[Any] = [len(ACTIVITY_PREFIX), ACTIVITY_PREFIX]
        if after_seq:
            where.append("seq > ?")
            params.append(int(after_seq))
        if thread_id is not None:
            where.append("thread_id = ?")
            params.append(thread_id)
        having = ""
        if since is not None:
            having = " HAVING MAX(created_at) >= ?"
            params.append(to_sqlite_utc(since))
        sql = (
            "SELECT run_id, MIN(thread_id), COUNT(*), MIN(seq), MAX(seq),"
            " MIN(CASE WHEN event_type = 'run_start' THEN seq END),"
            " MAX(CASE WHEN event_type = 'run_done' THEN seq END),"
            " MAX(CASE WHEN event_type = 'error' THEN seq END),"
            " MAX(CASE WHEN event_type = 'cancelled' THEN seq END),"
            " MAX(CASE WHEN event_type = 'retry' THEN seq END), MAX(created_at)"
            f" FROM run_events WHERE {' AND '.join(where)} GROUP BY run_id{having}"
            " ORDER BY MAX(seq) DESC"
        )
        if limit is not None and limit > 0:
            sql += " LIMIT ?"
            params.append(int(limit))
        groups = await self._fetch(sql, tuple(params))
        # The thread id interned: the same text sandbox.db's records hold (interned there), one
        # object instead of one per run kept by a cockpit (~70 bytes a run; issue 10, RSS).
        aggs = [
            RunAgg(run_id, _intern(tid) if tid.__class__ is str else tid, int(n), int(first), int(last),
                   start, done, err, cancel, retry, top, None, None, None, None, None)
            for run_id, tid, n, first, last, start, done, err, cancel, retry, top in groups
        ]  # fmt: skip
        return await self.run_details(aggs, DETAILS if details is None else details)

    async def run_seqs(self, only: Callable[[str], bool] | None = None) -> list[RunSeqs]:
        """Every run's aggregates but its times (RunSeqs.agg() for a RunAgg), newest first.

        `run_aggs` sorts every event by run id (~0.9 s of CPU at 460k run_events); here the counts
        and first/last seqs come from the (thread_id, run_id, seq) index in its own order, and
        the status seqs from a GROUP BY over the few status events only: about half the work.
        A run under several threads is merged here as `run_aggs` groups it (MIN(thread_id)).

        `only` (a test of a run's status, e.g. Explore's `status:error`): when it rejects
        `running`, the status of a run without status events, only the runs whose status it
        accepts are returned: the status events are read first, and only those runs' counts and
        first/last seqs are looked up (_per_thread_of), by index seeks.
        """
        if not await self._check_table():
            return []
        skip = (len(ACTIVITY_PREFIX), ACTIVITY_PREFIX)
        accepted = None if only is None or only("running") else [s for s in STATUSES if only(s)]
        sql, params = _STATUS_SEQS, skip
        if accepted is not None:  # only those runs leave SQLite (status_of, in SQL: _STATUS_SQL)
            if not accepted:
                return []
            sql = f"SELECT * FROM ({_STATUS_SEQS}) WHERE {_STATUS_SQL} IN ({','.join('?' * len(accepted))})"
            params = (*skip, *accepted)
        status = await self._fetch(sql, params)
        marks = {row[0]: row[1:] for row in status}
        per_thread: list[tuple] | None = None
        if accepted is not None:
            # the rule is domain.runs_inc.status_of: SQL's copy only narrows what is read
            keep = set(accepted)
            marks = {k: v for k, v in marks.items() if status_of(v[1], v[2], v[3], v[4])[0] in keep}
            per_thread = await self._per_thread_of(marks)
        if per_thread is None:
            per_thread = await self._fetch(
                "SELECT run_id, thread_id, COUNT(*), MIN(seq), MAX(seq) FROM run_events"
                " WHERE substr(run_id, 1, ?) <> ? GROUP BY thread_id, run_id",
                skip,
            )
        runs: dict[str, list[Any]] = {}
        for run_id, tid, n, first, last in per_thread:
            if accepted is not None and run_id not in marks:  # a status `only` rejects
                continue
            r = runs.get(run_id)
            if r is None:
                runs[run_id] = [tid, int(n), int(first), int(last)]
            else:  # the same run id under another thread
                r[0], r[1], r[2], r[3] = min(r[0], tid), r[1] + int(n), min(r[2], first), max(r[3], last)
        none = (None, None, None, None, None)
        seqs = [RunSeqs(run_id, *r, *marks.get(run_id, none)) for run_id, r in runs.items()]
        seqs.sort(key=_last_seq, reverse=True)
        return seqs

    async def _per_thread_of(self, runs: Mapping[str, Any]) -> list[tuple] | None:
        """run_seqs' per-(thread, run) rows of these runs only: every (thread, run) pair from the
        index (no aggregate: ~1/3 of the per-thread GROUP BY's CPU), then COUNT/MIN/MAX(seq) of
        the pairs of `runs` by index seeks. None when they are most pairs (three seeks each cost
        more than the GROUP BY), or a pair does not read back (a thread or run id that is not
        valid UTF-8 text, decoded leniently): the caller reads every run's."""
        if not runs:
            return []
        pairs = await self._fetch("SELECT DISTINCT thread_id, run_id FROM run_events")
        wanted = [(t, r) for t, r in pairs if r in runs]
        if len(wanted) * 4 > len(pairs):  # most runs (status:completed): the GROUP BY is cheaper
            return None
        got = await self._fetch(
            "WITH p(t, r) AS (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]')"
            " FROM json_each(?)) SELECT r, t,"
            " (SELECT COUNT(*) FROM run_events WHERE thread_id = p.t AND run_id = p.r),"
            " (SELECT MIN(seq) FROM run_events WHERE thread_id = p.t AND run_id = p.r),"
            " (SELECT MAX(seq) FROM run_events WHERE thread_id = p.t AND run_id = p.r) FROM p",
            (json.dumps(wanted),),
        )
        if len(set(wanted)) != len(wanted) or len(got) != len(wanted) or any(row[2] == 0 for row in got):
            return None
        self.seek_reads += 1
        return got

    async def run_max_created(self, aggs: list[RunAgg]) -> list[RunAgg]:
        """`aggs` with max_created (MAX(created_at) over each run's events): for the few runs
        whose window `run_seqs` leaves open (one scan per 500 runs, no sort)."""
        found: dict[str, Any] = {}
        ids = sorted({a.run_id for a in aggs})
        sql = "SELECT run_id, MAX(created_at) FROM run_events WHERE run_id IN ({}) GROUP BY run_id"
        for rows in await self._fetch_in(sql, ids):
            found.update((r[0], r[1]) for r in rows)
        return [replace(a, max_created=found.get(a.run_id)) for a in aggs]

    async def run_details(self, aggs: list[RunAgg], details: Iterable[str]) -> list[RunAgg]:
        """`aggs` with the event times/data named in `details` (of DETAILS) looked up by seq."""
        kinds = frozenset(details)
        if not aggs or not kinds:
            return aggs
        wanted: set[int] = set()
        for a in aggs:
            wanted.update(s for s in (getattr(a, k) for k in kinds) if s is not None)
        got = await self._rows_by_seq(sorted(wanted))
        # One object per distinct time text: a run's events share a few seconds (5.7k distinct
        # among 41k times at 10k runs), and a cockpit keeps every run's (~2 MB; issue 10, RSS).
        memo: dict[Any, Any] = {}
        share = memo.setdefault
        got = {seq: (share(at, at), data) for seq, (at, data) in got.items()}
        none: tuple[Any, str | None] = (None, None)
        f, la, st, dn, er = (k in kinds for k in ("first", "last", "start", "done", "err"))
        # positional RunAggs: dataclasses.replace per run is ~3x slower at 50k runs
        return [
            RunAgg(
                a.run_id, a.thread_id, a.count, a.first, a.last, a.start, a.done, a.err, a.cancel,
                a.retry, share(a.max_created, a.max_created),
                got.get(a.first, none)[0] if f else a.first_at,
                got.get(a.last, none)[0] if la else a.last_at,
                (got.get(a.start, none)[0] if a.start is not None else None) if st else a.start_at,
                (got.get(a.done, none)[0] if a.done is not None else None) if dn else a.done_at,
                (got.get(a.err, none)[1] if a.err is not None else None) if er else a.err_data,
            )
            for a in aggs
        ]  # fmt: skip

    async def run_counts(self, thread_ids: list[str]) -> dict[str, int]:
        """run_id -> its event count, for the runs of these threads (the thread index): which runs
        LEON's retention deleted there since the last look."""
        if not thread_ids or not await self._check_table():
            return {}
        out: dict[str, int] = {}
        for i in range(0, len(thread_ids), 500):
            chunk = thread_ids[i : i + 500]
            rows = await self._fetch(
                "SELECT run_id, COUNT(*) FROM run_events WHERE thread_id IN"
                f" ({','.join('?' * len(chunk))}) AND substr(run_id, 1, ?) <> ? GROUP BY run_id",
                (*chunk, len(ACTIVITY_PREFIX), ACTIVITY_PREFIX),
            )
            out.update((r[0], int(r[1])) for r in rows)
        return out

    async def run_totals(self) -> tuple[int, int]:
        """(events of runs, highest seq): a run reader's check that nothing else was deleted and
        the watermark did not go backwards."""
        if not await self._check_table():
            return 0, 0
        rows = await self._fetch(
            "SELECT COUNT(CASE WHEN substr(run_id, 1, ?) <> ? THEN 1 END), MAX(seq) FROM run_events",
            (len(ACTIVITY_PREFIX), ACTIVITY_PREFIX),
        )
        return (int(rows[0][0] or 0), int(rows[0][1] or 0)) if rows else (0, 0)

    async def _rows_by_seq(self, seqs: list[int]) -> dict[int, tuple[Any, str | None]]:
        """seq -> (created_at, data) for the given seqs (data only for `error` events)."""
        out: dict[int, tuple[Any, str | None]] = {}
        sql = (
            "SELECT seq, created_at, CASE WHEN event_type = 'error' THEN data END FROM run_events"
            " WHERE seq IN ({})"
        )
        for rows in await self._fetch_in(sql, seqs):
            out.update((r[0], (r[1], r[2])) for r in rows)
        return out

    async def run_events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = 500
    ) -> list[RunEventRecord]:
        """Events of one run with seq > after_seq, oldest first: pass the last seq back to follow."""
        if not await self._check_table():
            return []
        lim = -1 if limit is None or limit <= 0 else int(limit)
        rows = await self._fetch(
            "SELECT seq, thread_id, run_id, event_type, data, message_id, created_at FROM run_events"
            " WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (run_id, int(after_seq), lim),
        )
        p = self._parse
        return [
            RunEventRecord(int(s), t, r, e, d if d is not None else "", m, p(c))
            for s, t, r, e, d, m, c in rows
        ]


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _is_decode_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "could not decode to utf-8" in str(exc).lower()
