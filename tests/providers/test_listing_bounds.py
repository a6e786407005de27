"""Issue 16: a listing is bounded (pages, instances, repeated cursors) and complete (provider totals).

Every paginating adapter (E2B, Daytona, AgentBay) against its double on 127.0.0.1, with the
doubles' listing faults: `endless_cursors` (a fresh next cursor on every page, forever),
`cursor_loop` (the same next cursor again), `drop_every` (instances silently missing while the
provider's own total still counts them). A listing that breaks a bound or comes up short raises
ProtocolError, so the collector keeps the provider's rows stale instead of calling them gone.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opcockpit.adapters.providers.agentbay import AgentBayAdapter
from opcockpit.adapters.providers.daytona import DaytonaAdapter
from opcockpit.adapters.providers.docker import DockerAdapter
from opcockpit.adapters.providers.e2b import E2BAdapter
from opcockpit.adapters.providers.registry import build_adapter
from opcockpit.doubles.agentbay import AgentBayDouble
from opcockpit.doubles.base import FakeProvider, Request, Response
from opcockpit.doubles.daytona import DaytonaDouble
from opcockpit.doubles.docker import DockerDouble
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.ports.provider import ProtocolError
from opcockpit.settings.config import ProviderConfig

SECRET = "kx-Zq7xSECRETvalue-bounds"
PAGE = 2
KINDS = ("e2b", "daytona", "agentbay")
# Where each kind lists (the path its errors name).
LIST_WHERE = {
    "e2b": "GET /v2/sandboxes",
    "daytona": "GET /sandbox",
    "agentbay": "POST /?Action=ListSession",
}


def _double(kind: str) -> FakeProvider:
    if kind == "e2b":
        return E2BDouble(api_key=SECRET)
    if kind == "daytona":
        return DaytonaDouble(api_key=SECRET)
    return AgentBayDouble(api_key=SECRET, transition_s=0.05)


def _base_url(kind: str, double: FakeProvider) -> str:
    return f"{double.url}/api" if kind == "daytona" else double.url


def _adapter_class(kind: str) -> Any:
    return {"e2b": E2BAdapter, "daytona": DaytonaAdapter, "agentbay": AgentBayAdapter}[kind]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def double(kind: str) -> Iterator[FakeProvider]:
    with _double(kind) as d:
        yield d


@pytest.fixture
async def make_adapter(kind: str, double: FakeProvider) -> AsyncIterator[Callable[..., Any]]:
    made: list[Any] = []

    def _make(**kw: Any) -> Any:
        kw.setdefault("api_key", SECRET)
        kw.setdefault("page_size", PAGE)
        kw.setdefault("retries", 0)
        adapter = _adapter_class(kind)(kind, base_url=_base_url(kind, double), **kw)
        made.append(adapter)
        return adapter

    yield _make
    for adapter in made:
        await adapter.aclose()


LIST_ROUTE = {"e2b": "GET ^/v2/sandboxes$", "daytona": "GET ^/api/sandbox$"}


def _listing_requests(kind: str, double: FakeProvider) -> int:
    """Listing requests the double served (AgentBay: ListSession calls only)."""
    if isinstance(double, AgentBayDouble):
        return double.requests_by_action.get("ListSession", 0)
    return double.requests_by_route.get(LIST_ROUTE[kind], 0)


async def _protocol_error(adapter: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        await adapter.list_instances()
    return info.value


# --------------------------------------------------------------------------- bounds


async def test_endless_fresh_cursors_stop_at_max_pages(
    kind: str, double: FakeProvider, make_adapter: Callable[..., Any]
) -> None:
    double.add(state="running")
    double.faults.endless_cursors = True  # type: ignore[attr-defined]
    adapter = make_adapter(max_pages=4, max_instances=1_000_000)
    err = await _protocol_error(adapter)
    assert str(err) == (
        f"{kind}: {LIST_WHERE[kind]}: listing exceeded max_pages=4"
        " (the provider still hands out a next cursor)"
    )
    assert _listing_requests(kind, double) == 4
    assert adapter.request_count == 4


async def test_endless_fresh_cursors_stop_at_max_instances(
    kind: str, double: FakeProvider, make_adapter: Callable[..., Any]
) -> None:
    for _ in range(3):
        double.add(state="running")
    double.faults.endless_cursors = True  # type: ignore[attr-defined]
    adapter = make_adapter(max_pages=1000, max_instances=5)  # pages of 2: 2, 4, 6 > 5
    err = await _protocol_error(adapter)
    assert str(err) == f"{kind}: {LIST_WHERE[kind]}: listing exceeded max_instances=5 (6 after 3 pages)"
    assert _listing_requests(kind, double) == 3


async def test_exactly_max_pages_and_max_instances_still_list(
    kind: str, double: FakeProvider, make_adapter: Callable[..., Any]
) -> None:
    ids = {double.add(state="running").instance_id for _ in range(6)}  # 3 full pages of 2
    adapter = make_adapter(max_pages=3, max_instances=6)
    assert {i.instance_id for i in await adapter.list_instances()} == ids
    assert _listing_requests(kind, double) == 3


async def test_repeated_cursor_is_protocol_error(
    kind: str, double: FakeProvider, make_adapter: Callable[..., Any]
) -> None:
    double.add(state="running")
    double.faults.cursor_loop = True  # type: ignore[attr-defined]
    adapter = make_adapter()
    err = await _protocol_error(adapter)
    assert str(err) == f"{kind}: {LIST_WHERE[kind]}: pagination cursor repeated after page 2"
    assert _listing_requests(kind, double) == 2


async def test_registry_passes_the_caps_from_config(kind: str, double: FakeProvider) -> None:
    double.add(state="running")
    double.faults.endless_cursors = True  # type: ignore[attr-defined]
    cfg = ProviderConfig(
        name=kind,
        kind=kind,  # type: ignore[arg-type]
        api_url=_base_url(kind, double),
        api_key=SECRET,  # type: ignore[arg-type]
        retries=0,
        max_pages=3,
        max_instances=99,
    )
    adapter = build_adapter(cfg)
    try:
        assert (adapter.max_pages, adapter.max_instances) == (3, 99)  # type: ignore[attr-defined]
        err = await _protocol_error(adapter)
        assert "max_pages=3" in str(err)
        assert _listing_requests(kind, double) == 3
    finally:
        await adapter.aclose()


def test_adapter_defaults_match_config_defaults(kind: str) -> None:
    cfg = ProviderConfig(name=kind, kind=kind)  # type: ignore[arg-type]
    adapter = _adapter_class(kind)(kind, base_url="http://127.0.0.1:9", api_key=SECRET)
    assert (adapter.max_pages, adapter.max_instances) == (cfg.max_pages, cfg.max_instances) == (1000, 200_000)


# --------------------------------------------------------------------------- completeness


async def test_listing_that_drops_half_while_reporting_the_total_fails(
    kind: str, double: FakeProvider, make_adapter: Callable[..., Any]
) -> None:
    for _ in range(6):
        double.add(state="running")
    double.faults.drop_every = 2  # type: ignore[attr-defined]
    err = await _protocol_error(make_adapter())
    what = "running sandboxes" if kind == "e2b" else "instances"
    assert str(err) == (
        f"{kind}: {LIST_WHERE[kind]}: incomplete listing: the provider counts 6 {what} but listed 3"
    )


async def test_one_dropped_instance_is_enough(
    kind: str, double: FakeProvider, make_adapter: Callable[..., Any]
) -> None:
    for _ in range(5):
        double.add(state="running")
    double.faults.drop_every = 5  # type: ignore[attr-defined]
    err = await _protocol_error(make_adapter())
    assert "counts 5" in str(err) and "listed 4" in str(err)


async def test_complete_listing_with_totals_passes(
    kind: str, double: FakeProvider, make_adapter: Callable[..., Any]
) -> None:
    """Totals that match (paused ones, filtered-out ones and released ones around) raise nothing."""
    if isinstance(double, DaytonaDouble):
        double.faults.report_total = True
    mine = {double.add(state="running", labels={"team": "a"}).instance_id for _ in range(3)}
    mine |= {double.add(state="paused", labels={"team": "a"}).instance_id for _ in range(2)}
    for _ in range(3):
        double.add(state="running", labels={"team": "b"})
    if isinstance(double, AgentBayDouble):
        double.add(state="stopped", labels={"team": "a"})  # released: neither listed nor counted
    listing = await make_adapter(label_filter={"team": "a"}).list_instances()
    assert {i.instance_id for i in listing} == mine


async def test_e2b_total_counts_running_only(make_adapter: Callable[..., Any], double: FakeProvider) -> None:
    if not isinstance(double, E2BDouble):
        pytest.skip("E2B's X-Total-Running")
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    for _ in range(3):
        double.add(state="paused", created_at=long_ago)
    running = double.add(state="running").instance_id
    double.faults.drop_every = 4  # the one running sandbox sits 4th in the (descending) order
    err = await _protocol_error(make_adapter())
    assert str(err).endswith("incomplete listing: the provider counts 1 running sandboxes but listed 0")
    assert running in double.instances


class _ChurnMidListing(E2BDouble):
    """Kills a sandbox not served yet before page 2 and starts a new one before page 3, as a busy
    fleet does while a listing pages through it: each page's X-Total-Running is right for its
    moment, and neither change is a dropped instance."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.pages = 0
        self.served: set[str] = set()
        self.killed: str | None = None

    def _list(self, request: Request) -> Response:
        self.pages += 1
        if self.pages == 2:
            self.killed = next(iid for iid in sorted(self.instances) if iid not in self.served)
            self.remove(self.killed)
        elif self.pages == 3:
            self.add(state="running")  # newest: sorts before the cursor, so it is not served
        response = super()._list(request)
        self.served |= {item["sandboxID"] for item in response.body}
        return response


async def test_e2b_churn_between_pages_is_not_an_incomplete_listing() -> None:
    with _ChurnMidListing(api_key=SECRET) as double:
        for _ in range(7):
            double.add(state="running")
        adapter = E2BAdapter("e2b", base_url=double.url, api_key=SECRET, page_size=PAGE, retries=0)
        try:
            listing = await adapter.list_instances()
        finally:
            await adapter.aclose()
        assert double.pages >= 3 and len(double.instances) == 7  # both changes happened
        assert len(listing) == 6 and double.killed not in {i.instance_id for i in listing}


# --------------------------------------------------------------------------- docker (no pages)


async def test_docker_listing_beyond_max_instances_fails() -> None:
    sock = Path(tempfile.mkdtemp(prefix="opc-lb-")) / "d.sock"
    with DockerDouble(unix_path=str(sock)) as double:
        for _ in range(4):
            double.add(state="running")
        adapter = DockerAdapter("docker", host=double.host, max_instances=3, retries=0)
        exact = DockerAdapter("docker", host=double.host, max_instances=4, retries=0)
        try:
            err = await _protocol_error(adapter)
            assert str(err) == (
                "docker: GET /v1.41/containers/json: listing exceeded max_instances=3 (4 after 1 pages)"
            )
            assert len(await exact.list_instances()) == 4
        finally:
            await adapter.aclose()
            await exact.aclose()


# --------------------------------------------------------------------------- through the collector


async def test_collector_shows_a_short_or_endless_listing_as_stale_not_diverged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's symptom end to end: with the listing dropping half its sandboxes (or handing
    out endless cursors), leases whose instances are alive must show stale, never "not listed"."""
    from opcockpit.domain.models import Convergence, ProviderStatus
    from opcockpit.settings.config import CockpitConfig, SourcesConfig
    from opcockpit.wiring import build_collector
    from tests.cli_support import build_leon_db

    monkeypatch.setenv("OPCOCKPIT_TEST_BOUNDS_KEY", SECRET)
    with E2BDouble(api_key=SECRET) as double:
        ids = [double.add(state="running").instance_id for _ in range(6)]
        leases = [(f"lease-b{n:011d}", "e2b", iid, "running", "running") for n, iid in enumerate(ids)]
        db = build_leon_db(tmp_path / "sandbox.db", leases)
        provider = ProviderConfig(
            name="e2b",
            kind="e2b",
            api_url=double.url,
            api_key_env="OPCOCKPIT_TEST_BOUNDS_KEY",
            retries=0,
            max_pages=50,
        )
        collector = build_collector(
            CockpitConfig(sources=SourcesConfig(sandbox_db=db), providers={"e2b": provider})
        )
        try:
            good = await collector.refresh()
            assert {r.convergence for r in good.rows} == {Convergence.CONVERGED}
            for fault, detail in (("drop_every", "incomplete listing"), ("endless_cursors", "max_pages=50")):
                double.faults.clear()
                setattr(double.faults, fault, 2 if fault == "drop_every" else True)
                gt = await collector.refresh()
                status = {p.name: p for p in gt.providers}["e2b"]
                assert status.status is ProviderStatus.STALE
                assert status.error is not None and detail in status.error
                assert {r.convergence for r in gt.rows} == {Convergence.STALE}
                assert not gt.orphans
        finally:
            await collector.aclose()
