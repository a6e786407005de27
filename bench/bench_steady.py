"""Steady state: the real cockpit TUI idling on a 10k-lease fleet, previous main beside HEAD.

Issue 10's targets at 10k leases with the default 2 s refresh: <= 10 % of one core, RSS <= 150 MB.
One fleet (bench/fleet_server.py from the *current* tree: demo fleet, provider doubles, drift) is
served from its own process for the whole run; against it the cockpit runs twice, one after the
other, in a real pty at 120x40: first the previous main (a `git worktree` of BASELINE, on
PYTHONPATH), then HEAD (this tree, on PYTHONPATH). Which `opcockpit` each run imports is checked
before it starts. Each run skips a warm-up (default 60 s), then samples the cockpit's CPU time
(/proc/PID/stat utime+stime deltas: % of one core) and VmRSS for `--minutes`, plus the machine's
load average and the fleet server's own CPU (it shares the cores). Over the same window a
`TickSampler` reads every thread's CPU (schedstat, ns) once per refresh interval: median, p90, max
and mean per tick; with `--no-drift` the median is "a tick in which nothing changed" (issue 10:
<= 5 ms) and the mean the amortised tick, listings and alert rounds included.

Not in the default `python -m bench.run` (OPT_IN: it takes ~20 minutes); ask for it:

    python -m bench.run --only steady --sizes 10000
    python -m bench.bench_steady --minutes 3 --leases 10000 --refresh 2 --compare ec3fb80

bench.run runs it at the largest requested size <= SIZES_CAP: 3 minutes per side with drift,
then 2 minutes per side without (the idle tick, beside IDLE_BASELINE).
Where a tick's CPU goes: bench/tick_profile.py (the same cockpit in a pty, cProfile of its main
thread over a window after the warm-up, CPU per thread).
`BENCH_BASELINE=` (empty) or `--compare none` measures HEAD alone.

`--pg` (issue 12): the same fleet served from PostgreSQL by bench/fleet_server_pg.py (platform
source `[sources] kind = "postgres"` and `[ledger] url` on a private server; the drift mirrored
into it by bench/pg_drift.py); the PostgreSQL server's own CPU is reported beside the fleet
server's. The previous main is then BENCH_PG_BASELINE (default e4b892a: ec3fb80 had no PostgreSQL
source).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/bench_steady.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_soak import cpu_s, rss_mb, start_fleet
from bench.pty_cockpit import start_in_pty, stop
from bench.steady_pg import pg_server_cpu_s, start_fleet_pg

ROOT = Path(__file__).resolve().parent.parent
SIZES_CAP = 10_000  # bench/run.py: sizes above this are dropped ...
OPT_IN = True  # ... and the module runs only when named in --only
BASELINE = os.environ.get("BENCH_BASELINE", "ec3fb80")  # the main at the start of issue 10's work
PG_BASELINE = os.environ.get("BENCH_PG_BASELINE", "e4b892a")  # the first main with a PostgreSQL source
CPU_TARGET_PCT = 10.0
RSS_TARGET_MB = 150.0
# Issue 10's budgets at 50k leases: 25 % of one core, 400 MB.
TARGETS_BY_SIZE = {50_000: (25.0, 400.0)}
GROWTH_TARGET_PCT = 10.0  # as bench_soak
MINUTES = 3.0
WARMUP_S = 60.0
INTERVAL_S = 5.0
REFRESH_S = 2.0


# --------------------------------------------------------------------------- trees


def git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


@contextlib.contextmanager
def worktree(commit: str) -> Iterator[Path]:
    """A detached `git worktree` of `commit` in a temp dir; removed (and pruned) afterwards.

    A worktree has its own index, so this never touches the shared checkout's index.
    """
    path = Path(tempfile.mkdtemp(prefix="opcockpit-prev-"))
    path.rmdir()  # git wants to create it
    git("worktree", "add", "--detach", str(path), commit)
    try:
        yield path
    finally:
        try:
            git("worktree", "remove", "--force", str(path))
        finally:
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(RuntimeError):
                git("worktree", "prune")


def tree_env(pythonpath: Path, tmp: Path) -> dict[str, str]:
    """The cockpit's environment: only `pythonpath`'s opcockpit, and a throwaway home/XDG/ledger."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPCOCKPIT_", "LEON_", "DOCKER_"))}
    env.update(
        PYTHONPATH=str(pythonpath),
        TERM="xterm-256color",
        HOME=str(tmp / "home"),
        XDG_CONFIG_HOME=str(tmp / "xdg-config"),
        XDG_DATA_HOME=str(tmp / "xdg-data"),
        XDG_STATE_HOME=str(tmp / "xdg-state"),
        XDG_CACHE_HOME=str(tmp / "xdg-cache"),
        OPCOCKPIT_LEDGER=str(tmp / "ledger.db"),
    )
    return env


def imported_from(env: dict[str, str], cwd: Path) -> Path:
    """Where `import opcockpit` resolves in this environment (an editable install could win)."""
    code = "import opcockpit; print(opcockpit.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    return Path(out).resolve()


def checked_tree_env(label: str, pythonpath: Path, tmp: Path) -> tuple[dict[str, str], Path]:
    """tree_env(pythonpath, tmp) and where opcockpit imports from; RuntimeError when that is not
    `pythonpath` (a run must measure the tree it names)."""
    env = tree_env(pythonpath, tmp)
    origin = imported_from(env, tmp)
    if not origin.is_relative_to(pythonpath.resolve()):
        raise RuntimeError(f"{label}: opcockpit imports from {origin}, not from {pythonpath}")
    return env, origin


# --------------------------------------------------------------------------- one run


class _Terminal:
    """Reads the pty like a terminal emulator would (the cockpit never blocks on output); keeps
    the last few KB so an early exit can be explained."""

    def __init__(self, fd: int) -> None:
        self.fd, self.tail = fd, b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(self.fd, 1 << 16)
                except OSError:
                    return
                if not data:
                    return
                self.tail = (self.tail + data)[-4096:]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.fd)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --------------------------------------------------------------------------- per-tick CPU


def task_cpu_ns(pid: int) -> dict[str, int]:
    """CPU time (ns) of each live thread of `pid`: the first field of /proc/PID/task/TID/schedstat
    (/proc/PID/stat counts in 10 ms clock ticks: too coarse for a 5 ms tick)."""
    out: dict[str, int] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out[task.name] = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return out


class TickSampler:
    """The cockpit's CPU per refresh-long window, sampled in a thread (issue 10: "a tick in which
    nothing changed <= 5 ms of CPU" as a measured distribution, not the mean divided by ticks).

    Windows are as long as the refresh interval, so on a quiet fleet each holds one tick's work
    (a tick split across a window edge adds to both sides, the sum unchanged); listings (every
    15-30 s per provider) and alert rounds (every 10 s) land in a few windows, which the p90/max
    and the mean show. A thread that ended inside a window loses its last slice (the amortised
    mean from /proc/PID/stat, which keeps dead threads' time, is reported beside it)."""

    def __init__(self, pid: int, window_s: float) -> None:
        self.pid, self.window_s = pid, window_s
        self.windows_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TickSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        prev, due = task_cpu_ns(self.pid), time.monotonic() + self.window_s
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            cur = task_cpu_ns(self.pid)
            if not cur:
                return
            spent = sum(ns - prev.get(tid, 0) for tid, ns in cur.items())
            self.windows_ms.append(round(spent / 1e6, 2))
            prev, due = cur, due + self.window_s

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(self.window_s + 1)
        return self.windows_ms


def tick_stats(windows_ms: list[float]) -> dict[str, Any]:
    """Median, p90, max and mean of the per-window CPU (ms), and how many windows."""
    if not windows_ms:
        return {}
    ws = sorted(windows_ms)
    pick = lambda q: ws[min(len(ws) - 1, int(q * len(ws)))]  # noqa: E731
    return {
        "tick_windows": len(ws),
        "tick_cpu_ms_windows": windows_ms,  # in time order (the JSON only; not a docs row)
        "tick_cpu_ms_p10": pick(0.1),  # the quietest ticks: no listing, no alert round in them
        "tick_cpu_ms_median": pick(0.5),
        "tick_cpu_ms_p90": pick(0.9),
        "tick_cpu_ms_max": ws[-1],
        "tick_cpu_ms_mean": round(sum(ws) / len(ws), 2),
    }


def measure(
    label: str,
    pythonpath: Path,
    cfg: Path,
    fleet_pid: int,
    *,
    minutes: float,
    warmup_s: float,
    interval: float,
    pg_pid: int | None = None,
    refresh: float = REFRESH_S,
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"opcockpit-steady-{label}-"))
    try:
        env, origin = checked_tree_env(label, pythonpath, tmp)
        # No --refresh: the config's refresh_s (fleet_server writes it) is the cockpit's default path.
        proc, primary = start_in_pty(["--config", str(cfg)], env, tmp)
        term = _Terminal(primary)
        samples: list[dict[str, Any]] = []
        ticks: TickSampler | None = None
        try:
            t0 = time.monotonic()
            while time.monotonic() - t0 < warmup_s:
                if proc.poll() is not None:
                    break
                time.sleep(1.0)
            ticks = TickSampler(proc.pid, refresh).start()
            end = t0 + warmup_s + minutes * 60
            while True:
                now = time.monotonic()
                rss, cpu, fleet_cpu = rss_mb(proc.pid), cpu_s(proc.pid), cpu_s(fleet_pid)
                if proc.poll() is not None or rss is None or cpu is None:
                    screen = term.tail.decode("utf-8", "replace")[-600:]
                    raise RuntimeError(
                        f"{label}: cockpit exited early (rc {proc.poll()}); last output: {screen!r}"
                    )
                samples.append(
                    {
                        "t_s": round(now - t0, 1),
                        "rss_mb": round(rss, 1),
                        "cpu_s": round(cpu, 2),
                        "fleet_cpu_s": round(fleet_cpu or 0.0, 2),
                        **({"pg_cpu_s": round(pg_server_cpu_s(pg_pid) or 0.0, 2)} if pg_pid else {}),
                        "load1": _load()[0],
                    }
                )
                print(json.dumps({"run": label, **samples[-1]}), file=sys.stderr, flush=True)
                if now >= end:
                    break
                time.sleep(max(0.0, min(interval, end - time.monotonic())))
        finally:
            windows = ticks.stop() if ticks is not None else []
            stop(proc)
            term.close()
        return {**summarize(samples, label=label, imported=str(origin)), **tick_stats(windows)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def summarize(samples: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    first, last = samples[0], samples[-1]
    span = last["t_s"] - first["t_s"]
    steps = [
        (b["cpu_s"] - a["cpu_s"]) / (b["t_s"] - a["t_s"])
        for a, b in itertools.pairwise(samples)
        if b["t_s"] > a["t_s"]
    ]
    return {
        **params,
        "window_s": round(span, 1),
        "mean_cpu_pct": round(100 * (last["cpu_s"] - first["cpu_s"]) / span, 1),
        "max_interval_cpu_pct": round(100 * max(steps), 1) if steps else None,
        "rss_after_warmup_mb": first["rss_mb"],
        "rss_end_mb": last["rss_mb"],
        "rss_max_mb": max(s["rss_mb"] for s in samples),
        **_rss_levels(samples),
        "rss_growth_pct": round(100 * (last["rss_mb"] - first["rss_mb"]) / first["rss_mb"], 1),
        "fleet_server_cpu_pct": round(100 * (last["fleet_cpu_s"] - first["fleet_cpu_s"]) / span, 1),
        **(
            {"pg_server_cpu_pct": round(100 * (last["pg_cpu_s"] - first["pg_cpu_s"]) / span, 1)}
            if "pg_cpu_s" in first
            else {}
        ),
        "load1_mean": round(sum(s["load1"] for s in samples) / len(samples), 2),
        "load1_range": [min(s["load1"] for s in samples), max(s["load1"] for s in samples)],
        "samples": samples,
    }


RESYNCED_S = 330.0  # the first periodic resync (sandbox.db and events.db, resync_s 300) is behind


def _rss_levels(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The median RSS of the window, and of its samples after the first resync (None: the run
    was shorter): issue 10's RSS target is the steady state, resyncs included."""
    med = lambda xs: sorted(xs)[len(xs) // 2] if xs else None  # noqa: E731
    late = [s["rss_mb"] for s in samples if s["t_s"] >= RESYNCED_S]
    return {"rss_median_mb": med([s["rss_mb"] for s in samples]), "rss_after_resync_mb": med(late)}


# --------------------------------------------------------------------------- comparison


def compare(
    *,
    leases: int,
    minutes: float,
    refresh: float,
    baseline: str | None,
    warmup_s: float = WARMUP_S,
    interval: float = INTERVAL_S,
    clean: bool = False,
    drift: bool = True,
    pg: bool = False,
) -> dict[str, Any]:
    """`baseline`: one commit or several, comma-separated (each measured against the same fleet);
    `clean`: HEAD from a worktree of the commit, not this checkout (uncommitted edits left out);
    `pg`: the fleet (source and ledger) on PostgreSQL."""
    head = git("rev-parse", "--short", "HEAD")
    with contextlib.ExitStack() as stack:
        trees: list[tuple[str, Path]] = []
        for base in [b.strip() for b in (baseline or "").split(",") if b.strip()]:
            trees.append(
                (
                    f"previous main {git('rev-parse', '--short', base)}",
                    stack.enter_context(worktree(base)),
                )
            )
        if clean:
            trees.append((f"HEAD {head} (committed)", stack.enter_context(worktree(head))))
        else:
            trees.append((f"HEAD {head}", ROOT))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opcockpit-steady-fleet-")))
        t0 = time.monotonic()
        pg_pid: int | None = None
        if pg:
            fleet, cfg, side = start_fleet_pg(tmp, leases, refresh, drift_interval=None if drift else 1e9)
            pg_pid = side["postmaster_pid"]
        else:
            fleet, cfg = start_fleet(tmp, leases, refresh, drift_interval=None if drift else 1e9)
        fleet_start_s = round(time.monotonic() - t0, 1)
        try:
            runs = [
                measure(
                    label,
                    path,
                    cfg,
                    fleet.pid,
                    minutes=minutes,
                    warmup_s=warmup_s,
                    interval=interval,
                    pg_pid=pg_pid,
                    refresh=refresh,
                )
                for label, path in trees
            ]
        finally:
            fleet.terminate()
            try:
                fleet.wait(15)
            except subprocess.TimeoutExpired:
                fleet.kill()
    for r in runs:  # the amortised tick (every listing and alert round included)
        r["cpu_ms_per_tick"] = round(10 * r["mean_cpu_pct"] * refresh, 1)
    return {
        "leases": leases,
        "drift": drift,
        "source": "postgres" if pg else "sqlite",
        "minutes": minutes,
        "refresh_s": refresh,
        "warmup_s": warmup_s,
        "fleet_start_s": fleet_start_s,
        "runs": runs,
    }


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    n = result["leases"]
    on = ", PostgreSQL source+ledger" if result.get("source") == "postgres" else ""
    on += ", no drift" if not result.get("drift", True) else ""
    cpu_target, rss_target = TARGETS_BY_SIZE.get(n, (CPU_TARGET_PCT, RSS_TARGET_MB))
    for r in result["runs"]:
        load = f"load1 mean {r['load1_mean']} (range {r['load1_range'][0]}-{r['load1_range'][1]})"
        common = f"{r['label']}{on}; {result['minutes']:g} min after {result['warmup_s']:g} s warm-up; {load}"
        pg_cpu = f"; PostgreSQL server {r['pg_server_cpu_pct']}%" if "pg_server_cpu_pct" in r else ""
        out += [
            {
                "name": f"tui steady CPU{on}, {r['label']}",
                "size": n,
                "value": r["mean_cpu_pct"],
                "unit": "% of 1 core",
                "target": cpu_target,
                "notes": f"{common}; max {r['max_interval_cpu_pct']}% per interval; fleet "
                f"server {r['fleet_server_cpu_pct']}%{pg_cpu}",
            },
            *_tick_rows(result, r, common, on),
            {
                "name": f"tui steady RSS at end{on}, {r['label']}",
                "size": n,
                "value": r["rss_end_mb"],
                "unit": "MB",
                "target": rss_target,
                "notes": f"{common}; max {r['rss_max_mb']} MB",
            },
            {
                "name": f"tui steady RSS growth after warm-up{on}, {r['label']}",
                "size": n,
                "value": r["rss_growth_pct"],
                "unit": "%",
                "target": GROWTH_TARGET_PCT,
                "notes": f"{r['rss_after_warmup_mb']} -> {r['rss_end_mb']} MB",
            },
        ]
    return out


TICK_TARGET_MS = 5.0  # issue 10: a tick in which nothing changed


def _tick_rows(result: dict[str, Any], r: dict[str, Any], common: str, on: str) -> list[dict[str, Any]]:
    """The per-tick CPU distribution (TickSampler): the median window of a fleet without drift is
    "a tick in which nothing changed"; the mean is the amortised tick, listings and rounds in."""
    if "tick_cpu_ms_median" not in r:
        return []
    quiet = "no drift: " if not result.get("drift", True) else "drift on: "
    what = f"{r['tick_windows']} windows of {result['refresh_s']:g} s (schedstat of every thread)"
    return [
        {
            "name": f"tui tick CPU, median{on}, {r['label']}",
            "size": result["leases"],
            "value": r["tick_cpu_ms_median"],
            "unit": "ms",
            "target": TICK_TARGET_MS if not result.get("drift", True) else None,
            "notes": f"{quiet}{what}; p10 {r.get('tick_cpu_ms_p10', '?')} ms, p90 {r['tick_cpu_ms_p90']} ms, "
            f"max {r['tick_cpu_ms_max']} ms, "
            f"mean {r['tick_cpu_ms_mean']} ms (from /proc stat: {r['cpu_ms_per_tick']} ms); {common}",
        }
    ]


IDLE_BASELINE = os.environ.get("BENCH_IDLE_BASELINE", "3c9d450")  # before the idle-tick work
IDLE_MINUTES = 2.0


def run(sizes: list[int]) -> list[dict[str, Any]]:
    """bench/run.py hook (OPT_IN): at the largest requested size <= SIZES_CAP, one comparison
    with drift (the steady state) and one without (the idle tick: per-tick CPU distribution)."""
    n = max(sizes)
    steady = rows(compare(leases=n, minutes=MINUTES, refresh=REFRESH_S, baseline=BASELINE or None))
    idle = compare(
        leases=n, minutes=IDLE_MINUTES, refresh=REFRESH_S, baseline=IDLE_BASELINE or None, drift=False
    )
    return steady + rows(idle)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--minutes", type=float, default=MINUTES, help="measured minutes per side (after warm-up)"
    )
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument(
        "--refresh", type=float, default=REFRESH_S, help="refresh_s written to the fleet's config"
    )
    ap.add_argument(
        "--compare",
        default=None,
        help="commit(s) beside HEAD, comma-separated ('none': HEAD only); "
        f"default {BASELINE}, with --pg {PG_BASELINE}",
    )
    ap.add_argument("--pg", action="store_true", help="source and ledger on a private PostgreSQL")
    ap.add_argument(
        "--no-drift", action="store_true", help="a fleet that does not change: the idle-tick cost"
    )
    ap.add_argument("--warmup", type=float, default=WARMUP_S, help="seconds skipped before sampling")
    ap.add_argument("--interval", type=float, default=INTERVAL_S, help="seconds between samples")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument(
        "--clean", action="store_true", help="measure HEAD's commit in a worktree, not this checkout"
    )
    args = ap.parse_args(argv)
    compare_to = args.compare if args.compare is not None else (PG_BASELINE if args.pg else BASELINE)
    baseline = None if compare_to in ("", "none") else compare_to
    result = compare(
        leases=args.leases,
        minutes=args.minutes,
        refresh=args.refresh,
        baseline=baseline,
        warmup_s=args.warmup,
        interval=args.interval,
        clean=args.clean,
        drift=not args.no_drift,
        pg=args.pg,
    )
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    for r in result["runs"]:
        print(
            f"{r['label']:28} cpu {r['mean_cpu_pct']:6.1f}% ({r['cpu_ms_per_tick']} ms/tick; tick "
            f"median {r.get('tick_cpu_ms_median')} p90 {r.get('tick_cpu_ms_p90')} max "
            f"{r.get('tick_cpu_ms_max')} mean {r.get('tick_cpu_ms_mean')} ms)  rss end "
            f"{r['rss_end_mb']:7.1f} MB (median {r['rss_median_mb']}, after resync "
            f"{r['rss_after_resync_mb']})  growth "
            f"{r['rss_growth_pct']:5.1f}%  load1 {r['load1_mean']}  fleet cpu {r['fleet_server_cpu_pct']}%"
            + (f"  pg cpu {r['pg_server_cpu_pct']}%" if "pg_server_cpu_pct" in r else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
