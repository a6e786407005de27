"""The cockpit app: header, tabs (Ground truth, Orphans, Provider events, Alerts), refresh loop.

What lives where: this module composes the screen, runs the refresh loop and owns the global keys
(tabs, refresh, freeze, copy, help, quit). Each tab's handlers are in tui/tabs/ (ground_truth,
orphans, events, alerts), the operator actions and the audit view in tui/actions.py, the filter
bar in tui/filter_bar.py; the app class mixes them in.

Refresh model (k9s/dolphie): a timer ticks every `refresh_s`; a tick starts a refresh only when
none is in flight (a slow refresh makes later ticks drop, counted in the header), never two at
once. Results go into the keyed tables by row key: nothing is cleared, the cursor stays put.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.widgets import Input, Static, TabbedContent, TabPane

from opcockpit.domain.carry import carried
from opcockpit.domain.clock_skew import FutureStamps
from opcockpit.domain.models import GroundTruth, GroundTruthRow, OrphanRow, ProviderStatus
from opcockpit.domain.targets import Action
from opcockpit.domain.text import error_line, safe_text
from opcockpit.domain.timeutil import fmt_age
from opcockpit.tui.actions import CONFIRM_MODES, WRITE_ACTIONS, ActionsMixin
from opcockpit.tui.commands import JumpMixin, JumpProvider
from opcockpit.tui.contexts import Reload, SwitchContext
from opcockpit.tui.data import DetailSource
from opcockpit.tui.filter_bar import VIEW_KEYS, FilterBar, filter_bar_widgets
from opcockpit.tui.hangup import HangupMixin
from opcockpit.tui.heap import SETTLE_AFTER_REFRESHES, release_heap, settle_heap
from opcockpit.tui.live import Beat, LiveLoops
from opcockpit.tui.opsview import OpsOverlay
from opcockpit.tui.rowdelta import gt_row_cells, orphan_row_cells
from opcockpit.tui.rows import overlay_gt, overlay_orphan
from opcockpit.tui.screens.help import HelpScreen
from opcockpit.tui.search import SearchProvider
from opcockpit.tui.table.widget import KeyedTable
from opcockpit.tui.tabs.alerts import AlertsView
from opcockpit.tui.tabs.events import EventsTab, ProviderEventsView
from opcockpit.tui.tabs.explore import ExploreView
from opcockpit.tui.tabs.ground_truth import GroundTruthTab, ground_truth_widget
from opcockpit.tui.tabs.orphans import OrphansTab, orphan_copy_value, orphans_widget
from opcockpit.tui.widgets.footer import StableFooter
from opcockpit.tui.widgets.header import HeaderState, StatusHeader

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from opcockpit.services.operations import Operations
    from opcockpit.services.watch import EventWatcher
    from opcockpit.tui.alerting import Alerting
    from opcockpit.wiring import Cockpit

MIN_REFRESH_S = 0.5
# Alert rules run at most this often on timer refreshes (issue 10): their hold times are minutes
# (diverged 10m, provider down 2m), and a round (rules over every row, run health, the ledger)
# every 2 s refresh was ~40 % of the cockpit's CPU at 10k leases. The first picture and ctrl+r
# evaluate at once; tests without the timer (auto_refresh=False) evaluate every refresh.
ALERT_ROUND_S = 10.0
# A round falling due on a quiet (carried) tick waits up to this many ticks for one that refreshes
# anyway (a listing, a change): one busy tick instead of two, and half the ticks stay quiet
# (issue 10, idle tick: a round is ~40 ms of CPU at 10k leases). Never more rounds, at most
# this many ticks later; a refresh runs a due round at once.
ALERT_ROUND_SLACK_TICKS = 2
CLOSE_TIMEOUT_S = 2.0  # per resource closed on exit
HEARTBEAT_S = 1.0  # the longest beat: the tick, the header, the ledger feed and watch (LEDGER_POLL_S)


class GroundTruthSource(Protocol):
    """What the app polls: FleetCollector in production, anything with the same shape in tests."""

    async def refresh(self) -> GroundTruth: ...

    async def aclose(self) -> None: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CockpitApp(
    ActionsMixin, JumpMixin, FilterBar, GroundTruthTab, OrphansTab, EventsTab, HangupMixin, App[int]
):
    CSS_PATH = "cockpit.tcss"
    TITLE = "opcockpit"
    COMMANDS = App.COMMANDS | {JumpProvider, SearchProvider}
    TABS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("ground-truth", "Ground truth"),
        ("orphans", "Orphans"),
        ("events", "Provider events"),
        ("alerts", "Alerts"),
        ("explore", "Explore"),
    )

    # Footer order = importance: at 80 columns the tail is cut off (all keys are in `?` help).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause", "Pause"),
        Binding("r", "resume", "Resume"),
        Binding("ctrl+d", "destroy", "Destroy"),
        Binding("a", "adopt", "Adopt"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("colon", "jump", "Jump", key_display=":"),  # k9s :orphans, :thread ID; ctrl+p: palette
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+r", "refresh_now", "Refresh"),
        Binding("c", "copy", "Copy"),
        Binding("z", "toggle_freeze", "Freeze"),
        Binding("l", "logs", "Logs", show=False),  # tui/screens/inspect.py InspectKeys
        Binding("y", "raw_record", "Raw record", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        # Marks beyond `space` (the table's): k9s ctrl+space range, mark all visible, unmark all.
        Binding("ctrl+@,ctrl+space", "mark_range", "Mark range", show=False, key_display="ctrl+space"),
        Binding("ctrl+a", "mark_visible", "Mark all", show=False),
        Binding("u", "clear_marks", "Unmark all", show=False),
        Binding("1", "show_tab('ground-truth')", "Ground truth", show=False),
        Binding("2", "show_tab('orphans')", "Orphans", show=False),
        Binding("3", "show_tab('events')", "Events", show=False),
        Binding("4", "show_tab('alerts')", "Alerts", show=False),
        Binding("6", "show_tab('explore')", "Explore", show=False),
    ]

    def __init__(
        self,
        source: GroundTruthSource,
        *,
        details: DetailSource | None = None,
        refresh_s: float = 2.0,
        read_only: bool = False,
        demo_banner: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
        auto_refresh: bool = True,
        close_source: bool = True,
        ops: Operations | None = None,
        watch_events: bool = True,
        audit_loader: Callable[[int], Any] | None = None,
        alerting: Alerting | None = None,
        flash_clock: Callable[[], float] = time.monotonic,
        confirm: str = "all",
    ) -> None:
        super().__init__()
        self.confirm = confirm if confirm in CONFIRM_MODES else "all"  # [tui] confirm
        self.source = source
        self.details = details
        self.refresh_s = max(float(refresh_s), MIN_REFRESH_S)
        self.read_only = read_only
        self.demo_banner = demo_banner
        self.clock = clock
        self.flash_clock = flash_clock  # times the tables' change highlight (frozen in snapshots)
        self.auto_poll = auto_refresh
        self.close_source = close_source
        self.ground_truth: GroundTruth | None = None
        self.frozen = False
        self.inflight = False
        self.dropped_ticks = 0
        self.refreshes = 0
        self.quiet_ticks = 0  # ticks that carried the picture instead of refreshing (_carry_quiet_tick)
        self.last_refresh: datetime | None = None
        self._header_shown: tuple[object, ...] = ()  # _header_inputs() at the last header paint
        self._header_due = False  # a quiet tick moved the header's inputs: the heartbeat shows it
        self._header_clocked: tuple[object, ...] | None = None  # _show_header: what follows the clock
        self.last_duration_s: float | None = None
        self.last_error: str | None = None
        self._filter_target: KeyedTable | None = None
        self._filter_before = ""
        self._rows_by_key: dict[str, GroundTruthRow] = {}
        self._hup_installed = False
        self._hup_previous: Any = None
        self._gone = False  # the terminal went away (SIGHUP/EIO): exiting
        self._audit_error: str | None = None  # the audit ledger failed to load: why
        self._refresh_again = False  # an event asked for a refresh while one was running
        self._refresh_task: asyncio.Task[None] | None = None
        self.ops = ops
        if ops is not None and ops.read_only:
            self.read_only = True  # the core refuses writes; the UI must say so (RO badge, greyed keys)
        self.overlay = OpsOverlay(clock)
        self._orphans_by_key: dict[str, OrphanRow] | None = None
        self.watch_events = watch_events
        self.watcher: EventWatcher | None = None
        self._audit_loader = audit_loader
        self.alerting = alerting  # alert engine glue (tui/alerting.py); None: alerts off
        self.cockpit: Cockpit | None = None  # the wiring graph, when build_app made it
        self.reload_context: Reload | None = None  # `:ctx`: loads another context's config
        self.live = LiveLoops(self)  # OTLP export + webhook events from the ledger (tui/live.py)
        # Cells per row, kept by change (tui/rowdelta.py); the header's future-timestamp warning
        # rides on the same row changes (no walk over every row per refresh).
        self._skew = FutureStamps()
        self._gt_cells = gt_row_cells(observer=self._skew)
        self._or_cells = orphan_row_cells()
        self._overlaid: set[str] = set()  # keys whose cells carried an overlay mark last render
        self._alerts_due = 0.0  # monotonic time of the next timer-driven alert round
        self.alert_clock: Callable[[], float] = time.monotonic  # tests step it
        self._alerts_now = True  # the next refresh evaluates alerts whatever the time
        self.settle_heap = False  # run_app: freeze the long-lived heap once settled (tui/heap.py)
        # The refresh tick runs on every n-th heartbeat: a whole number of beats of at most
        # HEARTBEAT_S per refresh interval (_heartbeat).
        self._beats_per_tick = max(1, math.ceil(self.refresh_s / HEARTBEAT_S - 1e-9))
        self._beats = 0
        self._beat = Beat(self.refresh_s / self._beats_per_tick, self._heartbeat, self._handle_exception)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        yield Static(id="problem")  # why there is no picture yet, in full (wraps) and what to do
        with TabbedContent(id="main-tabs", initial="ground-truth"):
            with TabPane("Ground truth", id="ground-truth"):
                yield ground_truth_widget(self.flash_clock)
            with TabPane("Orphans", id="orphans"):
                yield orphans_widget(self.flash_clock)
            with TabPane("Provider events", id="events"):
                yield ProviderEventsView(id="events-view")
            with TabPane("Alerts", id="alerts"):
                yield AlertsView(id="alerts-view")
            with TabPane("Explore", id="explore"):
                yield ExploreView(id="explore-view")
        yield from filter_bar_widgets()
        # ctrl+p (the fuzzy palette) is in `?` help; its footer hint would push keys off at 80 columns.
        yield StableFooter(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        # Cached: App.query_one searches the *active* screen only, and refreshes keep arriving
        # while a detail screen or a dialog is on top.
        self._header_w = self.query_one(StatusHeader)
        self._gt_w = self.query_one("#gt-table", KeyedTable)
        self._or_w = self.query_one("#orphans-table", KeyedTable)
        self._events_w = self.query_one("#events-view", ProviderEventsView)
        self._tabs_w = self.query_one("#main-tabs", TabbedContent)
        self._alerts_w = self.query_one("#alerts-view", AlertsView)
        self._filter_w = self.query_one("#filter", Input)
        self._filter_status_w = self.query_one("#filter-status", Static)
        self._problem_w = self.query_one("#problem", Static)
        self._problem_w.display = False
        self._install_sighup()
        self.gt_table.focus()
        self._show_header()
        # One beat for all that is periodic, the refresh tick included (issue 10, idle tick):
        # each timer is a wake-up of the loop (its task step, the sleep's future, epoll), and a
        # quiet process runs each of them with cold caches.
        self._beat.start()
        self.start_refresh(manual=True)
        self.live.start()

    async def on_unmount(self) -> None:
        self._remove_sighup()
        self._beat.stop()
        if self._refresh_task is not None and not self._refresh_task.done():
            self._refresh_task.cancel()  # Textual cancelled its workers; a plain task is ours
        # Each close is bounded: a provider call in flight or a wedged socket must not hold the exit.
        await _bounded(self.live.stop())
        if self.watcher is not None:
            await _bounded(self.watcher.aclose())
        if self.alerting is not None:
            await _bounded(asyncio.to_thread(self.alerting.close))
        if self.close_source:
            await _bounded(self.source.aclose())
            if self.details is not None:
                await _bounded(self.details.aclose())

    # ------------------------------------------------------------------ widgets

    @property
    def active_tab(self) -> str:
        return self._tabs_w.active

    def active_table(self) -> KeyedTable | None:
        # Only the active tab's table is looked up: another tab's may not be mounted yet (a jump
        # right after start-up activated a tab before the Events tab had composed its table).
        tab = self.active_tab
        if tab == "ground-truth":
            return self.gt_table
        if tab == "orphans":
            return self.orphans_table
        if tab == "events":
            return self.events_view.table
        if tab == "alerts":
            return self._alerts_w.current_table()
        return None

    # ------------------------------------------------------------------ refresh loop

    def _tick(self) -> None:
        if not self.frozen and not self._carry_quiet_tick():
            self.start_refresh(manual=False)

    def _carry_quiet_tick(self) -> bool:
        """A tick in which nothing is due (issue 10, idle tick): the sources are unchanged (the
        collector's `settled`: sandbox.db by stat(), no listing due or landed, nothing looked at),
        no operator action is pending, and only the main screen's tables are shown. Then the
        refresh would return the last picture at a later time, which `carried` makes
        (domain/carry.py): only the ages on screen and the header move, and an alert round due
        judges that picture. A refresh was two thread hops, the reconcile step and the table
        pass (~1/3 of a quiet tick)."""
        gt = self.ground_truth
        settled = getattr(self.source, "settled", None)
        if (
            gt is None
            or settled is None
            or self.inflight
            or self.last_error is not None
            or self._refresh_again
            or len(self.overlay)
            or len(self.screen_stack) > 1
            or self.active_tab == "events"  # it reloads LEON's webhook rows each refresh
            or (self.ops is not None and self.ops.tracker.pending())
            or not settled()
        ):
            return False
        now = self.clock()
        fresh = carried(gt, now)
        if fresh is None:  # a stale provider: its rows' ages and text follow the clock
            return False
        self.quiet_ticks += 1
        self.ground_truth = fresh
        self.last_refresh = now
        self.gt_table.set_now(now)
        self.orphans_table.set_now(now)
        # The same rows, orphans and providers' states: the header moves only where the clock
        # enters it. Its check, by the heartbeat that runs this tick, says "refreshed 0s ago"
        # (issue 10, idle tick: building the header to find it unchanged was ~0.3 ms a tick).
        alerts = self.alerting.counts(now) if self.alerting is not None else None
        if self._header_clocked != (True, *self._clock_parts(fresh, alerts)):
            self._header_due = True
        # A round due judges the carried picture (the current one), unless a tick that refreshes
        # anyway may still come within the slack.
        self._schedule_alerts(fresh, slack_s=ALERT_ROUND_SLACK_TICKS * self.refresh_s)
        return True

    def _alert_round_due(self, slack_s: float = 0.0) -> bool:
        return self._alerts_now or not self.auto_poll or self.alert_clock() >= self._alerts_due + slack_s

    def _schedule_alerts(self, gt: GroundTruth, slack_s: float = 0.0) -> None:
        if self._alert_round_due(slack_s):
            self._alerts_now = False
            self._alerts_due = self.alert_clock() + ALERT_ROUND_S
            self._alerts_w.schedule(gt)  # alert rules off the UI thread, never overlapping

    def start_refresh(self, *, manual: bool) -> bool:
        """Start one refresh unless one is running (then an automatic tick is dropped)."""
        if self.inflight:
            if not manual:
                self.dropped_ticks += 1
            return False
        self.inflight = True
        # A plain task, not a Textual worker: a Worker per tick (its object and three state
        # messages dispatched through the app) was a steady part of an idle tick (issue 10).
        task = asyncio.get_running_loop().create_task(self._refresh_worker())
        task.add_done_callback(self._refresh_ended)
        self._refresh_task = task
        return True

    def _refresh_ended(self, task: asyncio.Task[None]) -> None:
        """A refresh's own failure (the source's is shown in the header) goes to the log, as a
        worker's did: the next tick tries again (`inflight` is cleared by the refresh itself: a
        refresh it asked for may already be running)."""
        if not task.cancelled() and task.exception() is not None:
            self.log.error("refresh failed", task.exception())

    def request_refresh(self) -> None:
        """Refresh as soon as possible (a provider event stream reported a change, an action ran).

        If a refresh is in flight it may have listed before the change: it is not interrupted, but
        exactly one more refresh follows it (however many requests arrived meanwhile)."""
        if self.frozen:
            return
        if not self.start_refresh(manual=True):
            self._refresh_again = True

    def _on_provider_events(self, providers: frozenset[str]) -> None:
        self.request_refresh()

    def _sync_watcher(self) -> None:
        adapters = getattr(self.source, "adapters", None)
        if not self.watch_events or not adapters:
            return
        if self.watcher is None:
            from opcockpit.services.watch import EventWatcher

            # The event names its instances: the collector GETs just those before the refresh.
            look = getattr(self.source, "look", None)
            self.watcher = EventWatcher(self._on_provider_events, on_instances=look)
        self.watcher.sync(adapters)

    async def _refresh_worker(self) -> None:
        started = self.clock()  # all time in the app comes from the injected clock (snapshots)
        try:
            gt = await self.source.refresh()
        except Exception as exc:  # keep the last picture; the header says it is old and why
            self.last_error = error_line(exc)
            gt = None
        finally:
            self.inflight = False
        self.last_duration_s = (self.clock() - started).total_seconds()
        if gt is not None:
            self.last_error = None
            self.apply_ground_truth(gt)
            self._observe(gt)
            self._sync_watcher()
            self._schedule_alerts(gt)
            if self.settle_heap and self.refreshes == SETTLE_AFTER_REFRESHES:
                settle_heap()
        self._show_header()
        self._show_problem()
        if self.active_tab == "events":
            self.load_provider_events()
        if self._refresh_again:
            self._refresh_again = False
            self.request_refresh()

    def apply_ground_truth(self, gt: GroundTruth) -> None:
        self.ground_truth = gt
        self.last_refresh = self.clock()
        self.refreshes += 1
        self._orphans_by_key = None
        with self.batch_update():
            changed = self._render_tables()
            self._rows_by_key = self._gt_cells.rows  # kept by change, not rebuilt per refresh
            # A tab label changes the tab bar's layout: set it only when its text changes.
            for tab, label in (
                ("ground-truth", f"Ground truth {len(gt.rows)}"),
                ("orphans", f"Orphans {len(gt.orphans)}"),
            ):
                widget = self._tabs_w.get_tab(tab)
                if widget.label_text != label:
                    widget.label = label
            self._sync_filter_status()
            self._update_thread_details()
        # The keys' state (greyed write keys) follows the rows under the cursor and the marks:
        # unchanged rows, unchanged keys. Each refresh_bindings() is a footer check of every
        # binding (~1.5 ms), and a quiet tick changes no row.
        if changed or self.refreshes == 1:
            self.refresh_bindings()

    def _render_tables(self) -> bool:
        """Ground truth + the optimistic overlay of operator actions -> the keyed tables.

        Only the delta goes in: rows whose object changed (tui/rowdelta.py) and rows an overlay
        mark came onto or left; at 10k leases rebuilding every row's cells each refresh was ~12 %
        of the cockpit's CPU. Ages are painted by the tables for the rows on screen. Returns
        whether any row went in or out."""
        gt = self.ground_truth
        if gt is None:
            return False
        self.overlay.expire()
        now = gt.generated_at
        gd = self._gt_cells.update(gt.rows, now)
        od = self._or_cells.update(gt.orphans, now)
        marks = dict(self.overlay.items())
        rows, orphans = gd.upserts, od.upserts
        for key in marks.keys() | self._overlaid:  # a mark came or went: those rows again
            if key in self._gt_cells.cells:
                rows[key] = self._gt_cells.cells[key]
            elif key in self._or_cells.cells:
                orphans[key] = self._or_cells.cells[key]
        self._overlaid = set(marks)
        for key, mark in marks.items():
            if key in rows:
                rows[key] = overlay_gt(rows[key], mark.action, mark.intended, mark.status, mark.note)
            elif key in orphans:
                orphans[key] = overlay_orphan(
                    orphans[key], mark.action, mark.intended, mark.status, mark.note
                )
        self.gt_table.set_now(now)  # ages are painted at the snapshot's time (tui/table/ages.py)
        self.orphans_table.set_now(now)
        self.gt_table.apply_rows(rows, gd.removed)
        self.orphans_table.apply_rows(orphans, od.removed)
        return bool(rows or orphans or gd.removed or od.removed)

    def _heartbeat(self) -> None:
        """The one timer (about once a second): the refresh tick on every n-th beat (when polling),
        then the header's ages, the Alerts tab's ledger feed (a team mate's ack or mute) and the
        ledger watch (webhooks). Four Textual timers were four timer tasks woken, most of whose
        work is now a check (issue 10). The header is checked after the tick: a quiet tick's
        header says "refreshed 0s ago" as the last one did, so no frame paints it beside the
        tick's age lines."""
        if self._exit:  # leaving: as a Textual timer, beat no more
            return
        self._beats += 1
        if self.auto_poll and self._beats % self._beats_per_tick == 0:
            self._tick()
        self._header_tick()
        self._alerts_w._poll_ledger()
        self.live.beat()

    def _header_tick(self) -> None:
        """Once a second: the header's ages move between refreshes only when the picture is older
        than one refresh interval and a second (a stall, a failing source, frozen, manual refresh). While the
        refreshes keep coming, each one repaints the header itself; a repaint per second on top
        was a full compositor pass (~half of a quiet tick's screen work at 10k leases)."""
        last = self.last_refresh
        if (
            last is None
            # A second of slack: at the refresh's own time the tick painted "refreshed 2s ago"
            # just before the (carried) refresh painted "0s": two repaints a tick for nothing.
            or (self.clock() - last).total_seconds() >= self.refresh_s + 1.0
            or self._header_inputs() != self._header_shown
            or self._header_due
        ):
            self._show_header()

    def _header_inputs(self) -> tuple[object, ...]:
        """What the header shows that can change without a refresh (an action's pending mark,
        OTLP drops, a ledger or source error, freeze)."""
        pending = self.overlay.pending_count()
        return (pending, self.live.drops, self.ledger_error, self.last_error, self.frozen)

    def _clock_parts(self, gt: GroundTruth | None, alerts: object) -> tuple[object, ...]:
        """What the header shows of a picture that follows the clock alone (all a carried picture
        can move): failed providers' listing ages, the future-stamp warning, the alert counts
        (a mute runs out)."""
        if gt is None:
            return (None, None, alerts)
        errors = tuple(fmt_age(p.age_s) for p in gt.providers if p.status is ProviderStatus.ERROR)
        return (errors, self._skew.warning(gt.generated_at), alerts)

    def _show_header(self) -> None:
        self._header_due = False
        self._header_shown = self._header_inputs()
        now, last = self.clock(), self.last_refresh
        alerts = self.alerting.counts(now) if self.alerting is not None else None
        said_now = last is not None and (now - last).total_seconds() < 1.0  # "refreshed 0s ago"
        self._header_clocked = (said_now, *self._clock_parts(self.ground_truth, alerts))
        self._header_w.show(
            HeaderState(
                gt=self.ground_truth,
                now=now,
                last_refresh=last,
                last_duration_s=self.last_duration_s,
                frozen=self.frozen,
                read_only=self.read_only,
                banner=self.demo_banner,
                error=self.last_error,
                dropped_ticks=self.dropped_ticks,
                pending_ops=self.overlay.pending_count(),
                alerts=alerts,
                ledger=self.ledger_error,
                export_drops=self.live.drops,
                counts=self._gt_cells.counts if self.ground_truth is not None else None,
                context=self.cockpit.context if self.cockpit is not None else None,
                skew=self._skew,
            )
        )

    def _show_problem(self) -> None:
        """No picture yet and the refresh failed: the reason whole (the header line is cut at 80
        columns) and what to do. Once a picture exists the header's age + error line says it."""
        box = self._problem_w
        if self.ground_truth is not None or not self.last_error:
            box.display = False
            return
        box.update(  # a Text, not markup: "[sources]" and the DB's error text are shown as they are
            Text.assemble(
                ("No fleet picture: ", "bold red"),
                safe_text(self.last_error),
                ("\nWhat to do: ", "bold"),
                "point [sources] sandbox_db in the config at LEON's sandbox.db (`opcockpit config "
                "show` says where each value came from; `--db PATH` or $LEON_SANDBOX_DB_PATH also "
                f"set it), or try `opcockpit demo`. Retrying every {self.refresh_s:g}s; ctrl+r "
                "retries now.",
            )
        )
        box.display = True

    def notify(self, message: str, *, title: str = "", **kwargs: Any) -> None:  # type: ignore[override]
        # Toasts quote reasons and errors (operations, providers, the DB): terminal-safe text only.
        super().notify(safe_text(message, single_line=False), title=safe_text(title), **kwargs)

    @property
    def ledger_error(self) -> str | None:
        """The ledger (alerts, audit) is unusable: which file and why. The fleet view goes on."""
        alerting = self.alerting.ledger_error if self.alerting is not None else None
        return alerting or self._audit_error

    def refresh_bindings(self) -> None:
        if self.screen_stack:  # a table event can still arrive while the app tears down
            super().refresh_bindings()

    def on_alerts_view_updated(self, event: AlertsView.Updated) -> None:
        with contextlib.suppress(NoMatches):  # a ledger poll landing while the app closes
            tab = self._tabs_w.get_tab("alerts")
            if tab.label_text != event.label:  # a label set is a layout pass, even the same text
                tab.label = event.label
        self._show_header()

    # ------------------------------------------------------------------ tab and table events

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane.id
        if pane == "events":
            self.load_provider_events()
        table = self.active_table()
        if table is not None:
            table.focus()
        elif pane == "explore":  # typed keys go to the query box (Tab reaches the results)
            self.query_one(ExploreView).focus_query()
        self._sync_filter_status()
        self.refresh_bindings()

    def on_keyed_table_marks_changed(self, event: KeyedTable.MarksChanged) -> None:
        self._marks_changed()

    def _marks_changed(self, table: KeyedTable | None = None) -> None:
        if table is not None:
            table.refresh()
        self._sync_filter_status()  # the mark count (and how many the filter hides)
        self.refresh_bindings()

    def _markable_table(self) -> KeyedTable | None:
        table = self.active_table()
        return table if table is not None and table.markable and len(self.screen_stack) == 1 else None

    def action_mark_range(self) -> None:
        table = self._markable_table()
        if table is not None and table.model.mark_range():
            self._marks_changed(table)

    def action_mark_visible(self) -> None:
        table = self._markable_table()
        if table is not None and table.model.mark_visible():
            self._marks_changed(table)

    def action_clear_marks(self) -> None:
        table = self._markable_table()
        if table is not None and table.model.clear_marks():
            self._marks_changed(table)

    def on_keyed_table_row_highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        if event.table.id == "events-table":
            self._event_highlighted()
        self.refresh_bindings()

    def on_keyed_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        # One dispatcher by table (the tabs' mixins each handle their own table's Enter).
        if event.table.id == "gt-table":
            self._lease_selected(event.key)
        elif event.table.id == "orphans-table":
            self._orphan_selected(event.key)
        elif event.table.id == "events-table":
            self._event_selected()

    # ------------------------------------------------------------------ global keys

    async def run_action(self, action: Any, default_namespace: Any = None, namespaces: Any = None) -> bool:
        # A greyed write key does nothing in Textual; the operator gets the reason instead.
        if (
            isinstance(action, str)
            and action in WRITE_ACTIONS
            and default_namespace in (None, self)
            and self._check_write(action) is None
        ):
            self.explain_disabled(Action(action))
            return True
        return await super().run_action(action, default_namespace, namespaces)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in WRITE_ACTIONS:
            return self._check_write(action)  # tui/actions.py
        if action in VIEW_KEYS:
            return self._check_view_key(action)  # tui/filter_bar.py
        if action in ("mark_range", "mark_visible", "clear_marks"):
            return self._markable_table() is not None
        return True

    def show_tab(self, tab: str) -> None:
        self._tabs_w.active = tab

    def action_show_tab(self, tab: str) -> None:
        self.show_tab(tab)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_refresh_now(self) -> None:
        self._alerts_now = True  # the operator asked: alerts too, whatever the cadence
        if not self.start_refresh(manual=True):
            self.notify("a refresh is already running", markup=False)

    def action_toggle_freeze(self) -> None:
        self.frozen = not self.frozen
        self._show_header()
        self.notify("updates frozen (z to resume)" if self.frozen else "updates resumed", markup=False)

    def action_copy(self) -> None:
        table = self.active_table()
        if table is None or table.cursor_key is None:
            return
        value = table.cursor_key
        if table.id == "orphans-table":
            value = orphan_copy_value(value)
        elif table.id == "events-table":
            value = self._event_copy_value(value)
        self.copy_to_clipboard(value)
        self.notify(f"copied {value}", markup=False)


# ---------------------------------------------------------------------- entry points


def build_app(
    config: Any,
    *,
    demo_banner: str | None = None,
    read_only: bool = False,
    refresh_s: float | None = None,
    ledger_path: Any = None,
    cockpit: Cockpit | None = None,
    **kwargs: Any,
) -> CockpitApp:
    """The cockpit on the object graph of opcockpit.wiring: collector, operations, audit, ledger
    (the demo's one ledger file sits beside its fleet), operator and alerting."""
    from opcockpit.tui.alerting import Alerting
    from opcockpit.tui.data import DbDetails
    from opcockpit.wiring import build_cockpit

    if cockpit is None:
        cockpit = build_cockpit(
            config, read_only=read_only, ledger_path=ledger_path, demo=demo_banner is not None, live=True
        )
    details = DbDetails.of(cockpit)  # the LEON readers come from the wiring, never an adapter here
    if "alerting" not in kwargs:
        kwargs["alerting"] = Alerting(cockpit)
    tui = getattr(config, "tui", None)
    kwargs.setdefault("confirm", getattr(tui, "confirm", "all"))
    app = CockpitApp(
        cockpit.collector,
        details=details,
        refresh_s=refresh_s if refresh_s is not None else getattr(config, "refresh_s", 2.0),
        read_only=cockpit.read_only,
        demo_banner=demo_banner,
        ops=cockpit.operations,
        **kwargs,
    )
    app.cockpit = cockpit
    return app


def run_app(
    config: Any,
    *,
    demo_banner: str | None = None,
    read_only: bool = False,
    refresh_s: float | None = None,
    reload_context: Reload | None = None,
) -> int | SwitchContext:
    """Run the cockpit on a CockpitConfig; returns the exit code, or the context `:ctx` chose."""
    app = build_app(config, demo_banner=demo_banner, read_only=read_only, refresh_s=refresh_s)
    app.reload_context = reload_context
    app.settle_heap = True  # this process is the cockpit: its long-lived heap is frozen once
    try:
        result = app.run()
    finally:
        release_heap()  # a `:ctx` switch builds the next app: this one's cycles must be collectable
        if app.cockpit is not None:
            app.cockpit.audit.close()  # the collector is closed by the app on unmount
    if isinstance(result, SwitchContext):
        return result
    return result if isinstance(result, int) else (app.return_code or 0)


def run_tui(
    loaded: Any,
    *,
    read_only: bool = False,
    debug: bool = False,
    refresh_s: float | None = None,
    reload_context: Reload | None = None,
) -> int:
    """CLI hook (opcockpit.cli): `loaded` is a LoadedConfig; `reload_context(name)` loads the
    config of another context for `:ctx` (tui/contexts.py), which starts the cockpit again on it."""
    del debug  # tracebacks are the CLI's business
    while True:
        result = run_app(
            loaded.config, read_only=read_only, refresh_s=refresh_s, reload_context=reload_context
        )
        if not isinstance(result, SwitchContext):
            return result
        loaded = result.loaded
        read_only = bool(loaded.config.read_only)  # the CLI's --read-only is part of that config


async def _bounded(step: Awaitable[object], timeout: float = CLOSE_TIMEOUT_S) -> None:
    with contextlib.suppress(Exception, asyncio.TimeoutError):  # best effort: we are leaving
        await asyncio.wait_for(step, timeout)


__all__ = ["CockpitApp", "GroundTruthSource", "build_app", "run_app", "run_tui"]
