"""LedgerWatch (issue 10/13): a webhook stored in the event ledger by `opcockpit serve` makes a
running cockpit look at just that instance. Real parts: a LEON-schema sandbox.db, the E2B double
on 127.0.0.1 behind the real adapter, the real event ledger file, the cockpit built by the wiring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opcockpit.domain.events import EventSource, InstanceStateChanged, InstanceView, ProviderEvent
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.services.ledger_watch import LedgerWatch, instances_named
from opcockpit.settings.config import CockpitConfig, ProviderConfig, SourcesConfig
from opcockpit.wiring import build_cockpit, build_ledger_watch
from tests.cli_support import build_leon_db

KEY = "e2b_ledger_watch_key_0123456789"
KEY_ENV = "OPCOCKPIT_TEST_E2B_KEY"
LEASE = "lease-e2b000000001"
LIST_ROUTE = "GET ^/v2/sandboxes$"


def get_calls(double: E2BDouble) -> int:
    return sum(n for k, n in double.requests_by_route.items() if k.startswith("GET ^/sandboxes/"))


def webhook(provider: str, iid: str, *, at: datetime | None = None, state: str = "paused") -> ProviderEvent:
    """What `opcockpit serve` appends for an accepted E2B lifecycle webhook."""
    return ProviderEvent(
        observed_at=at or datetime.now(UTC), source=EventSource.PROVIDER_EVENT, provider=provider,
        instance_id=iid, after={"event": f"sandbox.lifecycle.{state}"},
        data={"via": "webhook", "event_type": f"sandbox.lifecycle.{state}", "payload": {"sandboxId": iid}},
    )  # fmt: skip


def serve_append(tmp_path: Path, events: list[ProviderEvent]) -> None:
    """What `opcockpit serve` does: append on its own connection to the cockpit's ledger."""
    from opcockpit.adapters.ledger.events import EventLog

    serve = EventLog(tmp_path / "ledger.db")
    try:
        serve.append(events)
    finally:
        serve.close()


@pytest.fixture
def double(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with E2BDouble(api_key=KEY) as d:
        yield d


def live_cockpit(tmp_path: Path, double: E2BDouble, iid: str):
    db = build_leon_db(tmp_path / "sandbox.db", [(LEASE, "e2b", iid, "running", "running")])
    cfg = CockpitConfig(
        sources=SourcesConfig(sandbox_db=db),
        providers={"e2b": ProviderConfig(name="e2b", kind="e2b", api_url=double.url, api_key_env=KEY_ENV,
                                         retries=0, timeout_s=2, list_interval_s=600)},
    )  # fmt: skip
    return build_cockpit(cfg, ledger_path=tmp_path / "ledger.db", live=True)


async def test_a_stored_webhook_looks_at_its_instance_without_a_listing(
    tmp_path: Path, double: E2BDouble
) -> None:
    iid = double.add(state="running").instance_id
    cockpit = live_cockpit(tmp_path, double, iid)
    changed: list[frozenset[str]] = []
    watch = build_ledger_watch(cockpit, on_change=changed.append)
    assert isinstance(watch, LedgerWatch)
    try:
        gt = await cockpit.collector.refresh()
        assert {r.lease_id: r.provider_state for r in gt.rows} == {LEASE: "running"}
        assert await watch.poll() == 0 and changed == []  # nothing appended: nothing to do
        lists, gets = double.requests_by_route.get(LIST_ROUTE, 0), get_calls(double)
        assert lists == 1

        double.set_state(iid, "paused")
        gt = await cockpit.collector.refresh()  # paced: not due, the listing is reused
        assert {r.lease_id: r.provider_state for r in gt.rows} == {LEASE: "running"}
        assert cockpit.events is not None
        serve_append(tmp_path, [webhook("e2b", iid)])
        assert await watch.poll() == 1
        assert changed == [frozenset({"e2b"})]
        assert get_calls(double) == gets + 1  # one GET of that instance
        gt = await cockpit.collector.refresh()
        assert {r.lease_id: r.provider_state for r in gt.rows} == {LEASE: "paused"}
        assert double.requests_by_route.get(LIST_ROUTE, 0) == lists  # no full listing
        assert await watch.poll() == 0 and len(changed) == 1  # the cursor moved past it
        assert watch.seen == 1 and watch.error is None
    finally:
        await cockpit.aclose()


async def test_old_webhooks_and_the_cockpits_own_events_are_not_acted_on(
    tmp_path: Path, double: E2BDouble
) -> None:
    iid = double.add(state="running").instance_id
    cockpit = live_cockpit(tmp_path, double, iid)
    assert cockpit.events is not None
    old = datetime.now(UTC) - timedelta(hours=1)
    cockpit.events.append([webhook("e2b", iid, at=old)])  # before the cockpit started
    looked: list[tuple[str, frozenset[str]]] = []

    async def look(provider: str, ids: frozenset[str]) -> int:
        looked.append((provider, ids))
        return len(ids)

    watch = LedgerWatch(cockpit.events, look=look)
    try:
        assert await watch.poll() == 0 and looked == []
        now = datetime.now(UTC)
        own = InstanceStateChanged(
            observed_at=now, source=EventSource.PROVIDER_LIST, provider="e2b", instance_id=iid,
            before=InstanceView(state="running"), after=InstanceView(state="paused"),
        )  # fmt: skip
        cockpit.events.append([own])  # this cockpit's own observation
        serve_append(tmp_path, [webhook("e2b", "other-1", at=now), webhook("e2b", "other-2", at=now)])
        assert await watch.poll() == 2
        assert looked == [("e2b", frozenset({"other-1", "other-2"}))]  # one look per provider
    finally:
        await cockpit.aclose()


async def test_an_unusable_ledger_is_said_and_never_raises(tmp_path: Path) -> None:
    from opcockpit.adapters.ledger.events import EventLog

    bad = tmp_path / "ledger.db"
    bad.write_bytes(b"this is not a database" * 100)
    watch = LedgerWatch(EventLog(bad), look=None)
    assert await watch.poll() == 0
    assert watch.error is not None and "ledger.db" in watch.error


def test_instances_named_groups_by_provider_and_skips_unnamed() -> None:
    now = datetime.now(UTC)
    evs = [webhook("e2b", "a", at=now), webhook("day", "b", at=now), webhook("e2b", "a", at=now)]
    nameless = ProviderEvent(observed_at=now, source=EventSource.PROVIDER_EVENT, provider="e2b")
    assert instances_named([*evs, nameless]) == {"e2b": {"a"}, "day": {"b"}}
    assert instances_named(evs, now + timedelta(seconds=1)) == {}


async def test_a_quiet_second_is_answered_without_a_thread_or_a_query(
    tmp_path: Path, double: E2BDouble
) -> None:
    """Issue 10, idle tick: on SQLite the watch asks the ledger's data_version on the loop; while
    no other process committed it reads nothing. This cockpit's own appends do not move it; a
    webhook appended by `opcockpit serve` (another connection) does, and is acted on."""
    from opcockpit.adapters.ledger.events import EventLog

    iid = double.add(state="running").instance_id
    cockpit = live_cockpit(tmp_path, double, iid)
    changed: list[frozenset[str]] = []
    watch = build_ledger_watch(cockpit, on_change=changed.append)
    assert isinstance(watch, LedgerWatch) and cockpit.events is not None
    serve = EventLog(tmp_path / "ledger.db")  # `opcockpit serve`: its own connection
    try:
        await cockpit.collector.refresh()
        assert await watch.poll() == 0 and watch.skipped == 0  # the first poll reads
        assert await watch.poll() == 0 and watch.skipped == 1  # nothing committed elsewhere
        own = InstanceStateChanged(
            observed_at=datetime.now(UTC), source=EventSource.PROVIDER_LIST, provider="e2b",
            instance_id=iid, before=InstanceView(state="running"), after=InstanceView(state="paused"),
        )  # fmt: skip
        cockpit.events.append([own])  # this cockpit's own observation, on its own connection
        assert await watch.poll() == 0 and watch.skipped == 2
        serve.append([webhook("e2b", iid)])
        assert await watch.poll() == 1 and changed == [frozenset({"e2b"})]
        assert watch.skipped == 2
        assert await watch.poll() == 0 and watch.skipped == 3
    finally:
        serve.close()
        await cockpit.aclose()
