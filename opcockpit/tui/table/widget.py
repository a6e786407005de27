"""KeyedTable: a thin line-API widget over TableModel (model.py).

The model holds rows, order, filter, marks and the cursor key; this widget turns model changes
into scrolling and messages and renders only the visible lines (`render_line`), from a per-row
Strip cache stamped with the row version, so unchanged rows reuse their strip across refreshes.

Columns on screen (issue 15, 80 columns): the `pinned` key column (the lease / instance id) is
drawn first and never scrolls away; the others scroll sideways a whole column per `→`/`←`;
hidden columns (the chooser, `C`) are left out of the rendering only, so filters and sorting still
see every column; `S`/F6 sorts by a column picked from a list (htop's F6) besides `<`/`>`.
`columns_for_width` lets a table trade words for glyphs when the terminal is narrow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

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

from opcockpit.domain.tablediff import Cells, TableDiff
from opcockpit.tui.table.model import Align, Applied, Column, CursorMove, TableModel

GUTTER = 1  # leading cell per row: "*" marked, ">" cursor

__all__ = ["GUTTER", "Column", "KeyedTable"]


class KeyedTable(ScrollView, can_focus=True):
    """A keyed, virtual, sortable, filterable table. See model.py for the data side."""

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
        Binding("S,f6", "pick_sort", "Sort by", show=False, key_display="S"),
        Binding("C", "choose_columns", "Columns", show=False),
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

    class ColumnsChanged(Message):
        """The shown columns changed (chooser); `hidden` are the keys left out."""

        def __init__(self, table: KeyedTable, hidden: frozenset[str]) -> None:
            super().__init__()
            self.table = table
            self.hidden = hidden

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
        pinned: str | None = None,
        state_key: str | None = None,
        columns_for_width: Callable[[int], Sequence[Column]] | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.model = TableModel(columns, flash_seconds=flash_seconds, clock=clock, markable=markable)
        self._row_tag = row_tag
        self.empty_text = empty_text
        self._strips: LRUCache[str, tuple[tuple[Any, ...], Strip]] = LRUCache(strip_cache_size)
        self._header: Strip | None = None
        self._styles_memo: dict[str, Style] = {}
        self._total_width = 0
        self.pinned = pinned  # key column drawn first, never scrolled away (None: nothing pinned)
        self.state_key = state_key  # saves the chooser's choice per view (app.ui_state), if set
        self._hidden: frozenset[str] = frozenset()
        self._columns_for_width = columns_for_width
        self._layout_width = 0
        self._disp: tuple[int, ...] = ()  # model column indexes in display order
        self._col_x: tuple[int, ...] = ()  # x of each displayed column in a full row strip
        self._pin_w = GUTTER  # cells that never scroll: the gutter and the pinned column
        self.strips_rendered = 0  # rows rendered from scratch (cache misses); observable in tests/bench
        self._measure()

    # The model's knobs, as attributes of the widget (the app and tests set them).
    @property
    def flash_seconds(self) -> float:
        return self.model.flash_seconds

    @flash_seconds.setter
    def flash_seconds(self, value: float) -> None:
        self.model.flash_seconds = value

    @property
    def markable(self) -> bool:
        # Marks only mean something where actions apply to the marked set; elsewhere `space` would
        # draw a "*" that nothing reads, so the key is not offered (not in the footer, does nothing).
        return self.model.markable

    @markable.setter
    def markable(self, value: bool) -> None:
        self.model.markable = value

    # --------------------------------------------------------------------- columns / styles

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.model.columns

    def set_columns(self, columns: Sequence[Column]) -> None:
        self.model.set_columns(columns)
        self._measure()
        self._invalidate_render()

    def _measure(self) -> None:
        columns = self.model.columns
        keys = [c.key for c in columns]
        pin = keys.index(self.pinned) if self.pinned in keys else None
        rest = [i for i, c in enumerate(columns) if i != pin and c.key not in self._hidden]
        self._disp = tuple(([pin] if pin is not None else []) + rest)
        xs, x = [], GUTTER
        for i in self._disp:
            xs.append(x)
            x += columns[i].width + 1
        self._col_x = tuple(xs)
        self._total_width = x
        self._pin_w = GUTTER + (columns[pin].width + 1 if pin is not None else 0)

    # --------------------------------------------------------------------- shown columns

    @property
    def hidden_columns(self) -> frozenset[str]:
        return self._hidden

    @property
    def shown_columns(self) -> tuple[Column, ...]:
        """The columns on screen, in display order (pinned first)."""
        return tuple(self.model.columns[i] for i in self._disp)

    def set_hidden(self, keys: Iterable[str], *, save: bool = True) -> None:
        """Leave these columns out of the rendering (the pinned column always stays)."""
        known = {c.key for c in self.model.columns}
        hidden = frozenset(k for k in keys if k in known and k != self.pinned)
        if hidden == self._hidden:
            return
        self._hidden = hidden
        self._measure()
        self._invalidate_render()
        self._scroll_x_to(round(self.scroll_offset.x))
        if save:
            self._save_state()
        self.post_message(self.ColumnsChanged(self, hidden))

    def _ui_state(self) -> Any:
        """The app's UI state store: `app.ui_state` if set (tests give a tmp file); else, for an app
        built on the wiring (`app.cockpit`, what `opcockpit` and the demo run), the XDG file;
        else none (a bare test app never reads or writes the operator's state)."""
        if not self.state_key:
            return None
        app = self.app
        store = getattr(app, "ui_state", None)
        if store is None and getattr(app, "cockpit", None) is not None:
            from opcockpit.settings.ui_state import UiState

            store = UiState.default()
            app.ui_state = store  # type: ignore[attr-defined]  # one store for every table
        return store

    def _save_state(self) -> None:
        store = self._ui_state()
        if store is None:
            return
        try:
            store.save_view(self.state_key, {"hidden": sorted(self._hidden)})
        except OSError as exc:  # a read-only home must not break the table: say it once
            self.notify(f"columns not saved: {exc}", severity="warning", markup=False)

    def on_mount(self) -> None:
        store = self._ui_state()
        if store is not None:
            hidden = store.load_view(self.state_key).get("hidden")
            problem, store.problem = getattr(store, "problem", None), None  # said once, by one table
            if problem:
                self.notify(problem, severity="warning", markup=False)
            if isinstance(hidden, list):
                self.set_hidden([str(k) for k in hidden], save=False)

    def on_resize(self) -> None:
        width = self.size.width
        if self._columns_for_width is None or width == self._layout_width:
            return
        self._layout_width = width
        columns = tuple(self._columns_for_width(width))
        if columns != self.model.columns:
            self.set_columns(columns)

    def column_index(self, key: str) -> int:
        return self.model.column_index(key)

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
        self.virtual_size = Size(self._total_width, self.model.view_count + 1)

    # --------------------------------------------------------------------- data: read

    @property
    def row_count(self) -> int:
        return self.model.row_count

    @property
    def view_count(self) -> int:
        return self.model.view_count

    def __contains__(self, key: object) -> bool:
        return key in self.model

    def get_row(self, key: str) -> Cells:
        return self.model.get_row(key)

    def get_texts(self, key: str) -> tuple[str, ...]:
        return self.model.get_texts(key)

    def row_version(self, key: str) -> int:
        return self.model.row_version(key)

    def snapshot(self) -> dict[str, Cells]:
        return self.model.snapshot()

    def view_keys(self) -> list[str]:
        return self.model.view_keys()

    def view_index(self, key: str) -> int | None:
        return self.model.view_index(key)

    def flashing(self, key: str) -> frozenset[int]:
        return self.model.flashing(key)

    def cached_strip(self, key: str) -> Strip | None:
        """The cached rendered strip of a row, if any (for tests and diagnostics)."""
        hit = self._strips.get(key)
        return hit[1] if hit else None

    # --------------------------------------------------------------------- data: write

    def replace(self, rows: Mapping[str, Cells]) -> TableDiff:
        """Make the table hold exactly `rows`: O(n) diff, then an O(changed) apply."""
        screen_line = self._cursor_line()
        diff, applied = self.model.replace(rows)
        self._applied(applied, screen_line)
        return diff

    def apply_rows(self, rows: Mapping[str, Cells], removed: Iterable[str] = ()) -> None:
        """Add or update `rows` and remove `removed` in one batch (a delta; other rows stay)."""
        diff = self.model.upsert_diff(rows)
        gone = self.model.remove_diff(removed).removed
        if gone:
            diff = TableDiff(added=diff.added, changed=diff.changed, removed=gone)
        self.apply(diff)

    def upsert_rows(self, rows: Mapping[str, Cells]) -> None:
        self.apply(self.model.upsert_diff(rows))

    def remove_rows(self, keys: Iterable[str]) -> None:
        self.apply(self.model.remove_diff(keys))

    def update_cells(self, key: str, cells: Mapping[str | int, Any]) -> None:
        self.apply(self.model.cells_diff(key, cells))

    def apply(self, diff: TableDiff) -> None:
        """Apply adds, removes and changed cells as one batch (one repaint, one cursor fix-up)."""
        screen_line = self._cursor_line() if not diff.empty else None
        self._applied(self.model.apply(diff), screen_line)

    def _cursor_line(self) -> int | None:
        index = self.model.cursor_index
        return (index - round(self.scroll_offset.y)) if index is not None else None

    def _applied(self, applied: Applied | None, screen_line: int | None) -> None:
        if applied is None:
            return
        for key in applied.removed:
            self._strips.discard(key)
        self._follow(applied.cursor, screen_line)
        if applied.flashing and self.is_mounted:
            self.set_timer(self.flash_seconds + 0.05, self.expire_flashes)

    def _follow(self, move: CursorMove, screen_line: int | None = None) -> None:
        """After a model change: keep the cursor row on its screen line (else in view), repaint."""
        self._update_virtual_size()
        if move.index is not None and screen_line is not None:
            h = self._body_height
            self._scroll_y_to(move.index - max(0, min(screen_line, h - 1)))
        elif move.index is not None:
            self._scroll_cursor_visible(move.index)
        self.refresh()
        if move.moved:
            self.post_message(self.RowHighlighted(self, move.key))

    def expire_flashes(self) -> None:
        expired, next_in = self.model.expire_flashes()
        if expired:
            self.refresh()  # repaints only visible lines; unchanged rows come from the cache
        if next_in is not None:
            self.set_timer(max(next_in, 0.05), self.expire_flashes)

    # --------------------------------------------------------------------- sort / filter

    @property
    def sort_column(self) -> str | None:
        return self.model.sort_column

    @property
    def sort_reverse(self) -> bool:
        return self.model.sort_reverse

    def sort_by(self, column_key: str, reverse: bool = False) -> None:
        """Sort by a column (stable: ties ordered by row key, so rows never shuffle among equals)."""
        self._sorted(self.model.sort_by(column_key, reverse))

    def _sorted(self, move: CursorMove | None) -> None:
        if move is None:
            return
        self._header = None
        self._strips.clear()  # widths are unchanged but header/sort marks are not; cheap to drop
        self._follow(move)
        if move.old_key is not None:
            self._center_cursor()

    @property
    def filter_expr(self) -> str:
        return self.model.filter_expr

    def set_filter(self, expr: str) -> None:
        self._follow(self.model.set_filter(expr))

    # --------------------------------------------------------------------- cursor / marks

    @property
    def cursor_key(self) -> str | None:
        return self.model.cursor_key

    @property
    def cursor_index(self) -> int | None:
        return self.model.cursor_index

    def move_cursor_to_key(self, key: str, *, center: bool = False) -> bool:
        index = self.model.view_index(key)
        if index is None:
            return False
        self._set_cursor(index)
        if center:
            self._center_cursor()
        return True

    def move_cursor(self, index: int) -> None:
        self._set_cursor(index)

    def _set_cursor(self, index: int) -> None:
        move = self.model.set_cursor(index)
        if move is None or move.index is None:
            return
        self._scroll_cursor_visible(move.index)
        self.refresh()
        if move.moved:
            self.post_message(self.RowHighlighted(self, move.key))

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

    def _center_cursor(self) -> None:
        index = self.cursor_index
        if index is not None:
            self._scroll_y_to(index - self._body_height // 2)

    def _scroll_y_to(self, y: int) -> None:
        max_y = max(self.model.view_count + 1 - self.scrollable_content_region.height, 0)
        self.scroll_to(y=max(0, min(y, max_y)), animate=False, force=True)

    @property
    def marked(self) -> frozenset[str]:
        return self.model.marked

    def toggle_mark(self, key: str) -> None:
        if not self.markable:
            return
        self.model.toggle_mark(key)
        self.refresh()
        self.post_message(self.MarksChanged(self, self.marked))

    def clear_marks(self) -> None:
        if self.model.clear_marks():
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
        self.move_cursor(self.model.view_count - 1)

    def action_select(self) -> None:
        if self.cursor_key is not None:
            self.post_message(self.RowSelected(self, self.cursor_key))

    def action_toggle_mark(self) -> None:
        if self.cursor_key is not None:
            self.toggle_mark(self.cursor_key)
            self.action_cursor_down()

    def action_sort_next(self) -> None:
        self._step_sort(1)

    def action_sort_prev(self) -> None:
        self._step_sort(-1)

    def _step_sort(self, step: int) -> None:
        """`<`/`>`: the previous/next column in the order they are *on screen*: the pinned key
        column first, then the others; hidden columns are skipped (issue 15: stepping in model
        order jumped from State over the pinned Lease column and back)."""
        if not self.columns:
            return
        order = [self.columns[i].key for i in self._disp] or [c.key for c in self.columns]
        current = self.sort_column
        if current in order:
            key = order[(order.index(current) + step) % len(order)]
        else:
            key = order[0] if step > 0 else order[-1]
        self._sorted(self.model.sort_by(key, self.sort_reverse))
        self._scroll_sort_column_visible()

    def _scrolled_columns(self) -> list[tuple[int, int, int]]:
        """(model index, x in scroll coordinates, width) of each column right of the pinned one."""
        columns, pin = self.columns, self._pin_w
        return [
            (i, x - pin, columns[i].width)
            for i, x in zip(self._disp, self._col_x, strict=True)
            if columns[i].key != self.pinned
        ]

    def _scroll_sort_column_visible(self) -> None:
        """`<`/`>` onto a column off screen (right of the fold at 80 columns): scroll to it, else
        the ▲ marker is invisible and the order looks random."""
        sort_col = self.model.sort_index
        for i, x, w in self._scrolled_columns():
            if i != sort_col:
                continue
            left_edge = round(self.scroll_offset.x)
            view = self.scrollable_content_region.width - self._pin_w
            if x >= left_edge and x + w <= left_edge + view:
                return
            self._scroll_x_to(0 if x + w <= view else x)
            return

    def _scroll_x_to(self, x: int) -> None:
        max_x = max(self._total_width - self.scrollable_content_region.width, 0)
        self.scroll_to(x=max(0, min(x, max_x)), animate=False, force=True)

    def action_scroll_right(self) -> None:
        """→: the next column comes into view whole (one column per press, never one character)."""
        sx = round(self.scroll_offset.x)
        starts = [x for _, x, _ in self._scrolled_columns() if x > sx]
        if starts:
            self._scroll_x_to(starts[0])

    def action_scroll_left(self) -> None:
        sx = round(self.scroll_offset.x)
        starts = [x for _, x, _ in self._scrolled_columns() if x < sx]
        self._scroll_x_to(starts[-1] if starts else 0)

    @property
    def first_scrolled_column(self) -> str | None:
        """The key of the leftmost column right of the pinned one (what `→`/`←` moved to)."""
        sx = round(self.scroll_offset.x)
        for i, x, w in self._scrolled_columns():
            if x + w > sx:
                return self.columns[i].key
        return None

    def action_pick_sort(self) -> None:
        """htop's F6: pick the sort column from a list (again on the sorted one: invert)."""
        from opcockpit.tui.table.pickers import SortPickScreen

        if not self.columns:
            return

        def picked(key: str | None) -> None:
            if key is None:
                return
            reverse = (not self.sort_reverse) if key == self.sort_column else False
            self.sort_by(key, reverse)
            self._scroll_sort_column_visible()

        cols = [(c.key, c.label) for c in self.shown_columns]
        self.app.push_screen(SortPickScreen(cols, self.sort_column, self.sort_reverse), picked)

    def action_choose_columns(self) -> None:
        """The column chooser: which columns this view shows (saved per view)."""
        from opcockpit.tui.table.pickers import ColumnsScreen

        # Display order: the pinned key first, then every column (hidden ones too) in model order.
        ordered = sorted(self.columns, key=lambda c: c.key != self.pinned)
        cols = [(c.key, c.label, c.key not in self._hidden, c.key == self.pinned) for c in ordered]

        def chosen(hidden: frozenset[str] | None) -> None:
            if hidden is not None:
                self.set_hidden(hidden)

        self.app.push_screen(ColumnsScreen(cols), chosen)

    def action_sort_invert(self) -> None:
        if self.columns:
            self.sort_by(self.columns[self.model.sort_index].key, not self.sort_reverse)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:  # header: sort by the clicked column, again to invert
            x = offset.x if offset.x < self._pin_w else offset.x + round(self.scroll_offset.x)
            for i, cx in zip(self._disp, self._col_x, strict=True):
                c = self.columns[i]
                if cx <= x < cx + c.width + 1:
                    same = c.key == self.sort_column
                    self.sort_by(c.key, (not self.sort_reverse) if same else False)
                    return
            return
        index = round(self.scroll_offset.y) + offset.y - 1
        if 0 <= index < self.model.view_count:
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
            model = self.model
            if index < model.view_count:
                strip = self._row_strip(model.view_key(index))
            elif index == 0:
                text = self.empty_text
                if model.filter_expr:
                    text = f"no rows match filter {model.filter_expr!r}"
                strip = Strip([Segment(" " + text, base + self._style("empty"))])
            else:
                return Strip.blank(width, base)
        return self._visible_part(strip, scroll_x, width, base, header=y == 0)

    def _visible_part(self, strip: Strip, scroll_x: int, width: int, base: Style, *, header: bool) -> Strip:
        """The pinned cells, then the scrolled columns; the header shows ◂ ▸ where more columns are."""
        pin = min(self._pin_w, width)
        if scroll_x == 0 or pin <= 0:
            out = strip.crop_extend(scroll_x, scroll_x + width, base)
        else:
            out = Strip.join(
                [strip.crop_extend(0, pin, base), strip.crop_extend(pin + scroll_x, scroll_x + width, base)]
            )
        if header and width > 2:
            style = self.rich_style + self._style("header")
            if scroll_x > 0:
                out = Strip.join([Strip([Segment("◂", style)], 1), out.crop(1, width)])
            if self._total_width > scroll_x + width:
                out = Strip.join([out.crop(0, width - 1), Strip([Segment("▸", style)], 1)])
        return out

    def _header_strip(self) -> Strip:
        if self._header is None:
            base = self.rich_style + self._style("header")
            sorted_style = self.rich_style + self._style("header-sorted")
            sort_col, reverse = self.model.sort_index, self.model.sort_reverse
            segs: list[Segment] = [Segment(" " * GUTTER, base)]
            columns = self.columns
            for i in self._disp:
                c = columns[i]
                label = c.label
                style = base
                if i == sort_col:
                    label = f"{label}{'▼' if reverse else '▲'}"
                    style = sorted_style
                segs.append(Segment(_fit(label, c.width, c.align), style))
                segs.append(Segment(" ", base))
            self._header = Strip(segs, self._total_width)
        return self._header

    def _row_strip(self, key: str) -> Strip:
        model = self.model
        version = model.row_version(key)
        flash_cols = model.flashing(key)
        is_cursor = key == model.cursor_key
        is_marked = model.is_marked(key)
        stamp = (version, is_cursor, is_marked, bool(flash_cols))
        hit = self._strips.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        self.strips_rendered += 1
        style = self.rich_style
        tag = self._row_tag(model.get_row(key)) if self._row_tag else None
        if tag:
            style = style + self._style(tag)
        if is_marked:
            style = style + self._style("marked")
        if is_cursor:
            style = style + self._style("cursor")
        changed_style = style + self._style("changed") if flash_cols else style
        # The gutter carries state as glyphs too, so it survives NO_COLOR: marked, cursor.
        gutter = "*" if is_marked else (">" if is_cursor else " ")
        segs: list[Segment] = [Segment(gutter, style)]
        texts = model.get_texts(key)
        columns = self.columns
        for i in self._disp:
            c = columns[i]
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
