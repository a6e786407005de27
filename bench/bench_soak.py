"""Soak benchmark: the real cockpit TUI on a 10k-lease fleet for minutes; does its memory grow?

Not a test and not part of bench/run.py's default run (SIZES_CAP = 0: a soak takes minutes).
Run it directly:

    .venv/bin/python -m bench.bench_soak --minutes 3 --leases 10000 --refresh 0.5

It starts bench/fleet_server.py (demo fleet + provider doubles + drift) in its own process, then
the cockpit (`python -m opcockpit.cli --config CFG --refresh R`) in a real pty at 120x40 whose
output is drained continuously, and samples the cockpit's VmRSS (/proc/PID/status) and CPU time
(utime+stime, /proc/PID/stat) every `--interval` seconds. It prints JSON (and writes it with
`--out`): RSS at 1 min and at the end, growth % after the first minute, mean CPU %.
`--pythonpath DIR` runs the cockpit from another checkout (e.g. a `git worktree` of an older
commit) to compare before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.pty_cockpit import start_in_pty

ROOT = Path(__file__).resolve().parent.parent
SIZES_CAP = 0  # bench/run.py: never in the default run
CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_s(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def _drain(fd: int, stop: threading.Event) -> None:
    """Read the terminal like a terminal emulator would, so the cockpit never blocks on output."""
    while not stop.is_set():
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                if not os.read(fd, 1 << 16):
                    return
            except OSError:
                return


def start_fleet(
    tmp: Path, leases: int, refresh: float, *, drift_interval: float | None = None
) -> tuple[subprocess.Popen[str], Path]:
    """The fleet server in its own process; `drift_interval` (s) paces its drift (1e9: none)."""
    cfg = tmp / "cockpit.toml"
    drift = ["--drift-interval", str(drift_interval)] if drift_interval is not None else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.fleet_server", str(cfg), "--leases", str(leases),
         "--refresh", str(refresh), "--workdir", str(tmp / "fleet"), *drift],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    (tmp / "fleet").mkdir(exist_ok=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the fleet is generated and the doubles serve
    if line.strip() != "ready":
        proc.kill()
        raise SystemExit(f"fleet server did not start (said {line!r})")
    return proc, cfg


def start_cockpit(
    tmp: Path, cfg: Path, refresh: float, pythonpath: str | None
) -> tuple[subprocess.Popen[bytes], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPCOCKPIT_")}
    env.update(
        TERM="xterm-256color",
        HOME=str(tmp / "home"),
        XDG_CONFIG_HOME=str(tmp / "xdg-config"),
        XDG_DATA_HOME=str(tmp / "xdg-data"),
        OPCOCKPIT_LEDGER=str(tmp / "alerts-ledger.db"),
    )
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return start_in_pty(["--config", str(cfg), "--refresh", str(refresh)], env, pythonpath or tmp)


def soak(
    minutes: float, leases: int, refresh: float, interval: float, pythonpath: str | None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="opcockpit-soak-") as tmpdir:
        tmp = Path(tmpdir)
        fleet, cfg = start_fleet(tmp, leases, refresh)
        cockpit, fd = start_cockpit(tmp, cfg, refresh, pythonpath)
        stop = threading.Event()
        drainer = threading.Thread(target=_drain, args=(fd, stop), daemon=True)
        drainer.start()
        samples: list[dict[str, float]] = []
        t0 = time.monotonic()
        try:
            while (elapsed := time.monotonic() - t0) < minutes * 60 + 0.5:
                rss, cpu = rss_mb(cockpit.pid), cpu_s(cockpit.pid)
                if rss is None or cpu is None or cockpit.poll() is not None:
                    raise SystemExit(f"cockpit exited early (rc {cockpit.poll()})")
                samples.append({"t_s": round(elapsed, 1), "rss_mb": round(rss, 1), "cpu_s": round(cpu, 2)})
                print(json.dumps(samples[-1]), file=sys.stderr, flush=True)
                time.sleep(max(0.0, interval - (time.monotonic() - t0 - elapsed)))
        finally:
            stop.set()
            cockpit.terminate()
            fleet.terminate()
            for p in (cockpit, fleet):
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
            os.close(fd)
    return summarize(samples, minutes=minutes, leases=leases, refresh=refresh, pythonpath=pythonpath)


def summarize(samples: list[dict[str, float]], **params: Any) -> dict[str, Any]:
    at_1min = next((s for s in samples if s["t_s"] >= 60), samples[-1])
    end = samples[-1]
    span = end["t_s"] - samples[0]["t_s"]
    return {
        **params,
        "rss_start_mb": samples[0]["rss_mb"],
        "rss_1min_mb": at_1min["rss_mb"],
        "rss_end_mb": end["rss_mb"],
        "growth_after_1min_pct": round(100 * (end["rss_mb"] - at_1min["rss_mb"]) / at_1min["rss_mb"], 1),
        "mean_cpu_pct": round(100 * (end["cpu_s"] - samples[0]["cpu_s"]) / span, 1) if span else None,
        "samples": samples,
    }


def run(sizes: list[int]) -> list[dict[str, Any]]:
    """bench/run.py hook (never reached by default, see SIZES_CAP): a 3-minute soak per size."""
    rows = []
    for n in sizes:
        r = soak(3, n, 0.5, 10, None)
        growth = r["growth_after_1min_pct"]
        notes = f"rss {r['rss_1min_mb']}->{r['rss_end_mb']} MB, cpu {r['mean_cpu_pct']}%"
        row = {"name": "tui soak rss growth after 1 min", "size": n, "value": growth, "unit": "%"}
        rows.append({**row, "target": 10.0, "better": "lower", "notes": notes})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument("--refresh", type=float, default=0.5)
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--pythonpath", default=None, help="run the cockpit from this checkout")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    result = soak(args.minutes, args.leases, args.refresh, args.interval, args.pythonpath)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
