"""Issue 15: k9s-style `:` jumps (`:orphans`, `:alerts`, `:events`, `:thread ID`, `:lease ID`)
beside the fuzzy palette (ctrl+p), on the real pipeline over the demo fleet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandPalette
from textual.widgets import Input

from opcockpit.tui.app import CockpitApp, build_app
from opcockpit.tui.commands import JumpScreen
from opcockpit.tui.screens.audit import AuditScreen
from opcockpit.tui.screens.thread import ThreadDetailScreen
from tests.tui.conftest import wait_until
from tests.tui.screen_text import screen_text

SIZE = (120, 36)


@pytest.fixture
def env() -> Iterator[Any]:
    from opcockpit.demo.runtime import demo_environment

    with demo_environment(seed=7, leases=40, drift=False) as e:
        yield e


def make(env: Any, tmp_path: Path) -> CockpitApp:
    return build_app(env.config, ledger_path=tmp_path / "ledger.db", auto_refresh=False, watch_events=False)


async def jump(pilot: Any, app: CockpitApp, text: str) -> None:
    await pilot.press("colon")
    assert isinstance(app.screen, JumpScreen)
    app.screen.query_one(Input).value = text
    await pilot.press("enter")
    await pilot.pause()


async def test_colon_jumps_to_tabs(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.ground_truth is not None)
        for text, tab in (
            ("orphans", "orphans"),
            ("alerts", "alerts"),
            ("events", "events"),
            ("gt", "ground-truth"),
        ):
            await jump(pilot, app, text)
            assert not isinstance(app.screen, JumpScreen)
            assert app.active_tab == tab
        await jump(pilot, app, "audit")
        assert isinstance(app.screen, AuditScreen)


async def test_colon_thread_and_lease_ids(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.ground_truth is not None)
        gt = app.ground_truth
        assert gt is not None
        row = next(r for r in gt.rows if r.thread_id)
        await jump(pilot, app, f"thread {row.thread_id}")
        assert isinstance(app.screen, ThreadDetailScreen) and app.screen.row.lease_id == row.lease_id
        await pilot.press("escape")
        other = next(r for r in gt.rows if r.lease_id != row.lease_id)
        app.gt_table.set_filter(f"lease:{row.lease_id}")  # the jump target is hidden by the filter
        await jump(pilot, app, f"lease {other.lease_id}")
        assert app.active_tab == "ground-truth"
        assert app.gt_table.cursor_key == other.lease_id and not app.gt_table.filter_expr
        orphan = gt.orphans[0]
        await pilot.press("1")
        await jump(pilot, app, f"orphan {orphan.instance_id}")
        assert app.active_tab == "orphans" and app.orphans_table.cursor_key == orphan.key


async def test_a_bad_jump_says_why_and_stays_open(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.ground_truth is not None)
        await jump(pilot, app, "nonsense")
        assert isinstance(app.screen, JumpScreen)
        assert "unknown jump 'nonsense'" in screen_text(app) and ":orphans" in screen_text(app)
        await jump_again(pilot, app, "thread no-such-thread")
        assert "no thread matches 'no-such-thread'" in screen_text(app)
        await jump_again(pilot, app, "lease lease-")  # ambiguous: says how many and some of them
        assert "leases match 'lease-'" in screen_text(app)
        await pilot.press("escape")
        assert not isinstance(app.screen, JumpScreen) and app.active_tab == "ground-truth"


async def jump_again(pilot: Any, app: CockpitApp, text: str) -> None:
    app.screen.query_one(Input).value = text
    await pilot.press("enter")
    await pilot.pause()


async def test_ctrl_p_still_opens_the_fuzzy_palette(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.ground_truth is not None)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)


async def test_a_key_typed_right_after_enter_does_not_change_the_jump(env: Any, tmp_path: Path) -> None:
    """`:orphans` Enter and the next key in one read of the terminal (keys queued back to back):
    the jump is the text on screen when Enter was pressed (tui/widgets/in_order_input.py); before,
    the key went into the box first and `orphansx` was an unknown jump."""
    from textual import events

    app = make(env, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.ground_truth is not None)
        await pilot.press("colon")
        assert isinstance(app.screen, JumpScreen) and app._driver is not None
        keys = [(c, c) for c in "orphans"] + [("enter", "\r"), ("x", "x")]
        for key, char in keys:
            app._driver.send_message(events.Key(key, char))
        await wait_until(pilot, lambda: not isinstance(app.screen, JumpScreen))
        assert app.active_tab == "orphans"
