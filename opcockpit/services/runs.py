"""Reading run health: events.db (through the EventsReader port) -> domain.runs.run_health."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from opcockpit.domain.models import GroundTruth
from opcockpit.domain.runs import DEFAULT_STUCK_AFTER_S, DEFAULT_WINDOW_S, RunHealth, run_health, unavailable
from opcockpit.ports.errors import SourceError
from opcockpit.ports.leon import EventsReader

__all__ = ["load_run_health"]

# The TUI asks for run health every tick; events.db changes far less often. Re-reading the
# window (a GROUP BY over every run_event) cost ~17 % of a core at 10k leases, so the runs read
# are reused while events.db and its WAL are byte-for-byte the same files (size + mtime) and the
# read is younger than REUSE_S; run_health itself is recomputed for `now` every time.
REUSE_S = 60.0
_reads: dict[tuple[str, float], tuple[tuple[object, ...], datetime, list]] = {}


def _signature(path: str) -> tuple[object, ...] | None:
    out: list[object] = []
    for p in (path, path + "-wal"):
        try:
            st = os.stat(p)
        except OSError:
            out.append(None)
            continue
        # An empty WAL appearing or being reset by a reader is no change to the data.
        out.append((st.st_ino, st.st_size, st.st_mtime_ns) if st.st_size else None)
    return tuple(out) if out[0] is not None else None


async def load_run_health(
    events_db: str | Path | None,
    now: datetime,
    *,
    events_reader: Callable[[str], EventsReader],
    window_s: float = DEFAULT_WINDOW_S,
    stuck_after_s: float = DEFAULT_STUCK_AFTER_S,
    top_n: int = 10,
    ground_truth: GroundTruth | None = None,
) -> RunHealth:
    """Read the runs active in the window from events.db; a read failure becomes `error`, never
    an exception (the cockpit keeps working without events.db)."""
    kw = {"window_s": window_s, "stuck_after_s": stuck_after_s, "ground_truth": ground_truth}
    if events_db is None:
        return unavailable(now, "no events.db configured", **kw)  # type: ignore[arg-type]
    key, sig = (str(events_db), window_s), _signature(str(events_db))
    cached = _reads.get(key)
    if (
        sig is not None
        and cached is not None
        and cached[0] == sig
        and abs((now - cached[1]).total_seconds()) < REUSE_S
    ):
        runs = cached[2]
    else:
        try:
            async with events_reader(str(events_db)) as reader:
                runs = await reader.runs(since=now - timedelta(seconds=window_s))
        except SourceError as exc:
            _reads.pop(key, None)
            return unavailable(now, str(exc), **kw)  # type: ignore[arg-type]
        if sig is not None:
            _reads[key] = (sig, now, runs)
    return run_health(
        runs, now, window_s=window_s, stuck_after_s=stuck_after_s, top_n=top_n, ground_truth=ground_truth
    )
