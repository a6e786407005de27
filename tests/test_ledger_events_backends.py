"""The event ledger and saved queries on both ledger backends (a SQLite file and a real PostgreSQL,
tests/fixtures/postgres.py), the same tests: appends with idempotency keys (exactly once, within
a batch and across appends and connections), queries/cursor/picture/retention, the v1 -> v2
migration of an old SQLite ledger (keys backfilled from stored webhook bodies), and `ledger copy`
carrying events, keys, the picture and saved queries to PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.backend import connect, schema_status
from opcockpit.adapters.ledger.events import MIGRATIONS, EventLog
from opcockpit.adapters.ledger.queries import QueryStore
from opcockpit.adapters.webhooks.store import LedgerSink, webhook_key
from opcockpit.domain.events import (
    EventQuery,
    EventsConfig,
    EventSource,
    InstanceStateChanged,
    InstanceView,
    ProviderEvent,
    event_from_dict,
)
from opcockpit.ports.explore import SavedQuery
from tests.fixtures.postgres import PASSWORD, pg_server, pg_url  # noqa: F401

T0 = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return request.getfixturevalue("pg_url")


def hook(i: int, *, provider: str = "e2b", at: datetime = T0, sha: str = "s") -> ProviderEvent:
    return ProviderEvent(
        observed_at=at + timedelta(seconds=i), source=EventSource.PROVIDER_EVENT, provider=provider,
        instance_id=f"sbx-{i}", lease_id=f"lease-{i}", after={"event": "sandbox.lifecycle.paused"},
        data={"delivery_key": f"ev-{i}", "body_sha256": f"{sha}{i}", "via": "webhook"},
    )  # fmt: skip


def change(i: int) -> InstanceStateChanged:
    return InstanceStateChanged(
        observed_at=T0 + timedelta(seconds=i), source=EventSource.PROVIDER_LIST, provider="docker",
        instance_id=f"c-{i}", before=InstanceView(state="running"), after=InstanceView(state="paused"),
    )  # fmt: skip


def test_keyed_appends_store_each_key_once(ledger: str) -> None:
    log = EventLog(ledger)
    keys = [webhook_key("e2b", f"ev-{i}") for i in range(5)]
    assert log.append([hook(i) for i in range(5)], keys=keys) == 5
    # a retried batch, overlapping, with a repeat inside itself and unkeyed events beside
    again = [hook(3), hook(4), hook(5), hook(5), change(1), change(2)]
    assert log.append(again, keys=[keys[3], keys[4], webhook_key("e2b", "ev-5"),
                                   webhook_key("e2b", "ev-5"), None, None]) == 3  # fmt: skip
    log.close()
    other = EventLog(ledger)  # another connection (a restarted receiver) sees the same keys
    assert other.append([hook(0), hook(6)], keys=[keys[0], webhook_key("e2b", "ev-6")]) == 1
    assert other.count() == 9
    hooks = other.query(EventQuery(types=("provider.event",), limit=None, oldest_first=True))
    assert [e.data["delivery_key"] for e in hooks] == [f"ev-{i}" for i in range(7)]
    found = other.by_key(keys[2])
    assert found is not None and found.instance_id == "sbx-2" and found.data["body_sha256"] == "s2"
    assert other.by_key(webhook_key("daytona", "ev-2")) is None  # keys are per provider
    with pytest.raises(ValueError):
        other.append([hook(9)], keys=[])  # keys must be parallel to the events
    other.close()


def test_same_semantics_query_cursor_picture_and_retention(ledger: str) -> None:
    # a tiny max_rows (the config's floor is 1000) so the retention pass is visible on 8 rows
    log = EventLog(ledger, EventsConfig.model_construct(max_rows=6, compact_every=10**9, retention_days=1))
    assert log.last_picture() is None
    log.append([change(i) for i in range(4)], picture={"L|a": ("diverged", "running"), "L|b": ("x",)})
    log.append([hook(i, at=T0 + timedelta(minutes=1)) for i in range(4)], picture={"L|b": None})
    assert log.last_picture() == {"L|a": ("diverged", "running")}
    newest = log.query(EventQuery(limit=2))
    assert [e.type for e in newest] == ["provider.event", "provider.event"] and newest[0].id is not None
    docker = log.query(EventQuery(provider="docker", since=T0 + timedelta(seconds=2)))
    assert [e.instance_id for e in docker] == ["c-3", "c-2"]
    assert [e.lease_id for e in log.query(EventQuery(lease_id="lease-1"))] == ["lease-1"]
    assert isinstance(newest[0].after, dict) and newest[0].after == {"event": "sandbox.lifecycle.paused"}
    first = log.after(0, limit=3)
    assert [e.instance_id for e in first] == ["c-0", "c-1", "c-2"]
    assert [e.id for e in log.after(first[-1].id or 0, limit=100)] == [4, 5, 6, 7, 8]
    assert isinstance(first[0].before, InstanceView) and first[0].before.state == "running"
    assert log.compact(now=T0 + timedelta(hours=1)) == 2  # max_rows 6: the two oldest go
    assert log.count() == 6
    assert log.compact(now=T0 + timedelta(days=2)) == 6  # retention: everything older than a day
    log.close()


def test_saved_queries_and_history(ledger: str) -> None:
    with QueryStore(ledger) as store:
        store.save(SavedQuery(name="stuck", query="convergence = diverged", description="d", owner="al"))
        store.save(SavedQuery(name="raw", query="SELECT 1", sql=True, params=("a",)))
        first = store.get("stuck")
        assert first is not None and first.created_at is not None
        store.save(SavedQuery(name="stuck", query="convergence = stuck"))
        again = store.get("stuck")
        assert again is not None and again.query == "convergence = stuck"
        assert again.created_at == first.created_at
        raw = store.get("raw")
        assert [q.name for q in store.list()] == ["raw", "stuck"] and raw is not None and raw.params == ("a",)
        assert store.remove("raw") and not store.remove("raw")
        for i in range(3):
            store.record_history(f"q{i}", sql=False, rows=i, error=None, at=T0 + timedelta(minutes=i))
        assert [h["query"] for h in store.history(2)] == ["q2", "q1"]


def _old_ledger(path: Path) -> None:
    """A ledger written by the previous version: events at schema v1 and the webhooks it stored,
    one of them twice (what the old separate delivery index could let through after a crash)."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE ledger_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    for stmt in MIGRATIONS[0]:
        conn.execute(str(stmt))
    conn.execute("INSERT INTO ledger_schema VALUES ('events', 1)")
    for n, key in enumerate(["ev-1", "ev-2", "ev-1"]):
        data = {"delivery_key": key, "body_sha256": "h" + key}
        body = json.dumps({"before": None, "after": None, "data": data})
        conn.execute(
            "INSERT INTO events(type, observed_us, source, provider, body) VALUES (?,?,?,?,?)",
            ("provider.event", 1_000 + n, "provider_event", "e2b", body),
        )
    conn.execute(
        "INSERT INTO events(type, observed_us, source, provider, body) VALUES (?,?,?,?,?)",
        ("instance.state_changed", 5_000, "provider_list", "docker", json.dumps({"data": {}})),
    )
    conn.commit()
    conn.close()


def test_old_sqlite_ledger_migrates_and_keeps_deduplicating(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _old_ledger(path)
    sink = LedgerSink(EventLog(path), event_from_dict)
    assert sink.known("e2b", "ev-1") == "hev-1" and sink.known("e2b", "ev-2") == "hev-2"
    assert sink.known("e2b", "ev-3") is None
    retried = {"type": "provider.event", "observed_at": T0.isoformat(), "source": "provider_event",
               "provider": "e2b", "data": {"delivery_key": "ev-2", "body_sha256": "hev-2"}}  # fmt: skip
    assert sink.append([retried]) == 0  # stored before the upgrade: not again
    db = connect(path)
    assert schema_status(db)["events"] == len(MIGRATIONS)
    keys = [r[0] for r in db.execute("SELECT idem_key FROM events ORDER BY id")]
    db.close()
    assert keys == ["webhook:e2b:ev-1", "webhook:e2b:ev-2", None, None]  # the old duplicate: unkeyed
    sink.close()


def test_ledger_copy_carries_events_keys_picture_and_queries(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    src = tmp_path / "ledger.db"
    log = EventLog(src)
    log.append([hook(i) for i in range(3)] + [change(7)], picture={"L|a": ("converged",)},
               keys=[webhook_key("e2b", f"ev-{i}") for i in range(3)] + [None])  # fmt: skip
    log.close()
    with QueryStore(src) as store:
        store.save(SavedQuery(name="mine", query="state = paused"))
        store.record_history("state = paused", sql=False, rows=3, error=None, at=T0)
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    proc = subprocess.run(
        [sys.executable, "-m", "opcockpit.cli", "ledger", "copy", "--from", f"sqlite:{src}", "--to", pg_url],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "events 4" in proc.stdout and "saved_queries 1" in proc.stdout and PASSWORD not in proc.stdout
    pg = EventLog(pg_url)
    assert [e.instance_id for e in pg.query(EventQuery())] == ["c-7", "sbx-2", "sbx-1", "sbx-0"]
    assert pg.last_picture() == {"L|a": ("converged",)}
    # the keys came along: a retry after the move is still stored once; new ids follow the old
    assert pg.append([hook(1), hook(9)], keys=[webhook_key("e2b", "ev-1"), webhook_key("e2b", "ev-9")]) == 1
    assert [e.instance_id for e in pg.after(4)] == ["sbx-9"]  # (PostgreSQL may skip an id: never reuse one)
    pg.close()
    with QueryStore(pg_url) as store:
        assert [q.name for q in store.list()] == ["mine"] and store.history()[0]["rows"] == 3


def test_events_cli_reads_either_backend(ledger: str, tmp_path: Path) -> None:
    log = EventLog(ledger)
    log.append([change(1), hook(2)], keys=[None, webhook_key("e2b", "ev-2")])
    log.close()
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    proc = subprocess.run(
        [sys.executable, "-m", "opcockpit.cli", "events", "--ledger", ledger, "--format", "json",
         "--provider", "e2b"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [e["instance_id"] for e in json.loads(proc.stdout)] == ["sbx-2"]
    assert PASSWORD not in proc.stdout + proc.stderr


def _delivery(key: str, sha: str) -> dict[str, object]:
    data = {"delivery_key": key, "body_sha256": sha}
    return {"type": "provider.event", "observed_at": T0.isoformat(), "source": "provider_event",
            "provider": "e2b", "instance_id": "sbx", "data": data}  # fmt: skip


def test_sink_store_says_per_delivery_what_the_ledger_held(ledger: str) -> None:
    sink = LedgerSink(EventLog(ledger), event_from_dict)
    assert sink.store([_delivery("a", "h1"), _delivery("b", "h2")]) == [None, None]
    sink.close()
    sink = LedgerSink(EventLog(ledger), event_from_dict)  # a restarted receiver: nothing in memory
    batch = [_delivery("a", "h1"), _delivery("b", "other"), _delivery("c", "h3"), _delivery("c", "h3")]
    got = sink.store(batch)
    assert got == [
        "h1",  # a retry: the ledger holds this body
        "h2",  # a replay with another body: the held hash differs
        None,  # new: stored now
        "h3",  # repeated within the batch: stored once, by the first
    ]
    assert sink.known("e2b", "c") == "h3" and sink.known("e2b", "zz") is None
    assert sink.ledger.count() == 3  # type: ignore[attr-defined]
    sink.close()
