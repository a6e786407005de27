"""The raw records the cockpit shows (k9s `y`) are the ones the official SDKs read: each SDK, pointed
at our double, parses the same GET the adapter's `raw_record` returns, credentials included (so
the redaction tests in tests/providers/test_raw_records.py mask a field that really exists).
"""

from __future__ import annotations

import warnings

from opcockpit.adapters.providers.agentbay import AgentBayAdapter
from opcockpit.adapters.providers.daytona import DaytonaAdapter
from opcockpit.adapters.providers.e2b import E2BAdapter
from opcockpit.doubles.agentbay import AgentBayDouble
from opcockpit.doubles.daytona import DaytonaDouble
from opcockpit.doubles.e2b import E2BDouble
from tests import raw_record_support as doubles
from tests.conformance.conftest import need_sdk
from tests.raw_record_support import KEY

need_sdk("e2b", "e2b==2.63.0")
need_sdk("daytona", "daytona==0.226.1")
need_sdk("agentbay", "wuying-agentbay-sdk==0.22.3")
from agentbay import AgentBay, Config  # noqa: E402
from daytona import Daytona, DaytonaConfig  # noqa: E402
from e2b.api.client.models.sandbox_detail import SandboxDetail  # noqa: E402

TOKEN = "tok-conformance-0123456789"


# The doubles (fixtures shared with the other raw-record test module).
e2b, daytona, agentbay = doubles.e2b, doubles.daytona, doubles.agentbay


async def test_e2b_record_parses_as_the_sdks_sandbox_detail(e2b: E2BDouble) -> None:
    e2b.add("sbx-c", state="paused", labels={"lease_id": "L1"}, envd_access_token=TOKEN)
    adapter = E2BAdapter("e2b", base_url=e2b.url, api_key=KEY, retries=0)
    try:
        record = await adapter.raw_record("sbx-c")
    finally:
        await adapter.aclose()
    detail = SandboxDetail.from_dict(record)
    assert (detail.sandbox_id, detail.state.value) == ("sbx-c", "paused")
    assert detail.envd_access_token == TOKEN
    assert detail.metadata == {"lease_id": "L1"}


async def test_daytona_record_is_what_the_sdk_gets(daytona: DaytonaDouble) -> None:
    daytona.add("d-c", name="web", env={"OPENAI_API_KEY": TOKEN})
    adapter = DaytonaAdapter("daytona", base_url=daytona.api_url, api_key=KEY, retries=0)
    try:
        record = await adapter.raw_record("d-c")
    finally:
        await adapter.aclose()
    sandbox = Daytona(DaytonaConfig(api_key=KEY, api_url=daytona.api_url)).get("d-c")
    assert (sandbox.id, sandbox.name, sandbox.env) == (record["id"], record["name"], record["env"])
    assert sandbox.env == {"OPENAI_API_KEY": TOKEN}


async def test_agentbay_record_holds_the_sdks_session_token(agentbay: AgentBayDouble) -> None:
    agentbay.add("session-c", labels={"owner": "ops"}, token=TOKEN, link_url="https://link.example/s")
    adapter = AgentBayAdapter("agentbay", base_url=agentbay.url, api_key=KEY, retries=0)
    try:
        record = await adapter.raw_record("session-c")
    finally:
        await adapter.aclose()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Config(endpoint=...) is deprecated
        bay = AgentBay(api_key=KEY, cfg=Config(endpoint=agentbay.url.removeprefix("http://")))
    bay.client._protocol = "http"  # harness-only, as in test_agentbay_sdk.py
    session = bay.get("session-c").session
    assert session.token == record["GetSession"]["Token"] == TOKEN
    assert session.link_url == record["GetSession"]["LinkUrl"] == "https://link.example/s"
    assert session.get_labels().data == record["GetLabel"] == {"owner": "ops"}
