"""The live cockpit's garbage collector (issue 10, steady-state CPU). Textual-free.

Measured in the TUI at 10k leases (bench_steady, gc.callbacks): the cyclic collector took ~14 %
of the process's CPU. A full collection walks every tracked object (~250k: the fleet picture,
the tables, Textual's DOM, the alert state) and took 0.2-0.3 s, several times a minute; young
collections traversed the 10k-row tuples each refresh builds. Nearly all of those objects live
as long as the process. So, once the first pictures and the first alert round are in:

- `gc.collect()` then `gc.freeze()`: what is alive now moves to the permanent generation, which
  later collections do not walk (objects still freed by refcount when dropped; only a reference
  cycle among them that becomes garbage later is not reclaimed);
- a higher young-generation threshold, so each refresh's short-lived objects are collected in
  fewer, larger passes;
- the compile cache (opcockpit/compile_cache.py) saved and released.

Only the real cockpit process asks for this (run_app): a test process running many apps would
keep their cycles forever.
"""

from __future__ import annotations

import gc

from opcockpit import compile_cache

__all__ = ["SETTLE_AFTER_REFRESHES", "YOUNG_THRESHOLD", "release_heap", "settle_heap"]

SETTLE_AFTER_REFRESHES = 3  # the first picture, then the first alert round has had time to land
YOUNG_THRESHOLD = 20_000  # gen0 allocations between young collections (CPython's default: 700)


_DEFAULT_YOUNG = gc.get_threshold()[0]


def settle_heap() -> None:
    """Collect once, freeze the survivors, raise the young threshold (idempotent enough: a
    second call freezes what is alive by then). The compile cache is saved and dropped first:
    start-up is over, and its ~1.5 MB of text and code would be frozen for the process's life."""
    compile_cache.release()
    gc.collect()
    gc.freeze()
    young, mid, old = gc.get_threshold()
    if young and young < YOUNG_THRESHOLD:
        gc.set_threshold(YOUNG_THRESHOLD, mid, old)


def release_heap() -> None:
    """Undo settle_heap when its app ends (run_tui runs a new app per `:ctx` switch): the frozen
    objects go back to the oldest generation, so the old app's reference cycles (its DOM, its
    picture) can be collected instead of staying for the life of the process."""
    gc.unfreeze()
    young, mid, old = gc.get_threshold()
    if young == YOUNG_THRESHOLD:
        gc.set_threshold(_DEFAULT_YOUNG, mid, old)
