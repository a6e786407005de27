"""run_events counted from the copy a long-lived ExploreRows keeps by seq (explore_events_tally;
its first query starts reading the copy in the background and is answered by the SQL pass):
the same counts and facets as the SQL pass and as the rows path (every matching row through the
evaluator), while events.db changes under it: rows appended, runs deleted, the file replaced,
times in every format LEON and garbage give, text that is not UTF-8.

Differential and stateful: one reader follows the database through random steps and is checked
after each one against a fresh SQL-pass reader and the rows path."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opcockpit.adapters.leon import explore_events_tally
from opcockpit.adapters.leon.explore_events_tally import time_bounds
from opcockpit.adapters.leon.explore_rows import ExploreRows
from opcockpit.adapters.leon.schema import create_events_db, create_sandbox_db
from opcockpit.domain.query import FACET_TOP, compile_query, count_pushdown, parse, run_counted, run_plan
from opcockpit.domain.query.filter import Atom

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
THREADS = {"t-1": ("lease-a", "e2b"), "t-2": ("lease-b", "docker"), "t-3": ("lease-c", "docker")}
QUERIES = [
    "run_events | count",
    "run_events since:-6h | group by event_type | count",
    "run_events since:-1d | count by lease_id",
    "run_events since:-3h until:-1h | count by event_type, provider",
    "run_events since:-24h | count by thread_id",
]
BASE = NOW - timedelta(hours=30)


def _times() -> st.SearchStrategy[object]:
    minutes = st.integers(0, 31 * 60).map(lambda m: BASE + timedelta(minutes=m, seconds=m % 7))
    return st.one_of(
        minutes.map(lambda t: t.strftime("%Y-%m-%d %H:%M:%S")),  # CURRENT_TIMESTAMP: most rows
        minutes.map(lambda t: t.strftime("%Y-%m-%d %H:%M:%S")),
        minutes.map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S+00:00")),
        minutes.map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.250")),  # naive local ISO
        minutes.map(lambda t: int(t.timestamp())),  # epoch seconds
        st.sampled_from(["2026-12-07 24:00:00", "2026-02-30 10:00:00", "0000-12-07 11:00:00", "garbage", ""]),
    )


EVENT = st.tuples(
    st.sampled_from([*THREADS, "t-9"]),  # t-9: no lease
    st.sampled_from(["r-1", "r-2", "r-3"]),
    st.sampled_from(["text", "tool_call", "run_done", "error"]),
    _times(),
)
STEP = st.one_of(
    st.tuples(st.just("append"), st.lists(EVENT, min_size=1, max_size=15)),
    st.tuples(st.just("delete_run"), st.sampled_from(["r-1", "r-2", "r-3"])),
    st.tuples(st.just("delete_newest"), st.just(None)),
)


def _sandbox(tmp: Path) -> str:
    sb = create_sandbox_db(str(tmp / "sandbox.db"))
    for thread, (lease, provider) in THREADS.items():
        sb.execute(
            "INSERT INTO sandbox_leases (lease_id, provider_name, created_at, updated_at)"
            " VALUES (?, ?, '2026-12-01 00:00:00', '2026-12-01 00:00:00')",
            (lease, provider),
        )
        sb.execute(
            "INSERT INTO abstract_terminals (terminal_id, thread_id, lease_id, cwd) VALUES (?, ?, ?, '/')",
            (f"term-{thread}", thread, lease),
        )
    sb.commit()
    sb.close()
    return str(tmp / "sandbox.db")


def _append(events_db: str, events: list[tuple[str, str, str, object]]) -> None:
    with sqlite3.connect(events_db) as conn:
        conn.executemany(
            "INSERT INTO run_events (thread_id, run_id, event_type, data, created_at)"
            " VALUES (?, ?, ?, '{}', ?)",
            events,
        )
    conn.close()


def _answer(rows: ExploreRows, text: str):
    plan = compile_query(parse(text), now=NOW)
    push = count_pushdown(plan)
    assert push is not None, text
    got = rows.count_with_facets(
        "run_events", since=plan.since, until=plan.until, where=plan.filter, by=push.by,
        fields=plan.dataset.facets, top=FACET_TOP,
    )  # fmt: skip
    assert got is not None, text
    result = run_counted(plan, push, got[0])
    return result.rows, result.matched, got[1]


def _check(follower: ExploreRows, sandbox: str, events_db: str) -> None:
    fresh = ExploreRows(sandbox, events_db, follow_run_events=False)
    for text in QUERIES:
        plan = compile_query(parse(text), now=NOW)
        want = run_plan(plan, list(fresh.rows("run_events", since=None, until=None)), facets=True)
        got = _answer(follower, text)
        assert got == (want.rows, want.matched, want.facets), text
        assert got == _answer(fresh, text), text


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.lists(EVENT, max_size=30), steps=st.lists(STEP, max_size=6))
def test_the_kept_copy_counts_like_the_sql_pass_and_the_rows_path(first, steps) -> None:
    with tempfile.TemporaryDirectory() as d, _slices_of(4):
        tmp = Path(d)
        sandbox, events_db = _sandbox(tmp), str(tmp / "events.db")
        create_events_db(events_db).close()
        _append(events_db, first)
        follower = ExploreRows(sandbox, events_db)
        _check(follower, sandbox, events_db)
        for kind, arg in steps:
            if kind == "append":
                _append(events_db, arg)
            else:
                with sqlite3.connect(events_db) as conn:
                    if kind == "delete_run":
                        conn.execute("DELETE FROM run_events WHERE run_id = ?", (arg,))
                    else:
                        conn.execute("DELETE FROM run_events WHERE seq = (SELECT MAX(seq) FROM run_events)")
                conn.close()
            _check(follower, sandbox, events_db)
        assert _tally(follower).answers >= 4  # the first query started the copy: the SQL pass


@contextlib.contextmanager
def _slices_of(n: int) -> Iterator[None]:
    """Count a few rows per slice (32k in use), so that counts span slices here too (and do not
    sleep between them: the sleeps leave the GIL to a TUI)."""
    was = explore_events_tally._SLICE, explore_events_tally._YIELD_S
    explore_events_tally._SLICE, explore_events_tally._YIELD_S = n, 0.0
    try:
        yield
    finally:
        explore_events_tally._SLICE, explore_events_tally._YIELD_S = was


def _fleet(tmp: Path, n: int = 6) -> tuple[str, str, ExploreRows]:
    sandbox, events_db = _sandbox(tmp), str(tmp / "events.db")
    create_events_db(events_db).close()
    _append(events_db, [("t-1", "r-1", "text", "2026-12-07 11:00:00")] * n)
    return sandbox, events_db, ExploreRows(sandbox, events_db)


def _tally(rows: ExploreRows):
    assert rows._events_tally is not None  # the query went through the copy
    return rows._events_tally


def test_appended_rows_are_read_alone_and_deleted_ones_dropped_by_thread(tmp_path: Path) -> None:
    sandbox, events_db, rows = _fleet(tmp_path)
    text = "run_events since:-6h | group by event_type | count"
    assert _answer(rows, text)[1] == 6
    _append(events_db, [("t-2", "r-2", "error", "2026-12-07 11:30:00")] * 3)
    _append(events_db, [("t-3", "r-3", "text", "2026-12-07 11:40:00")])
    assert _answer(rows, text)[1] == 10
    assert _tally(rows).full_reads == 1  # the new rows only
    with sqlite3.connect(events_db) as conn:  # old rows of two threads (cleanup_old_runs)
        conn.execute("DELETE FROM run_events WHERE seq IN (1, 3, 8)")
    conn.close()
    assert _answer(rows, text)[0] == [{"event_type": "text", "count": 5}, {"event_type": "error", "count": 2}]
    assert _tally(rows).full_reads == 1  # dropped by thread, not read again
    with sqlite3.connect(events_db) as conn:
        conn.execute("DELETE FROM run_events WHERE seq = 10")  # the newest: its seq may come back
    conn.close()
    assert _answer(rows, text)[1] == 6
    assert _tally(rows).full_reads == 2
    _check(rows, sandbox, events_db)
    assert _tally(rows).answers >= 4


def test_a_replaced_events_db_is_read_afresh(tmp_path: Path) -> None:
    sandbox, events_db, rows = _fleet(tmp_path)
    text = "run_events | count by provider"
    assert _answer(rows, text)[1] == 6
    other = tmp_path / "other.db"
    create_events_db(str(other)).close()
    _append(str(other), [("t-3", "r-9", "text", "2026-12-07 11:00:00")] * 2)
    os.replace(other, events_db)  # same path, another file (a restore): the same seqs, other rows
    assert _answer(rows, text)[0] == [{"provider": "docker", "count": 2}]
    _check(rows, sandbox, events_db)


def test_text_that_is_not_utf8_counts_like_the_rows_path(tmp_path: Path) -> None:
    sandbox, events_db, rows = _fleet(tmp_path)
    assert _answer(rows, "run_events | count by thread_id")[1] == 6
    with sqlite3.connect(events_db) as conn:
        conn.execute(
            "INSERT INTO run_events (thread_id, run_id, event_type, data, created_at)"
            " VALUES (CAST(X'74FF' AS TEXT), 'r-1', CAST(X'FE' AS TEXT), '{}', '2026-12-07 11:00:00')"
        )
    conn.close()
    rows_, matched, facets = _answer(rows, "run_events | count by thread_id")
    assert matched == 7 and {"thread_id": "t\ufffd", "count": 1} in rows_
    assert ("\ufffd", 1) in facets["event_type"]
    _check(rows, sandbox, events_db)


def test_what_the_copy_cannot_answer_takes_the_sql_pass(tmp_path: Path) -> None:
    _, _, rows = _fleet(tmp_path)
    plan = compile_query(parse("run_events event_type:text | count"), now=NOW)
    got = rows.count_with_facets(
        "run_events", since=None, until=None, where=plan.filter, by=(), fields=("event_type",), top=5
    )
    assert got is not None and got[0] == [((), 6)]
    assert rows._events_tally is None
    naive = Atom("created", ">=", datetime(2026, 12, 7, 10, 0))  # the evaluator cannot order it
    assert time_bounds(naive, None, None) is None
    # a window the filter does not imply: the SQL pass's window is then part of the answer
    assert time_bounds(None, NOW - timedelta(hours=1), None) is None
    assert time_bounds(Atom("created", ">", NOW), NOW, None) is not None
