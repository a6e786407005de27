"""FleetCollector against a real LEON-schema DB and a real E2B double on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from opcockpit.domain.models import Convergence, Instance, NormalState, ProviderStatus
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.ports.provider import Capabilities
from opcockpit.settings.config import CockpitConfig, ProviderConfig, SourcesConfig
from opcockpit.wiring import build_collector
from tests.cli_support import build_leon_db

KEY = "e2b_collector_test_key_0123456789"
KEY_ENV = "OPCOCKPIT_TEST_E2B_KEY"


@pytest.fixture
def double():
    with E2BDouble(api_key=KEY) as d:
        yield d


def make_config(db: Path, url: str | None, **extra) -> CockpitConfig:
    providers = {"local": ProviderConfig(name="local", kind="local")}
    if url is not None:
        providers["e2b"] = ProviderConfig(
            name="e2b", kind="e2b", api_url=url, api_key_env=KEY_ENV, retries=0, timeout_s=2
        )
    return CockpitConfig(sources=SourcesConfig(sandbox_db=db), providers=providers, **extra)


def paced_e2b_collector(db: Path, double: E2BDouble, clock: list[float]):
    """A live (paced) collector of `db` and the double, E2B listed every 30 s of `clock[0]`."""
    cfg = make_config(db, double.url)
    cfg.providers["e2b"] = cfg.providers["e2b"].model_copy(update={"list_interval_s": 30.0})
    collector = build_collector(cfg)
    collector.paced = True
    collector._monotonic = lambda: clock[0]
    return collector


def by_lease(gt):
    return {r.lease_id: r for r in gt.rows}


def health(gt):
    return {p.name: p for p in gt.providers}


async def test_refresh_then_failure_keeps_last_good_listing_as_stale(
    tmp_path: Path, double: E2BDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    iid = double.add(state="running").instance_id
    orphan_id = double.add(state="running").instance_id
    db = build_leon_db(
        tmp_path / "sandbox.db",
        [
            ("lease-e2b000000001", "e2b", iid, "running", "running"),
            ("lease-local0000001", "local", "leon-lease-local0000001", "running", "running"),
            ("lease-dock00000001", "docker", "leon-abc", "running", "running"),
        ],
    )
    collector = build_collector(make_config(db, double.url))
    try:
        gt = await collector.refresh()
        rows, hp = by_lease(gt), health(gt)
        assert hp["e2b"].status is ProviderStatus.OK and hp["e2b"].instance_count == 2
        assert hp["local"].status is ProviderStatus.DB_ONLY
        assert hp["docker"].status is ProviderStatus.ERROR
        assert hp["docker"].error == "provider 'docker' is not configured"
        assert rows["lease-e2b000000001"].convergence is Convergence.CONVERGED
        assert rows["lease-e2b000000001"].provider_state == "running"
        assert rows["lease-dock00000001"].convergence is Convergence.STALE
        assert [o.instance_id for o in gt.orphans] == [orphan_id]
        first_listed = collector.listings["e2b"].listed_at
        assert "e2b" in collector.adapters and collector.last_ground_truth is gt

        double.faults.error_status = 503
        gt2 = await collector.refresh()
        rows2, hp2 = by_lease(gt2), health(gt2)
        assert hp2["e2b"].status is ProviderStatus.STALE
        assert hp2["e2b"].listed_at == first_listed and hp2["e2b"].instance_count == 2
        assert hp2["e2b"].error and "\n" not in hp2["e2b"].error and KEY not in hp2["e2b"].error
        stale = rows2["lease-e2b000000001"]
        assert stale.convergence is Convergence.STALE and stale.stale_age_s is not None
        assert gt2.orphans == ()  # a failed listing produces no orphans
        assert len(gt2.rows) == 3  # never gone

        double.faults.clear()
        gt3 = await collector.refresh()
        assert health(gt3)["e2b"].status is ProviderStatus.OK
        assert health(gt3)["e2b"].listed_at > first_listed
    finally:
        await collector.aclose()


async def test_missing_key_names_the_env_var_and_rows_go_stale(tmp_path: Path, double: E2BDouble) -> None:
    db = build_leon_db(tmp_path / "sandbox.db", [("lease-e2b000000001", "e2b", "i-1", "running", "running")])
    collector = build_collector(make_config(db, double.url))
    try:
        gt = await collector.refresh()
    finally:
        await collector.aclose()
    h = health(gt)["e2b"]
    assert h.status is ProviderStatus.ERROR
    assert f"${KEY_ENV}" in (h.error or "")
    assert gt.rows[0].convergence is Convergence.STALE


async def test_rejected_key_never_leaks_into_errors(
    tmp_path: Path, double: E2BDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    double.faults.auth_fail = True  # the double echoes the credential in its 401 body
    db = build_leon_db(tmp_path / "sandbox.db", [("lease-e2b000000001", "e2b", "i-1", "running", "running")])
    collector = build_collector(make_config(db, double.url))
    try:
        gt = await collector.refresh()
    finally:
        await collector.aclose()
    h = health(gt)["e2b"]
    assert h.status is ProviderStatus.ERROR and h.error
    assert KEY not in h.error and KEY not in repr(gt)


async def test_listing_timeout_is_one_line(tmp_path: Path, double: E2BDouble, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    double.faults.list_delay_s = 3.0
    db = build_leon_db(tmp_path / "sandbox.db", [("lease-e2b000000001", "e2b", "i-1", "running", "running")])
    collector = build_collector(make_config(db, double.url, list_timeout_s=0.3))
    try:
        gt = await collector.refresh()
    finally:
        await collector.aclose()
    assert health(gt)["e2b"].error == "listing timed out after 0.3s"


class GatedAdapter:
    """A provider stand-in whose listing waits on an event (to hold a refresh in flight)."""

    kind = "e2b"
    capabilities = Capabilities()

    def __init__(self, name: str) -> None:
        self.name = name
        self.gate = asyncio.Event()
        self.calls = 0
        self.closed = False

    async def list_instances(self) -> list[Instance]:
        self.calls += 1
        await self.gate.wait()
        return [Instance(self.name, "i-1", "running", NormalState.RUNNING)]

    @property
    def request_count(self) -> int:
        return self.calls

    async def aclose(self) -> None:
        self.closed = True


async def test_single_flight_joins_running_refresh(tmp_path: Path) -> None:
    db = build_leon_db(tmp_path / "sandbox.db", [("lease-e2b000000001", "e2b", "i-1", "running", "running")])
    adapter = GatedAdapter("e2b")
    collector = build_collector(make_config(db, "http://127.0.0.1:9"), adapters={"e2b": adapter})
    first = asyncio.ensure_future(collector.refresh())
    await asyncio.sleep(0.05)
    assert collector.refreshing
    second = asyncio.ensure_future(collector.refresh())
    await asyncio.sleep(0.05)
    adapter.gate.set()
    gt1, gt2 = await asyncio.gather(first, second)
    assert gt1 is gt2 and adapter.calls == 1 and collector.refresh_count == 1
    assert gt1.rows[0].convergence is Convergence.CONVERGED
    await collector.refresh()
    assert adapter.calls == 2
    await collector.aclose()
    assert adapter.closed


async def test_provider_filter_and_disabled(tmp_path: Path) -> None:
    db = build_leon_db(tmp_path / "sandbox.db")
    cfg = make_config(db, None)
    cfg.providers["e2b"] = ProviderConfig(name="e2b", kind="e2b", enabled=False)
    collector = build_collector(cfg, providers=["local", "e2b"])
    try:
        gt = await collector.refresh()
    finally:
        await collector.aclose()
    h = health(gt)
    assert h["local"].status is ProviderStatus.DB_ONLY
    assert h["e2b"].error == "provider 'e2b' is disabled in the config"
    assert "docker" not in collector.listings  # filtered out: never listed, never reported as ours


def _daytona_config(db: Path, api_url: str, **provider: Any) -> CockpitConfig:
    """sandbox.db and one Daytona provider named "day" (its double's API URL)."""
    day = ProviderConfig(
        name="day", kind="daytona", api_url=api_url, api_key_env=KEY_ENV, retries=0, **provider
    )
    return CockpitConfig(sources=SourcesConfig(sandbox_db=db), providers={"day": day})


async def test_eventually_consistent_orphans_are_confirmed_by_get(tmp_path: Path, monkeypatch) -> None:
    from opcockpit.doubles.daytona import DaytonaDouble

    monkeypatch.setenv(KEY_ENV, KEY)
    db = build_leon_db(tmp_path / "sandbox.db", [("lease-day000000001", "day", None, "running", "detached")])
    with DaytonaDouble(api_key=KEY) as double:
        real = double.add(state="running").instance_id
        ghost = double.add(state="running").instance_id
        double.freeze_list()  # the list keeps showing the ghost after it is gone (eventual consistency)
        double.remove(ghost)
        collector = build_collector(_daytona_config(db, double.api_url))
        try:
            gt = await collector.refresh()
            requests_after_first = collector.adapters["day"].request_count
            gt2 = await collector.refresh()
        finally:
            await collector.aclose()
    confirmed = {o.instance_id: o.confirmed for o in gt.orphans}
    assert confirmed == {real: True, ghost: False}
    assert {o.instance_id: o.confirmed for o in gt2.orphans} == confirmed
    # the second refresh re-checks only the still-unconfirmed ghost, not the confirmed orphan
    assert collector.adapters["day"].request_count - requests_after_first == 2  # 1 list + 1 GET


async def test_only_confirmed_providers_bound_ids_are_indexed(tmp_path: Path, monkeypatch) -> None:
    """Issue 10 (RSS): the instance ids leases are bound to are indexed for the eventually
    consistent providers whose orphans are confirmed, not for every provider (a set of every
    other provider's ids was kept for nothing); a bound instance is no orphan candidate."""
    from opcockpit.doubles.daytona import DaytonaDouble

    monkeypatch.setenv(KEY_ENV, KEY)
    with DaytonaDouble(api_key=KEY) as double:
        bound = double.add(state="running").instance_id
        loose = double.add(state="running").instance_id
        db = build_leon_db(
            tmp_path / "sandbox.db",
            [
                ("lease-day000000001", "day", bound, "running", "running"),
                ("lease-loc000000001", "local", "loc-1", "running", "running"),
            ],
        )
        collector = build_collector(_daytona_config(db, double.api_url))
        try:
            gt = await collector.refresh()
        finally:
            await collector.aclose()
    assert collector._bound is not None and collector._bound[1] == {"day": {bound}}
    assert {o.instance_id: o.confirmed for o in gt.orphans} == {loose: True}


async def test_a_quiet_paced_refresh_hands_the_same_confirmed_listing_on(tmp_path: Path, monkeypatch) -> None:
    """Issue 10 (idle tick): between listings, an eventually consistent provider's listing with
    its confirmed orphans is the same object refresh after refresh (a new copy each time made
    the incremental step re-diff the provider every tick); a GET that changes it makes a new one."""
    from opcockpit.doubles.daytona import DaytonaDouble

    monkeypatch.setenv(KEY_ENV, KEY)
    db = build_leon_db(tmp_path / "sandbox.db", [("lease-day000000001", "day", None, "running", "detached")])
    with DaytonaDouble(api_key=KEY) as double:
        real = double.add(state="running").instance_id
        collector = build_collector(_daytona_config(db, double.api_url, list_interval_s=300.0))
        collector.paced = True
        try:
            await collector.refresh()
            first = collector.listings["day"]
            gt = await collector.refresh()
            assert collector.listings["day"] is first and first.confirmed_orphans == {real}
            assert [o.instance_id for o in gt.orphans if o.confirmed] == [real]
            double.set_state(real, "stopped")
            await collector.look("day", [real])
            await collector.refresh()
            assert collector.listings["day"] is not first
            assert collector.listings["day"].confirmed_orphans == {real}
        finally:
            await collector.aclose()


async def test_paced_collector_lists_per_interval_and_look_gets_the_changed_instance(
    tmp_path: Path, double: E2BDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10: with pacing the provider is listed in full once per list_interval_s; an event (or
    an action) makes `look()` GET just that instance into the listing, seen on the next refresh;
    the listing keeps the adapter's kind facts, also when it failed; the rows equal a full
    reconcile of the same inputs after every refresh."""
    from opcockpit.domain.reconcile import reconcile

    monkeypatch.setenv(KEY_ENV, KEY)
    iid = double.add(state="running").instance_id
    db = build_leon_db(tmp_path / "sandbox.db", [("lease-e2b000000001", "e2b", iid, "running", "running")])
    clock = [0.0]
    collector = paced_e2b_collector(db, double, clock)
    try:
        await collector.refresh()
        adapter = collector.adapters["e2b"]
        sent = adapter.request_count
        double.set_state(iid, "paused")
        gt = await collector.refresh()  # not due: no request, the last listing is reused
        assert adapter.request_count == sent
        assert by_lease(gt)["lease-e2b000000001"].provider_state == "running"

        assert await collector.look("e2b", [iid]) == 1  # the event said: this instance changed
        assert adapter.request_count == sent + 1  # one GET, no listing
        gt = await collector.refresh()
        row = by_lease(gt)["lease-e2b000000001"]
        assert row.provider_state == "paused" and "E2B auto-pause?" in row.reason
        assert gt == reconcile(collector.last_db_state, collector.listings, gt.generated_at)

        clock[0] = 31.0  # due: a full listing, which fails -> last good listing, with its kind facts
        double.faults.error_status = 503
        gt = await collector.refresh()
        listing = collector.listings["e2b"]
        assert not listing.ok and listing.paused_hint == "E2B auto-pause?"
        assert by_lease(gt)["lease-e2b000000001"].convergence is Convergence.STALE
        assert gt.orphans == ()
        assert gt == reconcile(collector.last_db_state, collector.listings, gt.generated_at)
    finally:
        await collector.aclose()
