"""An Input that takes its keys in the order they were typed.

Input's own keys (Enter, backspace, ctrl+u, the arrows, ...) are bindings, and Textual runs a
binding only once its key has bubbled from the focused widget up to the app, one message queue
per ancestor, while a printable key is typed by the Input at once. A key queued right behind
one of them (the terminal's input thread hands over a whole read; two reads queue up while the
event loop is busy) was therefore typed before the binding ran: Enter submitted the text with the
next key in it, ctrl+u wiped the text typed after it. Here the Input's bindings run in its own key
handler, in arrival order; keys it does not bind bubble on as before.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input

__all__ = ["InOrderInput"]


class InOrderInput(Input):
    async def _on_key(self, event: events.Key) -> None:
        if event.is_printable:
            return  # Input's own handler (after this one) types it
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            # a priority binding ran before the key got here; an action that skips goes on up
            if not binding.priority and await self.app.run_action(binding.action, self):
                event.stop()  # not bubbled: the app's binding check does not run it again
                # nor this handler again through a subclass's that calls it (Textual calls each
                # class's _on_key down the MRO): Input's is skipped, so its cursor blink is here
                event.prevent_default()
                self._restart_blink()
                return
