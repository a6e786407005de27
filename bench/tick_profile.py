"""Where an idle tick's CPU goes: the real cockpit, profiled in a pty against bench/fleet_server.py.

    python bench/tick_profile.py --leases 10000 --warmup 45 --seconds 60 --out /tmp/tick.prof

The fleet (no drift by default: the idle tick) is served from its own process, as bench_steady
does. The cockpit runs in a pty under a small launcher (`--child`) whose SIGUSR1 starts a
cProfile of the main thread (the asyncio loop: Textual, the collector, the reconcile core) and
whose SIGUSR2 stops it and writes the stats; so the warm-up (fleet load, first full reconcile)
stays out of the profile. Per-thread CPU (utime+stime from /proc/PID/task) over the same window
says how much ran outside the main thread (aiosqlite workers, httpx, Textual's driver thread),
which cProfile cannot see.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/tick_profile.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_soak import start_fleet
from bench.bench_steady import _Terminal, tree_env
from bench.pty_cockpit import start_in_pty, stop

ROOT = Path(__file__).resolve().parent.parent


class HandleClock:
    """Main-thread CPU per asyncio handle, by what it runs (a task's coroutine, else the
    callback): where an idle tick goes, without cProfile's per-call overhead (which inflates
    httpx and Textual's many small calls several-fold). Installed by patching Handle._run."""

    def __init__(self) -> None:
        self.spent: dict[str, list[float]] = {}
        self.windows: dict[int, dict[str, float]] = {}  # tick window -> label -> CPU s
        self.window_s = float(os.environ.get("TICK_PROFILE_WINDOW_S", "2"))
        self._orig = asyncio.events.Handle._run

    @staticmethod
    def label(handle: asyncio.Handle) -> str:
        cb = handle._callback  # type: ignore[attr-defined]
        owner = getattr(cb, "__self__", None)
        if isinstance(owner, asyncio.Task):
            coro = owner.get_coro()
            name = getattr(coro, "__qualname__", type(coro).__name__)
            frame = getattr(coro, "cr_frame", None)
            me = frame.f_locals.get("self") if frame is not None else None
            # Whose timer, pump or worker: Textual runs them all through a few coroutines.
            inner = getattr(me, "_callback", None) or getattr(me, "_work", None)
            if inner is not None:
                name += f" [{getattr(inner, '__qualname__', type(inner).__name__)}]"
            elif name.startswith("MessagePump.") and me is not None:
                name += f" [{type(me).__name__}]"
            return f"task {name}"
        return f"cb {getattr(cb, '__qualname__', None) or type(cb).__name__}"

    def install(self) -> None:
        spent, orig, label, clock = self.spent, self._orig, self.label, time.thread_time
        windows, window_s = self.windows, self.window_s

        def run(handle: asyncio.Handle) -> None:
            t0 = clock()
            orig(handle)
            dt = clock() - t0
            name = label(handle)
            row = spent.setdefault(name, [0, 0.0])
            row[0] += 1
            row[1] += dt
            w = windows.setdefault(int(time.monotonic() / window_s), {})
            w[name] = w.get(name, 0.0) + dt

        asyncio.events.Handle._run = run  # type: ignore[method-assign]

    def uninstall(self) -> None:
        asyncio.events.Handle._run = self._orig  # type: ignore[method-assign]


def _child(out: Path, argv: list[str]) -> int:
    """The cockpit itself, with the profiler on SIGUSR1 / off-and-dump on SIGUSR2.

    The profiler's clock is the main thread's CPU time (time.thread_time): wall time would charge
    the machine's load (other processes, the GIL held by a worker thread) to whatever the loop was
    doing, and the sleeping loop to epoll."""
    profiler = cProfile.Profile(time.thread_time)
    threads_only = os.environ.get("TICK_PROFILE_THREADS_ONLY") == "1"  # --threads-only
    handles = HandleClock() if os.environ.get("TICK_PROFILE_HANDLES") == "1" else None  # --handles

    def start(*_: object) -> None:
        # Python's thread names, by native id, for the per-thread CPU lines (/proc says "python").
        names = {t.native_id: t.name for t in threading.enumerate()}
        out.with_suffix(".threads").write_text(json.dumps(names))
        if handles is not None:
            handles.install()
        elif not threads_only:
            profiler.enable()

    def stop(*_: object) -> None:
        if handles is not None:
            handles.uninstall()
            windows = list(handles.windows.values())
            out.with_suffix(".handles").write_text(json.dumps({"spent": handles.spent, "windows": windows}))
        elif not threads_only:
            profiler.disable()
            profiler.dump_stats(str(out))

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    from opcockpit.cli.main import main

    return main(argv)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread (name:tid) of `pid`."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ran_ns = int((task / "schedstat").read_text().split()[0])  # ns: finer than jiffies
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        out[f"{name}:{task.name}"] = ran_ns / 1e9
    return out


# (what, file suffix, function): the parts of the main thread's work an idle tick is made of.
PARTS: tuple[tuple[str, str, str], ...] = (
    ("screen repaints (Textual compositor)", "textual/screen.py", "_compositor_refresh"),
    ("provider listings (every page, httpx)", "providers/http.py", "paginate"),
    ("refresh: collector + reconcile", "tui/app.py", "_refresh_worker"),
    ("refresh: rows into the tables", "tui/app.py", "apply_ground_truth"),
    ("header", "tui/app.py", "_show_header"),
    ("alert rounds (main-thread side)", "tui/tabs/alerts.py", "_evaluate"),
    ("provider events (E2B poll, docker stream)", "services/watch.py", "_watch"),
    ("ledger feed poll (thread start)", "tui/tabs/alerts.py", "_poll_ledger"),
    ("key bindings refresh", "textual/app.py", "_check_action_state"),
)


def breakdown(stats: pstats.Stats, ticks: float) -> list[tuple[str, float]]:
    """ms per tick of each of PARTS (cumulative time of the function, every call)."""
    table: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    out = []
    for label, suffix, func in PARTS:
        ct = sum(v[3] for (file, _, name), v in table.items() if name == func and file.endswith(suffix))
        out.append((label, 1000 * ct / ticks))
    return out


def print_handles(data: dict[str, Any], ticks: float, top: int) -> None:
    """Per label: every tick's mean, and the mean over the quiet half (the windows whose main-thread
    total is at or below the median: no listing, no alert round in them)."""
    spent, windows = data["spent"], data["windows"]
    totals = sorted(sum(w.values()) for w in windows)
    cut = totals[len(totals) // 2] if totals else 0.0
    quiet = [w for w in windows if sum(w.values()) <= cut]
    print(f"main thread per window: median {1000 * cut:.2f} ms over {len(windows)} windows")
    print(f"  {'asyncio handle (task coroutine [timer/pump/worker] or callback)':78} runs/tick "
          f"all ms/tick  quiet ms/tick")  # fmt: skip
    for name, (calls, cpu) in sorted(spent.items(), key=lambda kv: -kv[1][1])[:top]:
        q = sum(w.get(name, 0.0) for w in quiet) / max(1, len(quiet))
        print(f"  {name[:78]:78} {calls / ticks:7.1f} {1000 * cpu / ticks:12.3f} {1000 * q:13.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument("--refresh", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=45.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--drift", action="store_true", help="drift on (default: a quiet fleet)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/opcockpit-tick.prof"))
    ap.add_argument("--top", type=int, default=45)
    ap.add_argument(
        "--threads-only", action="store_true", help="no cProfile: CPU per thread only, undistorted"
    )
    ap.add_argument("--handles", action="store_true", help="no cProfile: main-thread CPU per asyncio handle")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="opcockpit-tickprof-") as tmpdir:
        tmp = Path(tmpdir)
        fleet, cfg = start_fleet(tmp, args.leases, args.refresh, drift_interval=None if args.drift else 1e9)
        try:
            env = tree_env(ROOT, tmp)
            if args.threads_only:
                env["TICK_PROFILE_THREADS_ONLY"] = "1"
            if args.handles:
                env["TICK_PROFILE_HANDLES"] = "1"
            launcher = (str(Path(__file__).resolve()), "--child", str(args.out))
            proc, primary = start_in_pty(["--config", str(cfg)], env, tmp, program=launcher)
            term = _Terminal(primary)
            try:
                time.sleep(args.warmup)
                before, load0, t0 = thread_cpu(proc.pid), os.getloadavg()[0], time.monotonic()
                os.kill(proc.pid, signal.SIGUSR1)
                time.sleep(args.seconds)
                os.kill(proc.pid, signal.SIGUSR2)
                after, wall = thread_cpu(proc.pid), time.monotonic() - t0
                time.sleep(3.0)  # the dump
            finally:
                stop(proc)
                term.close()
        finally:
            fleet.terminate()
            fleet.wait(15)
    total = sum(after.values()) - sum(before.get(k, 0.0) for k in after)
    ticks = wall / args.refresh
    load1 = os.getloadavg()[0]
    per_tick = 1000 * total / ticks
    print(f"window {wall:.1f} s, load1 {load0:.2f}->{load1:.2f}; cockpit CPU {total:.2f} s "
          f"= {100 * total / wall:.1f} % = {per_tick:.1f} ms per {args.refresh:g} s tick")  # fmt: skip
    names_file = args.out.with_suffix(".threads")
    names = json.loads(names_file.read_text()) if names_file.exists() else {}
    for key in sorted(after, key=lambda k: before.get(k, 0.0) - after[k]):
        delta = after[key] - before.get(key, 0.0)
        if delta > 0:
            label = f"{key} {names.get(key.rsplit(':', 1)[1], '')}"
            print(f"  thread {label:44} {delta:6.2f} s  {1000 * delta / ticks:6.1f} ms/tick")
    if args.handles:
        print_handles(json.loads(args.out.with_suffix(".handles").read_text()), ticks, args.top)
        return 0
    if args.threads_only:
        return 0
    stats = pstats.Stats(str(args.out))
    print("main thread CPU per tick by part (cProfile's own overhead included; parts may nest):")
    for label, ms in breakdown(stats, ticks):
        print(f"  {label:44} {ms:7.2f} ms/tick")
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        profile_out, cli_args = Path(sys.argv[2]), sys.argv[3:]
        sys.argv = ["opcockpit", *cli_args]
        raise SystemExit(_child(profile_out, cli_args))
    raise SystemExit(main())
