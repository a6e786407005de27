"""Contract (issue 10, 50k leases): a listing hands back the previous listing's Instance objects for
instances that did not change (`wire.ReusedInstances`), and a rebuilt one for anything that did.

Mixed into `AdapterContract`, so every provider's test module runs it against its double. What
may never happen: a changed instance (state, labels) served from the previous listing, or a
reused listing that differs from what a fresh adapter lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opcockpit.domain.models import NormalState

Seed = Callable[..., str]


def _by_id(listing: list[Any]) -> dict[str, Any]:
    return {i.instance_id: i for i in listing}


class ReuseContract:
    # AgentBay's labels come from its label cache (GetLabel), not from the listing: a label
    # edited behind its back shows after label_ttl_s, by design (see agentbay.py).
    labels_from_listing: bool = True

    async def test_unchanged_instances_are_the_previous_objects(self, adapter: Any, seed: Seed) -> None:
        ids = [seed("running", {"lease_id": f"L{i}", "owner": "reuse"}) for i in range(4)]
        first = _by_id(await adapter.list_instances())
        second = _by_id(await adapter.list_instances())
        assert set(ids) <= set(second)
        assert all(second[iid] is first[iid] for iid in ids)

    async def test_changed_instances_are_rebuilt_and_equal_a_fresh_listing(
        self, adapter: Any, make_adapter: Any, double: Any, seed: Seed, set_state: Any, vanish: Any
    ) -> None:
        paused, gone, kept, relabelled = (
            seed("running", {"lease_id": f"L{i}", "owner": "reuse"}) for i in range(4)
        )
        first = _by_id(await adapter.list_instances())
        set_state(paused, "paused")
        vanish(gone)
        if self.labels_from_listing:
            inst = double.instances[relabelled]
            inst.labels = {**inst.labels, "owner": "changed"}
        newcomer = seed("running", {"lease_id": "L-new"})

        second = _by_id(await adapter.list_instances())
        assert second[kept] is first[kept]
        assert second[paused] is not first[paused]
        assert second[paused].state is not NormalState.RUNNING
        assert gone not in second
        assert second[newcomer].claimed_lease_id == "L-new"
        if self.labels_from_listing:
            assert second[relabelled] is not first[relabelled]
            assert second[relabelled].labels["owner"] == "changed"

        fresh = _by_id(await make_adapter().list_instances())
        assert second == fresh  # reuse never changes what is listed
