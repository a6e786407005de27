"""Issue 10: in thread detail, `w` draws the shown run as a span waterfall (tool calls with their
durations and errors), the same spans the OTLP export sends. Real LEON events.db (the worked
example) with a newer run for T1 whose tool calls carry LEON's call ids."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

from opcockpit.tui.screens.thread import ThreadDetailScreen
from opcockpit.tui.screens.waterfall import WaterfallScreen
from tests.fixtures.leon_db import T1, T1_RUN_START_UTC, add_run_event
from tests.tui.conftest import wait_until, worked_example_app
from tests.tui.screen_text import screen_text
from tests.tui.test_ux_thread_detail import open_detail

RUN = "7a7a7a7a-waterfall-run-0000000000000001"


def add_tool_run(we: Any) -> None:
    """A finished run 1 h after T1's (LEON stores times to the second): bash 1 s -> 5 s,
    read_file 6 s -> 8 s failing, run done at 10 s."""
    t0 = T1_RUN_START_UTC + timedelta(hours=1)
    rows = [
        (0, "run_start", {"thread_id": T1, "run_id": RUN, "source": "web"}),
        (1, "tool_call", {"id": "call_bash", "name": "bash", "args": {"command": "make test"}}),
        (5, "tool_result", {"tool_call_id": "call_bash", "content": "ok"}),
        (6, "tool_call", {"id": "call_read", "name": "read_file"}),
        (8, "tool_result", {"tool_call_id": "call_read", "is_error": True, "error": "ENOENT: no such file"}),
        (10, "run_done", {"thread_id": T1, "run_id": RUN}),
    ]
    conn = sqlite3.connect(str(we.events_db))
    try:
        for at, kind, data in rows:
            add_run_event(conn, T1, RUN, kind, data, created_at=t0 + timedelta(seconds=at))
        conn.commit()
    finally:
        conn.close()


async def test_w_draws_the_shown_run_as_a_waterfall(worked_example: Any) -> None:
    add_tool_run(worked_example)
    app = worked_example_app(worked_example)
    async with app.run_test(size=(120, 30)) as pilot:
        detail = await open_detail(pilot, app)
        await wait_until(pilot, lambda: detail.run_id == RUN)
        await pilot.press("w")
        await wait_until(pilot, lambda: isinstance(app.screen, WaterfallScreen))
        await pilot.pause()
        lines = screen_text(app).splitlines()
        assert RUN in lines[0] and "2 tool calls" in lines[0]
        bash = next(x for x in lines if "execute_tool bash" in x)
        assert "+1.0s" in bash and "4.0s" in bash and "█" in bash
        read = next(i for i, x in enumerate(lines) if "execute_tool read_file" in x)
        assert "2.0s" in lines[read] and "✗" in lines[read]
        assert "ENOENT: no such file" in lines[read + 1]
        root = next(x for x in lines if x.startswith("invoke_agent"))
        assert "10.0s" in root
        await pilot.press("escape")
        assert isinstance(app.screen, ThreadDetailScreen)


def test_waterfall_80x24(snap_compare: Any, worked_example: Any) -> None:
    add_tool_run(worked_example)

    async def opened(pilot: Any) -> None:
        detail = await open_detail(pilot, pilot.app)
        await wait_until(pilot, lambda: detail.run_id == RUN)
        await pilot.press("w")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, WaterfallScreen))
        await pilot.pause()

    assert snap_compare(worked_example_app(worked_example), terminal_size=(80, 24), run_before=opened)
