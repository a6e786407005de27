"""Exact assertions on the pure alert rules (opcockpit/domain/alerts.py), so a one-line change to a
rule (a threshold ignored, `<` for `<=`, a dropped branch, a wrong severity or hold time) fails
a test. Ground truths come from real LEON-schema DBs through the real reader and reconcile.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from opcockpit.domain.alerts import (
    SCOPE_EVENTS_DB,
    SCOPE_LEASE_EVENTS,
    AlertInputs,
    AlertsConfig,
    Evidence,
    Severity,
    evaluate_rules,
    fmt_duration,
    rule_leak,
    rule_lease_recovering,
    rule_orphans_present,
    rule_provider_unreachable,
    unknown_scopes,
)
from opcockpit.domain.models import GroundTruth
from tests.alerts_support import T0, ground_truth, inst, lease_events, listing, naive, sandbox_db
from tests.fixtures.leon_db import add_lease, add_lease_event

L1, L2 = "lease-aaaaaaaaaaaa", "lease-bbbbbbbbbbbb"


def _orphans_gt(tmp_path: Path, n: int) -> GroundTruth:
    db = sandbox_db(tmp_path / f"orph-{n}.db", lambda c: None)
    strays = [inst("dock", f"stray-{i}", created_at=T0 - timedelta(minutes=10 * (i + 1))) for i in range(n)]
    return ground_truth(db, [listing("dock", "docker", strays, listed_at=T0)], T0)


# --------------------------------------------------------------------------- orphans_present


@pytest.mark.parametrize(
    ("orphans", "minimum", "fires"), [(2, 2, True), (1, 2, False), (2, 3, False), (3, 1, True)]
)
def test_orphans_min_is_the_exact_threshold(tmp_path: Path, orphans: int, minimum: int, fires: bool) -> None:
    gt = _orphans_gt(tmp_path, orphans)
    got = rule_orphans_present(AlertInputs(gt, T0), AlertsConfig(orphans_min=minimum))
    assert [c.key for c in got] == (["orphans_present:dock"] if fires else [])


def test_orphans_present_candidate_fields(tmp_path: Path) -> None:
    gt = _orphans_gt(tmp_path, 2)
    (c,) = rule_orphans_present(AlertInputs(gt, T0), AlertsConfig(orphans_min=2, orphans_for_s=420))
    assert c.rule == "orphans_present" and c.severity is Severity.WARNING
    assert c.summary == "2 orphan instance(s) at dock (2 running), oldest 20m"
    assert c.threshold == ">= 2 orphan(s) for > 7m"
    assert c.hold_s == 420 and c.scope == "dock"
    assert c.since == T0 - timedelta(minutes=20)  # the oldest orphan's created_at
    assert dict(c.details) == {"count": 2, "running": 2, "oldest_age_s": 1200.0}
    assert c.evidence == (
        Evidence("orphan", "dock/stray-0", "running"),
        Evidence("orphan", "dock/stray-1", "running"),
    )


# --------------------------------------------------------------------------- provider_unreachable


def _providers_gt(tmp_path: Path) -> GroundTruth:
    db = sandbox_db(tmp_path / "prov.db", lambda c: add_lease(c, L1, "mystery", created_at=naive(T0)))
    return ground_truth(
        db,
        [
            listing("never", "e2b", ok=False, error="HTTP 503"),  # never listed: status error
            listing("stale", "docker", [inst("stale", "x")], ok=False, listed_at=T0 - timedelta(minutes=2),
                    error="boom"),
            listing("fine", "docker", [], listed_at=T0),
            listing("local", "local", listed_at=T0),
        ],
        T0,
    )  # fmt: skip


def test_provider_unreachable_never_listed_stale_and_unconfigured(tmp_path: Path) -> None:
    gt = _providers_gt(tmp_path)
    got = {
        c.key: c for c in rule_provider_unreachable(AlertInputs(gt, T0), AlertsConfig(provider_down_for_s=90))
    }
    assert sorted(got) == [
        "provider_unreachable:mystery",
        "provider_unreachable:never",
        "provider_unreachable:stale",
    ]  # ok and db_only providers never alert
    never, stale, mystery = (
        got["provider_unreachable:never"],
        got["provider_unreachable:stale"],
        got["provider_unreachable:mystery"],
    )
    assert (never.severity, never.summary) == (
        Severity.CRITICAL,
        "provider never unreachable; never listed: HTTP 503",
    )
    assert dict(never.details) == {"status": "error", "error": "HTTP 503", "listing_age_s": None}
    assert (stale.severity, stale.summary) == (
        Severity.CRITICAL,
        "provider stale unreachable; showing a listing 2m old: boom",
    )
    assert dict(stale.details) == {"status": "stale", "error": "boom", "listing_age_s": 120.0}
    assert mystery.severity is Severity.WARNING
    assert mystery.summary.startswith("provider mystery not configured (its leases cannot be checked)")
    for c in got.values():
        assert c.rule == "provider_unreachable" and c.hold_s == 90 and c.scope is None and c.since is None
        assert c.threshold == "unreachable for > 1m"
        assert c.evidence[0].kind == "provider" and c.evidence[0].id == c.key.split(":", 1)[1]


# --------------------------------------------------------------------------- enabled / disabled / severity


def test_disabled_alerts_and_disabled_rules(tmp_path: Path) -> None:
    gt = _providers_gt(tmp_path)
    orphaned = _orphans_gt(tmp_path, 1)
    inp = AlertInputs(gt, T0)
    base = dict(provider_down_for_s=0)
    every = [c.key for c in evaluate_rules(inp, AlertsConfig(**base))]
    assert every == [
        "provider_unreachable:mystery",
        "provider_unreachable:never",
        "provider_unreachable:stale",
    ]
    assert evaluate_rules(inp, AlertsConfig(enabled=False, **base)) == []
    assert evaluate_rules(AlertInputs(orphaned, T0), AlertsConfig(enabled=False)) == []
    assert evaluate_rules(inp, AlertsConfig(disabled_rules=["provider_unreachable"], **base)) == []
    # disabling another rule leaves this one alone
    kept = evaluate_rules(inp, AlertsConfig(disabled_rules=["orphans_present", "leak"], **base))
    assert [c.key for c in kept] == every
    assert [c.key for c in evaluate_rules(AlertInputs(orphaned, T0), AlertsConfig())] == [
        "orphans_present:dock"
    ]
    assert evaluate_rules(AlertInputs(orphaned, T0), AlertsConfig(disabled_rules=["orphans_present"])) == []


def test_severity_override_applies_to_its_rule_only(tmp_path: Path) -> None:
    gt = _providers_gt(tmp_path)
    cfg = AlertsConfig(provider_down_for_s=0, severity={"provider_unreachable": "info"})
    assert [c.severity for c in evaluate_rules(AlertInputs(gt, T0), cfg)] == [Severity.INFO] * 3
    orphaned = _orphans_gt(tmp_path, 1)
    cfg = AlertsConfig(severity={"provider_unreachable": "info"})
    assert [c.severity for c in evaluate_rules(AlertInputs(orphaned, T0), cfg)] == [Severity.WARNING]
    cfg = AlertsConfig(severity={"orphans_present": "critical"})
    assert [c.severity for c in evaluate_rules(AlertInputs(orphaned, T0), cfg)] == [Severity.CRITICAL]


# --------------------------------------------------------------------------- unknown scopes


def test_unknown_scopes_are_exactly_the_inputs_we_could_not_read(tmp_path: Path) -> None:
    gt = _providers_gt(tmp_path)
    assert unknown_scopes(AlertInputs(gt, T0)) == frozenset(
        {"never", "stale", "mystery", SCOPE_EVENTS_DB, SCOPE_LEASE_EVENTS}
    )
    assert unknown_scopes(AlertInputs(gt, T0, lease_events=[])) == frozenset(
        {"never", "stale", "mystery", SCOPE_EVENTS_DB}
    )


# --------------------------------------------------------------------------- lease_recovering


def test_lease_recovering_only_recovering_leases_with_their_own_start(tmp_path: Path) -> None:
    def build(c) -> None:  # type: ignore[no-untyped-def]
        add_lease(
            c,
            L1,
            "dock",
            status="recovering",
            last_error="create failed: quota",
            created_at=naive(T0 - timedelta(hours=1)),
            updated_at=naive(T0 - timedelta(minutes=7)),
        )
        add_lease(c, L2, "dock", status="active", created_at=naive(T0), updated_at=naive(T0))

    db = sandbox_db(tmp_path / "rec.db", build)  # fmt: skip
    gt = ground_truth(db, [listing("dock", "docker", listed_at=T0)], T0)
    (c,) = rule_lease_recovering(AlertInputs(gt, T0), AlertsConfig(recovering_for_s=240))
    assert c.key == f"lease_recovering:{L1}" and c.severity is Severity.WARNING
    assert c.summary == (
        f"dock lease {L1} stuck in recovering (instance creation failed or hung?): create failed: quota"
    )
    assert c.threshold == "recovering for > 4m" and c.hold_s == 240
    assert c.since == T0 - timedelta(minutes=7)
    assert c.evidence[0] == Evidence("lease", L1, "create failed: quota")


# --------------------------------------------------------------------------- leak


def test_leak_states_decide_which_instances_leak(tmp_path: Path) -> None:
    def build(c) -> None:  # type: ignore[no-untyped-def]
        add_lease(
            c,
            L1,
            "dock",
            current_instance_id="c-1",
            desired_state="destroyed",
            observed_state="paused",
            created_at=naive(T0),
        )

    db = sandbox_db(tmp_path / "leak.db", build)  # fmt: skip
    gt = ground_truth(db, [listing("dock", "docker", [inst("dock", "c-1", "paused")], listed_at=T0)], T0)
    assert rule_leak(AlertInputs(gt, T0), AlertsConfig()) == []  # paused is not a leak by default
    (c,) = rule_leak(AlertInputs(gt, T0), AlertsConfig(leak_states=["running", "paused"], leak_for_s=30))
    assert c.key == f"leak:{L1}" and c.severity is Severity.CRITICAL and c.hold_s == 30 and c.scope == "dock"
    assert c.threshold == "instance running/paused while the lease is detached/destroyed, for > 30s"
    assert dict(c.details) == {"instances": 1}


# --------------------------------------------------------------------------- intent_failures boundary


def test_intent_failures_min_is_inclusive_and_window_bounded(tmp_path: Path) -> None:
    def build(c) -> None:  # type: ignore[no-untyped-def]
        add_lease(c, L1, "dock", created_at=naive(T0 - timedelta(hours=1)))
        for i, minutes in enumerate((1, 2, 10)):  # the 10-minute one is exactly at the window edge
            add_lease_event(
                c,
                L1,
                "intent.create",
                "api",
                error=f"quota exceeded #{i}",
                event_id=f"ev-{i}",
                created_at=naive(T0 - timedelta(minutes=minutes)),
            )
        add_lease_event(
            c,
            L1,
            "intent.create",
            "api",
            error="too old",
            event_id="ev-old",
            created_at=naive(T0 - timedelta(minutes=11)),
        )

    db = sandbox_db(tmp_path / "intent.db", build)  # fmt: skip
    gt = ground_truth(db, [listing("dock", "docker", listed_at=T0)], T0)
    events, provider_events = lease_events(db, T0 - timedelta(hours=2))
    inp = AlertInputs(gt, T0, lease_events=events, provider_events=provider_events)
    got = [c for c in evaluate_rules(inp, AlertsConfig(intent_failures_min=3, intent_window_s=600))
           if c.rule == "intent_failures"]  # fmt: skip
    assert [c.key for c in got] == ["intent_failures:dock"]
    assert dict(got[0].details) == {
        "count": 3,
        "leases": 1,
        "top_signature": "quota exceeded #<n>",
        "top_count": 3,
    }
    assert got[0].threshold == ">= 3 in 10m" and got[0].scope == SCOPE_LEASE_EVENTS
    none = [
        c for c in evaluate_rules(inp, AlertsConfig(intent_failures_min=4)) if c.rule == "intent_failures"
    ]
    assert none == []


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (-5, "0s"), (0, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h"),
     (3660, "1h1m"), (5400, "1h30m"), (86399, "23h59m"), (86400, "1d"), (90000, "1d1h")],
)  # fmt: skip
def test_fmt_duration(seconds: float | None, text: str) -> None:
    assert fmt_duration(seconds) == text
