"""The Alerts tab: active alerts, history (`h`), the run/provider overview (`o`), the rules (`R`,
widgets/alert_rules.py: thresholds, enable/disable as ledger overrides); ack/mute/unmute.

Rows, columns and labels are in widgets/alert_rows.py (the alert detail screen shares them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import ContentSwitcher, Static

from opcockpit.domain.alerts import Evidence, Severity
from opcockpit.domain.text import error_line
from opcockpit.domain.timeutil import fmt_age
from opcockpit.tui.table.widget import KeyedTable
from opcockpit.tui.widgets.alert_rows import (
    OFF_TEXT,
    SUMMARY_MIN,
    AlertGroup,
    _alert_tag,
    _fixed,
    _history_tag,
    active_columns,
    active_rows,
    group_alerts,
    history_cells,
    history_columns,
    history_summary_width,
    rows_valid_until,
)
from opcockpit.tui.widgets.alert_rules import RulesPanel
from opcockpit.tui.widgets.overview import OverviewPanel

if TYPE_CHECKING:
    from opcockpit.domain.models import GroundTruth
    from opcockpit.domain.runs import RunHealth
    from opcockpit.ports.alert_records import Alert
    from opcockpit.tui.alerting import Alerting, AlertRound

__all__ = ["AlertsView"]

FEED_POLL_S = 1.0  # how often the ledger is asked whether another cockpit acked or muted


class AlertsView(Vertical):
    """The Alerts tab body; see the module docstring."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("A", "ack", "Ack"),
        Binding("M", "mute", "Mute"),
        Binding("U", "unmute", "Unmute"),
        Binding("h", "toggle_view('alerts-history')", "History"),
        Binding("o", "toggle_view('alerts-overview')", "Overview"),
        Binding("R", "toggle_view('alerts-rules')", "Rules"),
    ]

    DEFAULT_CSS = """
    AlertsView { height: 1fr; }
    AlertsView > #alerts-bar { height: 1; background: $panel; }
    AlertsView > ContentSwitcher { height: 1fr; }
    AlertsView KeyedTable { height: 1fr; }
    AlertsView > #alerts-off { padding: 1 2; color: $text-muted; }
    """

    class Updated(Message):
        """New alert state: the app refreshes the tab label and the header badge."""

        def __init__(self, label: str) -> None:
            super().__init__()
            self.label = label

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.view = "alerts-table"
        self._evaluating = False
        self._queued: GroundTruth | None = None
        self._round_gt: GroundTruth | None = None  # the next round's input, taken by _evaluate
        self._alerts: dict[str, Alert] = {}  # id -> alert shown in the active or history table
        self._bar_shown: Text | None = None
        self._history: dict[str, Alert] = {}
        self._groups: dict[str, AlertGroup] = {}  # group row key -> group (2+ members)
        self._expanded: set[str] = set()  # unfolded group keys
        self._summary_w = 40
        self._last_error: str | None = None
        self.rounds = 0  # evaluations applied (tests wait on this)
        self.rebuilds = 0  # active table rebuilds (tests: an idle round rebuilds nothing)
        self._feed_polling = False  # a ledger feed poll is running in the thread pool
        self._overview_due: tuple[RunHealth | None] | None = None  # run health not drawn yet
        # What the active table was built from: (alerts, unfolded groups, summary width, built at,
        # rows valid until): a round that read the same alerts rebuilds nothing until an age or
        # a mute in the rows moves to its next text (issue 10, idle tick).
        self._shown: tuple[tuple[Alert, ...], frozenset[str], int, datetime, datetime] | None = None

    # ------------------------------------------------------------------ layout

    @property
    def alerting(self) -> Alerting | None:
        return getattr(self.app, "alerting", None)

    def compose(self) -> ComposeResult:
        yield Static(id="alerts-bar")
        with ContentSwitcher(initial="alerts-table", id="alerts-switch"):
            yield KeyedTable(
                active_columns(),
                markable=False,
                row_tag=_alert_tag,
                id="alerts-table",
                empty_text="no alerts firing",
            )
            yield KeyedTable(
                history_columns(),
                markable=False,
                row_tag=_history_tag,
                id="alerts-history",
                empty_text="no alert history",
            )
            yield OverviewPanel(id="alerts-overview")
            yield RulesPanel(lambda: self.alerting, id="alerts-rules")
        yield Static(OFF_TEXT, id="alerts-off")

    def on_mount(self) -> None:
        on = self.alerting is not None
        self.query_one("#alerts-switch").display = on
        self.query_one("#alerts-bar").display = on
        self.query_one("#alerts-off").display = not on
        self.active_table.sort_by("sev")
        self.history_table.sort_by("id", reverse=True)
        self._show_bar()  # the app's heartbeat polls the ledger feed (_poll_ledger) each second

    def _poll_ledger(self) -> None:
        """Acks and mutes from the rest of the team (issue 12): shown within FEED_POLL_S.

        In the loop's thread pool, one poll at a time: a Textual thread worker per second (a
        new thread, its state messages) was a steady share of an idle tick (issue 10)."""
        al = self.alerting
        if al is None or self._evaluating or self._feed_polling:
            return
        moved = al.feed_moved()  # SQLite: asked here, at once; nothing moved: no thread at all
        if moved is False:
            return
        self._feed_polling = True
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, al.poll_changes, bool(moved)).add_done_callback(self._feed_polled)

    def _feed_polled(self, done: asyncio.Future[bool]) -> None:
        self._feed_polling = False
        # A poll that failed is the next evaluation's to report (as the thread worker's was).
        if not done.cancelled() and done.exception() is None and done.result():
            self._feed_changed()

    def _feed_changed(self) -> None:
        if self.is_attached:  # not while the app is closing
            self.show_alerts()

    @property
    def active_table(self) -> KeyedTable:
        return self.query_one("#alerts-table", KeyedTable)

    @property
    def history_table(self) -> KeyedTable:
        return self.query_one("#alerts-history", KeyedTable)

    @property
    def overview(self) -> OverviewPanel:
        return self.query_one("#alerts-overview", OverviewPanel)

    def current_table(self) -> KeyedTable | None:
        """The table the app's filter/copy/focus apply to (None when alerts are off, or while
        the view's children are not there: a tab activation handled as the app shuts down)."""
        if self.alerting is None or not self.is_attached or not self.children:
            return None
        if self.view == "alerts-overview":
            return self.overview.focused_table()
        if self.view == "alerts-rules":
            return self.query_one(RulesPanel).table
        return self.active_table if self.view == "alerts-table" else self.history_table

    def on_resize(self) -> None:
        """The summary column takes the width left over (80 columns over SSH, wider locally)."""
        width = self.size.width
        w = max(SUMMARY_MIN, width - _fixed(active_columns()))
        if w != self._summary_w:
            self._summary_w = w
            self.active_table.set_columns(active_columns(w))
            hw = history_summary_width(width)
            self.history_table.set_columns(history_columns(hw))

    def _now(self) -> datetime:
        clock: Callable[[], datetime] | None = getattr(self.app, "clock", None)
        return clock() if clock else datetime.now(UTC)

    def _show_bar(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        al = self.alerting
        names = {"alerts-table": "Active", "alerts-history": "History", "alerts-overview": "Overview",
                 "alerts-rules": "Rules"}  # fmt: skip
        for view, name in names.items():
            label = name
            if view == "alerts-table" and al is not None:
                now = self._now()
                muted = sum(1 for a in al.active if a.is_muted(now))
                label = f"{name} {len(al.active) - muted}" + (f" +{muted} muted" if muted else "")
            t.append(f" {label} ", style="bold reverse" if view == self.view else "dim")
        if al is None:
            return
        if al.error:
            t.append(f"  ✗ not evaluated: {al.error}", style="bold red")
        elif al.snapshot is None:
            t.append("  waiting for the first evaluation…", style="italic dim")
        elif not al.enabled:
            t.append("  alerts disabled ([alerts] enabled = false)", style="yellow")
        else:
            snap = al.snapshot
            if snap.pending:
                t.append(f"  {snap.pending} pending (within hold time)", style="dim")
            if snap.unknown_scopes:
                t.append(f"  ? could not look: {', '.join(sorted(snap.unknown_scopes))}", style="yellow")
        if self._groups and self.view == "alerts-table":
            t.append(f"  {len(self._groups)} groups", style="dim")
        t.append("   h history · o overview · R rules · Enter detail / unfold", style="dim")
        if t == self._bar_shown:
            return  # an update is a layout pass of the screen: every round, for the same text
        self._bar_shown = t
        self.query_one("#alerts-bar", Static).update(t)

    # ------------------------------------------------------------------ evaluation

    def schedule(self, gt: GroundTruth) -> None:
        """Evaluate on a fresh ground truth; never two at once (the newest waiting one wins)."""
        if self.alerting is None:
            return
        if self._evaluating:
            self._queued = gt
            return
        self._evaluating = True
        self._round_gt = gt
        self._evaluate()

    @property
    def evaluating(self) -> bool:
        return self._evaluating

    @work(group="alert-eval", exit_on_error=False)
    async def _evaluate(self) -> None:
        # The ground truth is not the worker's argument: a finished Worker stays reachable from
        # the context of every task started while it ran (a widget's message loop, a timer), and
        # its arguments with it: old pictures of every row kept for minutes (issue 10, RSS).
        al, gt, self._round_gt = self.alerting, self._round_gt, None
        try:
            if al is not None and gt is not None:
                self._apply_round(await al.evaluate(gt))
        finally:
            del gt
            self._evaluating = False
            queued, self._queued = self._queued, None
            if queued is not None:
                self.schedule(queued)

    def _apply_round(self, rnd: AlertRound) -> None:
        self.rounds += 1
        if rnd.error is not None:
            if rnd.error != self._last_error:  # once per distinct failure, not every tick
                self.app.notify(f"alerts not evaluated: {rnd.error}", severity="error", markup=False)
            self._last_error = rnd.error
        else:
            self._last_error = None
            self._show_overview(rnd.run_health)
        snap = rnd.snapshot
        if snap is not None and self.rounds > 1:  # the first round's "new" alerts are the backlog
            new = [a for a in snap.newly_firing if not a.is_muted(snap.now)]
            if new:
                crit = any(a.severity is Severity.CRITICAL for a in new)
                head = "; ".join(f"#{a.id} {a.summary}" for a in new[:3])
                more = f" (+{len(new) - 3} more)" if len(new) > 3 else ""
                self.app.notify(
                    f"⚠ new alert: {head}{more}",
                    severity="error" if crit else "warning",
                    markup=False,
                    timeout=8,
                )
        for d in rnd.notify_errors:
            self.app.notify(
                f"alert #{d.alert_id}: {d.channel} notification to {d.target} failed"
                f"{' (gave up)' if d.gave_up else ''}: {d.error}",
                severity="error",
                markup=False,
                timeout=10,
            )
        self.show_alerts()

    def _show_overview(self, rh: RunHealth | None) -> None:
        """The run-health overview, drawn when it is the view on screen; else kept until it is
        (hundreds of stuck runs, whose idle times move every round, were re-drawn every 10 s
        behind the alerts table: issue 10, idle tick)."""
        if self.view != "alerts-overview":
            self._overview_due = (rh,)
            return
        self._overview_due = None
        self.overview.show(rh)

    def show_alerts(self) -> None:
        """Active table from the engine's last reading; history reloaded when it is on screen."""
        al = self.alerting
        if al is None:
            return
        now = self._now()
        shown = self._shown
        rebuilt = (
            shown is None
            or shown[0] is not al.active
            or shown[1] != self._expanded
            or shown[2] != self._summary_w
            or not shown[3] <= now < shown[4]
        )
        # The Firing ages are painted at the table's now: only the lines whose age moved repaint.
        self.active_table.set_now(now)
        if rebuilt:
            self._alerts = {str(a.id): a for a in al.active}
            groups = group_alerts(al.active, now)
            self._groups = {g.key: g for g in groups if len(g.members) > 1}
            self._expanded &= set(self._groups)  # a group that went away folds
            self.active_table.replace(active_rows(groups, now, self._expanded))
            self.rebuilds += 1
            until = rows_valid_until(al.active, now)
            self._shown = (al.active, frozenset(self._expanded), self._summary_w, now, until)
        self._refresh_open_details()
        if self.view == "alerts-history":
            self.load_history()
        elif self.view == "alerts-rules":
            self.query_one(RulesPanel).load()  # last evaluation moved
        self._show_bar()
        self.post_message(self.Updated(self.tab_label()))
        if rebuilt or self.view != "alerts-table":
            # The keys (ack, mute, unfold) follow the rows: the same rows, the same keys (a
            # footer check of every binding, ~1.5 ms, saved on every quiet round).
            self.app.refresh_bindings()

    def _refresh_open_details(self) -> None:
        """An open alert detail follows the alert (last seen, evidence, deliveries) while it fires."""
        from opcockpit.tui.screens.alert_detail import AlertDetailScreen

        for screen in self.app.screen_stack:
            if isinstance(screen, AlertDetailScreen):
                fresh = self._alerts.get(str(screen.alert.id))
                fresh = self.alerting.current(fresh) if fresh and self.alerting else fresh
                if fresh is not None and fresh != screen.alert:
                    screen.show(fresh)

    def tab_label(self) -> str:
        counts = self.alerting.counts(self._now()) if self.alerting else None
        return "Alerts" if counts is None else f"Alerts {sum(counts.values())}"

    @work(exclusive=True, group="alert-history", exit_on_error=False)
    async def load_history(self) -> None:
        al = self.alerting
        if al is None:
            return
        try:
            episodes = await asyncio.to_thread(al.history, 500)
        except Exception as exc:
            self.app.notify(f"alert history: {error_line(exc)}", severity="error", markup=False)
            return
        now = self._now()
        self._history = {str(a.id): a for a in episodes}
        self.history_table.replace({k: history_cells(a, now) for k, a in self._history.items()})

    # ------------------------------------------------------------------ view switching

    def action_toggle_view(self, view: str) -> None:
        if self.alerting is None:
            return
        self.view = "alerts-table" if self.view == view else view
        self.query_one("#alerts-switch", ContentSwitcher).current = self.view
        if self.view == "alerts-overview" and self._overview_due is not None:
            self._show_overview(self._overview_due[0])
        if self.view == "alerts-history":
            self.load_history()
        elif self.view == "alerts-rules":
            self.query_one(RulesPanel).load()
        table = self.current_table()
        if table is not None:
            table.focus()
        self._show_bar()
        self.app.refresh_bindings()

    # ------------------------------------------------------------------ selection

    def selected_alert(self) -> Alert | None:
        if self.view == "alerts-table":
            key = self.active_table.cursor_key
            return self._alerts.get(key) if key else None
        if self.view == "alerts-history":
            key = self.history_table.cursor_key
            return self._history.get(key) if key else None
        return None

    def on_keyed_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        if event.table.id not in ("alerts-table", "alerts-history"):
            return
        event.stop()
        if event.table.id == "alerts-table" and event.key in self._groups:
            self.toggle_group(event.key)
            return
        alert = (self._alerts if event.table.id == "alerts-table" else self._history).get(event.key)
        if alert is not None:
            self.open_detail(alert)

    def on_keyed_table_row_highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        if event.table.id in ("alerts-table", "alerts-history"):
            self.app.refresh_bindings()

    def toggle_group(self, key: str) -> None:
        """Enter on a group row: unfold it to its members (under it), again to fold."""
        self._expanded ^= {key}
        self.show_alerts()
        self.active_table.move_cursor_to_key(key)

    def selected_group(self) -> AlertGroup | None:
        if self.view != "alerts-table":
            return None
        key = self.active_table.cursor_key
        return self._groups.get(key) if key else None

    def open_detail(self, alert: Alert) -> None:
        from opcockpit.tui.screens.alert_detail import AlertDetailScreen

        al = self.alerting
        self.app.push_screen(AlertDetailScreen(al.current(alert) if al else alert, self))

    # ------------------------------------------------------------------ ack / mute / unmute

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("ack", "mute", "unmute"):
            if self.alerting is None or self.view in ("alerts-overview", "alerts-rules"):
                return False  # not this view's keys
            group = self.selected_group()
            if group is not None:
                if action == "unmute":
                    return (
                        True if any(a.muted_until or a.mute_until_resolved for a in group.members) else None
                    )
                return True
            alert = self.selected_alert()
            if alert is None:
                return None
            if action == "unmute":
                return True if (alert.muted_until is not None or alert.mute_until_resolved) else None
            return True
        if action == "toggle_view":
            return self.alerting is not None
        return True

    def action_ack(self) -> None:
        group = self.selected_group()
        if group is not None:
            self.prompt_group_ack(group)
            return
        alert = self.selected_alert()
        if alert is not None:
            self.prompt_ack(alert)

    def action_mute(self) -> None:
        group = self.selected_group()
        if group is not None:
            self.prompt_group_mute(group)
            return
        alert = self.selected_alert()
        if alert is not None:
            self.prompt_mute(alert)

    def action_unmute(self) -> None:
        group = self.selected_group()
        if group is not None:
            al = self.alerting
            if al is not None:
                ids = group.ids
                self.run_group_action(lambda: al.unmute_many(ids), f"{group.title()} unmuted")
            return
        alert = self.selected_alert()
        if alert is not None:
            self.unmute(alert)

    # A group's ack/mute acts on every member, each recorded in the ledger as its own ack/mute.

    def prompt_group_ack(self, group: AlertGroup) -> None:
        from opcockpit.tui.screens.alert_detail import AckPrompt

        al = self.alerting
        if al is None:
            return
        ids = group.ids

        def done(comment: str | None) -> None:
            if comment is not None:
                self.run_group_action(lambda: al.ack_many(ids, comment), f"{group.title()} acked")

        title = f"Ack all {group.title()} (each alert is acked on its own)"
        self.app.push_screen(AckPrompt(group.members[0], al.who, title=title), done)

    def prompt_group_mute(self, group: AlertGroup) -> None:
        from opcockpit.tui.screens.alert_detail import MutePrompt

        al = self.alerting
        if al is None:
            return
        ids = group.ids

        def done(answer: tuple[timedelta | None, str] | None) -> None:
            if answer is None:
                return
            duration, comment = answer
            if duration is None:
                fn = lambda: al.mute_many(ids, until_resolved=True, comment=comment)  # noqa: E731
                text = f"{group.title()} muted until resolved"
            else:
                fn = lambda: al.mute_many(ids, duration=duration, comment=comment)  # noqa: E731
                text = f"{group.title()} muted for {fmt_age(duration.total_seconds())}"
            self.run_group_action(fn, text)

        title = f"Mute all {group.title()} (each alert is muted on its own)"
        self.app.push_screen(MutePrompt(group.members[0], al.who, title=title), done)

    @work(group="alert-action", exit_on_error=False)
    async def run_group_action(self, fn: Callable[[], list[Alert]], done_text: str) -> None:
        try:
            await asyncio.to_thread(fn)
        except Exception as exc:
            self.app.notify(f"not all done ({done_text}): {error_line(exc)}", severity="error", markup=False)
            self.show_alerts()  # what did land (members before the failure) shows
            return
        self.app.notify(f"{done_text} (cockpit ledger)", markup=False)
        self.show_alerts()

    def prompt_ack(self, alert: Alert, after: Callable[[Alert], None] | None = None) -> None:
        from opcockpit.tui.screens.alert_detail import AckPrompt

        al = self.alerting
        if al is None:
            return

        def done(comment: str | None) -> None:
            if comment is not None:
                self.run_action(lambda: al.ack(alert.id, comment), f"#{alert.id} acked", after)

        self.app.push_screen(AckPrompt(alert, al.who), done)

    def prompt_mute(self, alert: Alert, after: Callable[[Alert], None] | None = None) -> None:
        from opcockpit.tui.screens.alert_detail import MutePrompt

        al = self.alerting
        if al is None:
            return

        def done(answer: tuple[timedelta | None, str] | None) -> None:
            if answer is None:
                return
            duration, comment = answer
            if duration is None:
                self.run_action(
                    lambda: al.mute(alert.id, until_resolved=True, comment=comment),
                    f"#{alert.id} muted until resolved",
                    after,
                )
            else:
                self.run_action(
                    lambda: al.mute(alert.id, duration=duration, comment=comment),
                    f"#{alert.id} muted for {fmt_age(duration.total_seconds())}",
                    after,
                )

        self.app.push_screen(MutePrompt(alert, al.who), done)

    def unmute(self, alert: Alert, after: Callable[[Alert], None] | None = None) -> None:
        al = self.alerting
        if al is not None:
            self.run_action(lambda: al.unmute(alert.id), f"#{alert.id} unmuted", after)

    @work(group="alert-action", exit_on_error=False)
    async def run_action(
        self, fn: Callable[[], Alert], done_text: str, after: Callable[[Alert], None] | None = None
    ) -> None:
        """A ledger write in a thread (sqlite may wait on a cron run's lock), then re-show."""
        try:
            alert = await asyncio.to_thread(fn)
        except Exception as exc:
            what = done_text.split(" ", 1)[0]
            self.app.notify(f"{what}: {error_line(exc)}", severity="error", markup=False)
            return
        self.app.notify(f"{done_text} (cockpit ledger)", markup=False)
        self.show_alerts()
        if after is not None:
            after(alert)

    # ------------------------------------------------------------------ jumps to the rows

    def jump(self, alert: Alert, ev: Evidence) -> None:
        """Evidence -> the row it names: Ground truth / Orphans cursor, thread detail, events."""
        app: Any = self.app
        kind = ev.kind
        if kind in ("lease", "resource_snapshot"):
            self._to_ground_truth(ev.id)
        elif kind == "orphan":
            if ev.id not in app.orphans_table:
                app.notify(f"orphan {ev.id} is not in the current picture", severity="warning", markup=False)
                return
            self._pop_details()
            app.focus_orphan(ev.id)
            app.orphans_table.focus()
        elif kind in ("thread", "run"):
            thread = ev.id if kind == "thread" else self._thread_of_run(alert, ev.id)
            if thread is None:
                app.notify(f"run {ev.id}: its thread is unknown", severity="warning", markup=False)
                return
            self.open_thread(thread)
        elif kind == "lease_event":
            lease = ev.note.split(" ", 1)[0] if ev.note else ""
            if lease:
                app.open_lease(lease)
        elif kind == "provider":
            self._pop_details()
            app.show_tab("ground-truth")
            app.gt_table.set_filter(f"provider:{ev.id}")
            app.gt_table.focus()
            getattr(app, "_sync_filter_status", lambda: None)()  # the filter line under the tabs
        elif kind == "provider_event":
            self._pop_details()
            app.show_tab("events")
            self._focus_event(ev.id, 20)

    def _pop_details(self) -> None:
        app = self.app
        while len(app.screen_stack) > 1:
            app.pop_screen()

    def _to_ground_truth(self, lease_id: str) -> None:
        app: Any = self.app
        table: KeyedTable = app.gt_table
        if lease_id not in table:
            app.notify(f"lease {lease_id} is not in the current picture", severity="warning", markup=False)
            return
        self._pop_details()
        app.show_tab("ground-truth")
        if not table.move_cursor_to_key(lease_id, center=True):
            table.set_filter("")  # the filter hid it: the jump wins over the filter
            table.move_cursor_to_key(lease_id, center=True)
        table.focus()

    def _thread_of_run(self, alert: Alert, run_id: str) -> str | None:
        for e in alert.evidence:
            if e.kind == "thread":
                return e.id
        rh = self.alerting.run_health if self.alerting else None
        if rh is not None:
            for r in rh.runs:
                if r.run_id == run_id:
                    return r.thread_id
        return None

    def open_thread(self, thread_id: str) -> None:
        """The thread detail screen of the lease that thread is bound to (primary binding first)."""
        app: Any = self.app
        gt = app.ground_truth
        rows = gt.rows if gt is not None else ()
        row = next((r for r in rows if r.thread_id == thread_id), None) or next(
            (r for r in rows if thread_id in r.thread_ids), None
        )
        if row is None:
            app.notify(
                f"thread {thread_id} is bound to no lease in the current picture",
                severity="warning",
                markup=False,
            )
            return
        app.open_lease(row.lease_id)

    def _focus_event(self, event_id: str, tries: int) -> None:
        table: KeyedTable = self.app.events_view.table  # type: ignore[attr-defined]
        if table.move_cursor_to_key(event_id, center=True):
            table.focus()
        elif tries > 0:  # the events tab loads on activation: look again shortly
            self.set_timer(0.1, lambda: self._focus_event(event_id, tries - 1))
        else:
            self.app.notify(
                f"provider event {event_id} is not in the loaded range", severity="warning", markup=False
            )

    def on_overview_panel_open_thread(self, event: OverviewPanel.OpenThread) -> None:
        event.stop()
        self.open_thread(event.thread_id)

    def on_overview_panel_show_provider(self, event: OverviewPanel.ShowProvider) -> None:
        event.stop()
        self.jump_provider(event.provider)

    def jump_provider(self, provider: str) -> None:
        self.jump(None, Evidence("provider", provider))  # type: ignore[arg-type]
