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

__all__ = ["KeyedEventLog", "LedgerSink", "webhook_key"]


def webhook_key(provider: str, delivery_key: str) -> str:
    """The idempotency key of a provider webhook delivery in the ledger (the same spelling the
    events component's migration backfills)."""
    return f"webhook:{provider}:{delivery_key}"


class KeyedEventLog(Protocol):
    """The part of the event ledger the sink needs (`adapters.ledger.events.EventLog`)."""

    def append(self, events: Sequence[Any], *, keys: Sequence[str | None] | None = None) -> int: ...

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

    def append(self, events: Sequence[Mapping[str, Any]]) -> int:
        """Store the deliveries not stored yet (one transaction); returns how many were new."""
        if not events:
            return 0
        keys = [webhook_key(str(ev["provider"]), str(ev["data"]["delivery_key"])) for ev in events]
        return int(self.ledger.append([self.convert(ev) for ev in events], keys=keys))

    def known(self, provider: str, key: str) -> str | None:
        """The stored body hash of a delivery (None: never stored)."""
        found = self.ledger.by_key(webhook_key(provider, key))
        if found is None:
            return None
        data = found.get("data") if isinstance(found, Mapping) else getattr(found, "data", None)
        sha = (data or {}).get("body_sha256")
        return str(sha) if sha else ""

    def close(self) -> None:
        self.ledger.close()
