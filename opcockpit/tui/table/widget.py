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
from datetime import datetime
from typing import Any, ClassVar

from rich.style import Style
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from opcockpit.domain.tablediff import Cells, TableDiff
from opcockpit.tui.table.ages import Calm
from opcockpit.tui.table.columns import TableColumns
from opcockpit.tui.table.model import Applied, Column, CursorMove, TableModel
from opcockpit.tui.table.render import GUTTER, TableRender

__all__ = ["GUTTER", "STRIP_CACHE_SIZE", "Column", "KeyedTable"]

# Rendered row strips kept by row key (unchanged rows reuse theirs across refreshes). Enough for
# the rows on a tall screen and some scrolling back; a 20-column strip is ~10 KB, so the 4,096
# kept before held ~35 MB more after scrolling through a 10k-row table (issue 10, RSS).
STRIP_CACHE_SIZE = 256


class _TableMessage(Message):
    """A message about one KeyedTable (`table`, also its `control`)."""

    def __init__(self, table: KeyedTable) -> None:
        super().__init__()
        self.table = table

    @property
    def control(self) -> KeyedTable:
        return self.table


class KeyedTable(TableColumns, TableRender, ScrollView, can_focus=True):
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
    # Nested here so Textual names their handlers on_keyed_table_<name>; the shared part
    # (which table, `control`) is _TableMessage's.

    class RowHighlighted(_TableMessage):
        """The cursor moved to another row key (None: table empty)."""

        def __init__(self, table: KeyedTable, key: str | None) -> None:
            super().__init__(table)
            self.key = key

    class RowSelected(_TableMessage):
        """Enter (or a click on the cursor row) on a row key."""

        def __init__(self, table: KeyedTable, key: str) -> None:
            super().__init__(table)
            self.key = key

    class ColumnsChanged(_TableMessage):
        """The shown columns changed (chooser); `hidden` are the keys left out."""

        def __init__(self, table: KeyedTable, hidden: frozenset[str]) -> None:
            super().__init__(table)
            self.hidden = hidden

    class MarksChanged(_TableMessage):
        """Rows were marked or unmarked; `marked` is the marked set now."""

        def __init__(self, table: KeyedTable, marked: frozenset[str]) -> None:
            super().__init__(table)
            self.marked = marked

    # --------------------------------------------------------------------- construction

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        row_tag: Callable[[Cells], str | None] | None = None,
        flash_seconds: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
        empty_text: str = "no rows",
        strip_cache_size: int = STRIP_CACHE_SIZE,
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
        self.lines_repainted = 0  # body lines repainted alone (not a whole-widget refresh); ditto
        self._calm: Calm = {}  # the rows on screen whose ages keep their texts a while (ages.py)
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

    def column_index(self, key: str) -> int:
        return self.model.column_index(key)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._invalidate_render()

    def _invalidate_render(self) -> None:
        self._calm = {}
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
        if diff.empty:
            return
        screen_line = self._cursor_line()
        shown = self._shown_stamp()
        self._applied(self.model.apply(diff), screen_line, shown)

    def set_now(self, now: datetime) -> None:
        """Show the ages (AgeStamp cells, tui/table/ages.py) at `now`, the snapshot's time: the
        lines on screen whose age text moved repaint; rows off screen are aged when they scroll in."""
        model = self.model
        if now == model.now:
            return
        if model.now is not None and now < model.now:
            self._calm = {}  # what it says holds from when it was taken on
        # A table not on screen (another tab's) paints nothing now: it is painted whole, at the
        # model's `now`, when it is shown again.
        on_screen = bool(self.region)
        # Only a filter can make the ages move rows (then the cursor keeps its screen line).
        screen_line = self._cursor_line() if model.filter_expr else None
        move = model.set_now(now)
        if move is not None:  # a filter is set and the ages changed which rows it keeps
            self._calm = {}
            self._follow(move, screen_line)
        elif on_screen:
            self._repaint_ages()
        else:
            self._calm = {}

    def _repaint_ages(self) -> None:
        """Repaint the lines on screen whose texts moved at the model's `now`: rows whose ages
        keep their texts (`self._calm`) are not even aged, and a row aged is repainted only when
        its version is not the one its line was drawn at (the strip cache's stamp)."""
        model = self.model
        top = round(self.scroll_offset.y)
        keys = model.window(top, self._body_height)
        self._calm, aged = model.age_window(keys, self._calm)
        for i in aged:
            key = keys[i]
            drawn = self._strips.get(key)
            if drawn is None or drawn[0][0] != model.row_version(key):
                self.lines_repainted += 1
                self.refresh_lines(top + 1 + i)  # virtual y: the column header is line 0

    def _shown_stamp(self) -> tuple[Any, ...]:
        """What the body lines on screen are drawn from: top, cursor, and (key, version) per line.

        A row's strip is a function of its version (bumped on change and on a flash starting),
        cursor and mark (marks change only by key or with a removal, which changes the window),
        so when the stamp is the same after a change, every line on screen is too: at 10k leases
        nearly every refresh changes only rows that are scrolled off."""
        model = self.model
        top = round(self.scroll_offset.y)
        keys = model.window(top, self._body_height)
        return (top, model.cursor_key, model.view_count == 0, [(k, model.row_version(k)) for k in keys])

    def _repaint(self, shown: tuple[Any, ...] | None) -> None:
        """Repaint what changed on screen since `shown` (a `_shown_stamp()`): only the body lines
        whose (key, version) moved when the window, the cursor and emptiness are the same, else
        the whole widget. A full refresh makes the compositor redraw every line of the table
        (~38 at 40 rows); a quiet tick at 10k leases changes one or two ages on screen."""
        if shown is None:
            self.refresh()
            return
        now = self._shown_stamp()
        if now == shown:
            return
        if now[:3] != shown[:3] or len(now[3]) != len(shown[3]):
            self.refresh()
            return
        top = now[0]
        for line, (before, after) in enumerate(zip(shown[3], now[3], strict=True)):
            if before != after:
                self.lines_repainted += 1
                self.refresh_lines(top + 1 + line)  # virtual y: the column header is line 0

    def _cursor_line(self) -> int | None:
        index = self.model.cursor_index
        return (index - round(self.scroll_offset.y)) if index is not None else None

    def _applied(
        self, applied: Applied | None, screen_line: int | None, shown: tuple[Any, ...] | None = None
    ) -> None:
        if applied is None:
            return
        for key in applied.removed:
            self._strips.discard(key)
        self._follow(applied.cursor, screen_line, shown)
        if applied.flashing and self.is_mounted:
            self.set_timer(self.flash_seconds + 0.05, self.expire_flashes)

    def _follow(
        self, move: CursorMove, screen_line: int | None = None, shown: tuple[Any, ...] | None = None
    ) -> None:
        """After a model change: keep the cursor row on its screen line (else in view), repaint
        (unless `shown`, the stamp of the lines on screen before the change, still holds)."""
        self._update_virtual_size()
        if move.index is not None and screen_line is not None:
            h = self._body_height
            self._scroll_y_to(move.index - max(0, min(screen_line, h - 1)))
        elif move.index is not None:
            self._scroll_cursor_visible(move.index)
        if move.moved:
            self.refresh()
        else:
            self._repaint(shown)
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
