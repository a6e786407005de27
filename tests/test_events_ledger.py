"""The events table on real SQLite ledger files: append, queries, picture, retention, faults."""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.adapters.ledger.events import EventLog
from opcockpit.domain.events import (
    EventQuery,
    EventsConfig,
    InstanceStateChanged,
    InstanceView,
    LeaseConvergenceChanged,
    LeaseView,
    ProviderListingFailed,
)
from opcockpit.ports.ledger import LedgerError
from tests.alerts_support import T0


def _lease(i: int, at_s: float, conv: str = "diverged", lease: str | None = None) -> LeaseConvergenceChanged:
    v = LeaseView(convergence=conv, desired_state="running", observed_state="running")
    return LeaseConvergenceChanged(
        observed_at=T0 + timedelta(seconds=at_s), source="provider_list", lease_id=lease or f"lease-{i}",
        thread_id=f"thread-{i % 3}", provider="docker" if i % 2 else "e2b", after=v,
    )  # fmt: skip


def test_append_query_by_subject_type_and_since(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ledger.db")
    events = [_lease(i, i) for i in range(10_000)]
    events.append(
        InstanceStateChanged(
            observed_at=T0 + timedelta(seconds=5),
            source="provider_list",
            provider="e2b",
            instance_id="sbx-9",
            lease_id="lease-4",
            before=InstanceView(state="running"),
            after=InstanceView(state="paused"),
        )
    )
    assert log.append(events) == 10_001  # one transaction
    assert log.count() == 10_001
    got = log.query(EventQuery(lease_id="lease-4"))
    assert [e.type for e in got] == ["instance.state_changed", "lease.convergence_changed"]  # newest first
    assert got[0].after == InstanceView(state="paused") and got[0].id is not None
    since = log.query(EventQuery(since=T0 + timedelta(seconds=9_995), limit=None))
    assert [e.lease_id for e in since] == [f"lease-{i}" for i in range(9_999, 9_994, -1)]
    assert len(log.query(EventQuery(thread_id="thread-1", limit=None))) == 3333
    assert {e.provider for e in log.query(EventQuery(provider="docker", limit=50))} == {"docker"}
    assert len(log.query(EventQuery(types=("instance.state_changed",)))) == 1
    oldest = log.query(EventQuery(limit=2, oldest_first=True))
    assert [e.lease_id for e in oldest] == ["lease-0", "lease-1"]
    cursor = log.after(oldest[0].id, limit=3)
    assert [e.id for e in cursor] == [oldest[0].id + 1, oldest[0].id + 2, oldest[0].id + 3]
    log.close()
    # it is a table in the shared ledger: the alert store opens the same file
    AlertStore.open(tmp_path / "ledger.db").close()
    assert EventLog(tmp_path / "ledger.db").count() == 10_001


def test_picture_is_kept_with_the_events(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ledger.db")
    assert log.last_picture() is None  # never stored: the next picture is a baseline
    log.append([], picture={"L|a": ("converged", "running"), "L|b": ("diverged", "running")})
    assert log.last_picture() == {"L|a": ("converged", "running"), "L|b": ("diverged", "running")}
    log.append([_lease(1, 1, lease="a")], picture={"L|a": ("diverged", "running"), "L|b": None})
    assert log.last_picture() == {"L|a": ("diverged", "running")}
    assert EventLog(tmp_path / "ledger.db").last_picture() == {"L|a": ("diverged", "running")}
    log.append([], picture={"L|a": None})
    assert log.last_picture() == {}  # empty, yet not a baseline any more


def test_retention_by_days_and_rows(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ledger.db", EventsConfig(retention_days=1, max_rows=1000))
    old = [_lease(i, -3 * 86400 + i) for i in range(10)]
    new = [_lease(i, i) for i in range(1500)]
    log.append(old + new)
    removed = log.compact(now=T0 + timedelta(hours=1))
    assert removed == 10 + 500
    kept = log.query(EventQuery(limit=None, oldest_first=True))
    assert len(kept) == 1000 and kept[0].lease_id == "lease-500"


def test_retention_runs_by_itself_every_compact_every_rows(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ledger.db", EventsConfig(max_rows=1000, compact_every=1000))
    for chunk in range(3):
        log.append([_lease(i, chunk * 1000 + i) for i in range(1000)])
    assert log.count() == 1000


def test_corrupt_ledger_is_a_ledger_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"this is not a database" * 100)
    log = EventLog(path)
    with pytest.raises(LedgerError) as info:
        log.append([_lease(1, 1)])
    assert str(path) in str(info.value)
    with pytest.raises(LedgerError):
        log.query(EventQuery())


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_ledger_keeps_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    log = EventLog(path)
    log.append([_lease(1, 1), ProviderListingFailed(observed_at=T0, source="provider_list", provider="e2b")])
    log.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path.chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        ro = EventLog(path)
        with pytest.raises(LedgerError):
            ro.append([_lease(2, 2)])
    finally:
        tmp_path.chmod(0o755)
        path.chmod(0o644)
    assert [e.type for e in EventLog(path).query(EventQuery())] == [
        "lease.convergence_changed",
        "provider.listing_failed",
    ]


def test_secrets_never_reach_the_ledger_and_each_row_keeps_its_own_body(tmp_path: Path) -> None:
    """Bodies are scrubbed in one pass over the batch: a known secret and a credential shape are
    gone, and every row still has exactly its own before/after (no row bleeds into the next)."""
    from opcockpit.domain import secrets

    secrets.remember("tok-EVENTLEDGER-0123456789")
    log = EventLog(tmp_path / "ledger.db")
    events = [_lease(i, i) for i in range(5)]
    events[1] = events[1].model_copy(update={"data": {"error": "HTTP 401 tok-EVENTLEDGER-0123456789"}})
    events[3] = events[3].model_copy(update={"data": {"url": "https://bob:hunter22@api.example/v1"}})
    log.append(events)
    raw = sqlite3.connect(tmp_path / "ledger.db").execute("SELECT body FROM events ORDER BY id").fetchall()
    text = "\n".join(r[0] for r in raw)
    assert "tok-EVENTLEDGER-0123456789" not in text and "hunter22" not in text
    back = sorted(log.query(EventQuery(limit=10)), key=lambda e: e.observed_at)
    assert [e.lease_id for e in back] == [e.lease_id for e in events]
    assert [e.after for e in back] == [e.after for e in events]
    assert back[0].data == {} and "error" in back[1].data and "url" in back[3].data
    log.close()
