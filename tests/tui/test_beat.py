"""tui/live.Beat: the app's one periodic callback on the loop (issue 10, idle tick)."""

from __future__ import annotations

import asyncio
import time

from opcockpit.tui.live import Beat


async def test_a_beat_skips_what_a_busy_loop_missed_survives_an_error_and_stops() -> None:
    loop = asyncio.get_running_loop()
    at: list[float] = []
    errors: list[Exception] = []

    def beat() -> None:
        at.append(loop.time())
        if len(at) == 2:
            time.sleep(0.35)  # the loop was busy for more than three beats
        if len(at) == 3:
            raise RuntimeError("a bug in a beat")  # the app's handler's, and the beat goes on

    b = Beat(0.1, beat, errors.append)
    b.start()
    start = loop.time()
    while len(at) < 5:
        await asyncio.sleep(0.01)
    b.stop()
    n = len(at)
    await asyncio.sleep(0.3)
    assert len(at) == n  # stopped
    assert [type(e) for e in errors] == [RuntimeError]
    grid = [round((t - start) / 0.1) for t in at]  # the beat's grid: start + k * interval
    assert grid[:2] == [1, 2] and grid[2] >= 6  # the beats missed while busy are skipped ...
    assert grid[3] == grid[2] + 1  # ... not rushed after
