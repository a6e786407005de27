"""Benchmark: Explore's typical queries on a generated fleet (opcockpit.demo.fleet).

Per size n (leases; 10k leases is about 460k run_events): the issue's three typical queries, each
timed end to end through ExploreService.run, wall time and CPU time (user+sys of the process:
SQLite's and aiosqlite's threads included), with the load average beside them (the machine is
shared). Fleet generation is not timed.

- `cold`: a new ExploreService per run, as `opcockpit query` is (nothing cached but the page
  cache; the first run is a warm-up and not counted);
- `TUI`: what the Explore tab asks: one long-lived service, facets with every result, and for
  the runs query a runs cache of its own (services.runs.RunReads, primed by a first query);
- the previous main (BASELINE, default f45d5a5, the main before issue 11's speed work; ec3fb80
  had no Explore), both ways, in a `git worktree` of it on PYTHONPATH, on the same fleet files,
  in the same run, with its rows and facets compared. `BENCH_BASELINE=` (empty) skips it.

Each tree runs in a child process (`python bench/bench_explore.py --child FLEET NOW`), so neither
imports the other's code. Target (issue 11): <= 1 s per typical query at 10k leases.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # `python bench/bench_explore.py`: the tree under test first
    sys.path.insert(0, os.environ.get("BENCH_TREE") or str(ROOT))

TARGET_S_AT_10K = 1.0
# bench/run.py: the fleet is 10k leases; 50k (2.3M run_events, two trees) is many minutes
# of a shared machine and says nothing the 10k row does not.
SIZES_CAP = 10_000
# The 10k-lease fleet has about 460k run_events (46 a lease); the generator writes about a
# fifth of that, so the bench replays each event (earlier, as earlier runs of the same thread would
# be) until the fleet has this many per lease. BENCH_EXPLORE_EVENTS_PER_LEASE=0 keeps the generator's.
EVENTS_PER_LEASE = 46
BASELINE = os.environ.get("BENCH_BASELINE", "f45d5a5")
QUERIES = (
    "runs status:error since:-6h | group by provider | count",
    "run_events since:-24h | group by event_type | count",
    'commands "npm test" | count',
)


def _top_up_run_events(events_db: Path, leases: int, per_lease: int) -> int:
    """Replay run_events shifted back 30 min per copy until there are ~per_lease a lease."""
    import sqlite3

    conn = sqlite3.connect(events_db)
    try:
        have = conn.execute("SELECT count(*) FROM run_events").fetchone()[0]
        copies = max(round(leases * per_lease / have) - 1, 0) if have else 0
        for k in range(1, copies + 1):
            conn.execute(
                "INSERT INTO run_events (thread_id, run_id, event_type, data, message_id, created_at)"
                " SELECT thread_id, run_id || '-r' || ?, event_type, data, message_id,"
                " datetime(created_at, ?) FROM run_events WHERE seq <= ?",
                (k, f"-{30 * k} minutes", have),
            )
        conn.commit()
        return conn.execute("SELECT count(*) FROM run_events").fetchone()[0]
    finally:
        conn.close()


# --------------------------------------------------------------------------- one tree (child)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _timed(fn) -> tuple[float, float, object]:
    c0, t0 = _cpu(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, _cpu() - c0, out


def _child(fleet_dir: Path, now_iso: str, repeats: int) -> dict[str, dict[str, object]]:
    """Every query's cold (and, where the tree has it, TUI) timings in this tree: medians."""
    import asyncio

    from opcockpit.settings.config import CockpitConfig
    from opcockpit.wiring import build_explore

    now = datetime.fromisoformat(now_iso)
    cfg = CockpitConfig.model_validate(
        {"sources": {"sandbox_db": str(fleet_dir / "sandbox.db"), "events_db": str(fleet_dir / "events.db")}}
    )

    def service():
        ex = build_explore(cfg, ledger_path=fleet_dir / "ledger.db")
        ex.store = None  # history writes are not what is measured
        ex.clock = lambda: now
        return ex

    out: dict[str, dict[str, object]] = {}
    for text in QUERIES:
        asyncio.run(service().run(text, timeout_s=300))  # warm-up: page cache, imports, lark
        runs = [_timed(lambda t=text: asyncio.run(service().run(t, timeout_s=300))) for _ in range(repeats)]
        row: dict[str, object] = {
            "wall": statistics.median(r[0] for r in runs),
            "cpu": statistics.median(r[1] for r in runs),
            "rows": [dict(r) for r in runs[0][2].rows[:3]],  # type: ignore[attr-defined]
        }
        # The Explore tab: one long-lived service, facets with every result; for runs, with a
        # runs cache (RunReads) of its own where the tree has one, primed by the first query.
        ex = service()
        if text.startswith("runs") and hasattr(ex, "run_reads"):
            from opcockpit.services.runs import RunReads

            ex.run_reads = RunReads()
        asyncio.run(ex.run(text, facets=True, timeout_s=300))
        tui = [
            _timed(lambda ex=ex, t=text: asyncio.run(ex.run(t, facets=True, timeout_s=300)))
            for _ in range(repeats)
        ]
        row["tui_wall"] = statistics.median(r[0] for r in tui)
        row["tui_cpu"] = statistics.median(r[1] for r in tui)
        facets = tui[0][2].facets  # type: ignore[attr-defined]
        row["facets"] = {k: [list(x) for x in v[:2]] for k, v in facets.items()}
        out[text] = row
    import opcockpit

    out["_tree"] = {"opcockpit": str(Path(opcockpit.__file__).resolve().parent)}
    return out


def _run_child(tree: Path, fleet_dir: Path, now: datetime, repeats: int) -> dict[str, dict[str, object]]:
    env = dict(os.environ, PYTHONPATH=str(tree), BENCH_TREE=str(tree), PYTHONDONTWRITEBYTECODE="1")
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(fleet_dir),
        now.isoformat(),
        str(repeats),
    ]
    proc = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench child in {tree} failed: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    got = Path(str(out["_tree"]["opcockpit"]))
    if not got.is_relative_to(tree.resolve()):
        raise RuntimeError(f"bench child for {tree} imported opcockpit from {got}")
    return out


# --------------------------------------------------------------------------- the bench


def run(sizes: list[int]) -> list[dict]:
    from opcockpit.demo.fleet import generate_fleet

    results: list[dict] = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            fleet = generate_fleet(Path(tmp) / "fleet", leases=n, seed=7)
            per_lease = int(os.environ.get("BENCH_EXPLORE_EVENTS_PER_LEASE", EVENTS_PER_LEASE))
            n_events = _top_up_run_events(fleet.events_db, n, per_lease) if per_lease else None
            now = fleet.generated_at.astimezone(UTC)
            repeats = 3 if n <= 20_000 else 1
            load0 = os.getloadavg()
            prev = None
            if BASELINE:
                from bench.bench_steady import worktree

                with worktree(BASELINE) as tree:
                    prev = _run_child(tree, fleet.directory, now, repeats)
            head = _run_child(ROOT, fleet.directory, now, repeats)
            load1 = os.getloadavg()
            for text in QUERIES:
                h = head[text]
                notes = [f"median of {repeats} cold runs; CPU {h['cpu']:.3f} s"]
                cache = " and its runs cache" if text.startswith("runs") else ""
                notes.append(f"TUI (facets{cache}) {h['tui_wall']:.3f} s (CPU {h['tui_cpu']:.3f} s)")
                if prev is not None:
                    p = prev[text]
                    same = p["rows"] == h["rows"] and p["facets"] == h["facets"]
                    notes.append(
                        f"previous main {BASELINE}: {p['wall']:.3f} s (CPU {p['cpu']:.3f} s), TUI (facets)"
                        f" {p['tui_wall']:.3f} s (CPU {p['tui_cpu']:.3f} s), "
                        + ("same rows and facets" if same else "ROWS OR FACETS DIFFER")
                    )
                notes.append(f"{n_events or fleet.counts.get('run_events', 0)} run_events")
                notes.append(f"load {load0[0]:.1f} -> {load1[0]:.1f}")
                results.append(
                    {
                        "name": f"explore: {text}",
                        "size": n,
                        "value": round(float(h["wall"]), 3),  # type: ignore[arg-type]
                        "unit": "s",
                        "target": TARGET_S_AT_10K if n == 10_000 else None,
                        "notes": "; ".join(notes),
                    }
                )
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        with contextlib.redirect_stdout(sys.stderr):  # only the JSON line on stdout
            data = _child(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        print(json.dumps(data, default=str))
        sys.exit(0)
    sizes = [int(a) for a in sys.argv[1:]] or [1_000, 10_000]
    for r in run(sizes):
        ok = "-" if r["target"] is None else "ok" if r["value"] <= r["target"] else "OVER"
        print(f"{r['name']}: n={r['size']:>6} {r['value']:.3f} {r['unit']} ({r['notes']}) {ok}")
