"""tui/heap.settle_heap (issue 10, steady-state CPU): the long-lived heap is frozen out of the
collector's walks and the young threshold raised; only the real cockpit asks for it (run_app),
never an app built for tests. Checked in a child interpreter: it changes process-wide state."""

from __future__ import annotations

import subprocess
import sys

from opcockpit.tui.app import CockpitApp
from opcockpit.tui.heap import YOUNG_THRESHOLD

CHILD = """
import gc
from opcockpit.tui.heap import settle_heap
kept = [[i] for i in range(1000)]
before = gc.get_freeze_count()
settle_heap()
print(before, gc.get_freeze_count() >= len(kept), gc.get_threshold()[0])
"""


def test_settle_heap_freezes_what_lives_and_raises_the_young_threshold() -> None:
    cmd = [sys.executable, "-c", CHILD]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)
    before, frozen, young = out.stdout.split()
    assert before == "0" and frozen == "True" and int(young) == YOUNG_THRESHOLD


def test_an_app_built_in_a_test_process_does_not_settle_the_heap() -> None:
    class Source:
        async def refresh(self):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        async def aclose(self) -> None:
            return None

    assert CockpitApp(Source()).settle_heap is False


RELEASE_CHILD = """
import gc, weakref
from opcockpit.tui.heap import release_heap, settle_heap

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle, as an app's DOM and picture hold
probe = weakref.ref(a)
settle_heap()
del a, b
gc.collect()
stuck = probe() is not None  # frozen: the cycle outlives its last reference
release_heap()  # the app ended (`:ctx` switches to the next one)
gc.collect()
print(stuck, probe() is None, gc.get_freeze_count(), gc.get_threshold()[0])
"""


def test_release_heap_lets_the_ended_apps_cycles_be_collected() -> None:
    cmd = [sys.executable, "-c", RELEASE_CHILD]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)
    stuck, freed, frozen, young = out.stdout.split()
    assert (stuck, freed, frozen) == ("True", "True", "0") and int(young) < YOUNG_THRESHOLD
