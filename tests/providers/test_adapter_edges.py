"""Branches each adapter must get exactly right (issue 16 item 13): wrong-shape answers to list and
get, 409 on destroy, the Docker /events stream dropping and reconnecting, E2B's event-poll
backoff. Every provider is its double on 127.0.0.1 (Docker's on a unix socket); a test answers a
route differently by putting a handler in front of the double's own.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opcockpit.adapters.providers import docker as docker_module
from opcockpit.adapters.providers import e2b as e2b_module
from opcockpit.adapters.providers.agentbay import AgentBayAdapter
from opcockpit.adapters.providers.daytona import DaytonaAdapter
from opcockpit.adapters.providers.docker import DockerAdapter
from opcockpit.adapters.providers.e2b import E2BAdapter
from opcockpit.domain.models import NormalState
from opcockpit.doubles.agentbay import AgentBayDouble, error_body
from opcockpit.doubles.base import FakeProvider, Request, Response
from opcockpit.doubles.daytona import DaytonaDouble
from opcockpit.doubles.docker import DockerDouble
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.ports.provider import (
    ActionOutcome,
    AuthFailed,
    Conflict,
    ProtocolError,
    ProviderEvent,
)
from tests.providers.conftest_docker import EventTap

SECRET = "kx-Zq7xSECRETvalue-edges"


def answer(double: FakeProvider, method: str, pattern: str, reply: Callable[..., Response]) -> None:
    """Serve `method pattern` with `reply` ahead of the double's own route."""
    double.router.add(method, pattern, reply)
    double.router.routes.insert(0, double.router.routes.pop())


def body(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Callable[..., Response]:
    # Route handlers get (request, **groups); AgentBay's action handlers get (request, form).
    return lambda *args, **kw: Response(status, payload, dict(headers or {}))


class RecordingAsyncio:
    """Stands in for `asyncio` inside one adapter module: `sleep` records the delay asked for,
    calls `on_sleep(n)` (the world may change "meanwhile") and yields at once."""

    def __init__(self, on_sleep: Callable[[int], None] | None = None) -> None:
        self.delays: list[float] = []
        self.on_sleep = on_sleep

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float, result: Any = None) -> Any:
        self.delays.append(delay)
        if self.on_sleep is not None:
            self.on_sleep(len(self.delays))
        await asyncio.sleep(0)
        return result


async def protocol_error(awaitable: Any) -> str:
    with pytest.raises(ProtocolError) as info:
        await awaitable
    assert type(info.value) is ProtocolError
    return str(info.value)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def e2b() -> Iterator[E2BDouble]:
    with E2BDouble(api_key=SECRET) as d:
        yield d


@pytest.fixture
def daytona() -> Iterator[DaytonaDouble]:
    with DaytonaDouble(api_key=SECRET, transition_s=0.05) as d:
        yield d


@pytest.fixture
def agentbay() -> Iterator[AgentBayDouble]:
    with AgentBayDouble(api_key=SECRET, transition_s=0.05) as d:
        yield d


@pytest.fixture
def docker() -> Iterator[DockerDouble]:
    where = Path(tempfile.mkdtemp(prefix="opc-ae-"))
    with DockerDouble(unix_path=str(where / "d.sock")) as d:
        yield d
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
async def adapters() -> AsyncIterator[list[Any]]:
    made: list[Any] = []
    yield made
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def e2b_adapter(e2b: E2BDouble, adapters: list[Any]) -> Callable[..., E2BAdapter]:
    def _make(**kw: Any) -> E2BAdapter:
        kw.setdefault("retries", 0)
        adapter = E2BAdapter("e2b", base_url=e2b.url, api_key=SECRET, page_size=2, **kw)
        adapters.append(adapter)
        return adapter

    return _make


@pytest.fixture
def daytona_adapter(daytona: DaytonaDouble, adapters: list[Any]) -> DaytonaAdapter:
    adapter = DaytonaAdapter("daytona", base_url=daytona.api_url, api_key=SECRET, page_size=2, retries=0)
    adapters.append(adapter)
    return adapter


@pytest.fixture
def agentbay_adapter(agentbay: AgentBayDouble, adapters: list[Any]) -> AgentBayAdapter:
    adapter = AgentBayAdapter(
        "agentbay", base_url=agentbay.url, api_key=SECRET, page_size=2, retries=0, poll_interval_s=0.01
    )
    adapters.append(adapter)
    return adapter


@pytest.fixture
def docker_adapter(docker: DockerDouble, adapters: list[Any]) -> DockerAdapter:
    adapter = DockerAdapter("docker", host=docker.host, retries=0, events_backoff_s=(0.01, 0.05))
    adapters.append(adapter)
    return adapter


# --------------------------------------------------------------------------- wrong shapes: E2B


@pytest.mark.parametrize(
    ("payload", "headers", "detail"),
    [
        ({"sandboxes": []}, {}, "expected a JSON array, got dict"),
        ('"[]"', {}, "expected a JSON array, got str"),
        ([1], {}, "sandbox without a sandboxID"),
        ([{"sandboxID": 7, "state": "running"}], {}, "sandbox without a sandboxID"),
        ([], {"X-Total-Running": "many"}, "X-Total-Running is not a count: 'many'"),
        ([], {"X-Total-Running": "-1"}, "X-Total-Running is not a count: '-1'"),
    ],
)
async def test_e2b_wrong_shape_listing(
    e2b: E2BDouble, e2b_adapter: Callable[..., E2BAdapter], payload: Any, headers: dict[str, str], detail: str
) -> None:
    answer(e2b, "GET", "/v2/sandboxes", body(payload, headers=headers))
    assert await protocol_error(e2b_adapter().list_instances()) == f"e2b: GET /v2/sandboxes: {detail}"


@pytest.mark.parametrize("payload", [[], b"null", {"state": "running"}, {"sandboxID": None}])
async def test_e2b_wrong_shape_get(
    e2b: E2BDouble, e2b_adapter: Callable[..., E2BAdapter], payload: Any
) -> None:
    answer(e2b, "GET", "/sandboxes/sbx-1", body(payload))
    text = await protocol_error(e2b_adapter().get_instance("sbx-1"))
    assert text == "e2b: GET /sandboxes/sbx-1: sandbox without a sandboxID"


async def test_e2b_unknown_state_word_is_unknown_not_an_error(
    e2b: E2BDouble, e2b_adapter: Callable[..., E2BAdapter]
) -> None:
    answer(e2b, "GET", "/sandboxes/sbx-1", body({"sandboxID": "sbx-1", "state": "hibernating"}))
    inst = await e2b_adapter().get_instance("sbx-1")
    assert (inst.raw_state, inst.state) == ("hibernating", NormalState.UNKNOWN)


# --------------------------------------------------------------------------- wrong shapes: Daytona


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ([], 'expected {"items": [...], "nextCursor": ...}'),
        ({"items": {}}, 'expected {"items": [...], "nextCursor": ...}'),
        ({"nextCursor": None}, 'expected {"items": [...], "nextCursor": ...}'),
        ({"items": [], "nextCursor": 5}, "nextCursor is not a string"),
        ({"items": [{"name": "x"}], "nextCursor": None}, "sandbox without an id"),
        ({"items": ["x"], "nextCursor": None}, "sandbox without an id"),
    ],
)
async def test_daytona_wrong_shape_listing(
    daytona: DaytonaDouble, daytona_adapter: DaytonaAdapter, payload: Any, detail: str
) -> None:
    answer(daytona, "GET", "/api/sandbox", body(payload))
    assert await protocol_error(daytona_adapter.list_instances()) == f"daytona: GET /sandbox: {detail}"


async def test_daytona_total_of_the_wrong_type_is_ignored(
    daytona: DaytonaDouble, daytona_adapter: DaytonaAdapter
) -> None:
    for total in ("3", True, -1, 2.5):
        answer(daytona, "GET", "/api/sandbox", body({"items": [], "nextCursor": None, "total": total}))
        assert await daytona_adapter.list_instances() == []


@pytest.mark.parametrize("payload", [[], {"state": "started"}, {"id": 3}])
async def test_daytona_wrong_shape_get(
    daytona: DaytonaDouble, daytona_adapter: DaytonaAdapter, payload: Any
) -> None:
    answer(daytona, "GET", "/api/sandbox/sbx-1", body(payload))
    text = await protocol_error(daytona_adapter.get_instance("sbx-1"))
    assert text == "daytona: GET /sandbox/sbx-1: sandbox without an id"


# --------------------------------------------------------------------------- wrong shapes: AgentBay


def _ok(**fields: Any) -> dict[str, Any]:
    return {"RequestId": "r", "Success": True, "Code": "", "HttpStatusCode": 200, **fields}


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (_ok(Data={"SessionId": "s-1"}), "Data is not a session list"),
        (_ok(Data=[{"SessionId": 1}]), "Data is not a session list"),
        (_ok(Data=["s-1"]), "Data is not a session list"),
        ([_ok()], "expected a JSON object, got list"),
    ],
)
async def test_agentbay_wrong_shape_listing(
    agentbay: AgentBayDouble, agentbay_adapter: AgentBayAdapter, payload: Any, detail: str
) -> None:
    agentbay._list_session = body(payload)  # type: ignore[method-assign]
    text = await protocol_error(agentbay_adapter.list_instances())
    assert text == f"agentbay: POST /?Action=ListSession: {detail}"


@pytest.mark.parametrize(
    ("action", "payload", "detail"),
    [
        ("GetSession", _ok(Data={"SessionId": "s-1"}), "Data.Status missing"),
        ("GetSession", _ok(Data=[]), "Data.Status missing"),
        ("GetSession", _ok(Data={"Status": 3}), "Data.Status missing"),
        ("GetLabel", _ok(Data={"Labels": "{not json"}), "Data.Labels is not JSON"),
        ("GetLabel", _ok(Data={"Labels": "[1, 2]"}), "Data.Labels is not a JSON object"),
    ],
)
async def test_agentbay_wrong_shape_get(
    agentbay: AgentBayDouble, agentbay_adapter: AgentBayAdapter, action: str, payload: Any, detail: str
) -> None:
    sid = agentbay.add(state="running").instance_id
    setattr(agentbay, {"GetSession": "_get_session", "GetLabel": "_get_label"}[action], body(payload))
    text = await protocol_error(agentbay_adapter.get_instance(sid))
    assert text == f"agentbay: POST /?Action={action}: {detail}"


# --------------------------------------------------------------------------- wrong shapes: Docker


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"Containers": []}, "GET /v1.41/containers/json: expected a JSON array, got dict"),
        ([{"Names": ["/x"]}], "container list item without an Id"),
        ([{"Id": "abc", "Labels": ["a=b"]}], "container abc: Labels/Names malformed"),
        ([{"Id": "abc", "Names": "/x"}], "container abc: Labels/Names malformed"),
    ],
)
async def test_docker_wrong_shape_listing(
    docker: DockerDouble, docker_adapter: DockerAdapter, payload: Any, detail: str
) -> None:
    answer(docker, "GET", r"(?:/v\d+\.\d+)?/containers/json", body(payload))
    assert await protocol_error(docker_adapter.list_instances()) == f"docker: {detail}"


@pytest.mark.parametrize("payload", [[], {"Name": "/x"}, {"Id": 5}])
async def test_docker_wrong_shape_inspect(
    docker: DockerDouble, docker_adapter: DockerAdapter, payload: Any
) -> None:
    answer(docker, "GET", r"(?:/v\d+\.\d+)?/containers/leon-abc/json", body(payload))
    assert (
        await protocol_error(docker_adapter.get_instance("leon-abc"))
        == "docker: container inspect without an Id"
    )


# --------------------------------------------------------------------------- 409 on destroy


async def test_e2b_destroy_409_is_conflict_not_retried(
    e2b: E2BDouble, e2b_adapter: Callable[..., E2BAdapter]
) -> None:
    iid = e2b.add().instance_id
    answer(
        e2b,
        "DELETE",
        f"/sandboxes/{iid}",
        body({"code": 409, "message": "sandbox is being snapshotted"}, 409),
    )
    adapter = e2b_adapter(retries=3)
    with pytest.raises(Conflict) as info:
        await adapter.destroy(iid)
    assert str(info.value) == f"e2b: DELETE /sandboxes/{iid} -> HTTP 409: sandbox is being snapshotted"
    assert adapter.request_count == 1
    assert iid in e2b.instances


async def test_daytona_destroy_409_then_gone_is_already(
    daytona: DaytonaDouble, daytona_adapter: DaytonaAdapter
) -> None:
    answer(daytona, "DELETE", "/api/sandbox/sbx-gone", body({"statusCode": 409, "message": "pending"}, 409))
    result = await daytona_adapter.destroy("sbx-gone")  # GET answers 404: it is gone
    assert (result.outcome, result.state, result.detail) == (
        ActionOutcome.ALREADY,
        NormalState.GONE,
        "already gone",
    )


async def test_daytona_destroy_409_while_destroying_is_already(
    daytona: DaytonaDouble, daytona_adapter: DaytonaAdapter
) -> None:
    iid = daytona.add(state="running").instance_id
    assert (await daytona_adapter.destroy(iid)).outcome is ActionOutcome.ACCEPTED  # now destroying
    daytona.transition_s = 60.0
    daytona.instances[iid].pending = ("__gone__", float("inf"))  # stays destroying
    result = await daytona_adapter.destroy(iid)  # the double answers 409 (state change in progress)
    assert (result.outcome, result.state, result.detail) == (
        ActionOutcome.ALREADY,
        NormalState.TRANSITIONING,
        "already destroying",
    )


async def test_daytona_destroy_409_while_stopping_is_conflict(
    daytona: DaytonaDouble, daytona_adapter: DaytonaAdapter
) -> None:
    iid = daytona.add(state="running").instance_id
    await daytona_adapter.pause(iid)
    daytona.instances[iid].pending = ("stopped", float("inf"))
    with pytest.raises(Conflict) as info:
        await daytona_adapter.destroy(iid)
    assert str(info.value) == f"daytona: DELETE /sandbox/{iid} -> HTTP 409: Sandbox state change in progress"


async def test_docker_destroy_409_then_gone_is_already(
    docker: DockerDouble, docker_adapter: DockerAdapter
) -> None:
    iid = docker.add(state="running").instance_id

    def conflict_then_vanish(request: Request, **_: Any) -> Response:
        docker.remove(iid)  # someone else's removal finished meanwhile
        return docker._error(409, "removal of container is already in progress")

    answer(docker, "DELETE", r"(?:/v\d+\.\d+)?/containers/[^/]+", conflict_then_vanish)
    result = await docker_adapter.destroy(iid)
    assert (result.outcome, result.state) == (ActionOutcome.ALREADY, NormalState.GONE)


async def test_docker_destroy_409_on_a_live_container_is_conflict(
    docker: DockerDouble, docker_adapter: DockerAdapter
) -> None:
    iid = docker.add(state="paused").instance_id
    answer(
        docker,
        "DELETE",
        r"(?:/v\d+\.\d+)?/containers/[^/]+",
        lambda request, **_: docker._error(409, "container is locked"),
    )
    with pytest.raises(Conflict) as info:
        await docker_adapter.destroy(iid)
    assert type(info.value) is Conflict
    # The kill before the DELETE took it down: the refusal names what is left.
    assert str(info.value).endswith("-> HTTP 409: container is locked (container is exited)")


async def test_agentbay_destroy_refused_is_conflict(
    agentbay: AgentBayDouble, agentbay_adapter: AgentBayAdapter
) -> None:
    sid = agentbay.add(state="running").instance_id
    agentbay._delete = body(  # type: ignore[method-assign]
        error_body("OperationDenied.SessionBusy", "session is busy", 409), 409
    )
    with pytest.raises(Conflict) as info:
        await agentbay_adapter.destroy(sid)
    assert str(info.value) == (
        "agentbay: POST /?Action=DeleteSessionAsync -> HTTP 409:"
        " OperationDenied.SessionBusy (session is busy)"
    )
    assert sid in agentbay.instances


# --------------------------------------------------------------------------- Docker /events stream


async def test_docker_events_reconnect_with_backoff_after_failed_connects(
    docker: DockerDouble, docker_adapter: DockerAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = RecordingAsyncio()
    monkeypatch.setattr(docker_module, "asyncio", recorder)
    iid = docker.add(state="running").instance_id
    docker.faults.error_status, docker.faults.error_times = 503, 3
    tap = EventTap(docker_adapter)
    try:
        await tap.start(lambda n: docker.set_state(iid, "paused" if n % 2 else "running"))
    finally:
        await tap.close()
    assert tap.got[0].instance_id == iid
    # three refused connects (the first request of each is the engine's /version), then
    # /version and the live stream
    assert docker_adapter.request_count == 5
    # Backoff doubles from the low end (jitter up to +50%), capped at the high end.
    low, high = docker_adapter.events_backoff_s
    expected = [low, low * 2, low * 4]
    assert len(recorder.delays) == 3
    for got, base in zip(recorder.delays, expected, strict=True):
        assert min(base, high) <= got <= min(base, high) * 1.5


async def test_docker_events_auth_failure_ends_the_stream(
    docker: DockerDouble, docker_adapter: DockerAdapter
) -> None:
    docker.faults.auth_fail = True
    stream = docker_adapter.events()
    with pytest.raises(AuthFailed):
        await anext(stream)
    assert docker_adapter.request_count == 1


async def test_docker_events_stream_dropped_reconnects_with_since(
    docker: DockerDouble, adapters: list[Any]
) -> None:
    """The engine closes every stream after two events: each reconnect asks `since` the newest
    event delivered, and each event arrives once."""
    seen_since: list[str | None] = []
    original = docker._events

    def one_event_per_stream(request: Request) -> Response:
        seen_since.append(request.q("since"))
        response = original(request)
        assert response.stream is not None
        chunks = iter(response.stream)
        # `since` is inclusive: a reconnect first replays the newest delivered event, so two
        # events per stream are the least that make progress.
        response.stream = itertools.islice(chunks, 2)
        return response

    docker.router.routes = [r for r in docker.router.routes if r.handler != original]
    docker.router.add("GET", r"(?:/v\d+\.\d+)?/events", one_event_per_stream)
    adapter = DockerAdapter("docker", host=docker.host, events_backoff_s=(0.01, 0.02))
    adapters.append(adapter)
    iid = docker.add(state="running").instance_id
    tap = EventTap(adapter)
    try:
        await tap.start(lambda n: docker.set_state(iid, "paused" if n % 2 else "running"))
        n0 = len(tap.got)
        for state in ("paused", "running", "paused", "running"):
            docker.set_state(iid, state)
        await tap.wait(lambda evs: len(evs) >= n0 + 3)
    finally:
        await tap.close()
    assert seen_since[0] is None
    assert len(seen_since) >= 2 and all(s is not None for s in seen_since[1:])
    assert len({(e.at, e.action) for e in tap.got}) == len(tap.got)


# --------------------------------------------------------------------------- E2B event polling


async def _first_event(adapter: E2BAdapter) -> ProviderEvent:
    stream = adapter.events()
    try:
        return await asyncio.wait_for(anext(stream), 10)
    finally:
        await stream.aclose()


async def test_e2b_poll_backs_off_doubling_to_60s_then_resets(
    e2b: E2BDouble, e2b_adapter: Callable[..., E2BAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    def world(n: int) -> None:
        if n == 1:  # after the baseline poll: the next 8 polls fail
            e2b.faults.error_status, e2b.faults.error_times = 503, 8
        if n == 10:  # polling again at the normal pace: something happens
            e2b.add(labels={"lease_id": "L9"})

    recorder = RecordingAsyncio(world)
    monkeypatch.setattr(e2b_module, "asyncio", recorder)
    event = await _first_event(e2b_adapter(events_poll_s=0.5))
    assert event.action == "sandbox.lifecycle.created"
    assert recorder.delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 0.5]


async def test_e2b_poll_asks_a_small_first_page_and_pages_on_for_a_burst(
    e2b: E2BDouble, e2b_adapter: Callable[..., E2BAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10, idle tick: a poll's first page holds 10 events (on a quiet feed it is the page
    that repeats, read and hashed every poll); a burst larger than it is read on from there, in
    order, each event once."""
    for _ in range(25):
        e2b.add()
    asked: list[tuple[str, str]] = []
    e2b.faults.on_request = lambda r: (
        asked.append((r.q("offset"), r.q("limit"))) if r.path.startswith("/events") else None
    )

    burst: list[str] = []

    def world(n: int) -> None:
        if n == 2:  # the second poll finds a burst of 15
            burst.extend(e2b.add(labels={"lease_id": f"B{i}"}).instance_id for i in range(15))

    recorder = RecordingAsyncio(world)
    monkeypatch.setattr(e2b_module, "asyncio", recorder)
    stream = e2b_adapter(events_poll_s=0.5).events()
    try:
        got = [await asyncio.wait_for(anext(stream), 10) for _ in range(15)]
    finally:
        await stream.aclose()
    assert asked[:2] == [("0", "10"), ("0", "10")]  # the baseline, then a quiet poll
    assert asked[2:4] == [("0", "10"), ("10", "100")]  # the burst: on past the first page
    assert [e.instance_id for e in got] == burst  # oldest first, each once


async def test_e2b_poll_honours_retry_after(
    e2b: E2BDouble, e2b_adapter: Callable[..., E2BAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    def world(n: int) -> None:
        if n == 1:  # Retry-After 7 s: beyond ApiClient's 5 s cap, so it surfaces as RateLimited
            e2b.faults.rate_limit_retry_after, e2b.faults.rate_limit_times = 7, 1
        if n == 3:
            e2b.add()

    recorder = RecordingAsyncio(world)
    monkeypatch.setattr(e2b_module, "asyncio", recorder)
    await _first_event(e2b_adapter(events_poll_s=0.5))
    assert recorder.delays == [0.5, 7.0, 0.5]


async def test_e2b_poll_ends_on_auth_failure(
    e2b: E2BDouble, e2b_adapter: Callable[..., E2BAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    def world(n: int) -> None:
        e2b.faults.auth_fail = True

    recorder = RecordingAsyncio(world)
    monkeypatch.setattr(e2b_module, "asyncio", recorder)
    adapter = e2b_adapter(events_poll_s=0.5)
    with pytest.raises(AuthFailed):
        await _first_event(adapter)
    assert recorder.delays == [0.5]
    assert adapter.request_count == 2  # the baseline, then the refused poll
