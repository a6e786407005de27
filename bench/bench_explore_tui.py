"""Explore in the real cockpit (issue 11): Enter -> the result drawn on screen, <= 1 s at 10k leases.

bench_explore times the service alone (the query in its thread); this times what the operator
sees: the real cockpit TUI in a pty (120x40) against bench/fleet_server.py (10k generated leases,
provider doubles, drift on, refresh 2 s: the refresh, listing and alert work the query competes
with), its events.db topped up to ~460k run_events as bench_explore does. On the Explore tab (`6`)
each query is typed and Enter written; the time is from Enter to the first pty output chunk that
draws the result's status ("N rows", painted in the same frame as the result table and facets).
Before each trial the status is reset by a query that fails (an unchanged status is not redrawn).

The queries: the issue's three typical ones (bench_explore.QUERIES: a filter over runs counted by
provider, a group-by over run_events in a 24 h window, free text over commands) and the two of
them that list rows rather than counts (the rows are built and drawn), in turn, so each result
replaces another's. Per query: median, min and max of N trials, and the median of the cockpit's
CPU time from Enter to drawn (/proc, 10 ms ticks, the background's share included: what a loaded
machine cannot inflate as it does the wall time); the cockpit's CPU over all trials and the load
range beside them. HEAD, and with `--compare COMMIT` that commit first on the same fleet (41d8aef:
before the TUI-side work of c6e37c7; the previous main's Explore tab, f45d5a5, does not take the
keys on `6`).

Run: `python -m bench.bench_explore_tui [--leases 10000] [--trials 7] [--compare 41d8aef] [--clean]` or
`python -m bench.run --only bench_explore_tui` (OPT_IN: fleet generation plus a cockpit, ~4 min).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_explore import EVENTS_PER_LEASE, QUERIES, _top_up_run_events
from bench.bench_explore_input import open_explore
from bench.bench_soak import cpu_s, start_fleet
from bench.bench_steady import checked_tree_env, git, worktree
from bench.bench_team_ack import _Screen
from bench.pty_cockpit import start_in_pty, stop

ROOT = Path(__file__).resolve().parent.parent
OPT_IN = True
SIZES_CAP = 10_000
TARGET_S = 1.0
TRIALS = 7
REFRESH_S = 2.0
BASELINE = os.environ.get("BENCH_BASELINE_EXPLORE_TUI", "")  # e.g. 41d8aef, before issue 11's TUI work
ROW_QUERIES = ("runs status:error since:-6h", 'commands "npm test"')
CLEAR = b"\x15"  # ctrl+u: the query box's delete-to-start
ROWS = re.compile(rb"\d+ rows?\b")
FAILED = "✗".encode()
LOST_S = 20.0  # no result this long after Enter: the keys were lost (a query takes ~1 s)


def _type(screen: _Screen, text: str, label: str) -> None:
    """Replace the query box's text with `text` (ctrl+u alone first: sent with the text, it was
    lost), and see it drawn; on a loaded machine typed text was now and then lost: typed again."""
    for _ in range(3):
        screen.write(CLEAR)
        time.sleep(0.3)
        start = screen.offset()
        screen.write(text.encode())
        if screen.wait(text.encode(), start, 5.0) is not None:
            return
    raise RuntimeError(f"{label}: {text!r} typed three times, never drawn")


def _enter_to_drawn(screen: _Screen, query: str, label: str, pid: int) -> tuple[float, float, int]:
    """(seconds from Enter to the result drawn, the cockpit's CPU seconds in between, tries lost).
    A query whose Enter drew nothing at all (the box found empty: now and then on a loaded
    machine, the typed text lost) is typed and entered again, and counted."""
    for lost in range(3):
        _type(screen, "nosuchdataset", label)
        start = screen.offset()
        screen.write(b"\r")
        if screen.wait(FAILED, start, 10.0) is None:
            raise RuntimeError(f"{label}: the status reset was not drawn")
        time.sleep(0.5)
        _type(screen, query, label)
        time.sleep(0.7)  # the text and its completion drawn before Enter
        start = screen.offset()
        cpu0 = cpu_s(pid) or 0.0
        entered = time.perf_counter()  # the clock _Screen stamps chunks with
        screen.write(b"\r")
        done = screen.wait(ROWS, start, LOST_S)
        if done is not None:
            return done - entered, (cpu_s(pid) or 0.0) - cpu0, lost
        if screen.seen_at(b"running", start) is not None:
            break  # it ran and drew no result: not a lost key
    tail = bytes(screen.buf[start:])[-1500:].decode("utf-8", "replace")
    raise RuntimeError(f"{label}: {query!r} drew no result: {tail!r}")


def measure(label: str, pythonpath: Path, cfg: Path, queries: tuple[str, ...], trials: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="opcockpit-explore-tui-"))
    env, _ = checked_tree_env(label, pythonpath, tmp)
    proc, primary = start_in_pty(["--config", str(cfg)], env, tmp)
    screen = _Screen(primary)
    out: dict[str, Any] = {"label": label, "trials": trials, "queries": {}}
    try:
        open_explore(screen, label, proc)
        for q in queries:
            _enter_to_drawn(screen, q, label, proc.pid)  # warm-up: first parse, caches, page cache
        # round robin: each result replaces another one's (other rows, mostly other columns), as
        # an operator's next query does; the same query twice in a row would keep its rows
        times: dict[str, list[float]] = {q: [] for q in queries}
        cpus: dict[str, list[float]] = {q: [] for q in queries}
        lost = 0
        loads: list[float] = []
        cpu0 = cpu_s(proc.pid) or 0.0
        for _ in range(trials):
            for q in queries:
                wall, cpu, retried = _enter_to_drawn(screen, q, label, proc.pid)
                lost += retried
                times[q].append(wall)
                cpus[q].append(cpu)
            loads.append(os.getloadavg()[0])
            print(json.dumps({"run": label, "trial": {q: round(t[-1], 3) for q, t in times.items()}}),
                  file=sys.stderr, flush=True)  # fmt: skip
        out["cockpit_cpu_s"] = round((cpu_s(proc.pid) or 0.0) - cpu0, 2)
        out["lost"] = lost
        out["load1"] = [round(min(loads), 2), round(max(loads), 2)]
        for q, ts in times.items():
            out["queries"][q] = {
                "median_s": round(statistics.median(ts), 3),
                "max_s": round(max(ts), 3),
                "min_s": round(min(ts), 3),
                "cpu_s": round(statistics.median(cpus[q]), 3),
            }
    finally:
        stop(proc)
        screen.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def compare(
    leases: int, trials: int, queries: tuple[str, ...], baseline: str | None, *, clean: bool = False
) -> list[dict[str, Any]]:
    """HEAD's numbers, after `baseline`'s (a commit, in a worktree) on the same fleet when given;
    `clean`: HEAD from a worktree of its commit (others' uncommitted edits left out)."""
    with tempfile.TemporaryDirectory(prefix="opcockpit-explore-tui-fleet-") as d:
        fleet, cfg = start_fleet(Path(d), leases, REFRESH_S)
        try:
            events_db = Path(tomllib.loads(cfg.read_text())["sources"]["events_db"])
            events = _top_up_run_events(events_db, leases, EVENTS_PER_LEASE)
            results = []
            if baseline:
                with worktree(baseline) as prev:
                    results.append(measure(f"before {baseline}", prev, cfg, queries, trials))
            head = git("rev-parse", "--short", "HEAD")
            if clean:
                with worktree(head) as tree:
                    results.append(measure(f"HEAD {head} (committed)", tree, cfg, queries, trials))
            else:
                results.append(measure(f"HEAD {head}", ROOT, cfg, queries, trials))
            for r in results:
                r["run_events"] = events
            return results
        finally:
            fleet.terminate()
            try:
                fleet.wait(30)
            except subprocess.TimeoutExpired:
                fleet.kill()


def rows(results: list[dict[str, Any]], leases: int) -> list[dict[str, Any]]:
    out = []
    for r in results:
        for q, m in r["queries"].items():
            note = (
                f"median of {r['trials']} (min {m['min_s']} s, max {m['max_s']} s), queries in turn; "
                f"cockpit CPU from Enter to drawn {m['cpu_s']} s (median; the background's included); "
                f"cockpit CPU {r['cockpit_cpu_s']} s over all {r['trials'] * len(r['queries'])} "
                f"trials (each with a reset query and ~2 s of typing and waiting); fleet_server with "
                f"drift, refresh {REFRESH_S} s; {r['run_events']} run_events; {r['lost']} trials typed "
                f"again (keys lost); load1 "
                f"{r['load1'][0]}-{r['load1'][1]}"
            )
            out.append({
                "name": f"explore TUI: Enter -> result drawn, `{q}`, {r['label']}", "size": leases,
                "value": m["median_s"], "unit": "s", "target": TARGET_S, "notes": note,
            })  # fmt: skip
    return out


def run(sizes: list[int]) -> list[dict[str, Any]]:
    leases = max([s for s in sizes if s <= SIZES_CAP] or [SIZES_CAP])
    return rows(compare(leases, TRIALS, (*QUERIES, *ROW_QUERIES), BASELINE or None), leases)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument("--trials", type=int, default=TRIALS)
    ap.add_argument("--query", action="append", help="a query to time (repeatable; default: the five)")
    ap.add_argument("--compare", default=BASELINE or "none", help="an earlier commit first, or 'none'")
    ap.add_argument("--clean", action="store_true", help="HEAD from a worktree of its commit")
    args = ap.parse_args(argv)
    queries = tuple(args.query or (*QUERIES, *ROW_QUERIES))
    baseline = None if args.compare in ("", "none") else args.compare
    for row in rows(compare(args.leases, args.trials, queries, baseline, clean=args.clean), args.leases):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
