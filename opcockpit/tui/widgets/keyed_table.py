"""KeyedTable: a virtual (line-API) table updated by row key.

Why not DataTable: every DataTable mutation invalidates caches built over *all* rows (row order,
y-offsets, line cache), so a 1% refresh of 10k rows costs as much as a full redraw, and `clear()`
loses the cursor. Here:

- rows live in a keyed store; `apply(TableDiff)` touches only added/removed/changed rows;
- the sort order is a sorted list of (sort value, key) maintained with bisect, so a changed row
  moves in O(log n + memmove) instead of re-sorting (full re-sort only when most rows moved);
- only visible lines are rendered (`render_line`), from a per-row Strip cache stamped with the row
  version, so unchanged rows reuse their strip object across refreshes;
- the cursor is a row *key*; after an update the cursor row keeps its screen line when it can;
- changed cells flash for `flash_seconds`; expiry is a FIFO of (deadline, key), so fading costs
  O(rows that changed), never O(all rows) per frame.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from opcockpit.domain.tablediff import Cells, TableDiff, changed_cells, diff_rows
from opcockpit.domain.text import safe_text
from opcockpit.tui.rowfilter import SEP, parse_filter

Align = Literal["left", "right", "center"]
GUTTER = 1  # leading cell per row: "*" marked, ">" cursor


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


def _default_format(value: Any) -> str:
    return "" if value is None else str(value)


def _printable(text: str) -> str:
    # Cells hold DB/provider text: an ESC in it would reach the terminal (retitle, OSC 52).
    # isprintable() is the fast path; only text with control characters pays for the regex.
    return text if text.isprintable() else safe_text(text)


_NUMBER = (bool, int, float)


def _norm(value: Any) -> tuple[int, Any, str]:
    """Totally ordered sort value: mixed types in one column never raise; None sorts last."""
    kind = type(value)
    if kind is str:
        return (1, 0, value.casefold())
    if kind is int or kind is float:
        return (0, value, "")
    if value is None:
        return (4, 0, "")
    if isinstance(value, str):  # StrEnum and friends
        return (1, 0, str.casefold(value))
    if isinstance(value, _NUMBER):
        return (0, value, "")
    if isinstance(value, datetime):
        return (2, value.timestamp(), "")
    return (3, 0, str(value))


class _Row:
    __slots__ = ("joined", "key", "sk", "texts", "values", "version", "visible")

    def __init__(self, key: str, values: Cells) -> None:
        self.key = key
        self.values = values
        self.version = 0
        self.texts: tuple[str, ...] = ()
        self.joined = ""
        self.sk: tuple[Any, str] = ((4, 0, ""), key)
        self.visible = True


class KeyedTable(ScrollView, can_focus=True):
    """A keyed, virtual, sortable, filterable table. See the module docstring."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "keyed-table--header",
        "keyed-table--header-sorted",
        "keyed-table--cursor",
        "keyed-table--marked",
        "keyed-table--changed",
        "keyed-table--diverged",
        "keyed-table--transitioning",
        "keyed-table--unbound",
        "keyed-table--stale",
        "keyed-table--stale-old",
        "keyed-table--pending",
        "keyed-table--failed",
        "keyed-table--empty",
    }

    DEFAULT_CSS = """
    KeyedTable {
        background: $surface;
        color: $foreground;
        height: 1fr;
        & > .keyed-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .keyed-table--header-sorted { text-style: bold underline; background: $panel; color: $accent; }
        & > .keyed-table--cursor { background: $block-cursor-blurred-background; }
        &:focus > .keyed-table--cursor {
            background: $block-cursor-background; color: $block-cursor-foreground;
        }
        & > .keyed-table--marked { text-style: bold; color: $warning; }
        & > .keyed-table--changed { background: $warning 40%; text-style: bold; }
        & > .keyed-table--diverged { color: $error; }
        & > .keyed-table--transitioning { color: $accent; }
        & > .keyed-table--unbound { color: $text-muted; }
        & > .keyed-table--stale { text-style: dim; }
        & > .keyed-table--stale-old { text-style: dim italic; color: $text-disabled; }
        & > .keyed-table--pending { color: $accent; text-style: italic; }
        & > .keyed-table--failed { color: $error; text-style: bold; }
        & > .keyed-table--empty { color: $text-muted; text-style: italic; }
        &:nocolor > .keyed-table--cursor { text-style: reverse; }
        &:nocolor > .keyed-table--changed { text-style: bold underline; }
        /* NO_COLOR greys colours by luminance: $error red would make trouble rows the darkest
           on screen. Without colour, trouble is bold and plain rows stay plain. */
        &:nocolor > .keyed-table--diverged { color: $foreground; text-style: bold; }
        &:nocolor > .keyed-table--failed { color: $foreground; text-style: bold underline; }
        &:nocolor > .keyed-table--transitioning { color: $foreground; }
        &:nocolor > .keyed-table--pending { color: $foreground; text-style: italic; }
        &:nocolor > .keyed-table--unbound { color: $foreground; text-style: dim; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,g", "cursor_home", "Top", show=False),
        Binding("end,G", "cursor_end", "Bottom", show=False),
        Binding("enter", "select", "Open", show=True),
        Binding("space", "toggle_mark", "Mark", show=True),
        Binding("less_than_sign", "sort_prev", "Sort ←", show=False, key_display="<"),
        Binding("greater_than_sign", "sort_next", "Sort", show=True, key_display="<>"),
        Binding("i", "sort_invert", "Rev", show=False),
    ]

    # --------------------------------------------------------------------- messages

    class RowHighlighted(Message):
        """The cursor moved to another row key (None: table empty)."""

        def __init__(self, table: KeyedTable, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> KeyedTable:
            return self.table

    class RowSelected(Message):
        """Enter (or a click on the cursor row) on a row key."""

        def __init__(self, table: KeyedTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> KeyedTable:
            return self.table

    class MarksChanged(Message):
        def __init__(self, table: KeyedTable, marked: frozenset[str]) -> None:
            super().__init__()
            self.table = table
            self.marked = marked

        @property
        def control(self) -> KeyedTable:
            return self.table

    # --------------------------------------------------------------------- construction

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        row_tag: Callable[[Cells], str | None] | None = None,
        flash_seconds: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
        empty_text: str = "no rows",
        strip_cache_size: int = 4096,
        markable: bool = True,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._columns: tuple[Column, ...] = ()
        self._row_tag = row_tag
        self.flash_seconds = flash_seconds
        self._clock = clock
        self.empty_text = empty_text
        # Marks only mean something where actions apply to the marked set; elsewhere `space` would
        # draw a "*" that nothing reads, so the key is not offered (not in the footer, does nothing).
        self.markable = markable
        self._rows: dict[str, _Row] = {}
        self._values: dict[str, Cells] = {}  # key -> cells, kept in step so replace() needs no copy
        self._order: list[str] = []  # keys ascending by (sort value, key)
        self._sks: list[tuple[Any, str]] = []  # parallel to _order
        self._sort_col = 0
        self._reverse = False
        self._filter_expr = ""
        self._predicate: Callable[[Sequence[str], str], bool] | None = None
        self._filtered: list[str] | None = None  # display order when a filter is active
        self._cursor_key: str | None = None
        self._cursor_hint = 0  # last known view index of the cursor (fast path + fallback)
        self._marked: set[str] = set()
        self._flash: dict[str, tuple[float, frozenset[int]]] = {}
        self._flash_queue: deque[tuple[float, str]] = deque()
        self._strips: LRUCache[str, tuple[tuple[Any, ...], Strip]] = LRUCache(strip_cache_size)
        self._header: Strip | None = None
        self._styles_memo: dict[str, Style] = {}
        self._total_width = 0
        self.strips_rendered = 0  # rows rendered from scratch (cache misses); observable in tests/bench
        self.set_columns(columns)

    # --------------------------------------------------------------------- columns / styles

    @property
    def columns(self) -> tuple[Column, ...]:
        return self._columns

    def set_columns(self, columns: Sequence[Column]) -> None:
        self._columns = tuple(columns)
        self._total_width = GUTTER + sum(c.width + 1 for c in self._columns)
        self._sort_col = min(self._sort_col, max(len(self._columns) - 1, 0))
        if self._filter_expr:
            self._predicate = parse_filter(self._filter_expr, self._column_names())
        for row in self._rows.values():
            self._derive(row)
        self._resort()
        self._invalidate_render()

    def _column_names(self) -> list[tuple[str, str]]:
        return [(c.key, c.label) for c in self._columns]

    def column_index(self, key: str) -> int:
        for i, c in enumerate(self._columns):
            if c.key == key:
                return i
        raise KeyError(key)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._invalidate_render()

    def _invalidate_render(self) -> None:
        self._styles_memo.clear()
        self._strips.clear()
        self._header = None
        self._update_virtual_size()
        self.refresh()

    def _style(self, name: str) -> Style:
        style = self._styles_memo.get(name)
        if style is None:
            style = self.get_component_rich_style(f"keyed-table--{name}", partial=True)
            self._styles_memo[name] = style
        return style

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self._total_width, self._view_len() + 1)

    # --------------------------------------------------------------------- data: read

    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def view_count(self) -> int:
        return self._view_len()

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def get_row(self, key: str) -> Cells:
        return self._rows[key].values

    def get_texts(self, key: str) -> tuple[str, ...]:
        return self._rows[key].texts

    def row_version(self, key: str) -> int:
        return self._rows[key].version

    def snapshot(self) -> dict[str, Cells]:
        """Current rows by key (a copy); what `replace()` diffs against."""
        return dict(self._values)

    def view_keys(self) -> list[str]:
        """Keys in display order (after filter and sort)."""
        return [self._view_key(i) for i in range(self._view_len())]

    def flashing(self, key: str) -> frozenset[int]:
        """Column indexes of `key` currently highlighted as changed."""
        entry = self._flash.get(key)
        return entry[1] if entry else frozenset()

    def cached_strip(self, key: str) -> Strip | None:
        """The cached rendered strip of a row, if any (for tests and diagnostics)."""
        hit = self._strips.get(key)
        return hit[1] if hit else None

    # --------------------------------------------------------------------- view helpers

    def _view_len(self) -> int:
        return len(self._filtered) if self._filtered is not None else len(self._order)

    def _view_key(self, i: int) -> str:
        if self._filtered is not None:
            return self._filtered[i]
        return self._order[-1 - i] if self._reverse else self._order[i]

    def _order_index(self, row: _Row) -> int:
        return bisect_left(self._sks, row.sk)

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
        i = self._order_index(row)
        return len(self._order) - 1 - i if self._reverse else i

    # --------------------------------------------------------------------- data: write

    def _derive(self, row: _Row) -> None:
        """Recompute display texts, sort key and filter verdict of one row."""
        cols = self._columns
        texts = tuple(
            _printable((c.format or _default_format)(v)) for c, v in zip(cols, row.values, strict=False)
        )
        row.texts = texts
        row.joined = SEP.join(texts)
        self._derive_sort(row)
        row.visible = self._predicate is None or self._predicate(texts, row.joined)

    def _derive_sort(self, row: _Row) -> None:
        i = self._sort_col
        if i < len(self._columns) and i < len(row.values):
            col = self._columns[i]
            raw = row.values[i]
            row.sk = (_norm(col.sort_key(raw) if col.sort_key else raw), row.key)
        else:
            row.sk = ((4, 0, ""), row.key)

    def _derive_sort_all(self) -> None:
        i = self._sort_col
        if i >= len(self._columns):
            for row in self._rows.values():
                row.sk = ((4, 0, ""), row.key)
            return
        fn = self._columns[i].sort_key
        missing = (4, 0, "")
        for row in self._rows.values():
            values = row.values
            if i < len(values):
                raw = values[i]
                row.sk = (_norm(fn(raw) if fn else raw), row.key)
            else:
                row.sk = (missing, row.key)

    def replace(self, rows: Mapping[str, Cells]) -> TableDiff:
        """Make the table hold exactly `rows`: O(n) diff, then an O(changed) apply."""
        diff = diff_rows(self._values, rows)
        self.apply(diff)
        return diff

    def upsert_rows(self, rows: Mapping[str, Cells]) -> None:
        added: dict[str, Cells] = {}
        changed: dict[str, dict[int, Any]] = {}
        for key, cells in rows.items():
            row = self._rows.get(key)
            if row is None:
                added[key] = tuple(cells)
            else:
                delta = changed_cells(row.values, cells)
                if delta:
                    changed[key] = delta
        self.apply(TableDiff(added=added, changed=changed))

    def remove_rows(self, keys: Iterable[str]) -> None:
        self.apply(TableDiff(removed=tuple(k for k in keys if k in self._rows)))

    def update_cells(self, key: str, cells: Mapping[str | int, Any]) -> None:
        delta = {(c if isinstance(c, int) else self.column_index(c)): v for c, v in cells.items()}
        self.apply(TableDiff(changed={key: delta}))

    def apply(self, diff: TableDiff) -> None:
        """Apply adds, removes and changed cells as one batch (one repaint, one cursor fix-up)."""
        if diff.empty:
            return
        was_empty = not self._rows
        old_cursor = self._cursor_key
        old_index = self.view_index(old_cursor) if old_cursor is not None else None
        near = self._neighbours(old_index)
        screen_line = (old_index - round(self.scroll_offset.y)) if old_index is not None else None

        changed = diff.changed
        added = diff.added
        if any(k in self._rows for k in added):  # an "add" of a known key updates every cell
            changed = dict(changed)
            for key in [k for k in added if k in self._rows]:
                changed[key] = dict(enumerate(added[key]))
            added = {k: v for k, v in added.items() if k not in self._rows}

        moved = 0  # rows whose place in the view may have changed
        reposition: list[_Row] = []
        for key in diff.removed:
            row = self._rows.pop(key, None)
            if row is None:
                continue
            del self._values[key]
            self._drop_from_order(row.sk, key)
            self._marked.discard(key)
            self._flash.pop(key, None)
            self._strips.discard(key)
            moved += 1
        flashing = self.flash_seconds > 0 and not was_empty
        flash_deadline = self._clock() + self.flash_seconds
        for key, delta in changed.items():
            row = self._rows.get(key)
            if row is None or not delta:
                continue
            values = list(row.values)
            width = len(values)
            for i, v in delta.items():
                if i < width:
                    values[i] = v
            old_sk, old_visible = row.sk, row.visible
            row.values = self._values[key] = tuple(values)
            row.version += 1
            self._derive(row)
            if row.sk != old_sk:
                self._drop_from_order(old_sk, key)
                reposition.append(row)
                moved += 1
            elif row.visible != old_visible:
                moved += 1
            cols = self._columns
            hot = frozenset(i for i in delta if i < len(cols) and cols[i].flash) if flashing else ()
            if hot:
                self._flash[key] = (flash_deadline, hot)
                self._flash_queue.append((flash_deadline, key))
        for key, cells in added.items():
            row = _Row(key, tuple(cells))
            self._derive(row)
            self._rows[key] = row
            self._values[key] = row.values
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
        self._after_change(old_cursor, old_index, screen_line, near)
        if flashing and (changed or added) and self.is_mounted:
            self.set_timer(self.flash_seconds + 0.05, self.expire_flashes)

    def _drop_from_order(self, sk: tuple[Any, str], key: str) -> None:
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
        n = self._view_len()
        after = [self._view_key(i) for i in range(index + 1, min(index + 1 + reach, n))]
        before = [self._view_key(i) for i in range(index - 1, max(index - 1 - reach, -1), -1)]
        return after + before

    def _after_change(
        self,
        old_cursor: str | None,
        old_index: int | None,
        screen_line: int | None,
        near: Sequence[str] = (),
    ) -> None:
        """Keep the cursor on its key (else the nearest surviving neighbour) and its screen line."""
        self._update_virtual_size()
        n = self._view_len()
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
            new_key = self._view_key(new_index)
        self._cursor_key = new_key
        self._cursor_hint = new_index or 0
        if new_index is not None and screen_line is not None:
            self._scroll_cursor_to_line(new_index, screen_line)
        elif new_index is not None:
            self._scroll_cursor_visible(new_index)
        self.refresh()
        if new_key != old_cursor:
            self.post_message(self.RowHighlighted(self, new_key))

    def expire_flashes(self) -> None:
        now = self._clock()
        queue, flash = self._flash_queue, self._flash
        expired = False
        while queue and queue[0][0] <= now:
            deadline, key = queue.popleft()
            entry = flash.get(key)
            if entry is not None and entry[0] <= deadline:
                del flash[key]
                expired = True
        if expired:
            self.refresh()  # repaints only visible lines; unchanged rows come from the cache
        if queue:
            self.set_timer(max(queue[0][0] - now, 0.05), self.expire_flashes)

    # --------------------------------------------------------------------- sort / filter

    @property
    def sort_column(self) -> str | None:
        return self._columns[self._sort_col].key if self._columns else None

    @property
    def sort_reverse(self) -> bool:
        return self._reverse

    def sort_by(self, column_key: str, reverse: bool = False) -> None:
        """Sort by a column (stable: ties ordered by row key, so rows never shuffle among equals)."""
        old = self._cursor_key
        self._sort_col = self.column_index(column_key)
        self._reverse = reverse
        self._derive_sort_all()
        self._resort()
        self._header = None
        self._strips.clear()  # widths are unchanged but header/sort marks are not; cheap to drop
        self._after_change(old, None, None)
        if old is not None:
            self._center_cursor()

    @property
    def filter_expr(self) -> str:
        return self._filter_expr

    def set_filter(self, expr: str) -> None:
        old = self._cursor_key
        old_index = self.view_index(old) if old is not None else None
        near = self._neighbours(old_index)
        self._filter_expr = expr.strip()
        self._predicate = parse_filter(self._filter_expr, self._column_names())
        pred = self._predicate
        for row in self._rows.values():
            row.visible = pred is None or pred(row.texts, row.joined)
        self._rebuild_filtered()
        self._after_change(old, old_index, None, near)

    # --------------------------------------------------------------------- cursor / marks

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

    def move_cursor_to_key(self, key: str, *, center: bool = False) -> bool:
        index = self.view_index(key)
        if index is None:
            return False
        self._set_cursor(index)
        if center:
            self._center_cursor()
        return True

    def move_cursor(self, index: int) -> None:
        n = self._view_len()
        if n:
            self._set_cursor(max(0, min(index, n - 1)))

    def _set_cursor(self, index: int) -> None:
        key = self._view_key(index)
        old = self._cursor_key
        self._cursor_key = key
        self._cursor_hint = index
        self._scroll_cursor_visible(index)
        self.refresh()
        if key != old:
            self.post_message(self.RowHighlighted(self, key))

    @property
    def _body_height(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)

    def _scroll_cursor_visible(self, index: int) -> None:
        top = round(self.scroll_offset.y)
        h = self._body_height
        if index < top:
            self._scroll_y_to(index)
        elif index >= top + h:
            self._scroll_y_to(index - h + 1)

    def _scroll_cursor_to_line(self, index: int, line: int) -> None:
        h = self._body_height
        line = max(0, min(line, h - 1))
        self._scroll_y_to(index - line)

    def _center_cursor(self) -> None:
        index = self.cursor_index
        if index is not None:
            self._scroll_y_to(index - self._body_height // 2)

    def _scroll_y_to(self, y: int) -> None:
        max_y = max(self._view_len() + 1 - self.scrollable_content_region.height, 0)
        self.scroll_to(y=max(0, min(y, max_y)), animate=False, force=True)

    @property
    def marked(self) -> frozenset[str]:
        return frozenset(self._marked)

    def toggle_mark(self, key: str) -> None:
        if not self.markable:
            return
        if key in self._marked:
            self._marked.discard(key)
        elif key in self._rows:
            self._marked.add(key)
        self.refresh()
        self.post_message(self.MarksChanged(self, self.marked))

    def clear_marks(self) -> None:
        if self._marked:
            self._marked.clear()
            self.refresh()
            self.post_message(self.MarksChanged(self, self.marked))

    # --------------------------------------------------------------------- actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.markable or action != "toggle_mark"

    def action_cursor_up(self) -> None:
        i = self.cursor_index
        self.move_cursor(0 if i is None else i - 1)

    def action_cursor_down(self) -> None:
        i = self.cursor_index
        self.move_cursor(0 if i is None else i + 1)

    def action_page_up(self) -> None:
        i = self.cursor_index or 0
        self.move_cursor(i - self._body_height)

    def action_page_down(self) -> None:
        i = self.cursor_index or 0
        self.move_cursor(i + self._body_height)

    def action_cursor_home(self) -> None:
        self.move_cursor(0)

    def action_cursor_end(self) -> None:
        self.move_cursor(self._view_len() - 1)

    def action_select(self) -> None:
        if self._cursor_key is not None:
            self.post_message(self.RowSelected(self, self._cursor_key))

    def action_toggle_mark(self) -> None:
        if self._cursor_key is not None:
            self.toggle_mark(self._cursor_key)
            self.action_cursor_down()

    def action_sort_next(self) -> None:
        if self._columns:
            self.sort_by(self._columns[(self._sort_col + 1) % len(self._columns)].key, self._reverse)
            self._scroll_sort_column_visible()

    def action_sort_prev(self) -> None:
        if self._columns:
            self.sort_by(self._columns[(self._sort_col - 1) % len(self._columns)].key, self._reverse)
            self._scroll_sort_column_visible()

    def _scroll_sort_column_visible(self) -> None:
        """`<`/`>` onto a column off screen (right of the fold at 80 columns): scroll to it, else
        the ▲ marker is invisible and the order looks random."""
        x = GUTTER + sum(c.width + 1 for c in self._columns[: self._sort_col])
        right = x + self._columns[self._sort_col].width
        left_edge = round(self.scroll_offset.x)
        view = self.scrollable_content_region.width
        if x >= left_edge and right <= left_edge + view:
            return
        self.scroll_to(x=0 if right <= view else x - GUTTER, animate=False, force=True)

    def action_sort_invert(self) -> None:
        if self._columns:
            self.sort_by(self._columns[self._sort_col].key, not self._reverse)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:  # header: sort by the clicked column, again to invert
            x = offset.x + round(self.scroll_offset.x) - GUTTER
            for c in self._columns:
                if x < c.width + 1:
                    same = c.key == self.sort_column
                    self.sort_by(c.key, (not self._reverse) if same else False)
                    return
                x -= c.width + 1
            return
        index = round(self.scroll_offset.y) + offset.y - 1
        if 0 <= index < self._view_len():
            if index == self.cursor_index and event.chain >= 1:
                self.action_select()
            self._set_cursor(index)

    # --------------------------------------------------------------------- rendering

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        scroll_x, scroll_y = self.scroll_offset
        base = self.rich_style
        if y == 0:
            strip = self._header_strip()
        else:
            index = scroll_y + y - 1
            if index < self._view_len():
                strip = self._row_strip(self._view_key(index))
            elif index == 0:
                text = self.empty_text
                if self._filter_expr:
                    text = f"no rows match filter {self._filter_expr!r}"
                strip = Strip([Segment(" " + text, base + self._style("empty"))])
            else:
                return Strip.blank(width, base)
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _header_strip(self) -> Strip:
        if self._header is None:
            base = self.rich_style + self._style("header")
            sorted_style = self.rich_style + self._style("header-sorted")
            segs: list[Segment] = [Segment(" " * GUTTER, base)]
            for i, c in enumerate(self._columns):
                label = c.label
                style = base
                if i == self._sort_col:
                    label = f"{label}{'▼' if self._reverse else '▲'}"
                    style = sorted_style
                segs.append(Segment(_fit(label, c.width, c.align), style))
                segs.append(Segment(" ", base))
            self._header = Strip(segs, self._total_width)
        return self._header

    def _row_strip(self, key: str) -> Strip:
        row = self._rows[key]
        flash = self._flash.get(key)
        is_cursor = key == self._cursor_key
        is_marked = key in self._marked
        stamp = (row.version, is_cursor, is_marked, flash is not None)
        hit = self._strips.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        self.strips_rendered += 1
        style = self.rich_style
        tag = self._row_tag(row.values) if self._row_tag else None
        if tag:
            style = style + self._style(tag)
        if is_marked:
            style = style + self._style("marked")
        if is_cursor:
            style = style + self._style("cursor")
        changed_style = style + self._style("changed") if flash else style
        flash_cols = flash[1] if flash else frozenset()
        # The gutter carries state as glyphs too, so it survives NO_COLOR: marked, cursor.
        gutter = "*" if is_marked else (">" if is_cursor else " ")
        segs: list[Segment] = [Segment(gutter, style)]
        texts = row.texts
        for i, c in enumerate(self._columns):
            text = texts[i] if i < len(texts) else ""
            segs.append(Segment(_fit(text, c.width, c.align), changed_style if i in flash_cols else style))
            segs.append(Segment(" ", style))
        strip = Strip(segs, self._total_width)
        if hit is not None:
            self._strips.discard(key)  # textual's LRUCache.set never overwrites an existing key
        self._strips[key] = (stamp, strip)
        return strip


def _fit(text: str, width: int, align: Align) -> str:
    """Pad or truncate (with an ellipsis) to exactly `width` cells."""
    n = cell_len(text)
    if n > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else set_cell_size(text, width)
    if n == width:
        return text
    pad = width - n
    if align == "right":
        return " " * pad + text
    if align == "center":
        left = pad // 2
        return " " * left + text + " " * (pad - left)
    return text + " " * pad
