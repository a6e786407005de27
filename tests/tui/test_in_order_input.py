"""InOrderInput (tui/widgets/in_order_input.py): keys queued back to back, as the terminal's input
thread hands over one read, edit the box in typing order, and a subclass whose key handler calls
the base's runs each binding once."""

from __future__ import annotations

from textual import events
from textual.app import App, ComposeResult

from opcockpit.tui.widgets.in_order_input import InOrderInput


class CallsSuper(InOrderInput):
    async def _on_key(self, event: events.Key) -> None:
        await super()._on_key(event)


class OneBox(App[None]):
    def __init__(self, box: InOrderInput) -> None:
        super().__init__()
        self.box = box

    def compose(self) -> ComposeResult:
        yield self.box


async def _typed(box: InOrderInput, keys: list[tuple[str, str | None]]) -> str:
    app = OneBox(box)
    async with app.run_test() as pilot:
        box.value = "old"
        box.cursor_position = 3
        box.focus()
        await pilot.pause()
        assert app._driver is not None
        for key, char in keys:
            app._driver.send_message(events.Key(key, char))
        for _ in range(100):
            await pilot.pause(0.01)
            if box.value.endswith("!"):
                break
        return box.value


KEYS = [("ctrl+u", None), ("a", "a"), ("b", "b"), ("backspace", "\x7f"), ("c", "c"), ("left", None),
        ("x", "x"), ("end", None), ("!", "!")]  # fmt: skip


async def test_queued_keys_edit_in_typing_order() -> None:
    assert await _typed(InOrderInput(), KEYS) == "axc!"


async def test_a_subclass_calling_the_base_handler_runs_each_binding_once() -> None:
    assert await _typed(CallsSuper(), [("backspace", "\x7f"), ("!", "!")]) == "ol!"
