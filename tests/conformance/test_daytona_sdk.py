"""daytona 0.226.1 against DaytonaDouble: the calls the cockpit relies on, asserted on what the SDK
parsed (its pydantic models are strict: integer cpu/disk, required env/kvm).

Harness-only override: `DaytonaConfig(api_url=<double>/api)`; nothing else is patched. The SDK's
Socket.IO state stream finds no server on the double, so its waits fall back to polling GET.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from opcockpit.doubles.daytona import DaytonaDouble
from tests.conformance.conftest import need_sdk

need_sdk("daytona", "daytona==0.226.1")
from daytona import (  # noqa: E402
    Daytona,
    DaytonaConfig,
    DaytonaError,
    DaytonaNotFoundError,
    ListSandboxesQuery,
    SandboxState,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def double() -> Iterator[DaytonaDouble]:
    with DaytonaDouble(api_key="dtn_conformance", transition_s=0.05, sandbox_class="linux-vm") as d:
        yield d  # type: ignore[misc]


@pytest.fixture
def client(double: DaytonaDouble) -> Daytona:
    return Daytona(DaytonaConfig(api_key="dtn_conformance", api_url=double.api_url))


def _seed(double: DaytonaDouble) -> None:
    """box-0..box-4 created a minute apart; cpu 1..5; box-3 stopped; box-4 is 'zeta'."""
    for n in range(5):
        inst = double.add(
            f"id-{n}",
            name="zeta" if n == 4 else f"box-{n}",
            labels={"lease_id": f"L{n}", "owner": "cockpit" if n % 2 == 0 else "other"},
            created_at=T0 + timedelta(minutes=n),
            cpu=n + 1,
            disk_gb=10.0 * (n + 1),
        )
        if n == 3:
            inst.state = "stopped"  # native word (the normalised "stopped" is Daytona's archived)


def _ids(client: Daytona, **query: object) -> list[str]:
    return [s.id for s in client.list(ListSandboxesQuery(**query))]  # type: ignore[arg-type]


def test_list_parses_every_page(client: Daytona, double: DaytonaDouble) -> None:
    _seed(double)
    pages: list[int] = []
    double.faults.on_request = lambda r: pages.append(1) if r.path == "/api/sandbox" else None
    listed = list(client.list(ListSandboxesQuery(limit=2)))
    assert len(pages) == 3  # 2 + 2 + 1, following nextCursor
    # default order: lastActivityAt desc (untouched sandboxes: their creation time)
    assert [s.id for s in listed] == ["id-4", "id-3", "id-2", "id-1", "id-0"]
    first = listed[-1]
    assert (first.name, first.cpu, first.disk, first.memory, first.gpu) == ("box-0", 1, 10, 2, 0)
    assert first.state == SandboxState.STARTED
    assert first.labels == {"lease_id": "L0", "owner": "cockpit"}
    assert listed[1].state == SandboxState.STOPPED


def test_list_filters(client: Daytona, double: DaytonaDouble) -> None:
    _seed(double)
    assert _ids(client, labels={"owner": "cockpit"}) == ["id-4", "id-2", "id-0"]
    assert _ids(client, labels={"owner": "cockpit", "lease_id": "L2"}) == ["id-2"]
    assert _ids(client, states=[SandboxState.STOPPED]) == ["id-3"]
    assert _ids(client, states=[SandboxState.STARTED, SandboxState.STOPPED], limit=1) == [
        "id-4",
        "id-3",
        "id-2",
        "id-1",
        "id-0",
    ]
    assert _ids(client, id="ID-1") == ["id-1"]  # prefix, case-insensitive
    assert _ids(client, name="box") == ["id-3", "id-2", "id-1", "id-0"]
    assert _ids(client, min_cpu=2, max_cpu=3) == ["id-2", "id-1"]
    assert _ids(client, min_disk_gib=40) == ["id-4", "id-3"]
    assert _ids(client, created_at_after=T0 + timedelta(minutes=2)) == ["id-4", "id-3"]
    assert _ids(client, created_at_before=T0 + timedelta(minutes=1)) == ["id-0"]


def test_list_sort_and_order_across_pages(client: Daytona, double: DaytonaDouble) -> None:
    _seed(double)
    assert _ids(client, sort="name", order="asc", limit=2) == ["id-0", "id-1", "id-2", "id-3", "id-4"]
    assert _ids(client, sort="cpu", order="desc", limit=3) == ["id-4", "id-3", "id-2", "id-1", "id-0"]
    assert _ids(client, sort="createdAt", order="asc", limit=4) == ["id-0", "id-1", "id-2", "id-3", "id-4"]


def test_get_parses_the_sandbox_dto(client: Daytona, double: DaytonaDouble) -> None:
    double.add("g-1", name="getme", labels={"lease_id": "L9"}, created_at=T0, cpu=4, memory_mb=8192)
    sandbox = client.get("g-1")
    assert (sandbox.id, sandbox.name, sandbox.state) == ("g-1", "getme", SandboxState.STARTED)
    assert (sandbox.cpu, sandbox.memory, sandbox.disk) == (4, 8, 10)
    assert sandbox.env == {}
    assert sandbox.labels == {"lease_id": "L9"}
    assert sandbox.created_at == "2026-01-01T12:00:00.000Z"
    assert client.get("getme").id == "g-1"  # by name too


def test_stop_start_pause_delete_with_waiting(client: Daytona, double: DaytonaDouble) -> None:
    double.add("life-1", labels={"lease_id": "L1"})
    sandbox = client.get("life-1")
    sandbox.stop()
    assert sandbox.state == SandboxState.STOPPED
    with pytest.raises(DaytonaError) as stop_again:  # not in a stoppable state
        sandbox.stop()
    assert stop_again.value.status_code == 400
    sandbox.start()
    assert sandbox.state == SandboxState.STARTED
    sandbox.start()  # already started: 200, no-op
    assert sandbox.state == SandboxState.STARTED
    sandbox.pause()
    assert sandbox.state == SandboxState.PAUSED
    with pytest.raises(DaytonaError) as pause_again:  # must be in started state
        sandbox.pause()
    assert pause_again.value.status_code == 400
    sandbox.start()  # resumes a paused VM sandbox
    assert client.get("life-1").state == SandboxState.STARTED
    sandbox.delete(wait=True)
    assert sandbox.state == SandboxState.DESTROYED
    with pytest.raises(DaytonaNotFoundError):
        client.get("life-1")
    with pytest.raises(DaytonaNotFoundError):
        sandbox.delete()
    assert _ids(client) == []


def test_pause_refused_for_container_class(double: DaytonaDouble) -> None:
    double.add("c-1", sandbox_class="container")
    client = Daytona(DaytonaConfig(api_key="dtn_conformance", api_url=double.api_url))
    with pytest.raises(DaytonaError) as refused:
        client.get("c-1").pause()
    assert refused.value.status_code == 422


def test_labels_round_trip(client: Daytona, double: DaytonaDouble) -> None:
    double.add("lab-1", labels={"lease_id": "L1"})
    sandbox = client.get("lab-1")
    assert sandbox.set_labels({"lease_id": "L2", "owner": "ops"}) == {"lease_id": "L2", "owner": "ops"}
    assert client.get("lab-1").labels == {"lease_id": "L2", "owner": "ops"}
    assert _ids(client, labels={"lease_id": "L2"}) == ["lab-1"]
    assert _ids(client, labels={"lease_id": "L1"}) == []


def test_not_found_and_bad_key(client: Daytona, double: DaytonaDouble) -> None:
    with pytest.raises(DaytonaNotFoundError) as missing:
        client.get("nope")
    assert missing.value.status_code == 404
    bad = Daytona(DaytonaConfig(api_key="dtn_wrong", api_url=double.api_url))
    with pytest.raises(DaytonaError) as denied:
        bad.get("nope")
    assert denied.value.status_code == 401
