"""Thread detail (Enter on a ground-truth row; Esc back).

Sections: the lease row as the cockpit sees it (kept live: the app hands every new GroundTruth row
of this lease to `update_row`), terminals (the thread pointer's active/default one marked),
chat sessions (closed ones with close_reason), lease + instance history (with the Mycel volume),
the lease_events timeline, the State history (LEON's lease_events and provider webhooks interleaved
with the cockpit's observed transitions and operator actions from its event ledger, newest first,
with the time spent diverged), recent commands (a cursor table: Enter or `o` opens a command's output),
and runs from events.db with a run-event timeline that can follow new events live (`f`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
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
from opcockpit.domain.timeutil import fmt_age
from opcockpit.services.history import HistoryEntry, lease_history_query, state_history, time_diverged
from opcockpit.tui.data import DetailSource, ThreadDetail, clean
from opcockpit.tui.rows import GLYPH, fmt_resources, ts
from opcockpit.tui.screens.inspect import InspectScreen, open_logs, open_raw_record
from opcockpit.tui.widgets.footer import StableFooter

RUN_EVENTS_SHOWN = 40


# Tables take their natural width and the body scrolls sideways: squeezing them made Rich drop or
# crop whole columns (a state column silently vanishing is worse than scrolling). Free text is capped
# here, and is the first to give way on a narrow screen (see _DetailTable).
MAX_WIDTH = {"error / payload": 80, "command": 60, "data": 80, "error": 60, "cwd": 30}


class _DetailTable(Table):
    """Free-text columns (MAX_WIDTH) give way first when the screen is narrow.

    Rich shrinks only wrappable columns before squeezing all of them; with every column no_wrap, a
    run-event table at 80 columns cut `seq` to "2…" and times to "11-26 00:14:…". So free-text
    columns are wrappable for the width calculation, and their cells are one ellipsised line."""

    free: frozenset[int] = frozenset()

    def add_row(self, *renderables: Any, **kwargs: Any) -> None:
        cells = [
            _one_line(c) if i in self.free and isinstance(c, str | Text) else c
            for i, c in enumerate(renderables)
        ]
        super().add_row(*cells, **kwargs)


def _one_line(cell: str | Text) -> Text:
    text = Text(cell) if isinstance(cell, str) else cell.copy()
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def _table(title: str, columns: Sequence[str]) -> Table:
    t = _DetailTable(
        title=title,
        title_justify="left",
        title_style="bold",
        expand=False,
        box=None,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        header_style="bold dim",
    )
    for c in columns:
        t.add_column(c, no_wrap=c not in MAX_WIDTH, overflow="ellipsis", max_width=MAX_WIDTH.get(c))
    t.free = frozenset(i for i, c in enumerate(columns) if c in MAX_WIDTH)
    return t


def _empty(table: Table, text: str) -> Table:
    table.add_row(Text(text, style="italic dim"), *[""] * (len(table.columns) - 1))
    return table


# --------------------------------------------------------------------------- header card (issue 15)

_BADGE = {
    "converged": "bold reverse green", "diverged": "bold reverse red", "stale": "bold reverse yellow",
    "transitioning": "bold reverse cyan", "unbound": "reverse", "unknown": "bold reverse magenta",
}  # fmt: skip
_LABEL_W = 10  # the card's label column: values line up under each other


def _field(t: Text, label: str, value: str, style: str = "") -> None:
    t.append(f"\n{label:<{_LABEL_W}}", style="bold dim")
    t.append(value, style=style)


def summary(row: GroundTruthRow) -> Text:
    """The header card: a state badge set apart from the text, the key fields aligned, why in words.
    Plain Text (not a table) so an unchanged picture compares equal and is not redrawn."""
    row = clean(row)  # DB/provider text (reason, last_error, ids) made terminal-safe
    conv = row.convergence.value
    t = Text(no_wrap=False)
    t.append(f" {GLYPH.get(row.convergence, '?')} {conv} ", style=_BADGE.get(conv, "bold reverse"))
    t.append(f"  {row.lease_id}", style="bold")
    _field(t, "Provider", f"{row.provider}  instance {row.instance_id or '-'}")
    _field(
        t, "States", f"desired {row.desired_state} · observed {row.observed_state} · "
        f"provider {row.provider_state or '-'}",
    )  # fmt: skip
    flags = "  needs refresh" if row.needs_refresh else ""
    _field(t, "Lease", f"status {row.lease_status or '-'} · version {row.version}{flags}")
    _field(t, "Why", row.reason, "bold")
    if row.last_error and row.last_error not in row.reason:
        _field(t, "Error", row.last_error, "red")
    res = fmt_resources(row.resources)
    if res:
        _field(t, "Resources", res)
    if len(row.thread_ids) > 1:
        _field(t, "Threads", ", ".join(row.thread_ids))
    return t


def render_sections(d: ThreadDetail) -> list[tuple[str, RenderableType]]:
    """(section id, renderable) in display order; errors and notes are shown in place."""

    def guard(name: str, build: Callable[[], Table]) -> RenderableType:
        table = build()
        if name in d.errors:
            return Group(table, Text(f"  ✗ {d.errors[name]}", style="bold red"))
        if name in d.notes:
            return Group(table, Text(f"  {d.notes[name]}", style="italic dim"))
        return table

    def terminals() -> Table:
        # The ▸ marker carries the active terminal at a glance; the full role comes last so it does
        # not push the timestamps off an 80-100 column screen.
        t = _table(
            "Terminals (▸ active)", ["terminal", "lease", "cwd", "state v", "created", "updated", "pointer"]
        )
        for r in d.terminals:
            role = pointer_role(d, r.terminal_id)
            active = role.startswith("active")
            t.add_row(
                ("▸ " if active else "  ") + r.terminal_id,
                r.lease_id,
                r.cwd,
                str(r.state_version),
                ts(r.created_at),
                ts(r.updated_at),
                role,
                style="bold" if active else "",
            )
        if d.terminals and d.pointer is None and "terminals" not in d.errors:
            t.caption, t.caption_justify = "no thread_terminal_pointers row for this thread", "left"
        return t if d.terminals else _empty(t, "no terminals")

    def sessions() -> Table:
        t = _table(
            "Chat sessions",
            ["session", "status", "terminal", "started", "last active", "ended", "close reason"],
        )
        for s in d.sessions:
            style = "" if s.is_live else "dim"
            t.add_row(
                s.chat_session_id,
                Text(s.status, style="red" if s.status == "failed" else style),
                s.terminal_id,
                ts(s.started_at),
                ts(s.last_active_at),
                ts(s.ended_at),
                s.close_reason or "",
                style=style,
            )
        return t if d.sessions else _empty(t, "no chat sessions")

    def lease() -> Table:
        t = _table(
            "Lease and instance history", ["instance", "status", "provider session", "created", "last seen"]
        )
        lr = d.lease
        if lr is not None:
            t.caption = (
                f"lease {lr.lease_id}: desired {lr.desired_state}, observed {lr.observed_state}, "
                f"status {lr.status or '-'}, v{lr.version}, current {lr.current_instance_id or '-'}"
                f"{volume_line(d)}"
            )
            t.caption_justify = "left"
        for i in d.instances:
            current = lr is not None and i.instance_id == lr.current_instance_id
            t.add_row(
                ("● " if current else "  ") + i.instance_id,
                i.status or "-",
                i.provider_session_id or "-",
                ts(i.created_at),
                ts(i.last_seen_at),
            )
        return t if d.instances else _empty(t, "no instance history")

    def lease_events() -> Table:
        t = _table("lease_events (newest first)", ["time", "type", "source", "error / payload"])
        for e in d.lease_events:
            detail = Text(e.error, style="red") if e.error else Text(e.payload_json or "", style="dim")
            t.add_row(ts(e.created_at), e.event_type, e.source, detail)
        return t if d.lease_events else _empty(t, "no lease events")

    def commands() -> Table:
        # The rows themselves are the #commands-table cursor table below this title.
        t = _table("Recent commands (enter or o: output)" if d.commands else "Recent commands", ["time"])
        t.show_header = False
        return t if d.commands else _empty(t, "no commands")

    def runs() -> Table:
        t = _table("Runs (events.db)", ["run", "status", "events", "seq", "started", "last event", "error"])
        for r in d.runs:
            style = {"error": "red", "running": "cyan", "cancelled": "yellow"}.get(r.status, "")
            mark = "▶ " if r.run_id == d.run_id else "  "
            t.add_row(
                mark + r.run_id,
                Text(r.status, style=style),
                str(r.event_count),
                f"{r.first_seq}-{r.last_seq}",
                ts(r.started_at),
                ts(r.last_event_at),
                r.error or "",
            )
        return t if d.runs else _empty(t, "no runs")

    return [
        ("sec-terminals", guard("terminals", terminals)),
        ("sec-sessions", guard("sessions", sessions)),
        ("sec-lease", guard("instances", lease)),
        ("sec-lease-events", guard("lease_events", lease_events)),
        ("sec-commands", guard("commands", commands)),
        ("sec-runs", guard("runs", runs)),
    ]


# --------------------------------------------------------------------------- State history

HISTORY_SHOWN = 60
ORIGIN_STYLE = {"leon": "cyan", "webhook": "magenta", "cockpit": "", "operator": "bold yellow"}


def render_state_history(
    entries: Sequence[HistoryEntry], diverged_s: float | None, error: str | None = None
) -> RenderableType:
    """The State history table (newest first) with the time spent diverged above it."""
    t = _table("State history (newest first)", ["time", "origin", "what", "detail"])
    for h in entries[:HISTORY_SHOWN]:
        t.add_row(ts(h.at), Text(h.origin, style=ORIGIN_STYLE.get(h.origin, "")), h.what, h.detail)
    if not entries:
        _empty(t, "no recorded history")
    head = Text(
        f" time diverged (recorded): {fmt_age(diverged_s)}" if diverged_s is not None else "", style="dim"
    )
    parts: list[RenderableType] = [t, head]
    if error:
        parts.append(Text(f"  ✗ {error}", style="bold red"))
    return Group(*parts)


def pointer_role(d: ThreadDetail, terminal_id: str) -> str:
    p = d.pointer
    if p is None:
        return ""
    roles = [
        name
        for name, tid in (("active", p.active_terminal_id), ("default", p.default_terminal_id))
        if tid == terminal_id
    ]
    return "+".join(roles)


def volume_line(d: ThreadDetail) -> str:
    """Mycel: the lease's volume (id, name, source), or that the id names no sandbox_volumes row."""
    vid = d.lease.volume_id if d.lease is not None else None
    if not vid:
        return ""
    v = d.volume
    if v is None:
        return f"\nvolume {vid} (no sandbox_volumes row)"
    return f"\nvolume {v.volume_id} name {v.name or '-'} source {v.source} created {ts(v.created_at)}"


COMMAND_COLUMNS = ("time", "status", "exit", "command", "cwd")


def command_cells(c: TerminalCommandRecord) -> tuple[Text, ...]:
    bad = c.exit_code not in (None, 0) or c.status in ("failed", "error")
    cells = (
        ts(c.created_at),
        c.status,
        "" if c.exit_code is None else str(c.exit_code),
        _clip(c.command_line, MAX_WIDTH["command"]),
        _clip(c.cwd, MAX_WIDTH["cwd"]),
    )
    return tuple(Text(v, style="red" if bad and i == 1 else "") for i, v in enumerate(cells))


def _clip(value: str, width: int) -> str:
    value = value.replace("\n", " ")
    return value if len(value) <= width else value[: width - 1] + "…"


def render_run_events(events: Sequence[RunEventRecord], run_id: str | None, following: bool) -> Table:
    state = "following live" if following else "f to follow live"
    title = f"Run events of ▶ {run_id or '-'} (last {RUN_EVENTS_SHOWN}; {state})"
    t = _table(title, ["seq", "time", "run", "type", "data"])
    for e in list(events)[-RUN_EVENTS_SHOWN:]:
        style = {"error": "red", "run_start": "bold", "run_done": "bold"}.get(e.event_type, "")
        t.add_row(
            str(e.seq),
            ts(e.created_at),
            e.run_id[:12],
            Text(e.event_type, style=style),
            e.data.replace("\n", " ")[:160],
        )
    return t if events else _empty(t, "no run events")


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
                yield Static("", id=sec, classes="detail-section")
            table: DataTable[Text] = DataTable(
                id="commands-table", cursor_type="row", zebra_stripes=False, show_cursor=True
            )
            table.add_columns(*COMMAND_COLUMNS)
            yield table
            for sec in ("sec-runs", "sec-run-events"):
                yield Static("", id=sec, classes="detail-section")
        yield StableFooter()

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
        if row is None:
            text = summary(self.row)
            text.append(
                "\n⚠ this lease is not in the latest picture (deleted from sandbox.db?); "
                "showing its last known state",
                style="bold yellow",
            )
        else:
            self.row = row
            text = summary(row)
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

    def action_logs(self) -> None:
        open_logs(self.app, self.row.provider, self.row.instance_id)

    def action_raw_record(self) -> None:
        open_raw_record(self.app, self.row.provider, self.row.instance_id)
