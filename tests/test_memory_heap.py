"""The live cockpit's memory knobs (issue 10, memory): glibc heap tuning and trimming
(adapters/memory.py, started by wiring.tune_for_long_run for the TUI) and the bounded timestamp
value cache (domain/timeutil.py). Real glibc, real RSS; no timing assertions."""

from __future__ import annotations

import ctypes.util
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from opcockpit.adapters import memory
from opcockpit.domain import timeutil
from opcockpit.wiring import tune_for_long_run

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or memory._LIBC is None, reason="glibc's malloc only"
)


def _rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@glibc
def test_trim_hands_free_pages_inside_the_heap_back_to_the_os() -> None:
    assert ctypes.util.find_library("c")
    assert memory.tune_heap() is True
    # 40 MB of malloc'd blocks (bytes > 512 B bypass pymalloc; < the mmap threshold: heap), then
    # every tenth kept: the freed runs between survivors are whole pages the heap cannot give
    # back by shrinking its top, only malloc_trim can.
    blocks = [bytes(2000) for _ in range(20_000)]
    keep = blocks[::10]
    del blocks
    before = _rss_kb()
    assert memory.trim_heap() is True
    after = _rss_kb()
    assert before - after > 10_000, (before, after)  # KB: most of the ~36 MB freed
    assert len(keep) == 2_000


@glibc
def test_the_trimmer_trims_until_stopped() -> None:
    trimmer = memory.HeapTrimmer(every_s=0.01).start()
    try:
        deadline = time.monotonic() + 30
        while trimmer.trims < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert trimmer.trims >= 3
    finally:
        trimmer.stop()
    done = trimmer.trims
    time.sleep(0.05)
    assert trimmer.trims == done  # stopped: no trim after stop() returned


@glibc
def test_wiring_tunes_the_heap_and_starts_a_trimmer_for_the_tui() -> None:
    trimmer = tune_for_long_run()
    assert trimmer is not None
    try:
        assert trimmer.every_s == memory.TRIM_EVERY_S
        assert trimmer._thread is not None and trimmer._thread.daemon and trimmer._thread.is_alive()
    finally:
        trimmer.stop()
    assert trimmer._thread is None


def test_the_timestamp_value_cache_stays_bounded_and_right_across_clears() -> None:
    parse = timeutil._build_parser(UTC)  # a parser of its own: other tests' values stay out
    start = datetime(2026, 3, 1, tzinfo=UTC)
    n = 3 * timeutil._MAX_VALUE_CACHE + 17
    peak = 0
    for i in range(n):
        moment = start + timedelta(seconds=i)
        text = moment.replace(tzinfo=None).isoformat()
        assert parse(text) == moment
        assert parse(text) == moment  # the cached answer is the same one
        peak = max(peak, parse.cache_len())  # type: ignore[attr-defined]
    assert 0 < peak <= timeutil._MAX_VALUE_CACHE
