"""Benchmark: the headless path end to end, and the demo fleet generator that feeds every bench.

- `opcockpit snapshot --format json --db <path>` as a subprocess, interpreter start included:
  100 leases <= 0.3 s, 10k leases <= 1.0 s (issues #2, #9). The fleets carry the default provider
  mix but no provider is configured (HOME/XDG point at an empty dir), so the timing is the DB read
  + reconcile + JSON, with the remote providers reported as errors. The warm-up run also starts
  the ledger in the temp HOME: since the history work a snapshot records the fleet's changes
  there, so the first run on a machine stores the baseline picture (not in the median) and the
  timed runs recognise the unchanged fleet by the stored picture's mark (domain/picture_mark.py)
  without loading or diffing it.
- the previous main (BASELINE, a `git worktree` on PYTHONPATH) beside HEAD (this tree on
  PYTHONPATH), both as `python -m opcockpit.cli` from a neutral cwd with their own HOME, runs
  ALTERNATING between the trees (one of each per round, so a load change hits both alike);
  medians of wall and of the process's user+sys CPU, with the load average before and after.
  `BENCH_BASELINE=` (empty) skips it; `BENCH_BASELINE=e4b892a` compares with another commit.
- bytecode: PYTHONDONTWRITEBYTECODE is removed from the children's environment, so the warm-up
  run writes both trees' `__pycache__` and the timed runs load bytecode, as an installed user does.
- fleet generation (sandbox.db + events.db) and `read_db_state` at each requested size.

Run: `python -m bench.run --only snapshot` or `python bench/bench_snapshot.py [n ...]`.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/bench_snapshot.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opcockpit.demo.fleet import generate_fleet

SNAPSHOT_TARGETS_S = {100: 0.3, 10_000: 1.0}
GEN_TARGET_S_PER_10K = None  # no issue sets one; informational (the benchmarks build fleets with it)
READ_TARGET_S_PER_10K = None  # informational; the snapshot target bounds it
REPEATS = int(os.environ.get("BENCH_REPEATS", "7"))
ROOT = Path(__file__).resolve().parent.parent
BASELINE = os.environ.get("BENCH_BASELINE", "ec3fb80")  # the main at the start of issue 10's work


def _cli() -> list[str] | None:
    """The installed console script if present (what users run), else `python -m opcockpit.cli`."""
    script = Path(sys.executable).with_name("opcockpit")
    if script.exists():
        return [str(script)]
    try:
        import opcockpit.cli.main  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "opcockpit.cli"]


def _isolated_env(home: Path) -> dict[str, str]:
    drop = ("LEON_", "OPCOCKPIT_", "DOCKER_", "PYTHONDONTWRITEBYTECODE")  # bytecode as installed
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    return env


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run_once(cmd: list[str], env: dict[str, str], home: Path) -> tuple[float, float, str]:
    """(wall s, user+sys CPU s, stdout) of one snapshot process; RuntimeError when it fails."""
    c0, t0 = _children_cpu(), time.perf_counter()
    # cwd=home: `python -m` puts the cwd first on sys.path, so it must hold no opcockpit.
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=home, timeout=120, check=False)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    return wall, cpu, proc.stdout


def _summary(samples: list[tuple[float, float]], out: str) -> tuple[float, str]:
    doc = json.loads(out)
    wall = statistics.median(s[0] for s in samples)
    cpu = statistics.median(s[1] for s in samples)
    return wall, (
        f"{len(doc['rows'])} rows, {len(doc['providers'])} providers; median of {len(samples)}; "
        f"cpu (user+sys) {cpu:.3f} s"
    )


def _time_snapshot(
    cli: list[str], db: Path, home: Path, pythonpath: Path | None = None
) -> tuple[float | None, str]:
    cmd = [*cli, "snapshot", "--format", "json", "--db", str(db)]
    env = _isolated_env(home)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    samples: list[tuple[float, float]] = []
    out = ""
    try:
        for i in range(REPEATS + 1):  # the first run warms the page cache, bytecode and ledger
            wall, cpu, out = _run_once(cmd, env, home)
            if i:
                samples.append((wall, cpu))
    except RuntimeError as exc:
        return None, str(exc)
    return _summary(samples, out)


def _snapshot_rows(work: Path) -> list[dict[str, Any]]:
    cli = _cli()
    rows: list[dict[str, Any]] = []
    for n, target in SNAPSHOT_TARGETS_S.items():
        row = {
            "name": "opcockpit snapshot --format json (subprocess, wall)",
            "size": n,
            "unit": "s",
            "target": target,
        }
        if cli is None:
            rows.append({**row, "value": None, "notes": "skipped: opcockpit CLI not available"})
            continue
        load = _load()
        value, notes = _time_snapshot(cli, _snapshot_db(work, n), _home(work))
        notes = f"{notes}; load {load} -> {_load()}"
        rows.append({**row, "value": round(value, 3) if value is not None else None, "notes": notes})
    return rows


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _snapshot_db(work: Path, n: int) -> Path:
    """The n-lease sandbox.db the snapshot rows time (generated once per run, shared)."""
    db = work / f"snap{n}" / "sandbox.db"
    return db if db.exists() else generate_fleet(work / f"snap{n}", leases=n, seed=1).sandbox_db


def _home(work: Path, name: str = "home") -> Path:
    (work / name).mkdir(exist_ok=True)
    return work / name


def _compare_rows(work: Path) -> list[dict[str, Any]]:
    """Previous main beside HEAD: the same fleets and launcher, only PYTHONPATH (and HOME, so
    each tree keeps its own ledger) differ; one run of each tree per round, alternating."""
    if not BASELINE:
        return []
    from bench.bench_steady import git, imported_from, worktree

    cli = [sys.executable, "-m", "opcockpit.cli"]
    rows: list[dict[str, Any]] = []
    with worktree(BASELINE) as prev:
        trees = {
            f"previous main {git('rev-parse', '--short', BASELINE)}": prev,
            f"HEAD {git('rev-parse', '--short', 'HEAD')}": ROOT,
        }
        envs: dict[str, tuple[dict[str, str], Path]] = {}
        for i, (label, tree) in enumerate(trees.items()):
            home = _home(work, f"home-tree{i}")
            env = {**_isolated_env(home), "PYTHONPATH": str(tree)}
            origin = imported_from(env, home)
            if not origin.is_relative_to(tree.resolve()):
                raise RuntimeError(f"{label}: opcockpit imports from {origin}, not from {tree}")
            envs[label] = (env, home)
        for n, target in SNAPSHOT_TARGETS_S.items():
            cmd = [*cli, "snapshot", "--format", "json", "--db", str(_snapshot_db(work, n))]
            samples: dict[str, list[tuple[float, float]]] = {label: [] for label in trees}
            outs: dict[str, str] = {}
            failed: dict[str, str] = {}
            load = _load()
            for i in range(REPEATS + 1):  # round 0 warms caches, bytecode and each ledger
                for label, (env, home) in envs.items():
                    if label in failed:
                        continue
                    try:
                        wall, cpu, outs[label] = _run_once(cmd, env, home)
                    except RuntimeError as exc:
                        failed[label] = str(exc)
                        continue
                    if i:
                        samples[label].append((wall, cpu))
            loads = f"load {load} -> {_load()}; alternating with the other tree"
            for label in trees:
                if label in failed:
                    value, notes = None, failed[label]
                else:
                    value, notes = _summary(samples[label], outs[label])
                rows.append({
                    "name": f"snapshot --format json, python -m, {label}",
                    "size": n,
                    "value": round(value, 3) if value is not None else None,
                    "unit": "s",
                    "target": target,
                    "notes": f"{notes}; {loads}",
                })  # fmt: skip
    return rows


def _read_state(read_db_state: Any, path: str) -> Any:
    """asyncio.run(read_db_state(path)), except the main task returns None.

    asyncio.run's SIGINT bookkeeping ends up formatting the repr of the finished main task, whose
    result is the whole DbState: ~0.45 s of dataclass repr at 10k leases that is not reading (the
    CLI avoids it the same way, see wiring.run_main).
    """
    box: list[Any] = []

    async def main() -> None:
        box.append(await read_db_state(path))

    asyncio.run(main())
    return box[0]


def _generation_rows(sizes: list[int], work: Path) -> list[dict[str, Any]]:
    from opcockpit.adapters.leon.sandbox_db import read_db_state

    rows: list[dict[str, Any]] = []
    for n in sizes:
        directory = work / f"gen{n}"
        t0, c0 = time.perf_counter(), time.process_time()
        fleet = generate_fleet(directory, leases=n, seed=7)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        total = sum(fleet.counts.values())
        rows.append({
            "name": "generate_fleet (sandbox.db + events.db)",
            "size": n,
            "value": round(wall, 2),
            "unit": "s",
            "target": round(GEN_TARGET_S_PER_10K * n / 10_000, 2) if GEN_TARGET_S_PER_10K else None,
            "notes": f"{total:,} rows ({fleet.counts['run_events']:,} run_events); cpu {cpu:.2f} s",
        })  # fmt: skip
        samples = []
        for _ in range(3):
            t0 = time.perf_counter()
            state = _read_state(read_db_state, str(fleet.sandbox_db))
            samples.append(time.perf_counter() - t0)
        rows.append({
            "name": "read_db_state (leases, terminals, sessions, snapshots)",
            "size": n,
            "value": round(statistics.median(samples), 3),
            "unit": "s",
            "target": READ_TARGET_S_PER_10K,
            "notes": f"{len(state.leases)} leases, {len(state.terminals)} terminals, "
            f"{len(state.chat_sessions)} sessions; median of 3 (first, cold caches: {samples[0]:.3f} s; "
            "later reads reuse the records of unchanged rows)",
        })  # fmt: skip
        shutil.rmtree(directory, ignore_errors=True)
    return rows


def run(sizes: list[int]) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="opcockpit-bench-"))
    try:
        return _snapshot_rows(work) + _compare_rows(work) + _generation_rows(sizes, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    for r in run([int(a) for a in sys.argv[1:]] or [1_000, 10_000, 50_000]):
        print(r)
