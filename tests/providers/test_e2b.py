"""E2B adapter against the E2B double on 127.0.0.1: the shared contract + E2B's own semantics."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from opcockpit.adapters.providers.e2b import E2BAdapter
from opcockpit.domain.models import NormalState
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.ports.provider import ActionOutcome, Conflict, NotFound, ProviderEvent, Unavailable
from tests.providers.contract import AdapterContract, error_texts


@pytest.fixture
def double(secret: str) -> Iterator[E2BDouble]:
    with E2BDouble(api_key=secret) as d:
        yield d  # type: ignore[misc]


@pytest.fixture
async def make_adapter(double: E2BDouble, secret: str) -> AsyncIterator[Callable[..., E2BAdapter]]:
    made: list[E2BAdapter] = []

    def _make(**overrides: Any) -> E2BAdapter:
        kw: dict[str, Any] = {"api_key": secret, "page_size": 3, "timeout": 5.0, "retries": 2}
        kw.update(overrides)
        adapter = E2BAdapter("e2b-test", base_url=double.url, **kw)
        made.append(adapter)
        return adapter

    yield _make
    for adapter in made:
        await adapter.aclose()


class TestE2BContract(AdapterContract):
    page_size = 3


# --------------------------------------------------------------------------- E2B specifics


async def test_listing_maps_fields(adapter: E2BAdapter, double: E2BDouble) -> None:
    inst = double.add(
        state="running", labels={"leon.lease_id": "L9", "name": "box"}, cpu=4, memory_mb=1024, disk_gb=2
    )
    [listed] = await adapter.list_instances()
    assert listed.instance_id == inst.instance_id
    assert listed.raw_state == "running"
    assert listed.claimed_lease_id == "L9"
    assert listed.name == "box"
    assert listed.created_at is None  # E2B reports no creation time
    assert listed.started_at is not None and listed.started_at.tzinfo is not None
    assert listed.resources is not None
    assert (listed.resources.cpu_count, listed.resources.memory_mb, listed.resources.disk_gb) == (4, 1024, 2)


async def test_listing_asks_for_paused_too_and_counts_pages(adapter: E2BAdapter, double: E2BDouble) -> None:
    for i in range(7):
        double.add(state="paused" if i % 2 else "running")
    before = double.request_count
    listing = await adapter.list_instances()
    assert {i.state for i in listing} == {NormalState.RUNNING, NormalState.PAUSED}
    assert len(listing) == 7
    assert double.request_count - before == 3  # ceil(7 / 3) pages, nothing else
    assert adapter.request_count == 3


async def test_label_filter_becomes_metadata_query(
    make_adapter: Callable[..., E2BAdapter], double: E2BDouble
) -> None:
    keep = double.add(labels={"owner": "cockpit", "team": "a&b=c"})
    double.add(labels={"owner": "cockpit", "team": "other"})
    double.add(labels={"owner": "someone-else"})
    adapter = make_adapter(label_filter={"owner": "cockpit", "team": "a&b=c"})
    assert [i.instance_id for i in await adapter.list_instances()] == [keep.instance_id]


async def test_get_never_uses_connect(adapter: E2BAdapter, double: E2BDouble) -> None:
    iid = double.add(state="paused").instance_id
    assert (await adapter.get_instance(iid)).state is NormalState.PAUSED
    await adapter.list_instances()
    assert double.route_hits("POST", "connect") == 0
    assert double.instances[iid].state == "paused"  # nothing woke it


async def test_pause_sends_a_json_body_as_the_sdk_does(adapter: E2BAdapter, double: E2BDouble) -> None:
    """E2B's spec marks the pause body required (the official SDK always sends one)."""
    seen: list[tuple[str, bytes]] = []
    double.faults.on_request = lambda req: seen.append((req.headers.get("content-type", ""), req.body))
    iid = double.add(state="running").instance_id
    result = await adapter.pause(iid)
    assert result.outcome is ActionOutcome.DONE and double.instances[iid].state == "paused"
    pauses = [(ctype, body) for ctype, body in seen if body is not None and ctype]
    assert pauses == [("application/json", b"{}")]


async def test_pause_409_already_paused_is_already(adapter: E2BAdapter, double: E2BDouble) -> None:
    iid = double.add(state="paused").instance_id
    result = await adapter.pause(iid)
    assert result.outcome is ActionOutcome.ALREADY
    assert result.state is NormalState.PAUSED


async def test_pause_409_in_other_state_is_conflict(adapter: E2BAdapter, double: E2BDouble) -> None:
    """409 for a reason other than "already paused": the GET shows running, so it is a Conflict."""
    iid = double.add(state="running", internal_state="snapshotting").instance_id
    with pytest.raises(Conflict) as info:
        await adapter.pause(iid)
    assert "snapshotting" in str(info.value)
    assert "409" in str(info.value)
    assert "POST /sandboxes/" in str(info.value)


async def test_resume_201_then_200(adapter: E2BAdapter, double: E2BDouble) -> None:
    iid = double.add(state="paused").instance_id
    assert (await adapter.resume(iid)).outcome is ActionOutcome.DONE
    assert double.instances[iid].state == "running"
    assert (await adapter.resume(iid)).outcome is ActionOutcome.ALREADY
    with pytest.raises(NotFound):
        await adapter.resume("nope")


async def test_destroy_twice(adapter: E2BAdapter, double: E2BDouble) -> None:
    iid = double.add().instance_id
    assert (await adapter.destroy(iid)).outcome is ActionOutcome.DONE
    assert iid not in double.instances
    assert (await adapter.destroy(iid)).outcome is ActionOutcome.ALREADY


async def test_events_yield_new_lifecycle_events(
    make_adapter: Callable[..., E2BAdapter], double: E2BDouble
) -> None:
    double.add()  # history: not replayed
    adapter = make_adapter(events_poll_s=0.02)
    stream = adapter.events()
    got: list[ProviderEvent] = []

    async def consume() -> None:
        async for event in stream:
            got.append(event)
            if len(got) == 3:
                return

    task = asyncio.create_task(consume())
    # The stream takes its baseline from the first poll's answer; a second poll means that answer
    # was processed, so what happens next is news (waiting for the first request only raced it).
    while adapter.request_count < 2:
        await asyncio.sleep(0.01)
    iid = double.add(labels={"lease_id": "L1"}).instance_id
    await adapter.pause(iid)
    await adapter.destroy(iid)
    await asyncio.wait_for(task, 10)
    assert [e.action for e in got] == [
        "sandbox.lifecycle.created",
        "sandbox.lifecycle.paused",
        "sandbox.lifecycle.killed",
    ]
    assert all(e.instance_id == iid and e.provider == "e2b-test" and e.at is not None for e in got)
    assert got[0].attributes["eventData"] == {"sandbox_metadata": {"lease_id": "L1"}}
    await stream.aclose()


async def test_events_page_through_bursts(make_adapter: Callable[..., E2BAdapter], double: E2BDouble) -> None:
    """More new events than one page between polls: none lost, oldest first."""
    adapter = make_adapter(events_poll_s=0.02)
    fresh = await adapter._fresh_events(set())
    assert fresh == []
    ids = [double.add().instance_id for _ in range(130)]
    events = await adapter._fresh_events(set())
    assert [e["sandboxId"] for e in events] == ids


async def test_an_event_poll_that_repeats_the_last_page_is_not_decoded(
    make_adapter: Callable[..., E2BAdapter], double: E2BDouble
) -> None:
    """Issue 10 (idle tick): a quiet fleet's poll (every 2 s) answers the same bytes: nothing new,
    no JSON decoded; a new event still comes through on the next poll."""
    double.add()
    adapter = make_adapter()
    last: list[bytes] = []
    assert len(await adapter._fresh_events(set(), last=last)) == 1
    seen = {e["id"] for e in await adapter._fresh_events(set())}
    assert await adapter._event_page(0, 100, last) is None  # the same bytes: not decoded
    assert await adapter._fresh_events(seen, last=last) == []
    iid = double.add().instance_id
    assert [e["sandboxId"] for e in await adapter._fresh_events(seen, last=last)] == [iid]
    await adapter.aclose()


async def test_connection_refused_is_unavailable_without_secret(secret: str) -> None:
    with socket.socket() as sock:  # bind, learn the port, close: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = E2BAdapter(
        "e2b-dead", base_url=f"http://127.0.0.1:{port}", api_key=secret, retries=1, timeout=1
    )
    try:
        with pytest.raises(Unavailable) as info:
            await adapter.list_instances()
        assert "ConnectError" in str(info.value)
        assert all(secret not in t for t in error_texts(info.value))
    finally:
        await adapter.aclose()


async def test_double_answers_real_wire_format(double: E2BDouble, secret: str) -> None:
    """Shape check of the double itself (raw httpx), so the adapter tests rest on a faithful fake."""
    iid = double.add(labels={"lease_id": "L1"}).instance_id
    async with httpx.AsyncClient(base_url=double.url) as http:
        denied = await http.get("/v2/sandboxes", headers={"X-API-Key": "bad"})
        assert denied.status_code == 401 and denied.json()["code"] == 401
        ok = await http.get("/v2/sandboxes", params={"state": "running"}, headers={"x-api-key": secret})
        assert ok.status_code == 200 and ok.json()[0]["sandboxID"] == iid
        assert ok.headers["X-Total-Running"] == "1"
        bad = await http.get("/v2/sandboxes", params={"limit": 101}, headers={"X-API-Key": secret})
        assert bad.status_code == 400
        missing = await http.get("/sandboxes/zzz", headers={"X-API-Key": secret})
        assert missing.json() == {"code": 404, "message": 'sandbox "zzz" not found'}
        nobody = await http.post(f"/sandboxes/{iid}/connect", headers={"X-API-Key": secret})
        assert nobody.status_code == 400  # v1 connect needs {"timeout": ...}
        v2 = await http.post(f"/v2/sandboxes/{iid}/connect", headers={"X-API-Key": secret})
        assert v2.status_code == 200
