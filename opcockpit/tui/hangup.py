"""The cockpit when its terminal goes away (SIGHUP, EIO on the tty): exit, never hang or linger.

SIGHUP means the SSH session or the terminal went away. The app exits through its normal path so
the collector's connections close and nothing keeps polling providers in the background (k9s
#871/#945); tui/terminal.py's HangupSafeDriver reports EIO the same way. `HangupMixin` is a mixin
of CockpitApp.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.app import App
    from textual.driver import Driver

    _AppBase = App[int]  # the mixin's host, for type checkers only
else:
    _AppBase = object

__all__ = ["EXIT_GRACE_S", "HangupMixin"]

EXIT_GRACE_S = 5.0  # terminal gone: the process ends this long after, whatever still runs


class HangupMixin(_AppBase):
    """SIGHUP handling and the terminal-gone exit of CockpitApp; see the module docstring."""

    _hup_installed: bool
    _hup_previous: Any
    _gone: bool

    def _install_sighup(self) -> None:
        if not hasattr(signal, "SIGHUP"):
            return
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            self._hup_previous = signal.getsignal(signal.SIGHUP)
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
            self._hup_installed = True

    def _remove_sighup(self) -> None:
        if self._hup_installed:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
                # asyncio leaves SIG_DFL behind: a second hangup would kill the process before the
                # demo's teardown (doubles, temp dir) ran. Put back whoever handled it before us.
                if self._hup_previous is not None:
                    signal.signal(signal.SIGHUP, self._hup_previous)
            self._hup_installed = False

    def _on_sighup(self) -> None:
        self.terminal_gone()

    def get_driver_class(self) -> type[Driver]:
        driver = super().get_driver_class()
        from textual.drivers.linux_driver import LinuxDriver

        if driver is LinuxDriver:
            from opcockpit.tui.terminal import HangupSafeDriver

            HangupSafeDriver.on_gone = self.terminal_gone
            return HangupSafeDriver
        return driver

    def terminal_gone(self) -> None:
        """SIGHUP, or EIO on the terminal: nobody is watching. Exit now, without drawing again.

        Output is dropped (a hung terminal never drains, so teardown must not wait on it), the app
        exits through the normal path (workers cancelled, collector closed with a bound in
        on_unmount), and a watchdog ends the process should anything still hold it after
        EXIT_GRACE_S: an in-flight provider call or a stuck thread must not keep it alive."""
        if self._gone:
            return
        self._gone = True
        stop = getattr(self._driver, "terminal_gone", None)
        if callable(stop):  # a real terminal (not run_test's headless driver): the process is ours
            stop()
            _start_exit_watchdog(EXIT_GRACE_S)
        self.exit(0)


def _start_exit_watchdog(grace_s: float) -> None:
    """End the process `grace_s` from now if it is still alive (daemon: a normal exit beats it)."""

    def _expire() -> None:
        os._exit(128 + int(getattr(signal, "SIGHUP", 1)))

    timer = threading.Timer(grace_s, _expire)
    timer.daemon = True
    timer.start()
