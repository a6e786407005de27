"""Benchmark: Explore's typical queries on a generated fleet (opcockpit.demo.fleet).

Per size n (leases; 10k leases is about 460k run_events): the issue's three typical queries, each
timed end to end through ExploreService.run (filters, window and leading count pushed down into
SQLite where exact) and, for comparison, the plain Python evaluation over every row of the dataset
(what Explore did before the push-down). Fleet generation is not timed.

Target (issue 11): <= 1 s per typical query at 10k leases.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

if __package__ in (None, ""):  # `python bench/bench_explore.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opcockpit.demo.fleet import generate_fleet
from opcockpit.domain.query import run_plan
from opcockpit.settings.config import CockpitConfig
from opcockpit.wiring import build_explore

TARGET_S_AT_10K = 1.0
# The 10k-lease fleet has about 460k run_events (46 a lease); the generator writes about a
# fifth of that, so the bench replays each event (earlier, as earlier runs of the same thread would
# be) until the fleet has this many per lease. BENCH_EXPLORE_EVENTS_PER_LEASE=0 keeps the generator's.
EVENTS_PER_LEASE = 46
QUERIES = (
    "runs status:error since:-6h | group by provider | count",
    "run_events since:-24h | group by event_type | count",
    'commands "npm test" | count',
)


def _python_path(explore, text: str) -> float:
    """The evaluator over every row of the dataset, nothing pushed into SQLite."""
    t0 = time.perf_counter()
    plan = explore.plan(text)
    if plan.dataset.name == "runs":
        rows = asyncio.run(explore._runs(plan))
    else:
        rows = explore.rows.rows(plan.dataset.name, since=plan.since, until=plan.until)
    run_plan(plan, rows)
    return time.perf_counter() - t0


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


def _service(explore, text: str) -> float:
    t0 = time.perf_counter()
    asyncio.run(explore.run(text, timeout_s=120))
    return time.perf_counter() - t0


def run(sizes: list[int]) -> list[dict]:
    results: list[dict] = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            fleet = generate_fleet(Path(tmp) / "fleet", leases=n, seed=7)
            per_lease = int(os.environ.get("BENCH_EXPLORE_EVENTS_PER_LEASE", EVENTS_PER_LEASE))
            n_events = _top_up_run_events(fleet.events_db, n, per_lease) if per_lease else None
            cfg = CockpitConfig.model_validate(
                {"sources": {"sandbox_db": str(fleet.sandbox_db), "events_db": str(fleet.events_db)}}
            )
            explore = build_explore(cfg, ledger_path=Path(tmp) / "ledger.db")
            explore.store = None  # history writes are not what is measured
            now = fleet.generated_at.astimezone(UTC)
            explore.clock = lambda now=now: now
            repeats = 3 if n <= 20_000 else 1
            for text in QUERIES:
                _service(explore, text)  # warm-up: page cache, imports
                after = sorted(_service(explore, text) for _ in range(repeats))
                before = sorted(_python_path(explore, text) for _ in range(repeats))
                results.append(
                    {
                        "name": f"explore: {text}",
                        "size": n,
                        "value": round(statistics.median(after), 3),
                        "unit": "s",
                        "target": TARGET_S_AT_10K if n == 10_000 else None,
                        "notes": (
                            f"median of {repeats}; Python-only evaluation "
                            f"{statistics.median(before):.3f} s; "
                            f"{n_events or fleet.counts.get('run_events', 0)} run_events"
                        ),
                    }
                )
    return results


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or [1_000, 10_000]
    for r in run(sizes):
        ok = "-" if r["target"] is None else "ok" if r["value"] <= r["target"] else "OVER"
        print(f"{r['name']}: n={r['size']:>6} {r['value']:.3f} {r['unit']} ({r['notes']}) {ok}")
