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

KEYS: tuple[tuple[str, str], ...] = (
    ("1-4", "Ground truth · Orphans · Provider events · Alerts"),
    ("↑↓ j k PgUp PgDn g G", "move the cursor (it stays on the same row across refreshes)"),
    ("Enter", "thread detail of the selected lease (Esc back)"),
    ("/", "filter the current table; Enter keeps it, Esc clears it"),
    (": or ctrl+p", "jump: tabs, a lease / thread / instance by id, commands"),
    ("< >  i", "sort by previous / next column; invert the order"),
    ("space", "mark the row; actions apply to the marked rows, else the cursor row"),
    ("p  r", "pause / resume (greyed when it does not apply or in read-only mode)"),
    ("ctrl+d", "destroy: a dialog names each target, focus on Cancel; bulk: type the count"),
    ("a", "orphans: adopt as a LEON lease (optionally attached to a thread)"),
    (":audit", "the audit log of operator actions"),
    ("c", "copy the selected id (OSC 52; works over SSH)"),
    ("z  ctrl+r", "freeze / unfreeze updates; refresh now"),
    ("t", "provider events: cycle the time range"),
    ("f", "thread detail: follow new run events live"),
    ("?  q", "this help; quit"),
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

FILTERS: tuple[tuple[str, str], ...] = (
    ("paused", "rows containing 'paused' (case-insensitive)"),
    ("^lease-00[1-3]", "regex; an invalid regex is matched literally"),
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
        Text("\nGlyphs", style="bold"),
        Text(GLYPHS),
        Text("Gutter: > cursor row   * marked row"),
        Text("\nAlerts tab (4)", style="bold"),
        _pairs(ALERT_KEYS, 22),
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
