"""A change at the provider, and an operator's action, on screen (issue 10): end to end.

Issue 10's numbers: "a provider-side state change (docker event) on screen <= 1 s; an action
converged on screen within one refresh". The real cockpit TUI runs in a pty at 120x40 against
bench/fleet_server.py's 10k-lease fleet in another process (doubles on loopback, drift off so
nothing else moves); its default 2 s refresh.

Per trial, on one running docker lease the cockpit shows as running:
- provider event: the table is filtered to the lease (`/`, `lease:ID`, Enter); then someone
  pauses its container at the provider (`POST /containers/{name}/pause` on the Docker double, as
  `docker pause` would, outside LEON); timed from the API call's return to the first pty chunk in
  which the lease's row reads `paused`. The Docker adapter streams `/events`; the event makes the
  cockpit GET that one container instead of waiting for a full listing.
- action: on that row the operator resumes (`r`, then `y` in the confirmation naming it); timed
  from the `y` to the first chunk holding the toast `resume converged: <lease>` (the operation
  saw the instance running in a refresh after its provider call). Target: one refresh (2 s).
The pty stream is searched as bytes (Textual writes a cell's text in one run).

Side by side: the previous main (BASELINE, a `git worktree`) and HEAD, the same fleet process.
The previous main (ec3fb80) has no confirmation for `r` (it acts at once), so its action is timed
from the `r`.

Run: `python -m bench.bench_event_latency [--leases 10000] [--trials 7] [--compare ec3fb80|none]`
or `python -m bench.run --only bench_event_latency` (OPT_IN: ~5 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_soak import start_fleet
from bench.bench_steady import checked_tree_env, git, worktree
from bench.bench_team_ack import _Screen
from bench.pty_cockpit import start_in_pty, stop

ROOT = Path(__file__).resolve().parent.parent
OPT_IN = True  # bench/run.py: only with --only (two cockpits against a 10k fleet: minutes)
SIZES_CAP = 10_000
BASELINE = os.environ.get("BENCH_BASELINE", "ec3fb80")
EVENT_TARGET_S = 1.0
REFRESH_S = 2.0  # the cockpit's default refresh: the action's target is one of it
TRIALS = 7
SEEN_TIMEOUT_S = 20.0
START_TIMEOUT_S = 240.0


def _docker_api(cfg: Path) -> tuple[httpx.Client, str, Path]:
    """(client on the fleet's Docker double, its API prefix, sandbox.db) from the cockpit config."""
    conf = tomllib.loads(cfg.read_text())
    host = next(p["host"] for p in conf["providers"].values() if p["kind"] == "docker")
    if host.startswith("unix://"):
        client = httpx.Client(
            transport=httpx.HTTPTransport(uds=host[len("unix://") :]), base_url="http://docker"
        )
    else:
        client = httpx.Client(base_url=host.replace("tcp://", "http://", 1))
    version = client.get("/version", timeout=10).json().get("ApiVersion", "1.41")
    return client, f"/v{version}", Path(conf["sources"]["sandbox_db"])


def _running_docker_leases(db: Path, client: httpx.Client, prefix: str, n: int) -> list[tuple[str, str]]:
    """(lease_id, container name) of `n` docker leases LEON and the provider both see running."""
    running = {
        name.lstrip("/")
        for c in client.get(f"{prefix}/containers/json", timeout=30).json()
        if c.get("State") == "running"
        for name in c.get("Names", ())
    }
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT lease_id, current_instance_id FROM sandbox_leases WHERE provider_name = 'docker'"
            " AND desired_state = 'running' AND observed_state = 'running' ORDER BY lease_id"
        ).fetchall()
    picked = [(lease, iid) for lease, iid in rows if iid in running]
    if len(picked) < n:
        raise RuntimeError(f"only {len(picked)} running docker leases, {n} wanted")
    return picked[:n]


def _filter_to(screen: _Screen, lease: str) -> None:
    """Filter the table to `lease`: Esc clears the last filter, `/` opens the box (empty: its
    placeholder drawn), then the filter and Enter. The box is awaited before typing: a key typed
    while the table has focus is a table key (a = adopt, l = logs, ...)."""
    screen.write(b"\x1b")
    time.sleep(1.0)
    start = screen.offset()
    screen.write(b"/")
    if screen.wait(b"Enter keep", start, 10.0) is None:
        raise RuntimeError("the filter box did not open")
    screen.write(f"lease:{lease}".encode() + b"\r")


def _row_shows(screen: _Screen, lease: str, text: bytes, start: int) -> float | None:
    """When a chunk after `start` first drew `lease`'s row (one screen line) holding `text`."""
    with screen.lock:
        at = screen.buf.find(lease.encode(), start)
        while at >= 0:
            end = screen.buf.find(b"\r\n", at)
            line_end = len(screen.buf) if end < 0 else end
            if screen.buf.find(text, at, line_end) >= 0 and end >= 0:
                return next(t for t, off in screen.marks if off >= end)
            at = screen.buf.find(lease.encode(), at + 1)
    return None


def _wait_row(screen: _Screen, lease: str, text: bytes, start: int) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < SEEN_TIMEOUT_S:
        seen = _row_shows(screen, lease, text, start)
        if seen is not None:
            return seen
        time.sleep(0.01)
    return None


def measure(label: str, pythonpath: Path, cfg: Path, trials: int, *, confirm: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="opcockpit-event-latency-"))
    env, _ = checked_tree_env(label, pythonpath, tmp)
    client, prefix, db = _docker_api(cfg)
    targets = _running_docker_leases(db, client, prefix, trials)
    tui, primary = start_in_pty(["--config", str(cfg), "--refresh", str(REFRESH_S)], env, tmp)
    screen = _Screen(primary)
    events: list[float] = []
    actions: list[float] = []
    missed = {"event": 0, "action": 0}
    try:
        if screen.wait(b"lease-", 0, START_TIMEOUT_S) is None:
            raise RuntimeError(f"{label}: no rows drawn (rc {tui.poll()})")
        time.sleep(15.0)  # first listings, alert round and history settle
        for lease, name in targets:
            start = screen.offset()
            _filter_to(screen, lease)
            if _wait_row(screen, lease, b"running", start) is None:
                raise RuntimeError(f"{label}: {lease} not shown running after filtering")
            time.sleep(2.5)  # the filtered view settles (one refresh)
            start = screen.offset()
            resp = client.post(f"{prefix}/containers/{name}/pause", timeout=10)
            done = time.monotonic()
            resp.raise_for_status()
            seen = _wait_row(screen, lease, b"paused", start)
            if seen is None:
                missed["event"] += 1
                client.post(f"{prefix}/containers/{name}/unpause", timeout=10)
                continue
            events.append(max(0.0, seen - done))
            time.sleep(1.0)
            start = screen.offset()
            screen.write(b"r")
            if confirm:
                time.sleep(0.5)
                start = screen.offset()
                screen.write(b"y")
            pressed = time.monotonic()
            seen = screen.wait(b"resume converged", start, SEEN_TIMEOUT_S)
            if seen is None:
                missed["action"] += 1
            else:
                actions.append(max(0.0, seen - pressed))
            action_s = actions[-1] if seen is not None else None
            trial = {"run": label, "lease": lease, "event_s": events[-1], "action_s": action_s}
            print(json.dumps(trial), file=sys.stderr, flush=True)
            time.sleep(1.0)
    finally:
        stop(tui)
        screen.close()
        client.close()
    return {
        "label": label,
        "trials": trials,
        "missed": missed,
        "event_median_s": round(statistics.median(events), 3) if events else None,
        "event_max_s": round(max(events), 3) if events else None,
        "action_median_s": round(statistics.median(actions), 3) if actions else None,
        "action_max_s": round(max(actions), 3) if actions else None,
        "confirm": confirm,
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def compare(leases: int, trials: int, baseline: str | None) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="opcockpit-event-fleet-"))
    fleet, cfg = start_fleet(tmp, leases, REFRESH_S, drift_interval=1e9)
    results = []
    try:
        if baseline:
            with worktree(baseline) as prev:
                results.append(measure(f"previous main {baseline}", prev, cfg, trials, confirm=False))
        head = f"HEAD {git('rev-parse', '--short', 'HEAD')}"
        results.append(measure(head, ROOT, cfg, trials, confirm=True))
    finally:
        fleet.terminate()
        fleet.wait(30)
    return results


def rows(results: list[dict[str, Any]], leases: int) -> list[dict[str, Any]]:
    out = []
    for r in results:
        load = f"load {' '.join(map(str, r['load']))}"
        note = f"median of {r['trials']} (missed {r['missed']['event']}); max {r['event_max_s']} s; {load}"
        out.append({
            "name": f"docker pause at the provider -> on screen, {r['label']}", "size": leases,
            "value": r["event_median_s"], "unit": "s", "target": EVENT_TARGET_S, "notes": note,
        })  # fmt: skip
        how = "from `y` in the confirmation" if r["confirm"] else "from `r` (no confirmation in this build)"
        note = f"{how}; median of {r['trials']} (missed {r['missed']['action']}); max {r['action_max_s']} s"
        out.append({
            "name": f"resume converged on screen, {r['label']}", "size": leases,
            "value": r["action_median_s"], "unit": "s", "target": REFRESH_S, "notes": note,
        })  # fmt: skip
    return out


def run(sizes: list[int]) -> list[dict[str, Any]]:
    leases = max([s for s in sizes if s <= SIZES_CAP] or [SIZES_CAP])
    return rows(compare(leases, TRIALS, BASELINE or None), leases)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument("--trials", type=int, default=TRIALS)
    ap.add_argument("--compare", default=BASELINE, help="previous main commit, or 'none'")
    args = ap.parse_args(argv)
    baseline = None if args.compare in ("", "none") else args.compare
    for row in rows(compare(args.leases, args.trials, baseline), args.leases):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
