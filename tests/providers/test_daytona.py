"""Daytona adapter against the Daytona double on 127.0.0.1: the shared contract + Daytona's own
asynchronous transitions, eventually consistent list and class-restricted pause."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from opcockpit.adapters.providers.daytona import DaytonaAdapter, _cut_cursor, normalise_state
from opcockpit.adapters.providers.http import ApiClient
from opcockpit.domain.models import NormalState
from opcockpit.domain.secrets import redact
from opcockpit.doubles.daytona import DaytonaDouble
from opcockpit.ports.provider import ActionOutcome, Conflict, NotFound, RateLimited
from tests.providers.contract import AdapterContract, error_texts, wait_for_state


@pytest.fixture
def double(secret: str) -> Iterator[DaytonaDouble]:
    with DaytonaDouble(api_key=secret, transition_s=0.05) as d:
        yield d  # type: ignore[misc]


@pytest.fixture
async def make_adapter(double: DaytonaDouble, secret: str) -> AsyncIterator[Callable[..., DaytonaAdapter]]:
    made: list[DaytonaAdapter] = []

    def _make(*, target: DaytonaDouble | None = None, **overrides: Any) -> DaytonaAdapter:
        kw: dict[str, Any] = {"api_key": secret, "page_size": 3, "timeout": 5.0, "retries": 2}
        kw.update(overrides)
        adapter = DaytonaAdapter("daytona-test", base_url=(target or double).api_url, **kw)
        made.append(adapter)
        return adapter

    yield _make
    for adapter in made:
        await adapter.aclose()


class TestDaytonaContract(AdapterContract):
    page_size = 3


@pytest.fixture
def vm_double(secret: str) -> Iterator[DaytonaDouble]:
    with DaytonaDouble(api_key=secret, transition_s=0.05, sandbox_class="linux-vm") as d:
        yield d  # type: ignore[misc]


# --------------------------------------------------------------------------- states


@pytest.mark.parametrize(
    ("raw", "desired", "expected"),
    [
        ("started", "started", NormalState.RUNNING),
        ("stopped", "stopped", NormalState.PAUSED),
        ("paused", "paused", NormalState.PAUSED),
        ("archived", "archived", NormalState.STOPPED),
        ("destroyed", "destroyed", NormalState.GONE),
        ("error", "started", NormalState.UNKNOWN),
        ("build_failed", None, NormalState.UNKNOWN),
        ("unknown", None, NormalState.UNKNOWN),
        ("brand_new_state", None, NormalState.UNKNOWN),
        ("started", "stopped", NormalState.TRANSITIONING),  # accepted, not yet begun
        ("started", "resized", NormalState.RUNNING),
        *[
            (s, None, NormalState.TRANSITIONING)
            for s in [
                "creating",
                "restoring",
                "starting",
                "stopping",
                "pausing",
                "resuming",
                "destroying",
                "archiving",
                "snapshotting",
                "forking",
                "pulling_snapshot",
                "building_snapshot",
                "pending_build",
                "resizing",
            ]
        ],
    ],
)
def test_state_mapping(raw: str, desired: str | None, expected: NormalState) -> None:
    assert normalise_state(raw, desired) is expected


async def test_listing_maps_fields(adapter: DaytonaAdapter, double: DaytonaDouble) -> None:
    inst = double.add(name="box-1", labels={"leon.lease_id": "L7"}, cpu=2, memory_mb=4096, disk_gb=10)
    [listed] = await adapter.list_instances()
    assert (listed.instance_id, listed.name, listed.raw_state) == (inst.instance_id, "box-1", "started")
    assert listed.aliases == ("box-1",)
    assert listed.claimed_lease_id == "L7"
    assert listed.created_at is not None and listed.created_at.tzinfo is not None
    assert listed.resources is not None
    assert (listed.resources.cpu_count, listed.resources.memory_mb, listed.resources.disk_gb) == (2, 4096, 10)


async def test_label_filter_is_json_containment(
    make_adapter: Callable[..., DaytonaAdapter], double: DaytonaDouble
) -> None:
    keep = double.add(labels={"owner": "cockpit", "lease_id": "L1"})
    double.add(labels={"owner": "other"})
    adapter = make_adapter(label_filter={"owner": "cockpit"})
    assert [i.instance_id for i in await adapter.list_instances()] == [keep.instance_id]


async def test_pagination_counts_and_cursor(adapter: DaytonaAdapter, double: DaytonaDouble) -> None:
    ids = {double.add().instance_id for _ in range(10)}
    before = double.request_count
    listing = await adapter.list_instances()
    assert {i.instance_id for i in listing} == ids
    assert double.request_count - before == 4  # ceil(10 / 3)


# --------------------------------------------------------------------------- async transitions


async def test_stop_is_asynchronous_and_polled(adapter: DaytonaAdapter, double: DaytonaDouble) -> None:
    double.transition_s = 30.0  # held in flight until we settle it by hand
    iid = double.add().instance_id
    result = await adapter.pause(iid)
    assert result.outcome is ActionOutcome.ACCEPTED
    assert result.state is NormalState.TRANSITIONING
    inst = await adapter.get_instance(iid)
    assert (inst.raw_state, inst.state) == ("stopping", NormalState.TRANSITIONING)

    # a second pause while stopping is "already on its way"; resume now conflicts
    assert (await adapter.pause(iid)).outcome is ActionOutcome.ALREADY
    with pytest.raises(Conflict) as info:
        await adapter.resume(iid)
    assert "409" in str(info.value)

    double.instances[iid].pending = ("stopped", 0.0)  # let the runner finish
    inst = await adapter.get_instance(iid)
    assert (inst.raw_state, inst.state) == ("stopped", NormalState.PAUSED)


async def test_stop_of_stopped_400_is_already(adapter: DaytonaAdapter, double: DaytonaDouble) -> None:
    iid = double.add(state="paused").instance_id
    assert double.instances[iid].state == "stopped"
    result = await adapter.pause(iid)
    assert result.outcome is ActionOutcome.ALREADY


async def test_stop_of_errored_sandbox_is_conflict(adapter: DaytonaAdapter, double: DaytonaDouble) -> None:
    iid = double.add().instance_id
    double.instances[iid].state = "error"
    with pytest.raises(Conflict) as info:
        await adapter.pause(iid)
    assert "not in a stoppable state" in str(info.value)
    assert (await adapter.get_instance(iid)).state is NormalState.UNKNOWN


async def test_destroy_pending_then_gone(adapter: DaytonaAdapter, double: DaytonaDouble) -> None:
    double.transition_s = 30.0
    iid = double.add().instance_id
    first = await adapter.destroy(iid)
    assert first.outcome is ActionOutcome.ACCEPTED
    assert (await adapter.get_instance(iid)).raw_state == "destroying"
    assert (await adapter.destroy(iid)).outcome is ActionOutcome.ALREADY  # 409 while destroying
    double.instances[iid].pending = ("__gone__", 0.0)
    with pytest.raises(NotFound):
        await adapter.get_instance(iid)
    assert (await adapter.destroy(iid)).outcome is ActionOutcome.ALREADY  # 404


async def test_destroy_while_stopping_is_conflict(adapter: DaytonaAdapter, double: DaytonaDouble) -> None:
    double.transition_s = 30.0
    iid = double.add().instance_id
    await adapter.pause(iid)
    with pytest.raises(Conflict):
        await adapter.destroy(iid)


# --------------------------------------------------------------------------- pause classes


async def test_pause_endpoint_on_container_class_is_422_conflict(
    make_adapter: Callable[..., DaytonaAdapter], double: DaytonaDouble
) -> None:
    iid = double.add().instance_id
    adapter = make_adapter(pause_mode="pause")
    with pytest.raises(Conflict) as info:
        await adapter.pause(iid)
    assert "422" in str(info.value) and "not supported" in str(info.value)
    assert (await adapter.get_instance(iid)).state is NormalState.RUNNING


async def test_pause_endpoint_on_vm_class(
    make_adapter: Callable[..., DaytonaAdapter], vm_double: DaytonaDouble
) -> None:
    iid = vm_double.add().instance_id
    adapter = make_adapter(target=vm_double, pause_mode="pause")
    assert (await adapter.pause(iid)).outcome is ActionOutcome.ACCEPTED
    await wait_for_state(adapter, iid, {NormalState.PAUSED})
    assert (await adapter.get_instance(iid)).raw_state == "paused"
    assert (await adapter.pause(iid)).outcome is ActionOutcome.ALREADY  # 400 "must be started"
    assert (await adapter.resume(iid)).outcome is ActionOutcome.ACCEPTED  # resuming
    await wait_for_state(adapter, iid, {NormalState.RUNNING})


# --------------------------------------------------------------------------- eventual consistency


async def test_frozen_list_and_confirm_orphans(adapter: DaytonaAdapter, double: DaytonaDouble) -> None:
    double.transition_s = 30.0
    vanished = double.add().instance_id
    destroying = double.add().instance_id
    alive = double.add().instance_id
    double.freeze_list()
    late = double.add().instance_id
    double.remove(vanished)
    await adapter.destroy(destroying)

    listed = {i.instance_id: i for i in await adapter.list_instances()}
    assert set(listed) == {vanished, destroying, alive}  # stale: gone ones shown, new one absent
    assert listed[destroying].state is NormalState.RUNNING  # stale state
    assert adapter.capabilities.eventually_consistent_list

    confirmed = await adapter.confirm_orphans([vanished, destroying, alive, late, alive])
    assert confirmed == frozenset({alive, late})


async def test_list_lag_hides_new_sandboxes_that_get_sees(secret: str) -> None:
    with DaytonaDouble(api_key=secret, list_lag_s=30.0) as lagging:
        adapter = DaytonaAdapter("d", base_url=lagging.api_url, api_key=secret)
        try:
            iid = lagging.add().instance_id
            assert await adapter.list_instances() == []
            assert (await adapter.get_instance(iid)).state is NormalState.RUNNING
            assert await adapter.confirm_orphans([iid]) == frozenset({iid})
        finally:
            await adapter.aclose()


async def test_confirm_orphans_treats_failures_as_unconfirmed(
    adapter: DaytonaAdapter, double: DaytonaDouble
) -> None:
    iid = double.add().instance_id
    double.faults.error_status = 503
    assert await adapter.confirm_orphans([iid]) == frozenset()


# --------------------------------------------------------------------------- errors and secrets


async def test_scoped_retry_after_is_honoured(
    make_adapter: Callable[..., DaytonaAdapter], double: DaytonaDouble
) -> None:
    """Daytona sends Retry-After-<throttler>, not Retry-After."""
    adapter = make_adapter(retries=1)
    double.faults.rate_limit_retry_after = 0.25
    with pytest.raises(RateLimited) as info:
        await adapter.list_instances()
    assert info.value.retry_after == pytest.approx(0.25)
    assert "Rate limit exceeded" in str(info.value)


async def test_401_echoing_the_token_is_scrubbed(
    make_adapter: Callable[..., DaytonaAdapter], double: DaytonaDouble, secret: str
) -> None:
    double.faults.auth_fail = True
    adapter = make_adapter()
    with pytest.raises(Exception) as info:
        await adapter.list_instances()
    text = str(info.value)
    assert "Invalid credentials" in text  # the provider's message is kept ...
    assert all(secret not in t for t in error_texts(info.value))  # ... without the key
    assert redact(f"Bearer {secret}") in text  # masked by the product's one redactor


async def test_events_not_supported(adapter: DaytonaAdapter) -> None:
    assert not adapter.capabilities.has_events
    with pytest.raises(NotImplementedError):
        adapter.events()


async def test_double_answers_real_wire_format(double: DaytonaDouble, secret: str) -> None:
    iid = double.add(labels={"lease_id": "L1"}).instance_id
    auth = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=double.api_url) as http:
        denied = await http.get("/sandbox")
        assert denied.status_code == 401
        assert {"statusCode", "message", "error", "path", "timestamp"} <= set(denied.json())
        page = (await http.get("/sandbox", params={"labels": '{"lease_id":"L1"}'}, headers=auth)).json()
        assert page["nextCursor"] is None and page["items"][0]["id"] == iid
        assert page["items"][0]["desiredState"] == "started"
        filtered = await http.get(
            "/sandbox", params=[("states", "stopped"), ("states", "archived")], headers=auth
        )
        assert filtered.json()["items"] == []
        assert (await http.get("/sandbox", params={"states": "destroyed"}, headers=auth)).status_code == 400
        assert (await http.get("/sandbox", params={"cursor": "!!"}, headers=auth)).status_code == 400
        assert (await http.post(f"/sandbox/{iid}/start", headers=auth)).json()["state"] == "started"
        missing = await http.get("/sandbox/nope", headers=auth)
        assert missing.status_code == 404 and missing.json()["error"] == "Not Found"


# --------------------------------------------------------------------------- quiet relistings


def _count_decodes(adapter: DaytonaAdapter) -> list[str]:
    """Spy on the adapter's body decoding (the real decode still runs)."""
    seen: list[str] = []
    decode = adapter._api.decode

    def counted(method: str, path: str, response: httpx.Response) -> Any:
        seen.append(path)
        return decode(method, path, response)

    adapter._api.decode = counted  # type: ignore[method-assign]
    return seen


async def test_a_quiet_relisting_decodes_no_page(double: DaytonaDouble, make_adapter: Any) -> None:
    """Issue 10: a page whose bytes but its next cursor (the double's names the listing) repeat
    is handed back before its body is decoded, with the new cursor (so paging goes on)."""
    ids = [double.add(state="running", labels={"lease_id": f"L{i}"}).instance_id for i in range(7)]
    adapter = make_adapter()  # 3 a page: 3 pages
    first = await adapter.list_instances()
    decoded = _count_decodes(adapter)
    second = await adapter.list_instances()
    assert decoded == [] and adapter._reuse.page_hits == 3
    assert [i.instance_id for i in second] == [i.instance_id for i in first]
    assert all(a is b for a, b in zip(first, second, strict=True))
    double.set_state(ids[3], "paused")
    third = await adapter.list_instances()
    assert decoded  # a page changed: decoded
    fresh = await make_adapter().list_instances()
    assert third == fresh and len(third) == 7


async def test_a_label_named_like_the_cursor_is_never_taken_for_it(
    double: DaytonaDouble, make_adapter: Any
) -> None:
    for i in range(5):
        double.add(state="running", labels={"lease_id": f"L{i}", "nextCursor": f"label-{i}"})
    adapter = make_adapter()
    first = await adapter.list_instances()
    decoded = _count_decodes(adapter)
    second = await adapter.list_instances()
    assert len(decoded) == 2  # every page holds the word twice: decoded every time
    assert second == first == await make_adapter().list_instances() and len(first) == 5
    assert {i.labels["nextCursor"] for i in first} == {f"label-{i}" for i in range(5)}


async def test_a_cut_that_is_not_the_cursor_never_hands_its_page_back(secret: str) -> None:
    """The only `nextCursor` is a label's (the body has none of its own: the last page): the page
    is decoded at every listing and the label's value is never followed as a cursor."""
    item = {"id": "sb-1", "state": "started", "labels": {"nextCursor": "not-a-cursor"}}
    body = json.dumps({"items": [item]}).encode()
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url.params.get("cursor")))
        return httpx.Response(200, content=body)

    adapter = DaytonaAdapter("daytona-test", base_url="http://daytona.test/api", api_key=secret)
    adapter._api = ApiClient(
        "daytona-test", base_url="http://daytona.test/api", transport=httpx.MockTransport(answer)
    )
    decoded = _count_decodes(adapter)
    try:
        for _ in range(2):
            listing = await adapter.list_instances()
            assert [i.instance_id for i in listing] == ["sb-1"]
    finally:
        await adapter.aclose()
    assert asked == ["None", "None"] and len(decoded) == 2


@pytest.mark.parametrize(
    ("body", "cut"),
    [
        (b'{"items":[],"nextCursor":"abc="}', (b'{"items":[],"nextCursor":}', "abc=")),
        (b'{"nextCursor" :\n null,"items":[]}', (b'{"nextCursor" :\n ,"items":[]}', None)),
        (b'{"items":[]}', (b'{"items":[]}', None)),  # no cursor at all: the last page
        (b'{"items":[{"labels":{"nextCursor":"x"}}],"nextCursor":"c"}', None),  # twice
        (b'{"items":[],"nextCursor":"a\\"b"}', None),  # an escape: left to the decoder
        (b'{"items":[],"nextCursor":"\xc3\xa9"}', None),  # not ASCII
        (b'{"items":[],"nextCursor":7}', None),  # not a string
    ],
)
def test_cut_cursor(body: bytes, cut: tuple[bytes, str | None] | None) -> None:
    assert _cut_cursor(body) == cut


async def test_pages_of_200_and_of_100_from_a_server_that_refuses_more(secret: str) -> None:
    """Issue 10: pages of 200 halve a listing's requests; a server bounded at 100 (the v0.190
    source: HTTP 400) is asked in pages of 100 from its first refusal on, listing the same."""
    fleet = [{"id": f"sb-{i:03d}", "state": "started"} for i in range(250)]
    asked: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        limit, start = int(request.url.params["limit"]), int(request.url.params.get("cursor") or 0)
        asked.append(limit)
        if limit > 100:
            return httpx.Response(
                400, json={"statusCode": 400, "message": "limit must not be greater than 100"}
            )
        end = start + limit
        return httpx.Response(
            200, json={"items": fleet[start:end], "nextCursor": str(end) if end < 250 else None}
        )

    adapter = DaytonaAdapter("daytona-test", base_url="http://daytona.test/api", api_key=secret)
    adapter._api = ApiClient(
        "daytona-test", base_url="http://daytona.test/api", transport=httpx.MockTransport(answer)
    )
    try:
        assert adapter.page_size == 200
        first = await adapter.list_instances()
        second = await adapter.list_instances()
    finally:
        await adapter.aclose()
    assert [i.instance_id for i in first] == [i.instance_id for i in second] == [f["id"] for f in fleet]
    assert asked == [200, 100, 100, 100, 100, 100, 100]  # refused once, then 100 for good


async def test_a_first_page_refused_at_100_is_the_providers_error(secret: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"statusCode": 400, "message": "labels must be a JSON object"})

    adapter = DaytonaAdapter(
        "daytona-test", base_url="http://daytona.test/api", api_key=secret, page_size=100
    )
    adapter._api = ApiClient(
        "daytona-test", base_url="http://daytona.test/api", transport=httpx.MockTransport(answer)
    )
    try:
        with pytest.raises(Conflict, match="GET /sandbox -> HTTP 400: labels must be a JSON object"):
            await adapter.list_instances()
    finally:
        await adapter.aclose()
