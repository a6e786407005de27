"""GroundTruth -> keyed table cells (no Textual import: usable by the bench and tests).

Times are shown as coarse ages relative to the snapshot's `generated_at` (never the wall clock),
bucketed so an age cell's text changes only when its bucket moves. The ground-truth and orphan
cells hold the times themselves (`AgeStamp`, tui/table/ages.py) and the table paints their ages
for the rows on screen: a 10k-row table sees no "change" at all just because time passed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from opcockpit.domain.models import Convergence, GroundTruth, GroundTruthRow, OrphanRow, Resources
from opcockpit.domain.timeutil import fmt_age

# bucket_age lives with the painted ages; widgets (alert rows, overview) import it from here.
from opcockpit.tui.table.ages import bucket_age, stamp
from opcockpit.tui.table.model import FrozenCells

GLYPH: dict[str, str] = {
    Convergence.CONVERGED: "✓",
    Convergence.DIVERGED: "✗",
    Convergence.UNBOUND: "○",
    Convergence.TRANSITIONING: "↻",
    Convergence.STALE: "~",
    Convergence.UNKNOWN: "?",
}

STALE_OLD_S = 300.0  # stale rows older than this are dimmed further


def fmt_ts(value: Any) -> str:
    """A timestamp cell: `MM-DD HH:MM:SS` in UTC ("" for anything that is not a datetime)."""
    if not isinstance(value, datetime):
        return ""
    return (value.astimezone(UTC) if value.tzinfo else value).strftime("%m-%d %H:%M:%S")


def age_cell(seconds: Any) -> str:
    """A table cell's age: THE age format (domain.timeutil.fmt_age), empty when unknown."""
    return fmt_age(seconds, unknown="")


def ts(value: Any) -> str:
    """UTC, month-day and time: the year is noise in an incident and costs 5 columns at 80x24."""
    if value is None:
        return "-"
    return (value.astimezone(UTC) if value.tzinfo else value).strftime("%m-%d %H:%M:%S")


def age_of(ts: datetime | None, now: datetime) -> int | None:
    return None if ts is None else bucket_age((now - ts).total_seconds())


def fmt_convergence(value: Any) -> str:
    return f"{GLYPH.get(value, '?')} {value}" if value else ""


def fmt_bool(value: Any) -> str:
    return "yes" if value else ""


def _num(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    if unit == "M" and v >= 1024:
        return f"{v / 1024:.1f}G"
    return f"{v:g}{unit}" if v == int(v) else f"{v:.1f}{unit}"


def fmt_resources(r: Resources | None) -> str | None:
    if r is None:
        return None
    cpu = _num(r.cpu_used) if r.cpu_used is not None else _num(r.cpu_count)
    mem_total = r.memory_total_mb if r.memory_total_mb is not None else r.memory_mb
    mem = f"{_num(r.memory_used_mb, 'M')}/{_num(mem_total, 'M')}"
    out = f"cpu {cpu} mem {mem}"
    return out + " !probe" if r.probe_error else out


# ----------------------------------------------------------------------- ground-truth rows

# (key, label, width, align, kind) — kind picks the formatter in the TUI; order = display order.
GT_COLUMNS: tuple[tuple[str, str, int, str, str], ...] = (
    ("convergence", "State", 17, "left", "convergence"),
    ("lease_id", "Lease", 18, "left", "text"),
    ("provider", "Provider", 9, "left", "text"),
    # Reason right after the identity columns: it is the one column that says what is wrong, and
    # at 80 columns everything after the fourth column is off screen.
    ("reason", "Reason", 40, "left", "text"),
    ("desired", "Desired", 9, "left", "text"),
    ("observed", "Observed", 9, "left", "text"),
    ("provider_state", "Provider st.", 13, "left", "text"),
    ("thread_id", "Thread", 18, "left", "text"),
    ("instance_id", "Instance", 16, "left", "text"),
    ("chat_session_id", "Session", 16, "left", "text"),
    ("last_active", "Active", 6, "right", "age"),
    ("lease_status", "Lease st.", 10, "left", "text"),
    ("version", "Ver", 4, "right", "text"),
    ("needs_refresh", "Rfsh", 4, "left", "bool"),
    ("last_error", "Last error", 30, "left", "text"),
    ("resources", "Resources", 26, "left", "text"),
    ("updated", "Updated", 7, "right", "age"),
    ("source", "Source", 14, "left", "text"),
    ("stale_age", "Stale", 6, "right", "age"),
    ("threads", "Threads", 30, "left", "text"),
)
GT_INDEX = {c[0]: i for i, c in enumerate(GT_COLUMNS)}


def gt_cell_tuple(row: GroundTruthRow) -> tuple[Any, ...]:
    """A row's cells as a tuple (GtCells' iteration; the table's once it paints the row)."""
    thread = row.thread_id
    if thread and len(row.thread_ids) > 1:
        thread = f"{thread} +{len(row.thread_ids) - 1}"
    return (
        row.convergence,
        row.lease_id,
        row.provider,
        row.reason,
        row.desired_state,
        row.observed_state,
        row.provider_state,
        thread,
        row.instance_id,
        row.chat_session_id,
        stamp(row.last_active),
        row.lease_status,
        row.version,
        row.needs_refresh,
        row.last_error,
        fmt_resources(row.resources),
        stamp(row.updated_at),
        row.source,
        bucket_age(row.stale_age_s),
        ", ".join(row.thread_ids) or None,
    )


class GtCells(FrozenCells):
    """A ground-truth row's cells, made from the row when read (the table keeps this object and
    turns it into a tuple once it makes the row's texts, i.e. paints it). A tuple per row, its
    two AgeStamps and its resources text were ~3.5 MB at 10k leases (tracemalloc; issue 10, RSS),
    for rows nobody scrolls to. Equal to the tuple of its cells, and to another row's cells of
    the same values."""

    __slots__ = ("row",)

    def __init__(self, row: GroundTruthRow) -> None:
        self.row = row

    def __len__(self) -> int:
        return len(GT_COLUMNS)

    # A cell read alone makes them all: the table reads cells one by one only of rows it painted
    # (tuples by then), and sorts by one cell per changed row.
    def __getitem__(self, i: Any) -> Any:
        return gt_cell_tuple(self.row)[i]

    def __iter__(self) -> Iterator[Any]:
        return iter(gt_cell_tuple(self.row))

    def __eq__(self, other: object) -> bool:
        if other.__class__ is GtCells:
            return other.row is self.row or gt_cell_tuple(self.row) == gt_cell_tuple(other.row)  # type: ignore[attr-defined]
        if isinstance(other, tuple):
            return gt_cell_tuple(self.row) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(gt_cell_tuple(self.row))

    def __repr__(self) -> str:
        return f"GtCells{gt_cell_tuple(self.row)!r}"


def gt_cells(row: GroundTruthRow, now: datetime) -> GtCells:
    """A row's cells. `now` is unused since the ages are painted (AgeStamp), but kept: the
    stale age is the row's own, and callers pass the snapshot's time."""
    return GtCells(row)


def gt_table(gt: GroundTruth) -> dict[str, GtCells]:
    now = gt.generated_at
    return {r.lease_id: gt_cells(r, now) for r in gt.rows}


def gt_row_tag(cells: tuple[Any, ...]) -> str | None:
    conv = cells[0]
    if isinstance(conv, OpMark):
        return "failed" if conv.startswith(FAILED_GLYPH) else "pending"
    if conv == Convergence.DIVERGED:
        return "diverged"
    if conv == Convergence.STALE:
        age = cells[GT_INDEX["stale_age"]]
        return "stale-old" if age is not None and age >= STALE_OLD_S else "stale"
    if conv == Convergence.TRANSITIONING:
        return "transitioning"
    if conv in (Convergence.UNBOUND, Convergence.UNKNOWN):
        return "unbound"
    return None


# ----------------------------------------------------------------------- orphan rows

# Widths so the id an operator copies is never cut: Instance fits a Daytona UUID (36), and at 80
# columns Status+Provider+Instance+State ("running (started)") fit; at 100 the claimed lease
# (LEON's lease-<12 hex>, 18) fits too. Status 13 = "? unconfirmed"; Provider 8 = "agentbay".
OR_COLUMNS: tuple[tuple[str, str, int, str, str], ...] = (
    ("status", "Status", 13, "left", "text"),
    ("provider", "Provider", 8, "left", "text"),
    ("instance_id", "Instance", 36, "left", "text"),
    ("state", "State", 17, "left", "text"),
    ("claimed_lease_id", "Claims lease", 18, "left", "text"),
    ("claim", "Claim", 22, "left", "text"),
    ("created", "Age", 6, "right", "age"),
    ("name", "Name", 20, "left", "text"),
    ("labels", "Labels", 40, "left", "text"),
    ("resources", "Resources", 20, "left", "text"),
)

CLAIM_TEXT = {
    "lease_exists": "lease exists",
    "lease_points_elsewhere": "lease points elsewhere",
    "lease_missing": "lease missing",
}


def orphan_status(o: OrphanRow) -> str:
    if o.confirmed is False:
        return "? unconfirmed"
    if o.confirmed is True:
        return "✗ confirmed"
    return "✗ orphan"


def orphan_cells(o: OrphanRow, now: datetime) -> tuple[Any, ...]:
    state = o.provider_state
    if o.raw_state not in ("", o.provider_state):
        state = f"{state} ({o.raw_state})"
    res = None
    if o.resources is not None:
        res = f"cpu {_num(o.resources.cpu_count)} mem {_num(o.resources.memory_mb, 'M')}"
    return (
        orphan_status(o),
        o.provider,
        o.instance_id,
        state,
        o.claimed_lease_id,
        CLAIM_TEXT.get(o.claim or "", o.claim),
        stamp(o.created_at),
        o.name,
        ",".join(f"{k}={v}" for k, v in sorted(o.labels.items())) or None,
        res,
    )


def orphan_table(gt: GroundTruth) -> dict[str, tuple[Any, ...]]:
    now = gt.generated_at
    return {o.key: orphan_cells(o, now) for o in gt.orphans}


def orphan_row_tag(cells: tuple[Any, ...]) -> str | None:
    status = str(cells[0])
    if status.startswith(PENDING_GLYPH):
        return "pending"
    if status.startswith(FAILED_GLYPH):
        return "failed"
    return "unbound" if status.startswith("?") else "diverged"


# ----------------------------------------------------------------------- header counts


def counts(gt: GroundTruth) -> Mapping[str, int]:
    out: dict[str, int] = {c.value: 0 for c in Convergence}
    for r in gt.rows:
        out[r.convergence.value] += 1
    return out


# ----------------------------------------------------------------------- optimistic overlay
#
# An operator action shows at once: the row displays the intended state with a pending marker
# (⧗) until an observation confirms it, or the real state with the error when it failed. The
# overlay is applied to the cells only; the GroundTruth itself is never edited (never lie about
# the fleet: the marker says "requested", not "is").

PENDING_GLYPH = "⧗"
FAILED_GLYPH = "✗!"
_VERB_ING = {"pause": "pausing", "resume": "resuming", "destroy": "destroying", "adopt": "adopting"}


class OpMark(str):
    """A state-column value that is an operation marker, not a Convergence (shown as is)."""

    __slots__ = ()


def fmt_state(value: Any) -> str:
    if isinstance(value, OpMark):
        return str(value)
    return fmt_convergence(value)


def fmt_state_glyph(value: Any) -> str:
    """The State cell at 80 columns: the glyph only (`?` help's legend says what each means)."""
    if isinstance(value, OpMark):
        return str(value).split(" ", 1)[0]
    return GLYPH.get(value, "?") if value else ""


def pending_mark(action: str) -> OpMark:
    return OpMark(f"{PENDING_GLYPH} {_VERB_ING.get(action, action)}")


def failed_mark(action: str) -> OpMark:
    return OpMark(f"{FAILED_GLYPH} {action} failed")


def overlay_gt(
    cells: tuple[Any, ...], action: str, intended: str | None, status: str, note: str | None
) -> tuple[Any, ...]:
    """Ground-truth cells with an operation shown: pending (intended state) or failed (error)."""
    out = list(cells)
    if status == "pending":
        out[GT_INDEX["convergence"]] = pending_mark(action)
        if intended:
            out[GT_INDEX["provider_state"]] = f"{PENDING_GLYPH} {intended}"
        out[GT_INDEX["reason"]] = note or f"{action} requested; waiting for the provider to confirm"
    else:
        out[GT_INDEX["convergence"]] = failed_mark(action)
        out[GT_INDEX["reason"]] = f"{action} failed: {note}" if note else f"{action} failed"
        if note:
            out[GT_INDEX["last_error"]] = note
    return tuple(out)


OR_INDEX = {c[0]: i for i, c in enumerate(OR_COLUMNS)}


def overlay_orphan(
    cells: tuple[Any, ...], action: str, intended: str | None, status: str, note: str | None
) -> tuple[Any, ...]:
    out = list(cells)
    if status == "pending":
        out[OR_INDEX["status"]] = str(pending_mark(action))
        if intended:
            out[OR_INDEX["state"]] = f"{PENDING_GLYPH} {intended}"
        out[OR_INDEX["claim"]] = note or f"{action} requested"
    else:
        out[OR_INDEX["status"]] = str(failed_mark(action))
        out[OR_INDEX["claim"]] = f"{action} failed: {note}" if note else f"{action} failed"
    return tuple(out)
