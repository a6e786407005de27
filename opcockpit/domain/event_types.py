"""The typed events (stable `type` names, the public catalog) and their before/after views.

Imported on first use through `opcockpit.domain.events` (its module `__getattr__`, and the diff
when it finds a change): see domain/event_base.py for why. Never rename a `type`; add new ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from opcockpit.domain.event_base import Event

__all__ = [
    "EVENT_TYPES",
    "ActionRequested",
    "ActionSettled",
    "ActionView",
    "AlertAcked",
    "AlertFired",
    "AlertMuted",
    "AlertResolved",
    "AlertView",
    "InstanceAppeared",
    "InstanceStateChanged",
    "InstanceVanished",
    "InstanceView",
    "LeaseConvergenceChanged",
    "LeaseView",
    "OrphanAppeared",
    "OrphanCleared",
    "OrphanView",
    "ProviderEvent",
    "ProviderListingFailed",
    "ProviderListingRecovered",
    "ProviderView",
]


# --------------------------------------------------------------------------- before/after views


class _View(BaseModel):
    # defer_build: validators are built on first use, not at import. A snapshot whose fleet did
    # not change builds no event at all (~7 ms of its start-up for ~20 models, issue 9).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class LeaseView(_View):
    """A lease as the cockpit judged it."""

    convergence: str
    desired_state: str
    observed_state: str
    provider_state: str | None = None
    instance_id: str | None = None


class InstanceView(_View):
    """An instance at a provider (normalised state)."""

    state: str
    lease_id: str | None = None


class OrphanView(_View):
    state: str
    claim: str | None = None
    claimed_lease_id: str | None = None


class ProviderView(_View):
    status: str
    error: str | None = None


class ActionView(_View):
    action: str
    status: str
    outcome: str | None = None
    error: str | None = None
    op_id: str | None = None
    operator: str | None = None


class AlertView(_View):
    alert_id: int | None = None
    rule: str
    key: str
    severity: str | None = None
    summary: str | None = None
    state: str | None = None  # firing | resolved | acked | muted
    who: str | None = None
    until: datetime | None = None


# --------------------------------------------------------------------------- events


# --------------------------------------------------------------------------- events


def _type(name: str) -> Any:
    return Field(default=name, description="stable event type name")


class LeaseConvergenceChanged(Event):
    TYPE = "lease.convergence_changed"
    DESCRIPTION = (
        "A lease's convergence verdict changed (converged/diverged/...); before None: the lease "
        "appeared; after None: its sandbox.db row was deleted."
    )
    type: Literal["lease.convergence_changed"] = _type("lease.convergence_changed")
    before: LeaseView | None = None
    after: LeaseView | None = None


class InstanceAppeared(Event):
    TYPE = "instance.appeared"
    DESCRIPTION = "An instance shows up in a provider's listing."
    type: Literal["instance.appeared"] = _type("instance.appeared")
    before: None = None
    after: InstanceView | None = None


class InstanceVanished(Event):
    TYPE = "instance.vanished"
    DESCRIPTION = "An instance is no longer in a provider's (successful) listing."
    type: Literal["instance.vanished"] = _type("instance.vanished")
    before: InstanceView | None = None
    after: None = None


class InstanceStateChanged(Event):
    TYPE = "instance.state_changed"
    DESCRIPTION = "An instance's state at its provider changed (e.g. running -> paused)."
    type: Literal["instance.state_changed"] = _type("instance.state_changed")
    before: InstanceView | None = None
    after: InstanceView | None = None


class OrphanAppeared(Event):
    TYPE = "orphan.appeared"
    DESCRIPTION = "An instance no lease accounts for appeared."
    type: Literal["orphan.appeared"] = _type("orphan.appeared")
    before: None = None
    after: OrphanView | None = None


class OrphanCleared(Event):
    TYPE = "orphan.cleared"
    DESCRIPTION = "An orphan is gone or a lease accounts for it now."
    type: Literal["orphan.cleared"] = _type("orphan.cleared")
    before: OrphanView | None = None
    after: None = None


class ProviderListingFailed(Event):
    TYPE = "provider.listing_failed"
    DESCRIPTION = "A provider's listing failed; its rows are stale from here on."
    type: Literal["provider.listing_failed"] = _type("provider.listing_failed")
    before: ProviderView | None = None
    after: ProviderView | None = None


class ProviderListingRecovered(Event):
    TYPE = "provider.listing_recovered"
    DESCRIPTION = "A provider lists again after failing."
    type: Literal["provider.listing_recovered"] = _type("provider.listing_recovered")
    before: ProviderView | None = None
    after: ProviderView | None = None


class ActionRequested(Event):
    TYPE = "action.requested"
    DESCRIPTION = "An operator action was carried out (or refused) on one target."
    type: Literal["action.requested"] = _type("action.requested")
    before: dict[str, Any] | None = None
    after: ActionView | None = None


class ActionSettled(Event):
    TYPE = "action.settled"
    DESCRIPTION = "An operator action reached its end state (converged, failed, timed_out)."
    type: Literal["action.settled"] = _type("action.settled")
    before: None = None
    after: ActionView | None = None


class AlertFired(Event):
    TYPE = "alert.fired"
    DESCRIPTION = "An alert rule's condition held past its hold time."
    type: Literal["alert.fired"] = _type("alert.fired")
    before: None = None
    after: AlertView | None = None


class AlertResolved(Event):
    TYPE = "alert.resolved"
    DESCRIPTION = "A firing alert's condition no longer holds."
    type: Literal["alert.resolved"] = _type("alert.resolved")
    before: AlertView | None = None
    after: AlertView | None = None


class AlertAcked(Event):
    TYPE = "alert.acked"
    DESCRIPTION = "An operator acknowledged an alert."
    type: Literal["alert.acked"] = _type("alert.acked")
    before: None = None
    after: AlertView | None = None


class AlertMuted(Event):
    TYPE = "alert.muted"
    DESCRIPTION = "An operator muted an alert (until a time or until resolved)."
    type: Literal["alert.muted"] = _type("alert.muted")
    before: None = None
    after: AlertView | None = None


class ProviderEvent(Event):
    TYPE = "provider.event"
    DESCRIPTION = "A provider's own event (stream or webhook), as received; `data` holds its payload."
    type: Literal["provider.event"] = _type("provider.event")
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        LeaseConvergenceChanged,
        InstanceAppeared,
        InstanceVanished,
        InstanceStateChanged,
        OrphanAppeared,
        OrphanCleared,
        ProviderListingFailed,
        ProviderListingRecovered,
        ActionRequested,
        ActionSettled,
        AlertFired,
        AlertResolved,
        AlertAcked,
        AlertMuted,
        ProviderEvent,
    )
}
