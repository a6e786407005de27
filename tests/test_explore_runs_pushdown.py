"""Issue 11 speed work, held to the old semantics by differential tests:

- a LEON text time compared in C when it is SQLite CURRENT_TIMESTAMP text (explore_sql) gives
  exactly what the one parser (`oc_ts`) gives, on random and odd values;
- the runs dataset built for the query (cheap conjuncts first, event details only for the fields
  the plan reads: services/explore_runs.py) and through a cockpit's RunReads equal the Python
  evaluation over every run's full summary (what Explore did before), on generated fleets with
  odd events added (non-canonical times, retried errors, a run across two threads).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opcockpit.adapters.leon.events_db import EventsDbReader
from opcockpit.adapters.leon.explore_sql import SOURCES, register_functions, translate
from opcockpit.demo.fleet import generate_fleet
from opcockpit.domain.query import Atom, run_plan
from opcockpit.domain.query.filter import predicate
from opcockpit.domain.timeutil import make_parser
from opcockpit.services.explore_runs import summary_row
from opcockpit.services.runs import RunReads
from opcockpit.settings.config import CockpitConfig
from opcockpit.wiring import build_explore

# --------------------------------------------------------------------------- text times in C

ODD_TIMES = [
    None, "", "garbage", "0000-01-01 00:00:00", "0001-01-01 00:00:00", "9999-12-31 23:59:59",
    "2026-02-30 10:00:00", "2026-02-29 10:00:00", "2024-02-29 10:00:00", "2026-12-06 24:00:00",
    "2026-12-06 23:59:60", "2026-12-06 10:00:00.5", "2026-12-06T10:00:00", "2026-12-06T10:00:00Z",
    "2026-12-06 10:00:00+02:00", " 2026-12-06 10:00:00", "2026-12-06 10:00:00 ", "2026-12-06",
    "2026-12-06 10:00", "２０２６-12-06 10:00:00", "2026-13-01 00:00:00", 1765000000, 1765000000.25,
    "1765000000", b"2026-12-06 10:00:00", "2026-12-06 10:00:00\x00x",
]  # fmt: skip
BASE = datetime(2026, 12, 6, 10, 0, 0, tzinfo=UTC)


def _canonical(draw_s: int) -> str:
    return (BASE + timedelta(seconds=draw_s)).strftime("%Y-%m-%d %H:%M:%S")


values = st.one_of(
    st.sampled_from(ODD_TIMES),
    st.integers(-90_000, 90_000).map(_canonical),
)
bounds = st.builds(
    lambda s, us: BASE + timedelta(seconds=s, microseconds=us),
    st.integers(-90_000, 90_000),
    st.sampled_from([0, 0, 1, 500_000, 999_999]),
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(values, min_size=1, max_size=25),
    bound=bounds,
    op=st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
)
def test_text_times_compared_in_c_equal_the_parser(rows: list, bound: datetime, op: str) -> None:
    parse = make_parser()
    conn = sqlite3.connect(":memory:")
    register_functions(conn, parse)
    # LEON's column type (TIMESTAMP: numeric affinity), so stored values convert as in events.db
    conn.execute("CREATE TABLE run_events (seq INTEGER PRIMARY KEY, created_at TIMESTAMP)")
    conn.executemany("INSERT INTO run_events (created_at) VALUES (?)", [(v,) for v in rows])
    atom = Atom("created", op, bound)
    sql, params = translate(atom, SOURCES["run_events"])  # type: ignore[misc]
    stored = conn.execute("SELECT seq, created_at FROM run_events ORDER BY seq").fetchall()
    got = [s for s, v in conn.execute(f"SELECT seq, {sql} FROM run_events ORDER BY seq", params) if v]
    pred = predicate(atom)
    want = [s for s, v in stored if pred({"created": parse(v)})]
    assert got == want, (stored, op, bound)
    none = conn.execute(f"SELECT count(*) FROM run_events WHERE ({sql}) IS NULL", params).fetchone()[0]
    assert none == 0  # 0/1 only: NOT stays exact


def test_the_fast_path_is_what_runs_for_leon_times() -> None:
    """The comparison is in C for CURRENT_TIMESTAMP text: the parser is not called for it."""
    calls: list[object] = []
    parse = make_parser()

    def counting(v: object) -> datetime | None:
        calls.append(v)
        return parse(v)

    conn = sqlite3.connect(":memory:")
    register_functions(conn, counting)
    conn.execute("CREATE TABLE run_events (seq INTEGER PRIMARY KEY, created_at TIMESTAMP)")
    conn.executemany(
        "INSERT INTO run_events (created_at) VALUES (?)",
        [(_canonical(60 * i),) for i in range(50)] + [("2026-12-06T10:00:00",)],
    )
    sql, params = translate(Atom("created", ">=", BASE + timedelta(minutes=10)), SOURCES["run_events"])  # type: ignore[misc]
    n = conn.execute(f"SELECT count(*) FROM run_events WHERE {sql}", params).fetchone()[0]
    assert n == 40 + (1 if parse("2026-12-06T10:00:00") >= BASE + timedelta(minutes=10) else 0)
    assert calls == ["2026-12-06T10:00:00"]


# --------------------------------------------------------------------------- the runs dataset

RUN_QUERIES = [
    "runs status:error since:-6h | group by provider | count",
    "runs since:-6h | count",
    "runs | count by status",
    "runs status in (error, cancelled) | count by provider, status",
    "runs not status:completed since:-2h | sort last_event desc | limit 20",
    "runs events>12 provider:e2b | count",
    'runs error~"(?i)overload|529" | count by provider',
    "runs error!=null | group by status | count",
    "runs ended=null status!=running | count",
    "runs started>-3h | count by time 30m",
    "runs last_event<-1h status:running | count",
    "runs thread_id:m_* | sort started | limit 15",
    "runs 529 | count",
    "runs (status:error or events<5) and since:-12h | count by status",
    "runs lease_id!=null | group by provider | count | sort count | limit 2",
    "runs",
]


def _add_odd_events(events_db: Path, now: datetime, seed: int) -> None:
    """Events LEON could write but the generator does not: a retried error, a run across two
    threads, times in other shapes (local 'T' text, fractions, an epoch number, garbage)."""
    rnd = random.Random(seed)
    conn = sqlite3.connect(events_db)
    threads = [r[0] for r in conn.execute("SELECT DISTINCT thread_id FROM run_events LIMIT 40")]
    stamp = lambda m: (now - timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    rows = []
    for k in range(30):
        tid = rnd.choice(threads)
        rid = f"odd-{seed}-{k}"
        m = rnd.randint(0, 900)
        kinds = ["user_message", "run_start", "text", rnd.choice(["error", "retry", "cancelled", "text"])]
        kinds += rnd.choice([["run_done"], ["error", "retry", "run_done"], [], ["error"]])
        for j, kind in enumerate(kinds):
            created: object = stamp(m - j)
            r = rnd.random()
            if r < 0.15:
                created = (now - timedelta(minutes=m - j)).replace(tzinfo=None).isoformat()
            elif r < 0.2:
                created = stamp(m - j) + ".25"
            elif r < 0.23:
                created = (now - timedelta(minutes=m - j)).timestamp()
            elif r < 0.25:
                created = "not a time"
            t = rnd.choice(threads) if k % 7 == 0 else tid
            data = '{"error": "Error code: 529 - overloaded"}' if kind == "error" else "{}"
            rows.append((t, rid, kind, data, created))
    conn.executemany(
        "INSERT INTO run_events (thread_id, run_id, event_type, data, created_at) VALUES (?, ?, ?, ?, ?)",
        rows,
    )
    conn.commit()
    conn.close()


@pytest.fixture(scope="module", params=[3, 17])
def runs_fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    fleet = generate_fleet(tmp_path_factory.mktemp("runs-fleet"), leases=50, seed=request.param)
    now = fleet.generated_at.astimezone(UTC)
    _add_odd_events(fleet.events_db, now, request.param)
    return fleet, now


def _explore(fleet, now: datetime):
    cfg = CockpitConfig.model_validate(
        {"sources": {"sandbox_db": str(fleet.sandbox_db), "events_db": str(fleet.events_db)}}
    )
    ex = build_explore(cfg, ledger_path=None)
    ex.store = None
    ex.clock = lambda: now
    return ex


async def _every_run_in_full(ex, since: datetime | None) -> list[dict]:
    """Explore's runs before issue 11's push-down: every run's full summary."""
    threads = ex.rows.thread_leases()
    async with EventsDbReader(ex.events_db) as reader:
        runs = await reader.runs(since=since)
    return [summary_row(r, threads) for r in runs]


@pytest.mark.parametrize("text", RUN_QUERIES)
def test_runs_built_for_the_query_equal_every_run_in_full(runs_fleet, text: str) -> None:
    fleet, now = runs_fleet
    ex = _explore(fleet, now)
    plan = ex.plan(text)
    everything = asyncio.run(_every_run_in_full(ex, plan.since))
    for facets in (False, True):
        want = run_plan(plan, everything, facets=facets)
        got = asyncio.run(ex.run(text, facets=facets))
        assert (got.columns, got.rows, got.matched, got.total, got.facets) == (
            want.columns, want.rows, want.matched, want.total, want.facets,
        ), (text, facets)  # fmt: skip
    assert want.matched or text in ("runs ended=null status!=running | count",), text


def test_runs_through_the_cockpit_cache_equal_a_read_and_follow_new_events(
    runs_fleet, tmp_path: Path
) -> None:
    fleet, now = runs_fleet
    events = tmp_path / "events.db"
    shutil.copy(fleet.events_db, events)
    ex = _explore(fleet, now)
    ex.events_db = str(events)
    cached = _explore(fleet, now)
    cached.events_db = str(events)
    cached.run_reads = RunReads()
    for round_ in range(3):
        for text in RUN_QUERIES:
            want, got = asyncio.run(ex.run(text, facets=True)), asyncio.run(cached.run(text, facets=True))
            assert (got.rows, got.matched, got.facets) == (want.rows, want.matched, want.facets), (
                round_,
                text,
            )
        at = (now - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
        kinds = ("user_message", "run_start", "error", "run_done")
        with sqlite3.connect(events) as conn:  # LEON keeps writing: an error lands on a new run
            conn.executemany(
                "INSERT INTO run_events (thread_id, run_id, event_type, data, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [("thread-new", f"new-{round_}", k, '{"error": "boom 529"}', at) for k in kinds],
            )
    assert cached.run_reads.reads >= 1 and cached.run_reads.delta_reads >= 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    status=st.sampled_from(
        ["", "status:error", "status:running", "not status:completed", "status in (error, cancelled)"]
    ),
    window=st.sampled_from(["", "since:-1h", "since:-6h", "last_event>-3h", "until:-2h"]),
    extra=st.sampled_from(["", "events>6", "provider:docker", "error~529", "started<-1h", "ended!=null"]),
    stage=st.sampled_from(
        [
            "",
            "| count",
            "| count by provider",
            "| group by status | count",
            "| sort events desc | limit 7",
            "| count by time 1h",
        ]
    ),
)
def test_random_runs_queries_equal_every_run_in_full(
    runs_fleet, status: str, window: str, extra: str, stage: str
) -> None:
    fleet, now = runs_fleet
    ex = _explore(fleet, now)
    text = " ".join(p for p in ("runs", status, window, extra, stage) if p)
    plan = ex.plan(text)
    want = run_plan(plan, asyncio.run(_every_run_in_full(ex, plan.since)), facets=True)
    got = asyncio.run(ex.run(text, facets=True))
    assert (got.rows, got.matched, got.facets) == (want.rows, want.matched, want.facets), text
    plain = asyncio.run(ex.run(text))
    assert (plain.rows, plain.matched) == (want.rows, want.matched), text


def test_the_tui_explore_service_keeps_its_own_runs_cache(runs_fleet, tmp_path: Path) -> None:
    """wiring.build_explore(live=True) (the Explore tab): a runs cache of its own, reused by the
    next query on an unchanged events.db; the one-shot CLI service reads per query."""
    fleet, now = runs_fleet
    cfg = CockpitConfig.model_validate(
        {"sources": {"sandbox_db": str(fleet.sandbox_db), "events_db": str(fleet.events_db)}}
    )
    assert build_explore(cfg, ledger_path=tmp_path / "l.db").run_reads is None
    live = build_explore(cfg, ledger_path=tmp_path / "l.db", live=True)
    live.store, live.clock = None, lambda: now
    assert isinstance(live.run_reads, RunReads)
    first = asyncio.run(live.run(RUN_QUERIES[0], facets=True))
    again = asyncio.run(live.run(RUN_QUERIES[0], facets=True))
    assert (again.rows, again.facets) == (first.rows, first.facets)
    assert live.run_reads.reads == 1  # the second query read nothing of events.db
