"""Operations against real LEON-schema DBs and the real provider doubles on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.audit import list_audit
from opcockpit.doubles.docker import DockerDouble
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.services.operations import Action, Gate, OpStatus, PlanItem, Target, TargetError
from opcockpit.settings.config import ProviderConfig
from opcockpit.wiring import build_operations
from tests import operations_support as support
from tests.operations_support import (
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
    versions,
)

# The fixtures shared by the operations test modules (pytest finds them by these names).
e2b, docker, ledger = support.e2b, support.docker, support.ledger

WAIT = 15.0  # upper bound for convergence waits; never asserted as a duration


# --------------------------------------------------------------------------- each action and its repeat


@pytest.mark.parametrize("variant", ["leonai", "mycel", "older"])
async def test_e2b_lease_pause_resume_destroy_and_repeats_converge(
    tmp_path: Path, e2b: E2BDouble, ledger: Path, variant: str
) -> None:
    iid, db, config = setup_e2b(tmp_path, e2b, variant=variant)
    c = cockpit(config, ledger)
    lid = "lease-e2b000000001"
    try:
        for action, native, observed in (
            (Action.PAUSE, "paused", "paused"),
            (Action.RESUME, "running", "running"),
        ):
            for attempt in (1, 2):
                before_v = versions(db)
                gt = await c.collector.refresh()
                plan = c.ops.plan(action, [lid], seen=gt)
                (op,) = await c.ops.execute(plan)
                assert op.status is OpStatus.PENDING, op.message
                assert e2b.instances[iid].state == native
                row = lease_row(db, lid)
                assert (row["desired_state"], row["observed_state"]) == (
                    "paused" if action is Action.PAUSE else "running", observed,
                )  # fmt: skip
                if attempt == 1:
                    assert op.outcome == "done" and row["version"] == before_v[lid] + 2
                else:  # repeat: says so, changes nothing
                    assert op.outcome == "already" and "already" in op.message
                    assert row["version"] == before_v[lid]
                await c.ops.wait_converged([op], WAIT)
                assert op.status is OpStatus.CONVERGED, op.last_reason
                assert_leon_invariants(db, before_v)

        gt = await c.collector.refresh()
        (op,) = await c.ops.execute(c.ops.plan(Action.DESTROY, ["t-one"], seen=gt))  # by thread id
        assert op.status is OpStatus.PENDING and op.outcome == "done", op.message
        assert iid not in e2b.instances
        row = lease_row(db, lid)
        assert (row["desired_state"], row["observed_state"], row["current_instance_id"], row["status"]) == (
            "destroyed", "detached", None, "expired",
        )  # fmt: skip
        await c.ops.wait_converged(op, WAIT)
        assert op.status is OpStatus.CONVERGED
        n = mutations(e2b)
        gt = await c.collector.refresh()
        (again,) = await c.ops.execute(c.ops.plan(Action.DESTROY, [lid], seen=gt))
        assert again.outcome == "already" and mutations(e2b) == n
        await c.ops.wait_converged(again, WAIT)
        assert again.status is OpStatus.CONVERGED
        assert_leon_invariants(db)
        kinds = [(e["event_type"], e["source"]) for e in events(db, lid)]
        assert ("intent.destroy", "opcockpit:alice@testhost") in kinds
    finally:
        await c.close()
    audit = list_audit(50, path=ledger)
    assert len(audit) == 6 and {a.operator for a in audit} == {"alice@testhost"}
    assert all(a.convergence == "converged" for a in audit)
    assert audit[0].action == "destroy" and audit[0].before and audit[0].after is not None


async def test_docker_lease_cycle_and_orphan_destroy_without_adopt(
    tmp_path: Path, docker: DockerDouble, ledger: Path
) -> None:
    leased = docker.add(state="running", labels={"leon.context_id": "leon-lease-dock00000001"}).instance_id
    orphan = docker.add(state="running").instance_id
    db = build_db(
        tmp_path / "sandbox.db", [LeaseSpec("lease-dock00000001", "docker", leased, thread_id="t-d")]
    )
    async with opened(config_for(db, {"docker": ("docker", docker)}), ledger) as c:
        gt = await c.collector.refresh()
        assert [o.instance_id for o in gt.orphans] == [orphan]
        (op,) = await c.ops.execute(c.ops.plan("pause", [leased[:9]], seen=gt))  # unique instance prefix
        assert op.status is OpStatus.PENDING and docker.instances[leased].state == "paused"
        await c.ops.wait_converged(op, WAIT)
        assert op.status is OpStatus.CONVERGED

        snapshot = sha(db)
        (kill,) = await c.ops.execute(c.ops.plan("destroy", [f"docker/{orphan}"], seen=gt))
        assert kill.status is OpStatus.PENDING and kill.outcome == "done" and orphan not in docker.instances
        assert sha(db) == snapshot  # an orphan destroy never writes sandbox.db
        await c.ops.wait_converged(kill, WAIT)
        assert kill.status is OpStatus.CONVERGED
        gt = await c.collector.refresh()
        assert gt.orphans == ()
        (again,) = await c.ops.execute(c.ops.plan("destroy", [f"docker/{orphan}"], seen=gt))
        assert again.outcome == "already" and again.target.listed is False
        await c.ops.wait_converged(again, WAIT)
        assert again.status is OpStatus.CONVERGED and sha(db) == snapshot
    assert_leon_invariants(db)


async def test_destroying_a_leaked_lease_destroys_its_labelled_instance_at_the_provider(
    tmp_path: Path, docker: DockerDouble, ledger: Path
) -> None:
    # LEON destroyed the lease (detached, expired) but the container labelled for it still runs.
    lid = "lease-leak00000001"
    leaked = docker.add(state="running", labels={"leon.context_id": f"leon-{lid}"}).instance_id
    db = build_db(tmp_path / "sandbox.db", [
        LeaseSpec(lid, "docker", None, desired="destroyed", observed="detached", thread_id="t-leak"),
    ])  # fmt: skip
    async with opened(config_for(db, {"docker": ("docker", docker)}), ledger) as c:
        gt = await c.collector.refresh()
        assert [(o.instance_id, o.claim) for o in gt.orphans] == [(leaked, "lease_exists")]
        plan = c.ops.plan(Action.DESTROY, [lid], seen=gt)  # by lease id, as `opcockpit destroy`
        (item,) = plan.items
        t = item.target
        assert item.gate.allowed and t.is_leak
        assert (t.provider, t.instance_id, t.lease_id, t.thread_id) == ("docker", leaked, lid, "t-leak")
        assert "(none bound)" not in t.describe() and leaked in t.describe() and "t-leak" in t.describe()
        assert c.ops.plan(Action.DESTROY, ["t-leak"], seen=gt).allowed == [t]  # by thread id too
        snapshot = sha(db)
        (op,) = await c.ops.execute(plan)
        assert op.status is OpStatus.PENDING and op.outcome == "done", op.message
        assert leaked not in docker.instances
        assert sha(db) == snapshot  # the lease is already destroyed: no LEON intent written
        await c.ops.wait_converged(op, WAIT)
        assert op.status is OpStatus.CONVERGED, op.last_reason
        # Repeat: the instance is gone, nothing claims the lease; the lease target says "already".
        n = mutations(docker)
        gt = await c.collector.refresh()
        assert c.ops.plan(Action.DESTROY, [lid], seen=gt).allowed[0].kind == "lease"
        (again,) = await c.ops.execute(c.ops.plan(Action.DESTROY, [f"docker/{leaked}"], seen=gt))
        assert again.outcome == "already" and mutations(docker) == n
        assert_leon_invariants(db)
    entry = list_audit(10, path=ledger)[-1]
    assert (entry.action, entry.lease_id, entry.instance_id, entry.thread_id) == (
        "destroy", lid, leaked, "t-leak",
    )  # fmt: skip
    assert entry.convergence == "converged"


async def test_leaked_instance_is_not_destroyed_when_its_lease_was_revived_meanwhile(
    tmp_path: Path, docker: DockerDouble, ledger: Path
) -> None:
    lid = "lease-leak00000002"
    leaked = docker.add(state="running", labels={"leon.context_id": f"leon-{lid}"}).instance_id
    db = build_db(tmp_path / "sandbox.db", [
        LeaseSpec(lid, "docker", None, desired="destroyed", observed="detached", thread_id="t-leak"),
    ])  # fmt: skip
    async with opened(config_for(db, {"docker": ("docker", docker)}), ledger) as c:
        gt = await c.collector.refresh()
        plan = c.ops.plan(Action.DESTROY, [lid], seen=gt)
        import sqlite3

        conn = sqlite3.connect(db)  # LEON resumes the lease before the keypress
        conn.execute("UPDATE sandbox_leases SET desired_state = 'running' WHERE lease_id = ?", (lid,))
        conn.commit()
        conn.close()
        n, snapshot = mutations(docker), sha(db)
        (op,) = await c.ops.execute(plan)
        assert op.status is OpStatus.REFUSED and "desired_state now running" in op.message
        assert leaked in docker.instances and mutations(docker) == n and sha(db) == snapshot


# --------------------------------------------------------------------------- refusals: the truth changed


async def test_destroy_of_an_orphan_adopted_meanwhile_is_refused(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    _iid, db, config = setup_e2b(tmp_path, e2b)
    orphan = e2b.add(state="running").instance_id
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        plan = c.ops.plan(Action.DESTROY, [f"e2b/{orphan}"], seen=gt)
        assert plan.items[0].target.kind == "orphan" and plan.items[0].gate.allowed
        # LEON (or another cockpit) adopts it between the operator's look and the keypress.
        other = build_operations(config, adapters=c.collector.adapters, operator="bob@elsewhere")
        adopted = await other.run(Action.ADOPT, plan.items[0].target)
        assert adopted.status is OpStatus.PENDING and adopted.new_lease_id
        n, snapshot = mutations(e2b), sha(db)
        (op,) = await c.ops.execute(plan)
        assert op.status is OpStatus.REFUSED
        assert f"bound to lease {adopted.new_lease_id}" in op.message
        assert orphan in e2b.instances and mutations(e2b) == n and sha(db) == snapshot
    (entry,) = list_audit(10, path=ledger)
    assert entry.result == "refused" and entry.instance_id == orphan


async def test_lease_whose_instance_changed_is_refused(tmp_path: Path, e2b: E2BDouble, ledger: Path) -> None:
    iid, db, config = setup_e2b(tmp_path, e2b)
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        plan = c.ops.plan(Action.DESTROY, ["lease-e2b000000001"], seen=gt)
        new = e2b.add(state="running").instance_id  # LEON recreated the instance meanwhile
        import sqlite3

        conn = sqlite3.connect(db)
        sql = "UPDATE sandbox_leases SET current_instance_id = ? WHERE lease_id = 'lease-e2b000000001'"
        conn.execute(sql, (new,))
        conn.commit()
        conn.close()
        n, snapshot = mutations(e2b), sha(db)
        (op,) = await c.ops.execute(plan)
        assert op.status is OpStatus.REFUSED and f"{iid} -> {new}" in op.message
        assert mutations(e2b) == n and sha(db) == snapshot and iid in e2b.instances


async def test_gates_local_unbound_capabilities_and_adopt_of_a_lease(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    _, db, config = setup_e2b(tmp_path, e2b)
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        rows = {r.lease_id: r for r in gt.rows}
        gate = c.ops.gate("pause", rows["lease-local0000001"])
        assert not gate.allowed and "local provider" in (gate.reason or "")
        assert not c.ops.gate("resume", rows["lease-e2bunbound01"]).allowed
        assert not c.ops.gate("adopt", rows["lease-e2b000000001"]).allowed
        plan = c.ops.plan("destroy", ["lease-local0000001"], seen=gt)
        (op,) = await c.ops.execute(plan)
        assert op.status is OpStatus.REFUSED and "no API" in op.message
        # destroying an unbound remote lease is a DB-only change, done LEON's way
        (op,) = await c.ops.execute(c.ops.plan("destroy", ["lease-e2bunbound01"], seen=gt))
        assert op.status is OpStatus.PENDING and "no instance bound" in op.message
        row = lease_row(db, "lease-e2bunbound01")
        assert (row["desired_state"], row["observed_state"], row["status"]) == (
            "destroyed",
            "detached",
            "expired",
        )
        await c.ops.wait_converged(op, WAIT)
        assert op.status is OpStatus.CONVERGED
        assert_leon_invariants(db)


async def test_resolution_prefixes_ambiguity_and_unlisted(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    _, _, config = setup_e2b(tmp_path, e2b)
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        with pytest.raises(TargetError) as info:
            c.ops.plan("pause", ["lease-"], seen=gt)
        assert "ambiguous" in str(info.value) and len(info.value.candidates) == 3
        assert "lease lease-local0000001" in str(info.value)
        with pytest.raises(TargetError, match="matches no lease"):
            c.ops.plan("pause", ["nothing-like-this"], seen=gt)
        plan = c.ops.plan("pause", ["lease-e2b0", "t-one", "lease-e2b000000001"], seen=gt)
        assert [i.target.lease_id for i in plan.items] == ["lease-e2b000000001"]  # duplicates dropped
        (item,) = c.ops.plan("destroy", ["e2b/ithisisnotlisted"], seen=gt).items
        assert item.target == Target.unlisted("e2b", "ithisisnotlisted")


# --------------------------------------------------------------------------- serialisation, locks, failures


async def test_two_concurrent_operations_on_one_lease_are_serialised(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    iid, db, config = setup_e2b(tmp_path, e2b)
    c = cockpit(config, ledger)
    trace: list[tuple[str, str]] = []
    try:
        gt = await c.collector.refresh()
        destroy = c.ops.plan(Action.DESTROY, ["lease-e2b000000001"], seen=gt)
        pause = c.ops.plan(Action.PAUSE, ["lease-e2b000000001"], seen=gt)
        d_op, p_op = await asyncio.gather(
            c.ops.execute(destroy, on_progress=lambda op, s: trace.append((op.action.value, s))),
            c.ops.execute(pause, on_progress=lambda op, s: trace.append((op.action.value, s))),
        )
        assert d_op[0].status is OpStatus.PENDING
        # the pause waited for the destroy, re-checked, and saw the instance was gone from the lease
        assert p_op[0].status is OpStatus.REFUSED and f"{iid} -> (none)" in p_op[0].message
        assert trace.index(("pause", "checking")) > trace.index(("destroy", "recorded"))

        # two pauses of a running instance: one pauses, the other finds it paused
        iid2 = e2b.add(state="running").instance_id
        import sqlite3

        conn = sqlite3.connect(db)
        conn.execute("UPDATE sandbox_leases SET current_instance_id = ?, desired_state = 'running', "
                     "observed_state = 'running', instance_status = 'running', status = 'active' "
                     "WHERE lease_id = 'lease-e2b000000001'", (iid2,))  # fmt: skip
        conn.commit()
        conn.close()
        gt = await c.collector.refresh()
        plan = c.ops.plan(Action.PAUSE, ["lease-e2b000000001"], seen=gt)
        v0 = versions(db)["lease-e2b000000001"]
        a, b = await asyncio.gather(c.ops.execute(plan), c.ops.execute(plan))
        assert sorted([a[0].outcome, b[0].outcome]) == ["already", "done"]
        assert versions(db)["lease-e2b000000001"] == v0 + 2  # only the first one wrote
        assert_leon_invariants(db)
    finally:
        await c.close()


async def test_db_locked_by_another_writer_fails_clearly_and_changes_nothing(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    iid, db, config = setup_e2b(tmp_path, e2b)
    async with opened(config, ledger, busy_timeout_s=0.3) as c:
        gt = await c.collector.refresh()
        plan = c.ops.plan(Action.PAUSE, ["lease-e2b000000001"], seen=gt)
        n, snapshot = mutations(e2b), sha(db)
        with db_locked(db):
            (op,) = await c.ops.execute(plan)
        assert op.status is OpStatus.FAILED
        assert "locked by another writer" in op.message and "nothing was written" in op.message
        assert mutations(e2b) == n and e2b.instances[iid].state == "running"  # provider never called
        assert sha(db) == snapshot
    (entry,) = list_audit(5, path=ledger)
    assert entry.result == "failed" and "locked" in (entry.error or "")


async def test_provider_5xx_leaves_leons_error_fields(tmp_path: Path, e2b: E2BDouble, ledger: Path) -> None:
    iid, db, config = setup_e2b(tmp_path, e2b)
    c = cockpit(config, ledger)
    lid = "lease-e2b000000001"
    try:
        gt = await c.collector.refresh()
        v0 = versions(db)[lid]

        def fail_after_intent(op, stage: str) -> None:
            if stage == "intent":  # the provider breaks right after our intent is written
                e2b.faults.error_status, e2b.faults.error_times = 500, 1

        (op,) = await c.ops.execute(c.ops.plan("pause", [lid], seen=gt), on_progress=fail_after_intent)
        assert op.status is OpStatus.FAILED and op.message.startswith(f"Failed to pause lease {lid}: ")
        row = lease_row(db, lid)
        assert (row["desired_state"], row["observed_state"]) == ("running", "running")
        assert row["last_error"] == op.message[:500] and "HTTP 500" in row["last_error"]
        assert row["needs_refresh"] == 1 and row["refresh_hint_at"] and row["version"] == v0 + 2
        last = events(db, lid)[-1]
        assert (last["event_type"], last["error"]) == ("intent.pause", row["last_error"])
        assert e2b.instances[iid].state == "running"
        assert_leon_invariants(db)
    finally:
        await c.close()


async def test_provider_refusal_409_is_recorded_as_a_failure(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    iid = e2b.add(state="running", internal_state="snapshotting").instance_id
    db = build_db(tmp_path / "sandbox.db", [LeaseSpec("lease-snap00000001", "e2b", iid)])
    async with opened(config_for(db, {"e2b": ("e2b", e2b)}), ledger) as c:
        gt = await c.collector.refresh()
        (op,) = await c.ops.execute(c.ops.plan("pause", ["lease-snap"], seen=gt))
        assert op.status is OpStatus.FAILED and "snapshotting" in op.message
        row = lease_row(db, "lease-snap00000001")
        assert row["needs_refresh"] == 1 and "snapshotting" in row["last_error"]
        assert_leon_invariants(db)


# --------------------------------------------------------------------------- read-only, dry run


@pytest.mark.parametrize("how", ["flag", "config"])
async def test_read_only_makes_writes_impossible(
    tmp_path: Path, e2b: E2BDouble, docker: DockerDouble, ledger: Path, how: str
) -> None:
    iid = e2b.add(state="running").instance_id
    orphan = e2b.add(state="paused").instance_id
    d_iid = docker.add(state="running").instance_id
    db = build_db(tmp_path / "sandbox.db", [
        LeaseSpec("lease-e2b000000001", "e2b", iid), LeaseSpec("lease-dock00000001", "docker", d_iid),
    ])  # fmt: skip
    config = config_for(db, {"e2b": ("e2b", e2b), "docker": ("docker", docker)}, read_only=how == "config")
    c = cockpit(config, ledger, **({"read_only": True} if how == "flag" else {}))
    snapshot = sha(db)
    try:
        assert c.ops.read_only and c.ops.writer().read_only
        gt = await c.collector.refresh()
        for action, refs in (
            ("pause", ["lease-e2b000000001", "lease-dock00000001", f"e2b/{orphan}"]),
            ("resume", [f"e2b/{orphan}"]),
            ("destroy", ["lease-e2b000000001", "lease-dock00000001", f"e2b/{orphan}"]),
            ("adopt", [f"e2b/{orphan}"]),
        ):
            plan = c.ops.plan(action, refs, seen=gt)
            assert all(not i.gate.allowed and "read-only" in (i.gate.reason or "") for i in plan.items)
            results = await c.ops.execute(plan)
            assert {r.status for r in results} == {OpStatus.REFUSED}
            # bypassing the plan's gate still cannot write: the core re-checks
            forced = [
                await c.ops._run(Action(action), PlanItem(i.target, Gate(True)), None, False, None)
                for i in plan.items
            ]
            assert {r.status for r in forced} == {OpStatus.REFUSED}
        # a dry run is allowed in read-only mode: it reads, and changes nothing
        dry = c.ops.plan("destroy", ["lease-e2b000000001"], seen=gt, dry_run=True)
        (op,) = await c.ops.execute(dry, dry_run=True)
        assert op.status is OpStatus.PLANNED and "would destroy" in op.message
    finally:
        await c.close()
    assert mutations(e2b) == 0 and mutations(docker) == 0
    assert sha(db) == snapshot
    assert all(a.read_only for a in list_audit(100, path=ledger))


async def test_dry_run_changes_nothing(tmp_path: Path, e2b: E2BDouble, ledger: Path) -> None:
    _iid, db, config = setup_e2b(tmp_path, e2b)
    c = cockpit(config, ledger)
    snapshot = sha(db)
    try:
        gt = await c.collector.refresh()
        plan = c.ops.plan("pause", ["lease-e2b000000001"], seen=gt, dry_run=True)
        (op,) = await c.ops.execute(plan, dry_run=True)
        assert op.status is OpStatus.PLANNED and op.dry_run
    finally:
        await c.close()
    assert mutations(e2b) == 0 and sha(db) == snapshot
    (entry,) = list_audit(5, path=ledger)
    assert entry.dry_run and entry.result == "planned"


# --------------------------------------------------------------------------- adopt


async def test_adopt_orphan_converges_and_attaches_to_a_thread(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    _iid, db, config = setup_e2b(tmp_path, e2b)
    orphan = e2b.add(state="paused").instance_id
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        with pytest.raises(ValueError, match="one lease"):
            await c.ops.execute(
                c.ops.plan("adopt", [f"e2b/{orphan}", "lease-e2b0"], seen=gt, thread_id="t-x")
            )
        refused = await c.ops.execute(c.ops.plan("adopt", [f"e2b/{orphan}"], seen=gt, thread_id="t-one"))
        assert (
            refused[0].status is OpStatus.REFUSED
            and "already has lease lease-e2b000000001" in refused[0].message
        )
        (op,) = await c.ops.execute(c.ops.plan("adopt", [orphan], seen=gt, thread_id="t-new"))
        assert op.status is OpStatus.PENDING and op.new_lease_id and op.adopt_state == "paused"
        row = lease_row(db, op.new_lease_id)
        assert (row["desired_state"], row["observed_state"], row["version"], row["needs_refresh"]) == (
            "paused", "paused", 1, 1,
        )  # fmt: skip
        assert query(
            db, "SELECT thread_id, cwd FROM abstract_terminals WHERE lease_id = ?", op.new_lease_id
        ) == [("t-new", "/home/user")]
        await c.ops.wait_converged(op, WAIT)
        assert op.status is OpStatus.CONVERGED
        gt = await c.collector.refresh()
        assert gt.orphans == () and {r.lease_id: r.thread_id for r in gt.rows}[op.new_lease_id] == "t-new"
        # adopting it again is idempotent: "already", with the lease it is bound to; no DB change
        snapshot, n = sha(db), mutations(e2b)
        for thread in (None, "t-new"):
            (again,) = await c.ops.execute(c.ops.plan("adopt", [f"e2b/{orphan}"], seen=gt, thread_id=thread))
            assert again.status is OpStatus.PENDING and again.outcome == "already", again.message
            assert again.target.lease_id == op.new_lease_id and op.new_lease_id in again.message
            await c.ops.wait_converged(again, WAIT)
            assert again.status is OpStatus.CONVERGED, again.last_reason
        (dry,) = await c.ops.execute(c.ops.plan("adopt", [f"e2b/{orphan}"], seen=gt), dry_run=True)
        assert dry.status is OpStatus.PLANNED and dry.outcome == "already"
        # ... but not onto another thread: that would be a different binding, not a repeat
        (other,) = await c.ops.execute(c.ops.plan("adopt", [f"e2b/{orphan}"], seen=gt, thread_id="t-one"))
        assert other.status is OpStatus.REFUSED
        assert f"already adopted as lease {op.new_lease_id} (on thread t-new)" in other.message
        assert sha(db) == snapshot and mutations(e2b) == n
        assert_leon_invariants(db)


# --------------------------------------------------------------------------- convergence tracking


async def test_contradiction_fails_and_deadline_times_out(
    tmp_path: Path, e2b: E2BDouble, ledger: Path
) -> None:
    iid, _db, config = setup_e2b(tmp_path, e2b)
    async with opened(config, ledger) as c:
        gt = await c.collector.refresh()
        (op,) = await c.ops.execute(c.ops.plan("pause", ["lease-e2b000000001"], seen=gt))
        assert c.ops.tracker.pending_for("lease-e2b000000001") == [op] and op.intended_state == "paused"
        e2b.set_state(iid, "running")  # resumed behind our back before we looked again
        c.ops.tracker.observe(await c.collector.refresh())
        assert op.status is OpStatus.PENDING and op.contradictions == 1  # one look is not enough
        settled = c.ops.tracker.observe(await c.collector.refresh())
        assert (
            settled == [op] and op.status is OpStatus.FAILED and "provider says running" in (op.error or "")
        )

        (op2,) = await c.ops.execute(c.ops.plan("resume", ["lease-e2b000000001"], seen=gt))
        assert op2.status is OpStatus.PENDING and op2.deadline is not None
        assert c.ops.tracker.expire(op2.deadline) == [op2] and op2.status is OpStatus.TIMED_OUT
    by_op = {a.op_id: a for a in list_audit(10, path=ledger)}
    assert by_op[op.op_id].convergence == "failed" and by_op[op2.op_id].convergence == "timed_out"


async def test_secrets_never_reach_results_or_the_audit(tmp_path: Path, ledger: Path) -> None:
    key = "e2b_" + "s3cr3t" * 6
    with E2BDouble(api_key=key) as e2b:  # the double echoes a rejected key in its 401 body
        iid = e2b.add(state="running").instance_id
        db = build_db(tmp_path / "sandbox.db", [LeaseSpec("lease-e2b000000001", "e2b", iid)])
        config = config_for(db, {"e2b": ("e2b", e2b)})
        config.providers["e2b"] = ProviderConfig(
            name="e2b", kind="e2b", api_url=e2b.url, api_key=key, retries=0
        )
        c = cockpit(config, ledger)
        try:
            gt = await c.collector.refresh()
            e2b.faults.auth_fail = True
            (op,) = await c.ops.execute(c.ops.plan("pause", ["lease-e2b000000001"], seen=gt))
            assert op.status is OpStatus.REFUSED and "401" in op.message
            assert key not in repr(op.as_dict())
        finally:
            await c.close()
    for f in tmp_path.glob("ledger.db*"):
        assert key.encode() not in f.read_bytes()
    assert all(key not in repr(a.as_dict()) for a in list_audit(10, path=ledger))
