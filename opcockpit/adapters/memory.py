"""glibc heap knobs for the long-running cockpit (issue 10, memory). Linux/glibc only; no-ops elsewhere.

The live cockpit converts thousands of rows in worker threads (aiosqlite's connection thread,
`asyncio.to_thread`) while the UI thread keeps the fleet alive. glibc gives each such thread a
malloc arena of its own (up to 8 per core), and the pages a conversion freed stay in the arena
that served it: measured at 10k leases, ~20 MB of free heap the process never used again.
Three knobs, applied once before the worker threads exist (the `tune_*` calls are cheap and
idempotent):

- `M_ARENA_MAX` 2: the threads share two arenas, so memory one conversion freed serves the next;
- a fixed `M_MMAP_THRESHOLD`: glibc otherwise raises the threshold each time a large block is
  freed (up to 32 MB), so the big transient tables of a full read land in the heap and pin it;
  with a fixed threshold they are mmapped and go back to the OS when freed;
- `malloc_trim(0)` every half minute from a daemon thread (`HeapTrimmer`): hands the whole free
  pages inside every arena back (madvise), which the heap's own top-only trimming never does.

None of this touches Python's small-object allocator (pymalloc): its 1 MiB arenas go back only
when empty, which no knob changes.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["HeapTrimmer", "trim_heap", "tune_heap"]

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

ARENA_MAX = 2
MMAP_THRESHOLD = 256 * 1024  # blocks above this are mmapped (glibc's start value is 128 KiB)
TRIM_EVERY_S = 30.0


def _libc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 (both present: glibc, not musl)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    return libc


_LIBC = _libc()


def tune_heap(*, arena_max: int = ARENA_MAX, mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Apply the arena cap and the fixed mmap threshold; False where glibc is not there.

    Call it before threads start: an arena glibc already made for a thread stays (the cap only
    stops new ones)."""
    if _LIBC is None:
        return False
    ok = bool(_LIBC.mallopt(M_ARENA_MAX, arena_max))
    return bool(_LIBC.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and ok


def trim_heap() -> bool:
    """Return the free pages of every malloc arena to the OS; True if any memory was released."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(0))


class HeapTrimmer:
    """A daemon thread calling `trim` every `every_s` seconds until `stop()`.

    A thread, not a UI timer: it must run whatever the screen does, and costs nothing while it
    waits (one Event.wait). A trim takes ~1 ms on the cockpit's heap."""

    def __init__(self, every_s: float = TRIM_EVERY_S, trim: Callable[[], object] = trim_heap) -> None:
        self.every_s = every_s
        self.trims = 0
        self._trim = trim
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> HeapTrimmer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="opcockpit-heap-trim", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._trim()
            self.trims += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
