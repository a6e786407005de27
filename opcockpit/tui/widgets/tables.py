"""The cockpit's concrete tables: column specs from opcockpit.tui.rows turned into KeyedTables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opcockpit.tui.rows import (
    GT_COLUMNS,
    OR_COLUMNS,
    fmt_age,
    fmt_bool,
    fmt_state,
    gt_row_tag,
    orphan_row_tag,
)
from opcockpit.tui.widgets.keyed_table import Column, KeyedTable

_FORMATS: dict[str, Callable[[Any], str] | None] = {
    "text": None,
    "age": fmt_age,
    "bool": fmt_bool,
    "convergence": fmt_state,
}


def columns_from(spec: tuple[tuple[str, str, int, str, str], ...]) -> list[Column]:
    return [
        Column(key, label, width, align, _FORMATS[kind], flash=kind != "age")  # type: ignore[arg-type]
        for key, label, width, align, kind in spec
    ]


def ground_truth_table(**kwargs: Any) -> KeyedTable:
    return KeyedTable(columns_from(GT_COLUMNS), row_tag=gt_row_tag, **kwargs)


def orphans_table(**kwargs: Any) -> KeyedTable:
    return KeyedTable(columns_from(OR_COLUMNS), row_tag=orphan_row_tag, empty_text="no orphans", **kwargs)
