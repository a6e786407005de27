"""The Ground truth tab: one row per lease (cells in tui/rows.py, table in widgets/tables.py).

`GroundTruthTab` is the app's part of it (a mixin of CockpitApp): the table, Enter on a lease (its
thread detail screen) and keeping open thread details on the newest row of their lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from opcockpit.domain.models import GroundTruthRow
from opcockpit.tui.screens.thread import ThreadDetailScreen
from opcockpit.tui.table.widget import KeyedTable
from opcockpit.tui.widgets.tables import ground_truth_table

if TYPE_CHECKING:
    from textual.app import App

    from opcockpit.tui.data import DetailSource

    _AppBase = App[int]  # the mixin's host, for type checkers only
else:
    _AppBase = object

__all__ = ["GroundTruthTab", "ground_truth_widget"]


def ground_truth_widget(flash_clock: Callable[[], float] = time.monotonic) -> KeyedTable:
    """The tab's table; `flash_clock` times the change highlight (frozen in snapshot tests)."""
    return ground_truth_table(id="gt-table", clock=flash_clock)


class GroundTruthTab(_AppBase):
    """CockpitApp's Ground truth tab (mixin); see the module docstring."""

    details: DetailSource | None
    refresh_s: float
    _gt_w: KeyedTable
    _rows_by_key: dict[str, GroundTruthRow]

    @property
    def gt_table(self) -> KeyedTable:
        return self._gt_w

    def open_lease(self, lease_id: str) -> None:
        row = self._rows_by_key.get(lease_id)
        if row is None:
            self.notify(f"lease {lease_id} is not in the current picture", severity="warning", markup=False)
            return
        self.push_screen(ThreadDetailScreen(row, self.details, follow_interval=self.refresh_s))

    def _lease_selected(self, key: str) -> None:
        self.open_lease(key)

    def _update_thread_details(self) -> None:
        # Open thread details (possibly under a dialog) show the newest row of their lease.
        for screen in self.screen_stack:
            if isinstance(screen, ThreadDetailScreen):
                screen.update_row(self._rows_by_key.get(screen.row.lease_id))
