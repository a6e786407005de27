"""The filter bar under the tabs: `/` opens it on the focused table, typing filters live, Enter
keeps the filter (a status line says "n of m rows"), Esc clears it.

`FilterBar` is a mixin of CockpitApp (the Input and the status line are the screen's children,
composed by `filter_bar_widgets`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from textual.widget import Widget
from textual.widgets import Input, Static

from opcockpit.tui.table.widget import KeyedTable
from opcockpit.tui.widgets.in_order_input import InOrderInput

if TYPE_CHECKING:
    from textual.app import App

    _AppBase = App[int]  # the mixin's host, for type checkers only
else:
    _AppBase = object

__all__ = ["FILTER_HINT", "VIEW_KEYS", "FilterBar", "filter_bar_widgets"]

FILTER_HINT = "filter: text · regex · !inverse · field:value  (Enter keep, Esc clear)"
VIEW_KEYS = ("filter", "copy", "clear_filter")  # keys of the focused table on the main view


def filter_bar_widgets() -> Iterator[Widget]:
    yield Static(id="filter-status")
    yield InOrderInput(id="filter", placeholder=FILTER_HINT)


class FilterBar(_AppBase):
    """CockpitApp's filter bar (mixin); see the module docstring."""

    _filter_w: Input
    _filter_status_w: Static
    _filter_target: KeyedTable | None
    _filter_before: str

    if TYPE_CHECKING:  # the app's (a runtime stub would shadow it in the MRO)

        def active_table(self) -> KeyedTable | None: ...

    def _check_view_key(self, action: str) -> bool | None:
        """check_action for VIEW_KEYS: off under a screen, greyed where they do not apply."""
        if len(self.screen_stack) > 1:  # a detail/help screen is on top: main-view keys do not apply
            return False
        table = self.active_table()
        if table is None:
            return None  # shown greyed out on the Alerts tab
        if action == "copy":
            return True if table.cursor_key is not None else None
        if action == "clear_filter":
            return bool(table.filter_expr) or self._filter_w.has_class("visible")
        return True

    def action_filter(self) -> None:
        table = self.active_table()
        if table is None:
            return
        self._filter_target = table
        self._filter_before = table.filter_expr
        box = self._filter_w
        box.value = table.filter_expr
        box.add_class("visible")
        self._filter_status_w.remove_class("visible")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter" and self._filter_target is not None:
            self._filter_target.set_filter(event.value)
            self._sync_filter_status()  # "n of m rows" while typing, not only after the next refresh

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self._close_filter()

    def action_clear_filter(self) -> None:
        box = self._filter_w
        table = self._filter_target if box.has_class("visible") else self.active_table()
        if table is not None:
            table.set_filter("")
        box.value = ""
        self._close_filter()

    def _close_filter(self) -> None:
        box = self._filter_w
        box.remove_class("visible")
        target = self._filter_target or self.active_table()
        self._filter_target = None
        if target is not None:
            target.focus()
        self._sync_filter_status()
        self.refresh_bindings()

    def _sync_filter_status(self) -> None:
        """The status line: the filter ("n of m rows") and the mark count, with how many marked
        rows the filter hides (actions leave those out unless the confirmation includes them)."""
        status = self._filter_status_w
        table = self.active_table()
        parts: list[str] = []
        if table is not None and table.marked:
            hidden = len(table.model.hidden_marks())
            shown = f" ✱ {len(table.marked)} marked" + (f" ({hidden} hidden)" if hidden else "")
            parts.append(shown + " · u unmarks")
        if table is not None and table.filter_expr:
            parts.append(
                f" filter: {table.filter_expr}  ({table.view_count} of {table.row_count} rows; Esc clears)"
            )
        if parts:
            status.update(" │".join(parts))
            status.add_class("visible")
        else:
            status.remove_class("visible")
