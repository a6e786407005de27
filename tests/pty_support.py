"""Reading a real pty in tests: what a terminal emulator would receive, until some text was drawn."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Sequence


def read_pty(fd: int, seconds: float, until: Sequence[bytes] = ()) -> bytes:
    """The output on `fd` for `seconds`, or until every text in `until` arrived (EOF or EIO, the
    terminal gone, ends it too)."""
    buf = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (until and all(t in buf for t in until)):
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
    return buf
