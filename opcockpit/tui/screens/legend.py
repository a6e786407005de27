"""The `?` help's legend: the short forms narrow screens use, in words (issue 15), and the table
keys for columns and sorting. A section of its own so the help's key list can change apart."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

__all__ = ["LEGEND", "TABLE_KEYS", "legend_renderable"]

# The short forms a narrow (80-column) screen uses, in words. Wide terminals print most of them as
# words already (header counts, slow ticks, the State column); this is where 80 columns decode them.
LEGEND: tuple[tuple[str, str], ...] = (
    (
        "✓ ✗ ○ ↻ ~ ?",
        "State: converged · diverged · unbound · transitioning · stale · unknown "
        '(at 80 columns the State column shows the glyph only, under "St")',
    ),
    (
        "○ unbound",
        "the lease should run but its instance is gone (no instance bound to it) "
        "or it has no instance yet: nothing is running for it",
    ),
    ("⧗ pausing", "an action was sent and waits for the provider to confirm (glyph ⧗ at 80)"),
    ("✗! pause failed", "the last action on the row failed; Reason says why (glyph ✗! at 80)"),
    ("⚠ 1c 2w", "header: unmuted firing alerts, 1 critical and 2 warning (i = info); ⚠0 none"),
    (
        "(-1)",
        "header: 1 refresh tick dropped because the previous one was still running "
        '(slow sources); wide terminals say "1 slow ticks dropped"',
    ),
    (
        "docker ✓ · ✗ ~",
        "header, per provider: listed ok · db-only (no API) · listing failed · "
        "stale (last good listing, with its age)",
    ),
    ("!probe", "Resources: the resource probe of that instance failed; the figures are the last known"),
    ("✗ confirmed", "Orphans: the provider confirmed the instance exists and no lease accounts for it"),
    (
        "? unconfirmed",
        "Orphans: seen once, not yet confirmed by a second listing (eventually "
        "consistent providers); do not destroy yet",
    ),
    ("✗ orphan", "Orphans: an instance no lease accounts for"),
    ("⊘ muted 59m", "Alerts: muted for 59 more minutes (⟂res: until resolved)"),
    ("✓ack bob", "Alerts: acknowledged by bob"),
    ("▸3 / ▾3", "Alerts: a group of 3 alerts (same rule and provider), folded / unfolded"),
    ("Firing", "Alerts: how long the alert has fired (same column in `opcockpit alerts`)"),
    ("◂ ▸", "table header: more columns to the left / right (→ ← scroll a whole column)"),
)

# Keys of the tables themselves (columns, sorting); shown with the legend.
TABLE_KEYS: tuple[tuple[str, str], ...] = (
    ("→ ←", "scroll one column right / left; the Lease (Instance) column stays pinned"),
    ("S  F6", "sort by a column picked from a list (on the current one: invert)"),
    ("C", "choose the columns of this view (saved per view in the UI state file)"),
)


def legend_renderable() -> Group:
    """The `?` help's "Short forms" section (and the table keys that go with it)."""
    return Group(
        Text("\nColumns and sorting", style="bold"),
        _two_columns(TABLE_KEYS, 22),
        Text("\nShort forms", style="bold"),
        _two_columns(LEGEND, 22),
    )


def _two_columns(rows: tuple[tuple[str, str], ...], key_width: int) -> Table:
    t = Table(box=None, expand=True, show_header=False, pad_edge=False)
    t.add_column(style="bold", no_wrap=True, width=key_width)
    t.add_column()
    for k, v in rows:
        t.add_row(k, v)
    return t
