"""A Footer that rebuilds its keys only when the keys it would show changed.

Textual's Footer recomposes (new FooterKey widgets for every key) on each `refresh_bindings()`.
The cockpit asks for that after every refresh (write keys grey out when the selection's state
changes), and the replaced keys were not freed: ~0.6 MB per refresh, 94 -> 777 MB in a 10-minute
demo at 0.5 s. Here a refresh request compares a signature of the active bindings (key, action,
label, enabled, tooltip) with what was composed last and recomposes only on a difference.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

Signature = tuple[tuple[Any, ...], ...]


def bindings_signature(screen: Screen[Any]) -> Signature:
    """What the footer shows for `screen`: one tuple per active binding (check_action included)."""
    return tuple(
        (key, b.binding.action, b.binding.description, b.binding.show, b.enabled, b.tooltip)
        for key, b in screen.active_bindings.items()
    )


class StableFooter(Footer):
    _composed: Signature | None = None

    def compose(self) -> ComposeResult:
        if self._bindings_ready:
            self._composed = bindings_signature(self.screen)
        yield from super().compose()

    def bindings_changed(self, screen: Screen[Any]) -> None:
        if (
            self._composed is not None
            and screen is self.screen
            and bindings_signature(screen) == self._composed
        ):
            return  # same keys, same state: nothing to redraw (and nothing to leak)
        super().bindings_changed(screen)


__all__ = ["StableFooter", "bindings_signature"]
