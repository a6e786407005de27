"""Explore's timeline and chart views: the pure renderers (widgets/chart.py, tabs/explore_views.py)
and the tab on a generated LEON fleet (real sandbox.db/events.db) with the real ExploreService:
`v` cycles table -> timeline -> chart, ASCII under NO_COLOR, every line within 80 columns; an
80x24 SVG snapshot of the chart and of the timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Static

from opcockpit.tui.tabs.explore import ExploreView
from opcockpit.tui.tabs.explore_views import auto_bucket_s, render_mode
from opcockpit.tui.widgets.chart import ascii_terminal, bar_chart, sparkline, time_chart, timeline
from tests.tui.test_explore_tab import _open, _run, _service, explore_app, fleet  # noqa: F401

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
SMALL = (80, 24)


def _ascii_only(lines: list[str]) -> bool:
    return all(line.isascii() for line in lines)


def test_time_chart_draws_empty_buckets_and_fits() -> None:
    rows = [{"time": T0, "count": 4}, {"time": T0 + timedelta(minutes=15), "count": 8}]
    lines = time_chart(rows, bucket_s=300, width=60, height=4)
    plot = lines[:4]
    # 4 buckets (10:00, 10:05 empty, 10:10 empty, 10:15): the biggest fills every row, the empty
    # ones none; the first reaches half the height
    bars = [line.split("│", 1)[1] for line in plot]
    columns = list(zip(*bars, strict=True))
    filled = [sum(1 for c in col if c != " ") for col in columns]
    # each bucket is 5 columns wide plus a 1-column gap
    assert filled == [2] * 5 + [0] + [0] * 12 + [4] * 5 + [0]
    assert lines[0].lstrip().startswith("8 ") and lines[3].lstrip().startswith("0 ")
    assert "12 rows in 4 buckets of 5m" in lines[-1]
    assert "12-06 10:00" in lines[-2] and "12-06 10:15" in lines[-2]
    assert all(len(line) <= 60 for line in lines)


def test_time_chart_merges_buckets_to_fit_and_degrades_to_ascii() -> None:
    rows = [{"time": T0 + timedelta(minutes=i), "count": 1 + i % 3} for i in range(500)]
    lines = time_chart(rows, bucket_s=60, width=78, ascii=True)
    assert all(len(line) <= 78 for line in lines) and _ascii_only(lines)
    total = sum(1 + i % 3 for i in range(500))
    assert lines[-1].startswith(f"{total} rows in ") and "72 buckets of 7m" in lines[-1]


def test_a_small_count_never_draws_as_nothing() -> None:
    rows = [{"time": T0, "count": 1}, {"time": T0 + timedelta(minutes=1), "count": 1000}]
    for ascii in (False, True):
        bottom = time_chart(rows, bucket_s=60, width=40, height=5, ascii=ascii)[4]
        assert bottom.split("│" if not ascii else "|", 1)[1].split()[0] != ""
        assert bottom.split("│" if not ascii else "|", 1)[1][0] != " "


def test_bar_chart_scales_to_the_biggest_group() -> None:
    rows = [{"provider": "e2b", "count": 100}, {"provider": "docker", "count": 50}]
    rows.append({"provider": None, "count": 1})
    lines = bar_chart(rows, ["provider"], width=50)
    assert lines[0].startswith("e2b") and lines[2].startswith("∅")
    full = lines[0].count("█")
    assert full == 50 - 6 - 3 - 3 and abs(lines[1].count("█") - full / 2) <= 1
    assert lines[2].endswith(" 1 ▍")  # 1 of 100 on 38 columns: 0.38 of a cell, still visible
    ascii = bar_chart(rows, ["provider"], width=50, ascii=True)
    assert _ascii_only(ascii) and ascii[2].startswith("(none)") and ascii[0].count("#") == full


def test_timeline_orders_rows_and_draws_spans() -> None:
    rows = [
        {"run_id": "b", "started": T0 + timedelta(minutes=30), "ended": T0 + timedelta(minutes=60)},
        {"run_id": "a", "started": T0, "ended": None},
        {"run_id": "c", "started": None},
    ]
    lines = timeline(rows, time_field="started", label_fields=["run_id"], width=78)
    assert lines[0].startswith("2 rows, 12-06 10:00 → 12-06 11:00")
    assert lines[1].endswith(" a") and lines[2].endswith(" b")
    track_a, track_b = lines[1].split("│")[1], lines[2].split("│")[1]
    assert track_a.index("●") == 0 and "━" not in track_a
    assert track_b.index("●") == len(track_b) // 2 - 1 or track_b.index("●") == len(track_b) // 2
    assert track_b.rstrip("·").endswith("━") and track_b.endswith("━")
    assert lines[-1] == "1 rows have no started and are not shown"
    assert _ascii_only(timeline(rows, time_field="started", label_fields=["run_id"], ascii=True))


def test_timeline_labels_are_terminal_safe() -> None:
    rows = [{"started": T0, "run_id": "evil\x1b[2Jrun"}]
    line = timeline(rows, time_field="started", label_fields=["run_id"])[1]
    assert "\x1b" not in line and "evil^[[2Jrun" in line


def test_sparkline_and_auto_buckets() -> None:
    assert sparkline([0, 1, 8]) == " ▁█" and sparkline([0, 1, 8], ascii=True) == " .#"
    assert auto_bucket_s(T0, T0 + timedelta(hours=6)) == 600
    assert auto_bucket_s(T0, T0 + timedelta(seconds=30)) == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TERM": "xterm-256color", "LANG": "en_US.UTF-8"}, False),
        ({"TERM": "xterm-256color", "LANG": "en_US.UTF-8", "NO_COLOR": "1"}, True),
        ({"TERM": "xterm-256color", "LANG": "en_US.UTF-8", "NO_COLOR": ""}, False),
        ({"TERM": "linux", "LANG": "en_US.UTF-8"}, True),
        ({"TERM": "vt100"}, True),
        ({"TERM": "xterm", "LC_ALL": "C"}, True),
    ],
)
def test_ascii_terminal(env: dict[str, str], expected: bool) -> None:
    assert ascii_terminal(env) is expected


def test_render_mode_says_why_there_is_no_picture() -> None:
    class R:
        dataset = "commands"
        columns = ("command_id", "exit_code")
        rows: list[Any] = []

    assert render_mode("chart", R(), "commands", width=78, ascii=False)[0].startswith("nothing to chart")
    assert "no created column" in render_mode("timeline", R(), "commands", width=78, ascii=False)[0]
    assert render_mode("chart", None, "", width=78, ascii=False)[0].startswith("run a query first")


# ----------------------------------------------------------------------- the tab


def _chart_text(view: ExploreView) -> str:
    return str(view.query_one("#explore-chart-text", Static).render())


async def test_v_cycles_table_timeline_chart(fleet, tmp_path: Path) -> None:  # noqa: F811
    svc = _service(fleet, tmp_path / "l.db")
    async with explore_app(svc).run_test(size=SMALL) as pilot:
        view = await _open(pilot)
        view.ascii = False
        await _run(pilot, view, "run_events | count by time 6h")
        assert view.mode == "table" and view.query_one("#explore-table").display
        await pilot.press("ctrl+t")  # works from the query input
        assert view.mode == "timeline" and not view.query_one("#explore-table").display
        assert "the timeline shows rows, not counts" in _chart_text(view)
        await pilot.press("ctrl+t")
        assert view.mode == "chart"
        text = _chart_text(view)
        total = sum(r["count"] for r in view.result.rows)
        assert total == fleet.counts["run_events"] and f"{total} rows in " in text and "buckets of 6h" in text
        assert all(len(line) <= 78 for line in text.splitlines())
        # a new query keeps the view: a group count is drawn as bars
        await _run(pilot, view, "run_events | count by event_type")
        top = view.result.rows[0]
        first = _chart_text(view).splitlines()[0]
        assert first.startswith(str(top["event_type"])[:10]) and str(top["count"]) in first and "█" in first
        view.query_one("#explore-chart").focus()
        await pilot.press("v")
        assert view.mode == "table" and view.query_one("#explore-table").display


async def test_timeline_of_runs_and_ascii_chart(fleet, tmp_path: Path) -> None:  # noqa: F811
    svc = _service(fleet, tmp_path / "l.db")
    async with explore_app(svc).run_test(size=SMALL) as pilot:
        view = await _open(pilot)
        view.ascii = True  # what NO_COLOR / TERM=linux choose
        await _run(pilot, view, "runs | sort last_event | limit 8")
        view.set_mode("timeline")
        await pilot.pause()
        lines = _chart_text(view).splitlines()
        assert lines[0].startswith("8 rows, ") and len(lines) == 9
        assert all(r["run_id"][:8] in "\n".join(lines) for r in view.result.rows)
        assert all(line.isascii() and len(line) <= 78 for line in lines)
        view.set_mode("chart")
        await pilot.pause()
        chart = _chart_text(view)
        assert chart.isascii() and "8 rows in " in chart and "(rows counted by last_event" in chart


def _snap(view_mode: str, query: str, fleet: Any, tmp_path: Path) -> tuple[Any, Any]:  # noqa: F811
    svc = _service(fleet, tmp_path / "l.db")
    svc.store = None

    async def run_before(pilot: Any) -> None:
        view = await _open(pilot)
        view.ascii = False
        await _run(pilot, view, query)
        view.set_mode(view_mode)
        view.query_one("#explore-input", Input).cursor_position = 0
        await pilot.pause()

    return explore_app(svc), run_before


def test_chart_snapshot_80x24(snap_compare: Any, fleet, tmp_path: Path) -> None:  # noqa: F811
    app, run_before = _snap("chart", "run_events since:-1d | count by time 30m", fleet, tmp_path)
    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)


def test_timeline_snapshot_80x24(snap_compare: Any, fleet, tmp_path: Path) -> None:  # noqa: F811
    app, run_before = _snap("timeline", "runs | sort last_event | limit 10", fleet, tmp_path)
    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)


# ----------------------------------------------------------------------- docs/explore.md examples

DOC = Path(__file__).resolve().parents[2] / "docs" / "explore.md"


def test_every_chart_example_in_the_docs_renders_as_shown(fleet) -> None:  # noqa: F811
    import asyncio
    import re

    pattern = r"```explore-(chart|timeline|chart-ascii)\n> (.*?)\n(.*?)\n```"
    blocks = re.findall(pattern, DOC.read_text(), re.S)
    assert len(blocks) >= 4
    svc = _service(fleet, Path("/nonexistent/ledger.db"))
    svc.store = None
    for kind, query, expected in blocks:
        result = asyncio.run(svc.run(query))
        mode = "timeline" if kind == "timeline" else "chart"
        lines = render_mode(mode, result, query, width=76, ascii=kind == "chart-ascii")
        assert [line.rstrip() for line in lines] == expected.splitlines(), query
