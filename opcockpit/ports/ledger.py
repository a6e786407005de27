"""What the services need of the cockpit's own ledger: the audit log and the alert store.

The sqlite implementations live in `opcockpit.adapters.ledger`; services and surfaces type against
these protocols. Every ledger operation raises `LedgerError` (never a bare sqlite3/OSError), so
callers tell "the ledger is unusable" from a bug by `isinstance`, not by reading tracebacks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: the snapshot path imports this module (via LedgerError)
    # but never the alert rules or the event models' catalogue through it (issue 9: start-up)
    from opcockpit.domain.alerts import AlertCandidate
    from opcockpit.domain.events import Event, EventQuery, Picture
    from opcockpit.ports.alert_records import Alert, Delivery

__all__ = ["AlertStorePort", "AuditPort", "EventLogPort", "LedgerError"]


class LedgerError(Exception):
    """The ledger file cannot be opened, read or written (corrupt, read-only, locked, ...).

    Distinct from `ports.errors.SourceError` (sandbox.db / events.db): the fleet view never
    depends on the ledger. `str()` is one line naming the file.
    """

    def __init__(self, path: str | os.PathLike[str] | None, message: str) -> None:
        self.path = None if path is None else str(path)
        self.message = " ".join(message.split())
        super().__init__(self.message)

    def __str__(self) -> str:
        where = self.path or "(path unknown)"
        return f"cockpit ledger {where} is unusable: {self.message}"


class AuditPort(Protocol):
    """The audit log Operations writes (blocking: called from a worker thread)."""

    path: Any

    def begin(
        self,
        *,
        op_id: str,
        operator: str,
        action: str,
        provider: str | None,
        lease_id: str | None,
        instance_id: str | None,
        thread_id: str | None,
        before: Mapping[str, Any] | None,
        read_only: bool,
        at: datetime,
    ) -> None: ...

    def finish(self, op_id: str, **fields: Any) -> bool: ...

    def record(self, **fields: Any) -> None: ...

    def settle(self, op_id: str, result: str) -> None: ...

    def close(self) -> None: ...


class AlertStorePort(Protocol):
    """The alert tables the engine evaluates into and the surfaces read (blocking)."""

    def active(self) -> list[Alert]: ...

    def history(self, limit: int = 50, *, include_firing: bool = True) -> list[Alert]: ...

    def get(self, ref: str | int) -> Alert: ...

    def by_ids(self, ids: Sequence[int]) -> list[Alert]: ...

    def ack(
        self, ref: str | int, who: str, comment: str | None = None, *, now: datetime | None = None
    ) -> Alert: ...

    def mute(
        self,
        ref: str | int,
        *,
        until: datetime | None = None,
        until_resolved: bool = False,
        who: str | None = None,
        comment: str | None = None,
        now: datetime | None = None,
    ) -> Alert: ...

    def unmute(self, ref: str | int) -> Alert: ...

    def delivery(self, alert_id: int, channel: str) -> Delivery | None: ...

    def claim_delivery(
        self, alert_id: int, channel: str, owner: str, *, now: datetime, hold_s: float = 120
    ) -> bool:
        """The right to send this alert on this channel: True for exactly one cockpit."""
        ...

    def record_delivery(
        self,
        alert_id: int,
        channel: str,
        target: str,
        *,
        ok: bool,
        attempts: int,
        error: str | None,
        now: datetime,
        gave_up: bool = False,
        count_round: bool = True,
    ) -> None: ...

    def apply(
        self,
        candidates: Sequence[AlertCandidate],
        now: datetime,
        *,
        unknown: frozenset[str] = frozenset(),
        history_keep: int = 500,
    ) -> tuple[list[int], list[int], int]: ...

    def close(self) -> None: ...


class EventLogPort(Protocol):
    """The cockpit's append-only event ledger (blocking: call from a worker thread in async code).

    Every method raises `LedgerError` (never a bare sqlite3/OSError); a failed append wrote
    nothing (one transaction), and what was written before stays. Readers (`opcockpit events`,
    the OTel exporter, the thread screen's State history) use `query` and `after`.
    """

    path: Any

    def append(
        self,
        events: Sequence[Event],
        *,
        picture: Mapping[str, Any] | None = None,
        keys: Sequence[str | None] | None = None,
    ) -> int:
        """Append `events` in one transaction; `picture` (changed subject keys -> tuple, None
        value: forget the key) is stored in the same transaction. `keys` (parallel to `events`,
        None: no key) are idempotency keys: an event whose key is already stored is skipped, in
        the same transaction (exactly once across crashes and retries). Returns the number
        appended."""
        ...

    def query(self, q: EventQuery) -> list[Event]:
        """Events matching `q`, newest first (oldest first with `q.oldest_first`), with ids."""
        ...

    def after(self, last_id: int, limit: int = 1000) -> list[Event]:
        """Events with id > last_id, oldest first: the cursor an exporter keeps."""
        ...

    def last_picture(self) -> Picture | None:
        """The last stored picture (None: never stored: the next one is a baseline)."""
        ...

    def compact(self, *, now: datetime | None = None) -> int:
        """Apply retention (days / max rows); returns rows removed."""
        ...

    def count(self) -> int: ...

    def close(self) -> None: ...
