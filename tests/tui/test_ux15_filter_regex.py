"""Issue 15, bug 4: the help's regex example `/^lease-[0-3]` matched nothing (bare terms were
matched against the whole row, which starts with the State column). test_ux_safety checks that the
example's leases are among the rows shown; that also holds when the filter shows every row. Here
the operator's way (`/`, the example, Enter) must show exactly the leases whose id matches and
say so on the status line. Real pipeline: the demo fleet on its provider doubles.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from opcockpit.tui.screens.help import FILTERS
from tests.tui.screen_text import screen_text
from tests.tui.test_ux_safety import env, filter_to, loaded, make

__all__ = ["env"]  # the demo-fleet fixture, shared


async def test_the_help_regex_example_shows_exactly_the_matching_leases(env: Any, tmp_path: Path) -> None:
    example = next(expr for expr, what in FILTERS if what.startswith("regex"))
    app = make(env, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        assert app.ground_truth is not None
        every = {r.lease_id for r in app.ground_truth.rows}
        want = {lid for lid in every if re.match(example, lid, re.IGNORECASE)}
        assert want and want != every, "the demo fleet has leases on both sides of the example"
        await filter_to(pilot, app, example)
        await pilot.pause()
        assert set(app.gt_table.view_keys()) == want
        assert f"({len(want)} of {len(every)} rows" in screen_text(app)
