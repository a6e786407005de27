"""The alert records the ledger keeps and the engine, the notifier and the surfaces read.

Plain data (no sqlite, no I/O): the store adapter builds them, the alert engine (services) and the
notifier (adapters) pass them around, so neither has to import the other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opcockpit.domain.alerts import SEVERITY_RANK, Evidence, Severity

__all__ = [
    "Ack",
    "Alert",
    "AlertNotFound",
    "AlertSnapshot",
    "Delivery",
    "DeliveryOutcome",
    "DeliveryResult",
    "alert_order",
    "fingerprint",
    "iso",
    "parse_iso",
]


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    alert_id: int
    channel: str  # webhook | command
    target: str  # redacted
    ok: bool
    attempts: int  # attempts made this round (0: not attempted)
    error: str | None = None
    gave_up: bool = False


class AlertNotFound(LookupError):
    """No alert (or more than one) matches the id the user typed."""


def fingerprint(key: str) -> str:
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="microseconds")  # fixed width: sorts as text


def parse_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification channel's record for one alert episode."""

    channel: str  # webhook | command
    target: str  # redacted: scheme://host/… or the command name
    status: str  # ok | failed | gave_up
    attempts: int
    rounds: int
    last_error: str | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledgement of an alert episode (all are kept, oldest first)."""

    who: str
    at: datetime
    comment: str | None


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    fingerprint: str
    key: str
    rule: str
    severity: Severity
    summary: str
    threshold: str
    scope: str | None
    evidence: tuple[Evidence, ...]
    details: dict[str, Any]
    state: str  # firing | resolved
    first_seen: datetime  # when the condition was first seen (before the hold time)
    fired_at: datetime
    last_seen: datetime
    resolved_at: datetime | None
    acked_by: str | None
    acked_at: datetime | None
    ack_comment: str | None
    muted_until: datetime | None
    mute_until_resolved: bool
    muted_by: str | None
    muted_at: datetime | None
    mute_comment: str | None
    deliveries: tuple[Delivery, ...] = field(default=())
    acks: tuple[Ack, ...] = field(default=())  # every ack, oldest first (acked_* = the latest)

    @property
    def firing(self) -> bool:
        return self.state == "firing"

    @property
    def acked(self) -> bool:
        return self.acked_at is not None

    def is_muted(self, now: datetime) -> bool:
        if self.mute_until_resolved and self.state == "firing":
            return True
        return self.muted_until is not None and self.muted_until > now

    @property
    def subject(self) -> str:
        return self.key.split(":", 1)[1] if ":" in self.key else self.key

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON-able form (CLI --format json, webhook body, snapshot --check)."""
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "key": self.key,
            "rule": self.rule,
            "severity": self.severity.value,
            "state": self.state,
            "summary": self.summary,
            "threshold": self.threshold,
            "scope": self.scope,
            "first_seen": iso(self.first_seen),
            "fired_at": iso(self.fired_at),
            "last_seen": iso(self.last_seen),
            "resolved_at": iso(self.resolved_at),
            "evidence": [e.to_dict() for e in self.evidence],
            "details": self.details,
            "ack": (
                {"by": self.acked_by, "at": iso(self.acked_at), "comment": self.ack_comment}
                if self.acked_at
                else None
            ),
            "mute": (
                {
                    "until": iso(self.muted_until),
                    "until_resolved": self.mute_until_resolved,
                    "by": self.muted_by,
                    "at": iso(self.muted_at),
                    "comment": self.mute_comment,
                }
                if (self.muted_until or self.mute_until_resolved)
                else None
            ),
            "acks": [{"by": k.who, "at": iso(k.at), "comment": k.comment} for k in self.acks],
            "muted": self.is_muted(now) if now is not None else None,
            "deliveries": [
                {
                    "channel": d.channel,
                    "target": d.target,
                    "status": d.status,
                    "attempts": d.attempts,
                    "last_error": d.last_error,
                    "delivered_at": iso(d.delivered_at),
                }
                for d in self.deliveries
            ],
        }


def alert_order(a: Alert) -> tuple[int, float, int]:
    return (SEVERITY_RANK.get(a.severity, 9), -a.fired_at.timestamp(), a.id)


@dataclass(frozen=True, slots=True)
class AlertSnapshot:
    """The result of one evaluation."""

    now: datetime
    active: tuple[Alert, ...]  # firing, most severe then newest first
    newly_firing: tuple[Alert, ...]
    newly_resolved: tuple[Alert, ...]
    pending: int  # conditions seen but still within their hold time
    unknown_scopes: frozenset[str] = frozenset()
    deliveries: tuple[DeliveryResult, ...] = ()  # notification attempts made this round

    @property
    def unmuted(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.active if not a.is_muted(self.now))

    @property
    def notify_errors(self) -> tuple[DeliveryResult, ...]:
        return tuple(d for d in self.deliveries if not d.ok)

    def counts(self) -> dict[str, int]:
        """Unmuted firing alerts by severity (the header badge)."""
        out = {s.value: 0 for s in Severity}
        for a in self.unmuted:
            out[a.severity.value] += 1
        return out


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What one notification attempt round did for one (alert, channel): the notifier returns it,
    the engine records it in the store (`count_round=False`: it did not use one of the channel's
    rounds, e.g. not attempted because the endpoint was down this round)."""

    result: DeliveryResult
    count_round: bool = True
