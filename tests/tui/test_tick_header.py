"""The header's once-a-second tick (issue 10, the idle tick): while refreshes keep coming, each
refresh repaints the header and the tick adds no repaint; the tick repaints when the picture is
older than one refresh interval (a stall: the header's age keeps moving) or when something the
header shows changed without a refresh (here: freeze)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from opcockpit.tui.app import CockpitApp
from tests.tui.conftest import SequenceSource, wait_until
from tests.tui.factories import NOW, make_ground_truth
from tests.tui.screen_text import screen_text


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> Any:
        return self.now


async def test_the_tick_repaints_the_header_only_when_it_would_show_something_new() -> None:
    clock = Clock()
    app = CockpitApp(SequenceSource([make_ground_truth(20)]), clock=clock, auto_refresh=False, refresh_s=2.0)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
        header = app._header_w
        shows = 0
        real_show = header.show

        def counting_show(state: Any) -> None:
            nonlocal shows
            shows += 1
            real_show(state)

        header.show = counting_show  # type: ignore[method-assign]
        clock.now = NOW + timedelta(seconds=1)  # within one refresh interval: nothing new
        app._header_tick()
        assert shows == 0
        clock.now = NOW + timedelta(seconds=2)  # the refresh's own time: it paints the header
        app._header_tick()
        assert shows == 0
        clock.now = NOW + timedelta(seconds=5)  # a stall: the header's age moves
        app._header_tick()
        assert shows == 1
        await pilot.pause()
        assert "refreshed 5s ago" in screen_text(app)
        app.start_refresh(manual=True)  # a refresh repaints the header itself
        await wait_until(pilot, lambda: not app.inflight and app.last_refresh == clock.now)
        shows = 0
        app.frozen = True  # shown by the header without a refresh: the tick paints it
        app._header_tick()
        assert shows == 1
        app._header_tick()
        assert shows == 1


async def test_a_header_that_would_read_the_same_is_not_built_again(monkeypatch: Any) -> None:
    """Issue 10, idle tick: the header's text is compared by what it is made of before it is
    made; the same inputs build nothing, any input that shows (an age, freeze) builds it."""
    from opcockpit.tui.widgets import header as header_mod

    clock = Clock()
    app = CockpitApp(SequenceSource([make_ground_truth(20)]), clock=clock, auto_refresh=False, refresh_s=2.0)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
        built = 0
        real = header_mod.render_header

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal built
            built += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(header_mod, "render_header", counting)
        app._show_header()
        app._show_header()
        assert built == 0  # nothing it shows moved
        clock.now = NOW + timedelta(seconds=5)
        app._show_header()
        assert built == 1  # "refreshed 5s ago"
        app.frozen = True
        app._show_header()
        app._show_header()
        assert built == 2
        await pilot.pause()
        assert "FROZEN" in screen_text(app)
