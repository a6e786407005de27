"""Issue 15, 80 columns: the pinned key column, sideways scroll by column, the column chooser
(saved per view in the cockpit's UI state file), sort by a picked column (htop's F6), glyphs at
80 columns and words where room allows; the `?` legend of the short forms.

On main before this change: `→` scrolled one character and the Lease column scrolled away, there
was no chooser, no sort picker and no legend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opcockpit.settings.ui_state import UiState, ui_state_path
from opcockpit.tui.app import CockpitApp
from opcockpit.tui.screens.columns import ColumnsScreen, SortPickScreen
from opcockpit.tui.screens.help import legend_renderable
from tests.tui.factories import make_ground_truth
from tests.tui.screen_text import screen_text
from tests.tui.test_app import loaded, make_app
from tests.tui.test_snapshots import ready, synthetic_app


def _header(app: CockpitApp) -> str:
    return next(ln for ln in screen_text(app).splitlines() if ln[1:7] == "Lease ")


async def _highlight(pilot: Any, options: Any, value: str) -> None:
    """Move the list's highlight down onto the option `value` (as an operator would, with ↓)."""
    for _ in range(40):
        index = options.highlighted
        if index is not None and options.get_option_at_index(index).value == value:
            return
        await pilot.press("down")
    raise AssertionError(f"{value} not reached")


def _cursor_line(app: CockpitApp) -> str:
    return next(ln for ln in screen_text(app).splitlines() if ln.startswith(">"))


async def test_lease_stays_and_right_moves_one_column_at_80x24() -> None:
    app, _ = make_app([make_ground_truth(50)])
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        table = app.gt_table
        lease = table.cursor_key
        assert lease is not None
        assert _header(app).startswith(" Lease ")  # the key column comes first
        assert _header(app).rstrip().endswith("▸")  # more columns to the right, and it says so
        assert table.first_scrolled_column == "convergence"
        await pilot.press("right")
        await pilot.pause()
        assert table.first_scrolled_column == "provider"  # one whole column, not one character
        assert table.scroll_offset.x == 4  # State at 80 columns: 3 cells + the separator
        assert _cursor_line(app).startswith(f">{lease}")  # the lease never scrolls away
        assert _header(app).startswith("◂Lease")  # and columns are hidden on the left
        for _ in range(3):
            await pilot.press("right")
        await pilot.pause()
        assert table.first_scrolled_column == "observed"
        assert _cursor_line(app).startswith(f">{lease}")
        await pilot.press("left")
        await pilot.pause()
        assert table.first_scrolled_column == "desired"
        for _ in range(30):
            await pilot.press("right")  # past the last column: stops there, lease still first
        await pilot.pause()
        assert _cursor_line(app).startswith(f">{lease}")
        assert "Threads" in _header(app) and not _header(app).rstrip().endswith("▸")


async def test_state_shows_glyphs_at_80_and_words_when_wide() -> None:
    app, _ = make_app([make_ground_truth(50)])
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        assert "Reason" in _header(app)  # Lease, State, Provider and Reason fit at 80
        assert "diverged" not in screen_text(app)
        assert any(ln[20:22] == "✗ " for ln in screen_text(app).splitlines()[4:])
    app, _ = make_app([make_ground_truth(50)])
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot, app)
        assert "✗ diverged" in screen_text(app)
        assert "State" in _header(app)


async def test_column_chooser_hides_columns_and_saves_them_per_view(tmp_path: Path) -> None:
    state_file = tmp_path / "ui-state.json"
    app, _ = make_app([make_ground_truth(50)])
    app.ui_state = UiState(state_file)  # type: ignore[attr-defined]
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot, app)
        await pilot.press("C")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ColumnsScreen)
        text = screen_text(app)
        assert "Lease (pinned)" in text and "Reason" in text
        sel = screen.selection
        values = [sel.get_option_at_index(i).value for i in range(sel.option_count)]
        assert values[:4] == ["lease_id", "convergence", "provider", "reason"]  # display order
        await _highlight(pilot, screen.selection, "reason")
        await pilot.press("space", "enter")  # Reason off, apply
        await pilot.pause()
        assert app.gt_table.hidden_columns == frozenset({"reason"})
        assert "Reason" not in _header(app)
        assert "Desired" in _header(app)  # the next column takes its place
        assert json.loads(state_file.read_text()) == {"views": {"ground-truth": {"hidden": ["reason"]}}}
        # the filter still sees the hidden column
        app.gt_table.set_filter("reason:missing")
        assert 0 < app.gt_table.view_count < 50
        # another view keeps its own columns
        await pilot.press("2")
        await pilot.pause()
        assert app.orphans_table.hidden_columns == frozenset()

    again, _ = make_app([make_ground_truth(50)])
    again.ui_state = UiState(state_file)  # type: ignore[attr-defined]
    async with again.run_test(size=(120, 30)) as pilot:
        await loaded(pilot, again)
        assert again.gt_table.hidden_columns == frozenset({"reason"})  # restored on start
        assert "Reason" not in _header(again)


async def test_column_chooser_cannot_hide_the_key_and_escape_changes_nothing(tmp_path: Path) -> None:
    app, _ = make_app([make_ground_truth(20)])
    app.ui_state = UiState(tmp_path / "s.json")  # type: ignore[attr-defined]
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot, app)
        await pilot.press("C", "space", "escape")  # space on the first row: the pinned Lease
        await pilot.pause()
        assert app.gt_table.hidden_columns == frozenset()
        assert not (tmp_path / "s.json").exists()
        app.gt_table.set_hidden({"lease_id", "desired"})
        assert app.gt_table.hidden_columns == frozenset({"desired"})


async def test_sort_picker_sorts_by_the_picked_column_and_inverts_on_the_current_one() -> None:
    app, _ = make_app([make_ground_truth(50)])
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        table = app.gt_table
        assert table.sort_column == "convergence"
        await pilot.press("S")
        await pilot.pause()
        assert isinstance(app.screen, SortPickScreen)
        # the list is in display order: Lease, State (current, highlighted), Provider, Reason, …
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert table.sort_column == "reason" and not table.sort_reverse
        assert "Reason▲" in _header(app)
        await pilot.press("f6", "enter")  # F6 too, as in htop; Enter on the current one inverts
        await pilot.pause()
        assert table.sort_column == "reason" and table.sort_reverse
        await pilot.press("S")
        await pilot.press("end", "enter")  # the last column, far off screen at 80: scrolled to it
        await pilot.pause()
        assert table.sort_column == "threads"
        assert "Threads▲" in _header(app)


def test_ui_state_file_that_does_not_parse_is_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "opcockpit" / "ui-state.json"
    path.parent.mkdir()
    path.write_text("{not json")
    store = UiState(path)
    assert store.load_view("ground-truth") == {}
    assert store.problem is not None and "ui-state.json.bad" in store.problem
    assert (path.parent / "ui-state.json.bad").read_text() == "{not json"  # nothing lost
    store.save_view("orphans", {"hidden": ["labels"]})
    assert UiState(path).load_view("orphans") == {"hidden": ["labels"]}


def test_ui_state_path_is_under_xdg_state_home(tmp_path: Path) -> None:
    assert ui_state_path({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "opcockpit" / "ui-state.json"
    assert ui_state_path({"OPCOCKPIT_UI_STATE": str(tmp_path / "x.json")}) == tmp_path / "x.json"


async def test_a_bare_app_never_touches_the_operators_state_file(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    app, _ = make_app([make_ground_truth(10)])
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot, app)
        app.gt_table.set_hidden({"desired"})
        await pilot.pause()
    assert not list(tmp_path.rglob("*.json"))


def test_help_legend_decodes_every_short_form() -> None:
    import io

    from rich.console import Console

    console = Console(width=100, file=io.StringIO(), record=True, color_system=None)
    console.print(legend_renderable())
    text = console.export_text()
    for short in ("⚠ 1c 2w", "(-1)", "!probe", "✗ confirmed", "○ unbound", "⧗", "✗!", "⊘", "✓ack", "◂ ▸"):
        assert short in text, short
    assert "slow" in text and "dropped" in text  # what (-1) means, in words
    assert "instance is gone" in text  # ○ unbound, in words


async def test_help_screen_shows_the_legend() -> None:
    app, _ = make_app([make_ground_truth(10)])
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        help_box = app.screen.query_one("#help-box")
        help_box.scroll_end(animate=False)
        await pilot.pause()
        assert "more columns to the left / right" in screen_text(app)  # the legend's last line


def test_snapshot_ground_truth_80x24(snap_compare: Any) -> None:
    assert snap_compare(synthetic_app(demo_banner="DEMO seed 7"), terminal_size=(80, 24), run_before=ready())


def test_snapshot_ground_truth_80x24_scrolled(snap_compare: Any) -> None:
    assert snap_compare(synthetic_app(), terminal_size=(80, 24), run_before=ready("right", "right"))
