"""Alert rules: pure functions of (ground truth, run health, recent events, now, thresholds).

Each rule returns `AlertCandidate`s: a condition that holds *now*, with a stable dedup `key`
("<rule>:<subject>"), severity, a one-line summary, the evidence (ids of the rows that triggered
it), and a hold time. A condition becomes a firing alert only after it has held for `hold_s`
(like Prometheus' `for:`); GroundTruth is a point in time, so the first-seen time of a condition
is tracked by the store (`alert_store.AlertEngine`), not here. Rules never read a clock or do I/O.

`scope` says which input an alert depends on. When that input is unknown this round (a provider
listing failed, events.db unreadable), the engine keeps the alert as it is instead of resolving
it: "we could not look" is not "it is fine".

Thresholds live in `AlertsConfig` (the `[alerts]` TOML table, docs/alerts.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from opcockpit.domain.alerts_config import (
    DAY_S,
    RULE_NAMES,
    SCOPE_EVENTS_DB,
    SCOPE_LEASE_EVENTS,
    SCOPE_LEDGER_EVENTS,
    SEVERITY_RANK,
    STRICT,
    YEAR_S,
    AlertsConfig,
    CommandConfig,
    Severity,
    WebhookConfig,
)
from opcockpit.domain.events import Event, LeaseConvergenceChanged
from opcockpit.domain.models import (
    Convergence,
    GroundTruth,
    GroundTruthRow,
    LeaseEventRecord,
    OrphanRow,
    ProviderEventRecord,
    ProviderStatus,
)
from opcockpit.domain.text import one_line
from opcockpit.domain.timeutil import fmt_age

if TYPE_CHECKING:  # runs pulls in the events.db reader (aiosqlite): keep config imports light
    from opcockpit.domain.runs import RunHealth

__all__ = [
    "DAY_S",
    "RULES",
    "SCOPE_EVENTS_DB",
    "SCOPE_LEASE_EVENTS",
    "SCOPE_LEDGER_EVENTS",
    "SEVERITY_RANK",
    "STRICT",
    "YEAR_S",
    "AlertCandidate",
    "AlertInputs",
    "AlertsConfig",
    "CommandConfig",
    "Evidence",
    "Severity",
    "WebhookConfig",
    "evaluate_rules",
    "fmt_duration",
    "unknown_scopes",
]


# --------------------------------------------------------------------------- candidates


@dataclass(frozen=True, slots=True)
class Evidence:
    """A row that triggered an alert: kind is lease | orphan | run | thread | provider |
    lease_event | provider_event | resource_snapshot; id is that row's key (orphans:
    "<provider>/<instance_id>")."""

    kind: str
    id: str
    note: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id, "note": self.note}


@dataclass(frozen=True, slots=True)
class AlertCandidate:
    rule: str
    key: str  # stable dedup key "<rule>:<subject>"
    severity: Severity
    summary: str
    evidence: tuple[Evidence, ...]
    threshold: str  # the rule's threshold, in words
    hold_s: float = 0.0  # fire once the condition held this long
    since: datetime | None = None  # when the data says the condition started (None: unknown)
    scope: str | None = None  # input this depends on (provider name, @events_db, @lease_events)
    details: Mapping[str, Any] = field(default_factory=dict)  # JSON-able numbers
    # Keys of `details` that grow with the clock alone (an idle time, an age): a candidate that
    # differs from the stored one only there is the same alert, rewritten when anything else
    # changes (its summary's duration text moves with fmt_age's resolution), not every round
    # (issue 10, idle tick: hundreds of stuck runs were rewritten, re-read and re-drawn each 10 s).
    clock_details: tuple[str, ...] = ()

    def same_but_clock(self, other: AlertCandidate) -> bool:
        """Equal to `other` but for the `clock_details` values (which both name alike)."""
        skip = self.clock_details
        if not skip or skip != other.clock_details or _BUT_DETAILS(self) != _BUT_DETAILS(other):
            return False
        mine, theirs = self.details, other.details
        return mine.keys() == theirs.keys() and all(mine[k] == theirs[k] for k in mine if k not in skip)


# Every field of a candidate but its details (compared apart by `same_but_clock`).
_BUT_DETAILS = attrgetter(
    *(f.name for f in fields(AlertCandidate) if f.name not in ("details", "clock_details"))
)


@dataclass(frozen=True, slots=True)
class AlertInputs:
    ground_truth: GroundTruth
    now: datetime
    run_health: RunHealth | None = None  # None or .error: stuck-run alerts are left as they are
    lease_events: Sequence[LeaseEventRecord] | None = None  # None: not read this round
    provider_events: Sequence[ProviderEventRecord] | None = None
    # The cockpit's own events (lease.convergence_changed at least, `flapping_window_s` back);
    # None: not read this round (the flapping rule then leaves its alerts as they are).
    events: Sequence[Event] | None = None


Rule = Callable[[AlertInputs, AlertsConfig], list[AlertCandidate]]


def fmt_duration(seconds: float | None) -> str:
    """A duration in the one age format (domain.timeutil.fmt_age), never negative; '?' unknown."""
    return fmt_age(None if seconds is None else max(0.0, seconds), unknown="?")


def _short(text: str | None, n: int = 120) -> str:
    return one_line(text or "", n)  # the one error clip


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else (now - then).total_seconds()


# --------------------------------------------------------------------------- rules


def rule_stuck_run(inp: AlertInputs, cfg: AlertsConfig) -> list[AlertCandidate]:
    rh = inp.run_health
    if rh is None or rh.error is not None:
        return []
    out = []
    for s in rh.stuck:
        out.append(
            AlertCandidate(
                rule="stuck_run",
                key=f"stuck_run:{s.run_id}",
                severity=Severity.WARNING,
                summary=f"run {s.run_id[:8]} on thread {s.thread_id}: no event for {fmt_duration(s.idle_s)}"
                f" ({s.event_count} events)",
                evidence=(Evidence("run", s.run_id), Evidence("thread", s.thread_id)),
                threshold=f"no event for > {fmt_duration(rh.stuck_after_s)}",
                scope=SCOPE_EVENTS_DB,
                # stuck since the silence crossed the threshold
                since=(s.last_event_at + timedelta(seconds=rh.stuck_after_s)) if s.last_event_at else None,
                details={
                    "idle_s": round(s.idle_s, 1),
                    "event_count": s.event_count,
                    "started_at": s.started_at.isoformat() if s.started_at else None,
                },
                clock_details=("idle_s",),
            )
        )
    return out


def _is_leak_row(r: GroundTruthRow, cfg: AlertsConfig) -> bool:
    return (
        r.provider_state in cfg.leak_states
        and r.convergence is not Convergence.STALE
        and (r.desired_state == "destroyed" or r.observed_state == "detached")
    )


def _leaking_orphans(gt: GroundTruth, cfg: AlertsConfig) -> list[OrphanRow]:
    """Orphans alive at the provider whose labels name a lease (existing, moved on, or gone)."""
    return [
        o
        for o in gt.orphans
        if o.confirmed is not False
        and o.provider_state in cfg.leak_states
        and o.claimed_lease_id
        and o.claim in ("lease_missing", "lease_exists", "lease_points_elsewhere")
    ]


def rule_lease_diverged(inp: AlertInputs, cfg: AlertsConfig) -> list[AlertCandidate]:
    # A destroyed lease that reconcile marks diverged because its labelled instance still lives is
    # reported by the leak rule (through the orphan), not twice.
    leaked = leaked_leases(inp.ground_truth, cfg)
    return [c for r in inp.ground_truth.rows if (c := diverged_row(r, cfg, r.lease_id in leaked))]


def leaked_leases(gt: GroundTruth, cfg: AlertsConfig) -> set[str]:
    """Leases a leaking orphan claims (their divergence is the leak rule's)."""
    return {o.claimed_lease_id for o in _leaking_orphans(gt, cfg)}


def diverged_row(r: GroundTruthRow, cfg: AlertsConfig, leaked: bool) -> AlertCandidate | None:
    """lease_diverged for one row; `leaked`: a leaking orphan claims its lease."""
    if r.convergence is not Convergence.DIVERGED or _is_leak_row(r, cfg):
        return None  # leaks have their own (louder) rule
    if r.desired_state == "destroyed" and leaked:
        return None
    return AlertCandidate(
        rule="lease_diverged",
        key=f"lease_diverged:{r.lease_id}",
        severity=Severity.WARNING,
        summary=f"{r.provider} lease {r.lease_id} diverged: {_short(r.reason)}",
        evidence=(
            Evidence("lease", r.lease_id, r.reason),
            *((Evidence("thread", r.thread_id),) if r.thread_id else ()),
        ),
        threshold=f"diverged for > {fmt_duration(cfg.diverged_for_s)}",
        hold_s=cfg.diverged_for_s,
        scope=r.provider,
        details={
            "desired": r.desired_state,
            "observed": r.observed_state,
            "provider_state": r.provider_state,
        },
    )


def rule_lease_recovering(inp: AlertInputs, cfg: AlertsConfig) -> list[AlertCandidate]:
    return [c for r in inp.ground_truth.rows if (c := recovering_row(r, cfg))]


def recovering_row(r: GroundTruthRow, cfg: AlertsConfig) -> AlertCandidate | None:
    if r.lease_status != "recovering":
        return None
    return AlertCandidate(
        rule="lease_recovering",
        key=f"lease_recovering:{r.lease_id}",
        severity=Severity.WARNING,
        summary=f"{r.provider} lease {r.lease_id} stuck in recovering"
        " (instance creation failed or hung?)" + (f": {_short(r.last_error, 80)}" if r.last_error else ""),
        evidence=(
            Evidence("lease", r.lease_id, r.last_error or ""),
            *((Evidence("thread", r.thread_id),) if r.thread_id else ()),
        ),
        threshold=f"recovering for > {fmt_duration(cfg.recovering_for_s)}",
        hold_s=cfg.recovering_for_s,
        since=r.updated_at,  # LEON persists `recovering` with the lease row's updated_at
        details={"last_error": r.last_error},
    )


def rule_provider_unreachable(inp: AlertInputs, cfg: AlertsConfig) -> list[AlertCandidate]:
    out = []
    for p in inp.ground_truth.providers:
        if p.status not in (ProviderStatus.ERROR, ProviderStatus.STALE):
            continue
        if p.kind == "unknown":
            what = "not configured (its leases cannot be checked)"
            sev = Severity.WARNING
        elif p.status is ProviderStatus.STALE:
            what = f"unreachable; showing a listing {fmt_duration(p.age_s)} old"
            sev = Severity.CRITICAL
        else:
            what = "unreachable; never listed"
            sev = Severity.CRITICAL
        out.append(
            AlertCandidate(
                rule="provider_unreachable",
                key=f"provider_unreachable:{p.name}",
                severity=sev,
                summary=f"provider {p.name} {what}" + (f": {_short(p.error, 100)}" if p.error else ""),
                evidence=(Evidence("provider", p.name, p.error or ""),),
                threshold=f"unreachable for > {fmt_duration(cfg.provider_down_for_s)}",
                hold_s=cfg.provider_down_for_s,
                # A stale listing means it has failed since some time after listed_at: start the clock
                # at first sight rather than claim a longer outage than we know of.
                details={"status": p.status.value, "error": p.error, "listing_age_s": p.age_s},
                clock_details=("listing_age_s",),
            )
        )
    return out


def rule_orphans_present(inp: AlertInputs, cfg: AlertsConfig) -> list[AlertCandidate]:
    by_provider: dict[str, list] = {}
    for o in inp.ground_truth.orphans:
        if o.confirmed is False:
            continue  # eventually consistent listing, not yet confirmed by a GET
        by_provider.setdefault(o.provider, []).append(o)
    out = []
    now = inp.now
    for prov, orphans in sorted(by_provider.items()):
        if len(orphans) < cfg.orphans_min:
            continue
        created = [o.created_at for o in orphans if o.created_at is not None]
        oldest = min(created) if created else None
        oldest_age = _age(now, oldest)
        running = sum(1 for o in orphans if o.provider_state == "running")
        out.append(
            AlertCandidate(
                rule="orphans_present",
                key=f"orphans_present:{prov}",
                severity=Severity.WARNING,
                summary=f"{len(orphans)} orphan instance(s) at {prov} ({running} running)"
                + (f", oldest {fmt_duration(oldest_age)}" if oldest_age is not None else ""),
                evidence=tuple(Evidence("orphan", o.key, o.provider_state) for o in orphans[:50]),
                threshold=f">= {cfg.orphans_min} orphan(s) for > {fmt_duration(cfg.orphans_for_s)}",
                hold_s=cfg.orphans_for_s,
                since=oldest,
                scope=prov,
                details={"count": len(orphans), "running": running, "oldest_age_s": oldest_age},
                clock_details=("oldest_age_s",),
            )
        )
    return out


def rule_leak(inp: AlertInputs, cfg: AlertsConfig) -> list[AlertCandidate]:
    """An instance alive at the provider while its lease says detached or destroyed (or the lease
    moved on or is gone): nothing in LEON will ever stop it, and it costs money."""
    return leak_candidates([r for r in inp.ground_truth.rows if _is_leak_row(r, cfg)], inp.ground_truth, cfg)


def is_leak_row(r: GroundTruthRow, cfg: AlertsConfig) -> bool:
    """The row itself is a leak (the leak rule's, not lease_diverged's)."""
    return _is_leak_row(r, cfg)


def leak_candidates(
    rows: Iterable[GroundTruthRow], gt: GroundTruth, cfg: AlertsConfig
) -> list[AlertCandidate]:
    """The leak rule given the rows that are leaks themselves (`is_leak_row`), in row order."""
    found: dict[str, list[Evidence]] = {}
    provider_of: dict[str, str] = {}
    desired_of: dict[str, str] = {}
    for r in rows:
        found.setdefault(r.lease_id, []).append(
            Evidence(
                "lease",
                r.lease_id,
                f"desired {r.desired_state}, observed {r.observed_state}, "
                f"instance {r.instance_id} {r.provider_state} at provider",
            )
        )
        provider_of[r.lease_id] = r.provider
        desired_of[r.lease_id] = r.desired_state
    for o in _leaking_orphans(gt, cfg):
        lid = o.claimed_lease_id
        found.setdefault(lid, []).append(Evidence("orphan", o.key, f"{o.provider_state}; claim {o.claim}"))
        provider_of.setdefault(lid, o.provider)
        desired_of.setdefault(lid, "missing" if o.claim == "lease_missing" else "")
    out = []
    for lid in sorted(found):
        ev = found[lid]
        instances = len(ev)
        out.append(
            AlertCandidate(
                rule="leak",
                key=f"leak:{lid}",
                severity=Severity.CRITICAL,
                summary=f"leak: {instances} instance(s) {'/'.join(cfg.leak_states)} at {provider_of[lid]}"
                f" for lease {lid} ({'lease gone' if desired_of[lid] == 'missing' else ev[0].note})",
                evidence=tuple(ev),
                threshold=f"instance {'/'.join(cfg.leak_states)} while the lease is detached/destroyed, "
                f"for > {fmt_duration(cfg.leak_for_s)}",
                hold_s=cfg.leak_for_s,
                scope=provider_of[lid],
                details={"instances": instances},
            )
        )
    return out


WEBHOOK_ERROR_WORDS = ("error", "fail")


def rule_intent_failures(inp: AlertInputs, cfg: AlertsConfig) -> list[AlertCandidate]:
    """A burst of failed intents (`lease_events.error` set) and `provider.error` events per provider
    within `intent_window_s`; webhook events whose type says error/fail count too."""
    if inp.lease_events is None:
        return []
    from opcockpit.domain.runs import normalize_error

    cutoff = inp.now - timedelta(seconds=cfg.intent_window_s)
    provider_of = {r.lease_id: r.provider for r in inp.ground_truth.rows}
    groups: dict[str, list[tuple[Evidence, str]]] = {}
    for e in inp.lease_events:
        if e.created_at is None or e.created_at < cutoff or e.created_at > inp.now:
            continue
        if e.error is None and e.event_type != "provider.error":
            continue
        msg = e.error or _payload_error(e.payload_json) or e.event_type
        prov = provider_of.get(e.lease_id, "?")
        groups.setdefault(prov, []).append(
            (Evidence("lease_event", e.event_id, f"{e.lease_id} {e.event_type}"), msg)
        )
    for pe in inp.provider_events or ():
        if pe.created_at is None or pe.created_at < cutoff or pe.created_at > inp.now:
            continue
        if not any(w in pe.event_type.lower() for w in WEBHOOK_ERROR_WORDS):
            continue
        groups.setdefault(pe.provider_name, []).append(
            (Evidence("provider_event", str(pe.event_id), f"{pe.instance_id} {pe.event_type}"), pe.event_type)
        )
    out = []
    for prov in sorted(groups):
        items = groups[prov]
        if len(items) < cfg.intent_failures_min:
            continue
        sigs: dict[str, int] = {}
        for _, msg in items:
            sig = normalize_error(msg)
            sigs[sig] = sigs.get(sig, 0) + 1
        top_sig, top_n = min(sigs.items(), key=lambda kv: (-kv[1], kv[0]))
        leases = sorted({ev.note.split(" ", 1)[0] for ev, _ in items if ev.kind == "lease_event"})
        out.append(
            AlertCandidate(
                rule="intent_failures",
                key=f"intent_failures:{prov}",
                severity=Severity.WARNING,
                summary=f"{len(items)} failed intents/provider errors at {prov}"
                f" in {fmt_duration(cfg.intent_window_s)}"
                f" ({len(leases)} lease(s)); top: {_short(top_sig, 90)} x{top_n}",
                evidence=tuple(ev for ev, _ in items[:50])
                + tuple(Evidence("lease", lid) for lid in leases[:20]),
                threshold=f">= {cfg.intent_failures_min} in {fmt_duration(cfg.intent_window_s)}",
                scope=SCOPE_LEASE_EVENTS,
                details={
                    "count": len(items),
                    "leases": len(leases),
                    "top_signature": top_sig,
                    "top_count": top_n,
                },
            )
        )
    return out


def _payload_error(payload_json: str | None) -> str | None:
    if not payload_json:
        return None
    try:
        obj = json.loads(payload_json)
    except (TypeError, ValueError):
        return None
    err = obj.get("error") if isinstance(obj, dict) else None
    return err if isinstance(err, str) else None


def rule_resource_pressure(inp: AlertInputs, cfg: AlertsConfig) -> list[AlertCandidate]:
    now = inp.now
    return [c for r in inp.ground_truth.rows if (c := pressure_row(r, cfg, now, pressure_hits(r, cfg)))]


def pressure_hits(r: GroundTruthRow, cfg: AlertsConfig) -> tuple[list[str], dict[str, Any]] | None:
    """The thresholds a row's resource snapshot crosses, whatever its age (None: none, or no
    usable snapshot): a row without hits has no pressure alert at any `now`."""
    res = r.resources
    if res is None or res.probe_error or res.collected_at is None:
        return None
    running = r.provider_state == "running" if r.provider_state is not None else r.observed_state == "running"
    if not running:
        return None
    hits: list[str] = []
    details: dict[str, Any] = {}
    mem_total = res.memory_total_mb or res.memory_mb  # LEON's Docker/Daytona probes leave totals None
    if res.memory_used_mb is not None and mem_total:
        pct = 100.0 * res.memory_used_mb / mem_total
        details["memory_pct"] = round(pct, 1)
        if pct >= cfg.memory_pct:
            hits.append(f"memory {pct:.0f}% ({res.memory_used_mb:.0f}/{mem_total:.0f} MB)")
    if res.disk_used_gb is not None and res.disk_total_gb:
        pct = 100.0 * res.disk_used_gb / res.disk_total_gb
        details["disk_pct"] = round(pct, 1)
        if pct >= cfg.disk_pct:
            hits.append(f"disk {pct:.0f}% ({res.disk_used_gb:.1f}/{res.disk_total_gb:.1f} GB)")
    if res.cpu_used is not None:
        details["cpu_pct"] = res.cpu_used
        if res.cpu_used >= cfg.cpu_pct:
            hits.append(f"cpu {res.cpu_used:.0f}%")
    return (hits, details) if hits else None


def pressure_row(
    r: GroundTruthRow,
    cfg: AlertsConfig,
    now: datetime,
    hits: tuple[list[str], dict[str, Any]] | None,
) -> AlertCandidate | None:
    """resource_pressure for one row at `now`, given its `pressure_hits`."""
    if hits is None or r.resources is None:
        return None
    age = _age(now, r.resources.collected_at)
    if age is None or age > cfg.resource_max_age_s:
        return None  # an old snapshot says nothing about now
    found, measured = hits
    return AlertCandidate(
        rule="resource_pressure",
        key=f"resource_pressure:{r.lease_id}",
        severity=Severity.WARNING,
        summary=f"{r.provider} lease {r.lease_id}: " + ", ".join(found),
        evidence=(
            Evidence("resource_snapshot", r.lease_id, ", ".join(found)),
            *((Evidence("thread", r.thread_id),) if r.thread_id else ()),
        ),
        threshold=f"memory >= {cfg.memory_pct:g}%, disk >= {cfg.disk_pct:g}%"
        f" or cpu >= {cfg.cpu_pct:g}% "
        f"for > {fmt_duration(cfg.resource_for_s)}",
        hold_s=cfg.resource_for_s,
        scope=r.provider,
        details={"snapshot_age_s": round(age, 1), **measured},
        clock_details=("snapshot_age_s",),
    )


def rule_flapping(inp: AlertInputs, cfg: AlertsConfig) -> list[AlertCandidate]:
    """A lease whose convergence changed `flapping_transitions` times or more within
    `flapping_window_s` (from the event ledger): something keeps undoing itself."""
    if inp.events is None:
        return []
    cutoff = inp.now - timedelta(seconds=cfg.flapping_window_s)
    seen: dict[str, list[Event]] = {}
    for e in inp.events:
        if (
            e.type != LeaseConvergenceChanged.TYPE
            or e.lease_id is None
            or e.before is None
            or e.after is None
        ):
            continue  # appearing/deleted leases are not flaps
        if cutoff <= e.observed_at <= inp.now:
            seen.setdefault(e.lease_id, []).append(e)
    out = []
    for lid in sorted(seen):
        flips = sorted(seen[lid], key=lambda e: e.observed_at)
        if len(flips) < cfg.flapping_transitions:
            continue
        path = [flips[0].before.convergence] + [e.after.convergence for e in flips]  # type: ignore[union-attr]
        last = flips[-1]
        out.append(
            AlertCandidate(
                rule="flapping",
                key=f"flapping:{lid}",
                severity=Severity.WARNING,
                summary=f"{last.provider or '?'} lease {lid} flapping: {len(flips)} convergence changes in "
                f"{fmt_duration(cfg.flapping_window_s)} ({_short(' → '.join(path[-6:]), 90)})",
                evidence=(
                    Evidence("lease", lid, f"{len(flips)} transitions"),
                    *((Evidence("thread", last.thread_id),) if last.thread_id else ()),
                ),
                threshold=f">= {cfg.flapping_transitions} transitions in "
                f"{fmt_duration(cfg.flapping_window_s)}",
                since=flips[0].observed_at,
                scope=SCOPE_LEDGER_EVENTS,
                details={"transitions": len(flips), "last": path[-1]},
            )
        )
    return out


RULES: dict[str, Rule] = {  # the names and order of alerts_config.RULE_NAMES
    "stuck_run": rule_stuck_run,
    "lease_diverged": rule_lease_diverged,
    "lease_recovering": rule_lease_recovering,
    "provider_unreachable": rule_provider_unreachable,
    "orphans_present": rule_orphans_present,
    "leak": rule_leak,
    "intent_failures": rule_intent_failures,
    "resource_pressure": rule_resource_pressure,
    "flapping": rule_flapping,
}


def evaluate_rules(inp: AlertInputs, cfg: AlertsConfig) -> list[AlertCandidate]:
    """Every enabled rule's candidates, severity overrides applied, one per key, sorted by key."""
    if not cfg.enabled:
        return []
    by_key: dict[str, AlertCandidate] = {}
    for name, rule in RULES.items():
        if name in cfg.disabled_rules:
            continue
        override = cfg.severity.get(name)
        for c in rule(inp, cfg):
            if override is not None and c.severity != override:
                c = replace(c, severity=override)
            by_key.setdefault(c.key, c)
    return [by_key[k] for k in sorted(by_key)]


def unknown_scopes(inp: AlertInputs) -> frozenset[str]:
    """Inputs that could not be looked at this round: alerts scoped to them are neither refreshed
    nor resolved."""
    out = {
        p.name for p in inp.ground_truth.providers if p.status in (ProviderStatus.ERROR, ProviderStatus.STALE)
    }
    if inp.run_health is None or inp.run_health.error is not None:
        out.add(SCOPE_EVENTS_DB)
    if inp.lease_events is None:
        out.add(SCOPE_LEASE_EVENTS)
    return frozenset(out)


assert tuple(RULES) == RULE_NAMES, "alerts_config.RULE_NAMES must name every rule, in order"
