"""The provider's raw record of one instance (k9s `y`) for E2B, Daytona and AgentBay, against their
loopback doubles: the GET the adapter makes, the record as the provider sent it, NotFound for a
gone instance, and the inspect service masking the credentials each record carries (E2B's
`envdAccessToken`, Daytona's `env`, AgentBay's session `Token`/`LinkUrl`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from opcockpit.adapters.providers.agentbay import AgentBayAdapter
from opcockpit.adapters.providers.daytona import DaytonaAdapter
from opcockpit.adapters.providers.e2b import E2BAdapter
from opcockpit.doubles.agentbay import AgentBayDouble
from opcockpit.doubles.daytona import DaytonaDouble
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.ports.provider import NotFound, RawRecordSource
from opcockpit.services.inspect import InspectError, InspectService
from tests import raw_record_support as doubles
from tests.raw_record_support import KEY

ENVD_TOKEN = "envd-tok-7d1cSECRET55aa"
SESSION_TOKEN = "sess-tok-99ffSECRET0b1c"
OPENAI = "sk-proj-abcdefSECRET123456"


# The doubles (fixtures shared with the other raw-record test module).
e2b, daytona, agentbay = doubles.e2b, doubles.daytona, doubles.agentbay


@pytest.fixture
async def adapters(
    e2b: E2BDouble, daytona: DaytonaDouble, agentbay: AgentBayDouble
) -> AsyncIterator[dict[str, Any]]:
    made = {
        "e2b": E2BAdapter("e2b", base_url=e2b.url, api_key=KEY, retries=0, timeout=5),
        "daytona": DaytonaAdapter("daytona", base_url=daytona.api_url, api_key=KEY, retries=0, timeout=5),
        "agentbay": AgentBayAdapter("agentbay", base_url=agentbay.url, api_key=KEY, retries=0, timeout=5),
    }
    yield made
    for adapter in made.values():
        await adapter.aclose()


async def test_e2b_record_is_the_sandbox_detail(e2b: E2BDouble, adapters: dict[str, Any]) -> None:
    adapter = adapters["e2b"]
    assert isinstance(adapter, RawRecordSource)
    e2b.add("sbx-1", state="paused", labels={"leon.lease_id": "L1"}, envd_access_token=ENVD_TOKEN)
    before = e2b.route_hits("GET", "/sandboxes/")
    record = await adapter.raw_record("sbx-1")
    assert e2b.route_hits("GET", "/sandboxes/") == before + 1  # one GET of that sandbox
    assert record["sandboxID"] == "sbx-1" and record["state"] == "paused"
    assert record["metadata"] == {"leon.lease_id": "L1"} and record["pauseMode"] == "full"
    assert record["envdAccessToken"] == ENVD_TOKEN  # as sent: the service redacts
    with pytest.raises(NotFound):
        await adapter.raw_record("gone-1")


async def test_daytona_record_is_the_sandbox_dto(daytona: DaytonaDouble, adapters: dict[str, Any]) -> None:
    adapter = adapters["daytona"]
    assert isinstance(adapter, RawRecordSource)
    daytona.add("d-1", state="running", name="web", env={"OPENAI_API_KEY": OPENAI, "LANG": "C"})
    record = await adapter.raw_record("web")  # by name too, as the API allows
    assert record["id"] == "d-1" and record["state"] == "started" and record["name"] == "web"
    assert record["env"] == {"OPENAI_API_KEY": OPENAI, "LANG": "C"}
    daytona.remove("d-1")
    with pytest.raises(NotFound):
        await adapter.raw_record("d-1")


async def test_agentbay_record_names_its_calls(agentbay: AgentBayDouble, adapters: dict[str, Any]) -> None:
    adapter = adapters["agentbay"]
    assert isinstance(adapter, RawRecordSource)
    sid = agentbay.add(state="paused", labels={"owner": "ops"}, token=SESSION_TOKEN).instance_id
    record = await adapter.raw_record(sid)
    assert record["GetSession"]["SessionId"] == sid and record["GetSession"]["Status"] == "PAUSED"
    assert record["GetSession"]["Token"] == SESSION_TOKEN
    assert record["GetLabel"] == {"owner": "ops"}
    assert record["GetSessionDetail"]["Id"] == sid and record["GetSessionDetail"]["ImageId"]
    with pytest.raises(NotFound):
        await adapter.raw_record("s-unknown")


async def test_service_masks_each_providers_credentials(
    e2b: E2BDouble, daytona: DaytonaDouble, agentbay: AgentBayDouble, adapters: dict[str, Any]
) -> None:
    e2b.add("sbx-2", envd_access_token=ENVD_TOKEN)
    daytona.add("d-2", env={"OPENAI_API_KEY": OPENAI})
    link = f"https://wuying.example/s?authcode={SESSION_TOKEN}"
    sid = agentbay.add(token=SESSION_TOKEN, link_url=link).instance_id
    service = InspectService(adapters.get)
    texts = {
        "e2b": await service.raw_text("e2b", "sbx-2"),
        "daytona": await service.raw_text("daytona", "d-2", style="json"),
        "agentbay": await service.raw_text("agentbay", sid),
    }
    assert 'envdAccessToken: "***"' in texts["e2b"] and "sandboxID: sbx-2" in texts["e2b"]
    assert '"OPENAI_API_KEY": "***"' in texts["daytona"] and '"id": "d-2"' in texts["daytona"]
    assert 'Token: "***"' in texts["agentbay"] and "wuying.example" in texts["agentbay"]
    assert f"SessionId: {sid}" in texts["agentbay"]
    for provider, text in texts.items():
        assert "SECRET" not in text, provider
        assert service.can_inspect(provider)
    with pytest.raises(InspectError, match="not found"):
        await service.raw_text("agentbay", "s-unknown")
