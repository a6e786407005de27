"""Contract (issue 10, 50k leases): a listing hands back the previous listing's Instance objects for
instances that did not change (`wire.ReusedInstances`), and a rebuilt one for anything that did.

Mixed into `AdapterContract`, so every provider's test module runs it against its double. What
may never happen: a changed instance (state, labels) served from the previous listing, or a
reused listing that differs from what a fresh adapter lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from opcockpit.domain.models import NormalState

Seed = Callable[..., str]


def _by_id(listing: list[Any]) -> dict[str, Any]:
    return {i.instance_id: i for i in listing}


class ReuseContract:
    # AgentBay's labels come from its label cache (GetLabel), not from the listing: a label
    # edited behind its back shows after label_ttl_s, by design (see agentbay.py).
    labels_from_listing: bool = True
    # Whole pages handed back undecoded when their bytes repeat (issue 10, idle tick); AgentBay
    # lists sessions and labels by API calls, not pages of instances.
    pages_reused: bool = True

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

    async def test_a_page_of_the_same_bytes_is_not_decoded_again(self, adapter: Any, seed: Seed) -> None:
        reuse = getattr(adapter, "_reuse", None)
        if not self.pages_reused or reuse is None:
            pytest.skip("this adapter does not list pages of instances")
        for i in range(3):
            seed("running", {"lease_id": f"L{i}", "owner": "pages"})
        first = await adapter.list_instances()
        hits = reuse.page_hits
        second = await adapter.list_instances()
        assert reuse.page_hits > hits  # nothing changed: no page decoded
        assert len(second) == len(first) and all(a is b for a, b in zip(first, second, strict=True))
        seed("running", {"lease_id": "L-new", "owner": "pages"})
        third = await adapter.list_instances()  # a page that changed is decoded
        assert "L-new" in {i.claimed_lease_id for i in third} and len(third) == len(first) + 1

    async def test_pages_repeat_whatever_cursor_led_to_them(self, make_adapter: Any, seed: Seed) -> None:
        """A provider's cursor may name the listing (the doubles' do): a page is known by its
        position and its bytes, so every page of a repeated listing is handed back."""
        for i in range(5):
            seed("running", {"lease_id": f"P{i}", "owner": "pages"})
        try:
            adapter = make_adapter(page_size=2) if self.pages_reused else None
        except TypeError:  # no pages (Docker lists in one answer)
            adapter = None
        reuse = getattr(adapter, "_reuse", None)
        if adapter is None or reuse is None or getattr(adapter, "page_size", None) != 2:
            pytest.skip("this adapter does not list pages of instances")
        first = await adapter.list_instances()
        hits = reuse.page_hits
        second = await adapter.list_instances()
        assert reuse.page_hits - hits >= 3  # >= 5 instances, 2 a page
        assert [i.instance_id for i in second] == [i.instance_id for i in first]
        assert all(a is b for a, b in zip(first, second, strict=True))
        fresh = await make_adapter(page_size=2).list_instances()
        assert second == fresh
