"""Thread detail (Enter on a ground-truth row; Esc back).

Sections: the lease row as the cockpit sees it (kept live: the app hands every new GroundTruth row
of this lease to `update_row`), terminals (the thread pointer's active/default one marked),
chat sessions (closed ones with close_reason), lease + instance history (with the Mycel volume),
the lease_events timeline, the State history (LEON's lease_events and provider webhooks interleaved
with the cockpit's observed transitions and operator actions from its event ledger, newest first,
with the time spent diverged), recent commands (a cursor table: Enter or `o` opens a command's output),
and runs from events.db with a run-event timeline that can follow new events live (`f`).
How each section is drawn (and how wide) lives in thread_sections; this module is the screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static

from opcockpit.domain.events import Event
from opcockpit.domain.models import GroundTruthRow, ProviderEventRecord, RunEventRecord, TerminalCommandRecord
from opcockpit.domain.text import error_line, safe_text
from opcockpit.services.history import HistoryEntry, lease_history_query, state_history, time_diverged
from opcockpit.tui.data import DetailSource, ThreadDetail
from opcockpit.tui.rows import ts
from opcockpit.tui.screens.inspect import InspectScreen, open_logs, open_raw_record
from opcockpit.tui.screens.thread_sections import (
    COMMAND_COLUMNS,
    SectionStatic,
    command_cells,
    render_run_events,
    render_sections,
    render_state_history,
    summary,
)
from opcockpit.tui.widgets.footer import StableFooter

__all__ = ["ThreadDetailScreen", "render_run_events", "render_sections", "summary"]


class ThreadDetailScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("o", "command_output", "Output"),
        Binding("enter", "command_output", "Output", show=False),
        Binding("f", "toggle_follow", "Follow runs"),
        Binding("ctrl+r", "reload", "Reload"),
        Binding("c", "copy", "Copy thread id"),
        Binding("q", "app.quit", "Quit"),
        # issue 15: k9s describe-like navigation, earlier runs, whole events, logs and raw record
        Binding("right_square_bracket", "section(1)", "Next section", key_display="]"),
        Binding("left_square_bracket", "section(-1)", "Prev section", key_display="[", show=False),
        Binding("minus", "fold", "Fold", key_display="-"),
        Binding("R", "earlier_run", "Earlier run"),
        Binding("e", "events_whole", "Events whole"),
        Binding("w", "waterfall", "Waterfall"),  # issue 10: the shown run's spans on a time axis
        Binding("l", "logs", "Logs", show=False),
        Binding("y", "raw_record", "Raw record", show=False),
    ]

    def __init__(
        self,
        row: GroundTruthRow,
        details: DetailSource | None,
        *,
        follow_interval: float = 2.0,
        event_log: Any = None,
    ) -> None:
        super().__init__()
        self.row = row
        self.details = details
        self.follow_interval = follow_interval
        self.detail: ThreadDetail | None = None
        self.following = False
        self.run_id: str | None = None
        self.run_events: list[RunEventRecord] = []
        self.after_seq = 0
        self._follow_timer: Any = None
        self._card_width: int | None = None  # the header card wraps values at the screen's width
        self._gone = False  # the lease left the picture: the card says so
        self._summary_shown = summary(row)
        self._event_log = event_log
        self.history: list[HistoryEntry] = []

    def compose(self) -> ComposeResult:
        thread = self.row.thread_id or "(no thread)"
        title = Text(f" Thread {thread} · lease {self.row.lease_id}", no_wrap=True, overflow="ellipsis")
        yield Static(title, id="detail-title")  # one line at any width: never wraps into the body
        with VerticalScroll(id="detail-body"):
            yield Static(self._summary_shown, id="sec-summary")
            for sec in (
                "sec-terminals", "sec-sessions", "sec-lease", "sec-lease-events", "sec-state-history",
                "sec-commands",
            ):  # fmt: skip
                yield SectionStatic("", id=sec, classes="detail-section")
            table: DataTable[Text] = DataTable(
                id="commands-table", cursor_type="row", zebra_stripes=False, show_cursor=True
            )
            table.add_columns(*COMMAND_COLUMNS)
            yield table
            for sec in ("sec-runs", "sec-run-events"):
                yield SectionStatic("", id=sec, classes="detail-section")
        yield StableFooter()

    def on_resize(self) -> None:
        # The body's padding and its vertical scrollbar take 4 columns of the screen.
        width = max(self.size.width - 4, 1)
        if width != self._card_width:
            self._card_width = width
            self._redraw_summary()

    def on_mount(self) -> None:
        self.query_one("#sec-terminals", Static).update(Text(" loading…", style="italic dim"))
        self.load()

    @work(exclusive=True, group="thread-detail", exit_on_error=False)
    async def load(self) -> None:
        if self.details is None:
            detail = ThreadDetail(
                self.row.thread_id, self.row.lease_id, errors={"sandbox.db": "no detail source configured"}
            )
        else:
            try:
                detail = await self.details.thread_detail(self.row.thread_id, self.row.lease_id)
            except Exception as exc:
                detail = ThreadDetail(
                    self.row.thread_id, self.row.lease_id, errors={"sandbox.db": error_line(exc)}
                )
        self.show(detail)
        await self.load_history(detail)

    def events_ledger(self) -> Any:
        """The cockpit's event log: given, else the app's wiring graph or its recording collector."""
        if self._event_log is not None:
            return self._event_log
        cockpit = getattr(self.app, "cockpit", None)
        log = getattr(cockpit, "events", None)
        if log is None:
            source = getattr(self.app, "source", None)
            log = getattr(source, "events", None) if hasattr(source, "ledger_error") else None
        return log

    async def load_history(self, detail: ThreadDetail) -> None:
        """State history: the ledger's events of this lease + LEON's rows, never failing the screen."""
        import asyncio

        row, error = self.row, None
        events: list[Event] = []
        log = self.events_ledger()
        if log is not None:
            try:
                events = await asyncio.to_thread(log.query, lease_history_query(row.lease_id))
            except Exception as exc:  # LedgerError: say so, show LEON's side anyway
                error = error_line(exc)
        webhooks: list[ProviderEventRecord] = []
        if self.details is not None and row.instance_id:
            try:
                rows = await self.details.provider_events(provider=row.provider, limit=200)
                webhooks = [
                    p for p in rows if p.instance_id == row.instance_id or p.matched_lease_id == row.lease_id
                ]
            except Exception:
                webhooks = []  # provider_events has its own tab and error; here it is context
        self.history = state_history(events, detail.lease_events, webhooks)
        now = max((e.observed_at for e in events), default=None)
        clock = getattr(self.app, "clock", None)
        if callable(clock):
            now = clock()
        diverged = time_diverged(events, row.lease_id, now).total_seconds() if now and events else None
        self.query_one("#sec-state-history", Static).update(
            render_state_history(self.history, diverged, error)
        )

    def show(self, detail: ThreadDetail) -> None:
        self.detail = detail
        for sec_id, renderable in render_sections(detail):
            self.query_one(f"#{sec_id}", Static).update(renderable)
        if "sandbox.db" in detail.errors:
            self.query_one("#sec-terminals", Static).update(
                Text(f" ✗ sandbox.db: {detail.errors['sandbox.db']}", style="bold red")
            )
        self._show_commands(detail.commands)
        self.run_id = detail.run_id
        self.run_events = list(detail.run_events)
        self.after_seq = max((e.seq for e in self.run_events), default=0)
        self._show_run_events()

    def _show_commands(self, commands: Sequence[TerminalCommandRecord]) -> None:
        table = self.query_one("#commands-table", DataTable)
        table.clear()  # a (re)load replaces the whole list; this is not the refresh path
        for c in commands:
            table.add_row(*command_cells(c), key=c.command_id)
        table.display = bool(commands)
        self.query_one("#sec-commands", Static).set_class(bool(commands), "with-table")

    def update_row(self, row: GroundTruthRow | None) -> None:
        """The app's newest picture of this lease (None: the lease left the picture).

        Only the summary is redrawn, and only when its text changed, so a refresh every 2 s
        neither flickers nor moves the body's scroll position."""
        self._gone = row is None
        if row is not None:
            self.row = row
        self._redraw_summary()

    def _redraw_summary(self) -> None:
        text = summary(self.row, self._card_width)
        if self._gone:
            text.append(
                "\n⚠ this lease is not in the latest picture (deleted from sandbox.db?); "
                "showing its last known state",
                style="bold yellow",
            )
        if text != self._summary_shown:
            self._summary_shown = text
            self.query_one("#sec-summary", Static).update(text)

    def selected_command(self) -> TerminalCommandRecord | None:
        if self.detail is None or not self.detail.commands:
            return None
        table = self.query_one("#commands-table", DataTable)
        idx = table.cursor_row if 0 <= table.cursor_row < len(self.detail.commands) else 0
        return self.detail.commands[idx]

    def action_command_output(self) -> None:
        cmd = self.selected_command()
        if cmd is None:
            self.notify("no commands recorded for this thread", markup=False, timeout=3)
            return
        # Imported here: command_output imports this module's timestamp format.
        from opcockpit.tui.screens.command_output import CommandOutputScreen

        self.app.push_screen(CommandOutputScreen(cmd, self.details))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "commands-table":
            event.stop()
            self.action_command_output()

    def _show_run_events(self) -> None:
        self.query_one("#sec-run-events", Static).update(
            render_run_events(self.run_events, self.run_id, self.following)
        )

    def action_toggle_follow(self) -> None:
        self.following = not self.following
        if self.following:
            self._follow_timer = self.set_interval(self.follow_interval, self.poll_run_events)
            self.poll_run_events()
        elif self._follow_timer is not None:
            self._follow_timer.stop()
            self._follow_timer = None
        self._show_run_events()
        # The run-event timeline is the last section, below the fold at 80x24: bring it into view
        # and say what changed, or `f` looks like it did nothing.
        if self.following:
            self.query_one("#sec-run-events", Static).scroll_visible(animate=False)
        said = "following run events live (f stops)" if self.following else "stopped following run events"
        self.notify(said, markup=False, timeout=3)

    @work(exclusive=True, group="run-follow", exit_on_error=False)
    async def poll_run_events(self) -> None:
        """One follow step: switch to a newer run if one started, then fetch events after the cursor."""
        if self.details is None or not self.row.thread_id:
            return
        try:
            runs = await self.details.runs(self.row.thread_id)
            if runs and runs[0].run_id != self.run_id:
                self.run_id, self.run_events, self.after_seq = runs[0].run_id, [], 0
            new = await self.details.run_events(self.run_id, self.after_seq) if self.run_id else []
        except Exception as exc:
            self.notify(f"run events: {error_line(exc)}", severity="error", markup=False)
            return
        if self.detail is not None and runs:
            self.detail.runs, self.detail.run_id = runs, self.run_id
            self.query_one("#sec-runs", Static).update(dict(render_sections(self.detail))["sec-runs"])
        self.append_run_events(new)

    def append_run_events(self, new: Sequence[RunEventRecord]) -> None:
        fresh = sorted((e for e in new if e.seq > self.after_seq), key=lambda e: e.seq)
        if fresh:
            self.run_events.extend(fresh)
            self.after_seq = fresh[-1].seq
        self._show_run_events()

    def action_reload(self) -> None:
        self.load()

    def action_copy(self) -> None:
        value = self.row.thread_id or self.row.lease_id
        self.app.copy_to_clipboard(value)
        self.notify(f"copied {value}", markup=False)

    # -- issue 15: sections (jump, fold), earlier runs, events whole, logs and raw record ----------

    SECTIONS = (
        "sec-summary", "sec-terminals", "sec-sessions", "sec-lease", "sec-lease-events",
        "sec-state-history", "sec-commands", "sec-runs", "sec-run-events",
    )  # fmt: skip
    section_at = 0  # the section `]`/`[` last jumped to (what `-` folds)

    def action_section(self, step: int) -> None:
        self.section_at = (self.section_at + step) % len(self.SECTIONS)
        widget = self.query_one(f"#{self.SECTIONS[self.section_at]}", Static)
        self.query_one("#detail-body", VerticalScroll).scroll_to_widget(widget, top=True, animate=False)

    def action_fold(self) -> None:
        """Fold (or unfold) the section last jumped to: its body hides, a one-line stub stays."""
        sec = self.SECTIONS[self.section_at]
        widget = self.query_one(f"#{sec}", Static)
        widget.toggle_class("folded")
        folded = widget.has_class("folded")
        widget.styles.height = 1 if folded else "auto"
        widget.styles.overflow_y = "hidden"
        if sec == "sec-commands":
            self.query_one("#commands-table", DataTable).display = not folded and bool(
                self.detail and self.detail.commands
            )
        self.notify(f"{sec.removeprefix('sec-')} {'folded' if folded else 'unfolded'} (- again)", timeout=2)

    def action_earlier_run(self) -> None:
        """Show the next older run's events (wraps to the newest); following stays on the newest."""
        runs = list(self.detail.runs) if self.detail is not None else []
        if len(runs) < 2 or self.details is None:
            self.notify("no earlier run of this thread", markup=False, timeout=3)
            return
        ids = [r.run_id for r in runs]
        at = ids.index(self.run_id) if self.run_id in ids else -1
        self.load_run(ids[(at + 1) % len(ids)])

    @work(exclusive=True, group="run-select", exit_on_error=False)
    async def load_run(self, run_id: str) -> None:
        assert self.details is not None
        try:
            events = await self.details.run_events(run_id, 0)
        except Exception as exc:
            self.notify(f"run events: {error_line(exc)}", severity="error", markup=False)
            return
        if self.following:
            self.action_toggle_follow()  # an older run does not grow: stop following the newest
        self.run_id, self.run_events = run_id, list(events)
        self.after_seq = max((e.seq for e in self.run_events), default=0)
        if self.detail is not None:
            self.detail.run_id = run_id
            self.query_one("#sec-runs", Static).update(dict(render_sections(self.detail))["sec-runs"])
        self._show_run_events()

    def events_text(self) -> str:
        """Every event of the shown run and every lease event, whole (no clipping, payloads as stored)."""
        out = [f"run {self.run_id or '-'}: {len(self.run_events)} events"]
        for e in self.run_events:
            out.append(f"\n#{e.seq}  {ts(e.created_at)}  {e.event_type}\n{e.data}")
        lease_events = self.detail.lease_events if self.detail is not None else []
        out.append(f"\n\nlease_events of {self.row.lease_id}: {len(lease_events)}")
        for le in lease_events:
            out.append(f"\n{ts(le.created_at)}  {le.event_type}  {le.source}")
            if le.error:
                out.append(f"error: {le.error}")
            if le.payload_json:
                out.append(le.payload_json)
        return "\n".join(out)

    def action_events_whole(self) -> None:
        text = safe_text(self.events_text(), single_line=False)

        async def load(style: str) -> str:
            return text

        self.app.push_screen(InspectScreen(f"events of {self.row.lease_id}", record=load))

    def action_waterfall(self) -> None:
        from opcockpit.tui.screens.waterfall import WaterfallScreen

        if not self.run_id:
            self.notify("this thread has no run to draw", markup=False)
            return
        self.app.push_screen(WaterfallScreen(self.run_id, self.run_events))

    def action_logs(self) -> None:
        open_logs(self.app, self.row.provider, self.row.instance_id)

    def action_raw_record(self) -> None:
        open_raw_record(self.app, self.row.provider, self.row.instance_id)
