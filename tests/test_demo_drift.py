# ruff: noqa: E501  (long SQL strings read better unwrapped)
"""The drift simulator changes the provider doubles and writes LEON-valid rows."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opcockpit.demo.drift import DriftSimulator, normal_state
from opcockpit.demo.runtime import DemoEnvironment, demo_environment

LOCAL_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?$")
SQL_TS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


@pytest.fixture
def env() -> Iterator[DemoEnvironment]:
    with demo_environment(leases=80, seed=3, drift=False) as env:
        yield env


def q(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def lease(env: DemoEnvironment, lease_id: str) -> dict:
    conn = sqlite3.connect(f"file:{env.fleet.sandbox_db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM sandbox_leases WHERE lease_id=?", (lease_id,)).fetchone())
    finally:
        conn.close()


def events_of(env: DemoEnvironment, lease_id: str) -> list[tuple]:
    return q(env.fleet.sandbox_db, "SELECT event_type, source, payload_json, error, created_at FROM lease_events "
             "WHERE lease_id=? ORDER BY created_at", (lease_id,))  # fmt: skip


def provider_state(env: DemoEnvironment, provider: str, iid: str) -> str | None:
    double = env.doubles[provider]
    inst = double.instances.get(iid)
    return None if inst is None else normal_state(double, inst)


def test_leon_pause_is_one_apply(env: DemoEnvironment) -> None:
    ev = env.drift.step("leon_pause")
    assert ev is not None and ev.lease_id and ev.provider and ev.instance_id
    after = lease(env, ev.lease_id)
    assert (after["desired_state"], after["observed_state"], after["instance_status"]) == (
        "paused",
        "paused",
        "paused",
    )
    history = events_of(env, ev.lease_id)
    # version +1 with exactly one lease_events row, written in the same transaction (same timestamp)
    assert after["version"] == len(history)
    assert history[-1][:2] == ("intent.pause", "api") and history[-1][3] is None
    assert history[-1][4] == after["updated_at"] == after["observed_at"] and LOCAL_ISO.match(
        after["updated_at"]
    )
    assert provider_state(env, ev.provider, ev.instance_id) == "paused"
    # the idle reaper closed the lease's live sessions
    assert q(env.fleet.sandbox_db, "SELECT COUNT(*) FROM chat_sessions WHERE lease_id=? AND status IN ('active','idle')",
             (ev.lease_id,)) == [(0,)]  # fmt: skip
    assert q(env.fleet.sandbox_db, "SELECT COUNT(*) FROM chat_sessions WHERE lease_id=? AND close_reason='idle_timeout' "
             "AND ended_at IS NOT NULL", (ev.lease_id,))[0][0] >= 1  # fmt: skip
    assert q(
        env.fleet.sandbox_db, "SELECT status FROM sandbox_instances WHERE instance_id=?", (ev.instance_id,)
    ) == [("paused",)]


def test_observe_notices_provider_drift_first(env: DemoEnvironment) -> None:
    # Drifted leases (planned paused/killed, or observed 'unknown' while running) are observed first.
    drifted = {d.lease_id for d in env.fleet.drift.paused_at_provider + env.fleet.drift.killed}
    drifted |= {
        lid
        for (lid,) in q(
            env.fleet.sandbox_db, "SELECT lease_id FROM sandbox_leases WHERE observed_state='unknown'"
        )
    }
    ev = env.drift.step("leon_observe")
    assert ev is not None and ev.lease_id in drifted
    row = lease(env, ev.lease_id)
    kind, source, payload, error, _ = events_of(env, ev.lease_id)[-1]
    assert (kind, source, error) == ("observe.status", "read.status", None)
    assert row["desired_state"] == "running"  # observation never changes intent
    now_at_provider = provider_state(env, ev.provider, ev.instance_id)
    if now_at_provider is None:  # killed: unbound, expired, history row stopped
        assert payload == '{"status": "deleted"}' and row["observed_state"] == "detached"
        assert row["current_instance_id"] is None and row["status"] == "expired"
        assert q(
            env.fleet.sandbox_db,
            "SELECT status FROM sandbox_instances WHERE instance_id=?",
            (ev.instance_id,),
        ) == [("stopped",)]
    else:
        assert payload == f'{{"status": "{now_at_provider}"}}' and row["observed_state"] == now_at_provider


def test_kill_then_observe_detaches(env: DemoEnvironment) -> None:
    killed = env.drift.step("kill")
    assert killed is not None and killed.instance_id not in env.doubles[killed.provider].instances
    # force observation of exactly that lease via LEON's apply()
    version = env.drift.apply(
        killed.lease_id, "observe.status", "read.status", '{"status": "deleted"}', observed="detached"
    )
    row = lease(env, killed.lease_id)
    assert row["version"] == version and row["current_instance_id"] is None and row["status"] == "expired"


def test_failed_intent_flags_refresh_and_keeps_states(env: DemoEnvironment) -> None:
    ev = env.drift.step("leon_failed_intent")
    assert ev is not None
    row = lease(env, ev.lease_id)
    assert (row["desired_state"], row["observed_state"], row["needs_refresh"]) == ("running", "running", 1)
    assert row["last_error"].startswith(f"Failed to pause lease {ev.lease_id}")
    kind, source, _payload, error, created = events_of(env, ev.lease_id)[-1]
    assert (
        (kind, source) == ("intent.pause", "api")
        and error == row["last_error"]
        and created == row["refresh_hint_at"]
    )


def test_apply_on_a_missing_lease_writes_nothing(env: DemoEnvironment) -> None:
    before = q(env.fleet.sandbox_db, "SELECT COUNT(*) FROM lease_events")
    with pytest.raises(LookupError):
        env.drift.apply("lease-000000000000", "observe.status", "read.status", "{}", observed="running")
    assert q(env.fleet.sandbox_db, "SELECT COUNT(*) FROM lease_events") == before


def test_behind_the_back_actions_touch_only_the_provider(env: DemoEnvironment) -> None:
    before = q(env.fleet.sandbox_db, "SELECT lease_id, version FROM sandbox_leases ORDER BY lease_id")
    paused = env.drift.step("pause_behind_back")
    assert paused is not None and provider_state(env, paused.provider, paused.instance_id) == "paused"
    resumed = env.drift.step("resume_behind_back")
    assert resumed is not None and provider_state(env, resumed.provider, resumed.instance_id) == "running"
    orphan = env.drift.step("spawn_orphan")
    assert orphan is not None and orphan.instance_id in env.doubles[orphan.provider].instances
    assert q(env.fleet.sandbox_db, "SELECT lease_id, version FROM sandbox_leases ORDER BY lease_id") == before


def test_runs_start_finish_error_with_retention(env: DemoEnvironment) -> None:
    drift = env.drift
    started = drift.step("run_start")
    assert started is not None
    thread = next(iter(drift.inflight_runs))
    run_id = drift.inflight_runs[thread]
    assert drift.step("run_finish") is not None
    rows = q(
        env.fleet.events_db,
        "SELECT run_id, event_type, created_at FROM run_events WHERE thread_id=? ORDER BY seq",
        (thread,),
    )
    agent_runs = {r for r, *_ in rows if not r.startswith("activity_")}
    assert agent_runs == {run_id}  # cleanup_old_runs(keep_latest=1)
    mine = [e for r, e, _ in rows if r == run_id]
    assert mine[:2] == ["user_message", "run_start"] and mine[-1] == "run_done" and "tool_result" in mine
    assert all(SQL_TS.match(ts) for *_, ts in rows)  # CURRENT_TIMESTAMP default, UTC
    drift.step("run_start")
    thread2 = next(iter(drift.inflight_runs))
    drift.step("run_error")
    tail = [e for (e,) in q(env.fleet.events_db, "SELECT event_type FROM run_events WHERE run_id=? ORDER BY seq",
                            (q(env.fleet.events_db, "SELECT run_id FROM run_events WHERE thread_id=? ORDER BY seq DESC LIMIT 1", (thread2,))[0][0],))]  # fmt: skip
    assert tail[-2:] == ["error", "run_done"]


def test_session_touch_moves_last_active(env: DemoEnvironment) -> None:
    before = dict(q(env.fleet.sandbox_db, "SELECT chat_session_id, last_active_at FROM chat_sessions"))
    ev = env.drift.step("session_touch")
    assert ev is not None
    after = dict(q(env.fleet.sandbox_db, "SELECT chat_session_id, last_active_at FROM chat_sessions"))
    changed = [k for k in before if before[k] != after[k]]
    assert len(changed) == 1 and after[changed[0]] > before[changed[0]]


def test_background_thread_ticks_and_stops(env: DemoEnvironment) -> None:
    drift = DriftSimulator(env.fleet, env.doubles, seed=5, interval_s=0.02)
    drift.start()
    try:
        deadline = time.monotonic() + 20
        while len(drift.history) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        drift.stop()
    assert not drift.running
    assert len(drift.history) >= 5 and not list(drift.errors)
    # whatever it did, the invariants LEON keeps still hold
    db = env.fleet.sandbox_db
    assert (
        q(
            db,
            "SELECT terminal_id FROM chat_sessions WHERE status IN ('active','idle','paused') GROUP BY terminal_id HAVING COUNT(*) > 1",
        )
        == []
    )
    assert q(db, "SELECT l.lease_id FROM sandbox_leases l LEFT JOIN (SELECT lease_id, COUNT(*) n FROM lease_events GROUP BY lease_id) e "
                 "USING (lease_id) WHERE l.version != COALESCE(e.n, 0)") == []  # fmt: skip


def test_unknown_action_weights_are_rejected(env: DemoEnvironment) -> None:
    with pytest.raises(ValueError):
        DriftSimulator(env.fleet, env.doubles, weights={"explode": 1})


async def test_provider_outage_makes_rows_stale_never_gone_then_heals(env: DemoEnvironment) -> None:
    from opcockpit.domain.models import Convergence, ProviderStatus
    from opcockpit.wiring import build_collector

    sim = env.drift
    collector = build_collector(env.config)
    try:
        before = await collector.refresh()  # a good listing first, so the outage shows its age
        event = sim.step("provider_outage")
        assert event is not None and event.provider in env.doubles
        down = event.provider
        assert env.doubles[down].faults.error_status == 503 and down in sim.outages

        during = await collector.refresh()
        health = {p.name: p for p in during.providers}
        assert health[down].status is ProviderStatus.STALE and health[down].age_s is not None
        rows = [r for r in during.rows if r.provider == down]
        assert rows and all(r.convergence is Convergence.STALE for r in rows)
        assert all(r.stale_age_s is not None for r in rows)
        assert not [o for o in during.orphans if o.provider == down]  # no orphans from a failed list
        # The last known provider states are kept, never turned into "gone".
        known = {r.lease_id: r.provider_state for r in before.rows if r.provider == down}
        assert {r.lease_id: r.provider_state for r in rows} == known

        assert sim.heal_outages(now=float("inf")) == [down]
        assert env.doubles[down].faults.error_status is None and not sim.outages
        after = await collector.refresh()
        assert {p.name: p.status for p in after.providers}[down] is ProviderStatus.OK
    finally:
        await collector.aclose()


async def test_demo_fleet_repairs_as_well_as_decays(env: DemoEnvironment) -> None:
    """Issue 15: a demo left open stayed realistic only for minutes (converged 48 -> 19). With LEON's
    repairs and the orphan cleanup in the mix, the converged share over 600 simulated ticks stays in
    a band around where it started, and orphans do not pile up; without them it decays (the test's
    own control, so the band is not vacuous)."""
    from opcockpit.domain.models import Convergence
    from opcockpit.wiring import build_collector

    async def shares(weights: dict[str, float] | None) -> tuple[list[float], list[int]]:
        sim = DriftSimulator(env.fleet, env.doubles, seed=11, weights=weights)
        collector = build_collector(env.config)
        converged, orphans = [], []
        try:
            for _ in range(7):
                sim.heal_outages(now=float("inf"))  # measure the fleet, not a provider outage
                gt = await collector.refresh()
                converged.append(sum(r.convergence is Convergence.CONVERGED for r in gt.rows) / len(gt.rows))
                orphans.append(len(gt.orphans))
                for _ in range(100):
                    sim.tick()
        finally:
            sim.heal_outages(now=float("inf"))
            await collector.aclose()
        return converged, orphans

    converged, orphans = await shares(None)
    start = converged[0]
    assert all(start - 0.2 <= s <= 1.0 for s in converged), converged
    assert max(orphans) <= orphans[0] + 20, orphans


async def test_without_repairs_the_demo_decays(tmp_path: Path) -> None:
    """The control of the band above: the same drift minus LEON's repairs leaves the band."""
    from opcockpit.demo.drift import ACTION_WEIGHTS
    from opcockpit.domain.models import Convergence
    from opcockpit.wiring import build_collector

    weights = {k: (0.0 if k in ("leon_repair", "orphan_gc") else w) for k, w in ACTION_WEIGHTS.items()}
    with demo_environment(leases=80, seed=3, drift=False) as env:
        sim = DriftSimulator(env.fleet, env.doubles, seed=11, weights=weights)
        collector = build_collector(env.config)
        try:
            first = await collector.refresh()
            for _ in range(600):
                sim.tick()
            sim.heal_outages(now=float("inf"))
            last = await collector.refresh()
        finally:
            await collector.aclose()

    def share(gt):  # type: ignore[no-untyped-def]
        return sum(r.convergence is Convergence.CONVERGED for r in gt.rows) / len(gt.rows)

    assert share(last) < share(first) - 0.2
