"""DockerAdapter against a real engine: podman 4.3's Docker-compatible API on a private socket
(tests/fixtures/podman.py). Same lifecycle contract and Docker scenarios as the doubles, plus the
podman answers the adapter has to see through (500 instead of 409, `remove`, paused hidden
without all=1). Skipped without podman on a dev machine; fails in CI (OPCOCKPIT_CI=1)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from opcockpit.adapters.providers.docker import DockerAdapter
from opcockpit.domain.models import NormalState
from opcockpit.ports.provider import ActionOutcome
from tests.fixtures.podman import PodmanEngine, podman_engine, podman_leon  # noqa: F401
from tests.providers.conftest_docker import DockerScenarios, EventTap, Made
from tests.providers.contract import LifecycleContract

pytestmark = pytest.mark.podman


class PodmanBackend:
    flavor = "podman"

    def __init__(self, engine: PodmanEngine) -> None:
        self.engine = engine
        self.host = engine.host

    def make(
        self,
        state: str = "running",
        *,
        lease_id: str | None = None,
        labels: dict[str, str] | None = None,
        leon: bool = True,
    ) -> Made:
        c = self.engine.run_leon(lease_id=lease_id, state=state, extra_labels=labels, leon=leon)
        return Made(c.name, c.id, c.name)

    def set_state(self, instance_id: str, state: str) -> None:
        current = self.engine.state_of(instance_id)
        if state == "paused":
            self.engine.cli("pause", instance_id)
        elif state == "running":
            self.engine.cli("unpause" if current == "paused" else "start", instance_id)
        elif state == "stopped":
            self.engine.cli("kill", instance_id)
            self.engine.cli("wait", instance_id, check=False)
        else:
            raise ValueError(state)

    def vanish(self, instance_id: str) -> None:
        self.engine.cli("rm", "-f", "-t", "0", instance_id)


@pytest.fixture
def backend(podman_leon: PodmanEngine) -> PodmanBackend:  # noqa: F811
    return PodmanBackend(podman_leon)


@pytest.fixture
def secret() -> None:
    return None


@pytest.fixture
async def make_adapter(podman_leon: PodmanEngine) -> AsyncIterator[Any]:  # noqa: F811
    made: list[DockerAdapter] = []

    def _make(**kw: Any) -> DockerAdapter:
        kw.pop("api_key", None)
        kw.setdefault("host", podman_leon.host)
        kw.setdefault("events_backoff_s", (0.05, 0.5))
        adapter = DockerAdapter("docker", **kw)
        made.append(adapter)
        return adapter

    yield _make
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def seed(backend: PodmanBackend) -> Any:
    def _seed(state: str = "running", labels: dict[str, str] | None = None) -> str:
        labels = dict(labels or {})
        lease = labels.pop("lease_id", None)
        return backend.make(state, lease_id=lease, labels=labels).instance_id

    return _seed


@pytest.fixture
def vanish(backend: PodmanBackend) -> Any:
    return backend.vanish


@pytest.fixture
def set_state(backend: PodmanBackend) -> Any:
    return backend.set_state


class TestPodmanContract(LifecycleContract):
    page_size = None


class TestPodmanScenarios(DockerScenarios):
    pass


# --------------------------------------------------------------------------- podman's own answers


@pytest.fixture
def raw(podman_leon: PodmanEngine) -> Any:  # noqa: F811
    with httpx.Client(
        transport=httpx.HTTPTransport(uds=str(podman_leon.socket_path)), base_url="http://d"
    ) as c:
        yield c


def test_engine_answers_the_way_the_adapter_expects(podman_leon: PodmanEngine, raw: httpx.Client) -> None:  # noqa: F811
    """Pin the podman behaviour the adapter's mapping relies on (provider-apis.md §5), so a
    podman upgrade that changes it shows up here rather than as a wrong ActionOutcome."""
    c = podman_leon.run_leon(lease_id="L-raw")
    assert raw.get("/v1.41/_ping").text == "OK"
    assert raw.post(f"/v1.41/containers/{c.name}/pause").status_code == 204
    again = raw.post(f"/v1.41/containers/{c.name}/pause")
    assert again.status_code == 500 and "already paused" in again.json()["message"]
    # paused is hidden from the default list (Docker shows it), present with all=1
    default = raw.get("/v1.41/containers/json").json()
    assert c.id not in {x["Id"] for x in default}
    everything = raw.get("/v1.41/containers/json", params={"all": "1"}).json()
    assert c.id in {x["Id"] for x in everything}
    assert raw.post(f"/v1.41/containers/{c.name}/unpause").status_code == 204
    assert raw.post(f"/v1.41/containers/{c.name}/unpause").status_code == 500
    assert raw.delete(f"/v1.41/containers/{c.name}").status_code == 500  # running, no force
    # (a force-remove of a *running* container would take podman's 10 s stop timeout: `sleep`
    # as PID 1 ignores SIGTERM. That is why DockerAdapter.destroy kills first.)
    assert raw.post(f"/v1.41/containers/{c.name}/kill").status_code == 204
    podman_leon.cli("wait", c.name, check=False)
    assert raw.post(f"/v1.41/containers/{c.name}/kill").status_code == 500  # moby: 409
    assert raw.post(f"/v1.41/containers/{c.name}/pause").status_code == 500  # exited
    assert raw.delete(f"/v1.41/containers/{c.name}", params={"force": "1"}).status_code == 204
    gone = raw.delete(f"/v1.41/containers/{c.name}", params={"force": "1"})
    assert gone.status_code == 404 and gone.json()["cause"] == "no such container"


def test_events_key_only_label_filter_matches_nothing_on_podman(
    podman_leon: PodmanEngine,  # noqa: F811
    raw: httpx.Client,
) -> None:
    """Why the adapter applies key-only label filters client-side for events."""
    c = podman_leon.run_leon()
    podman_leon.cli("pause", c.name)
    podman_leon.cli("unpause", c.name)

    def replay(label: str) -> list[str]:
        params = {
            "since": "0",
            "until": str(int(time.time()) + 1),  # in the future: the replay closes there
            "filters": json.dumps({"type": ["container"], "label": [label]}),
        }
        body = raw.get("/v1.41/events", params=params, timeout=30).text
        return [json.loads(line)["Action"] for line in body.splitlines() if line.strip()]

    assert "pause" in replay(f"leon.session_id={c.name}")
    assert replay("leon.session_id") == []


async def test_default_list_is_one_request_with_all(podman_leon: PodmanEngine, make_adapter: Any) -> None:  # noqa: F811
    c = podman_leon.run_leon(state="paused", lease_id="L-list")
    adapter = make_adapter()
    await adapter.list_instances()  # the first call also asks the engine's /version, once
    assert adapter.request_count == 2
    assert adapter._api_prefix == "/v1.41"  # podman 4.3 serves the version this adapter prefers
    before = adapter.request_count
    by_id = {i.instance_id: i for i in await adapter.list_instances()}
    assert adapter.request_count - before == 1
    inst = by_id[c.name]
    assert (inst.state, inst.claimed_lease_id) == (NormalState.PAUSED, "L-list")
    assert inst.aliases[:2] == (c.id, c.short_id)


async def test_destroy_paused_container(podman_leon: PodmanEngine, make_adapter: Any) -> None:  # noqa: F811
    c = podman_leon.run_leon(state="paused")
    adapter = make_adapter()
    assert (await adapter.destroy(c.name)).outcome is ActionOutcome.DONE
    assert podman_leon.state_of(c.name) is None


async def test_events_survive_a_service_restart_without_duplicates(
    podman_leon: PodmanEngine,  # noqa: F811
    make_adapter: Any,
) -> None:
    """The stream breaks when the service goes away; the adapter reconnects with `since` and
    podman replays from its events file (it ignores the fraction of `<sec>.<nanos>`, so the
    replay starts at the whole second and the adapter drops what it already delivered)."""
    c = podman_leon.run_leon()
    adapter = make_adapter()
    tap = EventTap(adapter)
    try:
        await tap.start(lambda n: podman_leon.cli("pause" if n % 2 else "unpause", c.name))
        n0 = len(tap.got)
        podman_leon.cli("unpause" if podman_leon.state_of(c.name) == "paused" else "pause", c.name)
        await tap.wait(lambda evs: len(evs) > n0)
        podman_leon.stop_service()
        podman_leon.cli("kill", c.name)  # happens while nobody streams
        podman_leon.cli("wait", c.name, check=False)
        podman_leon.restart_service()
        await tap.wait(lambda evs: any(e.action == "die" for e in evs))
        podman_leon.cli("start", c.name)
        await tap.wait(lambda evs: any(e.action == "start" for e in evs[n0:]))
    finally:
        await tap.close()
    keys = [(e.at, e.action) for e in tap.got]
    assert len(set(keys)) == len(keys), "an event was delivered twice"
    tail = [e.action for e in tap.got[n0 + 1 :]]
    assert tail[: tail.index("die") + 1] in (["kill", "die"], ["die"]), tail
