"""LEON's `local` provider: no API, so nothing to list and nothing the cockpit can act on.

LEON's LocalSessionProvider keeps session state in an in-process dict of the LEON backend
(leon-sandbox-db.md §4.3) and can pause/resume/destroy only from inside that process. From the
cockpit's side of the fence none of that is reachable, so every capability is False and the
collector shows these leases from sandbox.db alone (`ProviderListing(has_api=False)`, rows with
`source="lease"`). This adapter exists so configuration, registry and collector treat `local` like
any other provider instead of special-casing it everywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from opcockpit.adapters.providers.wire import leon_api_fields
from opcockpit.ports.provider import (
    ActionResult,
    Capabilities,
    Instance,
    ProviderError,
    ProviderEvent,
    ProviderKind,
)

NO_API = "local provider has no API; state comes from sandbox.db alone"


class LocalAdapter:
    kind = "local"
    capabilities = Capabilities(
        can_pause=False, can_resume=False, can_destroy=False, has_events=False, has_api=False
    )

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
        max_concurrency: int = 8,
        retries: int = 3,
        label_filter: dict[str, str] | None = None,
    ) -> None:
        # The shared constructor shape is accepted (the registry builds every kind alike);
        # nothing is kept because there is nothing to connect to.
        del base_url, api_key, timeout, max_concurrency, retries, label_filter
        self.name = name

    def __repr__(self) -> str:
        return f"LocalAdapter(name={self.name!r})"

    async def list_instances(self) -> list[Instance]:
        """Always empty: the collector must not read this as "everything is gone" (has_api=False)."""
        return []

    async def get_instance(self, instance_id: str) -> Instance:
        raise ProviderError(NO_API, provider=self.name)

    async def pause(self, instance_id: str) -> ActionResult:
        raise ProviderError(NO_API, provider=self.name)

    async def resume(self, instance_id: str) -> ActionResult:
        raise ProviderError(NO_API, provider=self.name)

    async def destroy(self, instance_id: str) -> ActionResult:
        raise ProviderError(NO_API, provider=self.name)

    def events(self) -> AsyncIterator[ProviderEvent]:
        raise NotImplementedError(NO_API)

    @property
    def request_count(self) -> int:
        return 0

    async def aclose(self) -> None:
        return None


KIND = ProviderKind(
    name="local",
    factory=LocalAdapter,
    capabilities=LocalAdapter.capabilities,
    connect="none",
    from_leon=leon_api_fields,  # LEON's generic block; nothing of it is used (no API)
)
