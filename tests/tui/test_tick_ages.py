"""Ages painted at render time (issue 10, the idle tick): AgeStamp cells show their bucketed age at
the table's `now`; time passing changes no cell, repaints only when an age on screen moved, and
the texts, the sort and a filter always agree with cells that held the ages themselves."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from opcockpit.tui.rows import age_cell, age_of
from opcockpit.tui.table.ages import AgeStamp
from opcockpit.tui.table.model import Column, TableModel
from tests.tui.conftest import record_calls
from tests.tui.screen_text import screen_text
from tests.tui.table_support import CountingTable, OneTableApp

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
COLS = [Column("id", "ID", 8), Column("age", "Age", 6, "right", age_cell, flash=False)]


def _stamped(ages_s: dict[str, int | None]) -> dict[str, tuple[Any, ...]]:
    return {k: (k, None if s is None else AgeStamp(T0 - timedelta(seconds=s))) for k, s in ages_s.items()}


def _aged(ages_s: dict[str, int | None], now: datetime) -> dict[str, tuple[Any, ...]]:
    """The same rows as cells that hold the bucketed ages at `now` (what the table held before)."""
    return {k: (k, None if s is None else age_of(T0 - timedelta(seconds=s), now)) for k, s in ages_s.items()}


ages = st.dictionaries(
    st.sampled_from([f"r{i}" for i in range(12)]), st.one_of(st.none(), st.integers(-30, 200_000)), min_size=1
)


@settings(max_examples=120, deadline=None)
@given(
    rows=ages,
    ticks=st.lists(st.integers(0, 7200), min_size=1, max_size=8),
    filt=st.sampled_from(["", "age:^5s$", "age:m$", "age:h", "r1"]),
    reverse=st.booleans(),
)
def test_painted_ages_equal_cells_that_hold_the_ages(
    rows: dict[str, int | None], ticks: list[int], filt: str, reverse: bool
) -> None:
    painted = TableModel(COLS, flash_seconds=0)
    held = TableModel(COLS, flash_seconds=0)
    now = T0
    painted.set_now(now)
    painted.replace(_stamped(rows))
    for m in (painted, held):
        m.sort_by("age", reverse)
        m.set_filter(filt)
    for tick in ticks:
        now += timedelta(seconds=tick)
        painted.set_now(now)
        held.replace(_aged(rows, now))
        keys = painted.view_keys()
        assert set(keys) == set(held.view_keys())  # the filter keeps the same rows
        assert [painted.get_texts(k) for k in keys] == [held.get_texts(k) for k in keys]
        # sorted by age: youngest first (reverse: oldest first); unknown ages at the end (start)
        shown = [rows[k] for k in keys]
        known = [s for s in shown if s is not None]
        assert known == sorted(known, reverse=reverse)
        assert (shown[-len(known) :] if reverse else shown[: len(known)]) == known or not known


def test_a_row_is_painted_again_only_when_its_age_text_moves() -> None:
    m = TableModel(COLS, flash_seconds=0)
    m.set_now(T0)
    m.replace(_stamped({"fresh": 2, "old": 7200}))
    v_fresh, v_old = m.row_version("fresh"), m.row_version("old")
    m.set_now(T0 + timedelta(seconds=2))  # fresh: 4 s, still the "0s" bucket; old: 2h
    assert (m.row_version("fresh"), m.row_version("old")) == (v_fresh, v_old)
    m.set_now(T0 + timedelta(seconds=4))  # fresh crosses 5 s
    assert m.row_version("fresh") == v_fresh + 1 and m.row_version("old") == v_old
    assert m.get_texts("fresh")[1] == "5s" and m.get_texts("old")[1] == "2h"


def _hours_old_but(fresh: str) -> tuple[CountingTable, OneTableApp]:
    """400 rows r000..r399 aged 2 h and more, but `fresh` (1 s old), in a counting table."""
    ages_s: dict[str, int | None] = {f"r{i:03d}": 7200 + 3600 * i for i in range(400)}
    ages_s[fresh] = 1
    table = CountingTable(COLS, flash_seconds=0)
    return table, OneTableApp(table, _stamped(ages_s), now=T0)


async def test_time_passing_repaints_only_when_an_age_on_screen_moves() -> None:
    # On screen (sorted by id): r000.. aged 2 h and more; a fresh row far below the screen.
    table, app = _hours_old_but("r399")
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        before = screen_text(app)
        assert "r000" in before and " 2h" in before
        n = table.refreshes
        table.set_now(T0 + timedelta(seconds=30))  # only r399 (off screen) moved
        await pilot.pause()
        assert table.refreshes == n and screen_text(app) == before
        table.set_now(T0 + timedelta(minutes=10))  # r000: 2h -> 2h10m, on screen
        await pilot.pause()
        assert table.refreshes > n
        assert any("r000" in line and "2h10m" in line for line in screen_text(app).splitlines())
        # Scrolling to the row that was off screen shows its age at the table's now, not stale.
        assert table.move_cursor_to_key("r399")
        await pilot.pause()
        line = next(ln for ln in screen_text(app).splitlines() if "r399" in ln)
        assert line.rstrip().endswith(age_cell(age_of(T0 - timedelta(seconds=1), T0 + timedelta(minutes=10))))


async def test_a_quiet_tick_repaints_only_the_lines_whose_age_moved() -> None:
    # Sorted by id: r002 (fresh, 5 s steps) on the third body line, the others hours old.
    table, app = _hours_old_but("r002")
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        whole, table.regions = table.whole, []
        table.set_now(T0 + timedelta(seconds=10))  # r002: 0s -> 10s; every other age stays
        await pilot.pause()
        assert table.whole == whole  # not the whole widget ...
        assert [(r.y, r.height) for r in table.regions] == [(3, 1)]  # ... its line (header is 0)
        assert table.lines_repainted == 1
        line = next(ln for ln in screen_text(app).splitlines() if "r002" in ln)
        assert line.rstrip().endswith("10s")  # and the screen shows it
        table.move_cursor(5)  # the cursor moved: a whole repaint, as before
        await pilot.pause()
        assert table.whole > whole


def test_ages_shown_before_a_now_is_set_are_blank_then_painted() -> None:
    m = TableModel(COLS, flash_seconds=0)
    m.replace(_stamped({"a": 90}))
    assert m.get_texts("a")[1] == ""
    m.set_now(T0)
    assert m.get_texts("a")[1] == "1m"
    version = m.row_version("a")
    assert m.set_now(T0) is None and m.row_version("a") == version  # the same now: a no-op


async def test_a_table_not_on_screen_paints_nothing_until_shown_then_shows_the_ages_now() -> None:
    table = CountingTable(COLS, flash_seconds=0)
    app = OneTableApp(table, _stamped({"r000": 1, "r001": 7200}), now=T0)
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        table.display = False  # another tab is shown
        await pilot.pause()
        n = table.refreshes
        table.set_now(T0 + timedelta(seconds=30))  # r000: 0s -> 30s, but nobody sees it
        assert table.refreshes == n
        table.display = True
        await pilot.pause()
        line = next(ln for ln in screen_text(app).splitlines() if "r000" in ln)
        assert line.rstrip().endswith("30s")


def test_an_age_still_in_its_bucket_is_not_formatted_again() -> None:
    """A carried tick re-ages the rows on screen: a cell whose bucket did not move keeps its text
    without formatting it (the text is a function of the bucket); a moved bucket is formatted."""
    model = TableModel(COLS, flash_seconds=0)
    model.set_now(T0)
    model.replace(_stamped({"a": 10 * 60 + 5, "b": 3 * 3600 + 60}))  # 10m, 3h (10-minute steps)
    assert [model.get_texts(k)[1] for k in ("a", "b")] == ["10m", "3h"]
    versions = {k: model.row_version(k) for k in ("a", "b")}
    formatted: list[Any] = []
    real = model._text

    def counting(column: Any, value: Any) -> str:
        formatted.append(value)
        return real(column, value)

    model._text = counting  # type: ignore[method-assign]
    model.set_now(T0 + timedelta(seconds=20))  # both still in their buckets
    assert {k: model.row_version(k) for k in ("a", "b")} == versions and formatted == []
    model.set_now(T0 + timedelta(seconds=60))  # a: 11m; b: still 3h
    assert model.get_texts("a")[1] == "11m" and model.row_version("a") == versions["a"] + 1
    assert model.row_version("b") == versions["b"] and len(formatted) == 1


async def test_every_age_that_moves_on_screen_is_repainted_and_calm_rows_are_not_aged() -> None:
    """Ticks of random lengths over rows of every age range (and a scroll now and then): the screen
    shows every age at the tick's time, each line that moved was asked for alone (the table is
    not redrawn whole), and a row whose ages keep their texts is not aged at all (tables.set_now keeps,
    per row on screen, when its next age turns: ages.age_window)."""
    rng = random.Random(10)
    spans = ((-10, 59), (60, 3599), (3600, 86_399), (86_400, 10**6))
    ages_s: dict[str, int | None] = {f"r{i:03d}": rng.randint(*rng.choice(spans)) for i in range(80)}
    table = CountingTable(COLS, flash_seconds=0)
    app = OneTableApp(table, _stamped(ages_s), now=T0)
    aged: list[str] = []
    record_calls(table.model, "_age", lambda row: aged.append(row.key))
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        now, moved_lines, ticks = T0, 0, 0
        for n in range(80):
            if n % 20 == 19:
                table.move_cursor((table.cursor_index or 0) + 9)  # another window of rows
                await pilot.pause()
            before = screen_text(app).splitlines()
            table.regions, whole, aged[:] = [], table.whole, []
            now += timedelta(seconds=rng.choice((1, 2, 2, 3, 7, 30, 61, 600)))
            table.set_now(now)
            aged_now = len(aged)
            asked = {y for r in getattr(table, "regions", []) for y in range(r.y, r.y + r.height)}
            await pilot.pause()
            after = screen_text(app).splitlines()
            moved = {y for y, (a, b) in enumerate(zip(before, after, strict=True)) if a != b}
            assert table.whole == whole and moved <= asked, (n, moved, asked)
            for line in after:  # and the screen shows every age at `now`
                key = line[1:5]
                if key in ages_s:
                    at = T0 - timedelta(seconds=ages_s[key] or 0)
                    assert line.split()[1] == age_cell(age_of(at, now)), (n, line)
            # Aged in the tick: the rows whose next age turned (the first tick, and the one after a
            # scroll: every row new on screen).
            assert n % 20 in (0, 19) or aged_now <= len(moved) + 1, (n, aged[:aged_now], moved)
            moved_lines += len(moved)
            ticks += not moved
        assert moved_lines >= 20 and ticks >= 10  # both kinds of tick were seen
