"""A stale provider's rows follow the clock without being judged again (issue 10, steady CPU):
while a provider's listing keeps failing, each step only moves its rows' `stale_age_s` and the
reason's "unreachable for ..." prefix, and the picture still equals a from-scratch reconcile at
every tick (seconds, minutes, hours: the prefix's text changes at each scale)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opcockpit.adapters.leon.sandbox_changes import SandboxDbTracker
from opcockpit.adapters.leon.sandbox_db import read_db_state
from opcockpit.domain.models import Convergence, NormalState
from opcockpit.domain.reconcile import reconcile
from opcockpit.domain.reconcile_inc import IncrementalReconciler
from tests.test_incremental_property import IIDS, LEASES, PRELUDE, World, _same


def test_stale_rows_are_restamped_and_equal_a_full_reconcile(tmp_path: Path) -> None:
    world = World(tmp_path / "sandbox.db")
    steps = [
        *PRELUDE,
        ("lease", LEASES[3], "docker", IIDS[3], "running", "running"),  # two leases on docker
        ("instance", "docker", IIDS[3], NormalState.RUNNING, None, False),
        ("error", LEASES[0], "boom"),  # a lease note after the stale reason
        ("fail", "docker"),
    ]
    ticks = [1, 1, 3, 30, 30, 60, 600, 3600, 5, 86_400]

    async def run() -> list[int]:
        tracker = SandboxDbTracker(str(world.path), resync_s=10_000)
        inc = IncrementalReconciler()
        judged: list[int] = []
        try:
            for step in [*steps, *(("tick", t) for t in ticks)]:
                world.apply(step)
                db_inc = await tracker.read_state(now=world.now)
                db_full = await read_db_state(str(world.path), now=world.now)
                got = inc.step(db_inc, dict(world.listings), world.now)
                _same(got, reconcile(db_full, world.listings, world.now))
                judged.append(inc.judged)
            stale = [r for r in got.rows if r.convergence is Convergence.STALE]
            assert {r.lease_id for r in stale} == {LEASES[0], LEASES[3]}
            assert all(r.reason.startswith("provider docker unreachable for ") for r in stale)
            assert any("last_error: boom" in r.reason for r in stale)
        finally:
            await tracker.aclose()
            world.conn.close()
        return judged

    judged = asyncio.run(run())
    # The failing step judges docker's leases; the ticks after it judge none.
    assert judged[len(steps) - 1] >= 2
    assert judged[len(steps) :] == [0] * len(ticks)
