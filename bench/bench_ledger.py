"""Benchmark: the cockpit's event ledger (issue 10 numbers).

- appending 10k events in one `EventLog.append` (the RecordingCollector's and the webhook sink's
  path), into a fresh ledger and into a ledger already holding N events (indexes are bigger);
  target <= 0.2 s;
- `opcockpit events --since 1h` over an N-event ledger, run as the CLI process (wall time from
  spawn to exit, output to a pipe); target <= 1 s at N = 1M.

The N-event ledger is built in a temp dir with `EventLog.append` in batches (not timed): events
spread evenly over the last 7 days, a realistic mix of types, subjects and bodies. The default N
is modest (100k, so `bench/run.py` stays quick); the 1M run is a flag:

    python -m bench.bench_ledger --ledger-size 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/bench_ledger.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opcockpit.adapters.ledger.events import EventLog
from opcockpit.domain.events import (
    Event,
    EventsConfig,
    EventSource,
    InstanceStateChanged,
    InstanceView,
    LeaseConvergenceChanged,
    LeaseView,
    ProviderEvent,
)

DEFAULT_LEDGER = 100_000
APPEND_N = 10_000
APPEND_TARGET_S = 0.2
QUERY_TARGET_S = 1.0
SPAN = timedelta(days=7)
BATCH = 50_000
# No retention pass while building or appending (it is not what is measured here).
CONFIG = EventsConfig(max_rows=10_000_000, compact_every=10**9, retention_days=3650)
STATES = ("running", "paused", "stopped")


def make_events(n: int, *, end: datetime, span: timedelta, start_index: int = 0) -> list[Event]:
    """`n` events observed evenly over (end - span, end]: state changes, convergence changes and
    webhooks over 5k leases at 4 providers."""
    out: list[Event] = []
    step = span / max(n, 1)
    for i in range(n):
        k = start_index + i
        at = end - span + step * (i + 1)
        lease, provider = f"lease-{k % 5000:06d}", ("docker", "e2b", "daytona", "agentbay")[k % 4]
        iid = f"inst-{k % 5000:06d}"
        before, after = STATES[k % 3], STATES[(k + 1) % 3]
        if k % 3 == 0:
            ev: Event = InstanceStateChanged(
                observed_at=at, occurred_at=at, source=EventSource.PROVIDER_LIST, provider=provider,
                instance_id=iid, lease_id=lease, before=InstanceView(state=before, lease_id=lease),
                after=InstanceView(state=after, lease_id=lease),
            )  # fmt: skip
        elif k % 3 == 1:
            ev = LeaseConvergenceChanged(
                observed_at=at, source=EventSource.SANDBOX_DB, lease_id=lease, provider=provider,
                thread_id=f"thread-{k % 5000:06d}", instance_id=iid,
                before=LeaseView(convergence="converged", desired_state=before, observed_state=before),
                after=LeaseView(convergence="diverged", desired_state=after, observed_state=before),
            )  # fmt: skip
        else:
            ev = ProviderEvent(
                observed_at=at, source=EventSource.PROVIDER_EVENT, provider=provider, instance_id=iid,
                lease_id=lease, after={"event": f"sandbox.lifecycle.{after}"},
                data={"via": "webhook", "event_type": f"sandbox.lifecycle.{after}",
                      "payload": {"sandboxId": iid, "state": after, "n": k}},
            )  # fmt: skip
        out.append(ev)
    return out


def build_ledger(path: Path, n: int, end: datetime) -> float:
    """An `n`-event ledger at `path` (batched appends); returns the seconds it took (not a result)."""
    t0 = time.perf_counter()
    log = EventLog(path, CONFIG)
    try:
        for start in range(0, n, BATCH):
            m = min(BATCH, n - start)
            span = SPAN * m / n
            batch_end = end - SPAN + SPAN * (start + m) / n
            log.append(make_events(m, end=batch_end, span=span, start_index=start))
    finally:
        log.close()
    return time.perf_counter() - t0


def time_append(path: Path, end: datetime) -> float:
    events = make_events(APPEND_N, end=end, span=timedelta(seconds=10), start_index=10**7)
    log = EventLog(path, CONFIG)
    try:
        log.count()  # open + schema check outside the timed part
        t0 = time.perf_counter()
        log.append(events)
        return time.perf_counter() - t0
    finally:
        log.close()


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("opcockpit")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "opcockpit.cli"]


def time_cli_since(path: Path, runs: int = 3) -> tuple[list[float], int]:
    """Wall times of `opcockpit events --since 1h --ledger PATH` and the lines it printed."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    with tempfile.TemporaryDirectory() as home:  # no operator config is read
        env["XDG_CONFIG_HOME"] = home
        env.pop("OPCOCKPIT_CONFIG", None)
        times, lines = [], 0
        for _ in range(runs):
            t0 = time.perf_counter()
            proc = subprocess.run(
                [*_cli(), "events", "--since", "1h", "--ledger", str(path)],
                capture_output=True, text=True, env=env, check=False,
            )  # fmt: skip
            times.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise RuntimeError(
                    f"opcockpit events failed ({proc.returncode}): {proc.stderr.strip()[:300]}"
                )
            lines = len(proc.stdout.splitlines())
    return times, lines


def measure(ledger_size: int = DEFAULT_LEDGER) -> dict[str, Any]:
    end = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = time_append(Path(tmp) / "fresh.db", end)
        big = Path(tmp) / "ledger.db"
        built = build_ledger(big, ledger_size, end)
        cli_times, lines = time_cli_since(big)
        loaded = time_append(big, end + timedelta(seconds=1))
        size_mb = big.stat().st_size / 1e6
    return {
        "ledger_size": ledger_size, "append_fresh_s": fresh, "append_loaded_s": loaded,
        "cli_since_1h_s": cli_times, "cli_lines": lines, "build_s": built, "ledger_mb": size_mb,
    }  # fmt: skip


def _row(name: str, size: int, value: float, target: float, notes: str) -> dict[str, Any]:
    return {
        "name": name,
        "size": size,
        "value": round(value, 3),
        "unit": "s",
        "target": target,
        "notes": notes,
    }


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    n, cli = r["ledger_size"], r["cli_since_1h_s"]
    runs = ", ".join(f"{t:.2f}" for t in cli)
    built = f"ledger {r['ledger_mb']:.0f} MB built in {r['build_s']:.0f}s"
    return [
        _row("ledger append 10k events (fresh ledger)", APPEND_N, r["append_fresh_s"], APPEND_TARGET_S,
             "one EventLog.append (one transaction)"),
        _row(f"ledger append 10k events (ledger of {n:,})", n, r["append_loaded_s"], APPEND_TARGET_S,
             "indexes already hold N rows"),
        _row("opcockpit events --since 1h (CLI process, wall)", n, statistics.median(cli), QUERY_TARGET_S,
             f"median of {len(cli)} ({runs}); {r['cli_lines']} lines out; {built}"),
    ]  # fmt: skip


def run(sizes: list[int]) -> list[dict[str, Any]]:
    """bench/run.py hook: the default (modest) ledger; `--ledger-size 1000000` for the issue's 1M."""
    del sizes  # the ledger sizes are this module's own (the fleet sizes do not apply)
    return rows(measure(DEFAULT_LEDGER))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ledger-size", type=int, default=DEFAULT_LEDGER, help="events in the queried ledger")
    a = ap.parse_args()
    result = measure(a.ledger_size)
    print(json.dumps(result, indent=2))
    for row in rows(result):
        print(f"{row['name']}: {row['value']} {row['unit']} (target {row['target']}) {row['notes']}")
