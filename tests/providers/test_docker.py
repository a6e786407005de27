"""DockerAdapter against the loopback DockerDouble, in both flavors (docker and podman semantics):
the shared adapter contract, the Docker scenarios, and what only a double can show (faults,
reconnects, odd states)."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opcockpit.adapters.providers.docker import DockerAdapter, normalise_state
from opcockpit.adapters.providers.registry import build_adapter
from opcockpit.domain.models import NormalState
from opcockpit.doubles.base import Response
from opcockpit.doubles.docker import DockerDouble
from opcockpit.ports.provider import ActionOutcome, NotFound, ProviderError, Unavailable
from opcockpit.settings.config import ProviderConfig
from tests.providers.conftest_docker import DockerScenarios, EventTap, Made
from tests.providers.contract import AdapterContract

FAST_EVENTS = (0.01, 0.05)


@pytest.fixture(scope="module")
def sock_dir() -> Iterator[Path]:
    # Short path: unix socket paths are limited to 108 bytes; pytest's tmp_path can exceed that.
    path = Path(tempfile.mkdtemp(prefix="opc-dd-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["docker", "podman"])
def flavor(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def double(flavor: str, sock_dir: Path, request: pytest.FixtureRequest) -> Iterator[DockerDouble]:
    path = sock_dir / f"{abs(hash(request.node.nodeid)) % 10**8}.sock"
    with DockerDouble(unix_path=str(path), flavor=flavor) as d:  # type: ignore[arg-type]
        yield d


@pytest.fixture
def secret() -> None:
    return None  # Docker has no API key: access is the socket's permissions


@pytest.fixture
async def make_adapter(double: DockerDouble) -> AsyncIterator[Any]:
    made: list[DockerAdapter] = []

    def _make(**kw: Any) -> DockerAdapter:
        kw.pop("api_key", None)
        kw.setdefault("host", double.host)
        kw.setdefault("events_backoff_s", FAST_EVENTS)
        adapter = DockerAdapter("docker", **kw)
        made.append(adapter)
        return adapter

    yield _make
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def seed(double: DockerDouble) -> Any:
    """Contract seeding the LEON way: a `lease_id` becomes leon.context_id=leon-<lease_id>."""

    def _seed(state: str = "running", labels: dict[str, str] | None = None) -> str:
        labels = dict(labels or {})
        lease = labels.pop("lease_id", None)
        if lease:
            labels["leon.context_id"] = f"leon-{lease}"
        return double.add(state=state, labels=labels).instance_id

    return _seed


class DoubleBackend:
    def __init__(self, double: DockerDouble) -> None:
        self.double = double
        self.flavor = double.flavor
        self.host = double.host

    def make(
        self,
        state: str = "running",
        *,
        lease_id: str | None = None,
        labels: dict[str, str] | None = None,
        leon: bool = True,
    ) -> Made:
        labels = dict(labels or {})
        if lease_id and leon:
            labels["leon.context_id"] = f"leon-{lease_id}"
        inst = self.double.add(state=state, labels=labels, leon=leon)
        return Made(inst.instance_id, inst.extra["docker_id"], inst.name or inst.instance_id)

    def set_state(self, instance_id: str, state: str) -> None:
        self.double.set_state(instance_id, state)

    def vanish(self, instance_id: str) -> None:
        self.double.remove(instance_id)


@pytest.fixture
def backend(double: DockerDouble) -> DoubleBackend:
    return DoubleBackend(double)


class TestDockerDoubleContract(AdapterContract):
    page_size = None  # the Engine API does not paginate


class TestDockerDoubleScenarios(DockerScenarios):
    pass


# --------------------------------------------------------------------------- double-only cases


def test_state_normalisation_table() -> None:
    expected = {
        "running": NormalState.RUNNING,
        "paused": NormalState.PAUSED,
        "exited": NormalState.STOPPED,
        "dead": NormalState.STOPPED,
        "stopped": NormalState.STOPPED,
        "created": NormalState.TRANSITIONING,
        "restarting": NormalState.TRANSITIONING,
        "removing": NormalState.TRANSITIONING,
        "weird": NormalState.UNKNOWN,
        "": NormalState.UNKNOWN,
    }
    assert {raw: normalise_state(raw) for raw in expected} == expected


async def test_odd_native_states_are_listed_normalised(double: DockerDouble, make_adapter: Any) -> None:
    ids = {raw: double.add(state=raw).instance_id for raw in ("created", "dead", "restarting")}
    ids["stopped"] = double.add(state="stopped").instance_id
    double.instances[ids["stopped"]].state = "stopped"  # podman's non-Docker word (podman#28359)
    by_id = {i.instance_id: i for i in await make_adapter().list_instances()}
    assert by_id[ids["created"]].state is NormalState.TRANSITIONING
    assert by_id[ids["restarting"]].state is NormalState.TRANSITIONING
    assert by_id[ids["dead"]].state is NormalState.STOPPED
    assert (by_id[ids["stopped"]].raw_state, by_id[ids["stopped"]].state) == ("stopped", NormalState.STOPPED)


async def test_session_label_differing_from_name_is_resolved_by_label(
    double: DockerDouble, make_adapter: Any
) -> None:
    # LEON's own lookup is `docker ps --filter label=leon.session_id=<id>`; follow it when the
    # session id is not also the container name.
    inst = double.add("sess-0001", name="leon-0123456789ab", labels={"leon.context_id": "leon-L9"})
    adapter = make_adapter()
    got = await adapter.get_instance("sess-0001")
    assert (got.instance_id, got.name, got.claimed_lease_id) == ("sess-0001", "leon-0123456789ab", "L9")
    assert got.claimed_lease_id is sys.intern("L9")  # sandbox.db's lease ids are interned: one object
    assert "leon-0123456789ab" in got.aliases
    assert (await adapter.pause("sess-0001")).outcome is ActionOutcome.DONE
    assert double.instances["sess-0001"].state == "paused"
    assert (await adapter.destroy("sess-0001")).outcome is ActionOutcome.DONE
    assert inst.instance_id not in double.instances


async def test_unlabelled_container_uses_name_and_cockpit_label(
    double: DockerDouble, make_adapter: Any
) -> None:
    inst = double.add("plain-box", leon=False, labels={"cockpit.lease_id": "L-cockpit"})
    adapter = make_adapter(label_filter={})
    got = {i.instance_id: i for i in await adapter.list_instances()}["plain-box"]
    assert got.claimed_lease_id == "L-cockpit"
    assert got.aliases == (inst.extra["docker_id"], inst.extra["docker_id"][:12])


async def test_list_sends_all_and_default_label_filter(double: DockerDouble, make_adapter: Any) -> None:
    seen: list[dict[str, list[str]]] = []
    original = double.dispatch

    def spy(request: Any) -> Response:
        if request.path.endswith("/containers/json"):
            seen.append(request.query)
        return original(request)

    double.dispatch = spy  # type: ignore[method-assign]
    await make_adapter().list_instances()
    await make_adapter(label_filter={"team": "a", "present": "*"}).list_instances()
    assert seen[0]["all"] == ["1"]
    assert json.loads(seen[0]["filters"][0]) == {"label": ["leon.session_id"]}
    assert json.loads(seen[1]["filters"][0]) == {"label": ["team=a", "present"]}
    assert all(q.get("all") == ["1"] for q in seen)


async def test_unpause_500_on_running_is_already_only_after_inspect(
    double: DockerDouble, make_adapter: Any
) -> None:
    iid = double.add(state="running").instance_id
    adapter = make_adapter()
    before = double.requests_by_route.copy()
    result = await adapter.resume(iid)
    assert result.outcome is ActionOutcome.ALREADY and result.detail == "running"
    inspects = sum(
        v for k, v in double.requests_by_route.items() if k.endswith("/json$") and "containers/" in k
    )
    inspects_before = sum(v for k, v in before.items() if k.endswith("/json$") and "containers/" in k)
    assert inspects == inspects_before + 1  # confirmed by state, not by the message text


async def test_engine_failure_on_pause_of_running_is_unavailable(flavor: str, sock_dir: Path) -> None:
    class Broken(DockerDouble):
        def _pause(self, request: Any, cid: str) -> Response:  # freezer failure, say
            return self._error(500, "cgroup freezer: write failed", "internal")

    with Broken(unix_path=str(sock_dir / f"broken-{flavor}.sock"), flavor=flavor) as d:  # type: ignore[arg-type]
        iid = d.add(state="running").instance_id
        adapter = DockerAdapter("docker", host=d.host, retries=0)
        try:
            with pytest.raises(Unavailable) as info:
                await adapter.pause(iid)
            assert "freezer" in str(info.value) and "running" in str(info.value)
        finally:
            await adapter.aclose()


async def test_destroy_while_removal_in_progress_is_accepted(double: DockerDouble, make_adapter: Any) -> None:
    iid = double.add(state="removing").instance_id
    original = double._delete

    def in_progress(request: Any, cid: str) -> Response:
        return double._error(409, f"removal of container {cid} is already in progress")

    double.router.routes = [r for r in double.router.routes if r.handler != original]
    double.router.add("DELETE", r"(?:/v\d+\.\d+)?/containers/(?P<cid>[^/]+)", in_progress)
    result = await make_adapter().destroy(iid)
    assert (result.outcome, result.state) == (ActionOutcome.ACCEPTED, NormalState.TRANSITIONING)


async def test_inspect_gives_resources_and_times(double: DockerDouble, make_adapter: Any) -> None:
    inst = double.add(state="running", cpu=1.5, memory_mb=512)
    got = await make_adapter().get_instance(inst.instance_id)
    assert got.resources is not None
    assert (got.resources.cpu_count, got.resources.memory_mb) == (1.5, 512)
    assert got.created_at is not None and abs((got.created_at - inst.created_at).total_seconds()) < 1
    assert got.started_at is not None


async def test_docker_host_env_is_used_when_host_unset(
    double: DockerDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    iid = double.add(state="paused").instance_id
    monkeypatch.setenv("DOCKER_HOST", double.host)
    for adapter in (DockerAdapter("docker"), build_adapter(ProviderConfig(name="docker", kind="docker"))):
        try:
            assert adapter.host == double.host  # type: ignore[attr-defined]
            listing = await adapter.list_instances()
            assert {i.instance_id: i.state for i in listing} == {iid: NormalState.PAUSED}
        finally:
            await adapter.aclose()


async def test_tcp_host() -> None:
    with DockerDouble(flavor="docker") as d:
        iid = d.add(state="running").instance_id
        assert d.host.startswith("tcp://127.0.0.1:")
        adapter = DockerAdapter("docker", host=d.host)
        try:
            assert [i.instance_id for i in await adapter.list_instances()] == [iid]
            assert (await adapter.pause(iid)).outcome is ActionOutcome.DONE
        finally:
            await adapter.aclose()


def test_unsupported_host_is_rejected() -> None:
    with pytest.raises(ProviderError, match="npipe"):
        DockerAdapter("docker", host="npipe:////./pipe/docker_engine")


async def test_events_reconnect_after_stream_errors(double: DockerDouble, make_adapter: Any) -> None:
    iid = double.add(state="running").instance_id
    double.faults.error_status, double.faults.error_times = 503, 3  # first connects fail
    adapter = make_adapter()
    tap = EventTap(adapter)
    try:
        await tap.start(lambda n: double.set_state(iid, "paused" if n % 2 else "running"))
    finally:
        await tap.close()
    assert tap.got[0].instance_id == iid
    assert double.faults.error_status is None  # the failing attempts really happened


async def test_events_resume_with_since_and_no_duplicates(flavor: str, sock_dir: Path) -> None:
    class Flaky(DockerDouble):
        """Closes every event stream after two events: the adapter must reconnect with `since`,
        and what the engine replays must not be delivered twice (nor older events it never saw)."""

        def _event_stream(self, *args: Any, **kw: Any) -> Iterator[bytes]:
            for n, chunk in enumerate(super()._event_stream(*args, **kw)):
                yield chunk
                if n == 1:
                    return

    with Flaky(unix_path=str(sock_dir / f"flaky-{flavor}.sock"), flavor=flavor) as d:  # type: ignore[arg-type]
        iid = d.add(state="running").instance_id
        adapter = DockerAdapter("docker", host=d.host, events_backoff_s=FAST_EVENTS)
        tap = EventTap(adapter)
        try:
            await tap.start(lambda n: d.set_state(iid, "paused" if n % 2 else "running"))
            n0 = len(tap.got)
            for state in ("stopped", "running", "paused", "running"):
                d.set_state(iid, state)
            await tap.wait(lambda evs: len(evs) >= n0 + 5)
            await asyncio.sleep(0.3)  # room for a duplicate to show up, were there one
        finally:
            await tap.close()
            await adapter.aclose()
        assert [e.action for e in tap.got[n0:]] == ["kill", "die", "start", "pause", "unpause"]
        assert len({(e.at, e.action) for e in tap.got}) == len(tap.got)


async def test_event_stream_parser_handles_split_and_concatenated_json() -> None:
    from opcockpit.adapters.providers.docker import _json_stream

    raw = [{"Action": "pause", "n": i} for i in range(3)]
    text = json.dumps(raw[0]) + "\n" + json.dumps(raw[1]) + json.dumps(raw[2]) + "\n"
    chunks = [text[i : i + 7].encode() for i in range(0, len(text), 7)]

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    response = httpx.Response(200, content=body())
    adapter = DockerAdapter("docker", host="unix:///nonexistent.sock")
    try:
        assert [v async for v in _json_stream(response, adapter)] == raw
    finally:
        await adapter.aclose()


async def test_ids_unsafe_in_a_path_go_through_the_label_lookup(
    double: DockerDouble, make_adapter: Any
) -> None:
    double.add("odd/id?x=1#y", name="leon-00000000feed")
    adapter = make_adapter()
    assert (await adapter.get_instance("odd/id?x=1#y")).name == "leon-00000000feed"
    assert (await adapter.pause("odd/id?x=1#y")).outcome is ActionOutcome.DONE
    assert double.instances["odd/id?x=1#y"].state == "paused"
    with pytest.raises(NotFound):
        await adapter.get_instance("../../_ping")
    assert (await adapter.destroy("../../_ping")).outcome is ActionOutcome.ALREADY
