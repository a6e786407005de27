"""SVG snapshots of each screen at 100x30 with deterministic data (fixed seed, fixed clock).

Review changes with `pytest tests/tui/test_snapshots.py --snapshot-update` only after reading the
HTML diff report: a Textual upgrade alone can change these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from textual.widgets import Input

from opcockpit.tui.app import CockpitApp
from opcockpit.tui.screens.thread import ThreadDetailScreen
from tests.tui.conftest import SequenceSource, wait_until, worked_example_app
from tests.tui.factories import NOW, make_ground_truth

SIZE = (100, 30)


def synthetic_app(**kwargs: Any) -> CockpitApp:
    return CockpitApp(SequenceSource([make_ground_truth(60)]), clock=lambda: NOW, auto_refresh=False,
                      **kwargs)


Step = Callable[[Any], Awaitable[None]]


def ready(*keys: str, then: Step | None = None) -> Step:
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
        for inp in app.query(Input):
            inp.cursor_blink = False
        if keys:
            await pilot.press(*keys)
        if then is not None:
            await then(pilot)
        await pilot.pause()

    return run_before


def test_ground_truth(snap_compare: Any) -> None:
    assert snap_compare(synthetic_app(demo_banner="DEMO seed 7"), terminal_size=SIZE, run_before=ready())


def test_ground_truth_read_only_filtered_sorted(snap_compare: Any) -> None:
    assert snap_compare(synthetic_app(read_only=True), terminal_size=SIZE,
                        run_before=ready("slash", *"!state:converged", "enter", "greater_than_sign", "i"))


def test_orphans(snap_compare: Any) -> None:
    assert snap_compare(synthetic_app(), terminal_size=SIZE, run_before=ready("2"))


def test_alerts_placeholder(snap_compare: Any) -> None:
    assert snap_compare(synthetic_app(), terminal_size=SIZE, run_before=ready("4"))


def test_help(snap_compare: Any) -> None:
    assert snap_compare(synthetic_app(), terminal_size=SIZE, run_before=ready("question_mark"))


def test_thread_detail(snap_compare: Any, worked_example: Any) -> None:
    async def detail_loaded(pilot: Any) -> None:
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ThreadDetailScreen)
                         and pilot.app.screen.detail is not None)

    app = worked_example_app(worked_example)
    assert snap_compare(app, terminal_size=SIZE, run_before=ready("enter", then=detail_loaded))


def test_provider_events(snap_compare: Any, worked_example: Any) -> None:
    async def events_loaded(pilot: Any) -> None:
        await wait_until(pilot, lambda: pilot.app.events_view.loaded)

    app = worked_example_app(worked_example)
    assert snap_compare(app, terminal_size=SIZE, run_before=ready("3", then=events_loaded))
