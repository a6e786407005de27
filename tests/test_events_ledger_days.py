"""A lease's and a thread's history through the day-bucketed subject indexes (schema v3, issue 10)
and the time index carrying the type (v4),
on both ledger backends (a SQLite file and a real PostgreSQL from tests/fixtures/postgres.py).

The expected answers come from a plain filter over the events the test wrote, not from the ledger.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.backend import connect, schema_status
from opcockpit.adapters.ledger.event_rows import INSERT, rows_of
from opcockpit.adapters.ledger.events import MIGRATIONS, EventLog
from opcockpit.domain.events import (
    Event,
    EventQuery,
    EventsConfig,
    EventSource,
    InstanceStateChanged,
    InstanceView,
    LeaseConvergenceChanged,
    LeaseView,
)
from tests.fixtures.postgres import pg_server, pg_url  # noqa: F401

T0 = datetime(2026, 3, 20, 23, 30, tzinfo=UTC)  # 30 min before a day boundary (UTC)
KEEP = EventsConfig(retention_days=3650, max_rows=1_000_000, compact_every=10**9)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return request.getfixturevalue("pg_url")


def _events() -> list[Event]:
    """Over 6 days (events every 7 h, some at the same instant across the day boundary), two
    leases on two threads, plus instance events that name no lease."""
    out: list[Event] = []
    for i in range(20):
        at = T0 + timedelta(hours=7 * i)
        lease, thread = ("lease-a", "thread-1") if i % 3 else ("lease-b", "thread-2")
        view = LeaseView(convergence="diverged" if i % 2 else "converged", desired_state="running",
                         observed_state="running")  # fmt: skip
        out.append(LeaseConvergenceChanged(observed_at=at, source=EventSource.SANDBOX_DB, lease_id=lease,
                                           thread_id=thread, provider="e2b", after=view))  # fmt: skip
        out.append(InstanceStateChanged(observed_at=at, source=EventSource.PROVIDER_LIST, provider="docker",
                                        instance_id=f"c{i}", lease_id=lease if i % 4 == 0 else None,
                                        after=InstanceView(state="paused")))  # fmt: skip
    return out


def _expected(events: list[Event], q: EventQuery) -> list[tuple[str, datetime, str | None]]:
    """The events `q` selects, by a plain filter; ids are the append order (ties by id)."""
    picked = [
        (i, e) for i, e in enumerate(events)
        if (q.lease_id is None or e.lease_id == q.lease_id)
        and (q.thread_id is None or e.thread_id == q.thread_id)
        and (not q.types or e.type in q.types)
        and (q.since is None or e.observed_at >= q.since)
        and (q.until is None or e.observed_at <= q.until)
    ]  # fmt: skip
    if q.min_per_lease is not None:  # the leases with that many of the events above
        per_lease = Counter(e.lease_id for _, e in picked if e.lease_id is not None)
        enough = {lease for lease, n in per_lease.items() if n >= q.min_per_lease}
        picked = [(i, e) for i, e in picked if e.lease_id in enough]
    picked.sort(key=lambda p: (p[1].observed_at, p[0]), reverse=not q.oldest_first)
    if q.limit is not None:
        picked = picked[: q.limit]
    return [(e.type, e.observed_at, e.lease_id) for _, e in picked]


QUERIES = [
    EventQuery(lease_id="lease-a", limit=None),
    EventQuery(lease_id="lease-a", limit=5),  # stops inside a day
    EventQuery(lease_id="lease-b", limit=3, oldest_first=True),
    EventQuery(thread_id="thread-1", limit=None),
    EventQuery(thread_id="thread-2", limit=4),
    EventQuery(lease_id="lease-b", types=("instance.state_changed",), limit=None),
    EventQuery(
        lease_id="lease-a", since=T0 + timedelta(days=1, hours=3), until=T0 + timedelta(days=4), limit=None
    ),
    EventQuery(lease_id="lease-a", since=T0 + timedelta(days=2), limit=2, oldest_first=True),
    EventQuery(lease_id="lease-a", thread_id="thread-1", limit=7),
    EventQuery(lease_id="lease-nobody", limit=10),
    EventQuery(lease_id="lease-a", since=T0 + timedelta(days=30), limit=10),  # a window with no events
    # the flapping rule's query: only the leases with that many matching events (lease-a 13
    # convergence changes, lease-b 7; with the instance events 16 and 9)
    EventQuery(types=(LeaseConvergenceChanged.TYPE,), min_per_lease=8, limit=None),
    EventQuery(types=(LeaseConvergenceChanged.TYPE,), min_per_lease=7, limit=None),
    EventQuery(min_per_lease=10, limit=None),
    EventQuery(min_per_lease=4, since=T0 + timedelta(days=2), until=T0 + timedelta(days=4), limit=None),
    EventQuery(types=(LeaseConvergenceChanged.TYPE,), min_per_lease=8, limit=5, oldest_first=True),
    EventQuery(types=(LeaseConvergenceChanged.TYPE,), min_per_lease=100, limit=None),
    EventQuery(thread_id="thread-1", min_per_lease=3, since=T0 + timedelta(days=3), limit=None),
]


@pytest.mark.parametrize("q", QUERIES, ids=range(len(QUERIES)))
def test_subject_history_across_days_equals_a_plain_filter(ledger: str, q: EventQuery) -> None:
    events = _events()
    log = EventLog(ledger, KEEP)
    assert log.append(events) == len(events)
    got = log.query(q)
    log.close()
    assert [(e.type, e.observed_at, e.lease_id) for e in got] == _expected(events, q)


def test_v2_sqlite_ledger_migrates_to_day_indexes_and_keeps_its_history(tmp_path: Path) -> None:
    """A ledger written at schema v2 (subject indexes without the day, a separate type index)
    gets the v3 and v4 indexes and answers the same."""
    path = tmp_path / "ledger.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE ledger_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    for stmt in MIGRATIONS[0] + MIGRATIONS[1]:
        conn.execute(stmt if isinstance(stmt, str) else stmt[0])
    conn.execute("INSERT INTO ledger_schema VALUES ('events', 2)")
    conn.commit()
    conn.close()
    events = _events()
    # Rows as v2 stored them (the columns did not change), written while the file is still at v2.
    conn = sqlite3.connect(path)
    conn.executemany(INSERT, rows_of(events, None))
    conn.commit()
    conn.close()
    log = EventLog(path, KEEP)
    q = EventQuery(lease_id="lease-a", limit=None)
    assert [(e.type, e.observed_at, e.lease_id) for e in log.query(q)] == _expected(events, q)
    log.close()
    db = connect(path)
    assert schema_status(db)["events"] == len(MIGRATIONS) == 4
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    db.close()
    assert {"idx_events_lease_day", "idx_events_thread_day", "idx_events_observed_type"} <= names
    assert not names & {"idx_events_lease", "idx_events_thread", "idx_events_type", "idx_events_observed"}


def test_subject_query_uses_the_day_index_on_sqlite(tmp_path: Path) -> None:
    """The expression in the query is the index's: SQLite searches it, never scans the table."""
    path = tmp_path / "ledger.db"
    log = EventLog(path, KEEP)
    log.append(_events())
    log.close()
    conn = sqlite3.connect(path)
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM events WHERE lease_id = ? AND observed_us / 86400000000 = ?"
        " ORDER BY observed_us DESC, id DESC LIMIT 5",
        ("lease-a", 20533),
    ).fetchall()
    conn.close()
    text = " ".join(str(r[-1]) for r in plan)
    assert "idx_events_lease_day" in text and "TEMP B-TREE" not in text


@pytest.mark.parametrize(
    ("where", "args"),
    [
        ("observed_us >= ?", (0,)),
        ("type IN (?) AND observed_us >= ?", ("provider.event", 0)),
        ("type IN (?)", ("x",)),
    ],
)
def test_time_and_type_filters_read_the_time_index_not_the_table(
    tmp_path: Path, where: str, args: tuple[object, ...]
) -> None:
    path = tmp_path / "ledger.db"
    log = EventLog(path, KEEP)
    log.append(_events())
    log.close()
    conn = sqlite3.connect(path)
    plan = conn.execute(
        f"EXPLAIN QUERY PLAN SELECT id FROM events WHERE {where} ORDER BY observed_us DESC, id DESC LIMIT 5",
        args,
    ).fetchall()
    conn.close()
    text = " ".join(str(r[-1]) for r in plan)
    assert "idx_events_observed_type" in text and "SCAN events\n" not in text + "\n"
