"""The column chooser and the sort picker screens (defined beside the table that opens them)."""

from opcockpit.tui.table.pickers import ColumnsScreen, SortPickScreen

__all__ = ["ColumnsScreen", "SortPickScreen"]
