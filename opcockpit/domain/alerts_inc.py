"""Alert rules judged per changed lease (issue 10): `IncrementalRules.evaluate(inp, cfg)` returns
what `evaluate_rules(inp, cfg)` returns, at a cost that follows the change, not the fleet.

The per-lease rules (lease_diverged, lease_recovering, the row half of leak, resource_pressure)
are the bulk of a round at 10k leases. The incremental reconciler keeps an unchanged lease's row
as the same object, so a row seen last round (`is`) with the same leak claim on it gives the same
candidates: only new or changed rows are judged again. resource_pressure also depends on `now`
(the snapshot's age): a row's threshold hits are kept, and only the few rows with hits are judged
at each `now`. The rules over providers, orphans, runs and events are cheap and run whole. A
change of config, or rows with a lease id twice (the full path has the rules for that), start
afresh. tests/test_alerts_incremental.py holds it equal to the full evaluation on random steps.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from opcockpit.domain.alerts import (
    RULES,
    AlertCandidate,
    AlertInputs,
    AlertsConfig,
    diverged_row,
    evaluate_rules,
    is_leak_row,
    leak_candidates,
    leaked_leases,
    pressure_hits,
    pressure_row,
    recovering_row,
)
from opcockpit.domain.models import GroundTruthRow

__all__ = ["IncrementalRules"]

# Judged here per row; every other rule runs whole each round.
_ROW_RULES = ("lease_diverged", "lease_recovering", "leak", "resource_pressure")


class _Judged:
    """One row's verdicts: its time-free candidates, whether it is a leak row, its pressure hits."""

    __slots__ = ("cands", "hits", "leak", "row", "stale_at", "stamp")

    def __init__(self, row: GroundTruthRow, leaked: bool, cfg: AlertsConfig, on: frozenset[str]) -> None:
        self.row, self.stamp = row, 0
        cands = []
        if "lease_diverged" in on and (c := diverged_row(row, cfg, leaked)):
            cands.append(c)
        if "lease_recovering" in on and (c := recovering_row(row, cfg)):
            cands.append(c)
        self.cands: tuple[AlertCandidate, ...] = tuple(cands)
        self.leak = "leak" in on and is_leak_row(row, cfg)
        self.hits = pressure_hits(row, cfg) if "resource_pressure" in on else None
        # pressure_row is None once the snapshot is older than resource_max_age_s: after this
        # time (never, without a snapshot time) its hits say nothing, at no later `now` either.
        at = row.resources.collected_at if self.hits is not None and row.resources is not None else None
        self.stale_at = at + timedelta(seconds=cfg.resource_max_age_s) if at is not None else None


class IncrementalRules:
    """Keeps last round's per-row verdicts; `evaluate()` == `evaluate_rules()` of the same inputs."""

    def __init__(self) -> None:
        self.judged = 0  # rows judged by the last round (tests, diagnostics)
        self.reset()

    def reset(self) -> None:
        self._cfg: AlertsConfig | None = None
        self._rows: tuple[GroundTruthRow, ...] | None = None
        self._by: dict[str, _Judged] = {}
        self._leaked: set[str] = set()
        self._flagged: dict[str, _Judged] = {}  # rows with a candidate, a leak or pressure hits
        self._round = 0  # stamps the rows seen in a round: a lease id twice, leases gone
        self._leak: list[AlertCandidate] = []  # the leak rule's candidates, kept while its inputs are
        self._leak_dirty = True  # ... the same leak rows and the same orphans object
        self._orphans: object = None

    def evaluate(self, inp: AlertInputs, cfg: AlertsConfig) -> list[AlertCandidate]:
        if not cfg.enabled:
            return []
        if cfg is not self._cfg and cfg != self._cfg:
            self.reset()
            self._cfg = cfg
        on = frozenset(name for name in _ROW_RULES if name not in cfg.disabled_rules)
        gt = inp.ground_truth
        leaked = leaked_leases(gt, cfg) if "lease_diverged" in on else set()
        if not self._update(gt.rows, leaked, cfg, on):
            self.reset()
            self.judged = len(gt.rows)
            return evaluate_rules(inp, cfg)
        by_key: dict[str, AlertCandidate] = {}
        now = inp.now
        flagged = list(self._flagged.values())
        rows: dict[str, list[AlertCandidate]] = {
            "lease_diverged": [],
            "lease_recovering": [],
            "resource_pressure": [],
        }
        for j in flagged:
            for c in j.cands:
                rows[c.rule].append(c)
            if (
                j.hits is not None
                and j.stale_at is not None
                and now <= j.stale_at
                and (c := pressure_row(j.row, cfg, now, j.hits))
            ):
                rows["resource_pressure"].append(c)
        if "leak" in on:
            if self._leak_dirty or gt.orphans is not self._orphans:
                # One row per lease, and leak_candidates sorts by lease: row order does not matter.
                self._leak = leak_candidates([j.row for j in flagged if j.leak], gt, cfg)
                self._leak_dirty, self._orphans = False, gt.orphans
            rows["leak"] = self._leak
        for name, rule in RULES.items():
            if name in cfg.disabled_rules:
                continue
            override = cfg.severity.get(name)
            found = rows.get(name) if name in _ROW_RULES else rule(inp, cfg)
            for c in found or ():
                if override is not None and c.severity != override:
                    c = replace(c, severity=override)
                by_key.setdefault(c.key, c)
        return [by_key[k] for k in sorted(by_key)]

    def stale_at(self, now: datetime) -> datetime | None:
        """The first moment from `now` on at which a row judged here changes its verdict with
        time alone: a resource snapshot with threshold hits growing too old to say anything.
        `now` itself when the last round took the full path (nothing kept to look at)."""
        if self._rows is None:
            return now
        ends = (j.stale_at for j in self._flagged.values() if j.stale_at is not None and j.stale_at >= now)
        return min(ends, default=None)

    def _update(
        self, rows: tuple[GroundTruthRow, ...], leaked: set[str], cfg: AlertsConfig, on: frozenset[str]
    ) -> bool:
        """Judge the rows that are new, changed or whose leak claim moved; False: a lease id twice."""
        by, flagged = self._by, self._flagged
        moved = leaked ^ self._leaked
        self._leaked = leaked
        self.judged = 0
        if rows is self._rows and not moved:
            return True
        self._round += 1
        stamp = self._round
        before, known = len(by), 0
        for r in rows:
            lid = r.lease_id
            j = by.get(lid)
            if j is not None:
                if j.stamp == stamp:
                    return False
                known += 1
                if j.row is r and lid not in moved:
                    j.stamp = stamp
                    continue
            was_leak = j is not None and j.leak
            j = _Judged(r, lid in leaked, cfg, on)
            j.stamp = stamp
            self.judged += 1
            self._leak_dirty = self._leak_dirty or was_leak or j.leak
            by[lid] = j
            if j.cands or j.leak or j.hits is not None:
                flagged[lid] = j
            else:
                flagged.pop(lid, None)
        if known != before:  # leases gone since last round
            for lid in [k for k, j in by.items() if j.stamp != stamp]:
                self._leak_dirty = self._leak_dirty or by.pop(lid).leak
                flagged.pop(lid, None)
        self._rows = rows
        return True
