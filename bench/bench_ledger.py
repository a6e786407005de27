"""Benchmark: the cockpit's event ledger (issue 10 numbers).

- appending 10k events in one `EventLog.append` (the RecordingCollector's and the webhook sink's
  path), into a fresh ledger and into a ledger already holding N events (indexes are bigger);
  target <= 0.2 s;
- `opcockpit events --since 1h` over an N-event ledger, run as the CLI process (wall time from
  spawn to exit, output to a pipe; its CPU user+sys beside it); target <= 1 s at N = 1M.

The N-event ledgers (default N = 100k and the issue's 1M; `$BENCH_LEDGER_SIZE` or
`--ledger-size` as a comma list) are built with `EventLog.append` in batches (not timed): events
spread evenly over 7 days up to the build time, a realistic mix of types, subjects and bodies.
A built ledger is cached in `$BENCH_LEDGER_CACHE` (default <tmp>/opcockpit-bench-ledger), keyed
by N, this generator's version and a hash of the tree's event-ledger migrations (its schema), so
a re-run does not rebuild it. A reused ledger is topped up with the events its last hour would
have held (same density), so `--since 1h` reads as many rows as on a fresh build; the 10k
appended into it are measured and then deleted again (the cached ledger stays N events).

Wall time on a loaded machine is mostly waiting for a core: every row also quotes CPU time
(user+sys) and the load average when it was measured.

    python -m bench.bench_ledger [--ledger-size 100000,1000000] [--compare f45d5a5|none]

Side by side: the same measurement for the previous main (BASELINE, a `git worktree`; default
f45d5a5: ec3fb80 had no event ledger) and HEAD, each in its own child process whose `opcockpit`
is that tree's (PYTHONPATH, checked), one after the other.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/bench_ledger.py`: the tree under test, else this repo
    sys.path.insert(0, os.environ.get("BENCH_TREE") or str(Path(__file__).resolve().parent.parent))

from opcockpit.adapters.ledger import events as ledger_events
from opcockpit.adapters.ledger.events import EventLog
from opcockpit.domain.events import (
    Event,
    EventQuery,
    EventsConfig,
    EventSource,
    InstanceStateChanged,
    InstanceView,
    LeaseConvergenceChanged,
    LeaseView,
    ProviderEvent,
)

ROOT = Path(__file__).resolve().parent.parent
BASELINE = os.environ.get("BENCH_BASELINE_LEDGER", "f45d5a5")
DEFAULT_SIZES = os.environ.get("BENCH_LEDGER_SIZE", "100000,1000000")  # the number: 1M
GEN_VERSION = 1  # bump when make_events changes: cached ledgers of another version are not reused
APPEND_N = 10_000
APPEND_RUNS = 3  # appends measured per case; the median is the value
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


def cache_dir() -> Path:
    return Path(
        os.environ.get("BENCH_LEDGER_CACHE") or Path(tempfile.gettempdir()) / "opcockpit-bench-ledger"
    )


def schema_key() -> str:
    """The event ledger's schema as this tree migrates it (a new migration: a new key)."""
    return hashlib.sha1(repr(ledger_events.MIGRATIONS).encode()).hexdigest()[:12]


def cached_ledger(n: int, now: datetime) -> tuple[Path, str]:
    """The `n`-event ledger for this tree's schema, built once and reused; (path, how it came).

    Reused: topped up with the events of the last hour it missed (at the build's density), so
    the `--since 1h` window holds what a fresh build's would."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    base = root / f"ledger-{n}-g{GEN_VERSION}-{schema_key()}"
    path, meta_path = base.with_suffix(".db"), base.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        last = datetime.fromisoformat(meta["end"])
        since = max(last, now - timedelta(hours=1))
        missing = int(n * ((now - since) / SPAN))
        if missing > 0:
            log = EventLog(path, CONFIG)
            try:
                log.append(make_events(missing, end=now, span=now - since, start_index=meta["next"]))
            finally:
                log.close()
        meta_path.write_text(json.dumps({"end": now.isoformat(), "next": meta["next"] + missing}))
        return path, f"cached ledger, +{missing} events of the last hour"
    building = base.with_suffix(".building.db")
    for stale in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
        stale.unlink(missing_ok=True)
    built = build_ledger(building, n, now)
    os.replace(building, path)  # closed (checkpointed) first: the file is whole
    meta_path.write_text(json.dumps({"end": now.isoformat(), "next": n}))
    return path, f"built in {built:.0f}s"


def time_append(path: Path, end: datetime, *, undo: bool = False) -> tuple[float, float]:
    """(wall, CPU) seconds of one 10k-event append: CPU is what a loaded machine cannot inflate.
    `undo`: the appended rows are deleted afterwards (a cached ledger stays as built)."""
    events = make_events(APPEND_N, end=end, span=timedelta(seconds=10), start_index=10**8)
    log = EventLog(path, CONFIG)
    try:
        log.count()  # open + schema check outside the timed part
        before = _max_id(path)
        t0, c0 = time.perf_counter(), time.process_time()
        log.append(events)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        log.close()
    if undo:
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("DELETE FROM events WHERE id > ?", (before,))
    return wall, cpu


def median_append(paths: list[Path], end: datetime, *, undo: bool = False) -> tuple[float, float, str]:
    """`time_append` once per path (a fresh file each, or the same ledger again with `undo`):
    (median wall, median CPU, every run as 'wall/CPU'). One run was at the mercy of the load."""
    runs = [time_append(p, end + timedelta(seconds=20 * i), undo=undo) for i, p in enumerate(paths)]
    shown = ", ".join(f"{w:.3f}/{c:.3f}" for w, c in runs)
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs), shown


def _max_id(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])


def time_query(path: Path, end: datetime) -> float:
    """In-process `--since 1h` (the CLI's query without the interpreter's start-up)."""
    log = EventLog(path, CONFIG)
    try:
        log.count()
        t0 = time.perf_counter()
        log.query(EventQuery(since=end - timedelta(hours=1), limit=200))
        return time.perf_counter() - t0
    finally:
        log.close()


def _cli() -> list[str]:
    if os.environ.get("BENCH_TREE"):  # the tree under test (PYTHONPATH), not the installed script
        return [sys.executable, "-m", "opcockpit.cli"]
    exe = Path(sys.executable).with_name("opcockpit")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "opcockpit.cli"]


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def time_cli_since(path: Path, runs: int = 3) -> tuple[list[float], list[float], int]:
    """Wall and CPU (user+sys) times of `opcockpit events --since 1h --ledger PATH`, and the
    lines it printed."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    with tempfile.TemporaryDirectory() as home:  # no operator config is read
        env["XDG_CONFIG_HOME"] = home
        env.pop("OPCOCKPIT_CONFIG", None)
        times, cpus, lines = [], [], 0
        for _ in range(runs):
            c0, t0 = _children_cpu(), time.perf_counter()
            proc = subprocess.run(
                [*_cli(), "events", "--since", "1h", "--ledger", str(path)],
                capture_output=True, text=True, env=env, check=False,
            )  # fmt: skip
            times.append(time.perf_counter() - t0)
            cpus.append(_children_cpu() - c0)
            if proc.returncode != 0:
                raise RuntimeError(
                    f"opcockpit events failed ({proc.returncode}): {proc.stderr.strip()[:300]}"
                )
            lines = len(proc.stdout.splitlines())
    return times, cpus, lines


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(ledger_sizes: list[int]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        load = _load()
        fresh_files = [Path(tmp) / f"fresh-{i}.db" for i in range(APPEND_RUNS)]
        fresh, fresh_cpu, fresh_runs = median_append(fresh_files, datetime.now(UTC))
        out: dict[str, Any] = {
            "append_fresh_s": fresh, "append_fresh_cpu_s": fresh_cpu, "append_fresh_runs": fresh_runs,
            "load": load,
        }  # fmt: skip
    out["ledgers"] = []
    for n in ledger_sizes:
        now = datetime.now(UTC)
        big, how = cached_ledger(n, now)
        load = _load()
        cli_times, cli_cpus, lines = time_cli_since(big)
        query = time_query(big, now)
        loaded, loaded_cpu, loaded_runs = median_append(
            [big] * APPEND_RUNS, now + timedelta(seconds=1), undo=True
        )
        out["ledgers"].append({
            "ledger_size": n, "append_loaded_s": loaded, "append_loaded_cpu_s": loaded_cpu,
            "append_loaded_runs": loaded_runs,
            "query_s": query, "cli_since_1h_s": cli_times, "cli_cpu_s": cli_cpus, "cli_lines": lines,
            "how": how, "ledger_mb": big.stat().st_size / 1e6, "load": load, "load_after": _load(),
        })  # fmt: skip
    return out


def _row(name: str, size: int, value: float, target: float, notes: str) -> dict[str, Any]:
    return {
        "name": name,
        "size": size,
        "value": round(value, 3),
        "unit": "s",
        "target": target,
        "notes": notes,
    }


def rows(r: dict[str, Any], label: str = "") -> list[dict[str, Any]]:
    tag = f", {label}" if label else ""
    out = [
        _row(f"ledger append 10k events (fresh ledger){tag}", APPEND_N, r["append_fresh_s"], APPEND_TARGET_S,
             f"one EventLog.append (one transaction); median of {APPEND_RUNS}"
             f" (wall/CPU s: {r['append_fresh_runs']});"
             f" CPU {r['append_fresh_cpu_s']:.3f}s; load {r['load']}"),
    ]  # fmt: skip
    for b in r["ledgers"]:
        n, cli, cpus = b["ledger_size"], b["cli_since_1h_s"], b["cli_cpu_s"]
        runs = ", ".join(f"{t:.2f}" for t in cli)
        ledger = f"ledger {b['ledger_mb']:.0f} MB, {b['how']}"
        out += [
            _row(f"ledger append 10k events (ledger of {n:,}){tag}", n, b["append_loaded_s"], APPEND_TARGET_S,
                 f"indexes already hold N rows; median of {APPEND_RUNS}"
                 f" (wall/CPU s: {b['append_loaded_runs']});"
                 f" CPU {b['append_loaded_cpu_s']:.3f}s; load {b['load_after']}"),
            _row(f"opcockpit events --since 1h (CLI process, wall){tag}", n, statistics.median(cli),
                 QUERY_TARGET_S, f"median of {len(cli)} ({runs}); CPU user+sys"
                 f" {statistics.median(cpus):.2f}s; "
                 f"{b['cli_lines']} lines out; the query alone {b['query_s'] * 1000:.1f} ms in process; "
                 f"{ledger}; load {b['load']}"),
        ]  # fmt: skip
    return out


def measure_tree(tree: Path, ledger_sizes: list[int]) -> dict[str, Any]:
    """`measure` in a child process whose opcockpit is `tree`'s (checked, not assumed)."""
    from bench.bench_steady import imported_from

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPCOCKPIT_", "LEON_"))}
    env.update(PYTHONPATH=str(tree), BENCH_TREE=str(tree))
    sizes = ",".join(str(n) for n in ledger_sizes)
    with tempfile.TemporaryDirectory() as home:
        origin = imported_from(env, Path(home))
        if not origin.is_relative_to(tree.resolve()):
            raise RuntimeError(f"opcockpit imports from {origin}, not from {tree}")
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", "--ledger-size", sizes],
            env=env, cwd=home, capture_output=True, text=True, check=False, timeout=3600,
        )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"bench child ({tree}) failed: {proc.stderr.strip()[-500:]}")
    return dict(json.loads(proc.stdout))


def compare(ledger_sizes: list[int], baseline: str | None = BASELINE) -> list[dict[str, Any]]:
    """Previous main (if any) then HEAD, the same measurement, one after the other."""
    from bench.bench_steady import git, worktree

    out: list[dict[str, Any]] = []
    if baseline:
        with worktree(baseline) as prev:
            label = f"previous main {git('rev-parse', '--short', baseline)}"
            out += rows(measure_tree(prev, ledger_sizes), label)
    out += rows(measure_tree(ROOT, ledger_sizes), f"HEAD {git('rev-parse', '--short', 'HEAD')}")
    return out


def sizes_of(text: str) -> list[int]:
    return [int(x) for x in text.replace("_", "").split(",") if x.strip()]


def run(sizes: list[int]) -> list[dict[str, Any]]:
    """bench/run.py hook: the 100k and the issue's 1M ledger, previous main beside HEAD."""
    del sizes  # the ledger sizes are this module's own (the fleet sizes do not apply)
    return compare(sizes_of(DEFAULT_SIZES))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ledger-size", default=DEFAULT_SIZES, help="events in the queried ledgers (comma list)")
    ap.add_argument("--compare", default=BASELINE, help="previous main commit ('none': HEAD only)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:  # one tree's measurement, as JSON on stdout
        print(json.dumps(measure(sizes_of(a.ledger_size))))
        raise SystemExit(0)
    load = os.getloadavg()
    for row in compare(sizes_of(a.ledger_size), None if a.compare in ("", "none") else a.compare):
        print(f"{row['name']}: {row['value']} {row['unit']} (target {row['target']}) {row['notes']}")
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; after: {_load()}")
