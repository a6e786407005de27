"""The real KeyedTable alone in an app, counting the repaints it asks Textual for (tick tests)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from textual.app import App, ComposeResult

from opcockpit.tui.table.widget import KeyedTable


class CountingTable(KeyedTable):
    """The real table, counting the repaints it asks Textual for."""

    refreshes = 0
    whole = 0  # refreshes of the whole widget (no region named)

    def refresh(self, *regions: Any, **kwargs: Any) -> Any:
        self.refreshes += 1
        if not regions:
            self.whole += 1
        else:
            self.regions = [*getattr(self, "regions", []), *regions]
        return super().refresh(*regions, **kwargs)


class OneTableApp(App[None]):
    """`table` holding `rows` (its ages painted at `now` when given), focused."""

    def __init__(
        self, table: KeyedTable, rows: dict[str, tuple[Any, ...]], now: datetime | None = None
    ) -> None:
        super().__init__()
        self.table, self.rows, self.now = table, rows, now

    def compose(self) -> ComposeResult:
        yield self.table

    def on_mount(self) -> None:
        if self.now is not None:
            self.table.set_now(self.now)
        self.table.replace(self.rows)
        self.table.focus()
