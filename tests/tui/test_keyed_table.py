"""KeyedTable: keyed updates, cursor by key, sort, filter, marks, flash, strip reuse (pilot tests)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from textual.app import App, ComposeResult

from opcockpit.domain.models import Convergence
from opcockpit.domain.tablediff import TableDiff, diff_rows
from opcockpit.tui.rows import GT_INDEX, gt_table
from opcockpit.tui.table.model import parse_filter
from opcockpit.tui.table.widget import Column, KeyedTable
from opcockpit.tui.widgets.tables import ground_truth_table
from tests.tui.factories import make_ground_truth, mutate


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class TableApp(App[None]):
    def __init__(self, table: KeyedTable, rows: dict[str, tuple[Any, ...]]) -> None:
        super().__init__()
        self.table = table
        self.rows = rows
        self.highlighted: list[str | None] = []
        self.selected: list[str] = []

    def compose(self) -> ComposeResult:
        yield self.table

    def on_mount(self) -> None:
        self.table.replace(self.rows)
        self.table.focus()

    def on_keyed_table_row_highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        self.highlighted.append(event.key)

    def on_keyed_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        self.selected.append(event.key)


COLS = [Column("id", "ID", 8), Column("state", "State", 10), Column("n", "N", 5, "right")]


def small_rows(n: int = 50) -> dict[str, tuple[Any, ...]]:
    return {f"r{i:03d}": (f"r{i:03d}", ("running", "paused", "stopped")[i % 3], i % 7) for i in range(n)}


def visible_text(table: KeyedTable) -> list[str]:
    return [table.render_line(y).text for y in range(table.scrollable_content_region.height)]


# ----------------------------------------------------------------------- pure helpers


def test_diff_rows_reports_only_changes() -> None:
    old = {"a": (1, 2, 3), "b": (4, 5, 6), "c": (7, 8, 9)}
    new = {"a": (1, 2, 3), "b": (4, 0, 6), "d": (0, 0, 0)}
    d = diff_rows(old, new)
    assert d.added == {"d": (0, 0, 0)}
    assert d.removed == ("c",)
    assert d.changed == {"b": {1: 0}}
    assert diff_rows(new, dict(new)).empty


def test_filter_syntax() -> None:
    cols = [("id", "ID"), ("state", "State")]
    rows = [("r1", "running"), ("r2", "paused"), ("x3", "run-away")]

    def keep(expr: str) -> list[str]:
        pred = parse_filter(expr, cols)
        assert pred is not None
        return [r[0] for r in rows if pred(r, "\x1f".join(r))]

    assert keep("run") == ["r1", "x3"]  # substring
    assert keep("^r[0-9]") == ["r1", "r2"]  # regex
    assert keep("!paused") == ["r1", "x3"]  # inverse
    assert keep("state:^run") == ["r1", "x3"]  # field:value, by key
    assert keep("State:paused") == ["r2"]  # field:value, by label
    assert keep("id:r !state:paused") == ["r1"]  # terms AND together
    assert keep("([") == []  # invalid regex falls back to a literal substring
    assert parse_filter("   ", cols) is None


# ----------------------------------------------------------------------- pilot


async def test_cursor_stays_on_key_when_refresh_moves_the_row() -> None:
    table = KeyedTable(COLS, flash_seconds=0)
    app = TableApp(table, small_rows())
    async with app.run_test(size=(40, 12)) as pilot:
        table.sort_by("n")
        await pilot.pause()
        await pilot.press("down", "down", "down")
        key = table.cursor_key
        assert key is not None
        before_index = table.cursor_index
        screen_line = before_index - table.scroll_offset.y
        # The refresh moves the selected row from near the top to the middle of the sort order,
        # adds a row above it and removes another.
        rows = small_rows()
        rows[key] = (key, "paused", 3.5)
        rows["a-new"] = ("a-new", "running", 0)
        del rows["r005"]
        table.replace(rows)
        await pilot.pause()
        assert table.cursor_key == key
        expected = sum(1 for k, r in rows.items() if r[2] <= 3 and k != key)
        assert table.cursor_index == expected != before_index
        # The cursor row keeps its screen line: the operator's eye does not have to chase it.
        assert table.cursor_index - table.scroll_offset.y == screen_line
        assert ">" + key in "".join(visible_text(table))
        assert "r005" not in table
        assert "a-new" in table


async def test_refresh_is_keyed_unchanged_rows_keep_version_and_cached_strips() -> None:
    gt = make_ground_truth(300)
    table = ground_truth_table(flash_seconds=0)
    app = TableApp(table, gt_table(gt))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        visible = table.view_keys()[:28]
        strips = {k: table.cached_strip(k) for k in visible}
        assert all(s is not None for s in strips.values())
        versions = {k: table.row_version(k) for k in table.view_keys()}
        # Change exactly one visible row that is not under the cursor.
        target = visible[5]
        new_gt = replace(
            gt,
            rows=tuple(
                replace(r, reason="changed!", version=r.version + 1) if r.lease_id == target else r
                for r in gt.rows
            ),
        )
        diff = table.replace(gt_table(new_gt))
        assert set(diff.changed) == {target} and not diff.added and not diff.removed
        rendered_before = table.strips_rendered
        await pilot.pause()
        visible_text(table)
        # No clear(): the row store kept every key, only the changed row got a new version ...
        assert table.row_count == 300
        assert {k: table.row_version(k) for k in table.view_keys() if k != target} == {
            k: v for k, v in versions.items() if k != target
        }
        assert table.row_version(target) == versions[target] + 1
        # ... the cursor did not move, and repainting re-rendered only that row.
        assert table.cursor_key == visible[0]
        assert table.strips_rendered - rendered_before == 1
        for k in visible:
            if k != target:
                assert table.cached_strip(k) is strips[k]
        assert table.cached_strip(target) is not strips[target]
        assert "changed!" in table.cached_strip(target).text


async def test_sort_keys_are_stable_and_invertible() -> None:
    table = KeyedTable(COLS, flash_seconds=0)
    app = TableApp(table, small_rows(30))
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        assert table.sort_column == "id"
        await pilot.press("greater_than_sign")  # sort by "state"
        assert table.sort_column == "state"
        keys = table.view_keys()
        states = [table.get_row(k)[1] for k in keys]
        assert states == sorted(states)
        # Stable: within one state, rows keep key order.
        paused = [k for k in keys if table.get_row(k)[1] == "paused"]
        assert paused == sorted(paused)
        await pilot.press("i")
        assert table.sort_reverse
        assert table.view_keys() == list(reversed(keys))
        assert "State▼" in visible_text(table)[0]


async def test_filter_is_a_view_and_cursor_survives_it() -> None:
    table = KeyedTable(COLS, flash_seconds=0)
    app = TableApp(table, small_rows(30))
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        await pilot.press("down", "down", "down")  # r003 (running)
        assert table.cursor_key == "r003"
        table.set_filter("state:running")
        assert table.view_count == 10 and table.row_count == 30
        assert table.cursor_key == "r003"
        # Updates arriving while filtered: a row leaving the filter disappears from the view only.
        rows = small_rows(30)
        rows["r006"] = ("r006", "paused", 6)
        table.replace(rows)
        assert "r006" not in table.view_keys() and "r006" in table
        table.set_filter("!state:running")
        assert "r006" in table.view_keys()
        assert table.cursor_key in table.view_keys()
        table.set_filter("zzz")
        await pilot.pause()
        assert table.view_count == 0 and table.cursor_key is None
        assert "no rows match filter 'zzz'" in visible_text(table)[1]
        table.set_filter("")
        assert table.view_count == 30


async def test_removing_cursor_row_moves_to_neighbour_and_drops_marks() -> None:
    table = KeyedTable(COLS, flash_seconds=0)
    app = TableApp(table, small_rows(10))
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        await pilot.press("down", "space", "space")  # marks r001 and r002, cursor on r003
        assert table.marked == {"r001", "r002"}
        assert table.cursor_key == "r003"
        table.remove_rows(["r003", "r001"])
        await pilot.pause()
        assert table.cursor_key == "r004"  # same index, next row
        assert table.marked == {"r002"}
        assert app.highlighted[-1] == "r004"
        await pilot.press("enter")
        await pilot.pause()
        assert app.selected == ["r004"]


async def test_changed_cells_flash_then_fade_in_O_changed() -> None:
    clock = FakeClock()
    table = ground_truth_table(flash_seconds=1.5, clock=clock)
    gt = make_ground_truth(100)
    app = TableApp(table, gt_table(gt))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert not any(table.flashing(k) for k in table.view_keys())  # first load does not flash
        new = mutate(gt, 0.05)
        diff = table.replace(gt_table(new))
        assert diff.changed
        for key, cells in diff.changed.items():
            assert table.flashing(key) == frozenset(cells)  # only the changed cells
            assert GT_INDEX["version"] in table.flashing(key)  # `mutate` bumps every version
        unchanged = next(k for k in table.view_keys() if k not in diff.changed)
        assert table.flashing(unchanged) == frozenset()
        clock.t += 1.0
        table.expire_flashes()
        assert all(table.flashing(k) for k in diff.changed)
        clock.t += 1.0
        table.expire_flashes()
        assert not any(table.flashing(k) for k in diff.changed)


async def test_diverged_rows_carry_a_glyph_and_stale_rows_their_age() -> None:
    gt = make_ground_truth(60)
    table = ground_truth_table(flash_seconds=0)
    app = TableApp(table, gt_table(gt))
    async with app.run_test(size=(200, 70)) as pilot:
        await pilot.pause()
        text = "\n".join(visible_text(table))
        diverged = [r for r in gt.rows if r.convergence == Convergence.DIVERGED]
        assert diverged
        for r in diverged:
            line = next(ln for ln in text.splitlines() if r.lease_id in ln)
            assert "✗ diverged" in line
        stale = next(r for r in gt.rows if r.convergence == Convergence.STALE)
        line = next(ln for ln in text.splitlines() if stale.lease_id in ln)
        assert "~ stale" in line


@pytest.mark.parametrize("n", [1, 200])
async def test_upsert_update_cells_and_apply_share_one_path(n: int) -> None:
    table = KeyedTable(COLS, flash_seconds=0)
    app = TableApp(table, small_rows(n))
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        table.update_cells("r000", {"state": "gone", 2: 42})
        assert table.get_row("r000") == ("r000", "gone", 42)
        table.upsert_rows({"r000": ("r000", "gone", 42), "zz": ("zz", "new", 1)})
        assert table.row_version("r000") == 1  # identical upsert is not a change
        table.apply(TableDiff(removed=("zz",)))
        assert "zz" not in table and table.row_count == n
