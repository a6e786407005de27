"""Refreshing must not grow memory: a 10-minute demo at 0.5 s went 94 -> 777 MB.

Every refresh called `refresh_bindings()`, and the Footer answers that by replacing its key
widgets; the old ones were never freed (live widgets 537 -> 2097 over 60 refreshes while the DOM
stayed at 52). The test counts live Widget objects (what the interpreter holds, not only what is
mounted) across many refreshes with changing data, after a warm-up.
"""

from __future__ import annotations

import gc

from textual.widget import Widget

from opcockpit.tui.app import CockpitApp
from tests.tui.conftest import SequenceSource, wait_until
from tests.tui.factories import NOW, make_ground_truth, mutate

WARMUP = 10
REFRESHES = 50
SLACK = 5  # a toast or a tooltip may come and go; the leak added ~26 widgets per refresh


def _live_widgets() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, Widget))


async def test_refreshes_do_not_accumulate_widgets() -> None:
    gt = make_ground_truth(200)
    snapshots = [gt]
    for step in range(1, WARMUP + REFRESHES + 2):
        gt = mutate(gt, 0.05, step=step)  # rows change state every time: real redraw work
        snapshots.append(gt)
    src = SequenceSource(snapshots)
    app = CockpitApp(src, clock=lambda: NOW, auto_refresh=False, watch_events=False)
    async with app.run_test(size=(120, 40)) as pilot:

        async def refresh_once() -> None:
            done = app.refreshes
            app.request_refresh()
            await wait_until(pilot, lambda: app.refreshes > done and not app.inflight)
            await pilot.pause()  # let the footer and tables process what the refresh posted

        await wait_until(pilot, lambda: app.refreshes >= 1 and not app.inflight)
        for _ in range(WARMUP):
            await refresh_once()
        await pilot.pause(0.3)
        widgets_before, dom_before = _live_widgets(), len(list(app.screen.walk_children()))
        for _ in range(REFRESHES):
            await refresh_once()
        await pilot.pause(0.3)
        widgets_after, dom_after = _live_widgets(), len(list(app.screen.walk_children()))
        assert app.refreshes >= WARMUP + REFRESHES
        assert dom_after <= dom_before
        assert widgets_after <= widgets_before + SLACK, (widgets_before, widgets_after)
