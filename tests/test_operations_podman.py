"""Operations against a real Docker-API engine (podman, tests/fixtures/podman.py): LEON-made
containers, each action and its repeat, orphan destroy, adopt, convergence within one refresh."""

from __future__ import annotations

from pathlib import Path

import pytest

from opcockpit.services.operations import OpStatus
from opcockpit.settings.config import CockpitConfig, ProviderConfig, SourcesConfig
from tests.fixtures.podman import PodmanEngine, podman_engine, podman_leon  # noqa: F401
from tests.operations_support import LeaseSpec, assert_leon_invariants, build_db, cockpit, lease_row, sha

pytestmark = pytest.mark.podman
WAIT = 30.0
LEASE = "lease-podm00000001"


def config(db: Path, engine: PodmanEngine) -> CockpitConfig:
    docker = ProviderConfig(name="docker", kind="docker", host=engine.host, retries=0, timeout_s=20)
    return CockpitConfig(sources=SourcesConfig(sandbox_db=db), providers={"docker": docker}, refresh_s=0.5)


async def test_podman_each_action_and_its_repeat(tmp_path: Path, podman_leon: PodmanEngine) -> None:  # noqa: F811
    box = podman_leon.run_leon(lease_id=LEASE)
    db = build_db(tmp_path / "sandbox.db", [LeaseSpec(LEASE, "docker", box.name, thread_id="t-podman")])
    c = cockpit(config(db, podman_leon), tmp_path / "ledger.db")
    try:
        for action, engine_state in (("pause", "paused"), ("resume", "running"), ("destroy", None)):
            for attempt in (1, 2):
                gt = await c.collector.refresh()
                (op,) = await c.ops.execute(c.ops.plan(action, [LEASE], seen=gt))
                assert op.status is OpStatus.PENDING, op.message
                assert op.outcome == ("done" if attempt == 1 else "already"), op.message
                assert podman_leon.state_of(box.name) == engine_state
                # one refresh after the action is enough to confirm it
                c.ops.tracker.observe(await c.collector.refresh())
                assert op.status is OpStatus.CONVERGED, op.last_reason
        row = lease_row(db, LEASE)
        assert (row["desired_state"], row["observed_state"], row["current_instance_id"]) == (
            "destroyed",
            "detached",
            None,
        )
        assert_leon_invariants(db)
    finally:
        await c.close()


async def test_podman_orphan_destroy_and_adopt(tmp_path: Path, podman_leon: PodmanEngine) -> None:  # noqa: F811
    stray = podman_leon.run_leon()
    keep = podman_leon.run_leon(state="paused")
    db = build_db(tmp_path / "sandbox.db", [])
    c = cockpit(config(db, podman_leon), tmp_path / "ledger.db")
    try:
        gt = await c.collector.refresh()
        assert {o.instance_id for o in gt.orphans} >= {stray.name, keep.name}
        snapshot = sha(db)
        (kill,) = await c.ops.execute(c.ops.plan("destroy", [f"docker/{stray.name}"], seen=gt))
        assert kill.status is OpStatus.PENDING and podman_leon.state_of(stray.name) is None
        assert sha(db) == snapshot
        (adopt,) = await c.ops.execute(
            c.ops.plan("adopt", [f"docker/{keep.name}"], seen=gt, thread_id="t-new")
        )
        assert adopt.status is OpStatus.PENDING and adopt.adopt_state == "paused", adopt.message
        c.ops.tracker.observe(await c.collector.refresh())
        assert kill.status is OpStatus.CONVERGED and adopt.status is OpStatus.CONVERGED
        (again,) = await c.ops.execute(c.ops.plan("destroy", [f"docker/{stray.name}"], seen=gt))
        assert again.outcome == "already"
        # the adopted lease is an ordinary lease now: resume it through the lease id
        gt = await c.collector.refresh()
        (res,) = await c.ops.execute(c.ops.plan("resume", [adopt.new_lease_id], seen=gt))
        await c.ops.wait_converged(res, WAIT)
        assert res.status is OpStatus.CONVERGED and podman_leon.state_of(keep.name) == "running"
        assert_leon_invariants(db)
    finally:
        await c.close()
