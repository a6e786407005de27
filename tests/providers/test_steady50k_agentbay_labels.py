"""AgentBay's label cache at scale (issue 10, 50k leases): a cold listing cut short keeps the labels
it already fetched, so the next attempt fetches only the rest instead of starting over.

Before, labels were cached only once every GetLabel of a listing had answered: a cold listing that
outlasted the collector's list timeout (or hit one 503) threw all of them away and started from
zero at the next listing interval, forever (42 % of the cockpit's CPU at 50k leases)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from opcockpit.adapters.providers.agentbay import AgentBayAdapter
from opcockpit.doubles.agentbay import AgentBayDouble
from opcockpit.doubles.base import Request
from opcockpit.ports.provider import ProviderError

SECRET = "ab-Zq7xSECRETvalue-0042"
SESSIONS = 12


@pytest.fixture
def double() -> Iterator[AgentBayDouble]:
    with AgentBayDouble(api_key=SECRET, transition_s=0.05) as d:
        for i in range(SESSIONS):
            d.add(labels={"lease_id": f"L{i}"})
        yield d


@pytest.fixture
async def make_adapter(double: AgentBayDouble) -> AsyncIterator[Callable[..., AgentBayAdapter]]:
    made: list[AgentBayAdapter] = []

    def _make(**kw: Any) -> AgentBayAdapter:
        kw.setdefault("page_size", 5)
        a = AgentBayAdapter("agentbay", base_url=double.url, api_key=SECRET, **kw)
        made.append(a)
        return a

    yield _make
    for a in made:
        await a.aclose()


def _fail_after_getlabels(double: AgentBayDouble, n: int) -> None:
    """From the (n+1)-th GetLabel on, every request answers 500 (not retried: fails the listing)."""
    seen = 0

    def hook(request: Request) -> None:
        nonlocal seen
        if request.headers.get("x-acs-action") == "GetLabel":
            seen += 1
            if seen >= n:
                double.faults.error_status = 500

    double.faults.on_request = hook


async def test_failed_cold_listing_keeps_the_labels_it_fetched(
    make_adapter: Callable[..., AgentBayAdapter], double: AgentBayDouble
) -> None:
    adapter = make_adapter(max_concurrency=1)  # one at a time: exactly 4 answered before the 500s
    _fail_after_getlabels(double, 4)
    with pytest.raises(ProviderError):
        await adapter.list_instances()
    assert adapter.requests_by_action["GetLabel"] == 5  # 4 answered, the 5th met the 500
    assert len(adapter._label_cache) == 4

    double.faults.clear()
    listing = await adapter.list_instances()
    assert len(listing) == SESSIONS
    assert adapter.requests_by_action["GetLabel"] == 5 + (SESSIONS - 4)  # only the rest
    assert {i.claimed_lease_id for i in listing} == {f"L{i}" for i in range(SESSIONS)}


async def test_cancelled_cold_listing_keeps_the_labels_it_fetched(
    make_adapter: Callable[..., AgentBayAdapter], double: AgentBayDouble
) -> None:
    adapter = make_adapter(max_concurrency=2)
    double.faults.latency_s = 0.02  # slow enough to cancel it halfway
    task = asyncio.ensure_future(adapter.list_instances())
    while len(adapter._label_cache) < 3:
        assert not task.done(), "the listing finished before it could be cut short"
        await asyncio.sleep(0.005)
    task.cancel()  # what the collector's list timeout does
    with pytest.raises(asyncio.CancelledError):
        await task
    cached = len(adapter._label_cache)
    assert 3 <= cached < SESSIONS
    asked = adapter.requests_by_action["GetLabel"]

    double.faults.clear()
    listing = await adapter.list_instances()
    assert len(listing) == SESSIONS
    assert adapter.requests_by_action["GetLabel"] - asked == SESSIONS - cached


async def test_failed_listing_does_not_prune_the_cache(
    make_adapter: Callable[..., AgentBayAdapter], double: AgentBayDouble
) -> None:
    """A listing that fails says nothing about which sessions are gone: the warm cache stays."""
    adapter = make_adapter()
    await adapter.list_instances()
    assert len(adapter._label_cache) == SESSIONS
    double.faults.fail_page = 2
    with pytest.raises(ProviderError):
        await adapter.list_instances()
    assert len(adapter._label_cache) == SESSIONS
    double.faults.clear()
    before = adapter.requests_by_action["GetLabel"]
    await adapter.list_instances()
    assert adapter.requests_by_action["GetLabel"] == before  # warm: pages only


async def test_label_expiry_is_spread_over_half_to_the_whole_ttl(
    make_adapter: Callable[..., AgentBayAdapter],
) -> None:
    """Labels fetched in one cold burst must not all expire in one burst either."""
    adapter = make_adapter(label_ttl_s=1000.0)
    await adapter.list_instances()
    now = time.monotonic()
    lifetimes = [expiry - now for _, expiry in adapter._label_cache.values()]
    assert all(490.0 <= life <= 1000.0 for life in lifetimes)
    assert max(lifetimes) - min(lifetimes) > 50.0  # jittered, not one instant
