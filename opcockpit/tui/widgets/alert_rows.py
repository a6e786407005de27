"""Alert rows for the Alerts tab and the alert detail: columns, cells, labels (tabs/alerts.py has the tab).

Alerts tab: active alerts, history (`h`), and the run/provider overview (`o`).

- Active: firing alerts keyed by episode id, unmuted first, then severity, then newest; muted rows
  are dimmed and say until when. History: every episode, newest first.
- Enter opens the alert detail (rule, threshold, evidence with a jump to the rows, deliveries).
- `A` ack (comment), `M` mute (30m / 2h / "until resolved"), `U` unmute. These write the cockpit's
  own ledger, never the platform, so they stay enabled in read-only mode (said in the prompts and
  in `?` help).
- Evaluation runs after each successful refresh in a worker, one at a time: a refresh that lands
  while one is running is kept (the newest only) and evaluated next, never in parallel.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opcockpit.domain.alerts import SEVERITY_RANK, Evidence, Severity
from opcockpit.domain.timeutil import fmt_age
from opcockpit.tui.rows import age_cell, bucket_age
from opcockpit.tui.table.model import Column

if TYPE_CHECKING:
    from opcockpit.ports.alert_records import Alert

__all__ = [
    "OFF_TEXT",
    "SEV_LABEL",
    "SUMMARY_MIN",
    "active_cells",
    "active_columns",
    "history_cells",
    "history_columns",
    "history_summary_width",
    "jump_target",
    "mute_text",
]

SEV_LABEL = {Severity.CRITICAL: "CRIT", Severity.WARNING: "warn", Severity.INFO: "info"}
VIEWS = ("alerts-table", "alerts-history", "alerts-overview")
OFF_TEXT = (
    "Alerts are off in this cockpit: it was started without an alert engine (no ledger).\n\n"
    "`opcockpit` and `opcockpit demo` evaluate the [alerts] rules after every refresh; "
    "`opcockpit alerts` does the same from a shell."
)


def _utc(ts: datetime | None) -> str:
    return "-" if ts is None else ts.astimezone(UTC).strftime("%m-%d %H:%M")


def _who(name: str | None) -> str:
    return (name or "?").split("@", 1)[0]


def mute_text(a: Alert, now: datetime) -> str:
    """ack/mute state in one short cell; glyphs so it survives NO_COLOR."""
    parts = []
    if a.is_muted(now):
        if a.mute_until_resolved and a.firing:
            parts.append("⊘ muted ⟂res")
        elif a.muted_until is not None:
            left = bucket_age((a.muted_until - now).total_seconds())
            parts.append(f"⊘ muted {fmt_age(left)}")
    if a.acked:
        parts.append(f"✓ack {_who(a.acked_by)}")
    return " ".join(parts)


def _sev(a: Alert, now: datetime) -> tuple[str, float]:
    """(label, sort rank): unmuted before muted, then severity, then newest fired first."""
    group = SEVERITY_RANK.get(a.severity, 9) + (10 if a.is_muted(now) else 0)
    return (SEV_LABEL.get(a.severity, str(a.severity)), group * 1e10 + (1e10 - a.fired_at.timestamp()))


def _sev_label(value: Any) -> str:
    return value[0] if isinstance(value, tuple) else str(value or "")


def _sev_sort(value: Any) -> Any:
    return value[1] if isinstance(value, tuple) else value


def _alert_tag(cells: tuple[Any, ...]) -> str | None:
    rank = _sev_sort(cells[0])
    if isinstance(rank, float) and rank >= 1e11:
        return "stale"  # muted: dimmed, still listed
    label = _sev_label(cells[0])
    return {"CRIT": "failed", "info": "unbound"}.get(label)


def _history_tag(cells: tuple[Any, ...]) -> str | None:
    return "stale" if cells[2] == "resolved" else _alert_tag(cells)


SUMMARY_MIN = 24
HISTORY_SUMMARY_MAX = 48  # history: beyond this the tail (times, ack) gets the room instead
RULE_W = 20  # the longest built-in rule name ("provider_unreachable")


def active_columns(summary_w: int = 40) -> list[Column]:
    # Everything but the summary is short (age <= "365d", ack/mute "⊘ muted 59m" / "✓ack bob"),
    # so the summary gets what is left and all columns stay on screen at 80.
    return [
        Column("sev", "Sev", 4, format=_sev_label, sort_key=_sev_sort),
        Column("id", "ID", 5, "right", format=lambda v: f"#{v}"),
        Column("rule", "Rule", RULE_W),
        Column("summary", "Summary", summary_w),
        Column("age", "Age", 4, "right", age_cell, flash=False),
        Column("state", "Ack / mute", 12),
    ]


def history_columns(summary_w: int = 40) -> list[Column]:
    # State before the summary: at 80 columns the tail (times, ack) scrolls sideways, not the state.
    return [
        Column("sev", "Sev", 4, format=_sev_label, sort_key=_sev_sort),
        Column("id", "ID", 5, "right", format=lambda v: f"#{v}"),
        Column("state", "State", 8),
        Column("rule", "Rule", RULE_W),
        Column("summary", "Summary", summary_w),
        Column("fired", "Fired (UTC)", 11, format=_utc),
        Column("lasted", "Lasted", 6, "right", age_cell, flash=False),
        Column("ack", "Ack / mute", 14),
    ]


def _fixed(columns: list[Column], *, before_summary: bool = False) -> int:
    """Cells the columns other than the summary take (only those left of it: before_summary)."""
    keys = [c.key for c in columns]
    cols = columns[: keys.index("summary")] if before_summary else columns
    return 1 + sum(c.width + 1 for c in cols if c.key != "summary") + 1


def history_summary_width(width: int) -> int:
    """History's tail scrolls sideways when narrow: the summary takes the screen up to a cap."""
    cols = history_columns()
    fit = width - _fixed(cols)
    head = width - _fixed(cols, before_summary=True)
    return max(SUMMARY_MIN, fit, min(HISTORY_SUMMARY_MAX, head))


def active_cells(a: Alert, now: datetime) -> tuple[Any, ...]:
    return (
        _sev(a, now),
        a.id,
        a.rule,
        a.summary,
        bucket_age((now - a.fired_at).total_seconds()),
        mute_text(a, now),
    )


def history_cells(a: Alert, now: datetime) -> tuple[Any, ...]:
    end = a.resolved_at or now
    return (
        _sev(a, now),
        a.id,
        a.state,
        a.rule,
        a.summary,
        a.fired_at,
        bucket_age((end - a.fired_at).total_seconds()),
        mute_text(a, now),
    )


def jump_target(ev: Evidence) -> str:
    """Where Enter on an evidence row goes (shown in the detail's evidence table)."""
    return {
        "lease": "→ Ground truth row",
        "resource_snapshot": "→ Ground truth row",
        "orphan": "→ Orphans row",
        "run": "→ thread detail",
        "thread": "→ thread detail",
        "lease_event": "→ thread detail",
        "provider": "→ its leases",
        "provider_event": "→ Provider events",
    }.get(ev.kind, "")
