"""Reading run health: events.db (through the EventsReader port) -> domain.runs.run_health."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from opcockpit.domain.models import GroundTruth
from opcockpit.domain.runs import DEFAULT_STUCK_AFTER_S, DEFAULT_WINDOW_S, RunHealth, run_health, unavailable
from opcockpit.ports.errors import SourceError
from opcockpit.ports.leon import EventsReader

__all__ = ["load_run_health"]


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
    try:
        async with events_reader(str(events_db)) as reader:
            runs = await reader.runs(since=now - timedelta(seconds=window_s))
    except SourceError as exc:
        return unavailable(now, str(exc), **kw)  # type: ignore[arg-type]
    return run_health(
        runs, now, window_s=window_s, stuck_after_s=stuck_after_s, top_n=top_n, ground_truth=ground_truth
    )
