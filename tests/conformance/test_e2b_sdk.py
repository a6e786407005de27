"""e2b 2.63.0 against E2BDouble: the calls the cockpit relies on, asserted on what the SDK parsed.

Harness-only override: `api_url=<double>` (the SDK's documented, deprecated override of
`https://api.<domain>`); nothing else is patched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from opcockpit.doubles.base import Request
from opcockpit.doubles.e2b import E2BDouble
from tests.conformance.conftest import need_sdk

e2b = need_sdk("e2b", "e2b==2.63.0")
from e2b import Sandbox, SandboxQuery, SandboxState  # noqa: E402
from e2b.exceptions import AuthenticationException, SandboxNotFoundException  # noqa: E402

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def double() -> Iterator[E2BDouble]:
    with E2BDouble(api_key="e2b_conformance") as d:
        yield d  # type: ignore[misc]


def _opts(double: E2BDouble) -> dict[str, str]:
    return {"api_key": "e2b_conformance", "api_url": double.url}


def _seed(double: E2BDouble) -> None:
    """Five sandboxes, started one minute apart (s0 oldest), s3 paused, s4 on another template."""
    for n in range(5):
        inst = double.add(
            f"s{n}",
            state="paused" if n == 3 else "running",
            labels={"lease_id": f"L{n}", "owner": "cockpit" if n % 2 == 0 else "other"},
            **({"template_id": "tpl-py", "alias": "python"} if n == 4 else {}),
        )
        inst.started_at = T0 + timedelta(minutes=n)


def _all_pages(double: E2BDouble, **kwargs: object) -> list[list[str]]:
    paginator = Sandbox.list(**kwargs, **_opts(double))  # type: ignore[arg-type]
    pages = []
    while paginator.has_next:
        pages.append([s.sandbox_id for s in paginator.next_items()])
    return pages


def test_list_pages_newest_first_and_asc(double: E2BDouble) -> None:
    _seed(double)
    assert _all_pages(double, limit=2) == [["s4", "s3"], ["s2", "s1"], ["s0"]]
    assert _all_pages(double, limit=3, order="asc") == [["s0", "s1", "s2"], ["s3", "s4"]]


def test_list_filters_the_adapter_uses(double: E2BDouble) -> None:
    _seed(double)
    both = SandboxQuery(state=[SandboxState.RUNNING, SandboxState.PAUSED])
    assert _all_pages(double, query=both) == [["s4", "s3", "s2", "s1", "s0"]]
    running = SandboxQuery(state=[SandboxState.RUNNING])
    assert _all_pages(double, query=running) == [["s4", "s2", "s1", "s0"]]
    paused = SandboxQuery(state=[SandboxState.PAUSED])
    assert _all_pages(double, query=paused) == [["s3"]]
    # metadata: every pair must match (AND)
    meta = SandboxQuery(metadata={"owner": "cockpit", "lease_id": "L2"})
    assert _all_pages(double, query=meta) == [["s2"]]
    assert _all_pages(double, query=SandboxQuery(metadata={"owner": "cockpit"}), limit=2) == [
        ["s4", "s2"],
        ["s0"],
    ]


def test_list_template_and_started_after(double: E2BDouble) -> None:
    _seed(double)
    assert _all_pages(double, query=SandboxQuery(template="tpl-py")) == [["s4"]]
    assert _all_pages(double, query=SandboxQuery(template="python")) == [["s4"]]
    assert _all_pages(double, query=SandboxQuery(template="base")) == [["s3", "s2", "s1", "s0"]]
    after = SandboxQuery(started_after=T0 + timedelta(minutes=2))
    assert _all_pages(double, query=after) == [["s4", "s3"]]


def test_metadata_round_trip_with_escapes(double: E2BDouble) -> None:
    awkward = {"lease_id": "L 1&x=y/z", "owner": "ops"}
    double.add("odd", labels=awkward)
    double.add("plain", labels={"lease_id": "L 1", "owner": "ops"})
    paginator = Sandbox.list(query=SandboxQuery(metadata=awkward), **_opts(double))
    [info] = paginator.next_items()
    assert (info.sandbox_id, info.metadata) == ("odd", awkward)


def test_get_info_parsed_fields(double: E2BDouble) -> None:
    inst = double.add("g1", labels={"lease_id": "L9"}, cpu=4, memory_mb=1024)
    inst.started_at = T0
    info = Sandbox.get_info("g1", **_opts(double))
    assert info.sandbox_id == "g1"
    assert info.template_id == "base"
    assert info.name == "base"
    assert info.state == SandboxState.RUNNING
    assert info.metadata == {"lease_id": "L9"}
    assert (info.cpu_count, info.memory_mb) == (4, 1024)
    assert info.started_at == T0
    assert info.end_at == T0 + timedelta(hours=1)
    assert info.envd_version == "0.2.0"


def test_pause_twice_connect_kill_twice(double: E2BDouble) -> None:
    bodies: list[bytes] = []

    def record(request: Request) -> None:
        if request.path.endswith("/pause"):
            bodies.append(request.body)

    double.faults.on_request = record
    double.add("p1")
    opts = _opts(double)
    assert Sandbox.pause("p1", **opts) is True
    assert Sandbox.pause("p1", **opts) is False  # 409: already paused
    assert [json.loads(b) for b in bodies] == [{}, {}]  # SDK default pause body: empty object
    assert Sandbox.get_info("p1", **opts).state == SandboxState.PAUSED
    # filesystem-only pause is what `memory: false` asks for
    double.add("p2")
    assert Sandbox.pause("p2", mode="filesystem", **opts) is True
    assert json.loads(bodies[-1]) == {"memory": False}
    assert double.instances["p2"].extra["pause_mode"] == "filesystem"

    sandbox = Sandbox.connect("p1", **opts)  # paused -> resumed (201)
    assert sandbox.sandbox_id == "p1"
    assert Sandbox.get_info("p1", **opts).state == SandboxState.RUNNING
    assert Sandbox.connect("p1", **opts).sandbox_id == "p1"  # already running (200)

    assert Sandbox.kill("p1", **opts) is True
    assert Sandbox.kill("p1", **opts) is False  # 404: gone
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_info("p1", **opts)
    assert _all_pages(double) == [["p2"]]


def test_not_found_everywhere(double: E2BDouble) -> None:
    opts = _opts(double)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_info("nope", **opts)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.pause("nope", **opts)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect("nope", **opts)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.set_timeout("nope", 60, **opts)


def test_set_timeout_moves_end_at(double: E2BDouble) -> None:
    double.add("t1")
    Sandbox.set_timeout("t1", 7200, **_opts(double))
    end = Sandbox.get_info("t1", **_opts(double)).end_at
    assert timedelta(minutes=119) < end - datetime.now(UTC) <= timedelta(hours=2)


def test_bad_key_is_an_authentication_error(double: E2BDouble) -> None:
    with pytest.raises(AuthenticationException):
        Sandbox.get_info("x", api_key="e2b_wrong", api_url=double.url)


def test_unknown_route_error_body_has_code(double: E2BDouble) -> None:
    import httpx

    response = httpx.get(f"{double.url}/no/such/route", headers={"X-API-Key": "e2b_conformance"})
    from e2b.api.client.models.error import Error

    error = Error.from_dict(response.json())  # E2B's error model: `code` and `message` required
    assert (response.status_code, error.code) == (404, 404)
    assert error.message == "no route GET /no/such/route"
