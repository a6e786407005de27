"""LeonWriter on real sandbox.db files (leonai, mycel, older): LEON's write path, atomicity, locks."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from opcockpit.adapters.leon.writer import LeonWriter, WriteError, check_invariants
from tests.fixtures.leon_db import write_worked_example
from tests.operations_support import (
    LeaseSpec,
    assert_leon_invariants,
    build_db,
    db_locked,
    events,
    lease_row,
    query,
    sha,
    versions,
)

VARIANTS = ("leonai", "mycel", "older")
L, INST = "lease-aaaaaaaaaaaa", "leon-111111111111"
OP = "alice@testhost"


@pytest.fixture(params=VARIANTS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return build_db(
        tmp_path / "sandbox.db",
        [LeaseSpec(L, "docker", INST, thread_id="thread-1"), LeaseSpec("lease-bbbbbbbbbbbb", "e2b", "i-2")],
        variant=request.param,
    )


def writer(db: Path, **kw) -> LeonWriter:
    return LeonWriter(str(db), operator=OP, busy_timeout_s=0.3, **kw)


def naive_local(ts: str) -> bool:
    return datetime.fromisoformat(ts).tzinfo is None


def test_pause_intent_then_success_is_leons_apply(db: Path) -> None:
    before = versions(db)
    w = writer(db)
    intent = w.write_intent(L, "pause", expect_instance_id=INST, payload={"op_id": "x1"})
    row = lease_row(db, L)
    assert (row["desired_state"], row["observed_state"], row["version"]) == ("paused", "running", 4)
    assert naive_local(row["observed_at"]) and naive_local(row["updated_at"])
    snap = w.record_success(intent, outcome="done")
    row = lease_row(db, L)
    assert (row["desired_state"], row["observed_state"], row["status"]) == ("paused", "paused", "active")
    assert row.get("instance_status", "paused") == "paused"  # absent on the older schema
    assert (row["last_error"], row["needs_refresh"], row["version"]) == (None, 0, 5)
    assert snap.version == 5 and snap.observed_state == "paused"
    evs = events(db, L)
    assert [(e["event_type"], e["source"], e["error"]) for e in evs] == [
        ("intent.pause", "opcockpit:alice@testhost", None),
        ("observe.status", "opcockpit:alice@testhost", None),
    ]
    assert all(re.fullmatch(r"evt-[0-9a-f]{32}", e["event_id"]) for e in evs)
    assert evs[0]["payload"] == {"instance_id": INST, "op_id": "x1"}
    assert evs[1]["payload"]["status"] == "paused" and naive_local(evs[1]["created_at"])
    assert query(db, "SELECT status FROM sandbox_instances WHERE instance_id = ?", INST) == [("paused",)]
    assert_leon_invariants(db, before)


def test_destroy_success_detaches_like_leon(db: Path) -> None:
    w = writer(db)
    w.record_success(w.write_intent(L, "destroy", expect_instance_id=INST))
    row = lease_row(db, L)
    assert (row["desired_state"], row["observed_state"], row["current_instance_id"], row["status"]) == (
        "destroyed", "detached", None, "expired",
    )  # fmt: skip
    assert row.get("instance_status", "detached") == "detached"
    assert query(db, "SELECT status FROM sandbox_instances WHERE instance_id = ?", INST) == [("stopped",)]
    assert_leon_invariants(db)


def test_failure_sets_leons_error_fields_and_keeps_desired_observed(db: Path) -> None:
    w = writer(db)
    intent = w.write_intent(L, "pause", expect_instance_id=INST)
    msg = f"Failed to pause lease {L}: " + "x" * 600
    w.record_failure(intent, msg)
    row = lease_row(db, L)
    assert (row["desired_state"], row["observed_state"]) == ("running", "running")  # as before the intent
    assert row["last_error"] == msg[:500] and row["needs_refresh"] == 1 and row["version"] == 5
    assert naive_local(row["refresh_hint_at"]) and row["observed_at"] == row["refresh_hint_at"]
    last = events(db, L)[-1]
    assert (last["event_type"], last["error"]) == ("intent.pause", msg[:500])
    assert_leon_invariants(db)


def test_unknown_outcome_sets_leons_error_fields_without_rolling_back(db: Path) -> None:
    w = writer(db)
    intent = w.write_intent(L, "destroy", expect_instance_id=INST)
    msg = f"Failed to destroy lease {L}: outcome unknown"
    after = w.record_unknown(intent, msg)
    row = lease_row(db, L)
    # the provider may have acted: desired stays destroyed; observed/instance untouched
    assert (row["desired_state"], row["observed_state"], row["current_instance_id"]) == (
        "destroyed",
        "running",
        INST,
    )
    assert row["last_error"] == msg and row["needs_refresh"] == 1 and row["version"] == 5
    assert after.desired_state == "destroyed" and after.needs_refresh == 1
    last = events(db, L)[-1]
    assert (last["event_type"], last["error"]) == ("intent.destroy", msg)
    assert_leon_invariants(db)


def test_duplicate_event_id_leaves_state_unchanged(db: Path) -> None:
    w = writer(db)
    first = w.write_intent(L, "pause", expect_instance_id=INST)
    snapshot = sha(db)
    with pytest.raises(WriteError) as info:
        w.write_intent(L, "resume", expect_instance_id=INST, event_id=first.event_id)
    assert info.value.kind == "integrity"
    with pytest.raises(WriteError):
        w.record_success(first, event_id=first.event_id)
    with pytest.raises(WriteError):
        w.record_failure(first, "boom", event_id=first.event_id)
    assert sha(db) == snapshot  # version, last_error, needs_refresh, observed: all untouched


def test_intent_refused_when_instance_changed_or_lease_gone(db: Path) -> None:
    snapshot = sha(db)
    with pytest.raises(WriteError, match="now bound to leon-111111111111") as info:
        writer(db).write_intent(L, "pause", expect_instance_id="leon-other")
    assert info.value.kind == "conflict"
    with pytest.raises(WriteError, match="no longer exists"):
        writer(db).write_intent("lease-nope", "pause", expect_instance_id=INST)
    assert sha(db) == snapshot


def test_locked_by_another_writer_is_a_clear_error_and_writes_nothing(db: Path) -> None:
    snapshot = sha(db)
    with db_locked(db):
        with pytest.raises(WriteError) as info:
            writer(db).write_intent(L, "pause", expect_instance_id=INST)
        assert info.value.kind == "locked"
        assert "locked by another writer" in str(info.value) and "nothing was written" in str(info.value)
        with pytest.raises(WriteError, match="locked"):
            writer(db).adopt("e2b", "i-new", "running")
    assert sha(db) == snapshot


def test_read_only_writer_refuses_everything(db: Path) -> None:
    snapshot = sha(db)
    w = writer(db, read_only=True)
    with pytest.raises(WriteError) as info:
        w.write_intent(L, "pause", expect_instance_id=INST)
    assert info.value.kind == "read_only"
    with pytest.raises(WriteError, match="read-only"):
        w.adopt("e2b", "i-new", "running")
    assert sha(db) == snapshot


def test_never_creates_a_missing_db(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(WriteError) as info:
        LeonWriter(str(missing), operator=OP).write_intent(L, "pause", expect_instance_id=INST)
    assert info.value.kind == "missing" and not missing.exists()


def test_adopt_like_leon_adopt_instance(db: Path) -> None:
    rec = writer(db).adopt("e2b", "i-orphan", "paused")
    assert re.fullmatch(r"lease-adopt-[0-9a-f]{12}", rec.lease_id)
    row = lease_row(db, rec.lease_id)
    got = (row["provider_name"], row["current_instance_id"], row["desired_state"], row["observed_state"])
    assert got == ("e2b", "i-orphan", "paused", "paused")
    assert (row["version"], row["needs_refresh"], row["status"]) == (1, 1, "active")
    sql = "SELECT lease_id, provider_session_id, status FROM sandbox_instances WHERE instance_id = ?"
    assert query(db, sql, "i-orphan") == [(rec.lease_id, "i-orphan", "paused")]
    (ev,) = events(db, rec.lease_id)
    assert (ev["event_type"], ev["source"], ev["payload"]) == (
        "observe.status", "adopt", {"status": "paused", "instance_id": "i-orphan"},
    )  # fmt: skip
    assert rec.terminal_id is None and query(db, "SELECT COUNT(*) FROM abstract_terminals WHERE lease_id = ?",
                                             rec.lease_id) == [(0,)]  # fmt: skip
    running = writer(db).adopt("e2b", "i-run", "running")
    assert lease_row(db, running.lease_id)["desired_state"] == "running"
    assert_leon_invariants(db)


def test_adopt_refuses_a_bound_instance_and_a_thread_with_a_lease(db: Path) -> None:
    snapshot = sha(db)
    with pytest.raises(WriteError, match=f"already bound to lease {L}") as info:
        writer(db).adopt("docker", "leon-full-docker-id", "running", aliases=[INST])
    assert info.value.kind == "conflict"
    with pytest.raises(WriteError, match=f"thread thread-1 already has lease {L}"):
        writer(db).adopt("e2b", "i-orphan", "running", thread_id="thread-1")
    with pytest.raises(WriteError, match="not live"):
        writer(db).adopt("e2b", "i-orphan", "detached")
    assert sha(db) == snapshot


def test_adopt_attaches_to_a_thread_without_a_lease(db: Path) -> None:
    rec = writer(db).adopt("e2b", "i-orphan", "running", thread_id="thread-new", cwd="/home/user")
    assert rec.terminal_id and re.fullmatch(r"term-[0-9a-f]{12}", rec.terminal_id) and rec.pointer_created
    assert query(db, "SELECT thread_id, lease_id, cwd FROM abstract_terminals WHERE terminal_id = ?",
                 rec.terminal_id) == [("thread-new", rec.lease_id, "/home/user")]  # fmt: skip
    assert query(db, "SELECT active_terminal_id, default_terminal_id FROM thread_terminal_pointers "
                 "WHERE thread_id = 'thread-new'") == [(rec.terminal_id, rec.terminal_id)]  # fmt: skip
    assert_leon_invariants(db)


def test_adopt_keeps_an_existing_pointer_of_a_thread_without_terminals(db: Path) -> None:
    # LEON deletes terminals with a thread's resources; a pointer row can outlive them only if
    # the DB was edited by hand, but then the pointer must not be duplicated (PRIMARY KEY).
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO thread_terminal_pointers (thread_id, active_terminal_id, default_terminal_id)"
                 " VALUES ('thread-x', 'term-gone', 'term-gone')")  # fmt: skip
    conn.commit()
    conn.close()
    rec = writer(db).adopt("e2b", "i-orphan", "running", thread_id="thread-x")
    assert rec.terminal_id and not rec.pointer_created


def test_invariants_checker_sees_violations(tmp_path: Path) -> None:
    ex = write_worked_example(tmp_path)
    assert check_invariants(str(ex.sandbox_db)) == []
    conn = sqlite3.connect(ex.sandbox_db)
    conn.execute(
        "UPDATE sandbox_leases SET observed_state = 'detached' WHERE lease_id = 'lease-3f9a1c2b7d4e'"
    )
    conn.execute("INSERT INTO abstract_terminals (terminal_id, thread_id, lease_id, cwd) VALUES "
                 "('term-x', 'm_k3v8p1x9q2z7-1', 'lease-7c2d4e6f8a0b', '/')")  # fmt: skip
    conn.commit()
    conn.close()
    problems = check_invariants(str(ex.sandbox_db), versions_before={"lease-3f9a1c2b7d4e": 99})
    text = "\n".join(problems)
    assert "detached but current_instance_id" in text and "instance_status" in text
    assert "inconsistent lease_ids" in text and "version went down" in text
