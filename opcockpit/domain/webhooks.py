"""Provider webhooks, the pure part: what a verified delivery is, why one is refused, and how a
payload names its event type and instance (the way LEON reads them).

The verifiers (adapters/webhooks) and the receiver (services/webhooks) share these types, so the
receiver never needs to know which verifier it talks to. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opcockpit.domain.timeutil import parse_ts

__all__ = [
    "REASONS",
    "Delivery",
    "Rejected",
    "event_type_of",
    "instance_id_of",
    "occurred_at_of",
]

# reason code -> HTTP status. The codes are a public contract (metrics labels, docs/webhooks.md).
REASONS: dict[str, int] = {
    "unsigned": 401,  # no signature header at all
    "bad_signature": 401,  # a signature that does not match the raw body
    "bad_version": 400,  # a signature scheme/version we do not accept
    "stale": 401,  # timestamp outside the tolerance (too old or too far in the future)
    "malformed": 400,  # signed headers unreadable, body not a JSON object, no delivery id
    "replayed": 409,  # a known delivery id with a different body
    "too_large": 413,
    "content_type": 415,
    "rate_limited": 429,
    "unknown_provider": 404,
    "not_configured": 503,  # the provider's secret is missing: nothing can be verified
    "overloaded": 503,  # the ledger queue is full or slow: retry later, nothing lost
    "ledger_unavailable": 503,  # the ledger refused the write: retry later, nothing stored
}


class Rejected(Exception):
    """A delivery refused with a reason code (never carries a secret or the body)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in REASONS, reason
        self.reason = reason
        self.status = REASONS[reason]
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One verified delivery: the dedup key (stable across the provider's retries), the raw body's
    SHA-256 (to tell a retry from a replay with other content) and the parsed JSON object."""

    provider: str
    key: str
    body_sha256: str
    payload: Mapping[str, Any] = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # the non-secret ids


def event_type_of(payload: Mapping[str, Any]) -> str | None:
    """LEON: `payload.event or payload.type` (Daytona says `event`, E2B `type`)."""
    value = payload.get("event") or payload.get("type")
    return str(value) if value else None


# E2B v1 says sandboxId (camelCase), v2 and LEON say sandbox_id; LEON's order otherwise. E2B's
# top-level `id` is the *event* id, so it is read last and never for E2B-shaped payloads.
_INSTANCE_KEYS = ("session_id", "sandboxId", "sandbox_id", "instance_id", "id")


def instance_id_of(payload: Mapping[str, Any]) -> str | None:
    """The instance the event is about: first of LEON's keys, top level then `data`."""
    e2b_shaped = "sandboxId" in payload or "sandbox_id" in payload
    for scope in (payload, payload.get("data")):
        if not isinstance(scope, Mapping):
            continue
        for key in _INSTANCE_KEYS:
            if key == "id" and e2b_shaped:
                continue
            value = scope.get(key)
            if isinstance(value, str | int) and str(value):
                return str(value)
    return None


def occurred_at_of(payload: Mapping[str, Any]) -> datetime | None:
    """The provider's own time for the event, where it gives one."""
    for key in ("timestamp", "updatedAt", "createdAt", "time"):
        if key in payload:
            parsed = parse_ts(payload[key])
            if parsed is not None:
                return parsed
    return None
