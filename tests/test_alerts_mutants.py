"""Exact assertions that kill the alert-rule mutants (opcockpit/domain/alerts.py) that survived the
broader rule tests (docs/mutation.md): a lease detached while its instance still runs, the error
read from a `provider.error` payload, the clips of long messages, Evidence's dict form.

Ground truths come from real LEON-schema DBs through the real reader and reconcile.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from opcockpit.domain.alerts import (
    SCOPE_LEDGER_EVENTS,
    AlertCandidate,
    AlertInputs,
    AlertsConfig,
    Evidence,
    Severity,
    _short,
    evaluate_rules,
    fmt_duration,
    rule_flapping,
    rule_intent_failures,
    rule_leak,
    rule_lease_diverged,
    rule_lease_recovering,
    rule_orphans_present,
    rule_provider_unreachable,
    rule_resource_pressure,
    rule_stuck_run,
)
from opcockpit.domain.events import Event, LeaseConvergenceChanged, LeaseView
from opcockpit.domain.models import GroundTruth, Instance, InstanceResources, NormalState
from opcockpit.domain.runs import RunHealth, StuckRun
from tests.alerts_support import T0, ground_truth, inst, lease_events, listing, naive, sandbox_db
from tests.fixtures.leon_db import add_lease, add_lease_event, add_resource_snapshot, add_terminal

L1 = "lease-aaaaaaaaaaaa"


# --------------------------------------------------------------------------- leak: observed detached


def test_a_detached_lease_whose_instance_still_runs_is_a_leak(tmp_path: Path) -> None:
    """desired != destroyed but LEON observed the lease detached while the provider runs it: the
    `observed_state == "detached"` half of the leak test decides it (not the destroyed half)."""

    def build(c) -> None:  # type: ignore[no-untyped-def]
        add_lease(
            c,
            L1,
            "dock",
            current_instance_id="c-1",
            desired_state="paused",
            observed_state="detached",
            created_at=naive(T0 - timedelta(hours=1)),
        )

    db = sandbox_db(tmp_path / "detached.db", build)
    gt = ground_truth(db, [listing("dock", "docker", [inst("dock", "c-1", "running")], listed_at=T0)], T0)
    (row,) = gt.rows
    assert (row.desired_state, row.observed_state, row.provider_state) == ("paused", "detached", "running")
    (c,) = rule_leak(AlertInputs(gt, T0), AlertsConfig(leak_for_s=60))
    assert c.key == f"leak:{L1}"
    assert c.evidence == (
        Evidence("lease", L1, "desired paused, observed detached, instance c-1 running at provider"),
    )
    # ... and so it is not also reported as drift.
    assert [x.key for x in rule_lease_diverged(AlertInputs(gt, T0), AlertsConfig())] == []


# --------------------------------------------------------------------------- provider.error payloads


def _intent_signature(tmp_path: Path, payload: Any, *, raw: str | None = None) -> str:
    """The top signature of one `provider.error` lease event without an `error` column."""

    def build(c) -> None:  # type: ignore[no-untyped-def]
        add_lease(c, L1, "dock", created_at=naive(T0 - timedelta(hours=1)))
        add_lease_event(
            c,
            L1,
            "provider.error",
            "provider",
            payload,
            event_id="ev-1",
            created_at=naive(T0 - timedelta(seconds=30)),
        )
        if raw is not None:  # a payload_json the helper would not write (not JSON, empty)
            c.execute("UPDATE lease_events SET payload_json = ? WHERE event_id = 'ev-1'", (raw,))

    db = sandbox_db(tmp_path / "payload.db", build)
    gt = ground_truth(db, [listing("dock", "docker", listed_at=T0)], T0)
    events, provider_events = lease_events(db, T0 - timedelta(hours=2))
    (c,) = rule_intent_failures(
        AlertInputs(gt, T0, lease_events=events, provider_events=provider_events),
        AlertsConfig(intent_failures_min=1),
    )
    return str(c.details["top_signature"])


def test_provider_error_event_uses_the_payload_error(tmp_path: Path) -> None:
    assert _intent_signature(tmp_path, {"error": "sandbox quota exhausted"}) == "sandbox quota exhausted"


@pytest.mark.parametrize(
    ("payload", "raw"),
    [
        ({"error": 5}, None),  # not a string: ignored
        ({"Error": "wrong key"}, None),
        ({"ERROR": "wrong key"}, None),
        ({"message": "no error key"}, None),
        (None, "[1, 2]"),  # JSON, but not an object
        (None, "not json {"),
        (None, ""),
    ],
)
def test_provider_error_event_without_a_usable_payload_error_uses_the_event_type(
    tmp_path: Path, payload: Any, raw: str | None
) -> None:
    assert _intent_signature(tmp_path, payload, raw=raw) == "provider.error"


# --------------------------------------------------------------------------- clips


def test_short_clips_at_120_with_one_ellipsis_and_keeps_shorter_text() -> None:
    assert _short("x" * 120) == "x" * 120
    assert _short("y" * 121) == "y" * 119 + "…"
    assert _short("a\n  b\tc") == "a b c"
    assert _short(None) == "" and _short("") == ""
    assert _short("z" * 81, 80) == "z" * 79 + "…"


def test_provider_error_in_the_summary_is_clipped_to_100(tmp_path: Path) -> None:
    db = sandbox_db(tmp_path / "p.db", lambda c: None)
    err = "E" * 150
    gt = ground_truth(db, [listing("dock", "docker", ok=False, error=err)], T0)
    (c,) = rule_provider_unreachable(AlertInputs(gt, T0), AlertsConfig())
    assert c.summary == "provider dock unreachable; never listed: " + "E" * 99 + "…"
    assert c.evidence == (Evidence("provider", "dock", err),)  # the evidence keeps it whole


def test_recovering_last_error_in_the_summary_is_clipped_to_80(tmp_path: Path) -> None:
    err = "boom " * 30

    def build(c) -> None:  # type: ignore[no-untyped-def]
        add_lease(
            c, L1, "dock", status="recovering", last_error=err, created_at=naive(T0 - timedelta(hours=1))
        )

    db = sandbox_db(tmp_path / "r.db", build)
    gt = ground_truth(db, [listing("dock", "docker", listed_at=T0)], T0)
    (c,) = rule_lease_recovering(AlertInputs(gt, T0), AlertsConfig())
    clipped = " ".join(err.split())[:79] + "…"
    assert c.summary == f"dock lease {L1} stuck in recovering (instance creation failed or hung?): {clipped}"


# --------------------------------------------------------------------------- small pieces


def test_evidence_to_dict_has_exactly_kind_id_note() -> None:
    assert Evidence("lease", L1, "why").to_dict() == {"kind": "lease", "id": L1, "note": "why"}
    assert json.dumps(Evidence("run", "r-1").to_dict()) == '{"kind": "run", "id": "r-1", "note": ""}'


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "?"), (-0.5, "0s"), (-3600, "0s"), (0.9, "0s"), (1, "1s"), (61, "1m")]
)
def test_fmt_duration_floor_and_unknown(seconds: float | None, text: str) -> None:
    assert fmt_duration(seconds) == text


# --------------------------------------------------------------------------- stuck_run fields


def _health(*stuck: StuckRun, stuck_after_s: float = 600.0) -> RunHealth:
    return RunHealth(
        generated_at=T0,
        window_s=86400.0,
        stuck_after_s=stuck_after_s,
        by_status={},
        total=len(stuck),
        stuck=stuck,
        top_errors=(),
    )


def test_stuck_run_candidate_fields_are_exact(tmp_path: Path) -> None:
    run = StuckRun(
        run_id="run-0123456789abcdef",
        thread_id="m_t-1",
        started_at=T0 - timedelta(hours=2),
        last_event_at=T0 - timedelta(seconds=1196.125),
        idle_s=1196.125,
        event_count=7,
    )
    gt = ground_truth(sandbox_db(tmp_path / "s.db", lambda c: None), [], T0)
    (c,) = rule_stuck_run(AlertInputs(gt, T0, run_health=_health(run, stuck_after_s=900)), AlertsConfig())
    assert c.key == "stuck_run:run-0123456789abcdef"
    assert c.summary == "run run-0123 on thread m_t-1: no event for 19m (7 events)"
    assert c.threshold == "no event for > 15m"
    assert c.evidence == (Evidence("run", "run-0123456789abcdef"), Evidence("thread", "m_t-1"))
    assert c.since == T0 - timedelta(seconds=1196.125) + timedelta(seconds=900)
    assert dict(c.details) == {
        "idle_s": 1196.1,
        "event_count": 7,
        "started_at": (T0 - timedelta(hours=2)).isoformat(),
    }


def test_stuck_run_without_timestamps_has_no_since_and_no_start(tmp_path: Path) -> None:
    run = StuckRun("run-x", "m_t-2", started_at=None, last_event_at=None, idle_s=30.0, event_count=0)
    gt = ground_truth(sandbox_db(tmp_path / "s.db", lambda c: None), [], T0)
    (c,) = rule_stuck_run(AlertInputs(gt, T0, run_health=_health(run)), AlertsConfig())
    assert c.since is None
    assert dict(c.details) == {"idle_s": 30.0, "event_count": 0, "started_at": None}
    assert c.summary == "run run-x on thread m_t-2: no event for 30s (0 events)"
    assert c.threshold == "no event for > 10m"


# --------------------------------------------------------------------------- resource_pressure skips


def test_resource_pressure_skips_failed_probes_and_old_snapshots_but_checks_the_rest(tmp_path: Path) -> None:
    """Rows are in lease order: a failed probe and an old snapshot come first and are skipped one
    by one (not the end of the scan); the hot lease after them still fires."""
    hot = "lease-zzzzzzzzzzzz"

    def build(c) -> None:  # type: ignore[no-untyped-def]
        for i, lid in enumerate(("lease-000000000001", "lease-000000000002", hot)):
            add_lease(
                c,
                lid,
                "dock",
                current_instance_id=f"c-{i}",
                observed_state="running",
                created_at=naive(T0 - timedelta(hours=1)),
            )
        over = {"memory_used_mb": 990, "memory_total_mb": 1000}
        # the probe failed (its numbers are leftovers), though it has a collected_at
        add_resource_snapshot(
            c, "lease-000000000001", "dock", probe_error="probe timed out",
            collected_at=T0 - timedelta(minutes=1), **over,
        )  # fmt: skip
        add_resource_snapshot(c, "lease-000000000002", "dock", collected_at=T0 - timedelta(hours=3), **over)
        add_resource_snapshot(c, hot, "dock", collected_at=T0 - timedelta(minutes=1), **over)

    db = sandbox_db(tmp_path / "res.db", build)
    lst = [listing("dock", "docker", [inst("dock", f"c-{i}") for i in range(3)], listed_at=T0)]
    gt = ground_truth(db, lst, T0)
    assert [r.lease_id for r in gt.rows][-1] == hot  # the hot lease is scanned last
    got = rule_resource_pressure(AlertInputs(gt, T0), AlertsConfig())
    assert [c.key for c in got] == [f"resource_pressure:{hot}"]
    assert got[0].summary == f"dock lease {hot}: memory 99% (990/1000 MB)"


def _pressure(tmp_path: Path, *, observed: str, listed: str | None, age_s: float = 60.0) -> list[str]:
    """resource_pressure keys for one hot lease: LEON observed `observed`; the provider lists its
    instance in state `listed` (None: the provider is not listed at all, so provider_state is None)."""

    def build(c) -> None:  # type: ignore[no-untyped-def]
        add_lease(
            c, L1, "dock", current_instance_id="c-1", observed_state=observed,
            created_at=naive(T0 - timedelta(hours=1)),
        )  # fmt: skip
        add_resource_snapshot(
            c,
            L1,
            "dock",
            memory_used_mb=990,
            memory_total_mb=1000,
            collected_at=T0 - timedelta(seconds=age_s),
        )

    db = sandbox_db(tmp_path / f"p-{observed}-{listed}-{age_s}.db", build)
    lst = [] if listed is None else [listing("dock", "docker", [inst("dock", "c-1", listed)], listed_at=T0)]
    gt = ground_truth(db, lst, T0)
    assert gt.rows[0].provider_state == listed
    return [c.key for c in rule_resource_pressure(AlertInputs(gt, T0), AlertsConfig(resource_max_age_s=900))]


@pytest.mark.parametrize(
    ("observed", "listed", "fires"),
    [
        ("running", "running", True),
        ("running", "paused", False),  # the provider's word wins over LEON's
        ("paused", "running", True),
        ("running", None, True),  # no provider word: LEON's observed state decides
        ("paused", None, False),
    ],
)
def test_resource_pressure_only_for_running_instances(
    tmp_path: Path, observed: str, listed: str | None, fires: bool
) -> None:
    assert _pressure(tmp_path, observed=observed, listed=listed) == (
        [f"resource_pressure:{L1}"] if fires else []
    )


@pytest.mark.parametrize(("age_s", "fires"), [(900.0, True), (901.0, False)])
def test_resource_snapshot_max_age_is_inclusive(tmp_path: Path, age_s: float, fires: bool) -> None:
    got = _pressure(tmp_path, observed="running", listed="running", age_s=age_s)
    assert got == ([f"resource_pressure:{L1}"] if fires else [])


def test_resource_pressure_candidate_is_exact_with_inclusive_thresholds(tmp_path: Path) -> None:
    """Memory against the provider's allocation (LEON's probes leave the total empty), disk and
    cpu, each exactly at its threshold (>=); the details carry the rounded figures."""

    def build(c) -> None:  # type: ignore[no-untyped-def]
        add_lease(
            c, L1, "dock", current_instance_id="c-1", observed_state="running",
            created_at=naive(T0 - timedelta(hours=1)),
        )  # fmt: skip
        add_resource_snapshot(
            c, L1, "dock", memory_used_mb=953.125, cpu_used=97.25, disk_used_gb=9.5625, disk_total_gb=10,
            collected_at=T0 - timedelta(seconds=61.25),
        )  # fmt: skip

    db = sandbox_db(tmp_path / "exact.db", build)
    alloc = Instance(
        provider="dock",
        instance_id="c-1",
        raw_state="running",
        state=NormalState.RUNNING,
        resources=InstanceResources(memory_mb=1000),
    )
    gt = ground_truth(db, [listing("dock", "docker", [alloc], listed_at=T0)], T0)
    cfg = AlertsConfig(memory_pct=95.3125, disk_pct=95.625, cpu_pct=97.25, resource_for_s=300)
    (c,) = rule_resource_pressure(AlertInputs(gt, T0), cfg)
    hits = "memory 95% (953/1000 MB), disk 96% (9.6/10.0 GB), cpu 97%"
    assert c.summary == f"dock lease {L1}: {hits}"
    assert c.evidence == (Evidence("resource_snapshot", L1, hits),)
    assert c.threshold == "memory >= 95.3125%, disk >= 95.625% or cpu >= 97.25% for > 5m"
    assert c.hold_s == 300 and c.scope == "dock"
    # (figures chosen exact in binary, and with a second decimal, so rounding to 1 place shows)
    assert dict(c.details) == {"snapshot_age_s": 61.2, "memory_pct": 95.3, "disk_pct": 95.6, "cpu_pct": 97.25}
    # A hair above each threshold: nothing fires.
    above = AlertsConfig(memory_pct=95.313, disk_pct=95.626, cpu_pct=97.26)
    assert rule_resource_pressure(AlertInputs(gt, T0), above) == []


def test_resource_pressure_memory_without_any_total_is_not_judged(tmp_path: Path) -> None:
    def build(c) -> None:  # type: ignore[no-untyped-def]
        add_lease(
            c, L1, "dock", current_instance_id="c-1", observed_state="running",
            created_at=naive(T0 - timedelta(hours=1)),
        )  # fmt: skip
        # memory used without a total, a disk total without the used figure
        add_resource_snapshot(
            c, L1, "dock", memory_used_mb=99999, disk_total_gb=10, cpu_used=99, collected_at=T0
        )

    db = sandbox_db(tmp_path / "nototal.db", build)
    gt = ground_truth(db, [listing("dock", "docker", [inst("dock", "c-1")], listed_at=T0)], T0)
    (c,) = rule_resource_pressure(AlertInputs(gt, T0), AlertsConfig(cpu_pct=90))
    assert c.summary == f"dock lease {L1}: cpu 99%"
    assert dict(c.details) == {"snapshot_age_s": 0.0, "cpu_pct": 99.0}


# --------------------------------------------------------------------------- flapping


def _flip(at_s: float, before: str | None, after: str | None, lease: str = L1, **kw: Any) -> Event:
    def view(conv: str | None) -> LeaseView | None:
        return (
            None if conv is None else LeaseView(convergence=conv, desired_state="running", observed_state="x")
        )

    return LeaseConvergenceChanged(
        observed_at=T0 - timedelta(seconds=at_s), source="provider_list", lease_id=lease,
        before=view(before), after=view(after), **kw,
    )  # fmt: skip


def _flapping(events: list[Event] | None, **cfg: Any) -> list[AlertCandidate]:
    gt = GroundTruth(rows=(), orphans=(), providers=(), generated_at=T0)
    return rule_flapping(AlertInputs(gt, T0, events=events), AlertsConfig(**cfg))


def test_flapping_candidate_is_exact() -> None:
    events = [
        _flip(600, "converged", "diverged", provider="dock", thread_id="m_t-9"),
        _flip(400, "diverged", "converged", provider="dock"),
        _flip(200, "converged", "diverged", provider="dock"),
        _flip(0, "diverged", "converged", provider="dock", thread_id="m_t-9"),
    ]
    (c,) = _flapping(list(reversed(events)), flapping_transitions=4, flapping_window_s=600)
    assert c.key == f"flapping:{L1}" and c.rule == "flapping" and c.severity is Severity.WARNING
    assert c.summary == (
        f"dock lease {L1} flapping: 4 convergence changes in 10m "
        "(converged → diverged → converged → diverged → converged)"
    )
    assert c.evidence == (Evidence("lease", L1, "4 transitions"), Evidence("thread", "m_t-9"))
    assert c.threshold == ">= 4 transitions in 10m"
    assert c.since == T0 - timedelta(seconds=600)  # the first flip, though listed last
    assert c.scope == SCOPE_LEDGER_EVENTS
    assert dict(c.details) == {"transitions": 4, "last": "converged"}


def test_flapping_counts_only_real_flips_inside_the_window() -> None:
    base = [_flip(s, "converged", "diverged") for s in (10, 20)]
    assert _flapping(None, flapping_transitions=2) == []  # not read this round
    assert [c.key for c in _flapping(base, flapping_transitions=2)] == [f"flapping:{L1}"]
    assert _flapping(base, flapping_transitions=3) == []
    # appear / delete events, another type, and flips outside [now - window, now] do not count
    noise = [
        _flip(30, None, "diverged"),
        _flip(40, "diverged", None),
        _flip(901, "converged", "diverged"),
        _flip(-1, "converged", "diverged"),  # after now
        _flip(50, "converged", "diverged", lease=None),  # type: ignore[arg-type]
        Event(type="lease.other", observed_at=T0, source="provider_list", lease_id=L1),
    ]
    assert _flapping(base + noise, flapping_transitions=3, flapping_window_s=900) == []
    edge = _flip(900, "converged", "diverged")  # exactly at the window's start: counted
    (c,) = _flapping([*base, edge], flapping_transitions=3, flapping_window_s=900)
    assert c.details["transitions"] == 3
    assert c.summary.startswith(f"? lease {L1} flapping: 3 convergence changes in 15m")  # no provider


def test_flapping_path_shows_the_last_six_states_clipped_to_90() -> None:
    a, b = "converged-aaaaaaa", "diverged-bbbbbbbb"  # long names, so six of them exceed 90 chars
    states = [a, b] * 5
    events = [_flip(500 - 10 * i, states[i], states[i + 1]) for i in range(9)]
    (c,) = _flapping(events, flapping_transitions=4)
    last6 = " → ".join(states[-6:])
    assert len(last6) > 90
    assert c.summary == f"? lease {L1} flapping: 9 convergence changes in 15m ({last6[:89]}…)"
    assert c.details == {"transitions": 9, "last": b}


# --------------------------------------------------------------------------- lease_diverged / orphans


def test_lease_diverged_candidate_is_exact(tmp_path: Path) -> None:
    def build(c) -> None:  # type: ignore[no-untyped-def]
        add_lease(
            c, L1, "dock", current_instance_id="c-1", desired_state="running", observed_state="running",
            created_at=naive(T0 - timedelta(hours=1)),
        )  # fmt: skip
        add_terminal(c, "term-000000000001", "m_t-1", L1, pointer=True)

    db = sandbox_db(tmp_path / "div.db", build)
    gt = ground_truth(db, [listing("dock", "docker", [inst("dock", "c-1", "paused")], listed_at=T0)], T0)
    (row,) = gt.rows
    (c,) = rule_lease_diverged(AlertInputs(gt, T0), AlertsConfig(diverged_for_s=420))
    assert c.key == f"lease_diverged:{L1}" and c.rule == "lease_diverged" and c.severity is Severity.WARNING
    assert c.summary == f"dock lease {L1} diverged: {row.reason}"
    assert c.evidence == (Evidence("lease", L1, row.reason), Evidence("thread", "m_t-1"))
    assert c.threshold == "diverged for > 7m" and c.hold_s == 420 and c.scope == "dock"
    assert dict(c.details) == {"desired": "running", "observed": "running", "provider_state": "paused"}


def test_orphans_without_creation_times_and_unconfirmed_ones(tmp_path: Path) -> None:
    db = sandbox_db(tmp_path / "o.db", lambda c: None)
    strays = [inst("dock", "s-1"), inst("dock", "s-2", "paused")]
    gt = ground_truth(db, [listing("dock", "docker", strays, listed_at=T0)], T0)
    (c,) = rule_orphans_present(AlertInputs(gt, T0), AlertsConfig(orphans_min=2))
    assert c.summary == "2 orphan instance(s) at dock (1 running)"  # no ", oldest ..." when unknown
    assert c.since is None
    assert c.evidence == (Evidence("orphan", "dock/s-1", "running"), Evidence("orphan", "dock/s-2", "paused"))
    assert dict(c.details) == {"count": 2, "running": 1, "oldest_age_s": None}


# ---------------------------------------------------------------- lease_recovering / evaluate_rules


def test_lease_recovering_scans_past_other_leases_and_is_exact(tmp_path: Path) -> None:
    first, quiet, noisy = "lease-000000000001", "lease-000000000002", "lease-000000000003"

    def build(c) -> None:  # type: ignore[no-untyped-def]
        created = naive(T0 - timedelta(hours=1))
        add_lease(c, first, "dock", status="active", created_at=created)  # not recovering: skipped
        add_lease(c, quiet, "dock", status="recovering", created_at=created)
        add_lease(
            c, noisy, "dock", status="recovering", last_error="docker: no space left", created_at=created
        )
        add_terminal(c, "term-000000000003", "m_t-3", noisy, pointer=True)

    db = sandbox_db(tmp_path / "rec.db", build)
    gt = ground_truth(db, [listing("dock", "docker", listed_at=T0)], T0)
    assert [r.lease_id for r in gt.rows] == [first, quiet, noisy]
    got = rule_lease_recovering(AlertInputs(gt, T0), AlertsConfig(recovering_for_s=120))
    assert [c.key for c in got] == [f"lease_recovering:{quiet}", f"lease_recovering:{noisy}"]
    q, n = got
    assert q.summary == f"dock lease {quiet} stuck in recovering (instance creation failed or hung?)"
    assert q.evidence == (Evidence("lease", quiet, ""),)  # no thread, no error
    assert dict(q.details) == {"last_error": None}
    assert n.summary == (
        f"dock lease {noisy} stuck in recovering (instance creation failed or hung?): docker: no space left"
    )
    assert n.evidence == (Evidence("lease", noisy, "docker: no space left"), Evidence("thread", "m_t-3"))
    assert dict(n.details) == {"last_error": "docker: no space left"}
    assert n.threshold == "recovering for > 2m" and n.hold_s == 120 and n.rule == "lease_recovering"


def test_a_disabled_rule_skips_only_itself(tmp_path: Path) -> None:
    def build(c) -> None:  # type: ignore[no-untyped-def]
        add_lease(c, L1, "dock", status="recovering", created_at=naive(T0 - timedelta(hours=1)))

    db = sandbox_db(tmp_path / "dis.db", build)
    gt = ground_truth(db, [listing("dock", "docker", [inst("dock", "stray-1")], listed_at=T0)], T0)
    inp = AlertInputs(gt, T0, events=[_flip(s, "converged", "diverged") for s in (1, 2, 3, 4)])
    every = [c.key for c in evaluate_rules(inp, AlertsConfig(orphans_min=1))]
    assert every == [f"flapping:{L1}", f"lease_recovering:{L1}", "orphans_present:dock"]
    # disabling the first rules in RULES' order must not stop the later ones
    cfg = AlertsConfig(orphans_min=1, disabled_rules=["stuck_run", "lease_diverged", "lease_recovering"])
    assert [c.key for c in evaluate_rules(inp, cfg)] == [f"flapping:{L1}", "orphans_present:dock"]


def test_flapping_counts_a_flip_observed_exactly_now() -> None:
    events = [_flip(0, "converged", "diverged"), _flip(5, "diverged", "converged")]
    (c,) = _flapping(events, flapping_transitions=2)
    assert c.details == {"transitions": 2, "last": "diverged"}


# --------------------------------------------------------------------------- scans go past skipped rows


def test_flapping_scan_goes_past_noise_and_quiet_leases() -> None:
    quiet = "lease-000000000000"  # sorts first, one flip only
    events: list[Event] = [
        _flip(5, None, "diverged"),  # an appearance, listed first: skipped, not the end
        _flip(6, "converged", "diverged", lease=quiet),
        *(_flip(s, "converged", "diverged") for s in (10, 20, 30)),
    ]
    (c,) = _flapping(events, flapping_transitions=3)
    assert c.key == f"flapping:{L1}"
    assert c.evidence == (Evidence("lease", L1, "3 transitions"),)  # no thread: no thread evidence


def test_lease_diverged_destroyed_but_not_leaking_still_alerts_and_scan_goes_on(tmp_path: Path) -> None:
    leaked, stopped, drift = "lease-000000000001", "lease-000000000002", "lease-000000000003"

    def build(c) -> None:  # type: ignore[no-untyped-def]
        created = naive(T0 - timedelta(hours=1))
        # destroyed + detached, its labelled container still runs: the leak rule's, skipped here
        add_lease(c, leaked, "dock", desired_state="destroyed", observed_state="detached", created_at=created)
        # destroyed, the instance is stopped (holds disk, not a leak): drift, reported here
        add_lease(c, stopped, "dock", current_instance_id="c-2", desired_state="destroyed",
                  observed_state="running", created_at=created)  # fmt: skip
        add_lease(c, drift, "dock", current_instance_id="c-3", created_at=created, observed_state="running")

    db = sandbox_db(tmp_path / "dd.db", build)
    lst = [
        inst("dock", "leon-0123456789ab", claimed=leaked),
        inst("dock", "c-2", "stopped"),
        inst("dock", "c-3", "paused"),
    ]
    gt = ground_truth(db, [listing("dock", "docker", lst, listed_at=T0)], T0)
    got = rule_lease_diverged(AlertInputs(gt, T0), AlertsConfig())
    assert [c.key for c in got] == [f"lease_diverged:{stopped}", f"lease_diverged:{drift}"]
    assert got[1].evidence == (Evidence("lease", drift, got[1].evidence[0].note),)  # no thread evidence


def test_resource_pressure_scan_goes_past_stopped_and_cool_leases_and_names_the_thread(
    tmp_path: Path,
) -> None:
    paused, cool, hot = "lease-000000000001", "lease-000000000002", "lease-000000000003"

    def build(c) -> None:  # type: ignore[no-untyped-def]
        created = naive(T0 - timedelta(hours=1))
        for i, lid in enumerate((paused, cool, hot)):
            add_lease(
                c, lid, "dock", current_instance_id=f"c-{i}", observed_state="running", created_at=created
            )
        add_terminal(c, "term-000000000003", "m_t-3", hot, pointer=True)
        at = T0 - timedelta(seconds=30)
        add_resource_snapshot(c, paused, "dock", cpu_used=99, collected_at=at)  # paused: not judged
        add_resource_snapshot(c, cool, "dock", cpu_used=10, collected_at=at)  # under every threshold
        add_resource_snapshot(c, hot, "dock", cpu_used=99, collected_at=at)

    db = sandbox_db(tmp_path / "scan.db", build)
    lst = [inst("dock", "c-0", "paused"), inst("dock", "c-1"), inst("dock", "c-2")]
    gt = ground_truth(db, [listing("dock", "docker", lst, listed_at=T0)], T0)
    (c,) = rule_resource_pressure(AlertInputs(gt, T0), AlertsConfig(cpu_pct=90))
    assert (c.key, c.rule) == (f"resource_pressure:{hot}", "resource_pressure")
    assert c.evidence == (Evidence("resource_snapshot", hot, "cpu 99%"), Evidence("thread", "m_t-3"))
