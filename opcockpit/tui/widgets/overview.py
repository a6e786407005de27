"""Overview panel (Alerts tab, `o`): run stats by status, stuck runs, top errors, providers.

Fed with the `RunHealth` of each alert evaluation (events.db runs in the window + per-provider
sandbox counts from the ground truth). Three keyed tables, so a refresh updates rows in place.
Enter on a stuck run (or an error group) opens the thread detail of its thread; Enter on a
provider shows its leases in Ground truth.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from opcockpit.domain.runs import ErrorGroup, ProviderSandboxes, RunHealth, StuckRun
from opcockpit.domain.timeutil import fmt_age
from opcockpit.tui.rows import GLYPH, age_cell, age_of, fmt_ts
from opcockpit.tui.table.widget import Column, KeyedTable
from opcockpit.tui.widgets.error_headline import error_headline

__all__ = ["OverviewPanel", "error_cells", "flex_columns", "provider_cells", "runs_line", "stuck_cells"]

RUN_GLYPH = {"stuck": "⧗", "running": "▶", "completed": "✓", "error": "✗", "cancelled": "⊘"}
RUN_STYLE = {
    "stuck": "bold yellow",
    "running": "cyan",
    "completed": "green",
    "error": "bold red",
    "cancelled": "dim",
}
_ORDER = ("stuck", "running", "error", "cancelled", "completed")  # what needs eyes first


def flex_columns(
    columns: list[Column], width: int, key: str | None = None, minimum: int = 12
) -> list[Column]:
    """One column (default: the last) takes the width left over, so a table fits 80-100 columns
    instead of scrolling sideways (it still scrolls when even `minimum` does not fit)."""
    key = key or columns[-1].key
    fixed = 1 + sum(c.width + 1 for c in columns if c.key != key) + 2
    return [
        Column(c.key, c.label, max(minimum, width - fixed), c.align, c.format, c.sort_key, c.flash)
        if c.key == key
        else c
        for c in columns
    ]


STUCK_COLUMNS = [
    Column("idle", "Idle", 6, "right", age_cell, flash=False),
    Column("thread", "Thread", 20),
    Column("started", "Started (UTC)", 14, format=fmt_ts),
    Column("events", "Events", 6, "right"),
    Column("run", "Run", 36),
]
ERROR_COLUMNS = [
    Column("count", "Count", 6, "right"),
    Column("last", "Last", 5, "right", age_cell, flash=False),
    Column("threads", "Thr", 3, "right"),
    Column("error", "Error (normalised)", 60),
]
PROVIDER_COLUMNS = [
    Column("provider", "Provider", 12),
    Column("health", "Health", 14),
    Column("leases", "Leases", 6, "right"),
    Column("orphans", "Orph", 4, "right"),
    Column("convergence", "Convergence", 26),
    Column("states", "Provider states", 20),
]


def runs_line(rh: RunHealth | None) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    if rh is None:
        t.append(" runs: waiting for the first alert evaluation…", style="italic dim")
        return t
    window = fmt_age(rh.window_s)
    if rh.error is not None:  # unknown is not zero
        t.append(f" runs (last {window}): unavailable — {rh.error}", style="bold red")
        return t
    t.append(f" runs (last {window}) {rh.total}:", style="bold")
    for status in _ORDER:
        n = rh.by_status.get(status, 0)
        t.append(f"  {RUN_GLYPH[status]} {status} {n}", style=RUN_STYLE[status] if n else "dim")
    return t


def stuck_cells(s: StuckRun) -> tuple[Any, ...]:
    return (int(s.idle_s), s.thread_id, s.started_at, s.event_count, s.run_id)


def error_cells(g: ErrorGroup, now: datetime) -> tuple[Any, ...]:
    # The headline (status and cause in words) first: a narrow Error column cuts the dict's tail.
    return (g.count, age_of(g.last_seen, now), len(g.thread_ids), error_headline(g.signature))


def provider_cells(p: ProviderSandboxes) -> tuple[Any, ...]:
    glyph = {"ok": "✓", "error": "✗", "stale": "~", "db_only": "·"}.get(p.status, "?")
    health = f"{glyph} {p.status}"
    if p.status in ("stale", "error") and p.age_s is not None:
        health += f" {fmt_age(p.age_s, unknown='')}"
    conv = " ".join(f"{GLYPH.get(k, '?')}{k} {n}" for k, n in p.by_convergence.items())
    states = " ".join(f"{k} {n}" for k, n in p.by_provider_state.items())
    # The last value has no column: it only drives the row colour (_provider_tag).
    return (p.name, health, p.leases, p.orphans, conv, states, not p.healthy)


def _provider_tag(cells: tuple[Any, ...]) -> str | None:
    """Red when the provider is down or any of its leases diverged (ProviderSandboxes.healthy)."""
    return "diverged" if cells[-1] else None


class OverviewPanel(Vertical):
    """Run health and provider health; see the module docstring."""

    DEFAULT_CSS = """
    OverviewPanel { height: 1fr; }
    OverviewPanel > .ov-label { height: 1; background: $panel; color: $text-muted; text-style: bold; }
    OverviewPanel > #ov-runs { height: 1; }
    OverviewPanel > #ov-stuck, OverviewPanel > #ov-errors { height: 1fr; min-height: 3; }
    OverviewPanel > #ov-providers { height: auto; max-height: 8; }
    """

    class OpenThread(Message):
        """Enter on a stuck run or an error group: open the thread's detail."""

        def __init__(self, thread_id: str, run_id: str | None) -> None:
            super().__init__()
            self.thread_id = thread_id
            self.run_id = run_id

    class ShowProvider(Message):
        def __init__(self, provider: str) -> None:
            super().__init__()
            self.provider = provider

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_health: RunHealth | None = None
        self._errors: dict[str, ErrorGroup] = {}
        self._stuck_threads: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static(runs_line(None), id="ov-runs")
        yield Static(" Stuck runs (Enter: thread detail)", id="ov-stuck-label", classes="ov-label")
        yield KeyedTable(
            STUCK_COLUMNS, markable=False, empty_text="no stuck runs", id="ov-stuck", flash_seconds=0
        )
        yield Static(" Top errors (Enter: thread of the newest)", id="ov-errors-label", classes="ov-label")
        yield KeyedTable(
            ERROR_COLUMNS,
            markable=False,
            empty_text="no errors in the window",
            id="ov-errors",
            flash_seconds=0,
        )
        yield Static(" Providers (Enter: their leases in Ground truth)", classes="ov-label")
        yield KeyedTable(
            PROVIDER_COLUMNS,
            markable=False,
            row_tag=_provider_tag,
            empty_text="no providers",
            id="ov-providers",
            flash_seconds=0,
        )

    def on_mount(self) -> None:
        self.stuck_table.sort_by("idle", reverse=True)
        self.errors_table.sort_by("count", reverse=True)

    def on_resize(self) -> None:
        width = self.size.width
        self.stuck_table.set_columns(flex_columns(STUCK_COLUMNS, width))
        self.errors_table.set_columns(flex_columns(ERROR_COLUMNS, width))
        self.providers_table.set_columns(flex_columns(PROVIDER_COLUMNS, width))

    @property
    def stuck_table(self) -> KeyedTable:
        return self.query_one("#ov-stuck", KeyedTable)

    @property
    def errors_table(self) -> KeyedTable:
        return self.query_one("#ov-errors", KeyedTable)

    @property
    def providers_table(self) -> KeyedTable:
        return self.query_one("#ov-providers", KeyedTable)

    def tables(self) -> tuple[KeyedTable, ...]:
        return (self.stuck_table, self.errors_table, self.providers_table)

    def focused_table(self) -> KeyedTable:
        focused = self.app.focused if self.is_attached else None
        for table in self.tables():
            if table is focused:
                return table
        return self.stuck_table

    def show(self, rh: RunHealth | None) -> None:
        """Rows by key: replace() diffs against what is shown (no clear, cursor kept)."""
        self.run_health = rh
        self.query_one("#ov-runs", Static).update(runs_line(rh))
        if rh is None:
            return
        now = rh.generated_at
        self.query_one("#ov-stuck-label", Static).update(
            f" Stuck runs {len(rh.stuck)}: no event for > {fmt_age(rh.stuck_after_s)} (Enter: thread detail)"
        )
        self._stuck_threads = {s.run_id: s.thread_id for s in rh.stuck}
        self._errors = {g.signature: g for g in rh.top_errors}
        self.stuck_table.replace({s.run_id: stuck_cells(s) for s in rh.stuck})
        self.errors_table.replace({g.signature: error_cells(g, now) for g in rh.top_errors})
        self.providers_table.replace({p.name: provider_cells(p) for p in rh.providers})
        label = " Top errors (Enter: thread of the newest)"
        if rh.error is not None:
            label = " Top errors: unknown (events.db unavailable)"
        self.query_one("#ov-errors-label", Static).update(label)

    def on_keyed_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        table_id = event.table.id
        if table_id not in ("ov-stuck", "ov-errors", "ov-providers"):
            return
        event.stop()
        if table_id == "ov-stuck":
            thread = self._stuck_threads.get(event.key)
            if thread:
                self.post_message(self.OpenThread(thread, event.key))
        elif table_id == "ov-errors":
            group = self._errors.get(event.key)
            if group and group.thread_ids:
                run = group.run_ids[0] if group.run_ids else None
                self.post_message(self.OpenThread(group.thread_ids[0], run))
        else:
            self.post_message(self.ShowProvider(event.key))
