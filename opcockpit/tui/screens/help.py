"""`?` help: keys and the filter syntax."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from opcockpit.tui.screens.legend import legend_renderable

KEYS: tuple[tuple[str, str], ...] = (
    ("1-4", "Ground truth · Orphans · Provider events · Alerts"),
    ("↑↓ j k PgUp PgDn g G", "move the cursor (it stays on the same row across refreshes)"),
    ("Enter", "thread detail (Esc back; p r ctrl+d there act on its lease)"),
    ("/", "filter the current table; Enter keeps it, Esc clears it"),
    (": ctrl+p", "jump (:orphans, :thread ID, … below) · fuzzy palette"),
    ("< >  i", "sort by previous / next column; invert the order"),
    ("space ctrl+a u", "mark the row · mark all visible · unmark all (more below)"),
    ("p  r", "pause / resume; y or Enter confirms (a greyed key says why)"),
    ("ctrl+d", "destroy: a dialog names each target, focus on Cancel; bulk: type the count"),
    ("a", "orphans: adopt as a LEON lease (optionally attached to a thread)"),
    ("c", "copy the selected id (OSC 52; works over SSH)"),
    ("z  ctrl+r", "freeze / unfreeze updates; refresh now"),
    ("t", "provider events: cycle the time range"),
    ("f", "thread detail: follow new run events live"),
    ("?  q", "this help; quit"),
)

# Marks and `:` jumps in full (after the filter syntax, which must fit a 100x30 help box).
MARK_KEYS: tuple[tuple[str, str], ...] = (
    ("space", "mark / unmark the row (the status line counts marks, and the hidden ones)"),
    ("ctrl+space", "mark the range from the last mark to the cursor (k9s)"),
    ("ctrl+a  u", "mark all visible rows · unmark all"),
    (
        "actions",
        "apply to the visible marked rows, else the cursor row. Marked rows the filter hides are "
        "listed in the confirmation and left out unless you press h there",
    ),
)

JUMPS: tuple[tuple[str, str], ...] = (
    (":orphans :alerts", "go to the tab (also :events, :gt)"),
    (":thread ID", "thread detail (an id or a unique part of one)"),
    (":lease ID", "the lease's row in Ground truth (clears a filter that hides it)"),
    (":orphan ID", "the orphan's row in Orphans"),
    (":audit  :help", "the audit log of operator actions · this help"),
    (":ctx [NAME]", "switch context (another deployment's [contexts.NAME]): a list, or that one"),
    ("ctrl+p", "fuzzy palette: tabs, a lease / thread / instance by id, commands"),
)

# Listed after the filter syntax (the key list above already fills a 100x30 help box).
ALERT_KEYS: tuple[tuple[str, str], ...] = (
    (
        "A  M  U",
        "ack (comment) · mute (30m, 2h, until resolved) · unmute. They write the cockpit's "
        "own ledger, never the platform: allowed in read-only mode",
    ),
    ("h  o", "history of episodes · overview: runs by status, stuck runs, top errors, providers"),
    (
        "Enter",
        "alert detail; on an evidence row: jump to it (lease -> Ground truth, orphan -> "
        "Orphans, run/thread -> thread detail); on a stuck run: its thread detail",
    ),
)

# Detail views (issue 15), after the alerts keys for the same reason.
DETAIL_KEYS: tuple[tuple[str, str], ...] = (
    (
        "y  l",
        "the provider's raw record (Docker, E2B, Daytona, AgentBay; secrets masked) · logs "
        "(Docker/podman): on a ground-truth or orphan row, in thread and orphan detail",
    ),
    (
        "Enter",
        "Provider events: the event alone, every field and its whole payload (j YAML/JSON, "
        "c copies); Enter there: its lease's thread detail",
    ),
    ("]  [  -", "thread detail: next / previous section · fold it;  R earlier run · e events whole"),
    ("w", "thread detail: the shown run as a span waterfall (tool calls with durations, errors)"),
)

FILTERS: tuple[tuple[str, str], ...] = (
    ("paused", "rows containing 'paused' (case-insensitive)"),
    ("^lease-[0-3]", "regex, per cell (^ $ anchor at a cell); an invalid regex is matched literally"),
    ("!converged", "inverse: rows NOT containing 'converged'"),
    ("provider:e2b", "only in the column Provider (column key or label)"),
    ("state:diverged !provider:local", "terms combine with AND"),
)

GLYPHS = "✓ converged  ✗ diverged  ○ unbound  ↻ transitioning  ~ stale (dimmed, with age)  ? unknown"


def _pairs(rows: tuple[tuple[str, str], ...], key_width: int) -> Table:
    t = Table(box=None, expand=True, show_header=False, pad_edge=False)
    t.add_column(style="bold", no_wrap=True, width=key_width)
    t.add_column()
    for k, v in rows:
        t.add_row(k, v)
    return t


def help_renderable() -> Group:
    return Group(
        _pairs(KEYS, 22),
        Text("\nFilter (/): text · regex · !inverse · field:value", style="bold"),
        _pairs(FILTERS, 32),
        Text("\nMarks", style="bold"),
        _pairs(MARK_KEYS, 22),
        Text("\nJumps (:, k9s-style; a bad one says why)", style="bold"),
        _pairs(JUMPS, 22),
        Text("\nGlyphs", style="bold"),
        Text(GLYPHS),
        Text("Gutter: > cursor row   * marked row"),
        Text("\nAlerts tab (4)", style="bold"),
        _pairs(ALERT_KEYS, 22),
        Text("\nDetail views", style="bold"),
        _pairs(DETAIL_KEYS, 22),
        legend_renderable(),
    )


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static("opcockpit — keys", id="help-title")
            yield Static(help_renderable())

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
