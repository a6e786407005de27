"""Benchmark: the cost query-backed alert rules add to an alert round, and the Explore chart.

Per size n (leases of a generated fleet; fleet generation is not timed), one AlertEngine on a real
ledger file evaluates the same ground truth:
- `previous main (no hook)`: the engine as on ec3fb80 (no query rules, no overrides);
- `no query rules`: the hook with no query rule (the ledger's overrides read at most every 10 s);
- `3 query rules, due`: the issue's three typical queries as rules, all due (the first round, or
  once per `interval`): the bounded cost, at most the sum of their timeouts;
- `3 query rules, cached`: the rounds in between (each rule's last answer stands): what almost
  every round pays.
And the time to draw the chart of a `| count by time 1m` result over the fleet's run_events.

Target (issue 11): the in-between round costs the same as a round without query rules (+ <= 5 ms).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/bench_query_alerts.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.adapters.ledger.rule_overrides import RuleOverrideStore
from opcockpit.demo.fleet import generate_fleet
from opcockpit.domain.alerts_config import AlertsConfig
from opcockpit.services.query_alerts import OverrideSource, QueryRules
from opcockpit.settings.config import CockpitConfig
from opcockpit.tui.synthetic import make_ground_truth
from opcockpit.tui.tabs.explore_views import render_mode
from opcockpit.wiring import build_alert_engine, build_explore

SIZES_CAP = 10_000
RULES = {
    "errors-by-provider": "runs status:error since:-6h | group by provider | count",
    "event-types": "run_events since:-24h | group by event_type | count",
    "npm-test": 'commands "npm test" | count',
}


def _const(value: Any) -> Any:
    return value


def _round(engine: Any, rules: Any, gt: Any, now: Any, *, due: bool) -> float:
    if due:
        for slot in rules._slots.values():
            slot.next_due = 0.0  # every rule due, as on its interval
    t0 = time.perf_counter()
    engine.evaluate(gt, now=now)
    return time.perf_counter() - t0


def run(sizes: list[int]) -> list[dict]:
    out: list[dict] = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            fleet = generate_fleet(Path(tmp) / "fleet", leases=n, seed=7)
            now = fleet.generated_at.astimezone(UTC)
            settings = CockpitConfig.model_validate(
                {"sources": {"sandbox_db": str(fleet.sandbox_db), "events_db": str(fleet.events_db)}}
            )
            ledger = Path(tmp) / "ledger.db"
            gt = make_ground_truth(min(n, 2000))
            rows: dict[str, list[float]] = {}
            for label, rules_cfg in (
                ("no query rules", {}),
                ("3 query rules, due", {k: {"query": q, "for": 0, "timeout": 30} for k, q in RULES.items()}),
            ):
                cfg = AlertsConfig.model_validate({"query": rules_cfg})
                store = AlertStore.open(ledger)
                engine = build_alert_engine(store, cfg, partial(_const, now))
                explore = partial(build_explore, settings, ledger_path=ledger, clock=partial(_const, now))
                qr = QueryRules(cfg, explore, OverrideSource(partial(RuleOverrideStore.open, ledger)))
                if not rules_cfg:  # the previous main's engine: no hook at all
                    _round(engine, qr, gt, now, due=False)
                    rows["previous main (no hook)"] = [_round(engine, qr, gt, now, due=False)
                                                       for _ in range(5)]  # fmt: skip
                engine.query_rules = qr
                _round(engine, qr, gt, now, due=True)  # warm-up: imports, page cache, ledger tables
                rows[label] = [_round(engine, qr, gt, now, due=bool(rules_cfg)) for _ in range(3)]
                if rules_cfg:
                    rows["3 query rules, cached"] = [_round(engine, qr, gt, now, due=False) for _ in range(5)]
                store.close()
            base = statistics.median(rows["previous main (no hook)"])
            for label, times in rows.items():
                med = statistics.median(times)
                out.append({
                    "name": f"alert round: {label}", "size": n, "value": round(med * 1000, 1), "unit": "ms",
                    "target": round((base + 0.005) * 1000, 1) if label.endswith("cached") else None,
                    "notes": f"median of {len(times)}; previous main (ec3fb80, no hook) {base * 1000:.1f} ms",
                })  # fmt: skip
            svc = build_explore(settings, ledger_path=ledger, clock=partial(_const, now))
            svc.store = None
            text = "run_events | count by time 1m"
            result = asyncio.run(svc.run(text, timeout_s=120))
            t0 = time.perf_counter()
            for _ in range(5):
                render_mode("chart", result, text, width=78, ascii=False)
            draw = (time.perf_counter() - t0) / 5
            out.append({
                "name": "explore chart: count by time 1m", "size": n, "value": round(draw * 1000, 1),
                "unit": "ms", "target": 50.0,
                "notes": f"{len(result.rows)} buckets drawn in 78 columns; new (no chart before)",
            })  # fmt: skip
    return out


if __name__ == "__main__":
    for r in run([int(a) for a in sys.argv[1:]] or [1_000]):
        print(f"{r['name']}: n={r['size']} {r['value']} {r['unit']} (target {r['target']}; {r['notes']})")
