"""run_events counted from a compact copy kept by seq watermark (issue 11: in the Explore tab,
`run_events since:-24h | group by event_type | count` with its facets, Enter -> drawn <= 1 s at
10k leases, ~460k run_events).

The SQL pass (explore_sql.facet_sql) reads every row in the window each time: at 10k leases
~0.6 s of CPU, mostly the GROUP BY's sort and the per-row time check. A long-lived reader (the
TUI's) instead keeps, per row in seq order, three integers: its event type's and thread id's
codes and its created_at in epoch microseconds (each distinct text parsed once, by the one
`parse_ts`, as the rows path does). A query then counts the rows within its time bounds in C
(a mask, itertools.compress, Counter): ~0.1 s instead of ~0.6 s. The counts come in seq order,
so each value's first row (the facets' tie order) is where it first appears in them.

The copy follows events.db by seq, in one read transaction per query: the rows past the newest
one read are appended; when fewer rows are there than it holds, the threads that lost rows (LEON
deletes a thread's old runs as a run ends: cleanup_old_runs) are found by their counts on the
(thread_id, run_id, seq) index and their deleted rows dropped; if the newest row read is gone or
changed, the file was replaced, or the count still differs, it reads them all again. LEON
appends run_events (seq AUTOINCREMENT, created_at its CURRENT_TIMESTAMP default) and deletes
them, never updates a row (run_event_repo.py). The first read (~1 s of CPU at 10k leases, once
per cockpit) runs in the background beside the first query; past MAX_ROWS no copy is kept.

Only what it can answer exactly: counts by and facets of event_type, thread_id, lease_id and
provider (the thread's, from the caller's thread map, read per query), under a filter that is a
conjunction of time bounds on `created`; anything else is None and the SQL pass runs.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from itertools import compress
from operator import and_
from typing import Any

from opcockpit.adapters.leon.explore_sql import to_us
from opcockpit.adapters.leon.sqlite_ro import map_sqlite_error
from opcockpit.domain.query import QueryTimeout
from opcockpit.domain.query.filter import Atom, Bool, Filter

__all__ = ["FIELDS", "RunEventsTally", "time_bounds"]

FIELDS = frozenset(("event_type", "thread_id", "lease_id", "provider"))
NO_TIME = -(2**63)  # created_at that does not parse: matches no time bound
_DIM = {"event_type": "type", "thread_id": "thread", "lease_id": "thread", "provider": "thread"}
_NONE = (None, None)
_ROWS = "SELECT seq, event_type, thread_id, created_at FROM run_events WHERE seq > ? ORDER BY seq"
_THREAD_SEQS = "SELECT seq FROM run_events WHERE thread_id = ?"
_MAX_THREADS_DROPPED = 500  # threads with deleted rows looked up one by one; more: read afresh
# 24 bytes a row kept (~11 MB at 10k leases' ~460k rows); past this many the SQL pass runs instead
MAX_ROWS = 2_000_000
_CHUNK = 20_000  # rows per fetch: a full read's transient memory stays a few MB
_SLICE = 32_768  # rows per C call when counting (~2 ms each): the GIL is let go between them
# ... and the worker sleeps between slices: switched only every 5 ms (sys.getswitchinterval), the
# TUI handled a key typed during the count at half speed (bench_explore_input, busy - idle key
# latency: 87 ms without the sleeps, 30 ms with them; the count ~15 x 2 ms longer)
_YIELD_S = 0.002
_BEFORE_ALL = -(2**63)  # `seq > _BEFORE_ALL`: every row (a seq is a 64-bit rowid)
_LAST = "SELECT seq, event_type, thread_id, created_at FROM run_events ORDER BY seq DESC LIMIT 1"
_AT = "SELECT seq, event_type, thread_id, created_at FROM run_events WHERE seq = ?"
Bounds = tuple[int | None, int | None]
Counts = list[tuple[tuple[Any, ...], int]]
Facets = dict[str, list[tuple[Any, int]]]


def time_bounds(
    where: Filter | None, since: datetime | None, until: datetime | None, time_field: str = "created"
) -> Bounds | None:
    """`where` as inclusive bounds (lo, hi) in epoch microseconds on `time_field`, when it is a
    conjunction of <, <=, >, >= with aware times that implies `since`/`until` (the SQL path's
    window, a superset, then cuts nothing); else None."""
    lo: int | None = None
    hi: int | None = None
    for a in _conjuncts(where):
        if not isinstance(a, Atom) or a.field != time_field or not isinstance(a.value, datetime):
            return None
        if a.value.tzinfo is None:  # the evaluator cannot order it against the parsed times
            return None
        us = to_us(a.value)
        if a.op in (">=", ">"):
            us += a.op == ">"
            lo = us if lo is None else max(lo, us)
        elif a.op in ("<=", "<"):
            us -= a.op == "<"
            hi = us if hi is None else min(hi, us)
        else:
            return None
    if since is not None and (lo is None or lo < to_us(since)):
        return None
    if until is not None and (hi is None or hi > to_us(until)):
        return None
    return lo, hi


def _conjuncts(f: Filter | None) -> Iterable[Filter]:
    if f is None:
        return
    if isinstance(f, Bool) and f.op == "and":
        for i in f.items:
            yield from _conjuncts(i)
    else:
        yield f


class RunEventsTally:
    """The copy of one events.db's run_events and the counts over it (thread-safe)."""

    def __init__(self, path: str, connect: Callable[[], sqlite3.Connection], parse: Any) -> None:
        self.path = path
        self._connect = connect  # a read-only connection (explore_rows.connect_ro_sync)
        self._parse = parse
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) the connection reads
        self._version: int | None = None  # PRAGMA data_version when last read
        self._replacing: Any = None  # the connection's own text factory
        self._utf8 = True  # no text seen that is not UTF-8: decoded by sqlite3 itself (str)
        self._reset()
        self._started = False  # the first read started (in the background)
        self.full_reads = 0  # reads from the first row (tests, diagnostics)
        self.answers = 0  # queries answered from the copy (tests, diagnostics)

    def _reset(self) -> None:
        # per row, in seq order: its event type's and thread's codes, its time (epoch us or NO_TIME)
        self._seqs = array("q")
        self._types = array("i")
        self._threads = array("i")
        self._at = array("q")
        self._per_thread: Counter[int] = Counter()  # thread code -> its rows kept
        self._values: list[Any] = []  # code -> value
        self._codes: dict[Any, int] = {}
        self._last: tuple[Any, ...] | None = None  # the newest row read: (seq, type, thread, created_at)
        self._version = None

    def _first_read(self) -> None:
        with self._lock:
            try:
                self._sync(None)
            except Exception:  # the next query reads it again, and reports what fails
                self._reset()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn, self._file = None, None
            self._reset()

    # ------------------------------------------------------------------ counting
    def count_with_facets(
        self,
        bounds: Bounds,
        by: tuple[str, ...],
        fields: tuple[str, ...],
        top: int,
        threads: Callable[[], Mapping[str, tuple[str, str]]],
        deadline: float | None,
    ) -> tuple[Counts, Facets] | None:
        """The counts per `by` and each facet field's `top` values (ties: first row first) of the
        rows within `bounds` (time_bounds); `by` and `fields` within FIELDS. None: the copy is
        not there yet (the first call starts reading it in the background) or events.db's rows
        could not be followed exactly; the caller runs the SQL pass."""
        if not self._started:
            # The first read takes longer than the SQL pass; in a thread beside it (SQLite runs
            # without the GIL), the first query is no slower, and the next one waits for it.
            self._started = True
            threading.Thread(target=self._first_read, name="opcockpit-run-events-copy", daemon=True).start()
            return None
        by_dims = {_DIM[b] for b in by}
        with self._lock:
            if not self._sync(deadline):
                return None
            self.answers += 1
            values = self._values
            dims = {*(_DIM[f] for f in fields), *(by_dims if len(by_dims) == 1 else ("both",) if by else ())}
            per, matched = self._count(bounds, dims)
        thread_map = threads() if {"lease_id", "provider"} & {*by, *fields} else {}

        def value(name: str, code: int) -> Any:
            if name in ("event_type", "thread_id"):
                return values[code]
            return thread_map.get(values[code], _NONE)[0 if name == "lease_id" else 1]

        counts: dict[tuple[Any, ...], int] = {}
        if len(by_dims) == 2:
            for (ct, ch), n in per["both"].items():
                key = tuple([value(b, ct if _DIM[b] == "type" else ch) for b in by])
                counts[key] = counts.get(key, 0) + n
        elif by:
            for code, n in per[next(iter(by_dims))].items():
                key = tuple([value(b, code) for b in by])
                counts[key] = counts.get(key, 0) + n
        else:
            counts[()] = matched
        facets: Facets = {}
        for name in fields:
            acc: dict[Any, int] = {}
            for code, n in per[_DIM[name]].items():
                v = value(name, code)
                acc[v] = acc.get(v, 0) + n
            facets[name] = sorted(acc.items(), key=lambda kv: -kv[1])[:top]  # stable: first seen first
        return sorted(counts.items(), key=lambda kv: tuple(map(_sqlite_order, kv[0]))), facets

    def _count(self, bounds: Bounds, dims: set[str]) -> tuple[dict[str, Counter[Any]], int]:
        """Per dimension ("type", "thread", "both": the pair), the rows within the bounds per
        code, in the order of each code's first row (a value's first row is where it first
        appears: the facets' tie order); and how many rows that is. In C, a slice at a time: a
        C call over all 460k rows holds the GIL ~30 ms, and the TUI's keys wait for it (_YIELD_S)."""
        per: dict[str, Counter[Any]] = {d: Counter() for d in dims}
        matched = 0
        for start in range(0, len(self._at), _SLICE):
            end = start + _SLICE
            mask = _mask(bounds, self._at[start:end])
            types, threads = self._types[start:end], self._threads[start:end]
            for d, acc in per.items():
                col: Iterable[Any] = (
                    types if d == "type" else threads if d == "thread" else zip(types, threads, strict=True)
                )
                acc.update(col if mask is None else compress(col, mask))
            matched += len(types) if mask is None else sum(mask)
            time.sleep(_YIELD_S)
        return per, matched

    # ------------------------------------------------------------------ following events.db
    def _sync(self, deadline: float | None) -> bool:
        """Bring the copy up to events.db's current contents (QueryTimeout past `deadline`);
        False when that failed (_read_new)."""
        try:
            st = os.stat(self.path)
        except OSError:
            st = None
        if self._conn is None or st is None or (st.st_dev, st.st_ino) != self._file:
            if self._conn is not None:
                self._conn.close()
            self._conn, self._file = None, None
            self._reset()
            conn = self._connect()  # SourceError when it cannot be read
            self._replacing = conn.text_factory  # how every reader decodes text (bad UTF-8 replaced)
            self._conn, self._file = conn, None if st is None else (st.st_dev, st.st_ino)
        conn = self._conn
        try:
            # read before the snapshot: a commit in between makes the next query look again
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version == self._version:
                return True
            if deadline is not None:
                conn.set_progress_handler(lambda: time.monotonic() > deadline, 20_000)
            conn.execute("BEGIN")  # one snapshot for the checks and the rows read
            try:
                ok = self._read_new_decoded(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
                conn.set_progress_handler(None, 0)
            self._version = version if ok else None
            return ok
        except sqlite3.OperationalError as exc:
            self._reset()
            if deadline is not None and "interrupt" in str(exc):
                raise QueryTimeout("the query ran past its time budget and was stopped; narrow it") from None
            raise map_sqlite_error(exc, os.path.abspath(self.path), "events.db", 2000) from None
        except sqlite3.Error as exc:
            self._reset()
            raise map_sqlite_error(exc, os.path.abspath(self.path), "events.db", 2000) from None

    def _read_new_decoded(self, conn: sqlite3.Connection) -> bool:
        """_read_new with text decoded in C (str), as the replacing decoder gives valid UTF-8; from
        the first text that is not, with the replacing decoder, all again."""
        if self._utf8:
            conn.text_factory = str
            try:
                return self._read_new(conn)
            except sqlite3.OperationalError as exc:
                if "decode" not in str(exc):
                    raise
                self._utf8 = False
                self._reset()
        conn.text_factory = self._replacing
        return self._read_new(conn)

    def _read_new(self, conn: sqlite3.Connection) -> bool:
        """Read the rows past the newest one read and drop the ones deleted since; False (and
        the copy emptied) when what it then holds is not what is there, even read afresh."""
        total = conn.execute("SELECT COUNT(*) FROM run_events").fetchone()[0]
        if total > MAX_ROWS:
            self._reset()
            return False
        if self._last is not None:
            same = conn.execute(_AT, (self._last[0],)).fetchone()
            if same is None or tuple(same) != self._last:
                self._reset()  # the newest row read is gone or changed (its seq may be reused)
        for _ in range(2):
            after = _BEFORE_ALL if self._last is None else self._last[0]
            self.full_reads += after == _BEFORE_ALL
            self._append(conn.execute(_ROWS, (after,)))
            if len(self._seqs) > total:
                self._drop_deleted(conn)
            if len(self._seqs) == total:
                last = conn.execute(_LAST).fetchone()
                self._last = None if last is None else tuple(last)
                return True
            self._reset()  # rows that cannot be accounted for (a seq written by hand?): afresh
        return False

    def _append(self, cur: sqlite3.Cursor) -> None:
        times: dict[Any, int] = {}  # created_at -> epoch us: each distinct text parsed once
        while chunk := cur.fetchmany(_CHUNK):
            # per chunk, not per row: new values coded, new times parsed, then the rows mapped
            # to codes in C (a Python loop per row was most of a full read's CPU)
            seqs, ets, ths, xs = zip(*chunk, strict=True)
            self._code(ets)
            self._code(ths)
            for x in dict.fromkeys(xs).keys() - times.keys():
                dt = self._parse(x)
                times[x] = NO_TIME if dt is None else to_us(dt)
            start = len(self._threads)
            self._seqs.extend(seqs)
            self._types.extend(map(self._codes.__getitem__, ets))
            self._threads.extend(map(self._codes.__getitem__, ths))
            self._at.extend(map(times.__getitem__, xs))
            self._per_thread.update(self._threads[start:])

    def _drop_deleted(self, conn: sqlite3.Connection) -> None:
        """Drop the rows deleted from events.db (LEON deletes a thread's old runs as a run
        ends): the threads whose row count went down are found on the (thread_id, run_id,
        seq) index, and only their rows' seqs are compared."""
        there: dict[Any, int] = {}
        for thread, n in conn.execute("SELECT thread_id, COUNT(*) FROM run_events GROUP BY thread_id"):
            there[thread] = there.get(thread, 0) + n
        values = self._values
        fewer = {code for code, n in self._per_thread.items() if n and there.get(values[code], 0) != n}
        if not fewer or len(fewer) > _MAX_THREADS_DROPPED:
            return  # nothing to find by thread, or too much: the caller reads it all again
        left: set[int] = set()
        for code in fewer:
            left.update(r[0] for r in conn.execute(_THREAD_SEQS, (values[code],)))
        drop = []
        for i in compress(range(len(self._threads)), map(fewer.__contains__, self._threads)):
            if self._seqs[i] not in left:
                drop.append(i)
                self._per_thread[self._threads[i]] -= 1
        self._seqs = _without(self._seqs, drop)
        self._types = _without(self._types, drop)
        self._threads = _without(self._threads, drop)
        self._at = _without(self._at, drop)

    def _code(self, vals: Iterable[Any]) -> None:
        codes, values = self._codes, self._values
        for v in dict.fromkeys(vals).keys() - codes.keys():
            codes[v] = len(values)
            values.append(v)


def _without(a: array, drop: list[int]) -> array:
    """`a` without the items at the ascending positions `drop`, copied in slices (memcpy): an
    array built from an iterator converts every item (~0.3 s for four arrays of 460k)."""
    out = array(a.typecode)
    start = 0
    for i in drop:
        out.extend(a[start:i])
        start = i + 1
    out.extend(a[start:])
    return out


def _mask(bounds: Bounds, at: array) -> bytes | None:
    """1 per time within the bounds, else 0 (None: no bounds, every row), computed in C."""
    lo, hi = bounds
    if lo is None and hi is None:
        return None
    if hi is None:
        return bytes(map(lo.__le__, at))  # type: ignore[union-attr]
    low = NO_TIME.__lt__ if lo is None else lo.__le__  # NO_TIME is below any real bound
    return bytes(map(and_, map(low, at), map(hi.__ge__, at)))


def _sqlite_order(v: Any) -> tuple[int, Any]:
    """SQLite's order of values (NULL, numbers, text, blobs), as its GROUP BY returns groups."""
    if v is None:
        return (0, 0)
    if isinstance(v, int | float):
        return (1, v)
    return (2, v) if isinstance(v, str) else (3, v)
