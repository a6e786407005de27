"""Explore keeps the cockpit responsive (issue 11): key latency while a query runs, end to end.

Issue 11: "the TUI stays responsive while a query runs (input latency unchanged)". The real
cockpit TUI runs in a pty (120x40) on bench_explore's fleet (10k leases topped up to ~460k
run_events; sandbox.db and events.db, no provider configured, so the query is the only work
competing with the keys). On the Explore tab (`6`) the operator types into the query box; a key's
latency is the time from writing it to the pty to the first output chunk that draws it.

- idle: a key typed while no query runs (then rubbed out);
- busy: the same key typed 0.1 s after Enter started `run_events since:-24h | group by event_type
  | count` (the heaviest typical query in the TUI: its facets are counted with it); the trial
  counts as busy only when the result ("N rows") was drawn after the key.
Medians side by side; the busy median within 50 ms of the idle one is "unchanged" (a key drawn
within a frame or three). HEAD only by default: the previous main's Explore tab (f45d5a5) does not
take the keys on `6`, and driven through Tab its 10k result was not drawn within 60 s in this
harness; `--compare f45d5a5` tries it.

Run: `python -m bench.bench_explore_input [--leases 10000] [--trials 11] [--compare none|f45d5a5]`
or `python -m bench.run --only bench_explore_input` (OPT_IN: fleet generation plus two cockpits).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_explore import EVENTS_PER_LEASE, _top_up_run_events
from bench.bench_steady import checked_tree_env, git, worktree
from bench.bench_team_ack import _Screen
from bench.pty_cockpit import start_in_pty, stop

ROOT = Path(__file__).resolve().parent.parent
OPT_IN = True
SIZES_CAP = 10_000
BASELINE = os.environ.get("BENCH_BASELINE_EXPLORE", "")
QUERY = "run_events since:-24h | group by event_type | count"
KEY = "§".encode()  # drawn nowhere else on the Explore tab
RUB_OUT = b"\x7f"
CLEAR = b"\x15"  # ctrl+u: the query box's delete-to-start
UNCHANGED_MS = 50.0
TRIALS = 11
START_TIMEOUT_S = 240.0
SETTLE_S = 20.0  # first refresh, first alert round (it reads events.db's runs)
ROWS = re.compile(rb"\d+ rows?\b")


def _key_latency(screen: _Screen, timeout: float = 10.0) -> float | None:
    start = screen.offset()
    sent = time.monotonic()
    screen.write(KEY)
    seen = screen.wait(KEY, start, timeout)
    return None if seen is None else max(0.0, seen - sent)


def _type(screen: _Screen, text: str) -> None:
    """Replace the query box's text with `text`, and see it drawn (typed again when it is not:
    on a loaded machine typed text was now and then lost, and the trial waited 60 s for nothing)."""
    shown = text.removesuffix("\r").encode()
    for _ in range(3):
        screen.write(CLEAR)  # alone: written with the text after it, the text was lost
        time.sleep(0.3)
        start = screen.offset()
        screen.write(text.encode())
        if screen.wait(shown, start, 5.0) is not None:
            return
    raise RuntimeError(f"{text!r} typed three times, never drawn")


ESCAPES = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\\\)|[@-_])")


def _failed_trial(screen: _Screen, start: int, tmp: Path) -> str:
    """What a failed trial drew: its bytes kept in a file (bench.run's table clips the message),
    and the text of its last ~1500 bytes with the escape sequences taken out."""
    drawn = bytes(screen.buf[start:])
    dump = tmp / "failed-trial.raw"
    dump.write_bytes(drawn)
    text = ESCAPES.sub(b" ", drawn[-1500:]).decode("utf-8", "replace")
    return f"{' '.join(text.split())!r} (drawn bytes: {dump})"


def open_explore(screen: _Screen, label: str, proc: Any) -> None:
    """Wait for the fleet's rows, let the first refresh and alert round pass, open Explore (`6`)."""
    if screen.wait(b"lease-", 0, START_TIMEOUT_S) is None:
        raise RuntimeError(f"{label}: no rows drawn (rc {proc.poll()})")
    time.sleep(SETTLE_S)
    start = screen.offset()
    screen.write(b"6")
    if screen.wait(b"type a query", start, 20.0) is None:
        raise RuntimeError(f"{label}: the Explore tab did not open")
    time.sleep(1.0)


def measure(label: str, pythonpath: Path, cfg: Path, trials: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="opcockpit-explore-input-"))
    env, _ = checked_tree_env(label, pythonpath, tmp)
    proc, primary = start_in_pty(["--config", str(cfg)], env, tmp)
    screen = _Screen(primary)
    idle: list[float] = []
    busy: list[float] = []
    queries: list[float] = []
    late = 0  # the key was drawn only after the result: the trial was not busy
    try:
        open_explore(screen, label, proc)
        for _ in range(4):  # a build that does not focus the box on `6`: Tab until a key is drawn
            if _key_latency(screen, timeout=2.0) is not None:
                break
            screen.write(b"\t")
            time.sleep(0.5)
        else:
            raise RuntimeError(f"{label}: a key typed on the Explore tab was not drawn")
        screen.write(RUB_OUT)
        time.sleep(0.5)
        for _ in range(trials):
            lat = _key_latency(screen)
            if lat is not None:
                idle.append(lat)
            screen.write(RUB_OUT)
            time.sleep(0.5)
        for _ in range(trials):
            _type(screen, "nosuchdataset\r")  # an error in the status line: the result redraws it
            time.sleep(1.0)
            _type(screen, QUERY)
            time.sleep(0.5)
            start = screen.offset()
            entered = time.monotonic()
            screen.write(b"\r")
            time.sleep(0.1)
            lat = _key_latency(screen)
            done = screen.wait(ROWS, start, 60.0)
            if done is None:
                raise RuntimeError(f"{label}: the query drew no result: {_failed_trial(screen, start, tmp)}")
            queries.append(done - entered)
            if lat is not None and entered + 0.1 + lat < done:
                busy.append(lat)
            else:
                late += 1
            screen.write(RUB_OUT)
            time.sleep(1.0)
    finally:
        stop(proc)
        screen.close()
    med = statistics.median
    return {
        "label": label,
        "trials": trials,
        "idle_ms": round(1000 * med(idle), 1) if idle else None,
        "idle_max_ms": round(1000 * max(idle), 1) if idle else None,
        "busy_ms": round(1000 * med(busy), 1) if busy else None,
        "busy_max_ms": round(1000 * max(busy), 1) if busy else None,
        "busy_n": len(busy),
        "late": late,
        "query_s": round(med(queries), 3) if queries else None,
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def compare(leases: int, trials: int, baseline: str | None) -> list[dict[str, Any]]:
    from opcockpit.demo.fleet import generate_fleet

    with tempfile.TemporaryDirectory(prefix="opcockpit-explore-input-fleet-") as d:
        fleet = generate_fleet(Path(d) / "fleet", leases=leases, seed=7)
        events = _top_up_run_events(fleet.events_db, leases, EVENTS_PER_LEASE)
        cfg = Path(d) / "cockpit.toml"
        cfg.write_text(f"[sources]\nsandbox_db = {json.dumps(str(fleet.sandbox_db))}\n"
                       f"events_db = {json.dumps(str(fleet.events_db))}\n")  # fmt: skip
        results = []
        if baseline:
            with worktree(baseline) as prev:
                results.append(measure(f"previous main {baseline}", prev, cfg, trials))
        results.append(measure(f"HEAD {git('rev-parse', '--short', 'HEAD')}", ROOT, cfg, trials))
        for r in results:
            r["run_events"] = events
        return results


def rows(results: list[dict[str, Any]], leases: int) -> list[dict[str, Any]]:
    out = []
    for r in results:
        idle, busy = r["idle_ms"], r["busy_ms"]
        delta = None if idle is None or busy is None else round(busy - idle, 1)
        note = (
            f"busy (a key 0.1 s into the query) median {busy} ms, max {r['busy_max_ms']} ms over "
            f"{r['busy_n']} trials ({r['late']} not during the query); idle median {idle} ms, max "
            f"{r['idle_max_ms']} ms; "
            f"query to its drawn result {r['query_s']} s; {r['run_events']} run_events; "
            f"load {' '.join(map(str, r['load']))}"
        )
        out.append({
            "name": f"explore: key latency while a query runs, minus idle, {r['label']}", "size": leases,
            "value": delta, "unit": "ms", "target": UNCHANGED_MS, "notes": note,
        })  # fmt: skip
    return out


def run(sizes: list[int]) -> list[dict[str, Any]]:
    leases = max([s for s in sizes if s <= SIZES_CAP] or [SIZES_CAP])
    return rows(compare(leases, TRIALS, BASELINE or None), leases)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument("--trials", type=int, default=TRIALS)
    ap.add_argument("--compare", default=BASELINE or "none", help="previous main commit, or 'none'")
    args = ap.parse_args(argv)
    baseline = None if args.compare in ("", "none") else args.compare
    for row in rows(compare(args.leases, args.trials, baseline), args.leases):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
