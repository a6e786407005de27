"""Explore speed (issue 11): the facets of a pushed-down count whose fields the rows path fills
from the thread (run_events' provider and lease_id) come from one GROUP BY over the other fields
with each group's thread ids (group_concat), counted and mapped in Python; a tie between two
such values' counts (their order needs each one's first row) and thread ids that do not add up
(NULL, or holding the separator) take the exact thread-map join instead.

Differential, on random events.db contents: the pushed-down counts and facets equal what the
rows path (every matching row through the evaluator) gives, whichever way they were computed."""

from __future__ import annotations

import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opcockpit.adapters.leon.explore_rows import ExploreRows
from opcockpit.adapters.leon.schema import create_events_db, create_sandbox_db
from opcockpit.domain.query import FACET_TOP, compile_query, count_pushdown, parse, run_counted, run_plan

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LEASES = {"lease-a": "e2b", "lease-b": "docker", "lease-c": "docker", "lease-d": "daytona"}
THREADS = {"t-1": "lease-a", "t-2": "lease-b", "t-3": "lease-c", "t-4": "lease-d", "t-5": "lease-a"}
# t-9 has no lease (provider None); "t\x1fodd" holds the separator
THREAD_IDS = [*THREADS, "t-9", "t\x1fodd"]
QUERIES = [
    "run_events | count",
    "run_events since:-6h | group by event_type | count",
    "run_events event_type:text | count by provider",
    "run_events since:-1d | count by lease_id",
    "run_events run_id:r-1 or run_id:r-2 | count by event_type, provider",
    'run_events data~"boom" | count by provider',
]


def _times() -> st.SearchStrategy[str]:
    base = NOW - timedelta(hours=30)
    minutes = st.integers(0, 31 * 60)
    canonical = minutes.map(lambda m: (base + timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S"))
    iso = minutes.map(lambda m: (base + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%S+00:00"))
    return st.one_of(canonical, canonical, iso)


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(THREAD_IDS),
        st.sampled_from(["r-1", "r-2", "r-3", "r-4"]),
        st.sampled_from(["text", "tool_call", "run_done", "error"]),
        st.sampled_from(["{}", '{"error": "boom"}']),
        _times(),
    ),
    max_size=60,
)


def _fleet(tmp: Path, events: list[tuple[str, str, str, str, str]]) -> ExploreRows:
    sb = create_sandbox_db(str(tmp / "sandbox.db"))
    sb.executemany(
        "INSERT INTO sandbox_leases (lease_id, provider_name, created_at, updated_at)"
        " VALUES (?, ?, '2026-12-01 00:00:00', '2026-12-01 00:00:00')",
        list(LEASES.items()),
    )
    sb.executemany(
        "INSERT INTO abstract_terminals (terminal_id, thread_id, lease_id, cwd) VALUES (?, ?, ?, '/')",
        [(f"term-{t}", t, lease) for t, lease in THREADS.items()],
    )
    sb.commit()
    sb.close()
    ev = create_events_db(str(tmp / "events.db"))
    ev.executemany(
        "INSERT INTO run_events (thread_id, run_id, event_type, data, created_at) VALUES (?, ?, ?, ?, ?)",
        events,
    )
    ev.commit()
    ev.close()
    # the SQL pass (a long-lived reader answers these from its copy: test_explore_events_tally.py)
    return ExploreRows(str(tmp / "sandbox.db"), str(tmp / "events.db"), follow_run_events=False)


def _check(rows: ExploreRows, text: str) -> None:
    plan = compile_query(parse(text), now=NOW)
    push = count_pushdown(plan)
    assert push is not None, text
    name = plan.dataset.name
    pushed = rows.count_with_facets(
        name, since=plan.since, until=plan.until, where=plan.filter, by=push.by,
        fields=plan.dataset.facets, top=FACET_TOP,
    )  # fmt: skip
    assert pushed is not None, text
    want = run_plan(plan, list(rows.rows(name, since=None, until=None)), facets=True)
    assert pushed[1] == want.facets, text
    got = run_counted(plan, push, pushed[0])
    assert (got.rows, got.matched) == (want.rows, want.matched), text


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=EVENTS)
def test_thread_mapped_facets_equal_the_rows_path(events) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = _fleet(Path(tmp), events)
        for text in QUERIES:
            _check(rows, text)


def _event(
    thread: str, kind: str = "text", at: str = "2026-12-07 11:00:00"
) -> tuple[str, str, str, str, str]:
    return (thread, "r-1", kind, "{}", at)


def test_distinct_counts_are_mapped_from_the_threads_without_the_join(tmp_path: Path) -> None:
    # e2b 3 rows (t-1, t-5), docker 2 (t-2, t-3), daytona 1, no lease 4: no two counts tie
    events = [_event(t) for t in ("t-1", "t-5", "t-1", "t-2", "t-3", "t-4", "t-9", "t-9", "t-9", "t-9")]
    rows = _fleet(tmp_path, events)
    _check(rows, "run_events | group by event_type | count")
    assert rows.facet_joins == 0
    _, facets = rows.count_with_facets(
        "run_events", since=None, until=None, where=None, by=(), fields=("provider",), top=FACET_TOP
    ) or (None, {})
    assert facets["provider"] == [(None, 4), ("e2b", 3), ("docker", 2), ("daytona", 1)]


def test_a_tie_between_providers_orders_them_by_first_row_through_the_join(tmp_path: Path) -> None:
    # docker's first row (t-3, seq 2) comes after e2b's (t-1, seq 1) but before in group order
    events = [_event("t-1", "zeta"), _event("t-3", "alpha"), _event("t-2", "alpha"), _event("t-5", "zeta")]
    rows = _fleet(tmp_path, events)
    _check(rows, "run_events | group by event_type | count")
    assert rows.facet_joins == 1
    _, facets = rows.count_with_facets(
        "run_events", since=None, until=None, where=None, by=(), fields=("provider", "event_type"),
        top=FACET_TOP,
    ) or (None, {})  # fmt: skip
    assert facets["provider"] == [("e2b", 2), ("docker", 2)]
    assert facets["event_type"] == [("zeta", 2), ("alpha", 2)]


def test_a_thread_id_holding_the_separator_takes_the_join(tmp_path: Path) -> None:
    rows = _fleet(tmp_path, [_event("t\x1fodd"), _event("t-1"), _event("t-2"), _event("t-2")])
    _check(rows, "run_events | count by provider")
    assert rows.facet_joins == 1


def test_invalid_utf8_thread_ids_count_like_the_rows_path(tmp_path: Path) -> None:
    rows = _fleet(tmp_path, [_event("t-1"), _event("t-2"), _event("t-2")])
    with sqlite3.connect(tmp_path / "events.db") as conn:
        conn.execute(
            "INSERT INTO run_events (thread_id, run_id, event_type, data, created_at)"
            " VALUES (CAST(X'74FF' AS TEXT), 'r-1', 'text', '{}', '2026-12-07 11:00:00')"
        )
    _check(rows, "run_events | count by event_type")
