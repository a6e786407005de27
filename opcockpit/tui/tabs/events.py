"""Provider events tab: what providers did, newest first, from two sides, each event linked to the
`lease_events` of its matched lease around the event's time (why did this sandbox change state?).

The Source column says which side a row comes from: `LEON` (LEON's `provider_events` webhook
log), `observed` (the cockpit's event ledger: an instance appeared, vanished or changed state in a
listing or a targeted look) and `received` (a webhook stored by `opcockpit serve`). LEON's table
stays empty for providers that send LEON no webhooks; the cockpit's side shows them changing.

Filtering: the table filter covers provider and thread (`provider:docker`, `thread:thr-1`); the
time range is a query parameter cycled with `t` (all / 15m / 1h / 24h).

`ProviderEventsView` is the tab's widget; `EventsTab` is the app's part of it (a mixin of
CockpitApp): loading events and the lease transitions around the selected one, Enter (the event
alone, with its whole payload, and from there its thread), copy.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from opcockpit.domain.events import (
    Event,
    EventQuery,
    InstanceAppeared,
    InstanceStateChanged,
    InstanceVanished,
)
from opcockpit.domain.events import ProviderEvent as LedgerProviderEvent
from opcockpit.domain.models import GroundTruthRow, LeaseEventRecord, ProviderEventRecord
from opcockpit.domain.text import error_line, one_line
from opcockpit.tui.rows import fmt_ts
from opcockpit.tui.screens.event import EventDetailScreen
from opcockpit.tui.table.widget import Column, KeyedTable

if TYPE_CHECKING:
    from textual.app import App

    from opcockpit.ports.ledger import EventLogPort
    from opcockpit.tui.data import DetailSource
    from opcockpit.wiring import Cockpit

    _AppBase = App[int]  # the mixin's host, for type checkers only
else:
    _AppBase = object

__all__ = [
    "EVENT_COLUMNS",
    "OBSERVED_TYPES",
    "EventsTab",
    "ProviderEventsView",
    "event_cells",
    "fmt_ts",
    "observed_record",
    "render_lease_events",
]

RANGES: tuple[tuple[str, timedelta | None], ...] = (
    ("all", None),
    ("last 15m", timedelta(minutes=15)),
    ("last 1h", timedelta(hours=1)),
    ("last 24h", timedelta(hours=24)),
)
AROUND = timedelta(minutes=10)
LIMIT = 500  # rows per side
# The ledger's provider-side events shown next to LEON's webhook rows.
OBSERVED_TYPES = (
    InstanceStateChanged.TYPE,
    InstanceAppeared.TYPE,
    InstanceVanished.TYPE,
    LedgerProviderEvent.TYPE,
)
LEON, OBSERVED, RECEIVED = "LEON", "observed", "received"


EVENT_COLUMNS = [
    Column("time", "Time (UTC)", 14, format=fmt_ts),
    Column("source", "Source", 8),
    Column("provider", "Provider", 10),
    Column("event", "Event", 18),
    Column("instance", "Instance", 18),
    Column("lease", "Lease", 18),
    Column("thread", "Thread", 16),
    Column("payload", "Payload", 60),
]


def event_cells(
    e: ProviderEventRecord, lease_threads: Mapping[str, str | None], source: str = LEON
) -> tuple[Any, ...]:
    payload = (e.payload_json or "").replace("\n", " ")
    lease = e.matched_lease_id
    return (
        e.created_at,
        source,
        e.provider_name,
        e.event_type,
        e.instance_id,
        lease or "(unmatched)",
        lease_threads.get(lease) if lease else None,
        payload[:200] or None,
    )


def _state(view: Any) -> str | None:
    return view.get("state") if isinstance(view, dict) else getattr(view, "state", None)


def _lease_of(e: Event) -> str | None:
    for view in (e.after, e.before):
        lease = view.get("lease_id") if isinstance(view, dict) else getattr(view, "lease_id", None)
        if lease:
            return str(lease)
    return e.lease_id


def observed_record(e: Event) -> tuple[str, ProviderEventRecord]:
    """A ledger event as a row of this tab: (source label, record). `event_id` is the ledger id
    (the row key is prefixed, so it never meets a LEON id)."""
    before, after = _state(e.before), _state(e.after)
    if e.type == LedgerProviderEvent.TYPE:
        source = RECEIVED if e.data.get("via") == "webhook" else OBSERVED
        kind = str(e.data.get("event_type") or "provider.event")
        payload = e.data.get("payload")
        detail = json.dumps(payload, default=str, separators=(",", ":")) if payload else ""
        if before or after:
            detail = f"{before or '?'} → {after or '?'}  {detail}"
    else:
        source = OBSERVED
        kind = e.type.removeprefix("instance.")
        detail = f"{before or '∅'} → {after or '∅'}"
    record = ProviderEventRecord(
        event_id=e.id or 0,
        provider_name=e.provider or "",
        instance_id=e.instance_id or "",
        event_type=kind,
        payload_json=one_line(detail, 400) or None,
        matched_lease_id=_lease_of(e),
        created_at=e.occurred_at or e.observed_at,
    )
    return source, record


def render_lease_events(
    event: ProviderEventRecord | None, lease_events: Sequence[LeaseEventRecord] | None, error: str | None
) -> Text | Table:
    if event is None:
        return Text(" select an event to see the lease transitions around it", style="italic dim")
    if event.matched_lease_id is None:
        return Text(
            f" event {event.event_id} matched no lease (an orphan's or a foreign instance's event)",
            style="italic",
        )
    if error:
        return Text(f" lease_events unavailable: {error}", style="bold red")
    if lease_events is None:
        return Text(" loading lease_events…", style="italic dim")
    at = event.created_at
    title = f"lease_events of {event.matched_lease_id} within ±{int(AROUND.total_seconds() // 60)}m"
    if at is not None:
        title += f" of {fmt_ts(at)}"
    table = Table(title=title, title_justify="left", expand=True, box=None, show_edge=False, pad_edge=False)
    table.add_column("", width=1)
    table.add_column("Time", no_wrap=True)
    table.add_column("Type", no_wrap=True)
    table.add_column("Source", no_wrap=True)
    table.add_column("Error / payload", overflow="ellipsis", no_wrap=True, ratio=1)
    if not lease_events:
        table.add_row("", "", "(none in this window)", "", "")
    ordered = sorted(lease_events, key=lambda x: (x.created_at is None, x.created_at or at, x.event_id))
    # "▶" marks the first transition at/after the provider event: the likely consequence.
    first_after = next((x for x in ordered if at and x.created_at and x.created_at >= at), None)
    for le in ordered:
        detail = Text(le.error, style="red") if le.error else Text(le.payload_json or "")
        marker = "▶" if le is first_after else ""
        table.add_row(marker, fmt_ts(le.created_at), le.event_type, le.source, detail)
    return table


class ProviderEventsView(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("t", "cycle_range", "Range")]

    DEFAULT_CSS = """
    ProviderEventsView { height: 1fr; }
    ProviderEventsView > #events-range { height: 1; color: $text-muted; }
    ProviderEventsView > KeyedTable { height: 1fr; }
    ProviderEventsView > #events-around { height: 9; border-top: solid $panel-lighten-2; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.range_index = 0
        self.events: dict[str, ProviderEventRecord] = {}  # row key -> record (both sources)
        self.sources: dict[str, str] = {}  # row key -> LEON | observed | received
        self.ledger_events: dict[str, Event] = {}  # row key -> the stored event (its detail view)
        self.threads: Mapping[str, str | None] = {}  # lease id -> thread id, as last loaded
        self.around: dict[str, list[LeaseEventRecord]] = {}
        self.around_errors: dict[str, str] = {}
        self.load_error: str | None = None
        self.ledger_error: str | None = None
        self.loaded = False
        # The last good list of each side: a failing side keeps its rows, the other still updates.
        self._leon: Sequence[ProviderEventRecord] = ()
        self._observed: Sequence[Event] = ()

    def compose(self) -> ComposeResult:
        yield Static(id="events-range")
        table = KeyedTable(EVENT_COLUMNS, markable=False, empty_text="no provider events", id="events-table")
        yield table
        yield Static(id="events-around")

    def on_mount(self) -> None:
        self.table.sort_by("time", reverse=True)
        self._show_range()
        self.show_around()

    @property
    def table(self) -> KeyedTable:
        return self.query_one("#events-table", KeyedTable)

    @property
    def since_delta(self) -> timedelta | None:
        return RANGES[self.range_index][1]

    def _show_range(self) -> None:
        label = RANGES[self.range_index][0]
        text = f" time range: {label} (t cycles)   filter with / e.g. provider:docker source:observed"
        if self.load_error:
            text += f"   ✗ {self.load_error}"
        if self.ledger_error:
            text += f"   ✗ cockpit events: {self.ledger_error}"
        self.query_one("#events-range", Static).update(text)

    def action_cycle_range(self) -> None:
        self.range_index = (self.range_index + 1) % len(RANGES)
        self._show_range()
        self.post_message(self.RangeChanged())

    class RangeChanged(Message):
        """The time range changed: the app re-queries provider_events."""

    def load(
        self,
        events: Sequence[ProviderEventRecord],
        lease_threads: Mapping[str, str | None],
        error: str | None = None,
        *,
        observed: Sequence[Event] | None = None,
        ledger_error: str | None = None,
    ) -> None:
        """LEON's rows (`error`: they could not be read) and the ledger's (`observed`; None: no
        ledger; `ledger_error`: it could not be read). A failed side keeps its last good rows and
        the range line says why."""
        self.load_error = error
        self.ledger_error = ledger_error
        self._show_range()
        if error is None:
            self._leon = events
        if ledger_error is None and observed is not None:
            self._observed = observed
        if error is not None and (observed is None or ledger_error is not None):
            return  # nothing new: keep showing the last good list; the error line says it is old
        self.loaded = True
        rows: dict[str, tuple[str, ProviderEventRecord]] = {str(e.event_id): (LEON, e) for e in self._leon}
        for ev in self._observed:
            rows[f"c{ev.id}"] = observed_record(ev)  # ledger ids: their own key space
        self.events = {k: rec for k, (_, rec) in rows.items()}
        self.ledger_events = {f"c{ev.id}": ev for ev in self._observed}
        self.threads = lease_threads
        self.sources = {k: src for k, (src, _) in rows.items()}
        self.table.replace({k: event_cells(rec, lease_threads, src) for k, (src, rec) in rows.items()})
        self.show_around()

    def selected_event(self) -> ProviderEventRecord | None:
        key = self.table.cursor_key
        return self.events.get(key) if key else None

    def set_around(self, key: str, lease_events: list[LeaseEventRecord] | None, error: str | None) -> None:
        if lease_events is not None:
            self.around[key] = lease_events
        if error is not None:
            self.around_errors[key] = error
        self.show_around()

    def show_around(self) -> None:
        event = self.selected_event()
        key = self.table.cursor_key or "" if event else ""
        self.query_one("#events-around", Static).update(
            render_lease_events(event, self.around.get(key), self.around_errors.get(key))
        )


class EventsTab(_AppBase):
    """CockpitApp's Provider events tab (mixin): the events query, the lease transitions around the
    selected event, Enter on an event (the event alone: EventDetailScreen) and what `c` copies."""

    details: DetailSource | None
    clock: Callable[[], datetime]
    cockpit: Cockpit | None
    _events_w: ProviderEventsView
    _rows_by_key: dict[str, GroundTruthRow]

    if TYPE_CHECKING:  # GroundTruthTab's (a runtime stub here would shadow it in the MRO)

        def open_lease(self, lease_id: str) -> None: ...

    @property
    def events_view(self) -> ProviderEventsView:
        return self._events_w

    @work(exclusive=True, group="provider-events", exit_on_error=False)
    async def load_provider_events(self) -> None:
        view = self.events_view
        delta = view.since_delta
        since = self.clock() - delta if delta else None
        events: Sequence[ProviderEventRecord] = []
        error: str | None = None
        if self.details is None:
            error = "no sandbox.db detail source"
        else:
            try:
                events = await self.details.provider_events(since=since, limit=LIMIT)
            except Exception as exc:
                error = error_line(exc)
        observed: list[Event] | None = None
        ledger_error: str | None = None
        log = self._event_log()
        if log is not None:
            query = EventQuery(types=OBSERVED_TYPES, since=since, limit=LIMIT)
            try:
                observed = await asyncio.to_thread(log.query, query)
            except Exception as exc:  # LedgerError: LEON's side is still shown
                ledger_error = error_line(exc)
        threads = {k: r.thread_id for k, r in self._rows_by_key.items()}
        view.load(events, threads, error, observed=observed, ledger_error=ledger_error)
        self._load_around()

    def _event_log(self) -> EventLogPort | None:
        """The cockpit's event ledger (None: no wiring graph, or `[events] enabled = false`)."""
        cockpit = getattr(self, "cockpit", None)
        return getattr(cockpit, "events", None) if cockpit is not None else None

    def on_provider_events_view_range_changed(self, _: ProviderEventsView.RangeChanged) -> None:
        self.load_provider_events()

    @work(exclusive=True, group="lease-around", exit_on_error=False)
    async def _load_around(self) -> None:
        view = self.events_view
        event = view.selected_event()
        if event is None or event.matched_lease_id is None or self.details is None:
            view.show_around()
            return
        key = view.table.cursor_key or ""
        if key in view.around:
            view.show_around()
            return
        view.show_around()
        try:
            around = await self.details.lease_events_around(event.matched_lease_id, event.created_at, AROUND)
        except Exception as exc:
            view.set_around(key, None, error_line(exc))
            return
        view.set_around(key, list(around), None)

    def _event_highlighted(self) -> None:
        self._load_around()

    def _event_selected(self) -> None:
        """Enter: the event alone, every field and its whole payload (EventDetailScreen)."""
        view = self.events_view
        key = view.table.cursor_key
        ev = view.events.get(key) if key else None
        if key is None or ev is None:
            return
        row = self._rows_by_key.get(ev.matched_lease_id or "")
        thread = (row.thread_id if row else None) or view.threads.get(ev.matched_lease_id or "")
        source = view.sources.get(key, LEON)
        self.push_screen(EventDetailScreen(source, ev, thread, view.ledger_events.get(key)))

    def _event_copy_value(self, key: str) -> str:
        """`c` on an event: its lease id (else its instance id), what the CLI takes."""
        ev = self.events_view.selected_event()
        return (ev.matched_lease_id or ev.instance_id) if ev else key
