"""Alert rows for the Alerts tab and the alert detail: columns, cells, labels (tabs/alerts.py has the tab).

Alerts tab: active alerts, history (`h`), and the run/provider overview (`o`).

- Active: firing alerts keyed by episode id, unmuted first, then severity, then newest; muted rows
  are dimmed and say until when. Alerts of the same rule and provider are one group row
  (Alertmanager-style, `▸576` = 576 members; Enter unfolds it to its members, keyed by id, under
  it); a group of one is just its alert. History: every episode, newest first.
- Enter opens the alert detail (rule, threshold, evidence with a jump to the rows, deliveries).
- `A` ack (comment), `M` mute (30m / 2h / "until resolved"), `U` unmute. These write the cockpit's
  own ledger, never the platform, so they stay enabled in read-only mode (said in the prompts and
  in `?` help).
- Evaluation runs after each successful refresh in a worker, one at a time: a refresh that lands
  while one is running is kept (the newest only) and evaluated next, never in parallel.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from opcockpit.domain.alerts import SEVERITY_RANK, Evidence, Severity
from opcockpit.domain.timeutil import fmt_age
from opcockpit.tui.rows import age_cell, bucket_age
from opcockpit.tui.table.ages import AgeStamp
from opcockpit.tui.table.model import Column

if TYPE_CHECKING:
    from opcockpit.ports.alert_records import Alert

__all__ = [
    "GROUP_PREFIX",
    "OFF_TEXT",
    "SEV_LABEL",
    "SUMMARY_MIN",
    "AlertGroup",
    "active_cells",
    "active_columns",
    "active_rows",
    "group_alerts",
    "history_cells",
    "history_columns",
    "history_summary_width",
    "jump_target",
    "mute_text",
    "rows_valid_until",
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
    # (label, rank) or (label, rank, place): `place` keeps a group's members right under it
    if isinstance(value, tuple):
        return value[2] if len(value) > 2 else value[1]
    return value


def _alert_tag(cells: tuple[Any, ...]) -> str | None:
    rank = cells[0][1] if isinstance(cells[0], tuple) else cells[0]
    if isinstance(rank, float) and rank >= 1e11:
        return "stale"  # muted: dimmed, still listed
    label = _sev_label(cells[0])
    return {"CRIT": "failed", "info": "unbound"}.get(label)


def _history_tag(cells: tuple[Any, ...]) -> str | None:
    return "stale" if cells[2] == "resolved" else _alert_tag(cells)


FIRING_LABEL = "Firing"
SUMMARY_MIN = 24
HISTORY_SUMMARY_MAX = 48  # history: beyond this the tail (times, ack) gets the room instead
RULE_W = 20  # the longest built-in rule name ("provider_unreachable")


def active_columns(summary_w: int = 40) -> list[Column]:
    # Everything but the summary is short (age <= "365d", ack/mute "⊘ muted 59m" / "✓ack bob"),
    # so the summary gets what is left and all columns stay on screen at 80.
    return [
        Column("sev", "Sev", 4, format=_sev_label, sort_key=_sev_sort),
        Column("id", "ID", 5, "right", format=_id_text),
        Column("rule", "Rule", RULE_W),
        Column("summary", "Summary", summary_w),
        # "Firing": how long it has fired (since fired_at), THE age format: the CLI's `opcockpit
        # alerts` has the same column under the same name (cli/alerts_cli.py FIRING_LABEL).
        Column("age", FIRING_LABEL, 6, "right", age_cell, flash=False),
        Column("state", "Ack / mute", 12),
    ]


def history_columns(summary_w: int = 40) -> list[Column]:
    # State before the summary: at 80 columns the tail (times, ack) scrolls sideways, not the state.
    return [
        Column("sev", "Sev", 4, format=_sev_label, sort_key=_sev_sort),
        Column("id", "ID", 5, "right", format=_id_text),
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


def _id_text(value: Any) -> str:
    return f"#{value}" if isinstance(value, int) else str(value)  # a group: "▸576"


def active_cells(a: Alert, now: datetime, place: str | None = None, indent: str = "") -> tuple[Any, ...]:
    """An alert's row. "Firing" holds the time it fired (an AgeStamp, painted as its age at the
    table's `now` for the rows on screen): time passing changes no cell, so a round that changed
    no alert rebuilds no row (issue 10, the idle tick)."""
    label, rank = _sev(a, now)
    return (
        (label, rank) if place is None else (label, rank, place),
        a.id,
        a.rule,
        indent + a.summary,
        AgeStamp(a.fired_at),
        mute_text(a, now),
    )


def rows_valid_until(alerts: Iterable[Alert], now: datetime) -> datetime:
    """Until when `active_rows(..., now)` of these alerts stays the same rows: the earliest moment
    a mute's time left moves to its next text or a mute ends (the rows read the time only through
    mutes; the Firing ages are painted, not held). The Alerts tab rebuilds nothing before it."""
    until = datetime.max.replace(tzinfo=UTC)
    for a in alerts:
        if a.muted_until is not None and a.muted_until > now:
            # "muted 12m" shows bucket_age(time left): it changes once the time left drops below
            # that bucket (and the row's severity group once the mute ends, later still).
            shown = bucket_age((a.muted_until - now).total_seconds()) or 0
            until = min(until, a.muted_until - timedelta(seconds=shown))
    return until if until > now else now + timedelta(seconds=1)


# ----------------------------------------------------------------------------- groups

GROUP_PREFIX = "group:"


def group_provider(a: Alert) -> str:
    """The provider an alert is about: its scope, unless the scope is a source ("@events_db")."""
    return a.scope if a.scope and not a.scope.startswith("@") else "-"


@dataclass(frozen=True, slots=True)
class AlertGroup:
    """Firing alerts of one rule at one provider (Alertmanager's group_by: [rule, provider])."""

    key: str  # row key: "group:<rule>:<provider>"
    rule: str
    provider: str
    members: tuple[Alert, ...]  # worst first: unmuted, severity, newest

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(a.id for a in self.members)

    def muted(self, now: datetime) -> int:
        return sum(1 for a in self.members if a.is_muted(now))

    def acked(self) -> int:
        return sum(1 for a in self.members if a.acked)

    def title(self) -> str:
        where = f" at {self.provider}" if self.provider != "-" else ""
        return f"{len(self.members)} {self.rule} alerts{where}"


def group_alerts(alerts: Iterable[Alert], now: datetime) -> list[AlertGroup]:
    acc: dict[tuple[str, str], list[Alert]] = {}
    for a in alerts:
        acc.setdefault((a.rule, group_provider(a)), []).append(a)
    out = []
    for (rule, provider), members in acc.items():
        members.sort(key=lambda a: (_sev(a, now)[1], a.id))
        out.append(AlertGroup(f"{GROUP_PREFIX}{rule}:{provider}", rule, provider, tuple(members)))
    return out


def _place(rank: float, group_key: str, member: int | None = None) -> str:
    # A sort value as text: the group's rank, then its key, then the member's position, with \x01
    # between (below every printable character) so a group's members sort right after it and
    # before any other group, whatever their own rank.
    head = f"{rank:020.3f}\x01{group_key}"
    return head if member is None else f"{head}\x01{member:06d}"


def group_cells(g: AlertGroup, now: datetime, expanded: bool) -> tuple[Any, ...]:
    lead = g.members[0]
    label, rank = _sev(lead, now)
    n = len(g.members)
    oldest = min(a.fired_at for a in g.members)
    newest = max(g.members, key=lambda a: a.fired_at)
    where = f" at {g.provider}" if g.provider != "-" else ""
    muted, acked = g.muted(now), g.acked()
    state = " ".join(
        part
        for part in (
            f"⊘ {muted}/{n}" if muted else "",
            f"✓ack {acked}/{n}" if acked else "",
        )
        if part
    )
    return (
        (label, rank, _place(rank, g.key)),
        f"{'▾' if expanded else '▸'}{n}",
        g.rule,
        f"{n} alerts{where} · newest: {newest.summary}",
        AgeStamp(oldest),  # the longest-firing member
        state,
    )


def active_rows(
    groups: Iterable[AlertGroup], now: datetime, expanded: set[str]
) -> dict[str, tuple[Any, ...]]:
    """The active table: a group of one is its alert; a bigger group is one row, plus its members
    (indented) when unfolded."""
    rows: dict[str, tuple[Any, ...]] = {}
    for g in groups:
        lead_rank = _sev(g.members[0], now)[1]
        if len(g.members) == 1:
            a = g.members[0]
            rows[str(a.id)] = active_cells(a, now, _place(lead_rank, g.key))
            continue
        unfolded = g.key in expanded
        rows[g.key] = group_cells(g, now, unfolded)
        if unfolded:
            for i, a in enumerate(g.members):
                rows[str(a.id)] = active_cells(a, now, _place(lead_rank, g.key, i), indent="└ ")
    return rows


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
