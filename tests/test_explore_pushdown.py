"""Explore's `events` dataset (the cockpit's event ledger) and the SQL push-down: filters, the time
window and a leading count evaluated in SQLite give exactly what the Python evaluation gives, on
a generated fleet (real sandbox.db/events.db) and a real ledger written by EventLog."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.events import EventLog
from opcockpit.adapters.leon.explore_sql import SOURCES, translate
from opcockpit.demo.fleet import generate_fleet
from opcockpit.domain.events import (
    AlertFired,
    AlertView,
    EventSource,
    InstanceAppeared,
    InstanceView,
    LeaseConvergenceChanged,
    LeaseView,
)
from opcockpit.domain.query import count_pushdown, run_plan
from opcockpit.settings.config import CockpitConfig
from opcockpit.wiring import build_explore


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    return generate_fleet(tmp_path_factory.mktemp("fleet"), leases=60, seed=11)


def _events(now: datetime) -> list:
    out = []
    for i in range(40):
        at = now - timedelta(minutes=37 * i)
        lease = f"lease-{i % 7}"
        if i % 3 == 0:
            out.append(
                LeaseConvergenceChanged(
                    observed_at=at,
                    source=EventSource.PROVIDER_LIST,
                    lease_id=lease,
                    provider="e2b" if i % 2 else "daytona",
                    thread_id=f"thread-{i % 5}",
                    before=LeaseView(
                        convergence="converged", desired_state="running", observed_state="running"
                    ),
                    after=LeaseView(
                        convergence="diverged",
                        desired_state="running",
                        observed_state="paused",
                        provider_state="päused",
                        instance_id=f"i-{i}",
                    ),
                )
            )
        elif i % 3 == 1:
            out.append(
                InstanceAppeared(
                    observed_at=at,
                    occurred_at=at - timedelta(seconds=5),
                    source=EventSource.PROVIDER_LIST,
                    instance_id=f"Ä-{i}",
                    provider="docker",
                    after=InstanceView(state="running", lease_id=lease),
                )
            )
        else:
            out.append(
                AlertFired(
                    observed_at=at,
                    source=EventSource.COCKPIT,
                    after=AlertView(alert_id=i, rule="stuck_runs", key=f"k{i}", severity="warning"),
                )
            )
    return out


@pytest.fixture(scope="module")
def now(fleet) -> datetime:
    return fleet.generated_at.astimezone(UTC)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory, now: datetime) -> Path:
    path = tmp_path_factory.mktemp("ledger") / "ledger.db"
    log = EventLog(path)
    log.append(_events(now))
    log.close()
    return path


@pytest.fixture
def explore(fleet, ledger: Path, now: datetime):
    cfg = CockpitConfig.model_validate(
        {"sources": {"sandbox_db": str(fleet.sandbox_db), "events_db": str(fleet.events_db)}}
    )
    ex = build_explore(cfg, ledger_path=ledger)
    ex.store = None  # the history would write into the shared module ledger
    ex.clock = lambda: now
    return ex


def run(explore, text: str, **kw):
    return asyncio.run(explore.run(text, **kw))


def test_events_dataset_reads_the_ledger(explore, ledger: Path, now: datetime) -> None:
    rows = run(explore, "events type:lease.convergence_changed lease_id=lease-3").rows
    with sqlite3.connect(ledger) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM events WHERE type = ? AND lease_id = ?",
                                          ("lease.convergence_changed", "lease-3"))]  # fmt: skip
    assert sorted(r["id"] for r in rows) == sorted(ids) and ids
    row = rows[0]
    assert row["source"] == "provider_list" and row["observed_at"].tzinfo is not None
    assert json.loads(row["after"])["convergence"] == "diverged"
    assert json.loads(row["before"])["convergence"] == "converged"
    counts = {r["type"]: r["count"] for r in run(explore, "events | count by type").rows}
    assert counts == {"lease.convergence_changed": 14, "instance.appeared": 13, "alert.fired": 13}
    recent = run(explore, "events since:-2h").rows
    assert recent and all(r["observed_at"] >= now - timedelta(hours=2) for r in recent)
    assert len(recent) == sum(1 for i in range(40) if 37 * i <= 120)
    appeared = run(explore, "events occurred_at!=null").rows
    assert {r["type"] for r in appeared} == {"instance.appeared"}
    assert all(r["occurred_at"] < r["observed_at"] for r in appeared)


def test_events_without_a_ledger_is_empty_not_an_error(fleet, tmp_path: Path) -> None:
    cfg = CockpitConfig.model_validate({"sources": {"sandbox_db": str(fleet.sandbox_db)}})
    ex = build_explore(cfg, ledger_path=tmp_path / "none.db")
    ex.store = None
    result = run(ex, "events | count by type")
    assert result.rows == [] and result.columns == ("type", "count")
    assert not (tmp_path / "none.db").exists()


QUERIES = [
    "run_events since:-24h | group by event_type | count",
    "run_events event_type:run_* and not event_type=run_done | count by event_type",
    "run_events provider:e2b | count by event_type",  # provider is joined in Python: not pushed
    "run_events since:-6h until:-1h | count",
    'run_events data~"error" | count by run_id | sort count desc | limit 5',
    "run_events seq>100 seq<=400 (event_type in (tool_call, run_start) or message_id:null)",
    'commands "npm" | count',
    "commands exit_code!=0 | count by exit_code, status",
    'commands exit_code>0 or command~"^git" | sort created desc | limit 10',
    "commands created<-1h | count by provider",
    "commands !(status:done) cwd:*work* | limit 50",
    "sessions status in (active, idle) and not provider:local | count by provider, status",
    "lease_events event_type:intent.* | group by source | count",
    "lease_events since:-2d error!=null",
    "provider_events since:-1d | count by provider, event_type",
    "events type:lease.* since:-12h | count by provider",
    'events after~"diverged" or type=alert.fired | count by type',
    "events diverged | count",  # free text reaches before/after (SQL JSON columns)
    'events "ä-1"',  # case folding beyond ASCII (instance ids Ä-n): done by Python on both paths
    "events observed_at>-6h instance_id!=null | sort observed_at",
    "events | group by type | sort type",
]


@pytest.mark.parametrize("text", QUERIES)
def test_sql_and_python_paths_agree(explore, text: str) -> None:
    plan = explore.plan(text)
    name = plan.dataset.name
    everything = list(explore.rows.rows(name, since=None, until=None))  # nothing pushed down
    expected = run_plan(plan, everything, facets=False)
    got = run(explore, text)
    assert (got.columns, got.rows, got.matched, got.total) == (
        expected.columns, expected.rows, expected.matched, expected.total,
    ), text  # fmt: skip
    with_facets = run(explore, text, facets=True)  # the row path (facets need the rows)
    expected_f = run_plan(plan, everything, facets=True)
    assert (with_facets.rows, with_facets.facets) == (expected_f.rows, expected_f.facets), text


def test_what_is_pushed_down(explore) -> None:
    """The benchmark's queries are counted in SQLite; a Python-only field keeps the count in Python."""
    for text, pushed in [
        ("run_events since:-24h | group by event_type | count", True),
        ('commands "npm test" | count', True),
        ("events type:alert.* | count by type", True),
        ("run_events provider:e2b | count by event_type", False),
        ("run_events | count by provider", False),
        ("run_events | count by time 1h", False),
    ]:
        plan = explore.plan(text)
        push = count_pushdown(plan)
        counts = None
        if push is not None:
            counts = explore.rows.aggregate(
                plan.dataset.name, since=plan.since, until=plan.until, where=plan.filter, by=push.by
            )
        assert (counts is not None) == pushed, text


def test_translated_atoms_are_never_null(fleet) -> None:
    """NOT over a NULL column stays exact: every atom is 0/1 (checked on a row with NULLs)."""
    plan_src = SOURCES["provider_events"]
    from opcockpit.domain.query import Atom, Bool

    conn = sqlite3.connect(":memory:")
    from opcockpit.adapters.leon.explore_sql import register_functions
    from opcockpit.domain.timeutil import make_parser

    register_functions(conn, make_parser())
    conn.execute(
        "CREATE TABLE provider_events (event_id INTEGER PRIMARY KEY, provider_name TEXT, instance_id TEXT,"
        " event_type TEXT, payload_json TEXT, matched_lease_id TEXT, created_at TEXT)"
    )
    conn.execute("INSERT INTO provider_events (event_id) VALUES (1)")
    for atom in [
        Atom("provider", "=", "e2b"), Atom("provider", "ieq", "e2b"), Atom("provider", "glob", "e*"),
        Atom("provider", "re", "e"), Atom("event_id", "<", 5), Atom("created", ">=", datetime.now(UTC)),
        Atom("lease_id", "null"), Atom("lease_id", "notnull"), Atom("provider", "!=", "x"),
    ]:  # fmt: skip
        sql, params = translate(Bool("not", (atom,)), plan_src)  # type: ignore[misc]
        value = conn.execute(f"SELECT {sql} FROM provider_events", params).fetchone()[0]
        assert value in (0, 1), atom
