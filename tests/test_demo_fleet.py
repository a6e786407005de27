# ruff: noqa: E501  (long SQL strings read better unwrapped)
"""The demo fleet generator writes LEON-valid, deterministic sandbox.db/events.db files."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opcockpit.adapters.leon.schema import sandbox_ddl
from opcockpit.demo.fleet import DemoFleet, generate_fleet

NOW = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)
LOCAL_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?$")
UTC_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SQL_TS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
ID = {
    "lease": re.compile(r"^lease-(adopt-)?[0-9a-f]{12}$"),
    "term": re.compile(r"^term-[0-9a-f]{12}$"),
    "sess": re.compile(r"^sess-[0-9a-f]{12}$"),
    "runtime": re.compile(r"^runtime-[0-9a-f]{12}$"),
    "cmd": re.compile(r"^cmd_[0-9a-f]{12}$"),
    "evt": re.compile(r"^evt-[0-9a-f]{32}$"),
    "thread": re.compile(r"^m_[a-z0-9]{12}-\d+$"),
}
INSTANCE_ID = {
    "docker": re.compile(r"^leon-[0-9a-f]{12}$"),
    "e2b": re.compile(r"^[a-z0-9]{20}$"),
    "daytona": re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"),
    "agentbay": re.compile(r"^s-[a-z0-9]{17}$"),
    "local": re.compile(r"^leon-lease-[0-9a-f]{12}$"),
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> DemoFleet:
    return generate_fleet(tmp_path_factory.mktemp("fleet"), leases=600, seed=11, now=NOW)


def q(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def dump(db: Path) -> list[tuple]:
    tables = [r[0] for r in q(db, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    return [(t, q(db, f"SELECT * FROM {t} ORDER BY rowid")) for t in tables]


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate_fleet(tmp_path / "a", leases=150, seed=3, now=NOW)
    b = generate_fleet(tmp_path / "b", leases=150, seed=3, now=NOW)
    assert repr(dump(a.sandbox_db)).encode() == repr(dump(b.sandbox_db)).encode()
    assert repr(dump(a.events_db)).encode() == repr(dump(b.events_db)).encode()
    assert a.instances == b.instances and a.drift == b.drift


def test_other_seed_other_fleet(tmp_path: Path) -> None:
    a = generate_fleet(tmp_path / "a", leases=50, seed=3, now=NOW)
    b = generate_fleet(tmp_path / "b", leases=50, seed=4, now=NOW)
    assert q(a.sandbox_db, "SELECT lease_id FROM sandbox_leases") != q(
        b.sandbox_db, "SELECT lease_id FROM sandbox_leases"
    )


def test_regenerating_into_a_directory_replaces_the_files(tmp_path: Path) -> None:
    generate_fleet(tmp_path, leases=30, seed=1, now=NOW)
    f = generate_fleet(tmp_path, leases=10, seed=2, now=NOW)
    assert q(f.sandbox_db, "SELECT COUNT(*) FROM sandbox_leases") == [(10,)]


# --------------------------------------------------------------------------- schema validity


def test_every_leon_table_and_index_exists_and_db_is_wal(fleet: DemoFleet) -> None:
    want = set()
    for stmt in sandbox_ddl("leonai"):
        m = re.search(r"CREATE (?:UNIQUE )?(?:TABLE|INDEX) IF NOT EXISTS (\w+)", stmt)
        assert m, stmt
        want.add(m.group(1))
    have = {
        r[0] for r in q(fleet.sandbox_db, "SELECT name FROM sqlite_master WHERE type IN ('table','index')")
    }
    assert want <= have
    assert q(fleet.sandbox_db, "PRAGMA integrity_check") == [("ok",)]
    assert q(fleet.sandbox_db, "PRAGMA journal_mode") == [("wal",)]
    assert q(fleet.events_db, "PRAGMA journal_mode") == [("wal",)]
    assert {r[0] for r in q(fleet.events_db, "SELECT name FROM sqlite_master")} >= {
        "run_events",
        "idx_run_events_thread_run",
    }


def test_counts_match_the_files(fleet: DemoFleet) -> None:
    for table, n in fleet.counts.items():
        db = fleet.events_db if table == "run_events" else fleet.sandbox_db
        assert q(db, f"SELECT COUNT(*) FROM {table}") == [(n,)], table
    assert fleet.counts["sandbox_leases"] == 600


def test_ids_are_leon_shaped(fleet: DemoFleet) -> None:
    db = fleet.sandbox_db
    checks = [
        ("SELECT lease_id FROM sandbox_leases", "lease"),
        ("SELECT terminal_id FROM abstract_terminals", "term"),
        ("SELECT thread_id FROM abstract_terminals", "thread"),
        ("SELECT chat_session_id FROM chat_sessions", "sess"),
        ("SELECT runtime_id FROM chat_sessions", "runtime"),
        ("SELECT command_id FROM terminal_commands", "cmd"),
        ("SELECT event_id FROM lease_events", "evt"),
    ]
    for sql, kind in checks:
        values = [r[0] for r in q(db, sql)]
        assert values and all(ID[kind].match(v) for v in values), (
            kind,
            [v for v in values if not ID[kind].match(v)],
        )
    kinds = dict(fleet.providers)
    for provider, iid in q(
        db,
        "SELECT provider_name, current_instance_id FROM sandbox_leases WHERE current_instance_id IS NOT NULL",
    ):
        assert INSTANCE_ID[kinds[provider]].match(iid), (provider, iid)
    for provider, specs in fleet.instances.items():
        for spec in specs:
            assert INSTANCE_ID[kinds[provider]].match(spec.instance_id), spec
    assert {k for k in kinds.values()} == {"docker", "e2b", "daytona", "agentbay", "local"}


def test_one_live_session_per_terminal_and_one_lease_per_thread(fleet: DemoFleet) -> None:
    db = fleet.sandbox_db
    dup = q(
        db,
        "SELECT terminal_id FROM chat_sessions WHERE status IN ('active','idle','paused') "
        "GROUP BY terminal_id HAVING COUNT(*) > 1",
    )
    assert dup == []
    assert (
        q(
            db,
            "SELECT thread_id FROM abstract_terminals GROUP BY thread_id HAVING COUNT(DISTINCT lease_id) > 1",
        )
        == []
    )
    # sessions name the lease and thread of their terminal
    assert q(
        db,
        "SELECT COUNT(*) FROM chat_sessions s JOIN abstract_terminals t ON t.terminal_id = s.terminal_id "
        "WHERE s.lease_id != t.lease_id OR s.thread_id != t.thread_id",
    ) == [(0,)]
    # multi-terminal threads exist; pointers name an existing terminal of the same thread
    assert (
        q(
            db,
            "SELECT COUNT(*) FROM (SELECT thread_id FROM abstract_terminals GROUP BY thread_id HAVING COUNT(*) > 1)",
        )[0][0]
        > 0
    )
    assert q(
        db,
        "SELECT COUNT(*) FROM thread_terminal_pointers p LEFT JOIN abstract_terminals t "
        "ON t.terminal_id = p.active_terminal_id AND t.thread_id = p.thread_id WHERE t.terminal_id IS NULL",
    ) == [(0,)]
    assert q(db, "SELECT COUNT(DISTINCT thread_id) FROM abstract_terminals") == q(
        db, "SELECT COUNT(*) FROM thread_terminal_pointers"
    )


def test_lease_events_match_versions_and_ids_are_unique(fleet: DemoFleet) -> None:
    db = fleet.sandbox_db
    assert (
        q(db, "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM lease_events")[0]
        == (fleet.counts["lease_events"],) * 2
    )
    # one lease_events row per apply(), version +1 per apply(): they agree lease by lease
    mismatched = q(
        db,
        "SELECT l.lease_id FROM sandbox_leases l LEFT JOIN "
        "(SELECT lease_id, COUNT(*) n FROM lease_events GROUP BY lease_id) e ON e.lease_id = l.lease_id "
        "WHERE l.version != COALESCE(e.n, 0)",
    )
    assert mismatched == []
    # the latest event of a lease is stamped with the lease's updated_at (same transaction)
    assert q(
        db,
        "SELECT COUNT(*) FROM sandbox_leases l WHERE version > 0 AND updated_at != "
        "(SELECT MAX(created_at) FROM lease_events e WHERE e.lease_id = l.lease_id)",
    ) == [(0,)]


def test_timestamp_conventions_per_table(fleet: DemoFleet) -> None:
    db = fleet.sandbox_db
    local_cols = {
        "sandbox_leases": (
            "created_at",
            "updated_at",
            "observed_at",
            "instance_created_at",
            "refresh_hint_at",
        ),
        "sandbox_instances": ("created_at", "last_seen_at"),
        "lease_events": ("created_at",),
        "abstract_terminals": ("created_at", "updated_at"),
        "thread_terminal_pointers": ("updated_at",),
        "chat_sessions": ("started_at", "last_active_at", "ended_at"),
        "terminal_commands": ("created_at", "updated_at", "finished_at"),
        "terminal_command_chunks": ("created_at",),
        "provider_events": ("created_at",),
    }
    for table, cols in local_cols.items():
        for col in cols:
            bad = [
                v
                for (v,) in q(db, f"SELECT {col} FROM {table} WHERE {col} IS NOT NULL")
                if not LOCAL_ISO.match(v)
            ]
            assert not bad, (table, col, bad[:3])
    for col in ("collected_at", "updated_at"):
        values = [v for (v,) in q(db, f"SELECT {col} FROM lease_resource_snapshots")]
        assert values and all(UTC_Z.match(v) for v in values)
    values = [v for (v,) in q(fleet.events_db, "SELECT created_at FROM run_events")]
    assert values and all(SQL_TS.match(v) for v in values)
    # seq follows wall-clock order, as AUTOINCREMENT does when LEON appends live
    assert values == sorted(values)
    # nothing is in the future of the generation time
    assert (
        max(v for (v,) in q(db, "SELECT updated_at FROM sandbox_leases"))
        <= NOW.astimezone().replace(tzinfo=None).isoformat()
    )


def test_every_lease_state_is_present(fleet: DemoFleet) -> None:
    db = fleet.sandbox_db
    combos = {
        (d, o, s) for d, o, s in q(db, "SELECT desired_state, observed_state, status FROM sandbox_leases")
    }
    assert {
        ("running", "running", "active"),
        ("paused", "paused", "active"),
        ("destroyed", "detached", "expired"),
        ("running", "detached", "active"),  # never-bound remote lease
        ("running", "detached", "recovering"),
        ("running", "paused", "active"),  # auto-paused, observed by LEON
    } <= combos
    # detached means no instance; a bound lease's instance is in its history with the same status
    assert q(
        db,
        "SELECT COUNT(*) FROM sandbox_leases WHERE observed_state='detached' AND current_instance_id IS NOT NULL",
    ) == [(0,)]
    assert q(
        db,
        "SELECT COUNT(*) FROM sandbox_leases l LEFT JOIN sandbox_instances i ON i.instance_id = l.current_instance_id "
        "WHERE l.current_instance_id IS NOT NULL AND (i.instance_id IS NULL OR i.status != l.observed_state "
        "OR i.lease_id != l.lease_id OR i.provider_session_id != i.instance_id)",
    ) == [(0,)]
    assert q(db, "SELECT COUNT(*) FROM sandbox_leases WHERE instance_status != observed_state") == [(0,)]
    assert q(db, "SELECT COUNT(*) FROM sandbox_instances WHERE status='stopped'")[0][0] > 0
    # needs_refresh=1 comes with the error that set it (adopted leases are flagged without one)
    flagged = q(db, "SELECT lease_id, last_error, refresh_hint_at FROM sandbox_leases WHERE needs_refresh=1")
    assert flagged and all(hint and (err or lid.startswith("lease-adopt-")) for lid, err, hint in flagged)


def test_lease_event_histories(fleet: DemoFleet) -> None:
    db = fleet.sandbox_db
    kinds = Counter((t, s) for t, s in q(db, "SELECT event_type, source FROM lease_events"))
    for key in [("intent.ensure_running", "run.create"), ("observe.status", "read.status"), ("intent.pause", "api"),
                ("intent.destroy", "api"), ("provider.error", "run.refresh"), ("observe.status", "webhook")]:  # fmt: skip
        assert kinds[key] > 0, key
    errors = [e for (e,) in q(db, "SELECT error FROM lease_events WHERE error IS NOT NULL")]
    assert any(
        re.match(r"Failed to pause lease lease-[0-9a-f]{12}: Docker command timed out after 20\.0s", e)
        for e in errors
    )
    # provider.error carries its message in the payload, not in `error`
    assert q(
        db, "SELECT COUNT(*) FROM lease_events WHERE event_type='provider.error' AND error IS NOT NULL"
    ) == [(0,)]
    created = q(db, "SELECT payload_json FROM lease_events WHERE event_type='intent.ensure_running' LIMIT 1")[
        0
    ][0]
    assert created.startswith('{"created": true, "instance_id": ')


def test_provider_events_snapshots_and_commands(fleet: DemoFleet) -> None:
    db = fleet.sandbox_db
    events = q(
        db,
        "SELECT provider_name, event_type, payload_json, matched_lease_id FROM provider_events ORDER BY event_id",
    )
    assert any(m is not None for *_, m in events) and any(m is None for *_, m in events)
    types = {t for _, t, _, _ in events}
    assert "sandbox.state.updated" in types and any(t.startswith("sandbox.lifecycle.") for t in types)
    daytona = next(p for _, t, p, _ in events if t == "sandbox.state.updated")
    assert '"newState"' in daytona and '"oldState"' in daytona
    # matched events name the lease currently bound to that instance (LeaseStore.find_by_instance)
    assert q(
        db,
        "SELECT COUNT(*) FROM provider_events e LEFT JOIN sandbox_instances i ON i.instance_id = e.instance_id "
        "WHERE e.matched_lease_id IS NOT NULL AND (i.lease_id IS NULL OR i.lease_id != e.matched_lease_id)",
    ) == [(0,)]
    assert (
        q(db, "SELECT COUNT(*) FROM lease_resource_snapshots WHERE probe_error = 'metrics unavailable'")[0][0]
        > 0
    )
    assert q(db, "SELECT COUNT(*) FROM lease_resource_snapshots WHERE probe_mode='non_running_sdk'")[0][0] > 0
    cmds = set(q(db, "SELECT status, exit_code FROM terminal_commands"))
    assert {("done", 0), ("done", 1), ("cancelled", 130), ("running", None)} <= cmds
    assert q(
        db, "SELECT COUNT(*) FROM terminal_commands WHERE status='running' AND finished_at IS NOT NULL"
    ) == [(0,)]
    assert q(db, "SELECT COUNT(*) FROM terminal_command_chunks c LEFT JOIN terminal_commands t USING (command_id) "
                 "WHERE t.command_id IS NULL") == [(0,)]  # fmt: skip


def test_runs_of_every_fate(fleet: DemoFleet) -> None:
    rows = q(fleet.events_db, "SELECT run_id, event_type FROM run_events ORDER BY seq")
    runs: dict[str, list[str]] = {}
    for run_id, etype in rows:
        runs.setdefault(run_id, []).append(etype)
    agent = {r: e for r, e in runs.items() if not r.startswith("activity_")}
    assert all(e[0] == "user_message" and e[1] == "run_start" for e in agent.values())
    done = [e for e in agent.values() if e[-1] == "run_done"]
    assert any("error" in e and e.index("error") == len(e) - 2 for e in done)
    assert any("cancelled" in e for e in done)
    assert any("error" not in e and "cancelled" not in e for e in done)
    assert any("run_done" not in e for e in agent.values())  # never finished
    assert any(r.startswith("activity_m_") for r in runs)
    # LEON retains at most one agent run per thread
    per_thread = q(fleet.events_db, "SELECT thread_id, COUNT(DISTINCT run_id) FROM run_events "
                                    "WHERE run_id NOT LIKE 'activity_%' GROUP BY thread_id HAVING COUNT(DISTINCT run_id) > 1")  # fmt: skip
    assert per_thread == []


# --------------------------------------------------------------------------- planned drift


def test_planned_drift_is_present(fleet: DemoFleet) -> None:
    db = fleet.sandbox_db
    drift = fleet.drift
    assert len(drift.paused_at_provider) >= 2 and drift.killed and len(drift.orphans) >= 2 and drift.leaks
    specs = {(s.provider, s.instance_id): s for specs in fleet.instances.values() for s in specs}
    for item in drift.paused_at_provider:
        assert specs[(item.provider, item.instance_id)].state == "paused"
        assert q(db, "SELECT desired_state, observed_state, current_instance_id FROM sandbox_leases WHERE lease_id=?",
                 (item.lease_id,)) == [("running", "running", item.instance_id)]  # fmt: skip
    for item in drift.killed:
        assert (item.provider, item.instance_id) not in specs
        assert q(db, "SELECT observed_state, current_instance_id FROM sandbox_leases WHERE lease_id=?",
                 (item.lease_id,)) == [("running", item.instance_id)]  # fmt: skip
    current = {
        iid
        for (iid,) in q(
            db, "SELECT current_instance_id FROM sandbox_leases WHERE current_instance_id IS NOT NULL"
        )
    }
    claimed = [o for o in drift.orphans if o.lease_id]
    untracked = [o for o in drift.orphans if not o.lease_id]
    assert claimed and untracked
    for o in claimed:  # an old instance of a lease that has since been replaced
        assert o.instance_id not in current
        assert q(db, "SELECT status FROM sandbox_instances WHERE instance_id=? AND lease_id=?",
                 (o.instance_id, o.lease_id)) == [("stopped",)]  # fmt: skip
        spec = specs[(o.provider, o.instance_id)]
        if spec.kind == "docker":
            assert spec.labels["leon.context_id"] == f"leon-{o.lease_id}"
    for o in untracked:
        assert o.instance_id not in current and specs[(o.provider, o.instance_id)].labels in (
            {},
            {"leon.session_id": o.instance_id},
        )
    for leak in drift.leaks:
        assert q(db, "SELECT desired_state, current_instance_id FROM sandbox_leases WHERE lease_id=?",
                 (leak.lease_id,)) == [("destroyed", None)]  # fmt: skip
        assert specs[(leak.provider, leak.instance_id)].state == "running"
    # LEON's docker labels on every lease-bound container
    for spec in fleet.instances["docker"]:
        assert spec.labels["leon.session_id"] == spec.instance_id and "docker_id" in spec.extra


def test_custom_provider_names_and_weights(tmp_path: Path) -> None:
    f = generate_fleet(tmp_path, leases=80, seed=5, now=NOW,
                       providers={"daytona_selfhost": "daytona", "docker": "docker"},
                       weights={"daytona_selfhost": 3, "docker": 1})  # fmt: skip
    names = dict(q(f.sandbox_db, "SELECT provider_name, COUNT(*) FROM sandbox_leases GROUP BY 1"))
    assert set(names) == {"daytona_selfhost", "docker"} and names["daytona_selfhost"] > names["docker"]
    assert set(f.instances) == {"daytona_selfhost", "docker"}
    with pytest.raises(ValueError):
        generate_fleet(tmp_path, leases=1, providers={"x": "nope"})
    with pytest.raises(ValueError):
        generate_fleet(tmp_path, leases=1, weights={"unknown": 1.0})


@pytest.mark.parametrize("variant", ["older", "mycel"])
def test_schema_variants(tmp_path: Path, variant: str) -> None:
    f = generate_fleet(tmp_path, leases=40, seed=2, now=NOW, variant=variant)
    cols = {r[1] for r in q(f.sandbox_db, "PRAGMA table_info(sandbox_leases)")}
    assert ("instance_status" in cols) is (variant != "older")
    assert ("volume_id" in cols) is (variant == "mycel")
    assert q(f.sandbox_db, "SELECT COUNT(*) FROM sandbox_leases") == [(40,)]
