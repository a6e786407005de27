"""Operations on the asynchronous providers (Daytona, AgentBay doubles): accepted transitions,
eventually consistent lists, unconfirmed orphans, capability gates."""

from __future__ import annotations

from pathlib import Path

import pytest

from opcockpit.adapters.providers.agentbay import AgentBayAdapter
from opcockpit.doubles.agentbay import AgentBayDouble
from opcockpit.doubles.daytona import DaytonaDouble
from opcockpit.services.operations import Action, OpStatus, Target
from opcockpit.wiring import build_collector, build_operations
from tests.operations_support import (
    KEY,
    LeaseSpec,
    assert_leon_invariants,
    build_db,
    cockpit,
    config_for,
    lease_row,
    mutations,
    sha,
)

WAIT = 15.0


@pytest.fixture
def daytona():
    with DaytonaDouble(transition_s=0.05) as d:
        yield d


async def test_daytona_pause_resume_destroy_converge_through_async_transitions(
    tmp_path: Path, daytona: DaytonaDouble
) -> None:
    iid = daytona.add(state="running").instance_id
    db = build_db(tmp_path / "sandbox.db", [LeaseSpec("lease-dayt00000001", "daytona", iid, thread_id="t-d")])
    c = cockpit(config_for(db, {"daytona": ("daytona", daytona)}), tmp_path / "ledger.db")
    try:
        for action, state in (("pause", "stopped"), ("pause", "stopped"), ("resume", "started")):
            gt = await c.collector.refresh()
            (op,) = await c.ops.execute(c.ops.plan(action, ["lease-dayt"], seen=gt))
            assert op.status is OpStatus.PENDING, op.message
            await c.ops.wait_converged(op, WAIT)
            assert op.status is OpStatus.CONVERGED, op.last_reason
            assert daytona.instances[iid].state == state
        gt = await c.collector.refresh()
        (op,) = await c.ops.execute(c.ops.plan("destroy", ["t-d"], seen=gt))
        assert op.outcome in ("accepted", "done")
        await c.ops.wait_converged(op, WAIT)
        assert op.status is OpStatus.CONVERGED and iid not in daytona.instances
        assert lease_row(db, "lease-dayt00000001")["current_instance_id"] is None
        assert_leon_invariants(db)
    finally:
        await c.close()


async def test_daytona_lagging_list_delays_but_never_fails_a_converging_action(
    tmp_path: Path, daytona: DaytonaDouble
) -> None:
    iid = daytona.add(state="running").instance_id
    db = build_db(tmp_path / "sandbox.db", [LeaseSpec("lease-dayt00000001", "daytona", iid)])
    c = cockpit(config_for(db, {"daytona": ("daytona", daytona)}), tmp_path / "ledger.db")
    try:
        gt = await c.collector.refresh()
        daytona.freeze_list()  # the list keeps saying "started" (daytonaio/daytona#5138)
        (op,) = await c.ops.execute(c.ops.plan("pause", ["lease-dayt00000001"], seen=gt))
        for _ in range(3):
            c.ops.tracker.observe(await c.collector.refresh())
        assert op.status is OpStatus.PENDING and "eventually consistent" in (op.last_reason or "")
        daytona.thaw_list()
        await c.ops.wait_converged(op, WAIT)
        assert op.status is OpStatus.CONVERGED
    finally:
        await c.close()


async def test_daytona_orphan_not_confirmed_by_get_is_refused(tmp_path: Path, daytona: DaytonaDouble) -> None:
    gone = daytona.add(state="running").instance_id
    live = daytona.add(state="running").instance_id
    db = build_db(tmp_path / "sandbox.db", [])
    c = cockpit(config_for(db, {"daytona": ("daytona", daytona)}), tmp_path / "ledger.db")
    try:
        daytona.freeze_list()
        daytona.remove(gone)  # still listed, but GET says 404
        gt = await c.collector.refresh()
        orphans = {o.instance_id: o for o in gt.orphans}
        assert orphans[gone].confirmed is False and orphans[live].confirmed is True
        plan = c.ops.plan("destroy", [gone, live], seen=gt)
        gates = {i.target.instance_id: i.gate for i in plan.items}
        assert not gates[gone].allowed and "not confirmed" in (gates[gone].reason or "")
        n = mutations(daytona)
        refused, done = await c.ops.execute(plan)
        assert refused.status is OpStatus.REFUSED and done.status is OpStatus.PENDING
        assert mutations(daytona) == n + 1  # only the confirmed orphan got a DELETE
        # pausing an orphan that a GET says is gone is refused at execution time too
        op = await c.ops.run("pause", Target.unlisted("daytona", gone))
        assert op.status is OpStatus.REFUSED and "gone at the provider" in op.message
    finally:
        await c.close()


async def test_agentbay_capability_gate_and_destroy(tmp_path: Path) -> None:
    with AgentBayDouble(transition_s=0.05) as ab:
        iid = ab.add(state="running").instance_id
        db = build_db(tmp_path / "sandbox.db", [LeaseSpec("lease-abay00000001", "agentbay", iid)])
        config = config_for(db, {"agentbay": ("agentbay", ab)})
        # LEON's per-config override (supports_pause=false) reaches us through the adapter.
        adapter = AgentBayAdapter("agentbay", base_url=ab.url, api_key=KEY, retries=0, supports_pause=False)
        collector = build_collector(config, adapters={"agentbay": adapter})
        ops = build_operations(config, collector=collector, operator="alice@testhost")
        try:
            gt = await collector.refresh()
            snapshot = sha(db)
            (op,) = await ops.execute(ops.plan(Action.PAUSE, ["lease-abay"], seen=gt))
            assert op.status is OpStatus.REFUSED and "does not support pause" in op.message
            assert sha(db) == snapshot
            (op,) = await ops.execute(ops.plan(Action.DESTROY, ["lease-abay"], seen=gt))
            assert op.status is OpStatus.PENDING, op.message
            await ops.wait_converged(op, WAIT)
            assert op.status is OpStatus.CONVERGED
            assert_leon_invariants(db)
        finally:
            await collector.aclose()
