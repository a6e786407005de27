"""The Orphans tab: provider instances no lease accounts for, keyed `provider/instance_id`.

`OrphansTab` is the app's part of it (a mixin of CockpitApp): the table, Enter on an orphan (its
detail screen: labels, image, created, the lease it claims, the raw record), jumping to an orphan,
what `c` copies; `l`/`y` (logs, raw record) come with it from `InspectKeys`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from opcockpit.domain.models import GroundTruth, GroundTruthRow
from opcockpit.tui.screens.inspect import InspectKeys
from opcockpit.tui.screens.orphan import OrphanScreen
from opcockpit.tui.table.widget import KeyedTable
from opcockpit.tui.widgets.tables import orphans_table

if TYPE_CHECKING:
    from textual.app import App

    _AppBase = App[int]  # the mixin's host, for type checkers only
else:
    _AppBase = object

__all__ = ["OrphansTab", "orphan_copy_value", "orphans_widget"]


def orphans_widget(flash_clock: Callable[[], float] = time.monotonic) -> KeyedTable:
    """The tab's table; `flash_clock` times the change highlight (frozen in snapshot tests)."""
    return orphans_table(id="orphans-table", clock=flash_clock)


def orphan_copy_value(key: str) -> str:
    """`c` on an orphan: its instance id, what an operator pastes into a CLI."""
    return key.split("/", 1)[1]


class OrphansTab(InspectKeys, _AppBase):
    """CockpitApp's Orphans tab (mixin); see the module docstring."""

    ground_truth: GroundTruth | None
    _or_w: KeyedTable
    _rows_by_key: dict[str, GroundTruthRow]

    if TYPE_CHECKING:  # GroundTruthTab's / the app's (a runtime stub would shadow them in the MRO)

        def open_lease(self, lease_id: str) -> None: ...

        def show_tab(self, tab: str) -> None: ...

    @property
    def orphans_table(self) -> KeyedTable:
        return self._or_w

    def focus_orphan(self, key: str) -> None:
        self.show_tab("orphans")
        self.orphans_table.set_filter("")
        self.orphans_table.move_cursor_to_key(key, center=True)

    def _orphan_selected(self, key: str) -> None:
        if self.ground_truth is None:
            return
        orphan = next((o for o in self.ground_truth.orphans if o.key == key), None)
        if orphan is None:
            self.notify("this orphan is gone since the last refresh", markup=False)
            return
        self.push_screen(OrphanScreen(orphan))
