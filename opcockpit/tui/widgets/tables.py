"""The cockpit's concrete tables: column specs from opcockpit.tui.rows turned into KeyedTables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opcockpit.tui.rows import (
    GT_COLUMNS,
    OR_COLUMNS,
    age_cell,
    fmt_bool,
    fmt_state,
    fmt_state_glyph,
    gt_row_tag,
    orphan_row_tag,
)
from opcockpit.tui.table.widget import Column, KeyedTable

_FORMATS: dict[str, Callable[[Any], str] | None] = {
    "text": None,
    "age": age_cell,
    "bool": fmt_bool,
    "convergence": fmt_state,
}


# Sorting by State puts trouble first: an SRE opens the cockpit to see what is wrong.
_CONVERGENCE_RANK = {
    "diverged": 0,
    "stale": 1,
    "unknown": 2,
    "transitioning": 3,
    "unbound": 4,
    "converged": 5,
}


def convergence_rank(value: Any) -> int:
    """Sort key of the State column; operation markers (pending/failed) rank before everything."""
    return _CONVERGENCE_RANK.get(str(value), -1)


_SORT_KEYS: dict[str, Callable[[Any], Any] | None] = {"convergence": convergence_rank}


def columns_from(spec: tuple[tuple[str, str, int, str, str], ...]) -> list[Column]:
    return [
        Column(
            key,
            label,
            width,
            align,  # type: ignore[arg-type]
            _FORMATS[kind],
            sort_key=_SORT_KEYS.get(kind),
            flash=kind != "age",
        )
        for key, label, width, align, kind in spec
    ]


# Below this width the State column shows its glyph only (`?` help has the legend), so Lease,
# State, Provider and the whole Reason fit at 80 columns; wider terminals show the words.
GT_WORDS_MIN_WIDTH = 90
GT_GLYPH_WIDTH = 3  # "✗!" (failed operation) and the header's "St▲"


def gt_columns_for_width(width: int) -> list[Column]:
    """The ground-truth columns for a terminal `width`: words where room allows, glyphs at 80."""
    columns = columns_from(GT_COLUMNS)
    if width >= GT_WORDS_MIN_WIDTH:
        return columns
    state = columns[0]
    columns[0] = Column(
        state.key, "St", GT_GLYPH_WIDTH, "left", fmt_state_glyph, sort_key=state.sort_key, flash=state.flash
    )
    return columns


def ground_truth_table(**kwargs: Any) -> KeyedTable:
    # The lease id is pinned: it names the row, so it never scrolls away with `→`.
    kwargs.setdefault("pinned", "lease_id")
    kwargs.setdefault("state_key", "ground-truth")
    kwargs.setdefault("columns_for_width", gt_columns_for_width)
    return KeyedTable(columns_from(GT_COLUMNS), row_tag=gt_row_tag, **kwargs)


def orphans_table(**kwargs: Any) -> KeyedTable:
    kwargs.setdefault("pinned", "instance_id")
    kwargs.setdefault("state_key", "orphans")
    return KeyedTable(columns_from(OR_COLUMNS), row_tag=orphan_row_tag, empty_text="no orphans", **kwargs)
