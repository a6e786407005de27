"""Pause the cyclic garbage collector around bulk builds of acyclic objects.

Reading sandbox.db, reconciling and serialising each allocate tens of thousands of small records
while tens of thousands more are alive; every gen-0 overflow then triggers collections that rescan
the live fleet, which cost 20-40% of those steps. None of them creates reference cycles, so the
collector has nothing to find there. The pause nests and is thread-safe (the TUI reads the DB in a
worker thread while the UI thread serialises): the first entrant disables the collector only if it
was enabled, the last one to leave restores it, and a caller's own gc.disable() is respected.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]

_lock = threading.Lock()
_depth = 0
_we_disabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    global _depth, _we_disabled
    with _lock:
        if _depth == 0:
            _we_disabled = gc.isenabled()
            if _we_disabled:
                gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _we_disabled:
                _we_disabled = False
                gc.enable()
