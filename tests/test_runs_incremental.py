"""Runs read by seq watermark (services.runs.RunReads, issue 10) equal a from-scratch read.

Random LEON-way writes to a real events.db (runs' events, activity streams, retention deleting a
thread's older runs, and odd deletes LEON does not make): after every step the runs RunReads
gives equal `EventsDbReader.runs(since=...)` of the same file, and a step that only appended is
folded in without a full read.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opcockpit.adapters.leon.events_db import EventsDbReader
from opcockpit.adapters.leon.schema import create_events_db
from opcockpit.services.runs import RESYNC_S, RunReads, _signature

T0 = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
THREADS = ("t-a", "t-b", "t-c")
TYPES = ("user_message", "run_start", "text", "tool_call", "retry", "error", "cancelled", "run_done")

append = st.tuples(
    st.just("append"),
    st.sampled_from(THREADS),
    st.integers(0, 3),  # which run of the thread (3: an activity stream)
    st.lists(st.sampled_from(TYPES), min_size=1, max_size=4),
    st.integers(-200, 0),  # created_at, minutes from T0 (some fall out of the window)
)
retention = st.tuples(st.just("retention"), st.sampled_from(THREADS), st.integers(0, 2))
odd_delete = st.tuples(st.just("odd_delete"), st.sampled_from(THREADS), st.integers(0, 2))
step = st.one_of(append, append, append, retention, odd_delete)


def _run_id(thread: str, k: int) -> str:
    return f"activity_{thread}" if k == 3 else f"run-{thread}-{k}"


def _write(conn: sqlite3.Connection, op: tuple) -> bool:
    """Apply one step; True when it only appended (a watermark read must fold it in)."""
    kind, thread, k = op[0], op[1], op[2]
    if kind == "append":
        types, minutes = op[3], op[4]
        at = (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")
        conn.executemany(
            "INSERT INTO run_events (thread_id, run_id, event_type, data, created_at) VALUES (?,?,?,?,?)",
            [(thread, _run_id(thread, k), t, f'{{"error": "boom {k}"}}', at) for t in types],
        )
    elif kind == "retention":  # cleanup_old_runs(thread, keep_latest=1) with a new event of k
        conn.execute(
            "INSERT INTO run_events (thread_id, run_id, event_type, data) VALUES (?,?,?,?)",
            (thread, _run_id(thread, k), "run_done", "{}"),
        )
        conn.execute(
            "DELETE FROM run_events WHERE thread_id=? AND run_id != ? AND run_id NOT LIKE 'activity_%'",
            (thread, _run_id(thread, k)),
        )
    else:  # not LEON's way: the first event of a run, nothing appended
        conn.execute(
            "DELETE FROM run_events WHERE seq = (SELECT MIN(seq) FROM run_events WHERE run_id = ?)",
            (_run_id(thread, k),),
        )
    conn.commit()
    return kind == "append"


async def _both(path: str, reads: RunReads, now: datetime, since: datetime) -> tuple[list, list]:
    async with EventsDbReader(path) as reader:
        got = await reads.read(reader, path, _signature(path), now, since)
        want = await reader.runs(since=since)
    return got, want


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=10), window_min=st.sampled_from([30, 120, 100_000]))
def test_watermark_runs_equal_a_full_read(tmp_path: Path, steps: list[tuple], window_min: int) -> None:
    path = str(Path(tempfile.mkdtemp(dir=tmp_path)) / "events.db")  # one file per example
    conn = create_events_db(path)
    reads = RunReads()
    since = T0 - timedelta(minutes=window_min)
    try:
        for op in steps:
            appended = _write(conn, op)
            before = reads.reads
            got, want = asyncio.run(_both(path, reads, T0, since))
            assert got == want, op
            if appended and before:
                assert reads.reads == before, "an append was read in full, not folded in"
    finally:
        conn.close()


SINCE = T0 - timedelta(days=1)
EventsDb = tuple[str, sqlite3.Connection]


@pytest.fixture
def events_db(tmp_path: Path) -> Iterator[EventsDb]:
    """A real events.db in LEON's schema and a connection writing to it."""
    path = str(tmp_path / "events.db")
    conn = create_events_db(path)
    try:
        yield path, conn
    finally:
        conn.close()


def test_a_retention_delete_is_folded_in_and_an_odd_delete_reads_everything(events_db: EventsDb) -> None:
    path, conn = events_db
    reads = RunReads()
    _write(conn, ("append", "t-a", 0, ["run_start", "text"], 0))
    _write(conn, ("append", "t-b", 0, ["run_start", "error"], 0))
    got, _ = asyncio.run(_both(path, reads, T0, SINCE))
    assert [r.run_id for r in got] == ["run-t-b-0", "run-t-a-0"] and reads.reads == 1
    _write(conn, ("retention", "t-a", 1))  # run 1 of t-a finishes, run 0 deleted
    got, want = asyncio.run(_both(path, reads, T0, SINCE))
    assert got == want and [r.run_id for r in got] == ["run-t-a-1", "run-t-b-0"]
    assert reads.reads == 1 and reads.delta_reads == 1
    _write(conn, ("odd_delete", "t-b", 0))
    got, want = asyncio.run(_both(path, reads, T0, SINCE))
    assert got == want and got[1].event_count == 1 and reads.reads == 2


def test_a_resync_compares_in_place_keeping_unchanged_runs(tmp_path: Path) -> None:
    """The periodic full read (RESYNC_S) keeps the objects of runs it finds unchanged (a fresh
    set of every run pinned ~7 MB of pymalloc arenas at 10k runs) and still catches what the
    watermark cannot see: an event rewritten in place (its seq unchanged) and an odd delete."""
    path = str(tmp_path / "events.db")
    conn = create_events_db(path)
    reads = RunReads()
    since = T0 - timedelta(days=1)
    later = T0 + timedelta(seconds=RESYNC_S + 1)
    try:
        _write(conn, ("append", "t-a", 0, ["run_start", "text"], 0))
        _write(conn, ("append", "t-b", 0, ["run_start", "error"], -5))
        _write(conn, ("append", "t-c", 0, ["run_start"], -9))
        before, _ = asyncio.run(_both(path, reads, T0, since))
        # not LEON's way: an event's time rewritten, a run's only event deleted (seqs unchanged
        # elsewhere, so the watermark read alone would not notice the rewrite)
        conn.execute("UPDATE run_events SET created_at = '2026-03-20 11:00:00' WHERE run_id = 'run-t-b-0'")
        conn.execute("DELETE FROM run_events WHERE run_id = 'run-t-c-0'")
        conn.commit()
        got, want = asyncio.run(_both(path, reads, later, since))
        assert got == want and reads.reads == 2
        kept = {r.run_id: r for r in before}
        by_id = {r.run_id: r for r in got}
        assert by_id["run-t-a-0"] is kept["run-t-a-0"]  # unchanged: the same object
        assert by_id["run-t-b-0"] is not kept["run-t-b-0"] and "run-t-c-0" not in by_id
    finally:
        conn.close()


def test_run_times_are_one_object_per_distinct_text(tmp_path: Path) -> None:
    """A cockpit keeps every run's raw times: equal texts are one object (~2 MB at 10k runs)."""
    path = str(tmp_path / "events.db")
    conn = create_events_db(path)
    try:
        for k, thread in enumerate(THREADS):
            _write(conn, ("append", thread, 0, ["user_message", "run_start", "error", "run_done"], -k))

        async def aggs() -> list:
            async with EventsDbReader(path) as reader:
                return await reader.run_aggs()

        times = [
            v
            for a in asyncio.run(aggs())
            for v in (a.max_created, a.first_at, a.last_at, a.start_at, a.done_at)
            if v is not None
        ]
        assert len(times) == 15 and len({id(v) for v in times}) == len(set(times)) == 3
    finally:
        conn.close()


def test_a_runs_thread_id_is_the_interned_text(tmp_path: Path) -> None:
    """sandbox.db's records hold thread ids interned: a run's is the same object, not one str per
    run kept by the cockpit."""
    import sys

    path = str(tmp_path / "events.db")
    conn = create_events_db(path)
    try:
        for k in range(3):
            _write(conn, ("append", "t-a", k, ["run_start", "run_done"], -k))

        async def aggs() -> list:
            async with EventsDbReader(path) as reader:
                return await reader.run_aggs()

        got = asyncio.run(aggs())
        assert len(got) == 3 and all(a.thread_id is sys.intern("t-a") for a in got)
    finally:
        conn.close()


def test_the_window_order_holds_no_pair_per_run(tmp_path: Path) -> None:
    """The runs' newest-first order is of the aggregates alone (their summaries by id): a
    (aggregate, summary) pair per run was ~8k new tuples every round with new events."""
    path = str(tmp_path / "events.db")
    conn = create_events_db(path)
    reads = RunReads()
    try:
        for k, thread in enumerate(THREADS):
            _write(conn, ("append", thread, 0, ["run_start", "text"], -k))
        got, want = asyncio.run(_both(path, reads, T0, T0 - timedelta(days=1)))
        assert got == want and len(got) == 3
        assert all(type(a).__name__ == "RunAgg" for a in reads._by_path[path].ordered or ())
    finally:
        conn.close()


def test_a_thread_with_one_run_holds_its_id_not_a_tuple(events_db: EventsDb) -> None:
    """A thread's runs are its one run id (a str) when it has one, a tuple only for several: a
    one-element tuple per thread was ~0.55 MB at 10k runs. Retention folding back to one run, and
    the watermark read walking a thread's runs, keep working on both shapes."""
    path, conn = events_db
    reads = RunReads()
    _write(conn, ("append", "t-a", 0, ["run_start", "text"], 0))
    _write(conn, ("append", "t-b", 0, ["run_start"], 0))
    _write(conn, ("append", "t-b", 1, ["run_start"], 0))  # t-b: two runs
    got, want = asyncio.run(_both(path, reads, T0, SINCE))
    st_ = reads._by_path[path]
    assert got == want
    assert st_.by_thread["t-a"] == "run-t-a-0"
    assert sorted(st_.by_thread["t-b"]) == ["run-t-b-0", "run-t-b-1"]
    _write(conn, ("retention", "t-a", 1))  # run 1 finishes, run 0 deleted: one run again
    _write(conn, ("append", "t-b", 0, ["text"], 0))  # a thread of two runs read by watermark
    got, want = asyncio.run(_both(path, reads, T0, SINCE))
    assert got == want and reads.reads == 1 and reads.delta_reads == 1
    assert st_.by_thread["t-a"] == "run-t-a-1"
    assert st_.thread_runs("t-a") == ("run-t-a-1",) and st_.thread_runs("t-z") == ()
