"""Issue 15, bug 9 (last part): the thread detail's section titles wrapped (`Recent` / `commands`)
at 160 columns. test_ux_thread_detail checks only the line under the title; here every section's
first rendered line carries its whole title, at 80, 100 and 160 columns. Real LEON sandbox.db /
events.db (the worked example, with an earlier failed run and a long payload added).
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Static

from tests.tui.conftest import worked_example_app
from tests.tui.test_ux_thread_detail import add_earlier_failed_run, open_detail

# section id -> the title its first line must carry whole
TITLES = {
    "sec-terminals": "Terminals",
    "sec-sessions": "Chat sessions",
    "sec-lease": "Lease and instance history",
    "sec-lease-events": "lease_events",
    "sec-state-history": "State history",
    "sec-commands": "Recent commands",
    "sec-runs": "Runs",
}


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (160, 48)])
async def test_every_section_title_is_whole_on_its_first_line(
    worked_example: Any, size: tuple[int, int]
) -> None:
    add_earlier_failed_run(worked_example)
    app = worked_example_app(worked_example)
    async with app.run_test(size=size) as pilot:
        screen = await open_detail(pilot, app)
        await pilot.pause()
        firsts = {}
        for sec, title in TITLES.items():
            widget = screen.query_one(f"#{sec}", Static)
            first = widget.render_line(0).text.strip()
            firsts[sec] = first
            assert first.startswith(title), (size, sec, firsts)
        second = screen.query_one("#sec-commands", Static).render_line(1).text.strip()
        assert not second.startswith("commands"), second
