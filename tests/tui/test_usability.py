"""Regressions from a hands-on pass at 80x24 over SSH: what an operator could not read or could not
tell had happened."""

from __future__ import annotations

import io
from datetime import timedelta

from rich.console import Console

from opcockpit.domain.models import RunEventRecord
from opcockpit.tui.rows import GT_INDEX, gt_cells
from opcockpit.tui.screens.thread import render_run_events
from opcockpit.tui.widgets.header import HeaderState, render_header, without_colour
from tests.tui.conftest import wait_until
from tests.tui.factories import NOW, make_ground_truth
from tests.tui.screen_text import screen_text
from tests.tui.test_app import loaded, make_app

DEMO_BANNER = "DEMO · seed 7 · 120 leases · 4 provider doubles on loopback · drift every 2.5s"


async def test_80x24_header_keeps_counts_and_frozen_over_a_long_banner() -> None:
    app, _ = make_app([make_ground_truth(100)], demo_banner=DEMO_BANNER)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        await pilot.press("z")
        await pilot.pause()
        top = screen_text(app).splitlines()[0]
        # The banner used to fill the line: counts, orphans and FROZEN were cut off behind "drift…".
        assert "DEMO" in top and "FROZEN" in top and "orphans 4" in top and "leases 100" in top
        assert "seed 7" not in top  # the decoration gave way, not the facts


def test_header_keeps_the_whole_banner_when_there_is_room() -> None:
    state = HeaderState(
        gt=make_ground_truth(10),
        now=NOW,
        last_refresh=NOW,
        last_duration_s=0.1,
        frozen=False,
        read_only=False,
        banner=DEMO_BANNER,
        error=None,
    )
    assert DEMO_BANNER in render_header(state, 240).plain


def test_no_color_header_drops_colours_keeps_emphasis() -> None:
    state = HeaderState(
        gt=make_ground_truth(60),
        now=NOW,
        last_refresh=NOW,
        last_duration_s=0.1,
        frozen=True,
        read_only=True,
        banner="DEMO",
        error="db locked",
    )
    plain = without_colour(render_header(state, 200))
    assert plain.spans and all(s.style.color is None and s.style.bgcolor is None for s in plain.spans)
    assert any(s.style.reverse for s in plain.spans)  # badges stay reversed: readable without colour


async def test_no_color_trouble_rows_are_bold_not_dark() -> None:
    import os

    os.environ["NO_COLOR"] = "1"
    try:
        app, _ = make_app([make_ground_truth(60)])
    finally:
        del os.environ["NO_COLOR"]
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        table = app.gt_table
        # Without colour, $error red greys to near-black: diverged rows were the hardest to read.
        assert table._style("diverged").bold
        assert table._style("diverged").color == table._style("transitioning").color


async def test_reason_is_on_screen_at_80_columns() -> None:
    app, _ = make_app([make_ground_truth(50)])
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        lines = screen_text(app).splitlines()
        # At 80 columns State shows its glyph under "St" (issue 15): Lease, State, Provider and Reason fit.
        header = next(ln for ln in lines if "Lease" in ln and "Provider" in ln)
        assert "Reason" in header


def test_gt_cells_follow_the_column_order() -> None:
    gt = make_ground_truth(20)
    for row in gt.rows:
        cells = gt_cells(row, gt.generated_at)
        assert cells[GT_INDEX["reason"]] == row.reason
        assert cells[GT_INDEX["lease_id"]] == row.lease_id
        assert cells[GT_INDEX["provider_state"]] == row.provider_state
        assert str(cells[GT_INDEX["thread_id"]] or "").startswith(row.thread_id or "")


async def test_space_marks_only_where_actions_use_marks() -> None:
    app, _ = make_app([make_ground_truth(50)])
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        # the footer is drawn after the first picture: wait for it (a loaded CI machine is slow)
        await wait_until(pilot, lambda: "Mark" in screen_text(app).splitlines()[-1])
        await pilot.press("3")
        await pilot.pause()
        events = app.events_view.table
        assert events.check_action("toggle_mark", ()) is False
        # the footer offers only what works
        await wait_until(pilot, lambda: "Mark" not in screen_text(app).splitlines()[-1])
        events.toggle_mark("anything")
        assert not events.marked


async def test_sorting_onto_an_off_screen_column_scrolls_to_it() -> None:
    app, _ = make_app([make_ground_truth(50)])
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        table = app.gt_table
        await pilot.press("less_than_sign", "less_than_sign")  # State -> Lease -> the last column
        await pilot.pause()
        assert table.sort_column == table.columns[-1].key
        assert table.scroll_offset.x > 0
        assert "▲" in screen_text(app)  # the sort marker is visible, so the order makes sense
        await pilot.press("greater_than_sign", "greater_than_sign")  # Lease (pinned), then State
        await pilot.pause()
        assert table.sort_column == "convergence"
        assert table.scroll_offset.x == 0


def test_run_events_keep_seq_and_time_readable_at_80_columns() -> None:
    events = [
        RunEventRecord(
            seq=224 + i,
            thread_id="t",
            run_id="7dcb3c50-ae05-4c7c-8350-5c50d23b0cc3",
            event_type="tool_result",
            data='{"content": "' + "long text " * 20 + '"}',
            message_id=None,
            created_at=NOW + timedelta(seconds=i),
        )
        for i in range(3)
    ]
    console = Console(width=76, file=io.StringIO(), record=True, color_system=None)
    console.print(render_run_events(events, events[0].run_id, following=True))
    text = console.export_text()
    lines = [ln for ln in text.splitlines() if "tool_result" in ln]
    assert len(lines) == 3  # one line per event: the payload is cut, not wrapped
    assert lines[0].startswith("224 ") and NOW.strftime("%m-%d %H:%M:%S") in lines[0]


async def test_orphan_ids_and_state_are_whole_at_80_and_100_columns() -> None:
    from dataclasses import replace

    from opcockpit.domain.models import OrphanRow

    uuid = "3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6f"  # a Daytona sandbox id: 36 characters
    orphan = OrphanRow(
        "daytona", uuid, None, "running", "started", {}, NOW, "lease-35622715818d", "lease_exists", True
    )
    gt = replace(make_ground_truth(20), orphans=(orphan,))
    for size, whole in (
        ((80, 24), (uuid, "running (started)")),
        ((100, 30), (uuid, "running (started)", "lease-35622715818d")),
    ):
        app, _ = make_app([gt])
        async with app.run_test(size=size) as pilot:
            await loaded(pilot, app)
            await pilot.press("2")
            await pilot.pause()
            line = next(ln for ln in screen_text(app).splitlines() if "daytona" in ln and "✗" in ln)
            for text in whole:
                assert text in line, (size, line)


def test_alert_summary_gets_the_room_and_rule_names_are_whole_at_80_columns() -> None:
    from opcockpit.tui.widgets.alert_rows import _fixed, active_columns, history_summary_width

    cols = active_columns()
    rule = next(c for c in cols if c.key == "rule")
    assert rule.width >= len("provider_unreachable")  # the longest built-in rule name
    # the summary at 80 columns (24 is its minimum); 26 since the Firing column (issue 15) is wide
    # enough for every age fmt_age prints ("12h30m")
    assert 80 - _fixed(cols) >= 26
    assert 80 - _fixed(cols) + 20 == 100 - _fixed(cols)  # every extra column goes to the summary
    assert history_summary_width(80) >= 36  # history: the tail scrolls sideways, not the summary
