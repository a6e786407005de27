"""The cockpit exits when its terminal goes away (tmux kill-server, a dropped SSH session).

Real process, real pty: `opcockpit demo` runs as a session leader whose controlling terminal is
the pty, like a shell's child in tmux. Then the terminal goes away in one of three ways and the
process must exit (a liveness bound, generous on purpose; not a benchmark) without a traceback:

- hangup: SIGHUP arrives while nothing drains the terminal any more (the reader is dying), so
  every write to it blocks;
- close: the pty master is closed (the kernel hangs up the session: SIGHUP, then EIO on the tty);
- eof: the master is closed but the process is not the terminal's session leader (no SIGHUP):
  only EIO/EOF on the terminal says it is gone.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.pty_support import read_pty

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX only")

EXIT_BOUND_S = 10.0  # liveness, not speed: the fix exits in well under 2 s

# Runs the CLI with Python-level stderr in a file: Textual draws on the terminal (fd 2), while a
# traceback (uncaught, thread, Textual panic) is printed through sys.stderr and lands in the log.
WRAPPER = """
import sys, threading, traceback
log = open(sys.argv[1], "w", buffering=1)
sys.stderr = log
def hook(a):
    log.write(f"thread {a.thread}\\n")
    traceback.print_exception(a.exc_type, a.exc_value, a.exc_traceback, file=log)
threading.excepthook = hook
from opcockpit.cli.main import main
try:
    code = main(sys.argv[2:])
except BaseException:
    traceback.print_exc(file=log)
    raise
log.write(f"exit {code}\\n")
sys.exit(code)
"""


@pytest.mark.parametrize("how", ["hangup", "close", "eof"])
def test_cockpit_exits_when_its_terminal_goes_away(tmp_path: Path, how: str) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    log = tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPCOCKPIT_")}
    env.update(
        TMPDIR=str(tmp),
        TERM="xterm-256color",
        HOME=str(tmp_path / "home"),
        OPCOCKPIT_LEDGER=str(tmp_path / "ledger.db"),
        XDG_CONFIG_HOME=str(tmp_path / "cfg"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def controlling_tty() -> None:  # after setsid: the pty becomes this session's terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    argv = [sys.executable, "-c", WRAPPER, str(log), "demo", "--leases", "200", "--refresh", "0.5"]
    proc = subprocess.Popen(
        argv,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        start_new_session=True,
        preexec_fn=None if how == "eof" else controlling_tty,
        close_fds=True,
    )
    os.close(secondary)
    closed = False
    try:
        out = read_pty(primary, 30, until=[b"leases"])
        assert b"leases" in out, out[-500:]
        out += read_pty(primary, 3)  # a few refreshes on screen; then the terminal goes away
        if how == "hangup":
            proc.send_signal(signal.SIGHUP)  # and nobody reads the terminal from now on
        else:
            os.close(primary)
            closed = True
        deadline = time.monotonic() + EXIT_BOUND_S
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is not None, f"still running {EXIT_BOUND_S:g} s after the terminal went away"
        text = log.read_text()
        assert "Traceback" not in text, text[-3000:]
        assert not any(p.name.startswith("opcockpit-demo-") for p in tmp.iterdir()), "demo not torn down"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if not closed:
            os.close(primary)
