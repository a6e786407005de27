"""The TUI's live loops beside the refresh timer (issue 10 / 13): continuous OTLP export and the
ledger watch that brings webhook events (`opcockpit serve`, another process) on screen.

`Beat`: the app's one periodic callback (its heartbeat), on the loop itself.

`LiveLoops(app)`: `start()` from the app's on_mount, `await stop()` from its on_unmount. Both
parts come from the wiring (`build_exporter`, `build_ledger_watch`) on the app's `cockpit`; an app
without one (tests on a prepared source) runs neither. Setting `exporter` before `start()`
replaces the configured one (tests).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opcockpit.domain.text import error_line

if TYPE_CHECKING:
    from opcockpit.services.export import ContinuousExporter
    from opcockpit.services.ledger_watch import LedgerWatch

__all__ = ["LEDGER_POLL_S", "Beat", "LiveLoops"]

LEDGER_POLL_S = 1.0  # a webhook on screen within ~1 s: one indexed ledger query per second


class Beat:
    """`callback()` every `interval` s on the running loop (`call_at`, on a fixed grid; beats
    missed while the loop was busy are skipped), until `stop()`. What a Textual interval timer
    does, without its task: each of its beats was a sleep's future, a task step and Textual's
    callback dispatch, all run cold in a quiet process (issue 10, idle tick: ~0.07 ms a beat
    more even warm). An exception goes to `on_error` (the app's handler, as a timer's would)."""

    def __init__(
        self, interval: float, callback: Callable[[], object], on_error: Callable[[Exception], object]
    ) -> None:
        self.interval = interval
        self.callback = callback
        self.on_error = on_error
        self._next = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._next = loop.time() + self.interval
        self._handle = loop.call_at(self._next, self._run)

    def stop(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()

    def _run(self) -> None:
        if self._handle is None:
            return
        try:
            self.callback()
        except Exception as error:
            self.on_error(error)
        if self._handle is None:  # the callback stopped it
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._next += self.interval
        if self._next <= now:
            self._next += (now - self._next) // self.interval * self.interval + self.interval
        self._handle = loop.call_at(self._next, self._run)


class LiveLoops:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.exporter: ContinuousExporter | None = None
        self.ledger_watch: LedgerWatch | None = None
        self.error: str | None = None  # the exporter could not be built (one line)
        self._started = False
        self._polling: asyncio.Task[int] | None = None  # the ledger poll in flight

    @property
    def drops(self) -> int:
        """Records the OTLP export dropped (queue full, collector unreachable): the header's."""
        if self.exporter is None:
            return 0
        with contextlib.suppress(Exception):
            return int(self.exporter.drops)
        return 0

    def start(self) -> None:
        """Inside the running app (on_mount): start the exporter; the app's heartbeat polls."""
        if self._started:
            return
        self._started = True
        app = self.app
        cockpit = getattr(app, "cockpit", None)
        if cockpit is not None:
            from opcockpit.wiring import build_exporter, build_ledger_watch

            if self.exporter is None:
                try:
                    self.exporter = build_exporter(cockpit)
                except Exception as exc:  # a bad [export.otlp] must not keep the fleet off screen
                    self.error = error_line(exc)
                    app.notify(f"OTLP export off: {self.error}", severity="warning")
            if self.ledger_watch is None:
                self.ledger_watch = build_ledger_watch(
                    cockpit, on_change=lambda _names: app.request_refresh()
                )
        if self.exporter is not None:
            self.exporter.start()

    def beat(self) -> None:
        """The app's heartbeat (every LEDGER_POLL_S, or its refresh if shorter): the ledger poll,
        not in deterministic tests (no timers there: `auto_poll` off)."""
        if self._started and self.app.auto_poll:
            self._poll_ledger()

    def _poll_ledger(self) -> None:
        """A plain task, one at a time, and none while the watch is sure at once that nothing is
        new: a Textual worker per second (its object, its three state messages through the app)
        was a steady share of an idle tick, and so was a task per second that found nothing
        (issue 10)."""
        watch = self.ledger_watch
        if watch is None or (self._polling is not None and not self._polling.done()) or watch.quiet():
            return
        self._polling = asyncio.get_running_loop().create_task(watch.read())  # never raises

    async def poll_ledger(self) -> int:
        """One ledger tick now (what the timer runs): instances looked at."""
        return await self.ledger_watch.poll() if self.ledger_watch is not None else 0

    async def stop(self) -> None:
        """On unmount: stop exporting (the queue is flushed for a moment, then dropped)."""
        polling, self._polling = self._polling, None
        if polling is not None and not polling.done():
            polling.cancel()
            with contextlib.suppress(BaseException):
                await polling
        exporter, self.exporter = self.exporter, None
        if exporter is not None:
            await exporter.stop(timeout_s=1.0)
