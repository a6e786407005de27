"""The error paths of core/operations.py (issue 16, item 13): each refusal, failure and note has
a test that a one-line bug in it would fail (gate re-check, provider moved, lease gone, the
WriteError branches, "done but not recorded", failed orphan actions, the audit-failure note,
the catch-all, adopt refusals, every gate reason).

Real parts: LEON-schema sandbox.db files changed "meanwhile" with plain sqlite (as LEON would),
provider doubles on 127.0.0.1 whose `on_request` hook lets the world change at a precise point
of an action, a real ledger file."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.audit import list_audit
from opcockpit.doubles.base import Request
from opcockpit.doubles.docker import DockerDouble
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.services.operations import Action, Gate, Operation, OpStatus, PlanItem, Target
from opcockpit.settings.config import ProviderConfig
from tests import operations_support as support
from tests.operations_support import (
    E2B_LEASE,
    LeaseSpec,
    assert_leon_invariants,
    build_db,
    cockpit,
    config_for,
    db_locked,
    events,
    lease_row,
    mutations,
    opened,
    query,
    setup_e2b,
    sha,
)

# The fixtures shared by the operations test modules (pytest finds them by these names).
e2b, docker, ledger = support.e2b, support.docker, support.ledger

LID = E2B_LEASE


def sql(db: Path, statement: str, *args: object) -> None:
    """A change made by someone else (LEON, another cockpit) with a plain connection."""
    conn = sqlite3.connect(db)
    try:
        conn.execute(statement, args)
        conn.commit()
    finally:
        conn.close()


def on_first(double, method: str, action) -> None:
    """Run `action` once, when the first `method` request reaches the double."""
    fired: list[bool] = []

    def hook(request: Request) -> None:
        if request.method == method and not fired:
            fired.append(True)
            action()

    double.faults.on_request = hook


# --------------------------------------------------------------------------- gates: every reason


async def test_every_gate_reason(tmp_path: Path, e2b: E2BDouble, ledger: Path, monkeypatch) -> None:
    _iid, _db, config = setup_e2b(tmp_path, e2b)
    orphan = e2b.add(state="running").instance_id
    config.providers["off"] = ProviderConfig(
        name="off", kind="e2b", api_url=e2b.url, api_key="k", enabled=False
    )
    monkeypatch.delenv("OPC_NO_SUCH_KEY", raising=False)
    config.providers["nokey"] = ProviderConfig(
        name="nokey", kind="e2b", api_url=e2b.url, api_key_env="OPC_NO_SUCH_KEY"
    )
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        rows = {r.lease_id: r for r in gt.rows}
        lease, unbound, local = rows[LID], rows["lease-e2bunbound01"], rows["lease-local0000001"]
        (orph,) = [o for o in gt.orphans if o.instance_id == orphan]
        g = c.ops.gate
        assert g("pause", lease) == Gate(True) and g("destroy", unbound) == Gate(True)
        assert g("adopt", orph) == Gate(True) and g("destroy", orph) == Gate(True)
        assert g("pause", Target.unlisted("ghost", "i1")) == Gate(False, "provider 'ghost' is not configured")
        assert g("pause", Target.unlisted("off", "i1")) == Gate(
            False, "provider 'off' is disabled in the config"
        )
        assert g("pause", local) == Gate(
            False, "provider 'local' is LEON's local provider: it has no API the cockpit can call"
        )
        nokey = g("pause", Target.unlisted("nokey", "i1"))
        assert not nokey.allowed and (nokey.reason or "").startswith("provider 'nokey' unavailable: ")
        assert "OPC_NO_SUCH_KEY" in (nokey.reason or "")
        assert g("resume", unbound) == Gate(
            False, "lease lease-e2bunbound01 has no instance bound (LEON binds on first use)"
        )
        assert g("pause", unbound).allowed is False
        destroyed = replace(Target.of_row(unbound), seen_desired="destroyed")  # issue 15: a leak's lease
        assert g("pause", destroyed) == Gate(
            False,
            "lease lease-e2bunbound01 is destroyed: pause does not apply;"
            " destroy removes an instance it left behind",
        )
        assert g("adopt", lease) == Gate(False, f"lease {LID} is already a lease; adopt applies to orphans")
        for state in ("gone", "stopped"):
            seen = replace(Target.of_orphan(orph), seen_provider_state=state)
            assert g("adopt", seen) == Gate(False, f"instance is {state}: destroy it rather than adopt it")
        assert g("adopt", replace(Target.of_orphan(orph), seen_provider_state="paused")).allowed
        unconfirmed = replace(Target.of_orphan(orph), confirmed=False)
        assert g("destroy", unconfirmed) == Gate(
            False, "orphan not confirmed by a GET yet (eventually consistent listing); wait a refresh"
        )
    async with opened(config, ledger, read_only=True) as c:
        gt = await c.collector.refresh()
        row = next(r for r in gt.rows if r.lease_id == LID)
        assert c.ops.gate("pause", row) == Gate(False, "read-only mode: actions are disabled")
        assert c.ops.gate("pause", row, dry_run=True) == Gate(True)


async def test_gate_capability_off_refuses(tmp_path: Path, ledger: Path) -> None:
    from opcockpit.adapters.providers.agentbay import AgentBayAdapter
    from opcockpit.doubles.agentbay import AgentBayDouble
    from opcockpit.wiring import build_collector, build_operations

    with AgentBayDouble() as ab:
        iid = ab.add(state="running").instance_id
        db = build_db(tmp_path / "sandbox.db", [LeaseSpec("lease-ab0000000001", "agentbay", iid)])
        config = config_for(db, {"agentbay": ("agentbay", ab)})
        adapter = AgentBayAdapter(
            "agentbay", base_url=ab.url, api_key="test-key", retries=0, supports_pause=False
        )
        collector = build_collector(config, adapters={"agentbay": adapter})
        ops = build_operations(config, collector=collector, operator="alice@testhost")
        try:
            gt = await collector.refresh()
            (row,) = gt.rows
            assert ops.gate("pause", row) == Gate(False, "provider 'agentbay' does not support pause")
            assert ops.gate("resume", row).allowed and ops.gate("destroy", row).allowed
            op = await ops._run(Action.PAUSE, PlanItem(Target.of_row(row), Gate(True)), None, False, None)
            assert (op.status, op.message) == (OpStatus.REFUSED, "provider 'agentbay' does not support pause")
            assert [e["action"] for e in ab.events_log] == ["create"]  # never paused
        finally:
            await collector.aclose()


@pytest.mark.parametrize(
    ("action", "ref", "reason"),
    [
        ("pause", "lease-local0000001", "LEON's local provider"),
        ("destroy", "lease-local0000001", "LEON's local provider"),
        ("resume", "lease-e2bunbound01", "has no instance bound"),
    ],
)
async def test_the_gate_is_checked_again_at_execution(
    tmp_path: Path, e2b: E2BDouble, ledger: Path, action: str, ref: str, reason: str
) -> None:
    """A plan item that says "allowed" (a stale TUI gate, a hand-built plan) is still re-gated."""
    _, db, config = setup_e2b(tmp_path, e2b)
    c = cockpit(config, ledger)
    snapshot = sha(db)
    try:
        gt = await c.collector.refresh()
        target = Target.of_row(next(r for r in gt.rows if r.lease_id == ref))
        op = await c.ops._run(Action(action), PlanItem(target, Gate(True)), None, False, None)
        assert op.status is OpStatus.REFUSED and reason in op.message, op.message
        assert op.error == op.message and c.ops.tracker.pending() == []
    finally:
        await c.close()
    assert mutations(e2b) == 0 and sha(db) == snapshot
    (entry,) = list_audit(5, path=ledger)
    assert entry.result == "refused" and reason in (entry.error or "")


async def test_a_closed_plan_gate_refuses_without_any_request(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    iid, _db, config = setup_e2b(tmp_path, e2b)
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        target = Target.of_row(next(r for r in gt.rows if r.lease_id == LID))
        n = e2b.request_count
        op = await c.ops._run(
            Action.PAUSE, PlanItem(target, Gate(False, "because I said so")), None, False, None
        )
        assert (op.status, op.message) == (OpStatus.REFUSED, "because I said so")
        op = await c.ops._run(Action.PAUSE, PlanItem(target, Gate(False)), None, False, None)
        assert (op.status, op.message) == (OpStatus.REFUSED, "not allowed")
        assert e2b.request_count == n and e2b.instances[iid].state == "running"


# --------------------------------------------------------------------------- the truth changed


async def test_lease_gone_from_sandbox_db_is_refused(tmp_path: Path, e2b: E2BDouble, ledger: Path) -> None:
    iid, db, config = setup_e2b(tmp_path, e2b)
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        plan = c.ops.plan(Action.PAUSE, [LID], seen=gt)
        sql(db, "DELETE FROM sandbox_leases WHERE lease_id = ?", LID)
        snapshot, n = sha(db), mutations(e2b)
        (op,) = await c.ops.execute(plan)
        assert op.status is OpStatus.REFUSED
        assert op.message == f"lease {LID} no longer exists in sandbox.db"
        assert sha(db) == snapshot and mutations(e2b) == n and e2b.instances[iid].state == "running"


async def test_lease_moved_to_another_provider_is_refused(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    iid, db, config = setup_e2b(tmp_path, e2b)
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        plan = c.ops.plan(Action.DESTROY, [LID], seen=gt)
        # same instance id, another provider: only the provider check can catch this one
        sql(db, "UPDATE sandbox_leases SET provider_name = 'e2b_eu' WHERE lease_id = ?", LID)
        snapshot, n = sha(db), mutations(e2b)
        (op,) = await c.ops.execute(plan)
        assert op.status is OpStatus.REFUSED
        assert op.message == f"lease {LID} now belongs to provider e2b_eu, not e2b"
        assert sha(db) == snapshot and mutations(e2b) == n and iid in e2b.instances


async def test_instance_gone_at_the_provider_refuses_pause(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    iid, db, config = setup_e2b(tmp_path, e2b)
    orphan = e2b.add(state="running").instance_id
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        lease_plan = c.ops.plan(Action.PAUSE, [LID], seen=gt)
        orphan_plan = c.ops.plan(Action.PAUSE, [f"e2b/{orphan}"], seen=gt)
        e2b.remove(iid)
        e2b.remove(orphan)
        snapshot = sha(db)
        (op,) = await c.ops.execute(lease_plan)
        assert (op.status, op.message) == (
            OpStatus.REFUSED, f"instance {iid} is gone at the provider; nothing to pause",
        )  # fmt: skip
        (op,) = await c.ops.execute(orphan_plan)
        assert (op.status, op.message) == (
            OpStatus.REFUSED, f"instance e2b/{orphan} is gone at the provider; nothing to pause",
        )  # fmt: skip
        assert sha(db) == snapshot and mutations(e2b) == 0


async def test_provider_read_failure_refuses_before_any_change(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    iid, db, config = setup_e2b(tmp_path, e2b)
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        plan = c.ops.plan(Action.PAUSE, [LID], seen=gt)
        e2b.faults.error_status = 503
        snapshot = sha(db)
        (op,) = await c.ops.execute(plan)
        assert op.status is OpStatus.REFUSED
        assert op.message.startswith(f"cannot verify e2b/{iid} at the provider right now: ")
        assert "503" in op.message and sha(db) == snapshot and mutations(e2b) == 0


# --------------------------------------------------------------------------- WriteError paths


async def test_lease_rebound_between_the_check_and_the_intent_is_refused(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    iid, db, config = setup_e2b(tmp_path, e2b)
    new = e2b.add(state="running").instance_id
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        plan = c.ops.plan(Action.PAUSE, [LID], seen=gt)
        # LEON rebinds the lease while our fresh GET is in flight: the intent transaction sees it
        on_first(e2b, "GET", lambda: sql(
            db, "UPDATE sandbox_leases SET current_instance_id = ? WHERE lease_id = ?", new, LID
        ))  # fmt: skip
        v0 = lease_row(db, LID)["version"]
        (op,) = await c.ops.execute(plan)
        assert op.status is OpStatus.REFUSED, op.message
        assert f"now bound to {new}, not {iid}" in op.message and "nothing was written" in op.message
        row = lease_row(db, LID)
        assert (row["version"], row["desired_state"], row["current_instance_id"]) == (v0, "running", new)
        assert events(db, LID) == [] and mutations(e2b) == 0


async def test_intent_write_failure_is_a_failure_and_the_provider_is_not_called(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    iid, db, config = setup_e2b(tmp_path, e2b)
    async with opened(config, ledger, busy_timeout_s=0.2) as c:
        gt = await c.collector.refresh()
        plan = c.ops.plan(Action.DESTROY, [LID], seen=gt)
        with db_locked(db):
            (op,) = await c.ops.execute(plan)
        assert op.status is OpStatus.FAILED and op.error == op.message
        assert op.message.startswith("could not write the intent: sandbox.db at ")
        assert "locked by another writer" in op.message
        assert mutations(e2b) == 0 and iid in e2b.instances and c.ops.tracker.pending() == []


async def test_provider_done_but_outcome_not_recorded_stays_pending_and_says_so(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    iid, db, config = setup_e2b(tmp_path, e2b)
    other = e2b.add(state="running").instance_id
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        plan = c.ops.plan(Action.PAUSE, [LID], seen=gt)
        # LEON rebinds the lease while our pause is at the provider: the outcome cannot be recorded
        on_first(e2b, "POST", lambda: sql(
            db, "UPDATE sandbox_leases SET current_instance_id = ? WHERE lease_id = ?", other, LID
        ))  # fmt: skip
        (op,) = await c.ops.execute(plan)
        assert e2b.instances[iid].state == "paused"  # the provider did act
        assert op.status is OpStatus.PENDING and op.outcome == "done"
        assert (op.error or "").startswith("pause done at the provider but the outcome was not recorded: ")
        assert "rebound" in (op.error or "") and op.message == "paused"
        assert op in c.ops.tracker.pending()
    (entry,) = list_audit(5, path=ledger)
    assert entry.result == "pending" and "not recorded" in (entry.error or "")


async def test_failure_that_cannot_be_recorded_says_so(tmp_path: Path, e2b: E2BDouble, ledger: Path) -> None:
    iid = e2b.add(state="running", internal_state="snapshotting").instance_id  # pause answers 409
    db = build_db(tmp_path / "sandbox.db", [LeaseSpec(LID, "e2b", iid)])
    async with opened(config_for(db, {"e2b": ("e2b", e2b)}), ledger) as c:
        gt = await c.collector.refresh()
        plan = c.ops.plan(Action.PAUSE, [LID], seen=gt)
        on_first(e2b, "POST", lambda: sql(db, "DELETE FROM sandbox_leases WHERE lease_id = ?", LID))
        (op,) = await c.ops.execute(plan)
        assert op.status is OpStatus.FAILED and op.after is None
        assert op.message.startswith(f"Failed to pause lease {LID}: ")
        assert "snapshotting" in op.message
        assert f"; and the failure could not be recorded: lease {LID} vanished" in op.message
        assert op.error is not None and "could not be recorded" not in op.error


async def test_recorded_failure_fills_leons_fields(tmp_path: Path, e2b: E2BDouble, ledger: Path) -> None:
    iid = e2b.add(state="running", internal_state="snapshotting").instance_id
    db = build_db(tmp_path / "sandbox.db", [LeaseSpec(LID, "e2b", iid, version=7)])
    async with opened(config_for(db, {"e2b": ("e2b", e2b)}), ledger) as c:
        gt = await c.collector.refresh()
        (op,) = await c.ops.execute(c.ops.plan(Action.PAUSE, [LID], seen=gt))
        assert op.status is OpStatus.FAILED and c.ops.tracker.pending() == []
        assert op.after is not None and op.after["needs_refresh"] == 1 and op.after["version"] == 9
        assert op.after["desired_state"] == "running" and op.error == op.message
        assert mutations(e2b) == 1  # one pause, no retry, no read back (a 409 is an answer)
        assert "read back" not in op.message
        assert_leon_invariants(db)


async def test_adopt_write_failure_is_a_failure(tmp_path: Path, e2b: E2BDouble, ledger: Path) -> None:
    _, db, config = setup_e2b(tmp_path, e2b)
    orphan = e2b.add(state="running").instance_id
    async with opened(config, ledger, busy_timeout_s=0.2) as c:
        gt = await c.collector.refresh()
        plan = c.ops.plan(Action.ADOPT, [f"e2b/{orphan}"], seen=gt)
        with db_locked(db):
            (op,) = await c.ops.execute(plan)
        assert op.status is OpStatus.FAILED and op.new_lease_id is None
        assert op.message.startswith("could not adopt: ") and "locked" in op.message
        assert op.error == op.message
        assert query(db, "SELECT count(*) FROM sandbox_leases WHERE lease_id LIKE 'lease-adopt-%'") == [(0,)]


# --------------------------------------------------------------------------- orphans


async def test_failed_orphan_action_is_a_failure_not_a_success(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    _, _db, config = setup_e2b(tmp_path, e2b)
    snap = e2b.add(state="running", internal_state="snapshotting").instance_id  # 409 on pause
    flaky = e2b.add(state="running").instance_id
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        (op,) = await c.ops.execute(c.ops.plan(Action.PAUSE, [f"e2b/{snap}"], seen=gt))
        assert op.status is OpStatus.FAILED and op.outcome is None and op.after is None
        assert op.message.startswith(f"Failed to pause e2b/{snap}: ") and "snapshotting" in op.message
        assert "read back" not in op.message  # a 409 is an answer: nothing to read back
        assert op.error == op.message and c.ops.tracker.pending() == []

        # a 503 on the pause itself: the read back shows it still running -> failed
        plan = c.ops.plan(Action.PAUSE, [f"e2b/{flaky}"], seen=gt)
        hits: list[str] = []

        def after_the_fresh_get(request: Request) -> None:
            hits.append(request.method)
            if request.method == "GET" and len(hits) == 1:  # the next request (the POST) gets a 503
                e2b.faults.error_status, e2b.faults.error_times = 503, 1

        e2b.faults.on_request = after_the_fresh_get
        (op2,) = await c.ops.execute(plan)
        assert op2.status is OpStatus.FAILED, op2.message
        assert op2.message.startswith(f"Failed to pause e2b/{flaky}: ")
        assert "(read back: still running)" in op2.message and e2b.instances[flaky].state == "running"
        assert hits.count("GET") == 2  # the fresh check, then the read back
    results = {a.instance_id: a.result for a in list_audit(10, path=ledger)}
    assert results == {snap: "failed", flaky: "failed"}


async def test_orphan_unknown_outcome(tmp_path: Path, e2b: E2BDouble, ledger: Path) -> None:
    _, _db, config = setup_e2b(tmp_path, e2b)
    orphan = e2b.add(state="running").instance_id
    config.providers["e2b"] = ProviderConfig(
        name="e2b", kind="e2b", api_url=e2b.url, api_key="test-key", retries=0, timeout_s=0.5
    )
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        e2b.faults.drop_mutation_response = True
        on_first(e2b, "DELETE", lambda: setattr(e2b.faults, "error_status", 503))
        (op,) = await c.ops.execute(c.ops.plan(Action.DESTROY, [f"e2b/{orphan}"], seen=gt))
        assert op.status is OpStatus.UNKNOWN and op.outcome is None
        assert op.message.startswith(f"outcome is unknown: the destroy of e2b/{orphan} was sent")
        assert "check the provider" in op.message and op.error == op.message
        assert c.ops.tracker.pending() == []
    (entry,) = list_audit(5, path=ledger)
    assert (entry.result, entry.instance_id) == ("unknown", orphan)


# --------------------------------------------------------------------------- adopt refusals


async def test_adopt_refusals_gone_stopped_and_adopted_meanwhile(
    tmp_path: Path, docker: DockerDouble, ledger: Path
) -> None:
    gone = docker.add(state="running").instance_id
    stopped = docker.add(state="running").instance_id
    db = build_db(tmp_path / "sandbox.db", [])
    async with opened(config_for(db, {"docker": ("docker", docker)}), ledger) as c:
        gt = await c.collector.refresh()
        plans = {iid: c.ops.plan(Action.ADOPT, [f"docker/{iid}"], seen=gt) for iid in (gone, stopped)}
        docker.remove(gone)
        docker.set_state(stopped, "stopped")
        snapshot = sha(db)
        (op,) = await c.ops.execute(plans[gone])
        assert (op.status, op.message) == (
            OpStatus.REFUSED, f"instance docker/{gone} is gone at the provider; nothing to adopt",
        )  # fmt: skip
        (op,) = await c.ops.execute(plans[stopped])
        assert op.status is OpStatus.REFUSED and op.new_lease_id is None
        assert op.message.startswith(f"instance docker/{stopped} is ")
        assert op.message.endswith(": LEON would see it as detached; destroy it instead")
        assert sha(db) == snapshot and mutations(docker) == 0


async def test_repeat_adopt_whose_lease_changed_is_refused(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    _iid, db, config = setup_e2b(tmp_path, e2b)
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        row = next(r for r in gt.rows if r.lease_id == LID)
        item = PlanItem(Target.of_row(row), Gate(False, "is already a lease"))
        sql(db, "UPDATE sandbox_leases SET current_instance_id = NULL, observed_state = 'detached',"
                " instance_status = 'detached' WHERE lease_id = ?", LID)  # fmt: skip
        op = await c.ops._run(Action.ADOPT, item, None, False, None)
        assert op.status is OpStatus.REFUSED
        assert op.message == f"lease {LID} changed since you looked (now bound to nothing); refresh and retry"
        sql(db, "DELETE FROM sandbox_leases WHERE lease_id = ?", LID)
        op = await c.ops._run(Action.ADOPT, item, None, False, None)
        assert op.message == f"lease {LID} changed since you looked (gone); refresh and retry"
        assert mutations(e2b) == 0


# --------------------------------------------------------------------------- catch-all, audit note


async def test_an_unexpected_error_fails_that_target_only(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    iid, _db, config = setup_e2b(tmp_path, e2b)
    orphan = e2b.add(state="running").instance_id
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()

        def progress(op: Operation, stage: str) -> None:
            if stage == "intent" and op.target.lease_id == LID:
                raise RuntimeError("the progress callback broke")

        results = await c.ops.execute(
            c.ops.plan(Action.PAUSE, [LID, f"e2b/{orphan}"], seen=gt), on_progress=progress
        )
        by = {r.target.key: r for r in results}
        bad, good = by[LID], by[f"e2b/{orphan}"]
        assert bad.status is OpStatus.FAILED
        assert bad.message == bad.error == "RuntimeError: the progress callback broke"
        assert bad not in c.ops.tracker.pending() and bad.finished_at is not None
        assert good.status is OpStatus.PENDING and e2b.instances[orphan].state == "paused"
        assert e2b.instances[iid].state == "running"
    results = {a.op_id: a.result for a in list_audit(5, path=ledger)}
    assert results == {bad.op_id: "failed", good.op_id: "pending"}


async def test_an_audit_row_that_cannot_be_completed_is_noted(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    iid, _db, config = setup_e2b(tmp_path, e2b)
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()

        def break_ledger(op: Operation, stage: str) -> None:
            if stage == "intent":  # the row was begun; now the ledger goes away
                c.audit.close()
                ledger.rename(tmp_path / "moved.db")
                ledger.mkdir()

        (op,) = await c.ops.execute(c.ops.plan(Action.PAUSE, [LID], seen=gt), on_progress=break_ledger)
        assert op.status is OpStatus.PENDING and op.outcome == "done"  # the action did happen
        assert op.message.startswith("paused (audit not written: ")
        assert e2b.instances[iid].state == "paused"
    (entry,) = list_audit(5, path=tmp_path / "moved.db")
    assert entry.result == "started"  # begun, never completed: visible as such


async def test_the_audit_row_is_completed_not_duplicated(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    iid, db, config = setup_e2b(tmp_path, e2b)
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        (op,) = await c.ops.execute(c.ops.plan(Action.DESTROY, [LID], seen=gt))
        await c.ops.wait_converged(op, 15)
    (entry,) = list_audit(5, path=ledger)
    assert (entry.op_id, entry.result, entry.outcome, entry.convergence) == (
        op.op_id,
        "pending",
        "done",
        "converged",
    )
    assert entry.before == op.before and entry.after == op.after and entry.duration_ms == op.duration_ms
    assert (entry.provider, entry.lease_id, entry.instance_id, entry.thread_id) == ("e2b", LID, iid, "t-one")
    assert entry.operator == "alice@testhost" and not entry.dry_run and not entry.read_only
    assert events(db, LID)[-2]["payload"]["op_id"] == op.op_id
    assert lease_row(db, LID)["desired_state"] == "destroyed"
