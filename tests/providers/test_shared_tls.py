"""Issue 10 (RSS): every provider transport uses one TLS context (httpx made one per transport,
each parsing the CA bundle, ~1.5 MB of RSS per adapter), and a listing through it still works:
the E2B and AgentBay adapters against their loopback doubles."""

from __future__ import annotations

from typing import Any

from opcockpit.adapters.providers.agentbay import AgentBayAdapter
from opcockpit.adapters.providers.e2b import E2BAdapter
from opcockpit.adapters.providers.http import ApiClient, shared_tls
from opcockpit.doubles.agentbay import AgentBayDouble
from opcockpit.doubles.e2b import E2BDouble

KEY = "shared_tls_test_key_0123456789"


def _tls(client: Any) -> Any:
    transport = client.http._transport
    return getattr(transport, "inner", transport)._pool._ssl_context  # AgentBay wraps its transport


async def test_adapters_share_one_tls_context_and_still_list() -> None:
    with E2BDouble(api_key=KEY) as e2b, AgentBayDouble(api_key=KEY) as bay:
        e2b.add(state="running")
        bay.add(state="running")
        a = E2BAdapter("e2b", base_url=e2b.url, api_key=KEY)
        b = AgentBayAdapter("agentbay", base_url=bay.url, api_key=KEY)
        c = ApiClient("other", base_url="https://example.invalid")
        try:
            contexts = {id(_tls(a._api)), id(_tls(b.api)), id(_tls(c))}
            assert contexts == {id(shared_tls())}
            assert len(await a.list_instances()) == 1
            assert len(await b.list_instances()) == 1
        finally:
            await a.aclose()
            await b.aclose()
            await c.aclose()
