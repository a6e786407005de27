"""The keyed table model's marks (a mixin of model.TableModel): mark, unmark, ranges (k9s
ctrl+space), all visible, and which marks the filter hides. No Textual."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["TableMarks"]


class TableMarks:
    """Marked row keys; `markable` False turns marking off (tables no action reads)."""

    markable: bool
    _marked: set[str]
    _last_mark: str | None
    _cursor_key: str | None
    _rows: dict[str, Any]

    def view_index(self, key: str) -> int | None:
        raise NotImplementedError  # TableModel's

    def view_key(self, i: int) -> str:
        raise NotImplementedError  # TableModel's

    def view_keys(self) -> list[str]:
        raise NotImplementedError  # TableModel's

    @property
    def marked(self) -> frozenset[str]:
        return frozenset(self._marked)

    def is_marked(self, key: str) -> bool:
        return key in self._marked

    def toggle_mark(self, key: str) -> bool:
        """Mark or unmark a row; False when nothing changed (not markable, unknown key)."""
        if not self.markable:
            return False
        if key in self._marked:
            self._marked.discard(key)
        elif key in self._rows:
            self._marked.add(key)
            self._last_mark = key
        else:
            return False
        return True

    def clear_marks(self) -> bool:
        self._last_mark = None
        if not self._marked:
            return False
        self._marked.clear()
        return True

    def unmark(self, keys: Iterable[str]) -> bool:
        """Unmark some rows (the ones an action consumed); False when none was marked."""
        before = len(self._marked)
        self._marked.difference_update(keys)
        return len(self._marked) != before

    def is_visible(self, key: str) -> bool:
        row = self._rows.get(key)
        return row is not None and row.visible

    def hidden_marks(self) -> frozenset[str]:
        """Marked rows the filter hides: actions leave them alone unless the operator says so."""
        return frozenset(k for k in self._marked if not self.is_visible(k))

    def mark_visible(self) -> bool:
        """Mark every row the filter shows (k9s/htop "mark all"); False when nothing changed."""
        if not self.markable:
            return False
        before = len(self._marked)
        self._marked.update(self.view_keys())
        return len(self._marked) != before

    def mark_range(self) -> bool:
        """Mark the visible rows from the last mark to the cursor (k9s ctrl+space); without a
        visible last mark, just the cursor row. False when nothing changed."""
        if not self.markable or self._cursor_key is None:
            return False
        end = self.view_index(self._cursor_key)
        start = self.view_index(self._last_mark) if self._last_mark is not None else None
        if end is None:
            return False
        if start is None:
            start = end
        lo, hi = min(start, end), max(start, end)
        before = len(self._marked)
        self._marked.update(self.view_key(i) for i in range(lo, hi + 1))
        self._last_mark = self._cursor_key
        return len(self._marked) != before
