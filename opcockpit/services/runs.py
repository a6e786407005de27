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

__all__ = ["RunReads", "load_run_health"]

# The TUI asks for run health every alert round; events.db changes far less often. Re-reading
# the window (a GROUP BY over every run_event) cost ~17 % of a core at 10k leases, so the runs read
# are reused while events.db and its WAL are byte-for-byte the same files (size + mtime) and the
# read is younger than REUSE_S; run_health itself is recomputed for `now` every time.
REUSE_S = 60.0


class RunReads:
    """The last runs read per (events.db, window): one per cockpit (`Cockpit.run_reads`, the alert
    engine's), never module state, so two cockpits in one process never share a read."""

    def __init__(self) -> None:
        self._reads: dict[tuple[str, float], tuple[tuple[object, ...], datetime, list]] = {}
        self.reads = 0  # events.db reads made (tests, diagnostics)

    def get(self, key: tuple[str, float], sig: tuple[object, ...] | None, now: datetime) -> list | None:
        cached = self._reads.get(key)
        if sig is None or cached is None or cached[0] != sig:
            return None
        return cached[2] if abs((now - cached[1]).total_seconds()) < REUSE_S else None

    def put(self, key: tuple[str, float], sig: tuple[object, ...] | None, now: datetime, runs: list) -> None:
        self.reads += 1
        if sig is not None:
            self._reads[key] = (sig, now, runs)

    def forget(self, key: tuple[str, float]) -> None:
        self._reads.pop(key, None)


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
    reads: RunReads | None = None,
) -> RunHealth:
    """Read the runs active in the window from events.db; a read failure becomes `error`, never
    an exception (the cockpit keeps working without events.db). With `reads` (the cockpit's), an
    unchanged events.db is not read again."""
    kw = {"window_s": window_s, "stuck_after_s": stuck_after_s, "ground_truth": ground_truth}
    if events_db is None:
        return unavailable(now, "no events.db configured", **kw)  # type: ignore[arg-type]
    key = (str(events_db), window_s)
    sig = _signature(str(events_db)) if reads is not None else None
    runs = reads.get(key, sig, now) if reads is not None else None
    if runs is None:
        try:
            async with events_reader(str(events_db)) as reader:
                runs = await reader.runs(since=now - timedelta(seconds=window_s))
        except SourceError as exc:
            if reads is not None:
                reads.forget(key)
            return unavailable(now, str(exc), **kw)  # type: ignore[arg-type]
        if reads is not None:
            reads.put(key, sig, now, runs)
    return run_health(
        runs, now, window_s=window_s, stuck_after_s=stuck_after_s, top_n=top_n, ground_truth=ground_truth
    )
