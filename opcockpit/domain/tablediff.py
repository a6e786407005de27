"""Keyed row diffing for live tables (pure; no Textual, no I/O).

A table refresh is expressed as a `TableDiff`: rows added (full cells), rows removed (keys) and
rows changed (only the cells that differ, by column index). Computing it is one pass over the new
rows plus a pass over the old keys (O(n)); applying it touches only what changed (O(changed)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Cells = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class TableDiff:
    added: dict[str, Cells] = field(default_factory=dict)
    removed: tuple[str, ...] = ()
    changed: dict[str, dict[int, Any]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def __len__(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changed)


def changed_cells(old: Sequence[Any], new: Sequence[Any]) -> dict[int, Any]:
    """Cells of `new` that differ from `old` by index (rows of one table share a width)."""
    if len(old) != len(new):
        return dict(enumerate(new))
    return {i: v for i, (o, v) in enumerate(zip(old, new, strict=True)) if o != v}


def diff_rows(old: Mapping[str, Cells], new: Mapping[str, Cells]) -> TableDiff:
    """Diff two keyed snapshots of a table.

    The fast path is tuple equality (C speed); only rows that differ are compared cell by cell.
    """
    added: dict[str, Cells] = {}
    changed: dict[str, dict[int, Any]] = {}
    old_get = old.get
    for key, cells in new.items():
        before = old_get(key)
        if before is None:
            added[key] = cells
        elif before != cells:
            changed[key] = changed_cells(before, cells)
    removed = tuple(k for k in old if k not in new) if len(old) + len(added) != len(new) else ()
    return TableDiff(added=added, removed=removed, changed=changed)
