"""The Docker adapter asks the engine which API versions it serves (Docker Engine 29 refuses the
/v1.41 paths this adapter was written against: its minimum is 1.44)."""

from __future__ import annotations

import pytest

from opcockpit.adapters.providers.docker import DockerAdapter, negotiate_api
from opcockpit.doubles.docker import DockerDouble


@pytest.mark.parametrize(
    ("body", "prefix"),
    [
        ({"ApiVersion": "1.56", "MinAPIVersion": "1.40"}, "/v1.41"),  # moby 28: 1.41 is served
        ({"ApiVersion": "1.52", "MinAPIVersion": "1.44"}, "/v1.44"),  # moby 29: the oldest served
        ({"ApiVersion": "1.39", "MinAPIVersion": "1.12"}, "/v1.39"),  # an old engine: its newest
        ({"ApiVersion": "1.41", "MinAPIVersion": "1.24"}, "/v1.41"),  # podman 4.3
        ({"ApiVersion": "x", "MinAPIVersion": None}, "/v1.41"),  # nothing usable
        (None, "/v1.41"),
        ([], "/v1.41"),
    ],
)
def test_negotiate_api_picks_a_version_the_engine_serves(body: object, prefix: str) -> None:
    assert negotiate_api(body) == prefix


async def test_adapter_lists_and_acts_on_an_engine_that_refuses_v1_41() -> None:
    paths: list[str] = []
    with DockerDouble(api_versions=("1.52", "1.44")) as engine:
        engine.faults.on_request = lambda request: paths.append(request.path)
        running = engine.add(state="running")
        adapter = DockerAdapter("docker", host=engine.host)
        try:
            listed = await adapter.list_instances()
            assert [i.instance_id for i in listed] == [running.instance_id]
            result = await adapter.pause(running.instance_id)
            assert result.outcome.value in ("done", "accepted")
            assert engine.instances[running.instance_id].state == "paused"
        finally:
            await adapter.aclose()
    assert paths[0] == "/version"  # asked once, before the first versioned call
    assert sum(p == "/version" for p in paths) == 1
    assert all(p.startswith("/v1.44/") for p in paths[1:])


async def test_the_same_double_refuses_the_pinned_version() -> None:
    """The double behaves like Docker 29: an adapter pinned to /v1.41 would fail every call."""
    import httpx

    with DockerDouble(api_versions=("1.52", "1.44")) as engine, httpx.Client(base_url=engine.url) as client:
        refused = client.get("/v1.41/containers/json")
    assert refused.status_code == 400
    assert "Minimum supported API version is 1.44" in refused.json()["message"]
