"""Run health carried over time (issue 10, idle tick) equals run health computed afresh.

An alert round every 10 s on an events.db that did not change used to walk every run again
(~60 ms at 10k leases). RunReads keeps the last run health and carries it to a later `now`
(domain.runs_inc.carried) until a run leaves the window or becomes stuck. Random LEON-way writes
interleaved with time passing (across those thresholds): after every step the cockpit's
`load_run_health` equals a from-scratch read and `run_health` of the same file at the same time.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opcockpit.adapters.leon.events_db import EventsDbReader
from opcockpit.adapters.leon.schema import create_events_db
from opcockpit.domain.runs import RunHealth
from opcockpit.services.runs import RunReads, load_run_health
from tests.test_runs_incremental import T0, _write, step

# seconds that pass with no write: mostly within RESYNC_S (carried), some across thresholds
wait = st.tuples(st.just("wait"), st.one_of(st.integers(1, 280), st.integers(1, 40 * 60)))
steps = st.lists(st.one_of(step, wait, wait, wait), min_size=1, max_size=14)


async def _health(
    path: str, now: datetime, reads: RunReads | None, window_s: float, stuck_s: float
) -> RunHealth:
    return await load_run_health(
        path, now, events_reader=EventsDbReader, window_s=window_s, stuck_after_s=stuck_s, reads=reads
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=steps, window_min=st.sampled_from([30, 120, 100_000]), stuck_min=st.sampled_from([5, 30]))
def test_carried_run_health_equals_a_fresh_one(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple], window_min: int, stuck_min: int
) -> None:
    path = str(tmp_path_factory.mktemp("runs") / "events.db")
    conn = create_events_db(path)
    reads, now = RunReads(), T0
    try:
        for op in ops:
            if op[0] == "wait":
                now += timedelta(seconds=op[1])
            else:
                _write(conn, op)
            got = asyncio.run(_health(path, now, reads, window_min * 60.0, stuck_min * 60.0))
            want = asyncio.run(_health(path, now, None, window_min * 60.0, stuck_min * 60.0))
            assert got == want
    finally:
        conn.close()


def test_an_unchanged_file_is_carried_and_a_stuck_run_ages(tmp_path: Path) -> None:
    path = str(tmp_path / "events.db")
    conn = create_events_db(path)
    _write(conn, ("append", "t-a", 0, ["run_start", "text"], 0))
    _write(conn, ("append", "t-b", 1, ["run_start", "run_done"], -5))
    reads = RunReads()
    first = asyncio.run(_health(path, T0 + timedelta(minutes=20), reads, 86400.0, 600.0))
    assert [s.run_id for s in first.stuck] == ["run-t-a-0"] and reads.health_hits == 0
    later = asyncio.run(_health(path, T0 + timedelta(minutes=24), reads, 86400.0, 600.0))
    assert reads.health_hits == 1  # nothing read, nothing walked
    assert later.stuck[0].idle_s == first.stuck[0].idle_s + 240  # its silence grew
    assert later == asyncio.run(_health(path, T0 + timedelta(minutes=24), None, 86400.0, 600.0))
    _write(conn, ("retention", "t-a", 0))  # the file changed
    asyncio.run(_health(path, T0 + timedelta(minutes=25), reads, 86400.0, 600.0))
    assert reads.health_hits == 1
    conn.close()
