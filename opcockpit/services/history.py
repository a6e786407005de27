"""History: record what the cockpit observes into the event ledger, and views derived from it.

`RecordingCollector` wraps the collector (same interface: `refresh() -> GroundTruth`, `aclose()`,
every other attribute passed through) and after each refresh appends the diff of the new picture
against the last stored one (`domain.events.diff_pictures`), picture and events in one
transaction. The first picture a ledger ever sees is a baseline (no events).

The ledger never stops the fleet view: a failing append is remembered in `ledger_error` (one
line, shown by the surfaces) and the refresh returns its GroundTruth all the same; the picture is
then not advanced, so the next successful append still reports the change (nothing observed is
lost while the collector lives).

`action_event`/`alert_event` build the operator/alert events that Operations and the AlertEngine
hand to their `on_event` hook. `state_history` interleaves LEON's lease_events/provider_events
with the cockpit's events for the thread screen's State history section (pure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opcockpit.domain.events import (
    Event,
    EventQuery,
    EventSource,
    Picture,
    diff_pictures,
    diverged_time,
    picture_of,
)
from opcockpit.domain.models import GroundTruth, LeaseEventRecord, ProviderEventRecord
from opcockpit.domain.picture_inc import KeptPicture, PictureTracker, PictureUpdate, diff_changed
from opcockpit.domain.picture_mark import MARK_KEY, fingerprint, split_mark
from opcockpit.domain.text import error_line, one_line
from opcockpit.ports.ledger import EventLogPort, LedgerError

__all__ = [
    "ACTION_REQUESTED",
    "ACTION_SETTLED",
    "EventSink",
    "HistoryEntry",
    "RecordingCollector",
    "action_event",
    "alert_event",
    "record_events",
    "state_history",
]

EventSink = Callable[[Event], None]
# The typed events (domain/event_types.py) are imported where they are built: a snapshot whose
# fleet did not change builds none (issue 9). tests/test_snapshot_picture_mark.py holds these equal
# to ActionRequested.TYPE / ActionSettled.TYPE.
ACTION_REQUESTED = "action.requested"
ACTION_SETTLED = "action.settled"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RecordingCollector:
    """A collector that appends the fleet's changes to `events` after every refresh."""

    def __init__(
        self, inner: Any, events: EventLogPort, *, mark_reader: Callable[[], str | None] | None = None
    ) -> None:
        self._inner = inner
        self.events = events
        # One-shot mode (`snapshot`, issue 9): reads the fingerprint of the stored picture
        # (domain/picture_mark.py) without loading the picture; None (the live cockpit) diffs by
        # change instead and deletes the mark whenever it writes the picture.
        self.mark_reader = mark_reader
        self.ledger_error: str | None = None  # last append failure, one line; None when fine
        self.recorded = 0  # events appended by this collector
        # The last recorded picture: in full (`_picture`) until a round has recorded against the
        # tracker's picture, then as its differences from it (`_kept`; issue 10, RSS).
        self._picture: Picture | None = None
        self._kept: KeptPicture | None = None
        self._loaded = False
        # The picture kept by change (domain/picture_inc.py); `_synced` says the recorded picture
        # is the last *recorded* diff of it, so the next round may diff only the keys that moved.
        self._tracker = PictureTracker()
        self._synced = False
        self._lock = asyncio.Lock()

    @property
    def inner(self) -> Any:
        return self._inner

    def __getattr__(self, name: str) -> Any:  # refreshing, listings, adapters, leon, config, ...
        return getattr(self._inner, name)

    async def refresh(self) -> GroundTruth:
        gt = await self._inner.refresh()
        await self.record(gt)
        return gt

    def settled(self) -> bool:
        """The inner collector's `settled` (a tick may skip its refresh, issue 10), unless the last
        append failed: the next refresh records it again."""
        inner = getattr(self._inner, "settled", None)
        return self.ledger_error is None and inner is not None and bool(inner())

    async def record(self, gt: GroundTruth) -> int:
        """Append the changes `gt` shows against the last picture. Never raises for the ledger."""
        async with self._lock:  # joined refreshes return the same gt: record it once
            try:
                return await asyncio.to_thread(self._record, gt)
            except LedgerError as exc:  # the fleet view goes on; the surfaces say so
                self._synced = False  # the next round diffs in full against what was written
                self.ledger_error = one_line(str(exc))
                return 0
            except Exception as exc:  # a bug in the diff must not cost the fleet view either
                self._synced = False
                self.ledger_error = f"event history not recorded: {error_line(exc)}"
                return 0

    def _record(self, gt: GroundTruth) -> int:
        if self.mark_reader is not None and not self._loaded:
            return self._record_once(gt)
        if not self._loaded:
            self._load()
        upd = self._tracker.update(gt)
        kept = self._kept
        if kept is not None:
            kept.follow(upd)  # first: whatever happens below, it stays the recorded picture
            if self._synced and upd.exact:
                return self._record_changed(kept, upd, gt)
        prev = kept.full() if kept is not None else self._picture
        new = self._tracker.picture if upd.exact else picture_of(gt)
        if prev is not None and new == prev:
            # Nothing changed (a cron snapshot): diff_pictures would keep exactly `prev` and
            # find no event: skip it (~8 ms of a 10k-lease snapshot, issue 9).
            if kept is None:  # the next round diffs by change against it
                self._kept, self._picture = KeptPicture(self._tracker, prev), None
            self._synced = True
            self.ledger_error = None
            return 0
        events, keep, changed = self._diff(prev, new, gt)
        self._append(events, changed, first=prev is None)
        if kept is None:
            kept = self._kept = KeptPicture(self._tracker, keep)
            self._picture = None
        else:
            kept.reset(keep)
        return self._recorded(events)

    def _record_changed(self, kept: KeptPicture, upd: PictureUpdate, gt: GroundTruth) -> int:
        """The round after a recorded one, the tracker exact: only the keys that moved."""
        if not upd.changed:
            self.ledger_error = None  # nothing moved since the last recorded picture
            return 0
        prev = kept.entries(upd.changed)
        part = diff_changed(prev, self._tracker.picture, upd.changed, gt.generated_at)
        if part is None:  # a provider went down or came back: the full diff decides
            prev_full = kept.full()
            events, keep, changed = self._diff(prev_full, self._tracker.picture, gt)
            self._append(events, changed, first=False)
            kept.reset(keep)
            return self._recorded(events)
        events, sub = part
        changed: dict[str, Any] = {k: v for k, v in sub.items() if prev.get(k) != v}
        self._append(events, changed, first=False)
        for k, v in changed.items():  # only once written: a failed append is reported again
            kept.put(k, v)
        return self._recorded(events)

    def _append(self, events: list[Event], changed: dict[str, Any], *, first: bool) -> None:
        if events or changed or first:
            # The whole picture is not fingerprinted here: the stored mark no longer describes
            # it, so it goes in the same transaction (a later snapshot then diffs in full).
            self.events.append(events, picture={**changed, MARK_KEY: None})

    def _load(self) -> None:
        self._picture = self.events.last_picture()
        if self._picture is not None:
            split_mark(self._picture)  # not a subject: never diffed
        self._loaded = True

    @staticmethod
    def _diff(
        prev: Picture | None, new: Picture, gt: GroundTruth
    ) -> tuple[list[Event], Picture, dict[str, Any]]:
        """The full diff: (events, the picture to keep, the entries to write; None: forget)."""
        events, keep = diff_pictures(prev, new, gt.generated_at)
        if prev is None:
            return events, keep, dict(keep)
        changed: dict[str, Any] = {k: v for k, v in keep.items() if prev.get(k) != v}
        changed.update((k, None) for k in prev.keys() - keep.keys())
        return events, keep, changed

    def _recorded(self, events: list[Event]) -> int:
        self._synced = True
        self.ledger_error = None
        self.recorded += len(events)
        return len(events)

    def _record_once(self, gt: GroundTruth) -> int:
        """The first round in one-shot mode. The stored mark is the fingerprint of the last new
        picture whose diff against the stored picture found nothing to record (or whose diff
        was just recorded: diffing it again finds nothing, see domain/picture_mark.py). When it
        is this round's new picture the diff is skipped and nothing is loaded; else the full
        diff, and this picture's mark written with whatever it records. The change tracker is not
        fed (a one-shot collector has no next round to diff by change; a later round diffs in
        full)."""
        new = picture_of(gt)
        mark = fingerprint(new)
        assert self.mark_reader is not None
        if self.mark_reader() == mark:
            self.ledger_error = None  # nothing loaded: a later round (if any) loads and diffs
            return 0
        self._load()
        prev = self._picture
        if prev is not None and new == prev:  # the same picture, its mark missing or stale
            events: list[Event] = []
            keep, changed = dict(prev), {}
        else:
            events, keep, changed = self._diff(prev, new, gt)
        # Also when nothing changed: a stale row or a failed listing keeps entries of the stored
        # picture (keep != new), and the next snapshot of this fleet then skips all the same.
        self.events.append(events, picture={**changed, MARK_KEY: (mark,)})
        self._picture = keep  # in full: the tracker was not fed
        count = self._recorded(events)
        self._synced = False  # the tracker was not fed: the next round diffs in full
        return count

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            await asyncio.to_thread(self.events.close)


def record_events(events: EventLogPort | None, on_error: Callable[[str], None] | None = None) -> EventSink:
    """An `on_event` hook appending one event at a time; ledger failures go to `on_error`."""

    def sink(event: Event) -> None:
        if events is None:
            return
        try:
            events.append([event])
        except Exception as exc:
            if on_error is not None:
                on_error(error_line(exc))

    return sink


# --------------------------------------------------------------------------- operator / alert events


def action_event(kind: str, op: Any, operator: str | None = None, *, now: datetime | None = None) -> Event:
    """`action.requested` / `action.settled` for a services.ops_track.Operation (duck-typed)."""
    from opcockpit.domain.event_types import ActionRequested, ActionSettled, ActionView

    t = op.target
    status = getattr(op.status, "value", str(op.status))
    view = ActionView(
        action=getattr(op.action, "value", str(op.action)), status=status, outcome=op.outcome,
        error=one_line(op.error) if op.error else None, op_id=op.op_id, operator=operator,
    )  # fmt: skip
    common: dict[str, Any] = {
        "source": EventSource.OPERATOR,
        "lease_id": t.lease_id or getattr(op, "new_lease_id", None),
        "instance_id": t.instance_id,
        "thread_id": t.thread_id,
        "provider": t.provider,
    }
    if kind == ActionSettled.TYPE:
        at = op.settled_at or now or _utcnow()
        return ActionSettled(**common, observed_at=at, occurred_at=at, after=view)
    at = now or op.finished_at or _utcnow()
    return ActionRequested(
        **common, observed_at=at, occurred_at=op.started_at, before=op.before, after=view,
        data={"dry_run": bool(op.dry_run), "duration_ms": op.duration_ms},
    )  # fmt: skip


def alert_event(kind: str, alert: Any, now: datetime, *, who: str | None = None) -> Event:
    """`alert.fired|resolved|acked|muted` for a ports.alert_records.Alert (duck-typed)."""
    from opcockpit.domain.event_types import AlertAcked, AlertFired, AlertMuted, AlertResolved, AlertView

    cls: type[Event] = {c.TYPE: c for c in (AlertFired, AlertResolved, AlertAcked, AlertMuted)}[kind]
    view = AlertView(
        alert_id=getattr(alert, "id", None), rule=alert.rule, key=alert.key,
        severity=getattr(getattr(alert, "severity", None), "value", None),
        summary=one_line(getattr(alert, "summary", "") or ""), state=kind.split(".", 1)[1], who=who,
        until=getattr(alert, "muted_until", None) if cls is AlertMuted else None,
    )  # fmt: skip
    subject = _alert_subject(alert)
    fields: dict[str, Any] = {"after": view}
    if cls is AlertResolved:
        fields = {"before": view.model_copy(update={"state": "firing"}), "after": view}
    source = EventSource.OPERATOR if cls in (AlertAcked, AlertMuted) else EventSource.COCKPIT
    return cls(observed_at=now, occurred_at=now, source=source, **subject, **fields)


def _alert_subject(alert: Any) -> dict[str, str | None]:
    out: dict[str, str | None] = {"lease_id": None, "thread_id": None, "provider": None}
    for ev in getattr(alert, "evidence", ()) or ():
        kind, ident = getattr(ev, "kind", None), getattr(ev, "id", None)
        if kind == "lease" and out["lease_id"] is None:
            out["lease_id"] = ident
        elif kind == "thread" and out["thread_id"] is None:
            out["thread_id"] = ident
        elif kind == "provider" and out["provider"] is None:
            out["provider"] = ident
    scope = getattr(alert, "scope", None)
    if out["provider"] is None and isinstance(scope, str) and not scope.startswith("@"):
        out["provider"] = scope
    return out


# --------------------------------------------------------------------------- State history


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One line of a lease's State history: who said what, when."""

    at: datetime | None
    origin: str  # "leon" (lease_events) | "webhook" (provider_events) | "cockpit" | "operator"
    what: str  # event type
    detail: str  # one line


def _transition(before: Any, after: Any, attr: str) -> str:
    b = getattr(before, attr, None) if before is not None else None
    a = getattr(after, attr, None) if after is not None else None
    return f"{b or '∅'} → {a or '∅'}"


def _cockpit_entry(e: Event) -> HistoryEntry:
    if e.type == "lease.convergence_changed":
        detail = _transition(e.before, e.after, "convergence")
        if e.after is not None:
            detail += f" (desired {e.after.desired_state}, provider {e.after.provider_state or '-'})"
        elif e.data.get("reason"):
            detail += f" ({e.data['reason']})"
    elif e.type.startswith("instance."):
        detail = f"{e.instance_id}: " + _transition(e.before, e.after, "state")
    elif e.type.startswith("orphan."):
        detail = f"{e.instance_id}"
    elif e.type.startswith("provider."):
        err = getattr(e.after, "error", None)
        detail = f"{e.provider}" + (f": {err}" if err else "")
    elif e.type.startswith("action."):
        a = e.after
        detail = ""
        if a is not None:
            detail = f"{a.action} {a.status}" + (f" ({a.outcome})" if a.outcome else "")
            detail += (f": {a.error}" if a.error else "") + (f" by {a.operator}" if a.operator else "")
    elif e.type.startswith("alert."):
        a = e.after
        detail = f"{a.rule}: {a.summary or ''}" + (f" by {a.who}" if a.who else "") if a is not None else ""
    else:
        detail = str(e.data) if e.data else ""
    origin = "operator" if e.source is EventSource.OPERATOR else "cockpit"
    return HistoryEntry(e.occurred_at or e.observed_at, origin, e.type, one_line(detail, 160))


def state_history(
    events: Iterable[Event],
    lease_events: Iterable[LeaseEventRecord] = (),
    provider_events: Iterable[ProviderEventRecord] = (),
    *,
    limit: int = 100,
) -> list[HistoryEntry]:
    """LEON's lease_events, provider webhooks and the cockpit's events, newest first."""
    out: list[HistoryEntry] = [_cockpit_entry(e) for e in events]
    for le in lease_events:
        detail = le.error or le.payload_json or ""
        out.append(
            HistoryEntry(le.created_at, "leon", le.event_type, one_line(f"{le.source}: {detail}", 160))
        )
    for pe in provider_events:
        detail = f"{pe.provider_name} {pe.instance_id}" + (f" {pe.payload_json}" if pe.payload_json else "")
        out.append(HistoryEntry(pe.created_at, "webhook", pe.event_type, one_line(detail, 160)))
    floor = datetime.min.replace(tzinfo=UTC)
    out.sort(key=lambda h: h.at or floor, reverse=True)
    return out[:limit]


def lease_history_query(lease_id: str, *, limit: int = 200) -> EventQuery:
    """The events of one lease for its State history."""
    return EventQuery(lease_id=lease_id, limit=limit)


def time_diverged(events: Sequence[Event], lease_id: str, now: datetime) -> timedelta:
    """How long `lease_id` spent diverged over `events` (0 when never)."""
    return diverged_time([e for e in events if e.lease_id == lease_id], now).get(lease_id, timedelta())
