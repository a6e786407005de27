"""A Linux driver that survives its terminal going away (tmux kill-server, a dropped SSH session).

Textual's LinuxDriver writes through a thread with a bounded queue. When the terminal is hung up
the write raises EIO, the writer thread dies, the queue fills and the next `write` on the event
loop blocks forever: the cockpit hangs until SIGTERM. When the terminal is merely not drained any
more (its reader is dying) the writer blocks in the syscall and exit waits for it, also forever.
Reads on a hung-up terminal raise EIO (a Textual panic, a traceback) or return EOF (a busy loop).

`HangupSafeDriver` fixes the three at the driver boundary: output goes through `SafeWriter`
(os.write on the fd, so a blocked syscall holds no Python lock; on OSError it stops writing and
reports), a read error or EOF on the terminal reports, and once the terminal is gone writes are
dropped and stopping never waits for the writer more than a moment. The report is `on_gone`,
called on the event loop (the app exits through its normal path, see CockpitApp.terminal_gone).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import threading
from codecs import getincrementaldecoder
from collections.abc import Callable
from queue import Empty, Full, Queue
from typing import Any

from textual._loop import loop_last
from textual._parser import ParseError
from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.drivers import linux_driver
from textual.drivers.linux_driver import LinuxDriver

STOP_WAIT_S = 0.5  # how long exit waits for output still in flight (a hung terminal never drains)


class SafeWriter(threading.Thread):
    """Drop-in for textual's WriterThread that never blocks the event loop on a dead terminal."""

    def __init__(self, fd: int, on_error: Callable[[], None]) -> None:
        super().__init__(daemon=True, name="opcockpit-output")
        self._fd = fd
        self._queue: Queue[str | None] = Queue(30)
        self._on_error = on_error
        self.gone = False

    def write(self, text: str) -> None:
        while not self.gone:
            with contextlib.suppress(Full):
                self._queue.put(text, timeout=0.25)  # re-checks `gone`: never waits on a dead writer
                return

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def flush(self) -> None:
        return

    def run(self) -> None:
        while True:
            text = self._queue.get()
            if text is None:
                return
            if self.gone:
                continue
            data = text.encode("utf-8", "replace")
            try:
                while data:  # os.write: a write blocked on the tty holds no lock Python needs at exit
                    data = data[os.write(self._fd, data) :]
            except OSError:  # EIO: the terminal is gone; keep draining the queue so writers go on
                self.gone = True
                self._on_error()

    def stop(self) -> None:
        with contextlib.suppress(Full):
            self._queue.put(None, timeout=0 if self.gone else STOP_WAIT_S)
        self.join(STOP_WAIT_S if not self.gone else 0.05)

    def discard(self) -> None:
        """The terminal is gone: drop what is queued and everything written from now on."""
        self.gone = True
        with contextlib.suppress(Empty):
            while True:
                self._queue.get_nowait()


class WakingEvent(threading.Event):
    """The driver's `exit_event`, which also wakes the input thread's select through a pipe: the
    thread then waits for input without a timeout instead of waking 10 times a second (Textual's
    `select(0.1)`, ~1 ms of CPU a second on an idle cockpit; issue 10, the idle tick)."""

    def __init__(self) -> None:
        super().__init__()
        self.wake_fd, self._write_fd = os.pipe()
        os.set_blocking(self.wake_fd, False)
        os.set_blocking(self._write_fd, False)

    def set(self) -> None:
        super().set()
        with contextlib.suppress(OSError):  # full pipe: a wake-up is already pending
            os.write(self._write_fd, b"x")

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self.wake_fd, 512):
                pass


def input_timeout(parser: XTermParser) -> float | None:
    """How long the input thread may wait: until the parser's pending timeout (a lone ESC
    becomes the Escape key after a moment), else until input or exit."""
    due = parser._timeout_time
    return None if due is None else max(0.0, due - get_time())


class HangupSafeDriver(LinuxDriver):
    """LinuxDriver whose output and input notice a terminal that went away (see module doc)."""

    on_gone: Callable[[], None] | None = None  # set by the app; called on the event loop
    _gone = False

    def start_application_mode(self) -> None:
        # Also the SIGCONT path (resume_application_mode): a hangup brings SIGHUP *and* SIGCONT,
        # and Textual would set up the dead terminal again with a fresh writer (EIO, traceback).
        if self._gone:
            return
        if not isinstance(self.exit_event, WakingEvent):  # before the input thread starts
            self.exit_event = WakingEvent()
        # Textual builds its writer inside this method; have it build ours (main thread only).
        saved = linux_driver.WriterThread
        linux_driver.WriterThread = self._make_writer  # type: ignore[assignment,misc]
        try:
            super().start_application_mode()
        finally:
            linux_driver.WriterThread = saved  # type: ignore[misc]

    def _make_writer(self, file: Any) -> SafeWriter:
        previous = self._writer_thread
        if isinstance(previous, SafeWriter):  # resumed: the old writer is done
            previous.stop()
        return SafeWriter(file.fileno(), self._report_gone)

    def _report_gone(self) -> None:
        # From the writer or input thread: hand over to the event loop.
        self._gone = True
        callback = self.on_gone
        if callback is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed: nothing to do
                self._loop.call_soon_threadsafe(callback)

    def terminal_gone(self) -> None:
        """Stop talking to the terminal: queued and future output is dropped."""
        self._gone = True
        writer = self._writer_thread
        if isinstance(writer, SafeWriter):
            writer.discard()

    def run_input_thread(self) -> None:
        try:
            if isinstance(self.exit_event, WakingEvent):
                self._read_input(self.exit_event)
            else:
                super().run_input_thread()
        except OSError:  # EIO on read: hung up (instead of a Textual panic with a traceback)
            self._report_gone()

    def _read_input(self, stop: WakingEvent) -> None:
        """Textual's input loop (LinuxDriver.run_input_thread), waiting in select without a
        timeout unless the parser has one pending; `stop` wakes it through its pipe."""
        stop.drain()  # a wake-up left from the last stop (suspend / resume)
        fileno = self.fileno
        selector = selectors.SelectSelector()
        selector.register(fileno, selectors.EVENT_READ)
        selector.register(stop.wake_fd, selectors.EVENT_READ)
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode

        def process(ready: list[tuple[selectors.SelectorKey, int]], final: bool = False) -> None:
            keys = [key for key, mask in ready if key.fd == fileno and mask & selectors.EVENT_READ]
            for last, _key in loop_last(keys):
                data = decode(os.read(fileno, 1024 * 4), final=final and last)
                if not data:
                    break  # as Textual: stdin piped and at its end
                for event in parser.feed(data):
                    self.process_message(event)
            for event in parser.tick():
                self.process_message(event)

        try:
            while not stop.is_set():
                process(selector.select(input_timeout(parser)))
            selector.unregister(fileno)
            process(selector.select(0.1), final=True)
        finally:
            selector.close()
            with contextlib.suppress(EOFError, ParseError):
                for _event in parser.feed(""):
                    pass


__all__ = ["HangupSafeDriver", "SafeWriter", "WakingEvent", "input_timeout"]
