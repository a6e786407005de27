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
from itertools import compress
from operator import is_not

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

    __slots__ = ("cands", "hits", "leak", "row", "stale_at")

    def __init__(self, row: GroundTruthRow, leaked: bool, cfg: AlertsConfig, on: frozenset[str]) -> None:
        self.row = row
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
        # lease id -> its verdicts, or the row itself when it has none (most rows: a _Judged per
        # row was ~0.8 MB at 10k leases, tracemalloc; issue 10, RSS)
        self._by: dict[str, _Judged | GroundTruthRow] = {}
        self._leaked: set[str] = set()
        self._flagged: dict[str, _Judged] = {}  # rows with a candidate, a leak or pressure hits
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
        moved = leaked ^ self._leaked
        self._leaked = leaked
        self.judged = 0
        if rows is self._rows and not moved:
            return True
        if not self._in_place(rows, moved, leaked, cfg, on) and not self._walk(rows, moved, leaked, cfg, on):
            return False
        self._rows = rows
        return True

    def _in_place(
        self, rows: tuple[GroundTruthRow, ...], moved: set[str], leaked: set[str], cfg: AlertsConfig,
        on: frozenset[str],
    ) -> bool:  # fmt: skip
        """The common step: the last round's leases at the same places, a few rows replaced (the
        incremental reconciler keeps order and unchanged rows), found at C speed. False, having
        judged nothing, when a lease came, went or moved."""
        prev = self._rows
        if prev is None or len(prev) != len(rows):
            return False
        places = list(compress(range(len(rows)), map(is_not, rows, prev)))
        if any(rows[i].lease_id != prev[i].lease_id for i in places):
            return False
        judged = set()
        for i in places:
            judged.add(rows[i].lease_id)
            self._judge(rows[i], leaked, cfg, on)
        for lid in moved - judged:
            entry = self._by.get(lid)
            if entry is not None:
                self._judge(entry.row if entry.__class__ is _Judged else entry, leaked, cfg, on)  # type: ignore[arg-type]
        return True

    def _walk(
        self, rows: tuple[GroundTruthRow, ...], moved: set[str], leaked: set[str], cfg: AlertsConfig,
        on: frozenset[str],
    ) -> bool:  # fmt: skip
        """Every row by lease id: the changed ones judged, leases gone dropped; False at a lease
        id seen twice."""
        by = self._by
        seen: set[str] = set()
        for r in rows:
            lid = r.lease_id
            if lid in seen:
                return False
            seen.add(lid)
            entry = by.get(lid)
            if lid not in moved and (entry is r or (entry.__class__ is _Judged and entry.row is r)):  # type: ignore[union-attr]
                continue
            self._judge(r, leaked, cfg, on)
        if len(seen) != len(by):  # leases gone since last round
            for lid in [k for k in by if k not in seen]:
                entry = by.pop(lid)
                self._leak_dirty = self._leak_dirty or (entry.__class__ is _Judged and entry.leak)  # type: ignore[union-attr]
                self._flagged.pop(lid, None)
        return True

    def _judge(self, r: GroundTruthRow, leaked: set[str], cfg: AlertsConfig, on: frozenset[str]) -> None:
        lid = r.lease_id
        old = self._by.get(lid)
        j = _Judged(r, lid in leaked, cfg, on)
        self.judged += 1
        self._leak_dirty = self._leak_dirty or (old.__class__ is _Judged and old.leak) or j.leak  # type: ignore[union-attr]
        if j.cands or j.leak or j.hits is not None:
            self._by[lid] = self._flagged[lid] = j
        else:
            self._by[lid] = r
            self._flagged.pop(lid, None)
