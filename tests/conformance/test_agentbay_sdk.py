"""wuying-agentbay-sdk 0.22.3 against AgentBayDouble: the calls the cockpit relies on, asserted on
what the SDK parsed.

Harness-only overrides, both needed because the SDK hard-codes the production transport:
- `Config(endpoint="127.0.0.1:<port>")`: the SDK's deprecated endpoint fallback (used when no
  region_id is set), pointing it at the double;
- `client._protocol = "http"`: tea-openapi sends every action with protocol "HTTPS" unless the
  client's own protocol is set; the double speaks plain HTTP on loopback.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from opcockpit.doubles.agentbay import AgentBayDouble
from opcockpit.doubles.base import Request
from tests.conformance.conftest import need_sdk

need_sdk("agentbay", "wuying-agentbay-sdk==0.22.3")
from agentbay import AgentBay, Config  # noqa: E402

KEY = "akm-conformance"


@pytest.fixture
def double() -> Iterator[AgentBayDouble]:
    with AgentBayDouble(api_key=KEY, transition_s=0.05) as d:
        yield d  # type: ignore[misc]


@pytest.fixture
def bay(double: AgentBayDouble) -> AgentBay:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Config(endpoint=...) is deprecated
        client = AgentBay(api_key=KEY, cfg=Config(endpoint=double.url.removeprefix("http://")))
    client.client._protocol = "http"  # harness-only: see the module docstring
    return client


def _seed(double: AgentBayDouble) -> None:
    for n in range(5):
        double.add(
            f"session-{n}",
            state="paused" if n == 3 else "running",
            labels={"lease_id": f"L{n}", "owner": "cockpit" if n % 2 == 0 else "other"},
            image_id="code_latest" if n == 4 else "linux_latest",
        )


def _ids(result: object) -> list[str]:
    return [s["sessionId"] for s in result.session_ids]  # type: ignore[attr-defined]


def test_list_pages_and_totals(bay: AgentBay, double: AgentBayDouble) -> None:
    _seed(double)
    first = bay.list(limit=2)
    assert first.success, first.error_message
    assert (_ids(first), first.total_count, first.max_results) == (["session-0", "session-1"], 5, 2)
    assert first.next_token
    third = bay.list(limit=2, page=3)  # the SDK walks pages 1-2 for the cursor
    assert (_ids(third), third.next_token) == (["session-4"], "")
    item = first.session_ids[0]
    assert item == {
        "sessionId": "session-0",
        "sessionStatus": "RUNNING",
        "appInstanceId": double.instances["session-0"].extra["app_instance_id"],
        "imageId": "linux_latest",
    }


def test_list_filters(bay: AgentBay, double: AgentBayDouble) -> None:
    _seed(double)
    assert _ids(bay.list(labels={"owner": "cockpit"})) == ["session-0", "session-2", "session-4"]
    assert _ids(bay.list(labels={"owner": "cockpit", "lease_id": "L2"})) == ["session-2"]
    assert _ids(bay.list(status="PAUSED")) == ["session-3"]
    assert _ids(bay.list(image_id="code_latest")) == ["session-4"]
    both = bay.list(labels={"owner": "cockpit"}, image_id="linux_latest")
    assert (_ids(both), both.total_count) == (["session-0", "session-2"], 2)


def test_get_status_labels_round_trip(bay: AgentBay, double: AgentBayDouble) -> None:
    double.add("session-g", labels={"lease_id": "L1"})
    got = bay.get("session-g")
    assert got.success, got.error_message
    session = got.session
    status = session.get_status()  # GetSessionDetail, SessionId in the query string
    assert (status.success, status.status) == (True, "RUNNING")
    assert session.get_labels().data == {"lease_id": "L1"}
    assert session.set_labels({"lease_id": "L2", "owner": "ops"}).success
    assert session.get_labels().data == {"lease_id": "L2", "owner": "ops"}
    assert _ids(bay.list(labels={"lease_id": "L2"})) == ["session-g"]


def test_pause_resume_delete_with_waiting(bay: AgentBay, double: AgentBayDouble) -> None:
    double.add("session-p")
    session = bay.get("session-p").session
    paused = bay.beta_pause(session, timeout=10, poll_interval=0.05)
    assert (paused.success, paused.status) == (True, "PAUSED")
    assert session.get_status().status == "PAUSED"
    again = bay.beta_pause(session, timeout=10, poll_interval=0.05)  # already paused: no-op
    assert (again.success, again.status) == (True, "PAUSED")
    resumed = bay.beta_resume(session, timeout=10, poll_interval=0.05)
    assert (resumed.success, resumed.status) == (True, "RUNNING")

    seen: list[str] = []

    def record(request: Request) -> None:
        if request.query.get("Action") == ["GetSessionDetail"] and "session-p" in double.instances:
            seen.append(double.instances["session-p"].state)

    double.faults.on_request = record
    deleted = session.delete()
    assert deleted.success, deleted.error_message
    # delete() polled GetSessionDetail while DELETING and returned only once the session was gone
    assert seen and set(seen) == {"DELETING"}
    assert "session-p" not in double.instances
    assert session.get_status().status == "FINISH"
    gone = bay.get("session-p")
    assert not gone.success and "not found" in gone.error_message
    assert _ids(bay.list()) == []


def test_not_found(bay: AgentBay, double: AgentBayDouble) -> None:
    missing = bay.get("session-nope")
    assert not missing.success
    assert "not found" in missing.error_message
    assert missing.session is None
