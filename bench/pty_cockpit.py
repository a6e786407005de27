"""The real cockpit TUI in a pty, for the end-to-end benches: started at a terminal size, stopped
politely (SIGTERM, then SIGKILL). The caller reads the pty (and closes it)."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
from collections.abc import Sequence
from pathlib import Path

ROWS, COLS = 40, 120  # what every pty bench draws: a wide but ordinary terminal


def start_in_pty(
    args: Sequence[str],
    env: dict[str, str],
    cwd: Path | str,
    *,
    program: Sequence[str] = ("-m", "opcockpit.cli"),
    rows: int = ROWS,
    cols: int = COLS,
) -> tuple[subprocess.Popen[bytes], int]:
    """`python PROGRAM ARGS` (the cockpit's CLI by default) on a new pty: (the process, the pty's
    primary fd)."""
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, *program, *args],
        stdin=secondary, stdout=secondary, stderr=secondary, env=env, cwd=cwd,
        start_new_session=True, close_fds=True,
    )  # fmt: skip
    os.close(secondary)
    return proc, primary


def stop(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM, and SIGKILL when it has not exited within `grace_s`."""
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
