"""Issue 10 (RSS at 50k leases): Docker's container listing (one JSON array, ~12k items at 50k
leases) is decoded one item at a time (wire.json_array_items), so a listing's peak is its
Instances, not a whole decoded body beside them; what it decodes and the errors it gives are
json.loads'."""

from __future__ import annotations

import gc
import json
import tracemalloc

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opcockpit.adapters.providers.docker import DockerAdapter
from opcockpit.adapters.providers.wire import json_array_items
from opcockpit.doubles.docker import DockerDouble
from opcockpit.ports.provider import ProtocolError

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner)),
    max_leaves=8,
)
spaces = st.sampled_from(["", " ", "\n", " \t\r\n "])


def _loads_or_error(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError as exc:
        return type(exc)


def _items_or_error(body: bytes) -> object:
    try:
        items = json_array_items(body)
        return None if items is None else list(items)
    except ValueError as exc:
        return type(exc)


@given(st.lists(values, max_size=6), spaces, spaces, st.sampled_from(["utf-8", "utf-16", "utf-32"]))
def test_items_are_what_json_loads_gives(items: list, pad: str, sep: str, encoding: str) -> None:
    text = pad + "[" + pad + ("," + sep).join(json.dumps(v) for v in items) + sep + "]" + pad
    body = text.encode(encoding)
    assert _items_or_error(body) == json.loads(body) == items


@pytest.mark.parametrize(
    "body", [b"[1,]", b"[1 2]", b"[1", b"[", b'[{"a": 1}] x', b"[1,,2]", b"[,1]", b"[1]]", b"[\xff]"]
)
def test_a_broken_array_fails_as_json_loads_does(body: bytes) -> None:
    want = _loads_or_error(body)
    assert isinstance(want, type) and issubclass(want, ValueError)
    assert _items_or_error(body) is want


def test_a_body_that_is_no_array_is_left_to_a_whole_decode() -> None:
    assert json_array_items(b' {"message": "x"}') is None
    assert json_array_items(b"") is None


async def test_docker_listing_peak_is_its_instances_not_the_decoded_body() -> None:
    with DockerDouble(flavor="docker") as double:
        for k in range(3000):  # labelled like LEON's containers
            double.add(state="running", labels={"leon.context_id": f"leon-lease-{k:08x}", "team": "infra"})
        adapter = DockerAdapter("docker", host=double.host)
        try:
            await adapter.list_instances()  # the API version and connection
            url = double.host.replace("tcp://", "http://") + "/v1.41/containers/json?all=1"
            response = httpx.get(url)
        finally:
            await adapter.aclose()
    body = len(response.content)
    adapter._reuse.start()  # no previous listing: every Instance is built
    tracemalloc.start()
    try:
        listing = adapter._decode_listing("/v1.41/containers/json", response)
        gc.collect()
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(listing) == 3000
    # Beside the Instances only the body's text (json.loads makes it too) and one item at a time;
    # decoded whole, the body's objects (~1x its size here, ~4x for LEON's) came on top.
    assert peak - kept < 1.3 * body, (peak, kept, body)


async def test_docker_listing_errors_are_unchanged() -> None:
    with DockerDouble(flavor="docker") as double:
        double.add(state="running")
        double.add(state="running")
        adapter = DockerAdapter("docker", host=double.host, max_instances=1)
        try:
            with pytest.raises(ProtocolError, match=r"max_instances=1 \(2 after 1 pages\)"):
                await adapter.list_instances()
        finally:
            await adapter.aclose()


def _one_key_and_state_object(listing: list) -> None:
    """Three listed instances hold one `leon.context_id` key object and one state object."""
    keys = [next(k for k in i.labels if k == "leon.context_id") for i in listing]
    assert len(listing) == 3 and all(k is keys[0] for k in keys)
    assert all(i.raw_state is listing[0].raw_state for i in listing)


async def test_docker_listing_shares_label_keys_and_states_across_instances() -> None:
    with DockerDouble(flavor="docker") as double:
        for k in range(3):
            double.add(state="running", labels={"leon.context_id": f"leon-lease-{k}"})
        adapter = DockerAdapter("docker", host=double.host)
        try:
            listing = await adapter.list_instances()
        finally:
            await adapter.aclose()
    _one_key_and_state_object(listing)
    # named after its session (LEON's way): the name is the instance id's object, not a copy
    assert all(i.name == i.instance_id and i.name is i.instance_id for i in listing)


async def test_agentbay_listing_keeps_only_id_and_status_of_each_page() -> None:
    """ListSession pages are cut to (SessionId, SessionStatus) as they arrive: the whole session
    objects were held until every label was fetched (~5 MB at 12k sessions)."""
    from opcockpit.adapters.providers.agentbay import AgentBayAdapter
    from opcockpit.doubles.agentbay import AgentBayDouble

    with AgentBayDouble(api_key="k-test") as double:
        made = [double.add(state="running").instance_id for _ in range(5)]
        adapter = AgentBayAdapter("agentbay", base_url=double.url, api_key="k-test", page_size=2)
        try:
            sessions = await adapter._list_sessions()
            listing = await adapter.list_instances()
        finally:
            await adapter.aclose()
    assert sorted(sessions) == sorted((iid, "RUNNING") for iid in made)
    assert sorted(i.instance_id for i in listing) == sorted(made)


@pytest.mark.parametrize("kind", ["e2b", "daytona"])
async def test_e2b_and_daytona_listings_share_sizes_and_states(kind: str) -> None:
    """Sandboxes of one size hold one InstanceResources, and one state text: a new object and
    three floats per instance were ~140 bytes kept for each (issue 10, RSS at 50k leases); a
    size of its own keeps its own values."""
    from opcockpit.adapters.providers.daytona import DaytonaAdapter
    from opcockpit.adapters.providers.e2b import E2BAdapter
    from opcockpit.domain.models import InstanceResources
    from opcockpit.doubles.daytona import DaytonaDouble
    from opcockpit.doubles.e2b import E2BDouble

    double_cls, adapter_cls = (E2BDouble, E2BAdapter) if kind == "e2b" else (DaytonaDouble, DaytonaAdapter)
    with double_cls(api_key="k-test") as double:
        same = [double.add(state="running").instance_id for _ in range(3)]
        big = double.add(state="running", cpu=8.0, memory_mb=16384, disk_gb=40.0).instance_id
        url = double.api_url if kind == "daytona" else double.url
        adapter = adapter_cls(kind, base_url=url, api_key="k-test")
        try:
            listing = {i.instance_id: i for i in await adapter.list_instances()}
        finally:
            await adapter.aclose()
    first = listing[same[0]]
    assert first.resources == InstanceResources(cpu_count=2.0, memory_mb=2048.0, disk_gb=10.0)
    assert all(listing[i].resources is first.resources for i in same)
    assert all(listing[i].raw_state is first.raw_state for i in same)
    assert listing[big].resources == InstanceResources(cpu_count=8.0, memory_mb=16384.0, disk_gb=40.0)


async def test_agentbay_listing_shares_label_keys_and_states() -> None:
    """Each session's labels are a JSON document of their own: their keys are interned, and so
    is the state text, so the listed Instances hold one object each (issue 10, RSS)."""
    from opcockpit.adapters.providers.agentbay import AgentBayAdapter
    from opcockpit.doubles.agentbay import AgentBayDouble

    with AgentBayDouble(api_key="k-test") as double:
        for k in range(3):
            double.add(state="running", labels={"leon.context_id": f"leon-lease-{k}"})
        adapter = AgentBayAdapter("agentbay", base_url=double.url, api_key="k-test")
        try:
            listing = await adapter.list_instances()
        finally:
            await adapter.aclose()
    _one_key_and_state_object(listing)
