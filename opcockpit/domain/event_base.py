"""The event base: `EventSource` and `Event`, the common shape every typed event extends.

Split from domain/events.py so that a module handling events generically (the ledger storing and
reading them, the history service diffing pictures) can be imported without creating the ~20
typed event and view models (domain/event_types.py), which a snapshot whose fleet did not change
never builds (issue 9: ~8 % of its start-up). `opcockpit.domain.events` re-exports everything.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Event", "EventSource"]


class EventSource(StrEnum):
    PROVIDER_LIST = "provider_list"  # seen by comparing two provider listings
    PROVIDER_EVENT = "provider_event"  # a provider's event stream / webhook said so
    SANDBOX_DB = "sandbox_db"  # LEON wrote it (lease row changed)
    OPERATOR = "operator"  # an operator did it (action, ack, mute)
    COCKPIT = "cockpit"  # the cockpit's own judgement (alert rules)


# --------------------------------------------------------------------------- events


class Event(BaseModel):
    """The common shape. Subclasses fix `type` and type `before`/`after`."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)  # see event_types._View
    TYPE: ClassVar[str] = ""
    DESCRIPTION: ClassVar[str] = "An event of a type this version does not know (kept as read)."

    type: str
    occurred_at: datetime | None = None
    observed_at: datetime
    source: EventSource
    lease_id: str | None = None
    instance_id: str | None = None
    thread_id: str | None = None
    provider: str | None = None
    before: Any = None
    after: Any = None
    data: dict[str, Any] = Field(default_factory=dict)
    id: int | None = None  # the ledger's row id once stored (None before)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able dict (ISO times, None kept: the shape is the same for every row)."""
        return self.model_dump(mode="json")
