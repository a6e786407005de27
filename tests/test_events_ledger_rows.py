"""The event ledger's append rows (issue 10 speed work): what is stored is what the events say.

Real SQLite files; the rows are read back with plain SQL, not through the code that wrote them.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic_core import to_json

from opcockpit.adapters.ledger.event_rows import from_us, to_us
from opcockpit.adapters.ledger.events import EventLog
from opcockpit.domain.events import (
    EventsConfig,
    EventSource,
    InstanceStateChanged,
    InstanceView,
    LeaseConvergenceChanged,
    LeaseView,
    ProviderEvent,
)

PLUS5 = timezone(timedelta(hours=5))


@pytest.mark.parametrize(
    "dt",
    [
        datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC),
        datetime(2026, 12, 7, 1, 2, 3, 456789),  # naive = UTC
        datetime(2026, 12, 7, 6, 2, 3, 456789, tzinfo=PLUS5),  # the same instant at +05:00
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # before the epoch: -1 us
    ],
)
def test_to_us_is_exact_and_round_trips(dt: datetime) -> None:
    aware = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    us = to_us(dt)
    assert from_us(us) == aware
    if dt.year == 1969:
        assert us == -1
    else:
        assert us == 1_796_605_323_456_789


def test_stored_columns_and_bodies_match_the_events(tmp_path: Path) -> None:
    at = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    secret = "Qx7ledgerRowsTest0123456789"  # bearer-shaped: scrubbed by shape, no global registry
    events = [
        LeaseConvergenceChanged(
            observed_at=at, source=EventSource.SANDBOX_DB, lease_id="L1", thread_id="T1", provider="e2b",
            before=LeaseView(convergence="converged", desired_state="running", observed_state="running"),
            after=LeaseView(convergence="diverged", desired_state="paused", observed_state="running"),
        ),
        InstanceStateChanged(
            observed_at=at.astimezone(PLUS5), occurred_at=at - timedelta(seconds=3),
            source=EventSource.PROVIDER_LIST, provider="docker", instance_id="c1",
            before=InstanceView(state="running"), after=InstanceView(state="paused"),
        ),
        ProviderEvent(
            observed_at=at.replace(tzinfo=None), source=EventSource.PROVIDER_EVENT, provider="e2b",
            instance_id="sbx", after={"event": "line\nbreak"}, data={"auth": f"Bearer {secret}", "n": 1},
        ),
    ]  # fmt: skip
    path = tmp_path / "ledger.db"
    log = EventLog(path)
    assert log.append(events, keys=[None, None, "webhook:e2b:1"]) == 3
    log.close()
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT type, observed_us, occurred_us, source, lease_id, instance_id, thread_id, provider,"
            " body, idem_key FROM events ORDER BY id"
        ).fetchall()
    at_us = int(at.timestamp()) * 1_000_000
    assert [r[:8] for r in rows] == [
        ("lease.convergence_changed", at_us, None, "sandbox_db", "L1", None, "T1", "e2b"),
        ("instance.state_changed", at_us, at_us - 3_000_000, "provider_list", None, "c1", None, "docker"),
        ("provider.event", at_us, None, "provider_event", None, "sbx", None, "e2b"),
    ]
    assert [r[9] for r in rows] == [None, None, "webhook:e2b:1"]
    for e, r in zip(events[:2], rows[:2], strict=True):  # the same JSON pydantic writes for them
        assert r[8] == to_json({"before": e.before, "after": e.after, "data": e.data}).decode()
    assert "line\\nbreak" in rows[2][8]  # a newline in a value stays escaped (the batch split holds)
    assert secret not in rows[2][8] and '"n":1' in rows[2][8]  # scrubbed, the rest kept


def test_key_count_must_match_the_events(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ledger.db")
    ev = LeaseConvergenceChanged(observed_at=datetime.now(UTC), source=EventSource.SANDBOX_DB, lease_id="L")
    with pytest.raises(ValueError, match="2 idempotency keys for 1 events"):
        log.append([ev], keys=["a", "b"])
    assert log.count() == 0
    log.close()


def test_event_log_connection_commits_without_fsync_but_in_wal(tmp_path: Path) -> None:
    """synchronous=NORMAL is safe only under WAL (there it cannot corrupt the file)."""
    log = EventLog(tmp_path / "ledger.db")
    log.count()
    conn = log._db().conn  # type: ignore[attr-defined]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    log.close()


def test_a_batch_over_several_insert_chunks_keeps_order_and_skips_held_keys(tmp_path: Path) -> None:
    """1201 events (three multi-row INSERTs on SQLite): ids follow the append order, a key held
    from an earlier append and a key repeated across chunks are stored once, the count says so."""
    at = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    log = EventLog(tmp_path / "ledger.db")
    first = ProviderEvent(observed_at=at, source=EventSource.PROVIDER_EVENT, provider="e2b", instance_id="x")
    assert log.append([first], keys=["held"]) == 1
    events = [
        ProviderEvent(observed_at=at + timedelta(milliseconds=i), source=EventSource.PROVIDER_EVENT,
                      provider="e2b", instance_id=f"sbx-{i}")
        for i in range(1201)
    ]  # fmt: skip
    keys: list[str | None] = [None] * len(events)
    keys[3], keys[499], keys[500], keys[1200] = "held", "k1", "k1", "k2"  # k1 spans a chunk edge
    assert log.append(events, keys=keys) == 1201 - 2
    log.close()
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        stored = [r[0] for r in conn.execute("SELECT instance_id FROM events ORDER BY id")]
    skipped = {"sbx-3", "sbx-500"}
    assert stored == ["x"] + [f"sbx-{i}" for i in range(1201) if f"sbx-{i}" not in skipped]


def test_retention_cap_is_exact_with_and_without_gaps_in_the_ids(tmp_path: Path) -> None:
    """The cap's cheap check (the id range) only skips work: 12 rows over a cap of 8 lose the 4
    oldest; rows whose ids have gaps (a range wider than the cap) but that fit are all kept."""
    at = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    path = tmp_path / "ledger.db"
    cfg = EventsConfig.model_construct(max_rows=8, compact_every=10**9, retention_days=3650)
    log = EventLog(path, cfg)

    def batch(n: int, start: int) -> list[ProviderEvent]:
        return [
            ProviderEvent(observed_at=at + timedelta(seconds=start + i), source=EventSource.PROVIDER_EVENT,
                          provider="e2b", instance_id=f"sbx-{start + i}")
            for i in range(n)
        ]  # fmt: skip

    log.append(batch(12, 0))
    assert log.compact(now=at) == 4
    with sqlite3.connect(path) as conn:
        kept = [r[0] for r in conn.execute("SELECT instance_id FROM events ORDER BY id")]
    assert kept == [f"sbx-{i}" for i in range(4, 12)]
    with sqlite3.connect(path) as conn:  # holes in the ids: 6 rows spread over a range of 10
        conn.execute("DELETE FROM events WHERE instance_id IN ('sbx-5', 'sbx-7')")
    log.append(batch(2, 20))  # 8 rows, ids spanning 4 more than the cap
    assert log.compact(now=at) == 0 and log.count() == 8
    log.append(batch(1, 30))
    assert log.compact(now=at) == 1 and log.count() == 8  # the oldest (sbx-4) goes
    log.close()
