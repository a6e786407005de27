"""Timestamps from the future: the sign that sandbox.db's naive local times are read in the wrong zone.

LEON writes `datetime.now()` without a zone. The readers interpret it in `[sources] timezone` (default:
this host's zone); when LEON ran at UTC+8 and the cockpit reads at UTC, every `last_active` sits 8 h
ahead of the clock, ages show 0s and "last 15m" windows match the wrong events. Nothing in the data
can say which zone is right, so the cockpit warns instead of guessing (pure: rows and a clock in).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from opcockpit.domain.models import GroundTruth, GroundTruthRow
from opcockpit.domain.timeutil import fmt_age

__all__ = ["DEFAULT_SKEW_S", "FutureStamps", "future_timestamp_warning", "snapshot_warnings"]

# Clocks of two hosts drift and LEON stamps before it commits: only beyond this is it the zone.
DEFAULT_SKEW_S = 300.0


def _ahead(row: GroundTruthRow, now: datetime, skew_s: float) -> bool:
    """Whether this lease counts in `future_timestamp_warning` at `now`."""
    for ts in (row.last_active, row.updated_at):
        if ts is not None and (ts - now).total_seconds() > skew_s:
            return True
    return False


def future_timestamp_warning(
    rows: Iterable[GroundTruthRow], now: datetime, *, skew_s: float = DEFAULT_SKEW_S
) -> str | None:
    """One line when some lease's `last_active`/`updated_at` is more than `skew_s` after `now`
    (None when none is). Names how many and how far, and what to set."""
    count = 0
    worst = 0.0
    # Compared as datetimes against one bound (a 10k-row snapshot makes 20k of these): only the
    # leases past it pay for a difference.
    bound = now + timedelta(seconds=skew_s)
    for row in rows:
        for ts in (row.last_active, row.updated_at):
            if ts is not None and ts > bound:
                ahead = (ts - now).total_seconds()
                if ahead > skew_s:
                    count += 1
                    worst = max(worst, ahead)
                    break  # one per lease: the count is of leases
    if not count:
        return None
    leases = "lease" if count == 1 else "leases"
    return (
        f"sandbox.db timestamps are up to {fmt_age(worst)} in the future ({count} {leases}): "
        "LEON's naive local times are read in the wrong zone; set [sources] timezone"
    )


class FutureStamps:
    """`future_timestamp_warning` over a set of leases kept by change (the live header).

    Walking all rows each refresh was ~6 % of the cockpit's CPU at 10k leases, for a warning that
    is almost always off. Only leases ahead of the clock when they were put (or last looked at) are
    kept; the clock moves forward, so a lease that is not ahead now never becomes ahead later
    unless its row changes (then it is put again). `warning(now)` re-checks just those and equals
    the full function over every lease put and not removed, as long as `now` never goes back
    between puts and calls: the owner (tui/rowdelta.RowCells) calls `reset` and puts every row
    again when its clock goes backwards.
    """

    def __init__(self, skew_s: float = DEFAULT_SKEW_S) -> None:
        self.skew_s = skew_s
        self._ahead: dict[str, GroundTruthRow] = {}
        self._memo: tuple[datetime, str | None] | None = None  # (now, warning) of the last call

    def reset(self) -> None:
        self._ahead.clear()
        self._memo = None

    def put(self, key: str, row: GroundTruthRow, now: datetime) -> None:
        """Lease `key` is now `row` (new or changed), seen at `now`."""
        if _ahead(row, now, self.skew_s):
            self._ahead[key] = row
            self._memo = None
        elif self._ahead.pop(key, None) is not None:
            self._memo = None

    def remove(self, key: str) -> None:
        if self._ahead.pop(key, None) is not None:
            self._memo = None

    def warning(self, now: datetime) -> str | None:
        """`future_timestamp_warning(rows, now)` of the current rows (cost: the leases ahead)."""
        if self._memo is not None and self._memo[0] == now:
            return self._memo[1]
        for key in [k for k, r in self._ahead.items() if not _ahead(r, now, self.skew_s)]:
            del self._ahead[key]  # behind the clock now; it stays behind as the clock moves on
        line = future_timestamp_warning(self._ahead.values(), now, skew_s=self.skew_s)
        self._memo = (now, line)
        return line


def snapshot_warnings(gt: GroundTruth, *, skew_s: float = DEFAULT_SKEW_S) -> tuple[str, ...]:
    """The warnings a snapshot carries (empty: none; the snapshot then omits `warnings`)."""
    line = future_timestamp_warning(gt.rows, gt.generated_at, skew_s=skew_s)
    return (line,) if line else ()
