"""Issue 15, thread detail: a header card (badge set apart, fields aligned, the reason in words), a
title that never wraps, section jump and fold, an earlier (failed) run selectable (bug 9), events
shown whole, and an SVG snapshot at 80x24. Real LEON sandbox.db/events.db (the worked example),
with an earlier failed run and a long payload added to its events.db.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

from opcockpit.tui.app import CockpitApp
from opcockpit.tui.screens.inspect import InspectScreen
from opcockpit.tui.screens.thread import ThreadDetailScreen
from tests.fixtures.leon_db import L1, T1, T1_RUN_START_UTC, add_run, add_run_event
from tests.tui.conftest import wait_until, worked_example_app
from tests.tui.screen_text import screen_text

LONG = "echo " + "x" * 300 + " END-OF-COMMAND"
EARLIER = "0a0a0a0a-earlier-run-failed-000000000001"


def add_earlier_failed_run(we: Any) -> None:
    conn = sqlite3.connect(str(we.events_db))
    try:
        add_run(conn, T1, EARLIER, outcome="error", start=T1_RUN_START_UTC - timedelta(hours=1),
                error="model overloaded (529)")  # fmt: skip
        add_run_event(conn, T1, EARLIER, "tool_call", {"command": LONG},
                      created_at=T1_RUN_START_UTC - timedelta(minutes=59))  # fmt: skip
        conn.commit()
    finally:
        conn.close()


async def open_detail(pilot: Any, app: CockpitApp) -> ThreadDetailScreen:
    await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
    app.open_lease(L1)
    screen = app.screen
    assert isinstance(screen, ThreadDetailScreen)
    await wait_until(pilot, lambda: screen.detail is not None)
    await pilot.pause()
    return screen


async def test_header_card_title_and_sections(worked_example: Any) -> None:
    app = worked_example_app(worked_example)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_detail(pilot, app)
        text = screen_text(app)
        lines = text.splitlines()
        assert lines[0].strip().startswith("Thread") and "lease" in lines[0]  # the title: one line
        assert not lines[1].strip().startswith(("Recent", "commands"))
        badge = lines[1]
        assert "~ stale " in badge and f"  {L1}" in badge  # the badge never glues onto the lease id
        assert "provider docker has no listing yet" in text  # the reason, in words
        provider, states, why = (
            next(x for x in lines if x.lstrip().startswith(w)) for w in ("Provider", "States", "Why")
        )
        col = provider.index("Provider") + 10
        assert states[col - 1] == " " and why[col - 1] == " " and states[col] != " "  # values aligned
        body = screen.query_one("#detail-body")
        await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket")
        await pilot.pause()
        assert screen.SECTIONS[screen.section_at] == "sec-lease"
        await pilot.press("minus")
        await pilot.pause()
        assert screen.query_one("#sec-lease").has_class("folded")
        assert screen.query_one("#sec-lease").size.height == 1
        await pilot.press("minus")
        await pilot.pause()
        assert screen.query_one("#sec-lease").size.height > 1
        assert body is not None


async def test_earlier_failed_run_and_events_whole(worked_example: Any) -> None:
    add_earlier_failed_run(worked_example)
    app = worked_example_app(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_detail(pilot, app)
        first = screen.run_id
        runs = [r.run_id for r in screen.detail.runs]  # type: ignore[union-attr]
        assert len(runs) == 2 and EARLIER in runs
        other = next(r for r in runs if r != first)
        await pilot.press("R")  # the other run is selectable, whichever the screen opened on
        await wait_until(pilot, lambda: screen.run_id == other)
        if other != EARLIER:
            await pilot.press("R")
            await wait_until(pilot, lambda: screen.run_id == EARLIER)
        assert any(e.event_type == "error" for e in screen.run_events)
        await pilot.press("e")
        viewer = app.screen
        assert isinstance(viewer, InspectScreen)
        await wait_until(pilot, lambda: viewer.loaded)
        assert LONG in viewer.text  # the payload whole, not "s…"
        await pilot.press("escape")
        await pilot.press("R")  # wraps around
        await wait_until(pilot, lambda: screen.run_id != EARLIER)


def test_thread_detail_80x24(snap_compare: Any, worked_example: Any) -> None:
    async def detail_loaded(pilot: Any) -> None:
        app = pilot.app
        await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
        app.open_lease(L1)
        await wait_until(
            pilot, lambda: isinstance(app.screen, ThreadDetailScreen) and app.screen.detail is not None
        )
        await pilot.pause()

    app = worked_example_app(worked_example)
    assert snap_compare(app, terminal_size=(80, 24), run_before=detail_loaded)
