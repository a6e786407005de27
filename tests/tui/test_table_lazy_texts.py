"""Issue 10 (RSS): the table model holds display texts only for the rows painted (or read), and for
every row while a filter is set; a 2,000-row table on a real KeyedTable in a Textual pilot formats
the rows on screen, not the others. The texts it makes are the ones it would have kept. The widget
keeps a bounded number of rendered row strips however far the table is scrolled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from opcockpit.tui.rows import age_cell
from opcockpit.tui.table.ages import AgeStamp
from opcockpit.tui.table.model import Column, TableModel
from opcockpit.tui.table.widget import STRIP_CACHE_SIZE, KeyedTable
from tests.tui.screen_text import screen_text
from tests.tui.table_support import OneTableApp

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
COLS = [
    Column("id", "ID", 10),
    Column("n", "N", 6, "right"),
    Column("age", "Age", 6, "right", age_cell, flash=False),
]


def _rows(n: int) -> dict[str, tuple[Any, ...]]:
    return {f"row-{i:05d}": (f"row-{i:05d}", i, AgeStamp(T0 - timedelta(seconds=i))) for i in range(n)}


def _formatted(model: TableModel) -> int:
    return sum(row.texts is not None for row in model._rows.values())


async def test_only_the_rows_on_screen_are_formatted() -> None:
    table = KeyedTable(COLS, id="t")
    app = OneTableApp(table, _rows(2000), now=T0 + timedelta(seconds=30))
    async with app.run_test(size=(40, 14)) as pilot:
        await pilot.pause()
        assert "row-00000" in screen_text(app)
        assert 0 < _formatted(table.model) <= 14
        await pilot.press("end")
        await pilot.pause()
        assert "row-01999" in screen_text(app)
        assert _formatted(table.model) <= 28  # the first screen and the last
        table.replace({**_rows(2000), "row-01999": ("row-01999", -1, None)})  # a painted row changes
        await pilot.pause()
        assert "row-01999" in screen_text(app) and "   -1" in screen_text(app)


def test_texts_made_late_equal_texts_made_at_once_and_a_filter_sees_every_row() -> None:
    now = T0 + timedelta(seconds=90)
    model = TableModel(COLS)
    model.set_now(now)
    model.replace(_rows(300))
    assert _formatted(model) == 0
    assert model.get_texts("row-00007") == ("row-00007", "7", age_cell(97))
    model.set_filter("n:12")
    assert _formatted(model) == 300
    assert model.view_keys() == [f"row-{i:05d}" for i in range(300) if "12" in str(i)]
    model.set_filter("")
    assert _formatted(model) == 0 and model.view_count == 300
    assert model.get_texts("row-00299") == ("row-00299", "299", age_cell(389))


async def test_scrolling_through_keeps_a_bounded_number_of_rendered_strips() -> None:
    table = KeyedTable(COLS, id="t")
    app = OneTableApp(table, _rows(2000), now=T0)
    async with app.run_test(size=(40, 14)) as pilot:
        for _ in range(2000 // 10):
            await pilot.press("pagedown")
        await pilot.pause()
        assert "row-01999" in screen_text(app)
        assert table.strips_rendered >= 1990  # every row was painted once
        assert len(table._strips) <= STRIP_CACHE_SIZE < 2000
        rendered = table.strips_rendered
        table.refresh()
        await pilot.pause()
        assert table.strips_rendered == rendered  # the rows on screen come from the cache
