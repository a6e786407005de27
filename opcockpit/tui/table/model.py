"""The keyed table's model: rows by key, sort, filter, marks, cursor key, flashes. No Textual.

Why a model of its own: every DataTable mutation invalidates caches built over *all* rows, so a 1%
refresh of 10k rows costs a full redraw and `clear()` loses the cursor. Here:

- rows live in a keyed store; `apply(TableDiff)` touches only added/removed/changed rows;
- the sort order is a sorted list of (sort value, key) maintained with bisect, so a changed row
  moves in O(log n + memmove) instead of re-sorting (full re-sort only when most rows moved);
- the cursor is a row *key*: after a change it stays on its key, else on the nearest surviving
  neighbour (like a list box);
- changed cells flash for `flash_seconds`; expiry is a FIFO of (deadline, key), so fading costs
  O(rows that changed), never O(all rows) per frame.

The widget (widget.py) renders `window()` of this model and owns scrolling and styles. The
filter syntax is filter.py's; marks are marks.py's (a mixin).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from opcockpit.domain.tablediff import Cells, TableDiff, changed_cells, diff_rows
from opcockpit.domain.text import safe_text
from opcockpit.tui.table.ages import NO_NOW, SEP, AgeStamp, TableAges
from opcockpit.tui.table.filter import Predicate, parse_filter
from opcockpit.tui.table.marks import TableMarks

__all__ = ["Align", "Applied", "Column", "CursorMove", "FrozenCells", "TableModel", "parse_filter"]

Align = Literal["left", "right", "center"]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int
    align: Align = "left"
    # Display text for a raw value; default: "" for None, else str(value).
    format: Callable[[Any], str] | None = None
    # Value used for sorting; default: the raw value.
    sort_key: Callable[[Any], Any] | None = None
    # Highlight this column's changes? Off for ages: time passing is not news (k9s does the same).
    flash: bool = True


# ----------------------------------------------------------------------------- rows


def _default_format(value: Any) -> str:
    return "" if value is None else str(value)


def _printable(text: str) -> str:
    # Cells hold DB/provider text: an ESC in it would reach the terminal (retitle, OSC 52).
    # isprintable() is the fast path; only text with control characters pays for the regex.
    return text if text.isprintable() else safe_text(text)


_NUMBER = (bool, int, float)
_MISSING = (4, 0, "")


def _norm(value: Any) -> tuple[int, Any, str]:
    """Totally ordered sort value: mixed types in one column never raise; None sorts last."""
    kind = type(value)
    if kind is str:
        return (1, 0, value.casefold())
    if kind is int or kind is float:
        return (0, value, "")
    if value is None:
        return _MISSING
    if isinstance(value, str):  # StrEnum and friends
        return _ENUM_NORM.get(value) or _enum_norm(value)
    if isinstance(value, _NUMBER):
        return (0, value, "")
    if kind is AgeStamp:  # painted ages sort as ages would: youngest first
        return (0, value.sort_value(), "")
    if isinstance(value, datetime):
        return (2, value.timestamp(), "")
    return (3, 0, str(value))


def _sort_entry(norm: tuple[int, Any, str], key: str) -> tuple[Any, ...]:
    """A row's place in the sort: its sort value's three parts, then its key, in one flat tuple
    (ordered as (norm, key) would be): a nested pair kept a second tuple per row, ~50 bytes a row
    when the sort value is the row's own (an age, a text; issue 10, RSS)."""
    return (norm[0], norm[1], norm[2], key)


# StrEnum members' sort values, made once per member: the ground-truth table sorts by its
# convergence column, and a casefolded copy and tuple per row were ~1.2 MB at 10k rows.
_ENUM_NORM: dict[Any, tuple[int, Any, str]] = {}


def _enum_norm(value: str) -> tuple[int, Any, str]:
    norm = (1, 0, str.casefold(value))
    if isinstance(value, Enum):  # finitely many: kept; other str subclasses are not
        _ENUM_NORM[value] = norm
    return norm


class FrozenCells(Sequence[Any]):
    """Cells made from an immutable source when read (e.g. a ground-truth row, `rows.GtCells`):
    the model keeps the object, not a tuple copy, until it makes the row's texts (paints it, or
    a filter reads it); then a tuple, so painting reads no cell twice. Subclasses define the
    Sequence methods and equality with the tuple of their cells."""

    __slots__ = ()


def _frozen(cells: Sequence[Any]) -> Any:
    return cells if isinstance(cells, tuple | FrozenCells) else tuple(cells)


def _cells_tuple(row: _Row) -> Cells:
    """The row's values as a tuple (made from its FrozenCells the first time)."""
    values = row.values
    if values.__class__ is not tuple:
        values = row.values = tuple(values)
    return values


class _Row:
    # No joined text per row: it is made for the filter only while one is set (~5 MB at 10k rows).
    # texts: the display texts, made when the row is painted or read (`get_texts`), or for every
    # row while a filter is set; None otherwise, so off-screen rows hold none (~4 MB at 10k rows:
    # a tuple per row and the texts no cell shares, e.g. "✓ converged", versions, ages).
    # aged: the `now` its age texts were painted at (None: no texts, or no AgeStamp cell)
    # sk: its place in the sort, which ends with its key (no slot of its own: 16 bytes a row)
    __slots__ = ("aged", "sk", "texts", "values", "version", "visible")

    def __init__(self, key: str, values: Cells | FrozenCells) -> None:
        self.values = values
        self.version = 0
        self.aged: datetime | None = None
        self.texts: tuple[str, ...] | None = None
        self.sk: tuple[Any, ...] = (*_MISSING, key)
        self.visible = True

    @property
    def key(self) -> str:
        return self.sk[-1]  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class CursorMove:
    """Where the cursor went in one change: `key`/`index` after (None: empty view)."""

    old_key: str | None
    key: str | None
    index: int | None

    @property
    def moved(self) -> bool:
        return self.key != self.old_key


@dataclass(frozen=True, slots=True)
class Applied:
    """What one `apply` did, for the view: rows gone (drop their caches), whether a flash started."""

    cursor: CursorMove
    removed: tuple[str, ...]
    flashing: bool


class _CellsView(Mapping[str, Cells]):
    """The rows' cells by key, read through the rows (a dict kept in step beside them was ~0.6 MB
    at 10k rows, 2.6 MB at 50k; issue 10, RSS)."""

    __slots__ = ("_rows",)

    def __init__(self, rows: dict[str, _Row]) -> None:
        self._rows = rows

    def __getitem__(self, key: str) -> Cells:
        return self._rows[key].values

    def get(self, key: str, default: Any = None) -> Any:
        row = self._rows.get(key)
        return default if row is None else row.values

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


# ----------------------------------------------------------------------------- the model


class TableModel(TableAges, TableMarks):
    """Rows by key in sort/filter order, with a cursor key, marks and change flashes."""

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        flash_seconds: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
        markable: bool = True,
    ) -> None:
        self.flash_seconds = flash_seconds
        self.clock = clock
        self.markable = markable
        self._columns: tuple[Column, ...] = ()
        self._rows: dict[str, _Row] = {}
        self._values = _CellsView(self._rows)  # key -> cells, for replace()'s diff: no second dict
        self._order: list[str] = []  # keys ascending by (sort value, key)
        self._sks: list[tuple[Any, ...]] = []  # parallel to _order
        self._sort_col = 0
        self._reverse = False
        self._filter_expr = ""
        self._predicate: Predicate | None = None
        self._filtered: list[str] | None = None  # display order when a filter is active
        self._cursor_key: str | None = None
        self._cursor_hint = 0  # last known view index of the cursor (fast path + fallback)
        self._marked: set[str] = set()
        self._last_mark: str | None = None  # where a range mark (ctrl+space) starts
        self._flash: dict[str, tuple[float, frozenset[int]]] = {}
        self._flash_queue: deque[tuple[float, str]] = deque()
        # key -> (delta, the FrozenCells it came from) of the last upsert_diff: apply keeps those
        # cells as the row's values when it applies that very delta, not a patched tuple
        self._incoming: dict[str, tuple[dict[int, Any], FrozenCells]] = {}
        self.now = None  # AgeStamp cells show their age at this time (set_now, ages.py)
        self.set_columns(columns)

    # ------------------------------------------------------------------ columns

    @property
    def columns(self) -> tuple[Column, ...]:
        return self._columns

    def set_columns(self, columns: Sequence[Column]) -> None:
        self._columns = tuple(columns)
        self._sort_col = min(self._sort_col, max(len(self._columns) - 1, 0))
        if self._filter_expr:
            self._predicate = parse_filter(self._filter_expr, self._column_names())
        for row in self._rows.values():
            self._derive(row)
        self._resort()

    def _column_names(self) -> list[tuple[str, str]]:
        return [(c.key, c.label) for c in self._columns]

    def column_index(self, key: str) -> int:
        for i, c in enumerate(self._columns):
            if c.key == key:
                return i
        raise KeyError(key)

    # ------------------------------------------------------------------ read

    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def view_count(self) -> int:
        return len(self._filtered) if self._filtered is not None else len(self._order)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def get_row(self, key: str) -> Cells:
        return self._rows[key].values

    def get_texts(self, key: str) -> tuple[str, ...]:
        return self._texts(self._rows[key])

    def row_version(self, key: str) -> int:
        """The row's version: bumped by every change of its cells, and when a painted age moved
        (asked by the view for the rows it shows, so only those rows are formatted)."""
        row = self._rows[key]
        self._texts(row)
        return row.version

    def snapshot(self) -> dict[str, Cells]:
        """Current rows by key (a copy); what `replace()` diffs against."""
        return {key: row.values for key, row in self._rows.items()}

    def view_key(self, i: int) -> str:
        """The key at view position `i` (after filter and sort)."""
        if self._filtered is not None:
            return self._filtered[i]
        return self._order[-1 - i] if self._reverse else self._order[i]

    def view_keys(self) -> list[str]:
        """Keys in display order (after filter and sort)."""
        return [self.view_key(i) for i in range(self.view_count)]

    def window(self, top: int, height: int) -> list[str]:
        """The keys of view positions top .. top+height-1 (what a screen of `height` lines shows)."""
        end = min(top + height, self.view_count)
        return [self.view_key(i) for i in range(max(top, 0), end)]

    def view_index(self, key: str) -> int | None:
        row = self._rows.get(key)
        if row is None or not row.visible:
            return None
        if self._filtered is not None:
            h = self._cursor_hint
            if 0 <= h < len(self._filtered) and self._filtered[h] == key:
                return h
            try:
                return self._filtered.index(key)
            except ValueError:  # pragma: no cover - visible rows are always in _filtered
                return None
        i = bisect_left(self._sks, row.sk)
        return len(self._order) - 1 - i if self._reverse else i

    def flashing(self, key: str) -> frozenset[int]:
        """Column indexes of `key` currently highlighted as changed."""
        entry = self._flash.get(key)
        return entry[1] if entry else frozenset()

    # ------------------------------------------------------------------ derived values

    def _text(self, column: Column, value: Any) -> str:
        if value.__class__ is AgeStamp:
            value = value.age(self.now)
        return _printable((column.format or _default_format)(value))

    def _texts(self, row: _Row) -> tuple[str, ...]:
        """The row's display texts, made now if it holds none; its ages painted at `now`."""
        texts = row.texts
        if texts is None:
            text = self._text
            texts = row.texts = tuple(
                text(c, v) for c, v in zip(self._columns, _cells_tuple(row), strict=False)
            )
            row.aged = (self.now or NO_NOW) if AgeStamp in map(type, row.values) else None
        elif row.aged is not None and row.aged != self.now:
            self._age(row)
            texts = row.texts
        return texts  # type: ignore[return-value]  # _age keeps a tuple

    def _derive(self, row: _Row, cols: Iterable[int] | None = None) -> None:
        """Recompute display texts, sort key and filter verdict of one row (only the texts of
        columns `cols` when given: a refresh that changes one cell formats one cell). Without a
        filter the texts are dropped instead, made again if the row is painted."""
        if self._predicate is None:
            row.texts = row.aged = None  # (callers bump the version or drop the painted strips)
            if cols is None or self._sort_col in cols:
                self._derive_sort(row)
            row.visible = True
            return
        columns = self._columns
        text = self._text
        _cells_tuple(row)
        if row.texts is None:
            cols = None
        if cols is not None and len(row.texts) == min(len(columns), len(row.values)):  # type: ignore[arg-type]
            texts_l = list(row.texts)  # type: ignore[arg-type]
            values = row.values
            for i in cols:
                if i < len(texts_l):
                    texts_l[i] = text(columns[i], values[i])
            texts = tuple(texts_l)
            resort = self._sort_col in cols
        else:
            texts = tuple(text(c, v) for c, v in zip(columns, row.values, strict=False))
            resort = True
        row.texts = texts
        row.aged = (self.now or NO_NOW) if AgeStamp in map(type, row.values) else None
        if resort:
            self._derive_sort(row)
        row.visible = self._predicate is None or self._predicate(texts, SEP.join(texts))

    def _derive_sort(self, row: _Row) -> None:
        i = self._sort_col
        if i < len(self._columns) and i < len(row.values):
            col = self._columns[i]
            raw = row.values[i]
            row.sk = _sort_entry(_norm(col.sort_key(raw) if col.sort_key else raw), row.key)
        else:
            row.sk = (*_MISSING, row.key)

    def _derive_sort_all(self) -> None:
        i = self._sort_col
        if i >= len(self._columns):
            for row in self._rows.values():
                row.sk = (*_MISSING, row.key)
            return
        fn = self._columns[i].sort_key
        for row in self._rows.values():
            values = row.values
            if i < len(values):
                raw = values[i]
                row.sk = _sort_entry(_norm(fn(raw) if fn else raw), row.key)
            else:
                row.sk = (*_MISSING, row.key)

    # ------------------------------------------------------------------ write

    def replace(self, rows: Mapping[str, Cells]) -> tuple[TableDiff, Applied | None]:
        """Make the model hold exactly `rows`: O(n) diff, then an O(changed) apply."""
        diff = diff_rows(self._values, rows)
        return diff, self.apply(diff)

    def upsert_diff(self, rows: Mapping[str, Cells]) -> TableDiff:
        """The diff that adds or updates `rows` (others stay)."""
        added: dict[str, Cells] = {}
        changed: dict[str, dict[int, Any]] = {}
        incoming = self._incoming = {}
        for key, cells in rows.items():
            row = self._rows.get(key)
            if row is None:
                added[key] = _frozen(cells)
            else:
                delta = changed_cells(row.values, cells)
                if delta:
                    changed[key] = delta
                    if isinstance(cells, FrozenCells):
                        incoming[key] = (delta, cells)
        return TableDiff(added=added, changed=changed)

    def remove_diff(self, keys: Iterable[str]) -> TableDiff:
        return TableDiff(removed=tuple(k for k in keys if k in self._rows))

    def cells_diff(self, key: str, cells: Mapping[str | int, Any]) -> TableDiff:
        delta = {(c if isinstance(c, int) else self.column_index(c)): v for c, v in cells.items()}
        return TableDiff(changed={key: delta})

    def apply(self, diff: TableDiff) -> Applied | None:
        """Apply adds, removes and changed cells as one batch; None when the diff is empty."""
        incoming, self._incoming = self._incoming, {}
        if diff.empty:
            return None
        was_empty = not self._rows
        old_cursor = self._cursor_key
        old_index = self.view_index(old_cursor) if old_cursor is not None else None
        near = self._neighbours(old_index)

        changed = diff.changed
        added = diff.added
        if any(k in self._rows for k in added):  # an "add" of a known key updates every cell
            changed = dict(changed)
            for key in [k for k in added if k in self._rows]:
                changed[key] = dict(enumerate(added[key]))
            added = {k: v for k, v in added.items() if k not in self._rows}

        moved = 0  # rows whose place in the view may have changed
        removed: list[str] = []
        reposition: list[_Row] = []
        for key in diff.removed:
            row = self._rows.pop(key, None)
            if row is None:
                continue
            self._drop_from_order(row.sk, key)
            self._marked.discard(key)
            self._flash.pop(key, None)
            removed.append(key)
            moved += 1
        flashing = self.flash_seconds > 0 and not was_empty
        flash_deadline = self.clock() + self.flash_seconds
        cols = self._columns
        for key, delta in changed.items():
            row = self._rows.get(key)
            if row is None or not delta:
                continue
            old_sk, old_visible = row.sk, row.visible
            came = incoming.get(key)
            if came is not None and came[0] is delta:  # the cells this delta was made from
                row.values = came[1]
            else:
                values = list(row.values)
                width = len(values)
                for i, v in delta.items():
                    if i < width:
                        values[i] = v
                row.values = tuple(values)
            row.version += 1
            self._derive(row, delta.keys())
            if row.sk != old_sk:
                self._drop_from_order(old_sk, key)
                reposition.append(row)
                moved += 1
            elif row.visible != old_visible:
                moved += 1
            hot = frozenset(i for i in delta if i < len(cols) and cols[i].flash) if flashing else ()
            if hot:
                self._flash[key] = (flash_deadline, hot)
                self._flash_queue.append((flash_deadline, key))
        for key, cells in added.items():
            row = _Row(key, _frozen(cells))
            self._derive(row)
            self._rows[key] = row
            reposition.append(row)
            moved += 1
            if flashing:
                self._flash[key] = (flash_deadline, frozenset(range(len(cells))))
                self._flash_queue.append((flash_deadline, key))

        if len(reposition) > max(64, len(self._rows) // 8):
            self._resort(rebuild_filter=False)  # many moves: one O(n log n) sort beats k inserts
        else:
            for row in reposition:
                i = bisect_left(self._sks, row.sk)
                self._sks.insert(i, row.sk)
                self._order.insert(i, row.key)
        if self._predicate is not None and moved:
            self._rebuild_filtered()
        cursor = self._follow(old_cursor, old_index, near)
        return Applied(cursor, tuple(removed), bool(flashing and (changed or added)))

    def _drop_from_order(self, sk: tuple[Any, ...], key: str) -> None:
        i = bisect_left(self._sks, sk)
        if i < len(self._order) and self._order[i] == key:
            del self._order[i]
            del self._sks[i]

    def _resort(self, rebuild_filter: bool = True) -> None:
        rows = sorted(self._rows.values(), key=lambda r: r.sk)
        self._order = [r.key for r in rows]
        self._sks = [r.sk for r in rows]
        if rebuild_filter:
            self._rebuild_filtered()

    def _rebuild_filtered(self) -> None:
        if self._predicate is None:
            self._filtered = None
            return
        rows = self._rows
        order = reversed(self._order) if self._reverse else self._order
        self._filtered = [k for k in order if rows[k].visible]

    def _neighbours(self, index: int | None, reach: int = 8) -> list[str]:
        """Keys after, then before, the cursor: where it goes if its row vanishes (like a list box)."""
        if index is None:
            return []
        n = self.view_count
        after = [self.view_key(i) for i in range(index + 1, min(index + 1 + reach, n))]
        before = [self.view_key(i) for i in range(index - 1, max(index - 1 - reach, -1), -1)]
        return after + before

    def _follow(self, old_cursor: str | None, old_index: int | None, near: Sequence[str] = ()) -> CursorMove:
        """Keep the cursor on its key, else the nearest surviving neighbour, else the same index."""
        n = self.view_count
        new_key: str | None = None
        new_index = None
        if old_cursor is not None:
            new_index = self.view_index(old_cursor)
            if new_index is not None:
                new_key = old_cursor
        if new_key is None:
            for key in near:
                new_index = self.view_index(key)
                if new_index is not None:
                    new_key = key
                    break
        if new_key is None and n:
            new_index = min(old_index or 0, n - 1)
            new_key = self.view_key(new_index)
        self._cursor_key = new_key
        self._cursor_hint = new_index or 0
        return CursorMove(old_cursor, new_key, new_index)

    def expire_flashes(self) -> tuple[bool, float | None]:
        """Drop flashes whose deadline passed: (anything expired?, seconds until the next one)."""
        now = self.clock()
        queue, flash = self._flash_queue, self._flash
        expired = False
        while queue and queue[0][0] <= now:
            deadline, key = queue.popleft()
            entry = flash.get(key)
            if entry is not None and entry[0] <= deadline:
                del flash[key]
                expired = True
        return expired, (queue[0][0] - now if queue else None)

    # ------------------------------------------------------------------ sort / filter

    @property
    def sort_index(self) -> int:
        return self._sort_col

    @property
    def sort_column(self) -> str | None:
        return self._columns[self._sort_col].key if self._columns else None

    @property
    def sort_reverse(self) -> bool:
        return self._reverse

    def sort_by(self, column_key: str, reverse: bool = False) -> CursorMove:
        """Sort by a column (stable: ties ordered by row key, so rows never shuffle among equals)."""
        old = self._cursor_key
        self._sort_col = self.column_index(column_key)
        self._reverse = reverse
        self._derive_sort_all()
        self._resort()
        return self._follow(old, None)

    def step_sort(self, step: int) -> CursorMove | None:
        """Sort by the next (+1) or previous (-1) column, keeping the direction."""
        if not self._columns:
            return None
        return self.sort_by(self._columns[(self._sort_col + step) % len(self._columns)].key, self._reverse)

    @property
    def filter_expr(self) -> str:
        return self._filter_expr

    def set_filter(self, expr: str) -> CursorMove:
        old = self._cursor_key
        old_index = self.view_index(old) if old is not None else None
        near = self._neighbours(old_index)
        self._filter_expr = expr.strip()
        self._predicate = pred = parse_filter(self._filter_expr, self._column_names())
        for row in self._rows.values():
            if pred is None:
                row.visible = True
                if row.texts is not None:  # the filter's texts go: off-screen rows hold none
                    row.texts = row.aged = None
                    row.version += 1  # its painted strip may show an age `row_version` can't check
            else:
                texts = self._texts(row)
                row.visible = pred(texts, SEP.join(texts))
        self._rebuild_filtered()
        return self._follow(old, old_index, near)

    # ------------------------------------------------------------------ cursor / marks

    @property
    def cursor_key(self) -> str | None:
        return self._cursor_key

    @property
    def cursor_index(self) -> int | None:
        if self._cursor_key is None:
            return None
        i = self.view_index(self._cursor_key)
        if i is not None:
            self._cursor_hint = i
        return i

    def set_cursor(self, index: int) -> CursorMove | None:
        """Put the cursor on view position `index` (clamped); None on an empty view."""
        n = self.view_count
        if not n:
            return None
        index = max(0, min(index, n - 1))
        old = self._cursor_key
        self._cursor_key = self.view_key(index)
        self._cursor_hint = index
        return CursorMove(old, self._cursor_key, index)
