"""Logs and the raw provider record of one instance (lazydocker's logs, k9s `y`), over the ports.

The TUI reaches adapters only through here (`Cockpit.inspect`). What leaves this module is safe
to show: the raw record is redacted (domain.inspect) and log lines are scrubbed of known secrets;
a failure is one `InspectError` line, never a traceback or a key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from opcockpit.domain.inspect import redact_record, render_record
from opcockpit.domain.secrets import scrub
from opcockpit.domain.text import error_line
from opcockpit.ports.provider import (
    LogLine,
    LogSource,
    NotFound,
    ProviderAdapter,
    ProviderError,
    RawRecordSource,
)

__all__ = ["InspectError", "InspectService"]

DEFAULT_TAIL = 500


def _gone(provider: str, instance_id: str) -> str:
    return f"{provider}: {instance_id} not found (gone since the last refresh?)"


class InspectError(Exception):
    """Why the record or the logs cannot be shown (one line, no secret)."""


class InspectService:
    """`adapter_for(provider_name)` -> the collector's adapter for it (None: not configured)."""

    def __init__(self, adapter_for: Callable[[str], ProviderAdapter | None]) -> None:
        self._adapter_for = adapter_for

    def _adapter(self, provider: str) -> ProviderAdapter:
        adapter = self._adapter_for(provider)
        if adapter is None:
            raise InspectError(f"{provider}: not configured (no provider API to ask)")
        return adapter

    def can_inspect(self, provider: str) -> bool:
        return isinstance(self._adapter_for(provider), RawRecordSource)

    def can_logs(self, provider: str) -> bool:
        adapter = self._adapter_for(provider)
        return adapter is not None and adapter.capabilities.has_logs and isinstance(adapter, LogSource)

    async def raw_record(self, provider: str, instance_id: str) -> dict[str, Any]:
        """The provider's record of `instance_id`, secrets masked."""
        adapter = self._adapter(provider)
        if not isinstance(adapter, RawRecordSource):
            raise InspectError(f"{provider}: its adapter cannot show a raw record")
        try:
            record = await adapter.raw_record(instance_id)
        except NotFound:
            raise InspectError(_gone(provider, instance_id)) from None
        except ProviderError as exc:
            raise InspectError(error_line(exc)) from None
        return redact_record(record)  # type: ignore[no-any-return]

    async def raw_text(self, provider: str, instance_id: str, *, style: str = "yaml") -> str:
        return render_record(await self.raw_record(provider, instance_id), style=style)

    async def logs(
        self, provider: str, instance_id: str, *, tail: int | None = DEFAULT_TAIL, follow: bool = False
    ) -> AsyncIterator[LogLine]:
        """The instance's log lines (scrubbed), the last `tail` first, then new ones while `follow`."""
        adapter = self._adapter(provider)
        if not (adapter.capabilities.has_logs and isinstance(adapter, LogSource)):
            raise InspectError(f"{provider}: its provider serves no logs")
        try:
            async for line in adapter.logs(instance_id, tail=tail, follow=follow):
                yield LogLine(line.stream, scrub(line.text))
        except NotFound:
            raise InspectError(_gone(provider, instance_id)) from None
        except ProviderError as exc:
            raise InspectError(error_line(exc)) from None
