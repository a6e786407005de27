"""Pause the cyclic garbage collector around bulk builds of acyclic objects.

Reading sandbox.db, reconciling and serialising each allocate tens of thousands of small records
while tens of thousands more are alive; every gen-0 overflow then triggers collections that rescan
the live fleet, which cost 20-40% of those steps. None of them creates reference cycles, so the
collector has nothing to find there. The pause nests and is thread-safe (the TUI reads the DB in a
worker thread while the UI thread serialises): the first entrant disables the collector only if it
was enabled, the last one to leave restores it, and a caller's own gc.disable() is respected.

A class rather than @contextmanager: leaving must not allocate after re-enabling the collector
(a generator's StopIteration would), or the deferred young-generation pass runs inside the pause's
last statement instead of wherever the caller next allocates.
"""

from __future__ import annotations

import gc
import threading
from types import TracebackType

__all__ = ["gc_paused"]


class _GcPause:
    __slots__ = ()

    _lock = threading.Lock()
    _depth = 0
    _we_disabled = False

    def __enter__(self) -> None:
        cls = _GcPause
        with cls._lock:
            if cls._depth == 0:
                cls._we_disabled = gc.isenabled()
                if cls._we_disabled:
                    gc.disable()
            cls._depth += 1

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        cls = _GcPause
        with cls._lock:
            cls._depth -= 1
            if cls._depth == 0 and cls._we_disabled:
                cls._we_disabled = False
                gc.enable()


_PAUSE = _GcPause()


def gc_paused() -> _GcPause:
    """`with gc_paused(): ...` — the cyclic GC is off inside (nesting and threads allowed)."""
    return _PAUSE
