"""Benchmark: one alert round's own work at n leases, full (previous main) beside incremental (HEAD).

Issue 10: a live cockpit's alert round used to judge every rule over every row and re-read
events.db's runs whenever the file changed. Per size n:

- rules: bench_reconcile's synthetic fleet reconciled once; then a round in which 1 % of the rows
  changed (new row objects, the rest the same objects, as the incremental reconciler gives them):
  `evaluate_rules` (every round on ec3fb80 / e4b892a) vs `IncrementalRules.evaluate` (HEAD);
- runs: an events.db with n runs (one per thread, 6 events each); then 20 events appended to 10
  runs and LEON's retention deleting a thread's older run: `EventsDbReader.runs` (a full re-read,
  what previous main does on any change) vs `RunReads.read` (the seq watermark).

Both sides are timed in this process on the same inputs (median of repeats).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/bench_alert_round.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_reconcile import NOW, build_inputs
from opcockpit.adapters.leon.events_db import EventsDbReader
from opcockpit.adapters.leon.schema import create_events_db
from opcockpit.domain.alerts import AlertInputs, AlertsConfig, evaluate_rules
from opcockpit.domain.alerts_inc import IncrementalRules
from opcockpit.domain.models import Convergence, GroundTruth
from opcockpit.domain.reconcile import reconcile
from opcockpit.services.runs import RunReads, _signature


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return round(statistics.median(out) * 1000, 2)


def _rules(n: int) -> list[dict]:
    db, listings = build_inputs(n)
    gt = reconcile(db, listings, NOW)
    cfg = AlertsConfig()
    rng = random.Random(3)
    rows = list(gt.rows)
    inc = IncrementalRules()
    inc.evaluate(AlertInputs(gt, NOW), cfg)
    rounds: list[GroundTruth] = []
    for _ in range(9):  # each round: 1 % of the rows changed
        for i in rng.sample(range(len(rows)), max(1, n // 100)):
            conv = (
                Convergence.DIVERGED
                if rows[i].convergence is not Convergence.DIVERGED
                else Convergence.CONVERGED
            )
            rows[i] = replace(rows[i], convergence=conv, reason="bench")
        rounds.append(replace(gt, rows=tuple(rows)))
    full = _median_ms(lambda: [evaluate_rules(AlertInputs(g, NOW), cfg) for g in rounds], 3) / len(rounds)
    it = iter(rounds * 3)
    incr = _median_ms(lambda: inc.evaluate(AlertInputs(next(it), NOW), cfg), len(rounds) * 3)
    note = "1 % of rows changed per round; median"
    return [
        {"name": "alert rules per round, full (previous main)", "size": n, "value": round(full, 2),
         "unit": "ms", "target": None, "notes": note},
        {"name": "alert rules per round, incremental (HEAD)", "size": n, "value": incr, "unit": "ms",
         "target": None, "notes": note},
    ]  # fmt: skip


def _fill(conn: sqlite3.Connection, n: int) -> None:
    rows = []
    for t in range(n):
        for k, ev in enumerate(("user_message", "run_start", "text", "tool_call", "tool_result", "run_done")):
            at = (NOW - timedelta(minutes=t % 600, seconds=-k)).strftime("%Y-%m-%d %H:%M:%S")
            rows.append((f"thread-{t}", f"run-{t}-0", ev, "{}", at))
    conn.executemany(
        "INSERT INTO run_events (thread_id, run_id, event_type, data, created_at) VALUES (?,?,?,?,?)", rows
    )
    conn.commit()


def _append(conn: sqlite3.Connection, rnd: int) -> None:
    rows = [(f"thread-{t}", f"run-{t}-{rnd}", "text", "{}") for t in range(10) for _ in range(2)]
    conn.executemany("INSERT INTO run_events (thread_id, run_id, event_type, data) VALUES (?,?,?,?)", rows)
    conn.execute(  # LEON's cleanup_old_runs(thread, keep_latest=1)
        "DELETE FROM run_events WHERE thread_id='thread-0' AND run_id != ?", (f"run-0-{rnd}",)
    )
    conn.commit()


async def _runs_round(path: str, reads: RunReads | None) -> int:
    since = NOW - timedelta(days=1)
    async with EventsDbReader(path) as reader:
        if reads is None:
            return len(await reader.runs(since=since))
        return len(await reads.read(reader, path, _signature(path), NOW, since))


def _runs(n: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-runs-") as tmp:
        path = str(Path(tmp) / "events.db")
        conn = create_events_db(path)
        _fill(conn, n)
        reads = RunReads()
        asyncio.run(_runs_round(path, reads))
        full, incr = [], []
        for rnd in range(1, 8):
            _append(conn, rnd)
            t0 = time.perf_counter()
            asyncio.run(_runs_round(path, None))
            full.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            asyncio.run(_runs_round(path, reads))
            incr.append(time.perf_counter() - t0)
        conn.close()
    note = f"20 events appended to 10 runs + a retention delete per round; {reads.reads} full read(s)"
    return [
        {"name": "events.db runs per changed round, full re-read (previous main)", "size": n,
         "value": round(statistics.median(full) * 1000, 2), "unit": "ms", "target": None, "notes": note},
        {"name": "events.db runs per changed round, seq watermark (HEAD)", "size": n,
         "value": round(statistics.median(incr) * 1000, 2), "unit": "ms", "target": None, "notes": note},
    ]  # fmt: skip


def run(sizes: list[int]) -> list[dict]:
    out: list[dict] = []
    for n in sizes:
        out += _rules(n) + _runs(n)
    return out


if __name__ == "__main__":
    for r in run([int(a) for a in sys.argv[1:]] or [10_000]):
        print(f"{r['name']:66} n={r['size']:>6}  {r['value']:8.2f} {r['unit']}  ({r['notes']})")
