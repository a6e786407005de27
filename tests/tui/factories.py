"""Test data for the TUI: re-exported from opcockpit.tui.synthetic so the bench shares it."""

from opcockpit.tui.synthetic import NOW, PROVIDERS, make_ground_truth, mutate

__all__ = ["NOW", "PROVIDERS", "make_ground_truth", "mutate"]
