"""The cockpit's events: typed models with a stable `type`, and the diff that derives them.

Every change the cockpit observes becomes one `Event` appended to its ledger (adapters/ledger/
events.py, behind `ports.ledger.EventLogPort`). The `type` names are a public contract (the
catalog docs/events.md and docs/events/<type>.schema.json are generated from these models by
tools/gen_event_catalog.py; OTel export and `opcockpit events` read them): never rename one,
add new types instead.

Common fields: `occurred_at` (the source's own time where it says, else None), `observed_at`
(when the cockpit saw it), `source`, subject keys (`lease_id`, `instance_id`, `thread_id`,
`provider`), `before`/`after` (typed per event type) and `data` (free JSON extras).

`diff_ground_truth(prev, new)` derives the fleet events from two successive pictures. Pictures
are small per-subject tuples (`Picture`, `picture_of`) so the last one can be kept in the ledger
and a cron `snapshot` diffs against the previous run. Rules (never lie about the fleet):

- **first picture: a baseline, no events.** With no earlier picture every lease would "appear";
  10k events saying nothing would bury the history. The baseline is stored; changes after it
  are events.
- **a failed listing is one `provider.listing_failed`**, never vanished instances or cleared
  orphans: the provider's instances and orphans keep their previous picture until it lists again,
  and its stale rows keep their previous convergence (no flood of `convergence_changed` to stale).
- a lease row deleted from sandbox.db (LEON deletes destroyed leases) is a
  `lease.convergence_changed` with `after` None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from opcockpit.domain.event_base import Event, EventSource
from opcockpit.domain.events_config import EventsConfig  # re-exported: the `[events]` table
from opcockpit.domain.lazy import lazy_exports
from opcockpit.domain.models import Convergence, GroundTruth, ProviderStatus
from opcockpit.domain.timeutil import utc_or_naive

if TYPE_CHECKING:
    from opcockpit.domain.event_types import (
        EVENT_TYPES,
        ActionRequested,
        ActionSettled,
        ActionView,
        AlertAcked,
        AlertFired,
        AlertMuted,
        AlertResolved,
        AlertView,
        InstanceAppeared,
        InstanceStateChanged,
        InstanceVanished,
        InstanceView,
        LeaseConvergenceChanged,
        LeaseView,
        OrphanAppeared,
        OrphanCleared,
        OrphanView,
        ProviderEvent,
        ProviderListingFailed,
        ProviderListingRecovered,
        ProviderView,
    )

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
    "Event",
    "EventQuery",
    "EventSource",
    "EventsConfig",
    "InstanceAppeared",
    "InstanceStateChanged",
    "InstanceVanished",
    "InstanceView",
    "LeaseConvergenceChanged",
    "LeaseView",
    "OrphanAppeared",
    "OrphanCleared",
    "OrphanView",
    "Picture",
    "ProviderEvent",
    "ProviderListingFailed",
    "ProviderListingRecovered",
    "ProviderView",
    "diff_ground_truth",
    "diff_pictures",
    "diverged_time",
    "event_from_dict",
    "picture_of",
]


# The typed events and views live in domain/event_types.py, created on first use (see
# domain/event_base.py): `from opcockpit.domain.events import LeaseConvergenceChanged` loads them.
_TYPED = frozenset((
    "EVENT_TYPES", "ActionRequested", "ActionSettled", "ActionView", "AlertAcked", "AlertFired",
    "AlertMuted", "AlertResolved", "AlertView", "InstanceAppeared", "InstanceStateChanged",
    "InstanceVanished", "InstanceView", "LeaseConvergenceChanged", "LeaseView", "OrphanAppeared",
    "OrphanCleared", "OrphanView", "ProviderEvent", "ProviderListingFailed",
    "ProviderListingRecovered", "ProviderView",
))  # fmt: skip


__getattr__ = lazy_exports(globals(), _TYPED, "opcockpit.domain.event_types")


def event_from_dict(d: Mapping[str, Any]) -> Event:
    """The typed event for a stored dict; an unknown `type` (a newer cockpit wrote it) is kept as
    a plain `Event` rather than dropped."""
    from opcockpit.domain.event_types import EVENT_TYPES

    cls = EVENT_TYPES.get(str(d.get("type")), Event)
    return cls.model_validate(d)


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A filter over the ledger's events (every field optional; results newest first)."""

    lease_id: str | None = None
    thread_id: str | None = None
    provider: str | None = None
    instance_id: str | None = None
    types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = 1000
    oldest_first: bool = False
    # Only the events of leases with at least this many events matching the rest of the query
    # (the flapping rule: a round loaded every convergence change of the window, ~46k events
    # 5 minutes into a drifting 10k fleet, to keep the few leases that flapped; issue 10's RSS).
    min_per_lease: int | None = None


# --------------------------------------------------------------------------- pictures and the diff

# A picture: subject key -> small tuple. Keys: "L|<lease>", "I|<provider>|<instance>",
# "O|<provider>|<instance>", "P|<provider>". Tuples are JSON-able (lists when read back).
Picture = dict[str, tuple[Any, ...]]

_LEASE, _INST, _ORPH, _PROV = "L", "I", "O", "P"
_DOWN = (ProviderStatus.ERROR.value, ProviderStatus.STALE.value)


def picture_of(gt: GroundTruth) -> Picture:
    """The per-subject facts the diff compares (cheap: one tuple per lease/instance/orphan)."""
    pic: Picture = {}
    for p in gt.providers:
        pic[f"{_PROV}|{p.name}"] = (p.status._value_, p.error)
    rows = gt.rows
    for r, updated in zip(rows, _isoformats([r.updated_at for r in rows]), strict=True):
        lid, iid, state = r.lease_id, r.instance_id, r.provider_state
        # ._value_, not .value: an enum property call per row
        pic[f"{_LEASE}|{lid}"] = (
            r.convergence._value_, r.desired_state, r.observed_state, state, iid, r.provider, r.thread_id,
            updated,
        )  # fmt: skip
        if iid and state is not None:
            pic[f"{_INST}|{r.provider}|{iid}"] = (state, lid)
    for o in gt.orphans:
        pic.setdefault(f"{_INST}|{o.provider}|{o.instance_id}", (o.provider_state, None))
        pic[f"{_ORPH}|{o.provider}|{o.instance_id}"] = (o.provider_state, o.claim, o.claimed_lease_id)
    return pic


def _isoformats(times: list[datetime | None]) -> list[str | None]:
    """`[t.isoformat() if t else None for t in times]`: orjson writes UTC and naive times as
    isoformat does, in C (datetime.isoformat goes through printf: ~3x dearer over 10k rows)."""
    if utc_or_naive(times):
        return orjson.loads(orjson.dumps(times))  # type: ignore[no-any-return]
    return [t.isoformat() if t else None for t in times]


def _provider_of(key: str, value: tuple[Any, ...]) -> str:
    kind, rest = key.split("|", 1)
    if kind == _LEASE:
        return str(value[5])
    return rest.split("|", 1)[0]


def diff_pictures(
    prev: Mapping[str, Any] | None, new: Picture, observed_at: datetime
) -> tuple[list[Event], Picture]:
    """(events, the picture to keep). `prev` None is the baseline: no events (see module doc).

    Subjects of a provider whose listing failed keep their previous picture (no vanishing, no
    orphans clearing); a stale lease row keeps its previous convergence.
    """
    if prev is None:
        return [], dict(new)
    prev = {k: tuple(v) for k, v in prev.items()}
    down = {k.split("|", 1)[1] for k, v in new.items() if k[0] == _PROV and v[0] in _DOWN}
    keep: Picture = {}
    for k, v in new.items():
        kind = k[0]
        if kind in (_INST, _ORPH) and _provider_of(k, v) in down:
            continue  # carried over from prev below
        if kind == _LEASE and v[0] == Convergence.STALE.value and k in prev:
            keep[k] = prev[k]
            continue
        keep[k] = v
    for k, v in prev.items():
        if k[0] in (_INST, _ORPH) and _provider_of(k, v) in down:
            keep[k] = v
        elif k[0] == _PROV and k not in keep:
            keep[k] = v  # a provider that left the config: keep its last word, no event
    events: list[Event] = []
    for k in sorted(keep.keys() | prev.keys()):
        old, cur = prev.get(k), keep.get(k)
        if old == cur:
            continue
        events.extend(_events_for(k, old, cur, observed_at))
    return events, keep


def diff_ground_truth(prev: GroundTruth | None, new: GroundTruth) -> list[Event]:
    """The fleet events between two successive ground truths (prev None: baseline, no events)."""
    events, _ = diff_pictures(None if prev is None else picture_of(prev), picture_of(new), new.generated_at)
    return events


def _lease_view(v: tuple[Any, ...] | None) -> LeaseView | None:
    if v is None:
        return None
    from opcockpit.domain.event_types import LeaseView

    return LeaseView(
        convergence=v[0], desired_state=v[1], observed_state=v[2], provider_state=v[3], instance_id=v[4]
    )


def _events_for(
    key: str, old: tuple[Any, ...] | None, cur: tuple[Any, ...] | None, at: datetime
) -> list[Event]:
    from opcockpit.domain.event_types import (  # first used when something changed: see _TYPED
        InstanceAppeared,
        InstanceStateChanged,
        InstanceVanished,
        InstanceView,
        LeaseConvergenceChanged,
        OrphanAppeared,
        OrphanCleared,
        OrphanView,
        ProviderListingFailed,
        ProviderListingRecovered,
        ProviderView,
    )

    kind, rest = key.split("|", 1)
    if kind == _LEASE:
        if old is not None and cur is not None and old[0] == cur[0]:
            return []  # same verdict (the picture still moves on: before/after of the next change)
        ref = cur if cur is not None else old
        assert ref is not None
        db_changed = old is None or cur is None or old[1:3] != cur[1:3] or old[7] != cur[7]
        occurred = _ts(cur[7]) if cur is not None and db_changed else None
        return [
            LeaseConvergenceChanged(
                observed_at=at, occurred_at=occurred,
                source=EventSource.SANDBOX_DB if db_changed else EventSource.PROVIDER_LIST,
                lease_id=rest, instance_id=ref[4], thread_id=ref[6], provider=ref[5],
                before=_lease_view(old), after=_lease_view(cur),
                data={} if cur is not None else {"reason": "lease row deleted from sandbox.db"},
            )
        ]  # fmt: skip
    if kind == _PROV:
        was_down = old is not None and old[0] in _DOWN
        is_down = cur is not None and cur[0] in _DOWN
        if was_down == is_down or cur is None:
            return []
        cls: type[Event] = ProviderListingFailed if is_down else ProviderListingRecovered
        before = ProviderView(status=old[0], error=old[1]) if old is not None else None
        return [
            cls(
                observed_at=at, source=EventSource.PROVIDER_LIST, provider=rest, before=before,
                after=ProviderView(status=cur[0], error=cur[1]),
            )
        ]  # fmt: skip
    provider, instance = rest.split("|", 1)
    common: dict[str, Any] = {
        "observed_at": at,
        "source": EventSource.PROVIDER_LIST,
        "provider": provider,
        "instance_id": instance,
    }
    if kind == _INST:
        ov = InstanceView(state=old[0], lease_id=old[1]) if old is not None else None
        cv = InstanceView(state=cur[0], lease_id=cur[1]) if cur is not None else None
        lease = (cv or ov).lease_id if (cv or ov) else None
        if ov is None:
            return [InstanceAppeared(**common, lease_id=lease, after=cv)]
        if cv is None:
            return [InstanceVanished(**common, lease_id=lease, before=ov)]
        if ov.state == cv.state:
            return []  # only the owning lease changed: the lease's own event tells it
        return [InstanceStateChanged(**common, lease_id=lease, before=ov, after=cv)]
    if kind == _ORPH:
        if old is None and cur is not None:
            view = OrphanView(state=cur[0], claim=cur[1], claimed_lease_id=cur[2])
            return [OrphanAppeared(**common, lease_id=cur[2], after=view)]
        if cur is None and old is not None:
            view = OrphanView(state=old[0], claim=old[1], claimed_lease_id=old[2])
            return [OrphanCleared(**common, lease_id=old[2], before=view)]
    return []


def _ts(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


# --------------------------------------------------------------------------- derived views


def diverged_time(
    events: Iterable[Event], now: datetime, *, since: datetime | None = None
) -> dict[str, timedelta]:
    """Time each lease spent `diverged`, from its `lease.convergence_changed` events.

    A lease diverged at `now` counts up to `now`; `since` clips the window (a lease already
    diverged before the first event seen counts from its first event only: we do not invent
    what we did not observe)."""
    from opcockpit.domain.event_types import LeaseConvergenceChanged, LeaseView

    out: dict[str, timedelta] = {}
    start: dict[str, datetime] = {}
    changes = sorted(
        (e for e in events if e.type == LeaseConvergenceChanged.TYPE and e.lease_id),
        key=lambda e: (e.observed_at, e.id or 0),
    )
    for e in changes:
        lid = e.lease_id
        assert lid is not None
        at = max(e.observed_at, since) if since is not None else e.observed_at
        after = e.after.convergence if isinstance(e.after, LeaseView) else None
        before = e.before.convergence if isinstance(e.before, LeaseView) else None
        if lid not in start and before == Convergence.DIVERGED.value and since is not None:
            start[lid] = since  # diverged before the window opened
        if lid in start and after != Convergence.DIVERGED.value:
            out[lid] = out.get(lid, timedelta()) + max(timedelta(), at - start.pop(lid))
        elif after == Convergence.DIVERGED.value and lid not in start:
            start[lid] = at
    for lid, t0 in start.items():
        out[lid] = out.get(lid, timedelta()) + max(timedelta(), now - t0)
    return out


def utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
