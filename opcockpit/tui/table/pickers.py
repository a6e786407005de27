"""Column chooser (`C`) and sort picker (`S` / F6, htop-like) of a KeyedTable.

Both are small modal lists over (key, label) pairs, so they know nothing of the table: the table
pushes them and applies the answer (tui/table/widget.py). They live in the table package because
the table opens them (tui/screens imports the table, so the table may not import tui/screens);
tui/screens/columns.py re-exports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, SelectionList, Static
from textual.widgets.option_list import Option
from textual.widgets.selection_list import Selection

__all__ = ["ColumnsScreen", "SortPickScreen"]

_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 44; height: auto; max-height: 90%; border: round $accent; background: $surface;
    padding: 0 1;
}}
{name} .picker-title {{ text-style: bold; }}
{name} .picker-note {{ color: $text-muted; }}
{name} OptionList, {name} SelectionList {{ height: auto; max-height: 20; border: none; }}
"""


class ColumnsScreen(ModalScreen[frozenset[str] | None]):
    """Which columns the view shows. Returns the hidden column keys, or None when cancelled.

    `columns` is (key, label, shown, pinned) per column; the pinned key column cannot be hidden.
    """

    DEFAULT_CSS = _CSS.format(name="ColumnsScreen")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("enter", "apply", "Apply", priority=True),
        Binding("a", "all", "All"),
    ]

    def __init__(self, columns: Sequence[tuple[str, str, bool, bool]]) -> None:
        super().__init__()
        self.columns = list(columns)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Columns", classes="picker-title")
            yield Static("space on/off · a all · Enter apply · Esc cancel", classes="picker-note")
            yield SelectionList[str](
                *(
                    Selection(f"{label} (pinned)" if pinned else label, key, shown or pinned, disabled=pinned)
                    for key, label, shown, pinned in self.columns
                ),
                id="columns-list",
            )

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    @property
    def selection(self) -> SelectionList[str]:
        return self.query_one("#columns-list", SelectionList)

    def action_all(self) -> None:
        self.selection.select_all()

    def action_apply(self) -> None:
        shown = set(self.selection.selected)
        self.dismiss(frozenset(k for k, _, _, pinned in self.columns if k not in shown and not pinned))

    def action_cancel(self) -> None:
        self.dismiss(None)


class SortPickScreen(ModalScreen[str | None]):
    """Pick the sort column from a list; returns its key, or None when cancelled."""

    DEFAULT_CSS = _CSS.format(name="SortPickScreen")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, columns: Sequence[tuple[str, str]], current: str | None, reverse: bool) -> None:
        super().__init__()
        self.columns = list(columns)
        self.current = current
        self.reverse = reverse

    def compose(self) -> ComposeResult:
        arrow = "▼" if self.reverse else "▲"
        with Vertical():
            yield Static("Sort by", classes="picker-title")
            yield Static("Enter sorts · on the current column: invert · Esc", classes="picker-note")
            yield OptionList(
                *(
                    Option(f"{label} {arrow}" if key == self.current else label, id=key)
                    for key, label in self.columns
                ),
                id="sort-list",
            )

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.focus()
        keys = [k for k, _ in self.columns]
        if self.current in keys:
            options.highlighted = keys.index(self.current)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
