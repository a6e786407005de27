"""Thread detail's sections as Rich renderables (pure: rows in, tables out), and the section widget.

Tables take their natural width and the detail body scrolls sideways: squeezing them made Rich cut
key columns (`poin…`, `acti…`, a run's time). `SectionStatic` is as wide as its tables need: their
natural width when the screen has room, else the screen's width or, if more, what the key columns
need with free text (MAX_WIDTH) narrowed to FREE_MIN; free text gives way first, ids and times never.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from textual.geometry import Size
from textual.widgets import Static

from opcockpit.domain.models import GroundTruthRow, RunEventRecord, TerminalCommandRecord
from opcockpit.domain.timeutil import fmt_age
from opcockpit.services.history import HistoryEntry
from opcockpit.tui.data import ThreadDetail, clean
from opcockpit.tui.rows import GLYPH, fmt_resources, ts

__all__ = [
    "COMMAND_COLUMNS",
    "MAX_WIDTH",
    "RUN_EVENTS_SHOWN",
    "SectionStatic",
    "command_cells",
    "pointer_role",
    "render_run_events",
    "render_sections",
    "render_state_history",
    "section_width",
    "summary",
    "volume_line",
]

RUN_EVENTS_SHOWN = 40


# Tables take their natural width and the body scrolls sideways: squeezing them made Rich drop or
# crop whole columns (a state column silently vanishing is worse than scrolling). Free text is capped
# here, and is the first to give way on a narrow screen (see _DetailTable).
MAX_WIDTH = {"error / payload": 80, "command": 60, "data": 80, "error": 60, "cwd": 30, "detail": 80}


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


def _field(t: Text, label: str, value: str, style: str = "", width: int | None = None) -> None:
    t.append(f"\n{label:<{_LABEL_W}}", style="bold dim")
    if width is not None and width - _LABEL_W >= 20:
        # A long value wraps under the value column, not under the label (where it read as a
        # label glued to the next word).
        lines = textwrap.wrap(value, width - _LABEL_W, break_on_hyphens=False) or [""]
        value = ("\n" + " " * _LABEL_W).join(lines)
    t.append(value, style=style)


def summary(row: GroundTruthRow, width: int | None = None) -> Text:
    """The header card: a state badge set apart from the text, the key fields aligned, why in words.
    Plain Text (not a table) so an unchanged picture compares equal and is not redrawn; `width`
    (the screen's) wraps long values under their column."""
    row = clean(row)  # DB/provider text (reason, last_error, ids) made terminal-safe
    conv = row.convergence.value
    t = Text(no_wrap=False)
    t.append(f" {GLYPH.get(row.convergence, '?')} {conv} ", style=_BADGE.get(conv, "bold reverse"))
    t.append(f"  {row.lease_id}", style="bold")
    _field(t, "Provider", f"{row.provider}  instance {row.instance_id or '-'}", width=width)
    _field(
        t, "States", f"desired {row.desired_state} · observed {row.observed_state} · "
        f"provider {row.provider_state or '-'}", width=width,
    )  # fmt: skip
    flags = "  needs refresh" if row.needs_refresh else ""
    _field(t, "Lease", f"status {row.lease_status or '-'} · version {row.version}{flags}", width=width)
    _field(t, "Why", row.reason, "bold", width=width)
    if row.last_error and row.last_error not in row.reason:
        _field(t, "Error", row.last_error, "red", width=width)
    res = fmt_resources(row.resources)
    if res:
        _field(t, "Resources", res, width=width)
    if len(row.thread_ids) > 1:
        _field(t, "Threads", ", ".join(row.thread_ids), width=width)
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
        # not push the timestamps off an 80-100 column screen. The lease column is shown only when
        # a terminal is on another lease: repeating this lease's id made the table too wide at 100.
        other_lease = any(r.lease_id != d.lease_id for r in d.terminals)
        title = "Terminals (▸ active)" if other_lease else f"Terminals (▸ active; all on {d.lease_id})"
        columns = ["terminal", "lease", "cwd", "state v", "created", "updated", "pointer"]
        t = _table(title if d.terminals else "Terminals", [c for c in columns if other_lease or c != "lease"])
        for r in d.terminals:
            role = pointer_role(d, r.terminal_id)
            active = role.startswith("active")
            cells = [("▸ " if active else "  ") + r.terminal_id, r.lease_id, r.cwd, str(r.state_version)]
            if not other_lease:
                del cells[1]
            t.add_row(*cells, ts(r.created_at), ts(r.updated_at), role, style="bold" if active else "")
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


# --------------------------------------------------------------------------- width (issue 15)

FREE_MIN = 16  # free text narrower than this says nothing; below it the body scrolls instead
_UNBOUNDED = 10_000


def _parts(renderable: Any) -> list[Any]:
    return list(renderable.renderables) if isinstance(renderable, Group) else [renderable]


def _narrow_width(console: Console, table: _DetailTable) -> int:
    """The table's width with its free-text columns at most FREE_MIN: what its key columns need."""
    saved = [(c, c.max_width) for i, c in enumerate(table.columns) if i in table.free]
    try:
        for column, width in saved:
            column.max_width = min(width or FREE_MIN, FREE_MIN)
        return Measurement.get(console, console.options.update_width(_UNBOUNDED), table).maximum
    finally:
        for column, width in saved:
            column.max_width = width


def section_width(console: Console, renderable: Any, available: int) -> int:
    """How wide a section is drawn: natural if it fits `available`, else `available` or, when its
    key columns need more, that much (the body scrolls sideways; free text shrinks first)."""
    if isinstance(renderable, str):
        return available
    natural = Measurement.get(console, console.options.update_width(_UNBOUNDED), renderable).maximum
    if natural >= _UNBOUNDED:  # a table without rows or header measures as "all there is"
        return available
    if natural <= available:
        return natural
    tables = [p for p in _parts(renderable) if isinstance(p, _DetailTable)]
    need = max((_narrow_width(console, t) for t in tables), default=0)
    return max(available, need)


class SectionStatic(Static):
    """A section of the detail body, sized by `section_width` instead of the container's width
    (a plain Static measures at most the container and Rich then squeezes every column)."""

    def __init__(self, content: Any = "", **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.section: Any = content
        # (container width, width) for the current section: measuring a 40-row table costs tens
        # of ms and layout asks on every refresh; the answer changes only with content or width.
        self._width_for: tuple[int, int] | None = None

    def update(self, content: Any = "", *, layout: bool = True) -> None:
        self.section = content
        self._width_for = None
        super().update(content, layout=layout)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        available = container.width
        if self._width_for is None or self._width_for[0] != available:
            self._width_for = (available, section_width(self.app.console, self.section, available))
        return self._width_for[1]
