"""Issue 15, thread detail at 100+ columns: every section fits the width or the body scrolls
sideways; no column header or key field is cut with an ellipsis (`poin…`, `acti…`, a run's time);
free text (payloads, errors) is what gives way. The header card wraps a long value under its
column instead of under the label. Real worked-example sandbox.db/events.db, with an earlier
failed run (a long run id and an error) and a long reason.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from opcockpit.tui.screens.thread_sections import summary
from tests.tui.conftest import worked_example_app
from tests.tui.screen_text import screen_text
from tests.tui.test_ux_thread_detail import EARLIER, add_earlier_failed_run, open_detail

# Headers of every detail table, whole, and the key fields of the worked example's L1.
HEADERS = ["terminal", "pointer", "session", "close reason", "instance", "last seen", "time", "source",
           "error / payload", "origin", "what", "detail", "status", "events", "started", "last event",
           "error", "seq", "run", "type", "data"]  # fmt: skip
KEY_FIELDS = ["active+default", "term-aa11bb22cc33", "leon-5b8e2a9c0d1f", "intent.ensure_running", EARLIER]


def header_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.lstrip().startswith(("terminal ", "session ", "instance ",
            "time ", "seq ", "run "))]  # fmt: skip


@pytest.mark.parametrize("width", [100, 120, 160])
async def test_sections_fit_or_scroll_sideways_never_cut_keys(worked_example: Any, width: int) -> None:
    add_earlier_failed_run(worked_example)
    app = worked_example_app(worked_example)
    async with app.run_test(size=(width, 90)) as pilot:  # tall: every section on screen at once
        screen = await open_detail(pilot, app)
        body = screen.query_one("#detail-body")
        seen = [screen_text(app)]
        if body.virtual_size.width > body.scrollable_content_region.width:
            await pilot.press("right")  # the keyboard reaches what is off to the right
            await pilot.pause()
            assert body.scroll_x > 0
            body.scroll_to(x=body.max_scroll_x, animate=False)  # the right-hand side, scrolled to
            await pilot.pause()
            seen.append(screen_text(app))
        text = "\n".join(seen)
        heads = header_lines(text)
        assert len(heads) >= 6 and not [h for h in heads if "…" in h]  # no header is cut
        words = " ".join(" ".join(h.split()) for h in heads)
        for header in HEADERS:
            assert f" {header} " in f" {words} ", header
        for key in KEY_FIELDS:
            assert key in text, key
        if width == 100:  # the runs table needs more than 100 columns: it scrolls, it is not cut
            assert len(seen) == 2 and screen.query_one("#sec-runs").size.width > body.size.width
        if width >= 120:  # room enough: everything fits, nothing to scroll
            assert body.virtual_size.width <= body.scrollable_content_region.width
            assert "active+default" in seen[0] and "model overloaded (529)" in seen[0]


async def test_header_card_wraps_values_under_their_column(worked_example: Any) -> None:
    app = worked_example_app(worked_example)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_detail(pilot, app)
        long = dataclasses.replace(screen.row, reason="provider says paused " + "and more words " * 8)
        screen.update_row(long)
        await pilot.pause()
        lines = screen_text(app).splitlines()
        why = next(n for n, ln in enumerate(lines) if ln.startswith(" Why "))
        value_col = lines[why].index("provider")
        assert lines[why + 1][:value_col].strip() == ""  # the continuation sits under the value
        assert lines[why + 1][value_col:].startswith("and more")
        await pilot.resize_terminal(120, 30)
        await pilot.pause()
        assert screen._card_width == 116  # re-wrapped at the new width
    card = summary(long, 40).plain.splitlines()
    assert all(len(ln) <= 40 for ln in card[1:]) and card[1].startswith("Provider  ")
