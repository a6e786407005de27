"""Paced listings at scale (issue 10, 50k leases): a full listing slower than the refresh runs as
its own task; refreshes meanwhile go on with the current listing and never start a second one;
the result lands on a later refresh; the next listing is due `list_interval_s` after the slow one
*ended* (no pile-up); an action's relist() cancels a listing that may predate it and lists anew.
Staleness stays: a slow listing that fails keeps the last good instances, no orphans."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opcockpit.domain.models import Convergence
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.services.collect import FleetCollector
from opcockpit.wiring import build_collector
from tests.cli_support import build_leon_db
from tests.test_snapshot_collector import KEY, KEY_ENV, by_lease, make_config

LEASE = "lease-e2b000000001"


@pytest.fixture
def double():
    with E2BDouble(api_key=KEY) as d:
        yield d


async def _paced(tmp_path: Path, double: E2BDouble, clock: list[float]) -> tuple[FleetCollector, str]:
    iid = double.add(state="running").instance_id
    db = build_leon_db(tmp_path / "sandbox.db", [(LEASE, "e2b", iid, "running", "running")])
    cfg = make_config(db, double.url)
    cfg.providers["e2b"] = cfg.providers["e2b"].model_copy(update={"list_interval_s": 30.0})
    collector = build_collector(cfg)
    collector.paced = True
    collector._monotonic = lambda: clock[0]
    collector.listing_grace_s = 0.05  # the double answers the listing 1 s late: never within this
    await collector.refresh()  # the first listing: inline
    return collector, iid


async def _landed(collector: FleetCollector) -> None:
    for task in list(collector._listing_tasks.values()):
        await asyncio.wait({task})


async def test_slow_listing_does_not_hold_refreshes_and_lands_later(
    tmp_path: Path, double: E2BDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    clock = [0.0]
    collector, iid = await _paced(tmp_path, double, clock)
    try:
        adapter = collector.adapters["e2b"]
        double.set_state(iid, "paused")
        double.faults.list_delay_s = 1.0
        clock[0] = 31.0  # due
        sent = adapter.request_count
        gt = await collector.refresh()  # starts the listing, does not wait for it
        assert by_lease(gt)[LEASE].provider_state == "running"
        assert set(collector._listing_tasks) == {"e2b"}
        clock[0] = 62.0  # even "due again" while it runs: no second listing
        gt = await collector.refresh()
        assert by_lease(gt)[LEASE].provider_state == "running"
        await _landed(collector)
        assert adapter.request_count == sent + 1  # one page, one listing

        gt = await collector.refresh()  # the landed listing
        assert by_lease(gt)[LEASE].provider_state == "paused"
        assert not collector._listing_tasks
        double.faults.list_delay_s = 0.0
        clock[0] = 62.0 + 29.0  # 29 s after the slow listing ended (91 s after it began): not due
        await collector.refresh()
        assert adapter.request_count == sent + 1
        assert not collector._listing_tasks
    finally:
        await collector.aclose()


async def test_slow_failing_listing_keeps_last_good_as_stale(
    tmp_path: Path, double: E2BDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    clock = [0.0]
    collector, _ = await _paced(tmp_path, double, clock)
    try:
        double.faults.list_delay_s = 1.0
        double.faults.fail_page = 1
        clock[0] = 31.0
        await collector.refresh()
        await _landed(collector)
        gt = await collector.refresh()
        assert not collector.listings["e2b"].ok
        assert by_lease(gt)[LEASE].convergence is Convergence.STALE
        assert gt.orphans == ()
    finally:
        await collector.aclose()


async def test_relist_cancels_a_listing_in_flight_and_lists_after_the_action(
    tmp_path: Path, double: E2BDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    clock = [0.0]
    collector, iid = await _paced(tmp_path, double, clock)
    try:
        double.faults.list_delay_s = 1.0
        clock[0] = 31.0
        await collector.refresh()  # a listing from before the action is in flight
        (stale,) = collector._listing_tasks.values()
        double.faults.list_delay_s = 0.0
        double.set_state(iid, "paused")  # the action
        collector.relist("e2b")
        gt = await collector.refresh()  # lists anew, inline, within this refresh
        assert stale.cancelled()
        assert by_lease(gt)[LEASE].provider_state == "paused"
        assert not collector._listing_tasks
    finally:
        await collector.aclose()


async def test_a_quiet_full_listing_hands_over_the_last_tuple_and_a_change_a_new_one(
    tmp_path: Path, double: E2BDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10: the adapter hands back the very Instances of an unchanged sandbox, and the
    collector then the last listing's tuple itself, so the incremental step knows the provider
    unchanged by identity (services/collect._same_or_new)."""
    monkeypatch.setenv(KEY_ENV, KEY)
    clock = [0.0]
    collector, iid = await _paced(tmp_path, double, clock)
    try:
        first = collector.listings["e2b"]
        collector.relist("e2b")
        await collector.refresh()
        second = collector.listings["e2b"]
        assert second is not first and second.instances is first.instances
        double.add(state="paused")
        collector.relist("e2b")
        gt = await collector.refresh()
        third = collector.listings["e2b"]
        assert third.instances is not first.instances and len(third.instances) == 2
        kept = {i.instance_id: i for i in third.instances}
        assert kept[iid] is first.instances[0]  # the unchanged one, as it was
        assert [o.instance_id for o in gt.orphans] == [i for i in kept if i != iid]
    finally:
        await collector.aclose()
