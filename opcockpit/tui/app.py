"""The cockpit app: header, tabs (Ground truth, Orphans, Provider events, Alerts), refresh loop.

Refresh model (k9s/dolphie): a timer ticks every `refresh_s`; a tick starts a refresh only when
none is in flight (a slow refresh makes later ticks drop, counted in the header), never two at
once. Results go into the keyed tables by row key: nothing is cleared, the cursor stays put.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Input, Static, TabbedContent, TabPane

from opcockpit.domain.models import GroundTruth, GroundTruthRow
from opcockpit.domain.targets import Action, Target, expand_leaks
from opcockpit.domain.text import error_line, safe_text
from opcockpit.services.ops_track import Operation, OpStatus
from opcockpit.tui.commands import JumpProvider
from opcockpit.tui.data import DetailSource, clean
from opcockpit.tui.opsview import OpsOverlay, applicable, summarize
from opcockpit.tui.rows import gt_table, orphan_table, overlay_gt, overlay_orphan
from opcockpit.tui.screens.audit import AuditScreen
from opcockpit.tui.screens.confirm import AdoptScreen, ConfirmDestroyScreen
from opcockpit.tui.screens.help import HelpScreen
from opcockpit.tui.screens.thread import ThreadDetailScreen
from opcockpit.tui.table.widget import KeyedTable
from opcockpit.tui.tabs.alerts import AlertsView
from opcockpit.tui.widgets.events_view import ProviderEventsView
from opcockpit.tui.widgets.footer import StableFooter
from opcockpit.tui.widgets.header import HeaderState, StatusHeader
from opcockpit.tui.widgets.tables import ground_truth_table, orphans_table

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from textual.driver import Driver

    from opcockpit.adapters.ledger.audit import AuditEntry
    from opcockpit.services.operations import Operations, Plan
    from opcockpit.services.watch import EventWatcher
    from opcockpit.tui.alerting import Alerting
    from opcockpit.wiring import Cockpit

MIN_REFRESH_S = 0.5
CLOSE_TIMEOUT_S = 2.0  # per resource closed on exit
EXIT_GRACE_S = 5.0  # terminal gone: the process ends this long after, whatever still runs
WRITE_ACTIONS = ("pause", "resume", "destroy", "adopt")
FILTER_HINT = "filter: text · regex · !inverse · field:value  (Enter keep, Esc clear)"


class GroundTruthSource(Protocol):
    """What the app polls: FleetCollector in production, anything with the same shape in tests."""

    async def refresh(self) -> GroundTruth: ...

    async def aclose(self) -> None: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CockpitApp(App[int]):
    CSS_PATH = "cockpit.tcss"
    TITLE = "opcockpit"
    COMMANDS = App.COMMANDS | {JumpProvider}
    TABS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("ground-truth", "Ground truth"),
        ("orphans", "Orphans"),
        ("events", "Provider events"),
        ("alerts", "Alerts"),
    )

    # Footer order = importance: at 80 columns the tail is cut off (all keys are in `?` help).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause", "Pause"),
        Binding("r", "resume", "Resume"),
        Binding("ctrl+d", "destroy", "Destroy"),
        Binding("a", "adopt", "Adopt"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("colon", "command_palette", "Jump", key_display=":"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+r", "refresh_now", "Refresh"),
        Binding("c", "copy", "Copy"),
        Binding("z", "toggle_freeze", "Freeze"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("1", "show_tab('ground-truth')", "Ground truth", show=False),
        Binding("2", "show_tab('orphans')", "Orphans", show=False),
        Binding("3", "show_tab('events')", "Events", show=False),
        Binding("4", "show_tab('alerts')", "Alerts", show=False),
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
    ) -> None:
        super().__init__()
        self.source = source
        self.details = details
        self.refresh_s = max(float(refresh_s), MIN_REFRESH_S)
        self.read_only = read_only
        self.demo_banner = demo_banner
        self.clock = clock
        self.auto_poll = auto_refresh
        self.close_source = close_source
        self.ground_truth: GroundTruth | None = None
        self.frozen = False
        self.inflight = False
        self.dropped_ticks = 0
        self.refreshes = 0
        self.last_refresh: datetime | None = None
        self.last_duration_s: float | None = None
        self.last_error: str | None = None
        self._filter_target: KeyedTable | None = None
        self._filter_before = ""
        self._rows_by_key: dict[str, GroundTruthRow] = {}
        self._hup_installed = False
        self._hup_previous: Any = None
        self._gone = False
        self._audit_error: str | None = (
            None  # the audit ledger failed to load: why  # the terminal went away (SIGHUP/EIO): exiting
        )
        self._refresh_again = False  # an event asked for a refresh while one was running
        self.ops = ops
        if ops is not None and ops.read_only:
            self.read_only = True  # the core refuses writes; the UI must say so (RO badge, greyed keys)
        self.overlay = OpsOverlay(clock)
        self._orphans_by_key: dict[str, Any] | None = None
        self.watch_events = watch_events
        self.watcher: EventWatcher | None = None
        self._audit_loader = audit_loader
        self.alerting = alerting  # alert engine glue (tui/alerting.py); None: alerts off
        self.cockpit: Cockpit | None = None  # the wiring graph, when build_app made it

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        with TabbedContent(id="main-tabs", initial="ground-truth"):
            with TabPane("Ground truth", id="ground-truth"):
                yield ground_truth_table(id="gt-table")
            with TabPane("Orphans", id="orphans"):
                yield orphans_table(id="orphans-table")
            with TabPane("Provider events", id="events"):
                yield ProviderEventsView(id="events-view")
            with TabPane("Alerts", id="alerts"):
                yield AlertsView(id="alerts-view")
        yield Static(id="filter-status")
        yield Input(id="filter", placeholder=FILTER_HINT)
        yield StableFooter(compact=True)

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
        self._install_sighup()
        self.gt_table.focus()
        self._show_header()
        self.set_interval(1.0, self._show_header)  # ages in the header move even between refreshes
        self.start_refresh(manual=True)
        if self.auto_poll:
            self.set_interval(self.refresh_s, self._tick)

    async def on_unmount(self) -> None:
        self._remove_sighup()
        # Each close is bounded: a provider call in flight or a wedged socket must not hold the exit.
        if self.watcher is not None:
            await _bounded(self.watcher.aclose())
        if self.alerting is not None:
            await _bounded(asyncio.to_thread(self.alerting.close))
        if self.close_source:
            await _bounded(self.source.aclose())
            if self.details is not None:
                await _bounded(self.details.aclose())

    # SIGHUP: the SSH session or terminal went away. Exit through the normal path so the collector's
    # connections close and nothing keeps polling providers in the background (k9s #871/#945).
    def _install_sighup(self) -> None:
        if not hasattr(signal, "SIGHUP"):
            return
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            self._hup_previous = signal.getsignal(signal.SIGHUP)
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
            self._hup_installed = True

    def _remove_sighup(self) -> None:
        if self._hup_installed:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
                # asyncio leaves SIG_DFL behind: a second hangup would kill the process before the
                # demo's teardown (doubles, temp dir) ran. Put back whoever handled it before us.
                if self._hup_previous is not None:
                    signal.signal(signal.SIGHUP, self._hup_previous)
            self._hup_installed = False

    def _on_sighup(self) -> None:
        self.terminal_gone()

    def get_driver_class(self) -> type[Driver]:
        driver = super().get_driver_class()
        from textual.drivers.linux_driver import LinuxDriver

        if driver is LinuxDriver:
            from opcockpit.tui.terminal import HangupSafeDriver

            HangupSafeDriver.on_gone = self.terminal_gone
            return HangupSafeDriver
        return driver

    def terminal_gone(self) -> None:
        """SIGHUP, or EIO on the terminal: nobody is watching. Exit now, without drawing again.

        Output is dropped (a hung terminal never drains, so teardown must not wait on it), the app
        exits through the normal path (workers cancelled, collector closed with a bound in
        on_unmount), and a watchdog ends the process should anything still hold it after
        EXIT_GRACE_S: an in-flight provider call or a stuck thread must not keep it alive."""
        if self._gone:
            return
        self._gone = True
        stop = getattr(self._driver, "terminal_gone", None)
        if callable(stop):  # a real terminal (not run_test's headless driver): the process is ours
            stop()
            _start_exit_watchdog(EXIT_GRACE_S)
        self.exit(0)

    # ------------------------------------------------------------------ widgets

    @property
    def gt_table(self) -> KeyedTable:
        return self._gt_w

    @property
    def orphans_table(self) -> KeyedTable:
        return self._or_w

    @property
    def events_view(self) -> ProviderEventsView:
        return self._events_w

    @property
    def active_tab(self) -> str:
        return self._tabs_w.active

    def active_table(self) -> KeyedTable | None:
        return {
            "ground-truth": self.gt_table,
            "orphans": self.orphans_table,
            "events": self.events_view.table,
            "alerts": self._alerts_w.current_table(),
        }.get(self.active_tab)

    # ------------------------------------------------------------------ refresh loop

    def _tick(self) -> None:
        if not self.frozen:
            self.start_refresh(manual=False)

    def start_refresh(self, *, manual: bool) -> bool:
        """Start one refresh unless one is running (then an automatic tick is dropped)."""
        if self.inflight:
            if not manual:
                self.dropped_ticks += 1
            return False
        self.inflight = True
        self._refresh_worker()
        return True

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

            self.watcher = EventWatcher(self._on_provider_events)
        self.watcher.sync(adapters)

    @work(group="refresh", exit_on_error=False)
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
            self._alerts_w.schedule(gt)  # alert rules off the UI thread, never overlapping
        self._show_header()
        if self.active_tab == "events":
            self.load_provider_events()
        if self._refresh_again:
            self._refresh_again = False
            self.request_refresh()

    def apply_ground_truth(self, gt: GroundTruth) -> None:
        self.ground_truth = gt
        self.last_refresh = self.clock()
        self.refreshes += 1
        self._rows_by_key = {r.lease_id: r for r in gt.rows}
        self._orphans_by_key = None
        with self.batch_update():
            self._render_tables()
            tabs = self._tabs_w
            tabs.get_tab("ground-truth").label = f"Ground truth {len(gt.rows)}"
            tabs.get_tab("orphans").label = f"Orphans {len(gt.orphans)}"
            self._sync_filter_status()
            # Open thread details (possibly under a dialog) show the newest row of their lease.
            for screen in self.screen_stack:
                if isinstance(screen, ThreadDetailScreen):
                    screen.update_row(self._rows_by_key.get(screen.row.lease_id))
        self.refresh_bindings()

    def _render_tables(self) -> None:
        """Ground truth + the optimistic overlay of operator actions -> the keyed tables."""
        gt = self.ground_truth
        if gt is None:
            return
        self.overlay.expire()
        rows = gt_table(gt)
        orphans = orphan_table(gt)
        for key, mark in self.overlay.items():
            if key in rows:
                rows[key] = overlay_gt(rows[key], mark.action, mark.intended, mark.status, mark.note)
            elif key in orphans:
                orphans[key] = overlay_orphan(
                    orphans[key], mark.action, mark.intended, mark.status, mark.note
                )
        self.gt_table.replace(rows)
        self.orphans_table.replace(orphans)

    def _show_header(self) -> None:
        self._header_w.show(
            HeaderState(
                gt=self.ground_truth,
                now=self.clock(),
                last_refresh=self.last_refresh,
                last_duration_s=self.last_duration_s,
                frozen=self.frozen,
                read_only=self.read_only,
                banner=self.demo_banner,
                error=self.last_error,
                dropped_ticks=self.dropped_ticks,
                pending_ops=self.overlay.pending_count(),
                alerts=self.alerting.counts(self.clock()) if self.alerting is not None else None,
                ledger=self.ledger_error,
            )
        )

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
        self._tabs_w.get_tab("alerts").label = event.label
        self._show_header()

    # ------------------------------------------------------------------ provider events

    @work(exclusive=True, group="provider-events", exit_on_error=False)
    async def load_provider_events(self) -> None:
        view = self.events_view
        if self.details is None:
            view.load([], {}, error="no sandbox.db detail source")
            return
        delta = view.since_delta
        since = self.clock() - delta if delta else None
        try:
            events = await self.details.provider_events(since=since, limit=500)
        except Exception as exc:
            view.load([], {}, error=error_line(exc))
            return
        threads = {k: r.thread_id for k, r in self._rows_by_key.items()}
        view.load(events, threads)
        self._load_around()

    def on_provider_events_view_range_changed(self, _: ProviderEventsView.RangeChanged) -> None:
        self.load_provider_events()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane.id
        if pane == "events":
            self.load_provider_events()
        table = self.active_table()
        if table is not None:
            table.focus()
        self._sync_filter_status()
        self.refresh_bindings()

    @work(exclusive=True, group="lease-around", exit_on_error=False)
    async def _load_around(self) -> None:
        view = self.events_view
        event = view.selected_event()
        if event is None or event.matched_lease_id is None or self.details is None:
            view.show_around()
            return
        key = str(event.event_id)
        if key in view.around:
            view.show_around()
            return
        view.show_around()
        try:
            around = await self.details.lease_events_around(
                event.matched_lease_id, event.created_at, timedelta(minutes=10)
            )
        except Exception as exc:
            view.set_around(key, None, error_line(exc))
            return
        view.set_around(key, list(around), None)

    # ------------------------------------------------------------------ table events

    def on_keyed_table_row_highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        if event.table.id == "events-table":
            self._load_around()
        self.refresh_bindings()

    def on_keyed_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        if event.table.id == "gt-table":
            self.open_lease(event.key)
        elif event.table.id == "orphans-table" and self.ground_truth is not None:
            orphan = next((o for o in self.ground_truth.orphans if o.key == event.key), None)
            if orphan and orphan.claimed_lease_id and orphan.claimed_lease_id in self._rows_by_key:
                self.open_lease(orphan.claimed_lease_id)
            else:
                self.notify("this orphan claims no lease the DB knows", markup=False)
        elif event.table.id == "events-table":
            ev = self.events_view.selected_event()
            if ev and ev.matched_lease_id and ev.matched_lease_id in self._rows_by_key:
                self.open_lease(ev.matched_lease_id)

    def open_lease(self, lease_id: str) -> None:
        row = self._rows_by_key.get(lease_id)
        if row is None:
            self.notify(f"lease {lease_id} is not in the current picture", severity="warning", markup=False)
            return
        self.push_screen(ThreadDetailScreen(row, self.details, follow_interval=self.refresh_s))

    def focus_orphan(self, key: str) -> None:
        self.show_tab("orphans")
        self.orphans_table.set_filter("")
        self.orphans_table.move_cursor_to_key(key, center=True)

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in WRITE_ACTIONS:
            return self._check_write(action)
        if action in ("filter", "copy", "clear_filter"):
            if len(self.screen_stack) > 1:  # a detail/help screen is on top: main-view keys do not apply
                return False
            table = self.active_table()
            if table is None:
                return None  # shown greyed out on the Alerts tab
            if action == "copy":
                return True if table.cursor_key is not None else None
            if action == "clear_filter":
                return bool(table.filter_expr) or self._filter_w.has_class("visible")
        return True

    # ------------------------------------------------------------------ operator actions

    def _check_write(self, action: str) -> bool | None:
        """Write keys are never hidden on the main view: greyed (None) when they do not apply."""
        if len(self.screen_stack) > 1:
            return False  # a detail/help/dialog screen is on top: main-view keys do not apply there
        tab = self.active_tab
        if tab not in ("ground-truth", "orphans") or (action == "adopt" and tab != "orphans"):
            return False  # not this view's keys (the footer shows the focused view's keys)
        if self.read_only or self.ops is None or self.ops.read_only:
            return None
        act = Action(action)
        targets = self._op_targets(act)
        if not targets:
            return None
        return True if any(applicable(self.ops, act, t, self.overlay) for t in targets) else None

    def _target(self, key: str) -> Target | None:
        # Built per selected key (not an index of all rows: check_action runs on every cursor move
        # and a 10k-row index per refresh would cost more than the refresh's table update).
        row = self._rows_by_key.get(key)
        if row is not None:
            return Target.of_row(row)
        if self._orphans_by_key is None:
            gt = self.ground_truth
            self._orphans_by_key = {o.key: o for o in gt.orphans} if gt is not None else {}
        orphan = self._orphans_by_key.get(key)
        return Target.of_orphan(orphan) if orphan is not None else None

    def selected_targets(self) -> list[Target]:
        """The marked rows of the focused table, else its cursor row (k9s/htop marking)."""
        if self.active_tab not in ("ground-truth", "orphans"):
            return []
        table = self.active_table()
        if table is None:
            return []
        keys = sorted(table.marked) or ([table.cursor_key] if table.cursor_key else [])
        return [t for t in map(self._target, keys) if t is not None]

    def _op_targets(self, action: Action) -> list[Target]:
        """The selected targets; for destroy, a destroyed lease that leaked is its live instances."""
        chosen = self.selected_targets()
        return expand_leaks(chosen, self.ground_truth) if action is Action.DESTROY else chosen

    def action_pause(self) -> None:
        self._begin(Action.PAUSE)

    def action_resume(self) -> None:
        self._begin(Action.RESUME)

    def action_destroy(self) -> None:
        self._begin(Action.DESTROY)

    def action_adopt(self) -> None:
        self._begin(Action.ADOPT)

    def _begin(self, action: Action) -> None:
        ops = self.ops
        if ops is None or self.read_only or self._check_write(action.value) is not True:
            return  # the key is greyed; a binding invoked anyway (palette, tests) does nothing
        chosen = self._op_targets(action)
        targets = [t for t in chosen if applicable(ops, action, t, self.overlay)]
        skipped = [
            (t, applicable(ops, action, t, self.overlay, why=True) or "") for t in chosen if t not in targets
        ]
        if action is Action.DESTROY:
            self.push_screen(
                ConfirmDestroyScreen(targets, skipped),
                lambda ok: self._confirmed(action, targets, None) if ok else None,
            )
        elif action is Action.ADOPT:

            def adopted(thread: str | None) -> None:
                if thread is not None:
                    self._confirmed(action, targets, thread or None)

            self.push_screen(AdoptScreen(targets, skipped), adopted)
        else:
            # pause/resume are reversible: run at once, like lazydocker's `p` (no dialog)
            self._confirmed(action, targets, None)

    def _confirmed(self, action: Action, targets: list[Target], thread_id: str | None) -> None:
        ops = self.ops
        if ops is None or not targets:
            return
        try:
            plan = ops.plan(action, targets, seen=self.ground_truth, thread_id=thread_id)
        except Exception as exc:
            self.notify(f"{action.value}: {error_line(exc)}", severity="error", markup=False)
            return
        if plan.errors:
            self.notify(f"{action.value}: {'; '.join(plan.errors)}", severity="error", markup=False)
            return
        for table in (self.gt_table, self.orphans_table):
            table.clear_marks()
        for t in plan.allowed:
            self.overlay.start(t.key, action.value, _intended(action))
        self._render_tables()
        self._show_header()
        self.refresh_bindings()
        self._execute(plan)

    @work(group="operations", exit_on_error=False)
    async def _execute(self, plan: Plan) -> None:
        assert self.ops is not None
        try:
            results = await self.ops.execute(plan)
        except Exception as exc:
            for t in plan.allowed:
                self.overlay.fail(t.key, plan.action.value, error_line(exc))
            self.notify(f"{plan.action.value} failed: {error_line(exc)}", severity="error", markup=False)
            results = []
        for op in results:
            if op.status is OpStatus.PENDING:
                self.overlay.attach(op)
            else:
                self.overlay.fail(op.key, op.action.value, op.error or op.message, op)
        if results:
            text, severity = summarize(plan.action.value, results)
            self.notify(text, severity=severity, markup=False, timeout=8 if severity == "error" else 5)
        self._render_tables()
        self._show_header()
        self.refresh_bindings()
        self.request_refresh()  # observe the result (OperationTracker) as soon as possible

    def _observe(self, gt: GroundTruth) -> None:
        """After every refresh: settle pending operations against what was observed."""
        if self.ops is None:
            return
        settled: list[Operation] = self.ops.tracker.observe(gt)
        if not settled:
            return
        done, bad = [], []
        for op in settled:
            if op.status is OpStatus.CONVERGED:
                self.overlay.converged(op)
                done.append(op)
            else:
                self.overlay.fail(op.key, op.action.value, op.error or op.last_reason or op.status.value, op)
                bad.append(op)
        if done:
            keys = ", ".join(op.new_lease_id or op.key for op in done[:3])
            more = f" +{len(done) - 3}" if len(done) > 3 else ""
            self.notify(f"{done[0].action.value} converged: {keys}{more}", markup=False)
        for op in bad[:3]:
            self.notify(
                f"{op.action.value} {op.status.value} on {op.key}: {op.error or op.last_reason}",
                severity="error",
                markup=False,
                timeout=10,
            )
        self._render_tables()
        self._show_header()
        self.refresh_bindings()

    def action_audit(self) -> None:
        self.push_screen(AuditScreen(self._load_audit))

    def _load_audit(self, limit: int) -> list[AuditEntry]:
        """Audit entries (worker thread); a ledger that cannot be read raises LedgerUnavailable."""
        from opcockpit.tui.alerting import LedgerUnavailable, ledger_problem, ledger_reason

        try:
            entries = self._read_audit(limit)
        except Exception as exc:
            if not ledger_problem(exc):
                raise
            unavailable = LedgerUnavailable(self._audit_ledger_file(), ledger_reason(exc))
            self._audit_error = str(unavailable)
            self.call_from_thread(self._show_header)
            raise unavailable from exc
        if self._audit_error is not None:
            self._audit_error = None
            self.call_from_thread(self._show_header)
        return entries

    def _audit_ledger_file(self) -> str:
        owner = getattr(self._audit_loader, "__self__", None) or getattr(self.ops, "audit", None)
        path = getattr(owner, "path", None)
        if path is None:
            from opcockpit.adapters.ledger.sqlite import default_ledger_path

            path = default_ledger_path()
        return str(path)

    def _read_audit(self, limit: int) -> list[AuditEntry]:
        if self._audit_loader is not None:
            return clean(list(self._audit_loader(limit)))
        audit = getattr(self.ops, "audit", None)
        if audit is not None:
            return clean(list(audit.list(limit)))
        from opcockpit.adapters.ledger.audit import list_audit

        return clean(list(list_audit(limit)))

    def show_tab(self, tab: str) -> None:
        self._tabs_w.active = tab

    def action_show_tab(self, tab: str) -> None:
        self.show_tab(tab)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_refresh_now(self) -> None:
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
            value = value.split("/", 1)[1]  # the instance id, what an operator pastes into a CLI
        elif table.id == "events-table":
            ev = self.events_view.selected_event()
            value = (ev.matched_lease_id or ev.instance_id) if ev else value
        self.copy_to_clipboard(value)
        self.notify(f"copied {value}", markup=False)

    # ------------------------------------------------------------------ filter

    def action_filter(self) -> None:
        table = self.active_table()
        if table is None:
            return
        self._filter_target = table
        self._filter_before = table.filter_expr
        box = self._filter_w
        box.value = table.filter_expr
        box.add_class("visible")
        self._filter_status_w.remove_class("visible")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter" and self._filter_target is not None:
            self._filter_target.set_filter(event.value)
            self._sync_filter_status()  # "n of m rows" while typing, not only after the next refresh

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self._close_filter()

    def action_clear_filter(self) -> None:
        box = self._filter_w
        table = self._filter_target if box.has_class("visible") else self.active_table()
        if table is not None:
            table.set_filter("")
        box.value = ""
        self._close_filter()

    def _close_filter(self) -> None:
        box = self._filter_w
        box.remove_class("visible")
        target = self._filter_target or self.active_table()
        self._filter_target = None
        if target is not None:
            target.focus()
        self._sync_filter_status()
        self.refresh_bindings()

    def _sync_filter_status(self) -> None:
        status = self._filter_status_w
        table = self.active_table()
        if table is not None and table.filter_expr:
            status.update(
                f" filter: {table.filter_expr}  ({table.view_count} of {table.row_count} rows; Esc clears)"
            )
            status.add_class("visible")
        else:
            status.remove_class("visible")


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
            config, read_only=read_only, ledger_path=ledger_path, demo=demo_banner is not None
        )
    details = DbDetails.of(cockpit)  # the LEON readers come from the wiring, never an adapter here
    if "alerting" not in kwargs:
        kwargs["alerting"] = Alerting(cockpit)
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
) -> int:
    """Run the cockpit on a CockpitConfig; returns the exit code."""
    app = build_app(config, demo_banner=demo_banner, read_only=read_only, refresh_s=refresh_s)
    try:
        result = app.run()
    finally:
        if app.cockpit is not None:
            app.cockpit.audit.close()  # the collector is closed by the app on unmount
    return result if isinstance(result, int) else (app.return_code or 0)


def run_tui(
    loaded: Any, *, read_only: bool = False, debug: bool = False, refresh_s: float | None = None
) -> int:
    """CLI hook (opcockpit.cli.main): `loaded` is a LoadedConfig."""
    del debug  # tracebacks are the CLI's business
    return run_app(loaded.config, read_only=read_only, refresh_s=refresh_s)


async def _bounded(step: Awaitable[object], timeout: float = CLOSE_TIMEOUT_S) -> None:
    with contextlib.suppress(Exception, asyncio.TimeoutError):  # best effort: we are leaving
        await asyncio.wait_for(step, timeout)


def _start_exit_watchdog(grace_s: float) -> None:
    """End the process `grace_s` from now if it is still alive (daemon: a normal exit beats it)."""

    def _expire() -> None:
        os._exit(128 + int(getattr(signal, "SIGHUP", 1)))

    timer = threading.Timer(grace_s, _expire)
    timer.daemon = True
    timer.start()


def _intended(action: Action) -> str | None:
    # Adopt changes sandbox.db only (no provider state): the overlay says the orphan becomes a lease.
    return "lease" if action is Action.ADOPT else action.provider_state


__all__ = ["CockpitApp", "GroundTruthSource", "build_app", "run_app", "run_tui"]
