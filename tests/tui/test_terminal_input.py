"""The cockpit's terminal input loop (issue 10, the idle tick): it waits for input without a
timeout (Textual's loop woke 10 times a second for nothing), yet keys arrive, a lone ESC still
becomes the Escape key after the parser's moment, and stopping wakes it at once."""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from typing import Any

from textual import events
from textual._xterm_parser import XTermParser
from textual.app import App

from opcockpit.tui.terminal import HangupSafeDriver, WakingEvent, input_timeout


class _Recording(HangupSafeDriver):
    """The real driver on a pty of ours, keeping the keys it would post to the app."""

    def __init__(self, fd: int) -> None:
        super().__init__(App())
        self.fileno = fd
        self.exit_event = WakingEvent()
        self.keys: list[str] = []

    def process_message(self, message: Any) -> None:
        if isinstance(message, events.Key):
            self.keys.append(message.key)


def _until(cond: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_a_waking_event_wakes_a_select_and_is_drained() -> None:
    stop = WakingEvent()
    assert select.select([stop.wake_fd], [], [], 0)[0] == []
    stop.set()
    assert stop.is_set() and select.select([stop.wake_fd], [], [], 0)[0] == [stop.wake_fd]
    stop.drain()
    assert select.select([stop.wake_fd], [], [], 0)[0] == []


def test_the_loop_waits_without_a_timeout_unless_the_parser_has_one() -> None:
    parser = XTermParser()
    assert input_timeout(parser) is None  # nothing pending: wait for input or the stop
    list(parser.feed("\x1b"))  # a lone ESC: Escape, or the start of a sequence?
    pending = input_timeout(parser)
    assert pending is not None and pending >= 0


async def test_keys_escape_and_stop_on_a_real_pty() -> None:  # the driver wants a loop
    primary, secondary = os.openpty()
    tty.setraw(secondary)  # as the driver's application mode: keys arrive without a newline
    driver = _Recording(secondary)
    thread = threading.Thread(target=driver.run_input_thread, daemon=True)
    thread.start()
    try:
        os.write(primary, b"q")
        assert _until(lambda: driver.keys == ["q"])
        os.write(primary, b"\x1b")  # resolved by the parser's timeout, not by more input
        assert _until(lambda: driver.keys == ["q", "escape"])
        driver.exit_event.set()  # what stop_application_mode does: the thread ends
        thread.join(10)
        assert not thread.is_alive()
    finally:
        driver.exit_event.set()
        os.close(primary)
        os.close(secondary)
