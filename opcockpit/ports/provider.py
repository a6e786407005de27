"""The one protocol every provider adapter speaks, and its typed errors.

Adapters talk plain HTTP with httpx (no vendor SDKs). Secrets live only in request headers or
form bodies; they never appear in exception text, reprs or logs (see `redact`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from opcockpit.domain.models import Instance, NormalState

__all__ = [
    "ActionOutcome",
    "ActionResult",
    "AlreadyInState",
    "AuthFailed",
    "Capabilities",
    "Conflict",
    "Instance",
    "LogLine",
    "LogSource",
    "NormalState",
    "NotFound",
    "ProtocolError",
    "ProviderAdapter",
    "ProviderError",
    "ProviderEvent",
    "ProviderKind",
    "RateLimited",
    "RawRecordSource",
    "Unavailable",
]


# --------------------------------------------------------------------------- errors


class ProviderError(Exception):
    """Base of every adapter error. Messages must never contain secrets."""

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{self.provider}: {msg}" if self.provider else msg


class NotFound(ProviderError):
    """The instance does not exist (or no longer)."""


class AlreadyInState(ProviderError):
    """The instance is already in the requested state (adapters usually turn this into success)."""


class Conflict(ProviderError):
    """The provider refuses because a transition is in flight or the state does not allow it."""


class RateLimited(ProviderError):
    def __init__(self, message: str, *, retry_after: float | None = None, provider: str | None = None):
        super().__init__(message, provider=provider)
        self.retry_after = retry_after


class AuthFailed(ProviderError):
    """Credentials missing or rejected (401/403)."""


class Unavailable(ProviderError):
    """Timeout, connection failure or 5xx."""


class ProtocolError(ProviderError):
    """The provider answered something we cannot parse (bad JSON, broken pagination, wrong shape)."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Capabilities:
    can_pause: bool = True
    can_resume: bool = True
    can_destroy: bool = True
    has_events: bool = False
    has_api: bool = True  # False for LEON's `local` provider
    eventually_consistent_list: bool = False  # Daytona
    # Kind-specific facts live with the adapter (a new provider is one adapter + one double + one
    # registry line): Daytona's "pause" is a stop, so STOPPED counts as paused there.
    pause_is_stop: bool = False
    # Where LEON's workspace lives inside the sandbox (adopt's default cwd); None: not known.
    workspace_root: str | None = None
    # Likely cause of an instance paused while LEON wants it running (e.g. E2B's auto-pause).
    paused_hint: str | None = None
    # How often the collector lists this provider in full when refreshes are paced (seconds);
    # events and actions trigger a GET of the instance concerned in between.
    list_interval_s: float = 15.0
    # The adapter serves `logs(instance_id, tail=, follow=)` (LogSource): Docker/podman.
    has_logs: bool = False


# Defaults of one provider: {field: (value, origin)}, from the fields given so far and the env.
KindDefaults = Callable[[Mapping[str, Any], Mapping[str, str]], dict[str, tuple[Any, str]]]
# LEON's ~/.leon/sandboxes/<name>.json: (the kind's block, the whole file) -> our provider fields.
LeonTranslation = Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]


def _no_defaults(fields: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    del fields, env
    return {}


def _no_leon_fields(block: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    del block, data
    return {}


@dataclass(frozen=True, slots=True)
class ProviderKind:
    """Everything kind-specific about one provider kind, declared next to its adapter (`KIND`).

    The registry lists one per kind; the settings loader receives them as a parameter (it may not
    import adapters), the collector copies `capabilities` into each ProviderListing, services read
    `capabilities` of the built adapter. Nothing else names a kind.
    """

    name: str  # the `kind` in config and LEON's `"provider"` field
    factory: Callable[..., ProviderAdapter]  # the adapter class
    capabilities: Capabilities = field(default_factory=lambda: Capabilities())
    # How the registry connects it: "api" (base_url + api_key), "host" (docker), "none" (local).
    connect: Literal["api", "host", "none"] = "api"
    key_env: str | None = None  # env var of the API key when `api_key_env` is not configured
    defaults: KindDefaults = _no_defaults
    from_leon: LeonTranslation = _no_leon_fields


class ActionOutcome(StrEnum):
    DONE = "done"  # the provider changed state
    ALREADY = "already"  # it was already in the requested state (or already gone): success
    ACCEPTED = "accepted"  # asynchronous provider accepted it; convergence comes later


@dataclass(frozen=True, slots=True)
class ActionResult:
    instance_id: str
    action: str  # pause | resume | destroy
    outcome: ActionOutcome
    state: NormalState | None = None  # state after the call, when known
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """A lifecycle event from a provider stream (Docker /events, E2B /events/sandboxes)."""

    provider: str
    instance_id: str | None
    action: str  # provider's own word: pause, unpause, destroy/remove, sandbox.lifecycle.paused, ...
    at: datetime | None
    attributes: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- protocol


@runtime_checkable
class ProviderAdapter(Protocol):
    """One configured provider (name = the `sandbox_leases.provider_name` it serves)."""

    name: str
    kind: str
    capabilities: Capabilities

    async def list_instances(self) -> list[Instance]:
        """Every instance at the provider, all pages. A listing that breaks mid-way raises."""
        ...

    async def get_instance(self, instance_id: str) -> Instance:
        """Fresh state of one instance; raises NotFound when it is gone. Never wakes it up."""
        ...

    async def pause(self, instance_id: str) -> ActionResult: ...

    async def resume(self, instance_id: str) -> ActionResult: ...

    async def destroy(self, instance_id: str) -> ActionResult:
        """Idempotent: an instance already gone is ActionOutcome.ALREADY, not an error."""
        ...

    def events(self) -> AsyncIterator[ProviderEvent]:
        """Lifecycle events, where `capabilities.has_events`; otherwise raises NotImplementedError."""
        ...

    @property
    def request_count(self) -> int:
        """HTTP requests made so far (for the O(pages) benchmark)."""
        ...

    async def aclose(self) -> None: ...


# --------------------------------------------------------------------------- logs and inspect
# Optional abilities, outside ProviderAdapter so an adapter (or a test's fake) without them still
# satisfies it: callers check `isinstance(adapter, RawRecordSource)` / `capabilities.has_logs`.


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line a container wrote; `stream` is "stdout", "stderr" or "tty" (not multiplexed)."""

    stream: str
    text: str


@runtime_checkable
class LogSource(Protocol):
    def logs(
        self, instance_id: str, *, tail: int | None = 200, follow: bool = False
    ) -> AsyncIterator[LogLine]:
        """The last `tail` lines (None: all), then new ones while `follow`. Raises NotFound."""
        ...


@runtime_checkable
class RawRecordSource(Protocol):
    async def raw_record(self, instance_id: str) -> dict[str, Any]:
        """The provider's own JSON of one instance (Docker inspect, E2B/Daytona GET), as sent:
        the caller redacts before showing it. Raises NotFound when it is gone."""
        ...
