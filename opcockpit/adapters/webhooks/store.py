"""Where accepted webhooks go: the cockpit's event ledger, exactly once.

Every delivery is appended with an idempotency key (`webhook:<provider>:<delivery key>`, see
`adapters.ledger.events.webhook_key`) that the ledger holds UNIQUE. The key and the event are one
row written in one transaction, so there is no window between "stored" and "remembered as
stored": a receiver killed after its commit and before its 2xx got out is retried by the sender,
and the retry finds the key and is answered 2xx without a second row. The same holds on the
PostgreSQL ledger (one table, the same constraint) and across several receivers on it.

(The first version kept a separate `webhooks.db` delivery index in front of the ledger; a crash
between the two commits could lose or double an event. Ledgers written then get their keys back
from the stored bodies by the events component's migration 2.)

Blocking: the receiver calls these from one worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

__all__ = ["KeyedEventLog", "LedgerSink", "LeonProviderEvents", "webhook_key"]


def webhook_key(provider: str, delivery_key: str) -> str:
    """The idempotency key of a provider webhook delivery in the ledger (the same spelling the
    events component's migration backfills)."""
    return f"webhook:{provider}:{delivery_key}"


def _key(ev: Mapping[str, Any]) -> str:
    return webhook_key(str(ev["provider"]), str(ev["data"]["delivery_key"]))


def _sha(event: Any) -> str:
    """The body hash a stored webhook event carries ("" when it has none: never equal to one)."""
    data = event.get("data") if isinstance(event, Mapping) else getattr(event, "data", None)
    return str((data or {}).get("body_sha256") or "")


class KeyedEventLog(Protocol):
    """The part of the event ledger the sink needs (`adapters.ledger.events.EventLog`)."""

    def append_new(self, events: Sequence[Any], keys: Sequence[str]) -> Mapping[str, Any]: ...

    def by_key(self, key: str) -> Any: ...

    def close(self) -> None: ...


class LedgerSink:
    """The receiver's `WebhookSink` over the event ledger.

    `convert` turns the receiver's event dicts into the ledger's event objects (wiring passes
    `domain.events.event_from_dict`)."""

    def __init__(
        self, ledger: KeyedEventLog, convert: Callable[[Mapping[str, Any]], Any] | None = None
    ) -> None:
        self.ledger = ledger
        self.convert = convert or (lambda ev: ev)

    def store(self, events: Sequence[Mapping[str, Any]]) -> list[str | None]:
        """Store the deliveries the ledger does not hold yet (the check and the insert in one
        transaction). Per event: None when this call stored it, else the body hash of the copy
        the ledger already held (equal: a retry; different: a replay with other content)."""
        if not events:
            return []
        keys = [_key(ev) for ev in events]
        held = self.ledger.append_new([self.convert(ev) for ev in events], keys)
        out: list[str | None] = []
        seen: set[str] = set()
        for ev, key in zip(events, keys, strict=True):
            if key in held:
                out.append(_sha(held[key]))
            elif key in seen:  # a repeat within the batch: the first one stored it
                out.append(str(ev["data"]["body_sha256"]))
            else:
                seen.add(key)
                out.append(None)
        return out

    def append(self, events: Sequence[Mapping[str, Any]]) -> int:
        """Store the deliveries not stored yet; returns how many were new."""
        return sum(1 for held in self.store(events) if held is None)

    def known(self, provider: str, key: str) -> str | None:
        """The stored body hash of a delivery (None: never stored)."""
        found = self.ledger.by_key(webhook_key(provider, key))
        return None if found is None else _sha(found)

    def close(self) -> None:
        self.ledger.close()


class LeonProviderEvents:
    """Opt-in (`[serve] leon_provider_events`): LEON's own `provider_events` row for each newly
    stored webhook, written LEON's way by the LEON writer. Called after the ledger stored the
    batch and the senders were answered: LEON's row is at most once (a crash in between loses
    it; the cockpit's ledger, not LEON's log, is the exactly-once record). Deliveries without an
    instance id are left out, as LEON's receiver refuses them."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer  # adapters.leon.writer.LeonWriter

    def __call__(self, events: Sequence[Mapping[str, Any]]) -> int:
        from opcockpit.adapters.leon.writer import ProviderEventRow

        rows = [
            ProviderEventRow(str(ev["provider"]), str(ev["instance_id"]), ev["data"].get("event_type"),
                             ev["data"].get("payload") or {}, ev.get("lease_id"))
            for ev in events
            if ev.get("instance_id")
        ]  # fmt: skip
        return int(self.writer.record_provider_events(rows))
