"""The cockpit app: header, tabs (Ground truth, Orphans, Provider events, Alerts), refresh loop.

Refresh model (k9s/dolphie): a timer ticks every `refresh_s`; a tick starts a refresh only when
none is in flight (a slow refresh makes later ticks drop, counted in the header), never two at
once. Results go into the keyed tables by row key: nothing is cleared, the cursor stays put.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from opcockpit.core.models import GroundTruth, GroundTruthRow
from opcockpit.tui.commands import JumpProvider
from opcockpit.tui.data import DetailSource, one_line
from opcockpit.tui.rows import gt_table, orphan_table
from opcockpit.tui.screens.help import HelpScreen
from opcockpit.tui.screens.thread import ThreadDetailScreen
from opcockpit.tui.widgets.events_view import ProviderEventsView
from opcockpit.tui.widgets.header import HeaderState, StatusHeader
from opcockpit.tui.widgets.keyed_table import KeyedTable
from opcockpit.tui.widgets.tables import ground_truth_table, orphans_table

MIN_REFRESH_S = 0.5
FILTER_HINT = "filter: text · regex · !inverse · field:value  (Enter keep, Esc clear)"
ALERTS_TEXT = (
    "Alerts are not implemented yet: they arrive with the alerts issue (stuck runs, divergence that "
    "persists, providers that stay unreachable).\n\nUntil then, divergence is visible in the Ground "
    "truth tab (✗ rows, header counts) and provider health in the header."
)


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

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("colon", "command_palette", "Jump", key_display=":"),
        Binding("c", "copy", "Copy"),
        Binding("z", "toggle_freeze", "Freeze"),
        Binding("ctrl+r", "refresh_now", "Refresh"),
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
                yield Static(ALERTS_TEXT, id="alerts-placeholder")
        yield Static(id="filter-status")
        yield Input(id="filter", placeholder=FILTER_HINT)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._install_sighup()
        self.gt_table.focus()
        self._show_header()
        self.set_interval(1.0, self._show_header)  # ages in the header move even between refreshes
        self.start_refresh(manual=True)
        if self.auto_poll:
            self.set_interval(self.refresh_s, self._tick)

    async def on_unmount(self) -> None:
        self._remove_sighup()
        if self.close_source:
            with contextlib.suppress(Exception):
                await self.source.aclose()
            if self.details is not None:
                with contextlib.suppress(Exception):
                    await self.details.aclose()

    # SIGHUP: the SSH session or terminal went away. Exit through the normal path so the collector's
    # connections close and nothing keeps polling providers in the background (k9s #871/#945).
    def _install_sighup(self) -> None:
        if not hasattr(signal, "SIGHUP"):
            return
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            import asyncio

            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
            self._hup_installed = True

    def _remove_sighup(self) -> None:
        if self._hup_installed:
            import asyncio

            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._hup_installed = False

    def _on_sighup(self) -> None:
        self.exit(0)

    # ------------------------------------------------------------------ widgets

    @property
    def gt_table(self) -> KeyedTable:
        return self.query_one("#gt-table", KeyedTable)

    @property
    def orphans_table(self) -> KeyedTable:
        return self.query_one("#orphans-table", KeyedTable)

    @property
    def events_view(self) -> ProviderEventsView:
        return self.query_one("#events-view", ProviderEventsView)

    @property
    def active_tab(self) -> str:
        return self.query_one("#main-tabs", TabbedContent).active

    def active_table(self) -> KeyedTable | None:
        return {
            "ground-truth": self.gt_table,
            "orphans": self.orphans_table,
            "events": self.events_view.table,
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
        """Refresh as soon as possible (e.g. a provider event stream reported a change)."""
        if not self.frozen:
            self.start_refresh(manual=True)

    @work(group="refresh", exit_on_error=False)
    async def _refresh_worker(self) -> None:
        started = self.clock()  # all time in the app comes from the injected clock (snapshots)
        try:
            gt = await self.source.refresh()
        except Exception as exc:  # keep the last picture; the header says it is old and why
            self.last_error = one_line(exc)
            gt = None
        finally:
            self.inflight = False
        self.last_duration_s = (self.clock() - started).total_seconds()
        if gt is not None:
            self.last_error = None
            self.apply_ground_truth(gt)
        self._show_header()
        if self.active_tab == "events":
            self.load_provider_events()

    def apply_ground_truth(self, gt: GroundTruth) -> None:
        self.ground_truth = gt
        self.last_refresh = self.clock()
        self.refreshes += 1
        self._rows_by_key = {r.lease_id: r for r in gt.rows}
        with self.batch_update():
            self.gt_table.replace(gt_table(gt))
            self.orphans_table.replace(orphan_table(gt))
            tabs = self.query_one("#main-tabs", TabbedContent)
            tabs.get_tab("ground-truth").label = f"Ground truth {len(gt.rows)}"
            tabs.get_tab("orphans").label = f"Orphans {len(gt.orphans)}"
            self._sync_filter_status()
        self.refresh_bindings()

    def _show_header(self) -> None:
        self.query_one(StatusHeader).show(
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
            )
        )

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
            view.load([], {}, error=one_line(exc))
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
            around = await self.details.lease_events_around(event.matched_lease_id, event.created_at,
                                                            timedelta(minutes=10))
        except Exception as exc:
            view.set_around(key, None, one_line(exc))
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
        if action in ("filter", "copy", "clear_filter"):
            if len(self.screen_stack) > 1:  # a detail/help screen is on top: main-view keys do not apply
                return False
            table = self.active_table()
            if table is None:
                return None  # shown greyed out on the Alerts tab
            if action == "copy":
                return True if table.cursor_key is not None else None
            if action == "clear_filter":
                return bool(table.filter_expr) or self.query_one("#filter", Input).has_class("visible")
        return True

    def show_tab(self, tab: str) -> None:
        self.query_one("#main-tabs", TabbedContent).active = tab

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
        box = self.query_one("#filter", Input)
        box.value = table.filter_expr
        box.add_class("visible")
        self.query_one("#filter-status").remove_class("visible")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter" and self._filter_target is not None:
            self._filter_target.set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self._close_filter()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        table = self._filter_target if box.has_class("visible") else self.active_table()
        if table is not None:
            table.set_filter("")
        box.value = ""
        self._close_filter()

    def _close_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("visible")
        target = self._filter_target or self.active_table()
        self._filter_target = None
        if target is not None:
            target.focus()
        self._sync_filter_status()
        self.refresh_bindings()

    def _sync_filter_status(self) -> None:
        status = self.query_one("#filter-status", Static)
        table = self.active_table()
        if table is not None and table.filter_expr:
            status.update(f" filter: {table.filter_expr}  ({table.view_count} of {table.row_count} rows; "
                          "Esc clears)")
            status.add_class("visible")
        else:
            status.remove_class("visible")


# ---------------------------------------------------------------------- entry points


def run_app(
    config: Any,
    *,
    demo_banner: str | None = None,
    read_only: bool = False,
    refresh_s: float | None = None,
) -> int:
    """Run the cockpit on a CockpitConfig; returns the exit code."""
    from opcockpit.core.collect import FleetCollector
    from opcockpit.tui.data import DbDetails

    sources = config.sources
    details = DbDetails(str(sources.sandbox_db), str(sources.events_db) if sources.events_db else None)
    app = CockpitApp(
        FleetCollector(config),
        details=details,
        refresh_s=refresh_s if refresh_s is not None else getattr(config, "refresh_s", 2.0),
        read_only=read_only or bool(getattr(config, "read_only", False)),
        demo_banner=demo_banner,
    )
    result = app.run()
    return result if isinstance(result, int) else (app.return_code or 0)


def run_tui(loaded: Any, *, read_only: bool = False, debug: bool = False) -> int:
    """CLI hook (opcockpit.cli.main): `loaded` is a LoadedConfig."""
    del debug  # tracebacks are the CLI's business
    return run_app(loaded.config, read_only=read_only)


__all__ = ["CockpitApp", "GroundTruthSource", "run_app", "run_tui"]
