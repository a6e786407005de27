"""Explore's dataset rows, read straight from sandbox.db and events.db; the cockpit ledger's
datasets (events, audit, alerts) come from the `LedgerRows` wiring passes in (on the ledger's own
backend: adapters/ledger/explore_ledger.py).

Read-only like every LEON reader (`mode=ro` URI + `PRAGMA query_only`, see sqlite_ro). Plain
sqlite3 (not aiosqlite): the rows stream into the evaluator in one worker thread, and a cursor
per dataset is the cheapest way to walk 460k run_events. Timestamps are parsed with the one
`parse_ts` (naive sandbox times are local, CURRENT_TIMESTAMP text is UTC).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

from opcockpit.adapters.leon.explore_events_tally import FIELDS as TALLY_FIELDS
from opcockpit.adapters.leon.explore_events_tally import RunEventsTally, time_bounds
from opcockpit.adapters.leon.explore_sql import (
    SOURCES,
    THREAD_SEP,
    FacetQuery,
    Source,
    commands_source,
    count_sql,
    facet_sql,
    from_us,
    register_functions,
    select_sql,
    thread_map_json,
)
from opcockpit.adapters.leon.sqlite_ro import map_sqlite_error, precheck
from opcockpit.domain.query import Filter, QueryTimeout
from opcockpit.domain.timeutil import make_parser

__all__ = ["LEDGER_DATASETS", "ExploreRows", "LedgerRows", "connect_ro_sync", "ro_query"]

_SB, _EV = "sandbox.db", "events.db"
# The cockpit ledger's datasets: read by the `LedgerRows` given (adapters/ledger/explore_ledger.py),
# on whichever backend the ledger is (a SQLite file or a team's PostgreSQL).
LEDGER_DATASETS = ("events", "audit", "alerts")
# Activity streams are not runs (events_db.ACTIVITY_PREFIX); run_events keeps them.
_DAY = timedelta(days=1)
_BINDINGS_MARK = (
    "SELECT (SELECT COUNT(*) FROM abstract_terminals), (SELECT MAX(rowid) FROM abstract_terminals),"
    " (SELECT terminal_id FROM abstract_terminals ORDER BY rowid DESC LIMIT 1),"
    " (SELECT COUNT(*) FROM sandbox_leases), (SELECT MAX(rowid) FROM sandbox_leases),"
    " (SELECT lease_id FROM sandbox_leases ORDER BY rowid DESC LIMIT 1)"
)


def connect_ro_sync(path: str, label: str, *, busy_timeout_ms: int = 2000) -> sqlite3.Connection:
    """A read-only sqlite3 connection to `path` (SourceError when it cannot be read)."""
    apath = precheck(path, label, "check --db/--events-db or the config")
    try:
        conn = sqlite3.connect(
            "file:" + quote(apath, safe="/") + "?mode=ro", uri=True, timeout=busy_timeout_ms / 1000,
            check_same_thread=False,
        )  # fmt: skip
        conn.execute("PRAGMA query_only=1")
    except sqlite3.Error as exc:
        raise map_sqlite_error(exc, apath, label, busy_timeout_ms) from None
    conn.text_factory = lambda b: b.decode("utf-8", "replace")
    return conn


def ro_query(
    path: str, label: str, sql: str, params: list[Any], parse: Any, *, deadline: float | None = None
) -> Iterator[tuple]:
    """The rows of `sql` on the SQLite file `path`, read-only, with the filter functions registered;
    past `deadline` (time.monotonic()) QueryTimeout, a file that cannot be read SourceError."""
    conn = connect_ro_sync(path, label)
    register_functions(conn, parse)
    if deadline is not None:
        # a filter that rejects most rows keeps SQLite busy between yields: stop it there too
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 20_000)
    try:
        yield from conn.execute(sql, params)
    except sqlite3.OperationalError as exc:
        if deadline is not None and "interrupt" in str(exc):
            raise QueryTimeout("the query ran past its time budget and was stopped; narrow it") from None
        raise map_sqlite_error(exc, os.path.abspath(path), label, 2000) from None
    except sqlite3.Error as exc:
        raise map_sqlite_error(exc, os.path.abspath(path), label, 2000) from None
    finally:
        conn.close()


class LedgerRows(Protocol):
    """The ledger datasets' rows and counts (ExploreRowsPort's `rows`/`aggregate` for them)."""

    def rows(
        self, dataset: str, *, since: datetime | None, until: datetime | None, where: Filter | None = None,
        deadline: float | None = None,
    ) -> Iterator[dict[str, Any]]: ...  # fmt: skip

    def aggregate(
        self, dataset: str, *, since: datetime | None, until: datetime | None, where: Filter | None,
        by: tuple[str, ...], deadline: float | None = None,
    ) -> list[tuple[tuple[Any, ...], int]] | None: ...  # fmt: skip


class ExploreRows:
    """`rows(dataset, since=, until=)` for the table-backed datasets (ports.explore.ExploreRowsPort)."""

    def __init__(
        self,
        sandbox_db: str | None,
        events_db: str | None,
        ledger: LedgerRows | None = None,
        *,
        follow_run_events: bool = True,
    ) -> None:
        self.sandbox_db = None if sandbox_db is None else str(sandbox_db)
        self.events_db = None if events_db is None else str(events_db)
        self.ledger = ledger
        self._parse = make_parser()
        self._threads: dict[str, tuple[str, str]] | None = None
        self._threads_mark: tuple[Any, ...] | None = None  # _bindings_mark() when _threads was read
        self._mark: tuple[int, tuple[Any, ...]] | None = None  # (data_version, the mark then)
        self._threads_lock = threading.Lock()  # queries run in worker threads
        self._watch: sqlite3.Connection | None = None
        self.facet_joins = 0  # facet passes that took the thread-map join (tests, diagnostics)
        # run_events' counts and facets from a copy kept by seq (explore_events_tally); False:
        # always the SQL pass (tests of that pass)
        self.follow_run_events = follow_run_events
        self._events_tally: RunEventsTally | None = None

    # ------------------------------------------------------------------ plumbing
    def _query(
        self, which: str, sql: str, params: list[Any], *, deadline: float | None = None
    ) -> Iterator[tuple]:
        path = {_SB: self.sandbox_db, _EV: self.events_db}[which]
        if path is None:
            from opcockpit.ports.errors import SourceError

            raise SourceError(
                "missing", f"no {which} configured; pass --db/--events-db or set it in the config"
            )
        return ro_query(path, which, sql, params, self._parse, deadline=deadline)

    def _tables(self, which: str) -> set[str]:
        return {r[0] for r in self._query(which, "SELECT name FROM sqlite_master WHERE type='table'", [])}

    def thread_leases(self) -> Mapping[str, tuple[str, str]]:
        """thread -> (lease, provider), read again when the terminals or leases changed: a
        long-lived instance (the TUI's) otherwise maps a thread bound after its first query to
        no lease at all."""
        with self._threads_lock:
            mark = self._bindings_mark()  # before the read: a commit during it reads again
            if self._threads is None or (mark is not None and mark != self._threads_mark):
                self._threads = self._read_thread_leases()
                self._threads_mark = mark
            return self._threads

    def _bindings_mark(self) -> tuple[Any, ...] | None:
        """What the thread map is read from, as a mark that moves with every row inserted into or
        deleted from abstract_terminals and sandbox_leases (LEON never rebinds a terminal or moves
        a lease to another provider: rows come and go). Per table: its count, its greatest rowid
        and that row's id (a deleted newest row's rowid is given to the next insert, with a new
        id). Asked only when sandbox.db's data_version moved (a commit by another connection),
        on a connection kept for it; None: no sandbox.db file to watch (the map is kept)."""
        if self.sandbox_db is None:
            return None
        if self._watch is None:
            self._watch = connect_ro_sync(self.sandbox_db, _SB)
        version = self._watch.execute("PRAGMA data_version").fetchone()[0]
        if self._mark is None or version != self._mark[0]:
            self._mark = (version, tuple(self._watch.execute(_BINDINGS_MARK).fetchone()))
        return self._mark[1]

    def _read_thread_leases(self) -> dict[str, tuple[str, str]]:
        return {
            t: (lease, prov)
            for t, lease, prov in self._query(
                _SB,
                "SELECT t.thread_id, t.lease_id, l.provider_name FROM abstract_terminals t"
                " JOIN sandbox_leases l ON l.lease_id = t.lease_id ORDER BY t.created_at",
                [],
            )
        }

    def _lease_providers(self) -> dict[str, str]:
        return dict(self._query(_SB, "SELECT lease_id, provider_name FROM sandbox_leases", []))

    # ------------------------------------------------------------------ datasets
    def rows(
        self,
        dataset: str,
        *,
        since: datetime | None,
        until: datetime | None,
        where: Filter | None = None,
        deadline: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The dataset's rows; `where` (the typed filter) runs in SQLite where it can: the rows
        are those it matches or a superset of them (the evaluator applies it exactly)."""
        if dataset in LEDGER_DATASETS:
            return self._ledger().rows(dataset, since=since, until=until, where=where, deadline=deadline)
        if dataset in SOURCES or dataset == "commands":
            return self._sql_rows(dataset, since, until, where, deadline)
        fn = getattr(self, f"_ds_{dataset}", None)
        if fn is None:
            raise KeyError(dataset)
        return fn(since, until)

    # The SQL-backed datasets: one Source each (columns as SQL expressions). Filters, the time
    # window and a leading count run in SQLite (explore_sql), the rest in the evaluator.
    def _source(self, dataset: str) -> Source | None:
        if dataset == "commands":
            has_chunks = "terminal_command_chunks" in self._tables(_SB)
            return commands_source(has_chunks)
        src = SOURCES.get(dataset)
        if src is None or (src.table is not None and src.table not in self._tables(src.db)):
            return None
        return src

    def _sql_rows(
        self, dataset: str, since: datetime | None, until: datetime | None, where: Filter | None,
        deadline: float | None,
    ) -> Iterator[dict[str, Any]]:  # fmt: skip
        src = self._source(dataset)
        if src is None:
            return
        sql, params = self._select(src, since, until, where)
        fill = self.thread_leases() if src.py_fields else None
        p = self._parse
        names = [c.field for c in src.sql_cols]
        kinds = [c.kind for c in src.sql_cols]
        conv = [(i, p if k == "ts" else from_us) for i, k in enumerate(kinds) if k in ("ts", "us")]
        none = (None, None)
        for r in self._query(src.db, sql, params, deadline=deadline):
            vals = list(r)
            for i, fn in conv:
                vals[i] = fn(vals[i])
            row = dict(zip(names, vals, strict=True))
            if fill is not None:
                row["lease_id"], row["provider"] = fill.get(row["thread_id"], none)
            yield row

    def _select(
        self, src: Source, since: datetime | None, until: datetime | None, where: Filter | None
    ) -> tuple[str, list[Any]]:
        """The dataset's SELECT; here with the filter and time window pushed into SQLite."""
        return select_sql(src, since, until, where)

    def _countable(self, src: Source) -> bool:
        """Whether `aggregate` may count `src` in its database (SQLite: always)."""
        return True

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
        """Counts per `by` values of the rows matching `where`, computed in SQLite; None when the
        filter or a `by` field cannot be evaluated there exactly (the caller counts in Python)."""
        if dataset in LEDGER_DATASETS:
            return self._ledger().aggregate(
                dataset, since=since, until=until, where=where, by=by, deadline=deadline
            )
        if dataset not in SOURCES and dataset != "commands":
            return None
        src = self._source(dataset)
        if src is None:
            return [] if by else [((), 0)]
        if not self._countable(src):
            return None
        sql = count_sql(src, since, until, where, by)
        if sql is None:
            return None
        text, params = sql
        return [(tuple(r[:-1]), int(r[-1])) for r in self._query(src.db, text, params, deadline=deadline)]

    def count_with_facets(
        self,
        dataset: str,
        *,
        since: datetime | None,
        until: datetime | None,
        where: Filter | None,
        by: tuple[str, ...],
        fields: tuple[str, ...],
        top: int,
        deadline: float | None = None,
    ) -> tuple[list[tuple[tuple[Any, ...], int]], dict[str, list[tuple[Any, int]]]] | None:
        """`aggregate`'s counts and each facet field's `top` values by count (ties in the order
        the rows path first meets them: run_plan's facets), from one pass in SQLite; None when the
        filter or a field cannot be evaluated there exactly (the rows path computes them)."""
        if dataset in LEDGER_DATASETS or (dataset not in SOURCES and dataset != "commands"):
            return None
        if dataset == "run_events":
            got = self._tallied(since, until, where, by, fields, top, deadline)
            if got is not None:
                return got
        src = self._source(dataset)
        if src is None:
            return ([] if by else [((), 0)]), {f: [] for f in fields}
        q = facet_sql(src, since, until, where, by, fields)
        if q is None:
            return None
        return self._tally(src, q, by, fields, top, deadline)

    def _tallied(
        self, since: datetime | None, until: datetime | None, where: Filter | None,
        by: tuple[str, ...], fields: tuple[str, ...], top: int, deadline: float | None,
    ) -> tuple[list[tuple[tuple[Any, ...], int]], dict[str, list[tuple[Any, int]]]] | None:  # fmt: skip
        """count_with_facets of run_events from the copy this reader keeps of it, when the query
        is one it answers exactly (a time window, the thread's fields, event types): a
        long-lived reader (the TUI's) then reads only the rows added since its last query."""
        if not self.follow_run_events or self.events_db is None:
            return None
        if not TALLY_FIELDS.issuperset((*by, *fields)):
            return None
        bounds = time_bounds(where, since, until)
        if bounds is None:
            return None
        if self._events_tally is None:
            path = self.events_db
            self._events_tally = RunEventsTally(path, lambda: connect_ro_sync(path, _EV), self._parse)
        return self._events_tally.count_with_facets(bounds, by, fields, top, self.thread_leases, deadline)

    def _tally(
        self,
        src: Source,
        q: FacetQuery,
        by: tuple[str, ...],
        fields: tuple[str, ...],
        top: int,
        deadline: float | None,
    ) -> tuple[list[tuple[tuple[Any, ...], int]], dict[str, list[tuple[Any, int]]]]:
        """The counts per `by` and the facets of `fields` from one facet_sql pass's groups."""
        groups = self._facet_groups(src, q, deadline)
        # A thread-mapped facet (provider) whose values tie on count needs each value's first
        # row to order them, which the thread counts do not give: the exact join pass then.
        loose = {at for at in q.facet_at if q.thread_at is not None and q.thread_at[at] is not None}
        if groups is None or (loose and _ties(groups, loose)):
            assert q.fallback is not None
            self.facet_joins += 1
            params = [thread_map_json(self.thread_leases()), *q.fallback[1][1:]]
            groups = list(self._query(src.db, q.fallback[0], params, deadline=deadline))
        counts: dict[tuple[Any, ...], int] = {}
        for g in groups:
            key = tuple([g[i] for i in q.by_at])
            counts[key] = counts.get(key, 0) + g[-2]
        if not groups and not by:
            counts[()] = 0
        facets: dict[str, list[tuple[Any, int]]] = {}
        for name, at in zip(fields, q.facet_at, strict=True):
            acc: dict[Any, list[Any]] = {}
            for g in groups:
                v = g[at]
                a = acc.get(v)
                if a is None:
                    acc[v] = [g[-2], g[-1]]
                else:
                    a[0] += g[-2]
                    a[1] = min(a[1], g[-1])
            ranked = sorted(acc.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
            facets[name] = [(v, int(n)) for v, (n, _) in ranked[:top]]
        return list(counts.items()), facets

    def _facet_groups(self, src: Source, q: FacetQuery, deadline: float | None) -> list[Any] | None:
        """The pass's groups `(*values, count, min order)`. For a thread-mapped pass, each group's
        threads counted and mapped to their lease/provider (FacetQuery.thread_at): one group per
        (plain values, mapped values), with the plain group's min order, which the caller adds up
        like any others; None when the thread ids do not add up to the group's rows (a NULL id,
        or one holding THREAD_SEP)."""
        rows = list(self._query(src.db, q.sql, q.params, deadline=deadline))
        if q.thread_at is None:
            return rows
        # thread -> the values of the mapped fields the pass asks for (e.g. just the provider):
        # a group's thread ids then collapse to a few keys in C (map + Counter), not one per thread
        wanted = sorted({t for t in q.thread_at if t is not None})
        key_of = {tid: tuple([lp[i] for i in wanted]) for tid, lp in self.thread_leases().items()}
        unknown = tuple(None for _ in wanted)  # a thread no lease has: (None, None) in the rows path
        out: list[Any] = []
        for *plain, n, first, joined in rows:
            ids = [] if joined is None else joined.split(THREAD_SEP)
            if len(ids) != n:
                return None
            per_key: dict[tuple[Any, ...] | None, int] = {}
            # each thread counted once in C, then its count folded onto its key: half the CPU of
            # looking every id up (and hashing a key tuple per id), same first-seen order of keys
            for tid, k in Counter(ids).items():
                mapped = key_of.get(tid)
                per_key[mapped] = per_key.get(mapped, 0) + k
            for mapped, k in per_key.items():
                got = unknown if mapped is None else mapped
                vals = iter(plain)
                out.append(
                    (*[next(vals) if t is None else got[wanted.index(t)] for t in q.thread_at], k, first)
                )
        return out

    def _ledger(self) -> LedgerRows:
        if self.ledger is None:
            from opcockpit.ports.errors import SourceError

            raise SourceError("missing", "no ledger configured; pass --ledger or set [ledger] in the config")
        return self.ledger


def _ties(groups: list[Any], columns: set[int]) -> bool:
    """Whether two values of one of these columns have the same total count over the groups."""
    for at in columns:
        totals: dict[Any, int] = {}
        for g in groups:
            totals[g[at]] = totals.get(g[at], 0) + g[-2]
        if len(set(totals.values())) < len(totals):
            return True
    return False
