"""Every alert rule on its own fixture DB (LEON schema), through reader + reconcile + engine +
ledger, with an injected clock: pending within the hold time, firing, dedup, resolving."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from opcockpit.domain.alerts import AlertsConfig
from opcockpit.domain.models import Convergence
from tests.alerts_support import (
    T0,
    Clock,
    edit_db,
    engine,
    events_db,
    ground_truth,
    health,
    inst,
    keys,
    lease_events,
    listing,
    naive,
    sandbox_db,
)
from tests.fixtures.leon_db import (
    add_lease,
    add_lease_event,
    add_provider_event,
    add_resource_snapshot,
    add_run,
    add_run_event,
    add_terminal,
)

L1, L2 = "lease-aaaaaaaaaaaa", "lease-bbbbbbbbbbbb"


# --------------------------------------------------------------------------- stuck_run


def test_stuck_run_fires_dedups_and_resolves(tmp_path: Path) -> None:
    clock = Clock()
    db = sandbox_db(tmp_path / "sandbox.db", lambda c: None)
    edb = events_db(
        tmp_path / "events.db",
        lambda c: add_run(c, "m_t-1", "run-stuck", outcome="running", start=T0 - timedelta(minutes=20)),
    )
    gt = ground_truth(db, [], clock.now)
    eng = engine(tmp_path, clock)

    snap = eng.evaluate(gt, health(edb, clock.now))
    assert keys(snap) == ["stuck_run:run-stuck"]
    alert = snap.active[0]
    assert [a.key for a in snap.newly_firing] == ["stuck_run:run-stuck"]
    assert {(e.kind, e.id) for e in alert.evidence} == {("run", "run-stuck"), ("thread", "m_t-1")}
    assert alert.rule == "stuck_run" and alert.severity == "warning"
    # stuck since the last event (T0-20m+4s) plus the 600 s threshold
    assert alert.first_seen == T0 - timedelta(minutes=10) + timedelta(seconds=4)

    clock.advance(60)
    snap2 = eng.evaluate(gt, health(edb, clock.now))
    assert [a.id for a in snap2.active] == [alert.id]  # same episode, not a second alert
    assert snap2.newly_firing == ()
    assert snap2.active[0].last_seen == clock.now and snap2.active[0].first_seen == alert.first_seen

    # events.db unreadable this round: the alert is kept, not resolved
    clock.advance(60)
    snap3 = eng.evaluate(gt, None)
    assert keys(snap3) == ["stuck_run:run-stuck"] and snap3.newly_resolved == ()

    # the run finishes
    edit_db(edb, lambda c: add_run_event(c, "m_t-1", "run-stuck", "run_done", {}, created_at=clock.now))
    clock.advance(60)
    snap4 = eng.evaluate(gt, health(edb, clock.now))
    assert snap4.active == ()
    assert [a.id for a in snap4.newly_resolved] == [alert.id]
    assert eng.get(alert.id).state == "resolved" and eng.get(alert.id).resolved_at == clock.now


# --------------------------------------------------------------------------- lease_diverged


def _diverged_db(tmp_path: Path) -> Path:
    def build(conn) -> None:  # type: ignore[no-untyped-def]
        add_lease(
            conn,
            L1,
            "e2b",
            current_instance_id="sbx-1",
            desired_state="running",
            observed_state="running",
            created_at=naive(T0 - timedelta(hours=1)),
        )
        add_terminal(conn, "term-000000000001", "m_t-1", L1, pointer=True)
        # LEON's string compare calls this diverged (destroyed != detached); the core does not.
        add_lease(
            conn,
            L2,
            "e2b",
            desired_state="destroyed",
            observed_state="detached",
            status="expired",
            created_at=naive(T0 - timedelta(hours=1)),
        )

    return sandbox_db(tmp_path / "sandbox.db", build)


def test_lease_diverged_after_hold_time_then_resolves(tmp_path: Path) -> None:
    db = _diverged_db(tmp_path)
    clock = Clock()
    eng = engine(tmp_path, clock, AlertsConfig(diverged_for_s=600))

    def gt(state: str = "paused", ok: bool = True):  # type: ignore[no-untyped-def]
        lst = listing(
            "e2b",
            "e2b",
            [inst("e2b", "sbx-1", state)],
            ok=ok,
            listed_at=clock.now if ok else T0,
            error=None if ok else "connect timeout",
        )
        return ground_truth(db, [lst], clock.now)

    snap = eng.evaluate(gt())
    assert snap.active == () and snap.pending == 1  # seen, within the hold time
    clock.advance(300)
    assert eng.evaluate(gt()).active == ()
    clock.advance(301)
    snap = eng.evaluate(gt())
    assert keys(snap) == [f"lease_diverged:{L1}"]  # L2 (destroyed/detached) is not drift
    alert = snap.active[0]
    assert alert.first_seen == T0  # first seen at the first evaluation, not when it fired
    assert alert.fired_at == clock.now
    assert ("lease", L1) in {(e.kind, e.id) for e in alert.evidence}
    assert "paused" in alert.summary

    clock.advance(30)
    assert [a.id for a in eng.evaluate(gt()).active] == [alert.id]  # dedup across evaluations

    # provider unreachable: rows are stale, the alert is kept (we could not look)
    clock.advance(30)
    stale = eng.evaluate(gt(ok=False))
    assert f"lease_diverged:{L1}" in keys(stale) and stale.newly_resolved == ()

    clock.advance(30)
    snap = eng.evaluate(gt("running"))
    assert f"lease_diverged:{L1}" not in keys(snap)
    assert [a.key for a in snap.newly_resolved] == [f"lease_diverged:{L1}"]


def test_lease_diverged_condition_that_clears_within_hold_never_fires(tmp_path: Path) -> None:
    db = _diverged_db(tmp_path)
    clock = Clock()
    eng = engine(tmp_path, clock)
    eng.evaluate(
        ground_truth(db, [listing("e2b", "e2b", [inst("e2b", "sbx-1", "paused")], listed_at=T0)], T0)
    )
    clock.advance(120)
    snap = eng.evaluate(
        ground_truth(db, [listing("e2b", "e2b", [inst("e2b", "sbx-1")], listed_at=clock.now)], clock.now)
    )
    assert snap.pending == 0  # the pending condition is forgotten
    clock.advance(900)
    snap = eng.evaluate(
        ground_truth(
            db, [listing("e2b", "e2b", [inst("e2b", "sbx-1", "paused")], listed_at=clock.now)], clock.now
        )
    )
    assert snap.active == () and snap.pending == 1  # the hold time starts again


# --------------------------------------------------------------------------- lease_recovering


def test_lease_recovering_uses_the_rows_own_age(tmp_path: Path) -> None:
    def build(conn) -> None:  # type: ignore[no-untyped-def]
        add_lease(
            conn,
            L1,
            "docker",
            status="recovering",
            last_error="create_session timed out",
            created_at=naive(T0 - timedelta(hours=2)),
            updated_at=naive(T0 - timedelta(minutes=10)),
        )
        add_lease(
            conn,
            L2,
            "docker",
            status="recovering",
            created_at=naive(T0 - timedelta(hours=2)),
            updated_at=naive(T0 - timedelta(minutes=1)),
        )

    db = sandbox_db(tmp_path / "sandbox.db", build)
    clock = Clock()
    eng = engine(tmp_path, clock, AlertsConfig(recovering_for_s=300))
    lst = [listing("docker", "docker", listed_at=T0)]
    snap = eng.evaluate(ground_truth(db, lst, T0))
    assert keys(snap) == [f"lease_recovering:{L1}"]  # recovering for 10m already
    assert snap.active[0].first_seen == T0 - timedelta(minutes=10)
    assert "create_session timed out" in snap.active[0].summary
    assert snap.pending == 1  # L2: 1 minute so far
    clock.advance(240)
    snap = eng.evaluate(ground_truth(db, lst, clock.now))
    assert keys(snap) == [f"lease_recovering:{L1}", f"lease_recovering:{L2}"]

    edit_db(db, lambda c: c.execute("UPDATE sandbox_leases SET status = 'active'"))
    clock.advance(30)
    snap = eng.evaluate(ground_truth(db, lst, clock.now))
    assert snap.active == () and len(snap.newly_resolved) == 2


# --------------------------------------------------------------------------- provider_unreachable


def test_provider_unreachable_fires_after_hold_and_resolves(tmp_path: Path) -> None:
    db = sandbox_db(
        tmp_path / "sandbox.db",
        lambda c: add_lease(
            c, L1, "daytona", current_instance_id="d-1", observed_state="running", created_at=naive(T0)
        ),
    )
    clock = Clock()
    eng = engine(tmp_path, clock, AlertsConfig(provider_down_for_s=120))

    def down():  # type: ignore[no-untyped-def]
        return ground_truth(
            db,
            [
                listing(
                    "daytona",
                    "daytona",
                    [inst("daytona", "d-1")],
                    ok=False,
                    listed_at=T0 - timedelta(minutes=1),
                    error="HTTP 503",
                )
            ],
            clock.now,
        )

    assert eng.evaluate(down()).active == ()
    clock.advance(121)
    snap = eng.evaluate(down())
    assert keys(snap) == ["provider_unreachable:daytona"]
    a = snap.active[0]
    assert a.severity == "critical" and "HTTP 503" in a.summary and a.scope is None
    assert ("provider", "daytona") in {(e.kind, e.id) for e in a.evidence}
    clock.advance(10)
    up = ground_truth(
        db, [listing("daytona", "daytona", [inst("daytona", "d-1")], listed_at=clock.now)], clock.now
    )
    snap = eng.evaluate(up)
    assert snap.active == () and [x.id for x in snap.newly_resolved] == [a.id]


def test_unconfigured_provider_is_a_warning(tmp_path: Path) -> None:
    db = sandbox_db(tmp_path / "sandbox.db", lambda c: add_lease(c, L1, "mystery", created_at=naive(T0)))
    eng = engine(tmp_path, Clock(), AlertsConfig(provider_down_for_s=0))
    snap = eng.evaluate(ground_truth(db, [], T0))
    assert keys(snap) == ["provider_unreachable:mystery"]
    assert snap.active[0].severity == "warning" and "not configured" in snap.active[0].summary


# --------------------------------------------------------------------------- orphans_present


def test_orphans_present_counts_oldest_and_skips_unconfirmed(tmp_path: Path) -> None:
    db = sandbox_db(
        tmp_path / "sandbox.db",
        lambda c: add_lease(
            c, L1, "docker", current_instance_id="c-1", observed_state="running", created_at=naive(T0)
        ),
    )
    clock = Clock()
    eng = engine(tmp_path, clock, AlertsConfig(orphans_for_s=300))
    listings = [
        listing(
            "docker",
            "docker",
            [
                inst("docker", "c-1"),
                inst("docker", "stray-old", created_at=T0 - timedelta(hours=2)),
                inst("docker", "stray-new", "paused", created_at=T0 - timedelta(minutes=1)),
            ],
            listed_at=T0,
        ),
        # Daytona lists eventually consistently: an unconfirmed orphan is not reported
        listing(
            "daytona",
            "daytona",
            [inst("daytona", "maybe")],
            listed_at=T0,
            eventually_consistent=True,
            confirmed=frozenset(),
        ),
    ]
    snap = eng.evaluate(ground_truth(db, listings, T0))
    assert keys(snap) == ["orphans_present:docker"]  # oldest is 2h old: past the hold already
    a = snap.active[0]
    assert a.details["count"] == 2 and a.details["running"] == 1
    assert "oldest 2h" in a.summary
    assert {e.id for e in a.evidence} == {"docker/stray-old", "docker/stray-new"}
    clock.advance(60)
    clean = [
        listing("docker", "docker", [inst("docker", "c-1")], listed_at=clock.now),
        listing("daytona", "daytona", [], listed_at=clock.now),
    ]
    snap = eng.evaluate(ground_truth(db, clean, clock.now))
    assert snap.active == () and len(snap.newly_resolved) == 1


def test_orphans_at_a_failed_provider_are_kept_not_resolved(tmp_path: Path) -> None:
    db = sandbox_db(tmp_path / "sandbox.db", lambda c: None)
    clock = Clock()
    eng = engine(tmp_path, clock, AlertsConfig(orphans_for_s=0, provider_down_for_s=3600))
    eng.evaluate(ground_truth(db, [listing("e2b", "e2b", [inst("e2b", "o-1")], listed_at=T0)], T0))
    clock.advance(30)
    snap = eng.evaluate(
        ground_truth(
            db,
            [listing("e2b", "e2b", [inst("e2b", "o-1")], ok=False, listed_at=T0, error="timeout")],
            clock.now,
        )
    )
    assert keys(snap) == ["orphans_present:e2b"]  # a failed listing produces no orphans, and no "all clear"


# --------------------------------------------------------------------------- leak


def test_leak_destroyed_lease_with_running_instance_and_orphan_of_missing_lease(tmp_path: Path) -> None:
    def build(conn) -> None:  # type: ignore[no-untyped-def]
        add_lease(
            conn,
            L1,
            "docker",
            current_instance_id="c-1",
            desired_state="destroyed",
            observed_state="running",
            created_at=naive(T0 - timedelta(hours=1)),
        )
        add_lease(
            conn,
            L2,
            "docker",
            current_instance_id="c-2",
            desired_state="destroyed",
            observed_state="detached",
            created_at=naive(T0 - timedelta(hours=1)),
        )

    db = sandbox_db(tmp_path / "sandbox.db", build)
    clock = Clock()
    eng = engine(tmp_path, clock, AlertsConfig(leak_for_s=120))
    lst = [
        listing(
            "docker",
            "docker",
            [
                inst("docker", "c-1"),  # still running: leak
                inst("docker", "c-2", "stopped"),  # holds disk, not running: lease_diverged, not a leak
                inst("docker", "ghost", claimed="lease-deleted00001"),  # the lease row is gone
            ],
            listed_at=T0,
        )
    ]
    cfg_keys = eng.evaluate(ground_truth(db, lst, T0))
    assert cfg_keys.active == ()
    clock.advance(121)
    snap = eng.evaluate(ground_truth(db, lst, clock.now))
    got = keys(snap)
    assert f"leak:{L1}" in got and "leak:lease-deleted00001" in got
    assert f"lease_diverged:{L1}" not in got  # the leak rule owns it
    assert f"leak:{L2}" not in got
    leak = next(a for a in snap.active if a.key == f"leak:{L1}")
    assert leak.severity == "critical" and "running" in leak.summary
    ghost = next(a for a in snap.active if a.key == "leak:lease-deleted00001")
    assert ("orphan", "docker/ghost") in {(e.kind, e.id) for e in ghost.evidence}
    assert "lease gone" in ghost.summary


def test_leak_of_a_detached_destroyed_lease_is_one_leak_alert_not_also_diverged(tmp_path: Path) -> None:
    # LEON destroyed and detached the lease, but the container labelled for it still runs:
    # reconcile marks the row diverged; the leak rule owns the alert (through the orphan).
    def build(conn) -> None:  # type: ignore[no-untyped-def]
        add_lease(
            conn,
            L1,
            "docker",
            current_instance_id=None,
            desired_state="destroyed",
            observed_state="detached",
            created_at=naive(T0 - timedelta(hours=1)),
        )

    db = sandbox_db(tmp_path / "sandbox.db", build)
    clock = Clock()
    eng = engine(tmp_path, clock, AlertsConfig(leak_for_s=0, diverged_for_s=0))
    lst = [listing("docker", "docker", [inst("docker", "leon-0123456789ab", claimed=L1)], listed_at=T0)]
    gt = ground_truth(db, lst, T0)
    assert [r.convergence for r in gt.rows] == [Convergence.DIVERGED]
    got = keys(eng.evaluate(gt))
    assert f"leak:{L1}" in got
    assert f"lease_diverged:{L1}" not in got


# --------------------------------------------------------------------------- intent_failures


def test_intent_failures_burst_in_window(tmp_path: Path) -> None:
    err = "Failed to pause lease {}: Docker command timed out after 20.0s"

    def build(conn) -> None:  # type: ignore[no-untyped-def]
        for lid in (L1, L2):
            add_lease(
                conn,
                lid,
                "docker",
                current_instance_id=f"c-{lid[-1]}",
                observed_state="running",
                created_at=naive(T0 - timedelta(hours=1)),
            )
        add_lease_event(
            conn, L1, "intent.pause", "api", error=err.format(L1), created_at=naive(T0 - timedelta(minutes=3))
        )
        add_lease_event(
            conn, L2, "intent.pause", "api", error=err.format(L2), created_at=naive(T0 - timedelta(minutes=2))
        )
        add_lease_event(
            conn,
            L1,
            "provider.error",
            "read.status",
            {"error": "docker: connection refused"},
            created_at=naive(T0 - timedelta(minutes=1)),
        )
        add_lease_event(
            conn,
            L1,
            "observe.status",
            "read.status",
            {"status": "running"},
            created_at=naive(T0 - timedelta(minutes=1)),
        )  # not a failure
        add_lease_event(
            conn, L2, "intent.resume", "api", error="old failure", created_at=naive(T0 - timedelta(hours=2))
        )  # outside the window
        add_provider_event(
            conn,
            "docker",
            "c-a",
            "sandbox.error",
            {"state": "error"},
            matched_lease_id=L1,
            created_at=naive(T0 - timedelta(minutes=1)),
        )

    db = sandbox_db(tmp_path / "sandbox.db", build)
    clock = Clock()
    cfg = AlertsConfig(intent_window_s=600, intent_failures_min=4)
    eng = engine(tmp_path, clock, cfg)
    lst = [listing("docker", "docker", [inst("docker", "c-a"), inst("docker", "c-b")], listed_at=T0)]
    gt = ground_truth(db, lst, T0)
    le, pe = lease_events(db, T0 - timedelta(hours=3))
    snap = eng.evaluate(gt, None, le, pe)
    assert keys(snap) == ["intent_failures:docker"]
    a = snap.active[0]
    assert a.details["count"] == 4 and a.details["leases"] == 2
    assert (
        a.details["top_signature"] == "Failed to pause lease lease-<id>: Docker command timed out after <n>s"
    )
    assert a.details["top_count"] == 2
    kinds = {e.kind for e in a.evidence}
    assert {"lease_event", "provider_event", "lease"} <= kinds

    # lease events not read this round: kept; read and the burst is over: resolved
    clock.advance(60)
    assert keys(eng.evaluate(gt, None, None, None)) == ["intent_failures:docker"]
    clock.advance(600)
    snap = eng.evaluate(ground_truth(db, lst, clock.now), None, le, pe)
    assert snap.active == () and len(snap.newly_resolved) == 1


def test_intent_failures_below_threshold_do_not_fire(tmp_path: Path) -> None:
    def build(conn) -> None:  # type: ignore[no-untyped-def]
        add_lease(conn, L1, "docker", created_at=naive(T0))
        add_lease_event(
            conn, L1, "intent.pause", "api", error="x", created_at=naive(T0 - timedelta(minutes=1))
        )

    db = sandbox_db(tmp_path / "sandbox.db", build)
    eng = engine(tmp_path, Clock(), AlertsConfig(intent_failures_min=2))
    le, pe = lease_events(db, T0 - timedelta(hours=1))
    assert len(le) == 1
    snap = eng.evaluate(ground_truth(db, [listing("docker", "docker", listed_at=T0)], T0), None, le, pe)
    assert snap.active == () and snap.pending == 0


# --------------------------------------------------------------------------- resource_pressure


def test_resource_pressure_memory_disk_cpu(tmp_path: Path) -> None:
    def build(conn) -> None:  # type: ignore[no-untyped-def]
        for i, lid in enumerate((L1, L2, "lease-cccccccccccc", "lease-dddddddddddd")):
            add_lease(
                conn,
                lid,
                "docker",
                current_instance_id=f"c-{i}",
                observed_state="running",
                created_at=naive(T0 - timedelta(hours=1)),
            )
        add_resource_snapshot(
            conn,
            L1,
            "docker",
            memory_used_mb=950,
            memory_total_mb=1000,
            cpu_used=12,
            disk_used_gb=1,
            disk_total_gb=10,
            collected_at=T0 - timedelta(minutes=1),
        )
        add_resource_snapshot(
            conn,
            L2,
            "docker",
            cpu_used=97.5,
            disk_used_gb=9.5,
            disk_total_gb=10,
            collected_at=T0 - timedelta(minutes=1),
        )
        # fine
        add_resource_snapshot(
            conn,
            "lease-cccccccccccc",
            "docker",
            memory_used_mb=100,
            memory_total_mb=1000,
            cpu_used=5,
            collected_at=T0 - timedelta(minutes=1),
        )
        # over, but the snapshot is 2 hours old
        add_resource_snapshot(
            conn,
            "lease-dddddddddddd",
            "docker",
            memory_used_mb=999,
            memory_total_mb=1000,
            collected_at=T0 - timedelta(hours=2),
        )

    db = sandbox_db(tmp_path / "sandbox.db", build)
    clock = Clock()
    eng = engine(tmp_path, clock, AlertsConfig(resource_for_s=300))
    lst = [listing("docker", "docker", [inst("docker", f"c-{i}") for i in range(4)], listed_at=T0)]
    assert eng.evaluate(ground_truth(db, lst, T0)).active == ()
    clock.advance(301)
    snap = eng.evaluate(ground_truth(db, lst, clock.now))
    assert keys(snap) == [f"resource_pressure:{L1}", f"resource_pressure:{L2}"]
    by_key = {a.key: a for a in snap.active}
    mem = by_key[f"resource_pressure:{L1}"]
    assert "memory 95%" in mem.summary and "cpu" not in mem.summary and mem.details["memory_pct"] == 95.0
    both = by_key[f"resource_pressure:{L2}"]
    assert "cpu 98%" in both.summary and "disk 95%" in both.summary


# --------------------------------------------------------------------------- config


def test_disabled_rules_and_severity_override(tmp_path: Path) -> None:
    db = sandbox_db(tmp_path / "sandbox.db", lambda c: add_lease(c, L1, "mystery", created_at=naive(T0)))
    gt = ground_truth(db, [], T0)
    cfg = AlertsConfig(provider_down_for_s=0, severity={"provider_unreachable": "info"})
    snap = engine(tmp_path, Clock(), cfg).evaluate(gt)
    assert [a.severity for a in snap.active] == ["info"]
    cfg2 = AlertsConfig(provider_down_for_s=0, disabled_rules=["provider_unreachable"])
    assert engine(tmp_path / "b", Clock(), cfg2).evaluate(gt).active == ()


def test_unknown_rule_names_are_config_errors() -> None:
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError, match="unknown rule"):
        AlertsConfig(disabled_rules=["stuck_runs"])
    with pytest.raises(pydantic.ValidationError):
        AlertsConfig.model_validate({"stuck_after": 5})


def test_documented_alerts_table_is_valid() -> None:
    import re
    import tomllib

    doc = (Path(__file__).resolve().parents[1] / "docs" / "alerts.md").read_text()
    block = re.search(r"```toml\n(\[alerts\].*?)```", doc, re.S)
    assert block is not None
    cfg = AlertsConfig.model_validate(tomllib.loads(block.group(1))["alerts"])
    assert cfg.webhook is not None and cfg.webhook.url_env == "OPCOCKPIT_WEBHOOK_URL"
    assert cfg.command is not None and cfg.command.argv[0] == "/usr/local/bin/page-oncall"
    assert cfg.severity == {"orphans_present": "critical"}
    defaults = AlertsConfig()
    for key in ("stuck_after_s", "diverged_for_s", "intent_failures_min", "memory_pct", "history_keep"):
        assert getattr(cfg, key) == getattr(defaults, key), key  # the doc shows the real defaults
