"""Timestamps from the future: the sign that sandbox.db's naive local times are read in the wrong zone.

LEON writes `datetime.now()` without a zone. The readers interpret it in `[sources] timezone` (default:
this host's zone); when LEON ran at UTC+8 and the cockpit reads at UTC, every `last_active` sits 8 h
ahead of the clock, ages show 0s and "last 15m" windows match the wrong events. Nothing in the data
can say which zone is right, so the cockpit warns instead of guessing (pure: rows and a clock in).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from opcockpit.domain.models import GroundTruth, GroundTruthRow
from opcockpit.domain.timeutil import fmt_age

__all__ = ["DEFAULT_SKEW_S", "future_timestamp_warning", "snapshot_warnings"]

# Clocks of two hosts drift and LEON stamps before it commits: only beyond this is it the zone.
DEFAULT_SKEW_S = 300.0


def future_timestamp_warning(
    rows: Iterable[GroundTruthRow], now: datetime, *, skew_s: float = DEFAULT_SKEW_S
) -> str | None:
    """One line when some lease's `last_active`/`updated_at` is more than `skew_s` after `now`
    (None when none is). Names how many and how far, and what to set."""
    count = 0
    worst = 0.0
    for row in rows:
        for ts in (row.last_active, row.updated_at):
            if ts is None:
                continue
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


def snapshot_warnings(gt: GroundTruth, *, skew_s: float = DEFAULT_SKEW_S) -> tuple[str, ...]:
    """The warnings a snapshot carries (empty: none; the snapshot then omits `warnings`)."""
    line = future_timestamp_warning(gt.rows, gt.generated_at, skew_s=skew_s)
    return (line,) if line else ()
