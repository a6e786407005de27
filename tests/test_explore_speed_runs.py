"""Explore speed (issue 11): `EventsDbReader.run_seqs(only=...)` reads the status events first and
looks up the counts and first/last seqs of only the runs whose status `only` accepts (index
seeks per (thread, run) pair). Differential, on random events.db contents (runs across threads,
activity streams, retried errors, thread ids that are not valid UTF-8): it returns exactly the
runs of a full `run_seqs()` whose status `only` accepts (so the reader's SQL copy of the status
rule, events_db._STATUS_SQL, agrees with domain.runs_inc.status_of), in the same order; a test that accepts
`running` (the status of a run without status events) returns every run, as before."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opcockpit.adapters.leon.events_db import EventsDbReader
from opcockpit.adapters.leon.schema import create_events_db
from opcockpit.domain.runs_inc import run_status

KINDS = ["user_message", "run_start", "text", "error", "retry", "cancelled", "run_done", "tool_call"]
ONLY = {
    "error": lambda s: s == "error",
    "not completed": lambda s: s != "completed",
    "error or cancelled": lambda s: s in ("error", "cancelled"),
    "completed": lambda s: s == "completed",
    "cancelled": lambda s: s == "cancelled",
    "completed or error": lambda s: s in ("completed", "error"),
    "nothing": lambda s: False,
}

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["t-1", "t-2", "t-3", "t-4"]),
        st.sampled_from(["r-1", "r-2", "r-3", "r-4", "r-5", "activity_t-1"]),
        st.sampled_from(KINDS),
    ),
    max_size=50,
)


# runs that complete, so that the kept ones are few and looked up by seeks
FILLER = [(f"t-{k}", f"done-{k}", kind) for k in range(8) for kind in ("run_start", "run_done")]


async def _both(path: Path, only, *, seeks: int | None = None) -> tuple[list, list]:
    async with EventsDbReader(str(path)) as reader:
        every = await reader.run_seqs()
        some = await reader.run_seqs(only=only)
        if seeks is not None:  # whether the kept runs were looked up by seeks (few of them)
            assert reader.seek_reads == seeks
    if only("running"):  # a run without status events may match: every run, as before
        return every, some
    return [s for s in every if only(run_status(s)[0])], some


def _write(path: Path, events: list[tuple[object, str, str]]) -> None:
    conn = create_events_db(str(path))
    conn.executemany(
        "INSERT INTO run_events (thread_id, run_id, event_type, data) VALUES (?, ?, ?, '{}')", events
    )
    conn.commit()
    conn.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=EVENTS, only=st.sampled_from(sorted(ONLY)), filler=st.booleans())
def test_runs_of_the_statuses_asked_equal_every_run_filtered(events, only: str, filler: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.db"
        _write(path, events + (FILLER if filler else []))  # with it, the seeks path is taken
        want, got = asyncio.run(_both(path, ONLY[only]))
        assert got == want, only


def test_a_run_across_two_threads_is_merged_from_both(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    _write(path, [("t-2", "r-1", "run_start"), ("t-1", "r-1", "text"), ("t-2", "r-1", "error"), *FILLER])
    want, got = asyncio.run(_both(path, ONLY["error"], seeks=1))
    assert got == want
    assert [(s.thread_id, s.count, s.first, s.last) for s in got] == [("t-1", 3, 1, 3)]


def test_thread_ids_that_are_not_utf8_read_every_run(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    _write(path, [("t-1", "r-1", "run_start"), ("t-1", "r-1", "error"), *FILLER])
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO run_events (thread_id, run_id, event_type, data)"
            " VALUES (CAST(X'74FF' AS TEXT), 'r-2', ?, '{}')",
            [("run_start",), ("error",)],
        )
    want, got = asyncio.run(_both(path, ONLY["error"], seeks=0))
    assert got == want and len(got) == 2


def test_most_runs_kept_are_read_by_the_group_by(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    _write(path, [("t-1", "r-1", "run_start"), ("t-1", "r-1", "error"), *FILLER])
    want, got = asyncio.run(_both(path, ONLY["completed"], seeks=0))
    assert got == want and len(got) == 8


def test_a_test_that_accepts_running_reads_every_run(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    _write(path, [("t-1", "r-1", "text"), ("t-1", "r-2", "run_start"), ("t-1", "r-2", "run_done")])
    want, got = asyncio.run(_both(path, ONLY["not completed"]))
    assert got == want and [s.run_id for s in got] == ["r-2", "r-1"]
