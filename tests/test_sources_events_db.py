"""events.db reader: runs derived from run_events (no runs table), follow cursor, absent table."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.leon.events_db import EventsDbReader, RunSummary
from opcockpit.adapters.leon.schema import create_events_db
from opcockpit.domain.models import RunEventRecord
from tests.fixtures.leon_db import (
    RUN_T1,
    RUN_T3,
    T1,
    T1_RUN_START_UTC,
    T3,
    T3_RUN_START_UTC,
    add_run,
    add_run_event,
    write_worked_example,
)

START = datetime(2026, 3, 20, 3, 0, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)


@pytest.fixture
def events_db(tmp_path: Path) -> Path:
    """Runs of every outcome on two threads, plus activity streams that must not count as runs."""
    p = tmp_path / "events.db"
    conn = create_events_db(str(p))
    # add_run writes: user_message, run_start, n_body events, [error|cancelled], [run_done]
    add_run(conn, "th-a", "run-completed", outcome="completed", start=START, n_body=3)  # seq 1-6
    add_run_event(
        conn, "th-a", "activity_th-a", "task_start", {"task": "bg"}, created_at=START + 10 * SEC
    )  # 7
    add_run(
        conn,
        "th-b",
        "run-error",
        outcome="error",
        start=START + 20 * SEC,
        n_body=2,
        error="RateLimitError: 429 from model",
    )  # 8-13
    add_run(conn, "th-b", "run-cancelled", outcome="cancelled", start=START + 40 * SEC, n_body=1)  # 14-18
    add_run(conn, "th-a", "run-running", outcome="running", start=START + 60 * SEC, n_body=4)  # 19-24
    add_run_event(
        conn, "th-a", "activity_th-a", "task_done", {"task": "bg"}, created_at=START + 70 * SEC
    )  # 25
    conn.commit()
    conn.close()
    return p


async def test_runs_derivation_every_outcome(events_db: Path) -> None:
    async with EventsDbReader(str(events_db)) as r:
        runs = await r.runs()
        assert [x.run_id for x in runs] == ["run-running", "run-cancelled", "run-error", "run-completed"]
        by_id = {x.run_id: x for x in runs}
        assert by_id["run-completed"] == RunSummary(
            run_id="run-completed",
            thread_id="th-a",
            status="completed",
            started_at=START + SEC,  # the run_start event, not the user_message before it
            ended_at=START + 5 * SEC,
            last_event_at=START + 5 * SEC,
            error=None,
            event_count=6,
            first_seq=1,
            last_seq=6,
        )
        err = by_id["run-error"]
        assert (err.status, err.error, err.thread_id) == ("error", "RateLimitError: 429 from model", "th-b")
        assert (err.first_seq, err.last_seq, err.event_count) == (8, 13, 6)
        assert err.ended_at == START + 25 * SEC  # run_done after the error
        cancelled = by_id["run-cancelled"]
        assert (cancelled.status, cancelled.error, cancelled.event_count) == ("cancelled", None, 5)
        running = by_id["run-running"]
        assert (running.status, running.ended_at, running.error) == ("running", None, None)
        assert running.last_event_at == START + 65 * SEC
        assert all(not x.run_id.startswith("activity_") for x in runs)


async def test_runs_filters(events_db: Path) -> None:
    async with EventsDbReader(str(events_db)) as r:
        assert [x.run_id for x in await r.runs("th-b")] == ["run-cancelled", "run-error"]
        assert [x.run_id for x in await r.runs("th-a", limit=1)] == ["run-running"]
        assert [x.run_id for x in await r.runs(since=START + 44 * SEC)] == ["run-running", "run-cancelled"]
        assert await r.runs("nope") == []
        assert await r.latest_seq() == 25


async def test_error_without_run_done_and_retried_errors(tmp_path: Path) -> None:
    p = tmp_path / "events.db"
    conn = create_events_db(str(p))
    add_run_event(conn, "t", "r-err", "run_start", created_at=START)
    add_run_event(conn, "t", "r-err", "error", {"error": "boom"}, created_at=START + SEC)
    add_run_event(conn, "t", "r-retried", "run_start", created_at=START + 2 * SEC)
    add_run_event(conn, "t", "r-retried", "error", {"error": "stream reset"}, created_at=START + 3 * SEC)
    add_run_event(
        conn,
        "t",
        "r-retried",
        "retry",
        {"attempt": 1, "max_attempts": 3, "wait_seconds": 1},
        created_at=START + 4 * SEC,
    )
    add_run_event(conn, "t", "r-retried", "run_done", created_at=START + 5 * SEC)
    add_run_event(conn, "t", "r-odd", "run_start", created_at=START + 6 * SEC)
    conn.execute(
        "INSERT INTO run_events (thread_id, run_id, event_type, data) VALUES ('t', 'r-odd', 'error', "
        "'not json')"
    )
    conn.commit()
    conn.close()
    async with EventsDbReader(str(p)) as r:
        by_id = {x.run_id: x for x in await r.runs()}
    # error is known before run_done lands; ended_at stays None until it does
    assert (by_id["r-err"].status, by_id["r-err"].error, by_id["r-err"].ended_at) == ("error", "boom", None)
    assert (by_id["r-retried"].status, by_id["r-retried"].error) == ("completed", None)
    assert by_id["r-odd"].error == "not json"
    assert by_id["r-odd"].last_event_at is not None  # CURRENT_TIMESTAMP default parsed as UTC


async def test_run_events_follow_cursor(events_db: Path) -> None:
    async with EventsDbReader(str(events_db)) as r:
        first = await r.run_events("run-running", limit=2)
        assert [e.seq for e in first] == [19, 20]
        assert first[0] == RunEventRecord(
            19, "th-a", "run-running", "user_message", '{"content": "hello"}', None, START + 60 * SEC
        )
        rest = await r.run_events("run-running", after_seq=first[-1].seq)
        assert [e.seq for e in rest] == [21, 22, 23, 24]
        assert await r.run_events("run-running", after_seq=24) == []
        # a new event appended by LEON shows up on the next poll from the same cursor
        conn = sqlite3.connect(events_db)
        add_run_event(conn, "th-a", "run-running", "run_done", created_at=START + 90 * SEC)
        conn.commit()
        conn.close()
        new = await r.run_events("run-running", after_seq=24)
        assert [(e.seq, e.event_type) for e in new] == [(26, "run_done")]
        assert (await r.runs("th-a", limit=1))[0].status == "completed"
        assert await r.latest_seq() == 26


async def test_worked_example_events(tmp_path: Path) -> None:
    ex = write_worked_example(tmp_path)
    async with EventsDbReader(str(ex.events_db)) as r:
        runs = await r.runs()
        assert [x.run_id for x in runs] == [RUN_T3, RUN_T1]
        t3, t1 = runs
        assert t1 == RunSummary(
            RUN_T1,
            T1,
            "completed",
            T1_RUN_START_UTC + timedelta(seconds=5),
            T1_RUN_START_UTC + timedelta(seconds=200),
            T1_RUN_START_UTC + timedelta(seconds=200),
            None,
            41,
            201,
            241,
        )
        # T3's run_start at 11:20 local (03:20Z) never got a run_done: still running
        assert t3 == RunSummary(
            RUN_T3, T3, "running", T3_RUN_START_UTC, None, T3_RUN_START_UTC, None, 1, 305, 305
        )
        assert await r.latest_seq() == 305
        assert [e.seq for e in await r.run_events(RUN_T1, after_seq=239)] == [240, 241]


async def test_absent_table_is_empty_then_appears(tmp_path: Path) -> None:
    p = tmp_path / "events.db"
    conn = sqlite3.connect(p)
    conn.execute("CREATE TABLE something_else (x)")
    conn.commit()
    async with EventsDbReader(str(p)) as r:
        assert await r.runs() == []
        assert await r.run_events("x") == []
        assert await r.latest_seq() == 0
        create_events_db(str(p)).close()  # LEON creates run_events lazily
        add_run(conn, "t", "r1", start=START)
        conn.commit()
        assert [x.run_id for x in await r.runs()] == ["r1"]
    conn.close()


async def test_many_events_one_pass(tmp_path: Path) -> None:
    # 100k events across 2k runs (plus activity noise): every run summarised, counts exact.
    p = tmp_path / "events.db"
    conn = create_events_db(str(p))
    rows = []
    for run in range(2000):
        rid = f"run-{run:05d}"
        kinds = ["user_message", "run_start", *(["text"] * 45), "run_done"]
        if run % 10 == 0:
            kinds.insert(-1, "error")
        rows += [
            (f"th-{run % 300}", rid, k, json.dumps({"error": f"e{run}"}) if k == "error" else "{}")
            for k in kinds
        ]
        rows.append((f"th-{run % 300}", f"activity_th-{run % 300}", "task_start", "{}"))
    conn.executemany("INSERT INTO run_events (thread_id, run_id, event_type, data) VALUES (?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    async with EventsDbReader(str(p)) as r:
        runs = await r.runs()
    assert len(runs) == 2000
    assert sum(x.event_count for x in runs) == len(rows) - 2000
    errors = [x for x in runs if x.status == "error"]
    assert len(errors) == 200 and {x.error for x in errors} == {f"e{i}" for i in range(0, 2000, 10)}
    assert {x.status for x in runs} == {"completed", "error"}
