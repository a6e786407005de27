"""docker 7.2.0 (docker-py) against DockerDouble over a unix socket, both flavors (docker, podman):
the calls the cockpit relies on, asserted on what docker-py parsed. No harness-only override:
docker-py is pointed at the socket as at any engine (`base_url="unix://..."`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opcockpit.doubles.docker import DockerDouble
from tests.conformance.conftest import need_sdk

need_sdk("docker", "docker==7.2.0")
import docker  # noqa: E402
from docker.errors import APIError, NotFound  # noqa: E402

LEASE = "cockpit.lease_id"


@pytest.fixture(params=["docker", "podman"])
def double(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DockerDouble]:
    with DockerDouble(unix_path=str(tmp_path / "engine.sock"), flavor=request.param) as d:
        yield d  # type: ignore[misc]


def _client(double: DockerDouble, version: str = "1.41") -> docker.DockerClient:
    return docker.DockerClient(base_url=double.url, version=version, timeout=10)


def test_list_filters_and_parsed_fields(double: DockerDouble) -> None:
    double.add("leon-aaa", labels={LEASE: "L1", "owner": "cockpit"})
    double.add("leon-bbb", state="paused", labels={LEASE: "L2", "owner": "cockpit"})
    double.add("leon-ccc", state="stopped", labels={LEASE: "L3"})
    double.add("foreign", leon=False)
    client = _client(double)
    every = {c.name: c.status for c in client.containers.list(all=True)}
    assert every == {"leon-aaa": "running", "leon-bbb": "paused", "leon-ccc": "exited", "foreign": "running"}
    default = sorted(c.name for c in client.containers.list())
    # moby lists paused containers as running without all=1; podman hides them
    assert default == (
        ["foreign", "leon-aaa", "leon-bbb"] if double.flavor == "docker" else ["foreign", "leon-aaa"]
    )
    by_label = client.containers.list(all=True, filters={"label": ["owner=cockpit"]})
    assert sorted(c.name for c in by_label) == ["leon-aaa", "leon-bbb"]
    both = client.containers.list(all=True, filters={"label": ["owner=cockpit", f"{LEASE}=L2"]})
    assert [c.name for c in both] == ["leon-bbb"]
    keyed = client.containers.list(all=True, filters={"label": ["leon.session_id"]})
    assert sorted(c.name for c in keyed) == ["leon-aaa", "leon-bbb", "leon-ccc"]
    paused = client.containers.list(filters={"status": "paused"})
    assert [c.name for c in paused] == ["leon-bbb"]
    [c] = client.containers.list(all=True, filters={"label": [f"{LEASE}=L1"]})
    assert c.labels == {LEASE: "L1", "owner": "cockpit", "leon.session_id": "leon-aaa"}
    assert c.id == double.instances["leon-aaa"].extra["docker_id"]


def test_inspect_pause_unpause_kill_remove(double: DockerDouble) -> None:
    double.add("leon-p")
    client = _client(double)
    c = client.containers.get("leon-p")
    assert (c.status, c.attrs["State"]["Running"], c.attrs["State"]["Paused"]) == ("running", True, False)
    assert c.attrs["State"]["FinishedAt"] == "0001-01-01T00:00:00Z"  # never stopped yet
    c.pause()
    c.reload()
    assert (c.status, c.attrs["State"]["Paused"]) == ("paused", True)
    with pytest.raises(APIError) as twice:
        c.pause()
    assert twice.value.status_code == (409 if double.flavor == "docker" else 500)
    c.unpause()
    with pytest.raises(APIError) as not_paused:
        c.unpause()
    assert not_paused.value.status_code == 500  # moby has no 409 here either
    with pytest.raises(APIError) as no_force:
        c.remove()
    assert no_force.value.status_code == (409 if double.flavor == "docker" else 500)
    c.kill()
    c.reload()
    assert (c.status, c.attrs["State"]["ExitCode"]) == ("exited", 137)
    assert c.attrs["State"]["FinishedAt"] != "0001-01-01T00:00:00Z"
    with pytest.raises(APIError) as kill_exited:
        c.kill()
    assert kill_exited.value.status_code == (409 if double.flavor == "docker" else 500)
    c.remove(force=True)
    with pytest.raises(NotFound):
        client.containers.get("leon-p")
    with pytest.raises(NotFound):
        c.remove(force=True)


def test_not_found(double: DockerDouble) -> None:
    client = _client(double)
    with pytest.raises(NotFound):
        client.containers.get("leon-nope")
    with pytest.raises(NotFound):
        client.api.pause("leon-nope")


def _events(double: DockerDouble, version: str, since: float, **filters: list[str]) -> list[dict]:
    client = _client(double, version)
    stream = client.events(decode=True, since=since, until=time.time() + 0.5, filters=filters or None)
    try:
        return list(stream)
    finally:
        stream.close()


def test_event_stream(double: DockerDouble) -> None:
    since = time.time() - 1
    double.add("leon-e", labels={LEASE: "L7"})
    client = _client(double)
    client.containers.get("leon-e").pause()
    client.containers.get("leon-e").remove(force=True)
    events = _events(double, "1.41", since, label=[f"{LEASE}=L7"])
    removal = "destroy" if double.flavor == "docker" else "remove"
    kill = ["kill"] if double.flavor == "docker" else []
    assert [e["Action"] for e in events] == ["create", "start", "pause", *kill, "die", removal]
    first = events[0]
    docker_id = double.events_log[0]["docker_id"]
    assert (first["Type"], first["Actor"]["ID"], first["scope"]) == ("container", docker_id, "local")
    assert first["Actor"]["Attributes"][LEASE] == "L7"
    assert first["Actor"]["Attributes"]["name"] == "leon-e"
    assert first["timeNano"] // 1_000_000_000 == first["time"]
    # below API 1.52 both engines still send the legacy top-level fields
    assert (first["status"], first["id"], first["from"]) == ("create", docker_id, "localhost/bb:latest")
    die = next(e for e in events if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "137"


def test_event_legacy_fields_gone_from_api_1_52_on_docker(tmp_path: Path) -> None:
    with DockerDouble(unix_path=str(tmp_path / "moby.sock"), flavor="docker") as double:
        since = time.time() - 1
        double.add("leon-n")
        [create, start] = _events(double, "1.52", since, container=["leon-n"])
    assert (create["Action"], start["Action"]) == ("create", "start")
    assert not {"status", "id", "from"} & set(create)


def test_api_version_bounds(double: DockerDouble) -> None:
    assert _client(double, "auto").api.api_version == ("1.56" if double.flavor == "docker" else "1.41")
    if double.flavor == "podman":
        return  # podman's version checks were not probed; the double accepts any
    for version, word in (("1.57", "too new"), ("1.39", "too old")):
        with pytest.raises(APIError) as refused:
            _client(double, version).containers.list()
        assert refused.value.status_code == 400
        assert word in str(refused.value.explanation)
