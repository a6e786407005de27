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


def ground_truth_table(**kwargs: Any) -> KeyedTable:
    return KeyedTable(columns_from(GT_COLUMNS), row_tag=gt_row_tag, **kwargs)


def orphans_table(**kwargs: Any) -> KeyedTable:
    return KeyedTable(columns_from(OR_COLUMNS), row_tag=orphan_row_tag, empty_text="no orphans", **kwargs)
