"""LEON's `local` provider: no API, so the adapter lists nothing and refuses every action, loudly."""

from __future__ import annotations

import pytest

from opcockpit.adapters.providers.local import NO_API, LocalAdapter
from opcockpit.adapters.providers.registry import build_adapter
from opcockpit.ports.provider import ProviderAdapter, ProviderError
from opcockpit.settings.config import ProviderConfig


@pytest.fixture
async def adapter() -> LocalAdapter:
    return LocalAdapter("local", base_url="ignored", api_key="never-used-key")


async def test_protocol_and_capabilities(adapter: LocalAdapter) -> None:
    assert isinstance(adapter, ProviderAdapter)
    caps = adapter.capabilities
    assert (caps.has_api, caps.can_pause, caps.can_resume, caps.can_destroy, caps.has_events) == (
        False,
        False,
        False,
        False,
        False,
    )
    assert adapter.kind == "local" and adapter.name == "local"
    assert "never-used-key" not in repr(adapter)


async def test_listing_is_empty_and_costs_nothing(adapter: LocalAdapter) -> None:
    assert await adapter.list_instances() == []
    assert adapter.request_count == 0


@pytest.mark.parametrize("method", ["get_instance", "pause", "resume", "destroy"])
async def test_every_instance_call_refuses_with_a_clear_error(adapter: LocalAdapter, method: str) -> None:
    with pytest.raises(ProviderError) as info:
        await getattr(adapter, method)("leon-lease-1")
    assert NO_API in str(info.value)
    assert str(info.value).startswith("local: ")
    assert info.value.provider == "local"


async def test_no_events(adapter: LocalAdapter) -> None:
    with pytest.raises(NotImplementedError):
        adapter.events()
    await adapter.aclose()  # closing is harmless


async def test_registry_builds_it_without_a_key() -> None:
    built = build_adapter(ProviderConfig(name="local", kind="local"))
    assert isinstance(built, LocalAdapter)
    assert built.name == "local"
    assert built.capabilities.has_api is False
