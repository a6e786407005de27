"""The PostgreSQL side of the steady-state and team-ack benches (issue 12): start
bench/fleet_server_pg.py and account for the PostgreSQL server's CPU (the postmaster, its live
backends and the ones that exited), which the cockpit's own CPU does not include."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def start_fleet_pg(
    tmp: Path,
    leases: int,
    refresh: float,
    *,
    drift_interval: float | None = None,
    sqlite_ledger: Path | None = None,
) -> tuple[subprocess.Popen[str], Path, dict[str, Any]]:
    """(fleet server process, cockpit config, its side file: postmaster_pid, urls, load_s)."""
    cfg = tmp / "cockpit.toml"
    extra = ["--drift-interval", str(drift_interval)] if drift_interval is not None else []
    if sqlite_ledger is not None:
        extra += ["--sqlite-ledger", str(sqlite_ledger)]
    (tmp / "fleet").mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.fleet_server_pg", str(cfg), "--leases", str(leases),
         "--refresh", str(refresh), "--workdir", str(tmp / "fleet"), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the fleet is generated, copied and served
    if line.strip() != "ready":
        proc.kill()
        raise SystemExit(f"PostgreSQL fleet server did not start (said {line!r})")
    return proc, cfg, json.loads(cfg.with_suffix(".json").read_text())


def _stat(pid: int | str) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "


def pg_server_cpu_s(postmaster_pid: int) -> float | None:
    """CPU seconds of the whole server: postmaster + exited children (cutime/cstime) + live ones."""
    own = _stat(postmaster_pid)
    if own is None:
        return None
    ticks = sum(int(x) for x in own[11:15])
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(entry)
            if fields is not None and fields[1] == str(postmaster_pid):
                ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK
