"""Alert rules per changed lease (domain.alerts_inc.IncrementalRules, issue 10) equal a full
evaluation (`evaluate_rules`) after every random step.

A step changes some rows (new objects, like the incremental reconciler's changed rows; the others
stay the same objects), adds and removes leases, changes orphans (leaks claim leases, which moves
lease_diverged), moves `now` (resource snapshots age out), sometimes repeats a lease id, and
sometimes changes the config.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from opcockpit.domain.alerts import AlertInputs, AlertsConfig, Severity, evaluate_rules
from opcockpit.domain.alerts_inc import IncrementalRules
from opcockpit.domain.models import (
    Convergence,
    GroundTruth,
    GroundTruthRow,
    OrphanRow,
    ProviderHealth,
    ProviderStatus,
    Resources,
)

T0 = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
LEASES = [f"lease-{i}" for i in range(12)]
PROVS = ("dock", "e2b")
CONFIGS = (
    AlertsConfig(),
    AlertsConfig(leak_states=["running", "paused"], memory_pct=50, resource_max_age_s=600),
    AlertsConfig(disabled_rules=["lease_diverged"], severity={"leak": Severity.INFO}),
    AlertsConfig(
        disabled_rules=["leak", "resource_pressure"], severity={"lease_diverged": Severity.CRITICAL}
    ),
)

row_state = st.fixed_dictionaries(
    {
        "provider": st.sampled_from(PROVS),
        "desired_state": st.sampled_from(["running", "paused", "destroyed", "detached"]),
        "observed_state": st.sampled_from(["running", "paused", "detached", "unknown"]),
        "provider_state": st.sampled_from([None, "running", "paused", "stopped"]),
        "convergence": st.sampled_from(list(Convergence)),
        "lease_status": st.sampled_from([None, "active", "recovering"]),
        "thread_id": st.sampled_from([None, "t-1"]),
        "mem": st.sampled_from([None, 10.0, 70.0, 99.0]),
        "age_min": st.sampled_from([None, 1, 9, 30]),
    }
)
orphan = st.tuples(
    st.sampled_from(PROVS),
    st.sampled_from([None, *LEASES[:4]]),
    st.sampled_from(["lease_exists", "lease_missing", "lease_points_elsewhere", None]),
    st.sampled_from(["running", "paused"]),
)
step = st.fixed_dictionaries(
    {
        "set": st.dictionaries(st.sampled_from(LEASES), row_state, max_size=4),
        "drop": st.lists(st.sampled_from(LEASES), max_size=2),
        "orphans": st.none() | st.lists(orphan, max_size=3),
        "dt_min": st.sampled_from([0, 1, 5]),
        "dup": st.integers(0, 12),
        "cfg": st.sampled_from([None, None, None, 0, 1, 2, 3]),
    }
)


def _row(lid: str, s: dict, now: datetime) -> GroundTruthRow:
    res = None
    if s["mem"] is not None or s["age_min"] is not None:
        at = None if s["age_min"] is None else now - timedelta(minutes=s["age_min"])
        res = Resources(memory_used_mb=s["mem"], memory_total_mb=100.0, collected_at=at, cpu_used=5.0)
    return GroundTruthRow(
        lease_id=lid, provider=s["provider"], thread_id=s["thread_id"], thread_ids=(), chat_session_id=None,
        instance_id=f"i-{lid}", desired_state=s["desired_state"], observed_state=s["observed_state"],
        provider_state=s["provider_state"], convergence=s["convergence"], reason="why", last_active=None,
        source="lease+provider", lease_status=s["lease_status"], version=1, needs_refresh=False,
        last_error="boom" if s["lease_status"] == "recovering" else None, resources=res, updated_at=T0,
    )  # fmt: skip


def _orphan(n: int, o: tuple) -> OrphanRow:
    prov, lid, claim, state = o
    return OrphanRow(
        provider=prov, instance_id=f"o-{n}", name=None, provider_state=state, raw_state=state, labels={},
        created_at=T0, claimed_lease_id=lid, claim=claim if lid else None, confirmed=None,
    )  # fmt: skip


PROVIDERS = tuple(ProviderHealth(p, "docker", ProviderStatus.OK, None, T0, 1) for p in PROVS)


@settings(max_examples=150, deadline=None)
@given(
    first=st.dictionaries(st.sampled_from(LEASES), row_state, min_size=1), steps=st.lists(step, max_size=8)
)
def test_incremental_candidates_equal_a_full_evaluation(first: dict, steps: list[dict]) -> None:
    now, cfg = T0, CONFIGS[0]
    rows = {lid: _row(lid, s, now) for lid, s in sorted(first.items())}
    orphans: tuple[OrphanRow, ...] = ()
    inc = IncrementalRules()
    for i, s in enumerate([{"set": {}, "drop": [], "orphans": None, "dt_min": 0, "dup": 99, "cfg": None},
                           *steps]):  # fmt: skip
        now += timedelta(minutes=s["dt_min"])
        if s["cfg"] is not None:
            cfg = CONFIGS[s["cfg"]]
        for lid, state in s["set"].items():
            rows[lid] = _row(lid, state, now)  # a changed row: a new object
        for lid in s["drop"]:
            rows.pop(lid, None)
        if s["orphans"] is not None:
            orphans = tuple(_orphan(n, o) for n, o in enumerate(s["orphans"]))
        ordered = [rows[k] for k in sorted(rows)]
        if s["dup"] < len(ordered):  # a lease id twice (only the full reconcile can produce it)
            ordered.append(replace(ordered[s["dup"]], convergence=Convergence.DIVERGED))
        gt = GroundTruth(generated_at=now, providers=PROVIDERS, rows=tuple(ordered), orphans=orphans)
        inp = AlertInputs(gt, now)
        assert inc.evaluate(inp, cfg) == evaluate_rules(inp, cfg), f"step {i}"


def test_an_unchanged_round_judges_no_row_and_a_changed_row_alone() -> None:
    state = {"provider": "dock", "desired_state": "running", "observed_state": "running",
             "provider_state": "running", "convergence": Convergence.CONVERGED, "lease_status": "active",
             "thread_id": None, "mem": None, "age_min": None}  # fmt: skip
    rows = [_row(lid, state, T0) for lid in LEASES]
    inc, cfg = IncrementalRules(), AlertsConfig()
    gt = GroundTruth(generated_at=T0, providers=PROVIDERS, rows=tuple(rows), orphans=())
    assert inc.evaluate(AlertInputs(gt, T0), cfg) == [] and inc.judged == len(LEASES)
    assert inc.evaluate(AlertInputs(replace(gt, rows=tuple(rows)), T0), cfg) == [] and inc.judged == 0
    rows[3] = _row(LEASES[3], {**state, "convergence": Convergence.DIVERGED}, T0)
    gt = replace(gt, rows=tuple(rows))
    got = inc.evaluate(AlertInputs(gt, T0), cfg)
    assert [c.key for c in got] == [f"lease_diverged:{LEASES[3]}"] and inc.judged == 1
    assert got == evaluate_rules(AlertInputs(gt, T0), cfg)


def test_a_leaking_orphan_claiming_an_unchanged_row_moves_its_divergence_to_the_leak_rule() -> None:
    state = {"provider": "dock", "desired_state": "destroyed", "observed_state": "detached",
             "provider_state": "stopped", "convergence": Convergence.DIVERGED, "lease_status": None,
             "thread_id": None, "mem": None, "age_min": None}  # fmt: skip
    rows = tuple(_row(lid, state, T0) for lid in LEASES[:2])
    inc, cfg = IncrementalRules(), AlertsConfig()
    gt = GroundTruth(generated_at=T0, providers=PROVIDERS, rows=rows, orphans=())
    assert [c.rule for c in inc.evaluate(AlertInputs(gt, T0), cfg)] == ["lease_diverged"] * 2
    leaking = (_orphan(0, ("dock", LEASES[0], "lease_exists", "running")),)
    for orphans in (leaking, ()):  # the same row objects; only the orphan comes and goes
        gt = replace(gt, orphans=orphans)
        got = inc.evaluate(AlertInputs(gt, T0), cfg)
        assert got == evaluate_rules(AlertInputs(gt, T0), cfg)
    assert [c.key for c in got] == [f"lease_diverged:{lid}" for lid in LEASES[:2]]
    gt = replace(gt, orphans=leaking)
    assert [c.key for c in inc.evaluate(AlertInputs(gt, T0), cfg)] == [
        f"leak:{LEASES[0]}",
        f"lease_diverged:{LEASES[1]}",
        "orphans_present:dock",
    ]
