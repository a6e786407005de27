"""Run health over real events.db files (LEON's run_events DDL) through the real reader."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from opcockpit.domain.runs import RUN_STATUSES, group_errors, normalize_error, run_health
from opcockpit.services.runs import RESYNC_S, RunReads, load_run_health
from opcockpit.wiring import leon_access
from tests.alerts_support import T0, events_db, ground_truth, health, inst, listing, naive, sandbox_db
from tests.fixtures.leon_db import add_lease, add_run, add_run_event

ERR_A = "Failed to pause lease lease-0e1f2a3b4c5d: Docker command timed out after 20.0s"
ERR_B = "Failed to pause lease lease-7c2d4e6f8a0b: Docker command timed out after 30.5s"
ERR_C = "sandbox 'i4k7m2p9x1q8w3e5r6t0' not found at /var/lib/leon/x.json"


def _fleet(conn) -> None:  # type: ignore[no-untyped-def]
    add_run(conn, "m_aaaaaaaaaaaa-1", "run-done", outcome="completed", start=T0 - timedelta(minutes=30))
    add_run(
        conn, "m_aaaaaaaaaaaa-2", "run-err-1", outcome="error", error=ERR_A, start=T0 - timedelta(minutes=40)
    )
    add_run(
        conn, "m_aaaaaaaaaaaa-3", "run-err-2", outcome="error", error=ERR_B, start=T0 - timedelta(minutes=20)
    )
    add_run(
        conn, "m_aaaaaaaaaaaa-4", "run-err-3", outcome="error", error=ERR_C, start=T0 - timedelta(minutes=10)
    )
    add_run(conn, "m_aaaaaaaaaaaa-5", "run-cancel", outcome="cancelled", start=T0 - timedelta(minutes=5))
    # running and active (last event 1 minute ago) vs running and silent for 15 minutes
    add_run(
        conn,
        "m_aaaaaaaaaaaa-6",
        "run-live",
        outcome="running",
        start=T0 - timedelta(minutes=2),
        n_body=1,
        step=timedelta(seconds=20),
    )
    add_run(conn, "m_aaaaaaaaaaaa-7", "run-stuck", outcome="running", start=T0 - timedelta(minutes=20))
    # outside the 24h window, and an activity stream that is not a run
    add_run(
        conn, "m_aaaaaaaaaaaa-8", "run-old", outcome="error", error="ancient", start=T0 - timedelta(days=3)
    )
    add_run_event(
        conn,
        "m_aaaaaaaaaaaa-1",
        "activity_m_aaaaaaaaaaaa-1",
        "task_start",
        {},
        created_at=T0 - timedelta(hours=2),
    )


def test_runs_by_status_stuck_and_window(tmp_path: Path) -> None:
    edb = events_db(tmp_path / "events.db", _fleet)
    rh = health(edb, T0)
    assert list(rh.by_status) == list(RUN_STATUSES)
    assert rh.by_status == {"running": 1, "completed": 1, "error": 3, "cancelled": 1, "stuck": 1}
    assert rh.total == 7  # run-old outside the window, the activity stream is no run
    assert [s.run_id for s in rh.stuck] == ["run-stuck"]
    stuck = rh.stuck[0]
    assert stuck.thread_id == "m_aaaaaaaaaaaa-7"
    assert stuck.idle_s > 600
    assert {r.run_id for r in rh.runs} >= {"run-live", "run-stuck"}
    assert "run-old" not in {r.run_id for r in rh.runs}


def test_stuck_threshold_is_configurable(tmp_path: Path) -> None:
    edb = events_db(tmp_path / "events.db", _fleet)
    rh = health(edb, T0, stuck_after_s=30 * 60)
    assert rh.stuck == ()
    assert rh.by_status["running"] == 2


def test_top_errors_group_by_normalised_message(tmp_path: Path) -> None:
    edb = events_db(tmp_path / "events.db", _fleet)
    rh = health(edb, T0)
    top = rh.top_errors
    assert [g.count for g in top] == [2, 1]
    lease_group = top[0]
    assert lease_group.signature == "Failed to pause lease lease-<id>: Docker command timed out after <n>s"
    assert set(lease_group.run_ids) == {"run-err-1", "run-err-2"}
    assert lease_group.example == ERR_B  # the most recent message is the example
    assert lease_group.last_seen is not None and lease_group.last_seen > T0 - timedelta(minutes=20)
    assert top[1].signature == "sandbox '<str>' not found at <path>"


ANTHROPIC_529 = (
    "Error code: 529 - {'type': 'error', 'error': {'type': 'overloaded_error', 'message': 'Overloaded'}}"
)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("run 6f0c2a1e-9b7d-4c3e-8f21-5a6b7c8d9e0f failed", "run <uuid> failed"),
        ("docker pause 4be1a7d3c9e2 exit 137", "docker pause <id> exit <n>"),
        ('KeyError: "session_id"', 'KeyError: "<str>"'),
        ("open /workspace/app/x.py: no such file", "open <path>: no such file"),
        # HTTP status codes survive (bug 11): they say what went wrong and are low-cardinality.
        ("GET https://api.e2b.app/sandboxes/abc?x=1 -> 502", "GET <url> -> 502"),
        ("HTTP 429 Too Many Requests", "HTTP 429 Too Many Requests"),
        ("status=503 after 2.5s", "status=503 after <n>s"),
        ("upstream 504 Gateway Timeout", "upstream 504 Gateway Timeout"),
        ("read 512 bytes", "read <n> bytes"),
        # Dict keys and well-known error words inside quotes survive; other quoted text folds.
        (ANTHROPIC_529, ANTHROPIC_529),
        (
            "Error code: 429 - {'error': {'message': 'rate limit for org-ab12cd34ef exceeded',"
            " 'id': 'req_x'}}",
            "Error code: 429 - {'error': {'message': 'rate limit for org-<id> exceeded', 'id': '<str>'}}",
        ),
        ("KeyError: 'session_id'", "KeyError: '<str>'"),
        ("thread m_k3v8p1x9q2z7-1 gone", "thread m_<id>-<n> gone"),
        ("plain words stay", "plain words stay"),
    ],
)
def test_normalize_error(message: str, expected: str) -> None:
    assert normalize_error(message) == expected


def test_group_errors_keeps_status_and_overloaded_apart() -> None:
    """529 overloaded and 500 internal errors are two groups, each naming its cause; request ids
    inside the payload do not split a group."""
    t = T0
    items = [
        (
            ANTHROPIC_529[:-1] + f", 'request_id': 'req_{i}abc'}}",
            t,
            f"r{i}",
            "th",
        )
        for i in range(3)
    ] + [
        (
            "Error code: 500 - {'type': 'error', 'error': {'type': 'api_error',"
            " 'message': 'Internal server error'}}",
            t,
            "r9",
            "th",
        )
    ]
    groups = group_errors(items)
    assert [g.count for g in groups] == [3, 1]
    assert groups[0].signature == (
        "Error code: 529 - {'type': 'error', 'error': {'type': 'overloaded_error', 'message': 'Overloaded'},"
        " 'request_id': '<str>'}"
    )
    assert groups[1].signature.startswith("Error code: 500 - ")
    assert "'api_error'" in groups[1].signature


def test_provider_sandboxes_from_ground_truth(tmp_path: Path) -> None:
    def build(conn) -> None:  # type: ignore[no-untyped-def]
        add_lease(
            conn,
            "lease-000000000001",
            "docker",
            current_instance_id="c1",
            observed_state="running",
            created_at=naive(T0),
        )
        add_lease(
            conn,
            "lease-000000000002",
            "docker",
            current_instance_id="c2",
            observed_state="running",
            created_at=naive(T0),
        )
        add_lease(
            conn,
            "lease-000000000003",
            "e2b",
            current_instance_id="e1",
            observed_state="running",
            created_at=naive(T0),
        )

    db = sandbox_db(tmp_path / "sandbox.db", build)
    gt = ground_truth(
        db,
        [
            listing(
                "docker",
                "docker",
                [inst("docker", "c1"), inst("docker", "c2", "paused"), inst("docker", "zz")],
                listed_at=T0,
            ),
            listing("e2b", "e2b", ok=False, listed_at=T0 - timedelta(minutes=5), error="boom"),
        ],
        T0,
    )
    edb = events_db(tmp_path / "events.db", lambda c: None)
    rh = run_health([], T0, ground_truth=gt)
    assert rh.total == 0 and rh.by_status["stuck"] == 0
    by_name = {p.name: p for p in rh.providers}
    docker = by_name["docker"]
    assert docker.leases == 2 and docker.orphans == 1
    assert docker.by_convergence == {"converged": 1, "diverged": 1}
    assert docker.by_provider_state == {"paused": 1, "running": 1}
    assert not docker.healthy  # a diverged lease
    e2b = by_name["e2b"]
    assert e2b.status == "stale" and e2b.by_convergence == {"stale": 1} and not e2b.healthy
    assert edb.exists()


def test_load_run_health_missing_events_db_is_unknown_not_zero(tmp_path: Path) -> None:
    rh = asyncio.run(load_run_health(tmp_path / "nope.db", T0, events_reader=leon_access().events_reader))
    assert rh.error is not None and not rh.available
    ok = asyncio.run(
        load_run_health(
            events_db(tmp_path / "events.db", _fleet), T0, events_reader=leon_access().events_reader
        )
    )
    assert ok.available and ok.by_status["stuck"] == 1


def test_run_health_reuses_the_read_while_events_db_is_unchanged(tmp_path: Path) -> None:
    """The TUI asks every tick: an unchanged events.db is not re-read (its runs are reused and
    judged at the new `now`); a write to it is read at once."""
    import sqlite3

    edb = events_db(tmp_path / "events.db", _fleet)
    opened: list[str] = []
    real = leon_access().events_reader

    def counting(path: str):  # type: ignore[no-untyped-def]
        opened.append(path)
        return real(path)

    reads = RunReads()  # the cockpit's (Cockpit.run_reads / AlertEngine.run_reads)

    async def ask(at, cache=reads):  # type: ignore[no-untyped-def]
        return await load_run_health(edb, at, events_reader=counting, reads=cache)

    first = asyncio.run(ask(T0))
    later = asyncio.run(ask(T0 + timedelta(seconds=30)))
    assert len(opened) == 1 and later.by_status == first.by_status
    assert {r.run_id for r in later.stuck} >= {r.run_id for r in first.stuck}  # judged at the new now
    conn = sqlite3.connect(edb)
    add_run(
        conn, "m_aaaaaaaaaaaa-9", "run-new", outcome="error", error="boom", start=T0 - timedelta(minutes=1)
    )
    conn.commit()
    conn.close()
    fresh = asyncio.run(ask(T0 + timedelta(seconds=31)))
    assert len(opened) == 2 and fresh.by_status["error"] == first.by_status["error"] + 1
    assert (reads.reads, reads.delta_reads) == (1, 1)  # the new events folded in, not a re-read
    asyncio.run(ask(T0 + timedelta(seconds=31 + 61)))  # unchanged: still not opened
    assert len(opened) == 2
    later = T0 + timedelta(seconds=RESYNC_S + 1)
    asyncio.run(ask(later))  # RESYNC_S after the full read: read everything again
    assert len(opened) == 3 and reads.reads == 2
    asyncio.run(ask(later, RunReads()))  # another cockpit: its own read
    asyncio.run(ask(later, None))  # no cache (a one-shot CLI): reads
    assert len(opened) == 5 and reads.reads == 2
