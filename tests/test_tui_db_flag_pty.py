"""Issue 15, bug 7: `opcockpit --db PATH` opens the cockpit on that file (it said `invalid choice`).

A real process on a real pty, as an operator types it: the cockpit draws the worked example's
leases from the sandbox.db given on the command line (no config file, an empty HOME) and keeps
running."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
from pathlib import Path

from tests.fixtures.leon_db import write_worked_example
from tests.pty_support import read_pty

REPO = Path(__file__).resolve().parents[1]


def test_db_flag_opens_the_cockpit_on_that_file(tmp_path: Path) -> None:
    we = write_worked_example(tmp_path / "leon")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPCOCKPIT_", "LEON_"))}
    env.update(
        TERM="xterm-256color",
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "cfg"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        OPCOCKPIT_LEDGER=str(tmp_path / "ledger.db"),
        PYTHONPATH=str(REPO),
    )
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    argv = ["--db", str(we.sandbox_db), "--events-db", str(we.events_db), "--read-only"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "opcockpit.cli", *argv],
        stdin=secondary, stdout=secondary, stderr=secondary, env=env, cwd=tmp_path,
        start_new_session=True, close_fds=True,
    )  # fmt: skip
    os.close(secondary)
    try:
        wanted = [lease.encode() for lease in we.leases]
        out = read_pty(primary, 60.0, until=wanted)
        missing = [w.decode() for w in wanted if w not in out]
        assert not missing, (missing, out[-800:])
        assert b"invalid choice" not in out and b"Traceback" not in out
        assert proc.poll() is None  # still running: the cockpit, not an error and an exit
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        os.close(primary)
