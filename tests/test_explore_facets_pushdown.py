"""Facets computed with a pushed-down count (issue 11: "facets computed with the results"): the
value counts come from SQLite with the counts, equal to what the rows path gives (counts, order,
ties in first-seen order), including the thread-joined `provider`/`lease_id` facets; a filter
SQLite cannot evaluate exactly keeps the rows path."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC

import pytest

from opcockpit.demo.fleet import generate_fleet
from opcockpit.domain.query import FACET_TOP, count_pushdown, run_plan
from opcockpit.settings.config import CockpitConfig
from opcockpit.wiring import build_explore

QUERIES = [
    "run_events since:-24h | group by event_type | count",
    "run_events event_type:tool_* | count",
    "run_events since:-3h | count by run_id | sort count desc | limit 3",
    'commands "npm" | count',
    "commands exit_code!=0 | count by status",
    "sessions | count by status",
    "lease_events since:-2d | group by source | count",
    "provider_events | count",
    "run_events thread_id=thread-x | count",  # event_type: zeta and alpha tie, zeta seen first
    "run_events since:-6h | count by provider",  # a facet that is also the (Python-joined) count
    "commands | count",
]


@pytest.fixture(scope="module")
def explore(tmp_path_factory: pytest.TempPathFactory):
    fleet = generate_fleet(tmp_path_factory.mktemp("facets"), leases=80, seed=5)
    with sqlite3.connect(fleet.events_db) as conn:  # ties: two event types seen equally often
        conn.executemany(
            "INSERT INTO run_events (thread_id, run_id, event_type, data, created_at)"
            " VALUES (?, ?, ?, '{}', CURRENT_TIMESTAMP)",
            [("thread-x", "run-x", t) for t in ("zeta", "alpha", "zeta", "alpha")],
        )
    cfg = CockpitConfig.model_validate(
        {"sources": {"sandbox_db": str(fleet.sandbox_db), "events_db": str(fleet.events_db)}}
    )
    ex = build_explore(cfg, ledger_path=None)
    ex.store = None
    now = fleet.generated_at.astimezone(UTC)
    ex.clock = lambda: now
    return ex


@pytest.mark.parametrize("text", QUERIES)
def test_facets_from_sqlite_equal_the_rows_path(explore, text: str) -> None:
    plan = explore.plan(text)
    name = plan.dataset.name
    want = run_plan(plan, list(explore.rows.rows(name, since=None, until=None)), facets=True)
    push = count_pushdown(plan)
    pushed = explore.rows.count_with_facets(
        name, since=plan.since, until=plan.until, where=plan.filter, by=push.by,
        fields=plan.dataset.facets, top=FACET_TOP,
    )  # fmt: skip
    assert pushed is not None, text  # the bench's queries keep their rows in SQLite
    assert pushed[1] == want.facets, text
    got = asyncio.run(explore.run(text, facets=True))
    assert (got.rows, got.matched, got.facets) == (want.rows, want.matched, want.facets), text
    assert any(want.facets.values()), text
    if "thread-x" in text:
        assert got.facets["event_type"] == [("zeta", 2), ("alpha", 2)]


def test_a_filter_sqlite_cannot_evaluate_keeps_the_rows_path(explore) -> None:
    text = "run_events provider:e2b | count by event_type"
    plan = explore.plan(text)
    assert (
        explore.rows.count_with_facets(
            "run_events",
            since=None,
            until=None,
            where=plan.filter,
            by=("event_type",),
            fields=("event_type",),
            top=FACET_TOP,
        )
        is None
    )
    want = run_plan(plan, list(explore.rows.rows("run_events", since=None, until=None)), facets=True)
    got = asyncio.run(explore.run(text, facets=True))
    assert (got.rows, got.facets) == (want.rows, want.facets)
