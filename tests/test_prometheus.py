"""Prometheus text output parses with prometheus_client's parser and carries the right values."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.domain.alerts import AlertsConfig
from opcockpit.domain.runs import run_health
from opcockpit.formats.prometheus import render_prometheus
from opcockpit.services.alert_engine import AlertEngine
from tests.alerts_support import T0, Clock, events_db, ground_truth, health, inst, listing, naive, sandbox_db
from tests.fixtures.leon_db import add_lease, add_run


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        assert fam.type == "gauge"
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _fleet(tmp_path: Path):  # type: ignore[no-untyped-def]
    def build(conn) -> None:  # type: ignore[no-untyped-def]
        add_lease(
            conn,
            "lease-000000000001",
            "docker",
            current_instance_id="c1",
            observed_state="running",
            created_at=naive(T0),
        )
        add_lease(
            conn,
            "lease-000000000002",
            "docker",
            current_instance_id="c2",
            observed_state="running",
            created_at=naive(T0),
        )
        add_lease(
            conn,
            "lease-000000000003",
            "docker",
            current_instance_id="c3",
            observed_state="running",
            status="recovering",
            created_at=naive(T0),
            updated_at=naive(T0),
        )
        # a provider name with characters that need escaping in a label value
        add_lease(conn, "lease-000000000004", 'we"ird\\name', created_at=naive(T0))

    db = sandbox_db(tmp_path / "sandbox.db", build)
    return ground_truth(
        db,
        [
            listing(
                "docker",
                "docker",
                [
                    inst("docker", "c1"),
                    inst("docker", "c2"),
                    inst("docker", "c3", "paused"),
                    inst("docker", "orphan-1"),
                    inst("docker", "orphan-2"),
                ],
                listed_at=T0,
            ),
            listing("e2b", "e2b", ok=False, listed_at=T0 - timedelta(minutes=3), error="timeout"),
        ],
        T0,
    )


def test_prometheus_parses_and_values_are_right(tmp_path: Path) -> None:
    gt = _fleet(tmp_path)
    edb = events_db(
        tmp_path / "events.db",
        lambda c: (
            add_run(c, "t1", "r1", outcome="completed", start=T0 - timedelta(minutes=5)),
            add_run(c, "t2", "r2", outcome="error", start=T0 - timedelta(minutes=5)),
            add_run(c, "t3", "r3", outcome="running", start=T0 - timedelta(minutes=30)),
        ),
    )
    rh = health(edb, T0)
    eng = AlertEngine(
        AlertStore.open(tmp_path / "ledger.db"),
        AlertsConfig(recovering_for_s=0, orphans_for_s=0, provider_down_for_s=0),
        Clock(),
    )
    snap = eng.evaluate(gt, rh)
    muted = next(a for a in snap.active if a.rule == "stuck_run")
    eng.mute(muted.id, until_resolved=True)
    alerts = eng.active()

    text = render_prometheus(gt, rh, alerts)
    assert text.endswith("\n")
    s = _samples(text)

    def v(name: str, **labels: str) -> float:
        return s[(name, frozenset(labels.items()))]

    assert v("opcockpit_sandboxes", provider="docker", state="running", convergence="converged") == 2
    assert v("opcockpit_sandboxes", provider="docker", state="paused", convergence="diverged") == 1
    assert v("opcockpit_sandboxes", provider='we"ird\\name', state="unlisted", convergence="stale") == 1
    assert v("opcockpit_orphans", provider="docker") == 2
    assert ("opcockpit_orphans", frozenset({("provider", "e2b")})) not in s  # a failed listing has no orphans
    assert v("opcockpit_provider_up", provider="docker", kind="docker") == 1
    assert v("opcockpit_provider_up", provider="e2b", kind="e2b") == 0
    assert v("opcockpit_provider_stale", provider="e2b") == 1
    assert v("opcockpit_provider_stale", provider="docker") == 0
    # never listed (no provider configured under that name): status error, its rows stale
    weird = 'we"ird\\name'
    assert v("opcockpit_provider_up", provider=weird, kind="unknown") == 0
    assert v("opcockpit_provider_stale", provider=weird) == 1
    expected = (("docker", "docker", "ok"), ("e2b", "e2b", "stale"), (weird, "unknown", "error"))
    for name, kind, status in expected:
        for s_ in ("ok", "stale", "error", "db_only"):
            got = v("opcockpit_provider_status", provider=name, kind=kind, status=s_)
            assert got == (1 if s_ == status else 0), (name, s_)
    assert v("opcockpit_provider_listing_age_seconds", provider="e2b") == 180
    assert v("opcockpit_alerts_firing", rule="lease_recovering", severity="warning") == 1
    assert v("opcockpit_alerts_firing", rule="orphans_present", severity="warning") == 1
    assert v("opcockpit_alerts_firing", rule="provider_unreachable", severity="critical") == 1  # e2b
    assert (
        v("opcockpit_alerts_firing", rule="provider_unreachable", severity="warning") == 1
    )  # not configured
    assert v("opcockpit_alerts_firing", rule="stuck_run", severity="warning") == 0
    assert v("opcockpit_alerts_muted", rule="stuck_run", severity="warning") == 1
    assert v("opcockpit_alerts_firing", rule="leak", severity="critical") == 0  # zero series exist
    assert v("opcockpit_runs", status="completed") == 1
    assert v("opcockpit_runs", status="error") == 1
    assert v("opcockpit_runs", status="stuck") == 1
    assert v("opcockpit_runs", status="running") == 0
    assert v("opcockpit_runs_available") == 1
    assert v("opcockpit_snapshot_timestamp_seconds") == T0.timestamp()
    # HELP/TYPE once per family, families in a fixed order
    assert text.count("# TYPE opcockpit_sandboxes gauge") == 1
    assert text == render_prometheus(gt, rh, list(reversed(alerts)))


def test_prometheus_without_events_db_says_unavailable(tmp_path: Path) -> None:
    gt = _fleet(tmp_path)
    from opcockpit.domain.runs import unavailable

    s = _samples(render_prometheus(gt, unavailable(T0, "no events.db"), []))
    assert s[("opcockpit_runs_available", frozenset())] == 0
    assert not any(name == "opcockpit_runs" for name, _ in s)  # unknown is not zero
    s2 = _samples(render_prometheus(gt, run_health([], T0), None))
    assert s2[("opcockpit_runs", frozenset({("status", "running")}))] == 0


def test_rows_of_a_provider_without_health_entry_read_stale(tmp_path: Path) -> None:
    """A picture whose rows name a provider the health list lacks (never listed): stale, not 0."""
    from dataclasses import replace

    gt = _fleet(tmp_path)
    gt = replace(gt, providers=tuple(p for p in gt.providers if p.name == "docker"))
    s = _samples(render_prometheus(gt, None, []))
    assert s[("opcockpit_provider_stale", frozenset({("provider", 'we"ird\\name')}))] == 1
    assert s[("opcockpit_provider_stale", frozenset({("provider", "docker")}))] == 0
