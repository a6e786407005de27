"""TableModel without Textual: rows by key, sort, filter, marks, cursor key, flashes, window."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from opcockpit.domain.tablediff import TableDiff
from opcockpit.tui.table.model import Column, TableModel, parse_filter

COLS = [Column("id", "ID", 8), Column("state", "State", 10), Column("n", "N", 5, "right")]


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def rows(n: int = 6) -> dict[str, tuple[Any, ...]]:
    return {f"r{i}": (f"r{i}", ("running", "paused", "stopped")[i % 3], i) for i in range(n)}


def model(n: int = 6, **kw: Any) -> TableModel:
    m = TableModel(COLS, clock=kw.pop("clock", Clock()), **kw)
    m.replace(rows(n))
    return m


def test_model_imports_no_textual() -> None:
    code = "import sys, opcockpit.tui.table.model; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_replace_holds_exactly_the_rows_in_key_order() -> None:
    m = model()
    assert m.row_count == 6
    assert m.view_keys() == ["r0", "r1", "r2", "r3", "r4", "r5"]
    assert m.get_row("r4") == ("r4", "paused", 4)
    assert m.get_texts("r4") == ("r4", "paused", "4")
    diff, applied = m.replace({"r0": ("r0", "running", 0), "r9": ("r9", "paused", 9)})
    assert diff.removed == ("r1", "r2", "r3", "r4", "r5")
    assert list(diff.added) == ["r9"]
    assert applied is not None and applied.removed == ("r1", "r2", "r3", "r4", "r5")
    assert m.view_keys() == ["r0", "r9"]
    assert m.snapshot() == {"r0": ("r0", "running", 0), "r9": ("r9", "paused", 9)}


def test_unchanged_replace_is_a_no_op() -> None:
    m = model()
    diff, applied = m.replace(rows())
    assert diff.empty
    assert applied is None
    assert m.row_version("r3") == 0


def test_changed_cell_bumps_the_version_and_flashes_only_that_column() -> None:
    clock = Clock()
    m = model(clock=clock)
    applied = m.apply(TableDiff(changed={"r2": {1: "running"}}))
    assert applied is not None and applied.flashing
    assert m.row_version("r2") == 1
    assert m.row_version("r1") == 0
    assert m.flashing("r2") == frozenset({1})
    assert m.flashing("r1") == frozenset()
    clock.t += 1.0
    assert m.expire_flashes() == (False, 0.5)
    clock.t += 0.5
    assert m.expire_flashes() == (True, None)
    assert m.flashing("r2") == frozenset()


def test_first_fill_does_not_flash() -> None:
    m = model()
    assert m.flashing("r0") == frozenset()


def test_sort_is_stable_by_key_and_reversible() -> None:
    m = model()
    m.sort_by("state")
    assert m.view_keys() == ["r1", "r4", "r0", "r3", "r2", "r5"]
    m.sort_by("n", reverse=True)
    assert m.view_keys() == ["r5", "r4", "r3", "r2", "r1", "r0"]
    assert (m.sort_column, m.sort_reverse) == ("n", True)
    m.step_sort(1)  # wraps to the first column, keeps the direction
    assert (m.sort_column, m.sort_reverse) == ("id", True)


def test_changed_sort_value_moves_the_row() -> None:
    m = model()
    m.sort_by("n")
    m.apply(TableDiff(changed={"r0": {2: 99}}))
    assert m.view_keys() == ["r1", "r2", "r3", "r4", "r5", "r0"]
    assert m.view_index("r0") == 5


def test_mixed_types_and_none_sort_without_raising() -> None:
    m = TableModel(COLS, clock=Clock())
    m.replace({"a": ("a", "x", None), "b": ("b", "x", "text"), "c": ("c", "x", 3)})
    m.sort_by("n")
    assert m.view_keys() == ["c", "b", "a"]


def test_filter_terms_field_and_inverse() -> None:
    m = model()
    m.set_filter("state:run")
    assert m.view_keys() == ["r0", "r3"]
    assert m.view_count == 2 and m.row_count == 6
    m.set_filter("!paused !stopped")
    assert m.view_keys() == ["r0", "r3"]
    m.set_filter("r[45]")
    assert m.view_keys() == ["r4", "r5"]
    m.set_filter("(")  # invalid regex: a plain substring, no error
    assert m.view_keys() == []
    m.set_filter("")
    assert m.view_count == 6


def test_parse_filter_unknown_field_is_plain_text() -> None:
    pred = parse_filter("a:b", [("id", "ID")])
    assert pred is not None
    assert pred(("a:b",), "a:b") is True
    assert pred(("ab",), "ab") is False
    assert parse_filter("  ", [("id", "ID")]) is None


def test_cursor_stays_on_its_key_across_changes() -> None:
    m = model()
    move = m.set_cursor(3)
    assert move is not None and (move.old_key, move.key, move.index) == ("r0", "r3", 3)
    m.sort_by("n", reverse=True)
    assert (m.cursor_key, m.cursor_index) == ("r3", 2)
    applied = m.apply(TableDiff(added={"r6": ("r6", "running", 6)}))
    assert applied is not None and not applied.cursor.moved
    assert (m.cursor_key, m.cursor_index) == ("r3", 3)


def test_cursor_goes_to_the_next_neighbour_when_its_row_vanishes() -> None:
    m = model()
    m.set_cursor(2)
    applied = m.apply(TableDiff(removed=("r2",)))
    assert applied is not None
    assert (applied.cursor.old_key, applied.cursor.key, applied.cursor.index) == ("r2", "r3", 2)
    m.set_cursor(4)
    assert m.cursor_key == "r5"
    m.apply(TableDiff(removed=("r5",)))  # the last row: the one before it
    assert m.cursor_key == "r4"


def test_filter_hiding_the_cursor_row_moves_it_to_a_visible_neighbour() -> None:
    m = model()
    m.set_cursor(1)
    move = m.set_filter("state:stopped")
    assert (move.key, move.index) == ("r2", 0)
    assert m.set_filter("nothing-matches").key is None
    assert m.cursor_index is None


def test_set_cursor_clamps_and_an_empty_view_has_no_cursor() -> None:
    m = model()
    move = m.set_cursor(99)
    assert move is not None and (move.key, move.index) == ("r5", 5)
    assert TableModel(COLS).set_cursor(0) is None


def test_marks_follow_keys_and_vanish_with_their_row() -> None:
    m = model()
    assert m.toggle_mark("r1") is True
    assert m.toggle_mark("r4") is True
    assert m.toggle_mark("nope") is False
    assert m.marked == frozenset({"r1", "r4"})
    m.sort_by("n", reverse=True)
    assert m.marked == frozenset({"r1", "r4"})
    m.apply(TableDiff(removed=("r1",)))
    assert m.marked == frozenset({"r4"})
    assert m.clear_marks() is True
    assert m.clear_marks() is False
    assert m.marked == frozenset()


def test_unmarkable_model_ignores_marks() -> None:
    m = model(markable=False)
    assert m.toggle_mark("r1") is False
    assert m.marked == frozenset()


def test_window_is_the_visible_slice_in_view_order() -> None:
    m = model()
    m.sort_by("n", reverse=True)
    assert m.window(1, 3) == ["r4", "r3", "r2"]
    assert m.window(4, 10) == ["r1", "r0"]
    m.set_filter("state:paused")
    assert m.window(0, 10) == ["r4", "r1"]


def test_add_of_a_known_key_updates_every_cell() -> None:
    m = model()
    m.apply(TableDiff(added={"r1": ("r1", "stopped", 10)}))
    assert m.row_count == 6
    assert m.get_row("r1") == ("r1", "stopped", 10)
    assert m.row_version("r1") == 1


def test_cell_texts_are_terminal_safe() -> None:
    m = TableModel(COLS)
    m.replace({"x": ("x\x1b]0;pwned\x07", "ok", 1)})
    assert "\x1b" not in m.get_texts("x")[0]
    assert m.get_texts("x")[0] == "x^[]0;pwned\\x07"


def test_columns_format_and_sort_key() -> None:
    cols = [Column("id", "ID", 4), Column("age", "Age", 4, format=lambda v: f"{v}s", sort_key=lambda v: -v)]
    m = TableModel(cols)
    m.replace({"a": ("a", 5), "b": ("b", 9)})
    assert m.get_texts("a") == ("a", "5s")
    m.sort_by("age")
    assert m.view_keys() == ["b", "a"]
    assert m.column_index("age") == 1


def test_a_changed_cell_reformats_that_cell_and_keeps_sort_and_filter_right() -> None:
    """apply() formats only the changed cells of a row (issue 10); texts, order and the filter
    verdict are what a model built from scratch on the same rows has."""
    m = model(6)
    m.sort_by("n")
    m.set_filter("state:run")
    m.apply(TableDiff(changed={"r1": {2: 99}, "r3": {1: "paused"}, "r4": {1: "running"}}))
    fresh = model(0)
    after = rows(6)
    after["r1"] = ("r1", "paused", 99)
    after["r3"] = ("r3", "paused", 3)
    after["r4"] = ("r4", "running", 4)
    fresh.replace(after)
    fresh.sort_by("n")
    fresh.set_filter("state:run")
    assert m.view_keys() == fresh.view_keys() == ["r0", "r4"]
    assert all(m.get_texts(k) == fresh.get_texts(k) for k in after)
    m.set_filter("")
    assert m.view_keys()[-1] == "r1"  # its sort value moved with the changed cell


def test_rows_sorted_by_an_enum_column_share_its_sort_values() -> None:
    """The ground-truth table sorts by convergence (a StrEnum): one sort value per member, not a
    casefolded copy per row (~1.2 MB at 10k rows); the order is the casefolded text's."""
    from opcockpit.domain.models import Convergence

    m = TableModel([Column("state", "State", 10), Column("id", "ID", 8)], clock=Clock())
    members = (Convergence.DIVERGED, Convergence.CONVERGED, Convergence.STALE)
    m.replace({f"r{i}": (members[i % 3], f"r{i}") for i in range(9)})
    assert m.view_keys() == ["r1", "r4", "r7", "r0", "r3", "r6", "r2", "r5", "r8"]
    sks = [m._rows[k].sk for k in ("r0", "r3", "r6")]
    assert sks[0][:3] == (1, 0, "diverged") and all(sk[2] is sks[0][2] for sk in sks)


def test_a_rows_sort_entry_is_one_flat_tuple() -> None:
    """(sort value parts..., key) in one tuple, not a (sort value, key) pair holding a second
    tuple per row (~50 bytes a row at 10k rows); the order is the same."""
    m = TableModel([Column("n", "N", 6), Column("id", "ID", 8)], clock=Clock())
    m.replace({f"r{i}": (i % 3 if i != 4 else None, f"r{i}") for i in range(6)})
    assert m.view_keys() == ["r0", "r3", "r1", "r2", "r5", "r4"]  # by value, then key; None last
    for key in m.view_keys():
        sk = m._rows[key].sk
        assert sk[-1] == key and not any(isinstance(part, tuple) for part in sk)


def test_the_rows_are_held_once() -> None:
    """One dict of the rows (their cells read through it), not a second dict of cells beside
    it (~0.6 MB at 10k rows); replace() still diffs against the cells held."""
    m = model(50)
    big = [name for name, v in vars(m).items() if isinstance(v, dict) and len(v) == 50]
    assert big == ["_rows"]
    diff, _ = m.replace({**rows(50), "r1": ("r1", "gone", 1)})
    assert list(diff.changed) == ["r1"] and not diff.added and not diff.removed
    assert m.snapshot() == {**rows(50), "r1": ("r1", "gone", 1)}
