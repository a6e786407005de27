"""KeyedTable's columns (a mixin of widget.KeyedTable): which are shown, sorting by them
(`<`/`>` in on-screen order, `S`/F6 picker, header clicks, `i`), sideways scrolling a whole column
per `→`/`←` with the pinned key column fixed, and the column chooser (`C`, saved per view).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from textual import events

from opcockpit.tui.table.model import Column, CursorMove, TableModel

if TYPE_CHECKING:
    from textual.scroll_view import ScrollView

    _Base = ScrollView
else:
    _Base = object

__all__ = ["TableColumns"]


class TableColumns(_Base):
    """Shown columns, sort keys, sideways scroll and the pickers (see the module docstring)."""

    model: TableModel
    pinned: str | None
    state_key: str | None
    _hidden: frozenset[str]
    _columns_for_width: Callable[[int], Sequence[Column]] | None
    _layout_width: int
    _disp: tuple[int, ...]
    _col_x: tuple[int, ...]
    _pin_w: int
    _total_width: int

    # widget.KeyedTable's, used here
    columns: Any
    sort_column: Any
    sort_reverse: Any
    cursor_index: Any
    ColumnsChanged: Any

    def set_columns(self, columns: Sequence[Column]) -> None:
        raise NotImplementedError

    def sort_by(self, column_key: str, reverse: bool = False) -> None:
        raise NotImplementedError

    def _measure(self) -> None:
        raise NotImplementedError

    def _invalidate_render(self) -> None:
        raise NotImplementedError

    def _sorted(self, move: CursorMove | None) -> None:
        raise NotImplementedError

    def _set_cursor(self, index: int) -> None:
        raise NotImplementedError

    def action_select(self) -> None:
        raise NotImplementedError

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
