"""reconcile(): sandbox.db x provider listings -> ground truth rows, orphans, provider health.

Records are LEON-shaped (ids, states, timestamps as LEON writes them, already normalised to UTC
the way the sources hand them over). reconcile is pure, so these tests call it directly.
"""

from __future__ import annotations

import dataclasses
import gc
import random
from datetime import UTC, datetime, timedelta

import pytest

from opcockpit.domain import reconcile as reconcile_mod
from opcockpit.domain.models import (
    ChatSessionRecord,
    Convergence,
    DbState,
    GroundTruth,
    GroundTruthRow,
    Instance,
    InstanceResources,
    LeaseRecord,
    NormalState,
    ProviderListing,
    ProviderStatus,
    Resources,
    ResourceSnapshotRecord,
    TerminalRecord,
)
from opcockpit.domain.reconcile import reconcile

# §9 worked example: "now" is 2026-03-20 12:00 local on a UTC+8 host.
NOW = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)


def local(hhmmss: str) -> datetime:
    """A LEON local-time stamp on 2026-03-20 (UTC+8 host), as the sources normalise it."""
    h, m, s = hhmmss.split(":")
    return (
        datetime(2026, 3, 20, int(h), int(m), 0, tzinfo=UTC)
        + timedelta(seconds=float(s))
        - timedelta(hours=8)
    )


def lease(
    lease_id: str,
    provider: str,
    cid: str | None,
    desired: str = "running",
    observed: str | None = None,
    *,
    status: str | None = "active",
    version: int = 2,
    needs_refresh: bool = False,
    last_error: str | None = None,
    updated_at: datetime | None = None,
) -> LeaseRecord:
    if observed is None:
        observed = "detached" if cid is None else desired
    t = updated_at or local("10:00:00")
    return LeaseRecord(
        lease_id=lease_id,
        provider_name=provider,
        current_instance_id=cid,
        desired_state=desired,
        observed_state=observed,
        status=status,
        version=version,
        needs_refresh=needs_refresh,
        last_error=last_error,
        instance_created_at=t if cid else None,
        observed_at=t,
        refresh_hint_at=t if needs_refresh else None,
        created_at=local("09:00:00"),
        updated_at=t,
        instance_status=observed,
    )


def term(terminal_id: str, thread: str, lease_id: str, created: datetime | None) -> TerminalRecord:
    return TerminalRecord(terminal_id, thread, lease_id, "/workspace", 1, created, created, "{}")


def sess(
    sid: str,
    thread: str,
    terminal_id: str,
    lease_id: str,
    status: str,
    started: datetime | None,
    last_active: datetime | None,
) -> ChatSessionRecord:
    closed = status in ("closed", "failed")
    return ChatSessionRecord(
        sid, thread, terminal_id, lease_id, status, started, last_active,
        last_active if closed else None, "idle_timeout" if closed else None,
        "runtime-0a1b2c3d4e5f", 300, 86400,
    )  # fmt: skip


def inst(
    provider: str,
    iid: str,
    state: NormalState = NormalState.RUNNING,
    *,
    raw: str | None = None,
    aliases: tuple[str, ...] = (),
    claimed: str | None = None,
    resources: InstanceResources | None = None,
    labels: dict[str, str] | None = None,
) -> Instance:
    return Instance(
        provider=provider,
        instance_id=iid,
        raw_state=raw or state.value,
        state=state,
        name=iid,
        labels=labels or {},
        created_at=local("09:00:02"),
        started_at=local("09:00:02"),
        resources=resources,
        aliases=aliases,
        claimed_lease_id=claimed,
    )


def listing(
    provider: str,
    kind: str | None = None,
    instances: tuple[Instance, ...] = (),
    *,
    ok: bool = True,
    listed_at: datetime | None = NOW,
    error: str | None = None,
    has_api: bool = True,
    eventually_consistent: bool = False,
    confirmed: frozenset[str] | None = None,
) -> ProviderListing:
    return ProviderListing(
        provider=provider,
        kind=kind or provider,
        ok=ok,
        instances=instances,
        listed_at=listed_at,
        error=error,
        has_api=has_api,
        eventually_consistent=eventually_consistent,
        confirmed_orphans=confirmed,
        # the kind facts, as the collector copies them from the adapter's Capabilities
        pause_is_stop=(kind or provider) == "daytona",
        paused_hint="E2B auto-pause?" if (kind or provider) == "e2b" else None,
    )


def db(
    leases: list[LeaseRecord],
    terminals: list[TerminalRecord] | None = None,
    sessions: list[ChatSessionRecord] | None = None,
    snapshots: dict[str, ResourceSnapshotRecord] | None = None,
) -> DbState:
    return DbState(
        path="/home/sre/.leon/sandbox.db",
        schema_variant="leonai",
        read_at=NOW,
        leases=tuple(leases),
        terminals=tuple(terminals or ()),
        chat_sessions=tuple(sessions or ()),
        resource_snapshots=snapshots or {},
    )


def only_row(gt: GroundTruth) -> GroundTruthRow:
    assert len(gt.rows) == 1, gt.rows
    return gt.rows[0]


LID = "lease-3f9a1c2b7d4e"
DOCKER_ID = "leon-5b8e2a9c0d1f"
E2B_ID = "i4k7m2p9x1q8w3e5r6t0"
DAYTONA_ID = "7f3c1a9e-2b4d-4e6f-8a0b-1c2d3e4f5a6b"
R, P, S, T, G, U = (
    NormalState.RUNNING,
    NormalState.PAUSED,
    NormalState.STOPPED,
    NormalState.TRANSITIONING,
    NormalState.GONE,
    NormalState.UNKNOWN,
)

# (case id, provider kind, lease(cid, desired, observed, status), provider state or None = not listed,
#  expected convergence, expected provider_state, reason fragment)
API_CASES = [
    ("destroyed-detached", "docker", (None, "destroyed", "detached", "expired"), None,
     Convergence.CONVERGED, None, "destroyed and detached"),
    ("destroyed-instance-not-listed", "docker", (DOCKER_ID, "destroyed", "detached", "expired"), None,
     Convergence.CONVERGED, None, "no longer at provider"),
    ("destroyed-provider-says-gone", "e2b", (E2B_ID, "destroyed", "detached", "expired"), G,
     Convergence.CONVERGED, "gone", "provider reports instance gone"),
    ("destroyed-but-still-running-leak", "docker", (DOCKER_ID, "destroyed", "running", "active"), R,
     Convergence.DIVERGED, "running", "leak (costs money)"),
    ("destroyed-but-still-paused-leak", "e2b", (E2B_ID, "destroyed", "paused", "active"), P,
     Convergence.DIVERGED, "paused", "still paused at provider"),
    ("destroyed-but-stopped-holds-disk", "docker", (DOCKER_ID, "destroyed", "detached", "active"), S,
     Convergence.DIVERGED, "stopped", "holds disk"),
    ("running-never-bound", "e2b", (None, "running", "detached", "active"), None,
     Convergence.UNBOUND, None, "never bound: LEON binds remote instances on first command"),
    ("paused-never-bound", "daytona", (None, "paused", "detached", "active"), None,
     Convergence.UNBOUND, None, "never bound"),
    ("running-unbound-after-expiry", "docker", (None, "running", "detached", "expired"), None,
     Convergence.UNBOUND, None, "previous instance gone"),
    ("running-running", "docker", (DOCKER_ID, "running", "running", "active"), R,
     Convergence.CONVERGED, "running", "running as desired"),
    ("running-running-db-stale", "e2b", (E2B_ID, "running", "paused", "active"), R,
     Convergence.CONVERGED, "running", "DB observed_state stale (paused)"),
    ("running-but-e2b-auto-paused", "e2b", (E2B_ID, "running", "running", "active"), P,
     Convergence.DIVERGED, "paused", "desired running, provider says paused (E2B auto-pause?)"),
    ("running-but-docker-paused", "docker", (DOCKER_ID, "running", "running", "active"), P,
     Convergence.DIVERGED, "paused", "paused outside LEON?"),
    ("running-but-stopped", "docker", (DOCKER_ID, "running", "running", "active"), S,
     Convergence.DIVERGED, "stopped", "provider says stopped"),
    ("running-but-gone", "e2b", (E2B_ID, "running", "running", "active"), G,
     Convergence.DIVERGED, "gone", "provider says gone"),
    ("running-but-not-listed", "docker", (DOCKER_ID, "running", "running", "active"), None,
     Convergence.DIVERGED, None, f"instance {DOCKER_ID} not listed by provider"),
    ("paused-paused", "e2b", (E2B_ID, "paused", "paused", "active"), P,
     Convergence.CONVERGED, "paused", "paused as desired"),
    ("paused-but-running", "docker", (DOCKER_ID, "paused", "paused", "active"), R,
     Convergence.DIVERGED, "running", "desired paused, provider says running"),
    ("paused-but-not-listed", "e2b", (E2B_ID, "paused", "paused", "active"), None,
     Convergence.DIVERGED, None, "not listed by provider"),
    ("paused-daytona-stop-is-pause", "daytona", (DAYTONA_ID, "paused", "paused", "active"), S,
     Convergence.CONVERGED, "stopped", "paused as desired"),
    ("paused-docker-exited-is-not-pause", "docker", (DOCKER_ID, "paused", "paused", "active"), S,
     Convergence.DIVERGED, "stopped", "desired paused, provider says stopped"),
    ("transitioning", "daytona", (DAYTONA_ID, "running", "running", "active"), T,
     Convergence.TRANSITIONING, "transitioning", "state change in flight"),
    ("unknown", "agentbay", ("s-0a1b2c3d4e5f", "running", "running", "active"), U,
     Convergence.UNKNOWN, "unknown", "unknown state"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "lease_spec", "pstate", "conv", "pstate_out", "fragment"),
    [c[1:] for c in API_CASES],
    ids=[c[0] for c in API_CASES],
)
def test_convergence_rules_with_ok_listing(kind, lease_spec, pstate, conv, pstate_out, fragment):
    cid, desired, observed, status = lease_spec
    instances = () if pstate is None or cid is None else (inst(kind, cid, pstate, raw=f"{pstate.value}-raw"),)
    gt = reconcile(
        db([lease(LID, kind, cid, desired, observed, status=status)]), [listing(kind, kind, instances)], NOW
    )
    row = only_row(gt)
    assert row.convergence is conv, row.reason
    assert row.provider_state == pstate_out
    assert fragment in row.reason
    assert row.source == "lease+provider"
    assert row.stale_age_s is None
    assert gt.orphans == ()  # a bound instance is never an orphan, whatever the lease wants


def test_running_running_reason_does_not_invent_staleness():
    row = only_row(
        reconcile(
            db([lease(LID, "docker", DOCKER_ID)]),
            [listing("docker", instances=(inst("docker", DOCKER_ID),))],
            NOW,
        )
    )
    assert row.reason == "running as desired"


def test_lease_notes_are_reported_without_changing_convergence():
    recovering = lease("lease-aa11bb22cc33", "docker", DOCKER_ID, status="recovering")
    erroring = lease(
        "lease-dd44ee55ff66", "docker", "leon-0a0b0c0d0e0f", needs_refresh=True,
        last_error="Failed to pause lease lease-dd44ee55ff66: Docker command timed out\nafter 20.0s",
    )  # fmt: skip
    gt = reconcile(
        db([recovering, erroring]),
        [listing("docker", instances=(inst("docker", DOCKER_ID), inst("docker", "leon-0a0b0c0d0e0f")))],
        NOW,
    )
    by_id = {r.lease_id: r for r in gt.rows}
    rec, err = by_id["lease-aa11bb22cc33"], by_id["lease-dd44ee55ff66"]
    assert rec.convergence is Convergence.CONVERGED and err.convergence is Convergence.CONVERGED
    assert "recovering" in rec.reason
    assert "needs_refresh" in err.reason
    assert (
        "last_error: Failed to pause lease lease-dd44ee55ff66: Docker command timed out after 20.0s"
        in err.reason
    )
    assert "\n" not in err.reason  # one line, even when LEON's error had a newline


def test_recovering_lease_without_instance_is_unbound_and_says_so():
    row = only_row(
        reconcile(
            db([lease(LID, "e2b", None, "running", "detached", status="recovering")]), [listing("e2b")], NOW
        )
    )
    assert row.convergence is Convergence.UNBOUND
    assert "recovering" in row.reason


# --------------------------------------------------------------------------- db-only (LEON local)

DB_ONLY_CASES = [
    ("local-running", ("leon-lease-3f9a1c2b7d4e", "running", "running"), Convergence.CONVERGED,
     "running as desired"),
    ("local-paused", ("leon-lease-3f9a1c2b7d4e", "paused", "paused"), Convergence.CONVERGED,
     "paused as desired"),
    ("local-destroyed-detached", (None, "destroyed", "detached"), Convergence.CONVERGED,
     "destroyed and detached"),
    ("local-destroyed-still-bound", ("local-0a1b2c3d4e5f", "destroyed", "running"), Convergence.DIVERGED,
     "still bound"),
    ("local-unbound", (None, "running", "detached"), Convergence.UNBOUND, "no instance bound"),
    ("local-running-vs-paused", ("local-0a1b2c3d4e5f", "running", "paused"), Convergence.DIVERGED,
     "desired running, DB observed paused"),
    ("local-observed-unknown", ("local-0a1b2c3d4e5f", "running", "unknown"), Convergence.UNKNOWN, "unknown"),
    ("local-detached-with-instance", ("local-0a1b2c3d4e5f", "running", "detached"), Convergence.DIVERGED,
     "observed detached"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "conv", "fragment"), [c[1:] for c in DB_ONLY_CASES], ids=[c[0] for c in DB_ONLY_CASES]
)
def test_db_only_provider_is_judged_from_the_db(spec, conv, fragment):
    cid, desired, observed = spec
    gt = reconcile(
        db([lease(LID, "local", cid, desired, observed)]),
        [listing("local", "local", ok=True, has_api=False, listed_at=None)],
        NOW,
    )
    row = only_row(gt)
    assert row.convergence is conv, row.reason
    assert fragment in row.reason
    assert row.source == "lease"
    assert row.provider_state is None
    assert gt.providers[0].status is ProviderStatus.DB_ONLY
    assert gt.providers[0].instance_count is None


# --------------------------------------------------------------------------- stale / unconfigured providers


def test_failed_listing_gives_stale_rows_with_age_and_no_orphans():
    last_good = NOW - timedelta(seconds=42)
    instances = (
        inst("e2b", E2B_ID, P),
        inst("e2b", "i0rphan00000000000000", R),  # would be an orphan if e2b had listed OK
    )
    leases = [
        lease(LID, "e2b", E2B_ID, "running", "running"),
        lease("lease-7c2d4e6f8a0b", "e2b", "i9z8y7x6w5v4u3t2s1r0", "running", "running"),
        lease("lease-0e1f2a3b4c5d", "e2b", None, "destroyed", "detached", status="expired"),
    ]
    gt = reconcile(
        db(leases),
        [listing("e2b", instances=instances, ok=False, listed_at=last_good, error="ReadTimeout: timed out")],
        NOW,
    )
    assert gt.orphans == ()
    by_id = {r.lease_id: r for r in gt.rows}
    for row in gt.rows:
        assert row.convergence is Convergence.STALE
        assert row.stale_age_s == 42.0
        assert row.source == "lease"
        assert "unreachable for 42s" in row.reason and "ReadTimeout: timed out" in row.reason
    assert by_id[LID].provider_state == "paused"  # last known, not "gone"
    assert "last known state (paused)" in by_id[LID].reason
    assert by_id["lease-7c2d4e6f8a0b"].provider_state is None
    assert "not in the last good listing" in by_id["lease-7c2d4e6f8a0b"].reason
    (health,) = gt.providers
    assert health.status is ProviderStatus.STALE
    assert health.age_s == 42.0 and health.instance_count == 2
    assert health.error == "ReadTimeout: timed out"


def test_never_listed_provider_is_stale_without_age_and_reports_error():
    gt = reconcile(
        db([lease(LID, "daytona_selfhost", DAYTONA_ID)]),
        [listing("daytona_selfhost", "daytona", ok=False, listed_at=None, error="AuthFailed: 401")],
        NOW,
    )
    row = only_row(gt)
    assert row.convergence is Convergence.STALE
    assert row.stale_age_s is None and row.provider_state is None
    assert row.reason == "provider daytona_selfhost has no listing yet (AuthFailed: 401)"
    (health,) = gt.providers
    assert health.status is ProviderStatus.ERROR
    assert health.instance_count is None and health.age_s is None


def test_lease_of_unconfigured_provider_is_stale_and_provider_reported_as_error():
    gt = reconcile(
        db([lease(LID, "agentbay", "s-0a1b2c3d4e5f"), lease("lease-7c2d4e6f8a0b", "docker", DOCKER_ID)]),
        [listing("docker", instances=(inst("docker", DOCKER_ID),))],
        NOW,
    )
    by_id = {r.lease_id: r for r in gt.rows}
    row = by_id[LID]
    assert row.convergence is Convergence.STALE
    assert row.reason == "provider agentbay not configured"
    assert row.stale_age_s is None and row.provider_state is None and row.source == "lease"
    assert by_id["lease-7c2d4e6f8a0b"].convergence is Convergence.CONVERGED
    assert [h.name for h in gt.providers] == ["agentbay", "docker"]
    missing = gt.providers[0]
    assert missing.status is ProviderStatus.ERROR
    assert missing.error == "no provider configured named agentbay"
    assert missing.instance_count is None


# --------------------------------------------------------------------------- the §9 worked example


def worked_example() -> tuple[DbState, dict[str, ProviderListing]]:
    t1, t2, t3 = "m_k3v8p1x9q2z7-1", "m_k3v8p1x9q2z7-2", "m_r7t2w5y8u1i4-1"
    leases = [
        lease("lease-3f9a1c2b7d4e", "docker", "leon-5b8e2a9c0d1f", "running", "running", version=4,
              updated_at=local("11:58:40.55")),
        lease("lease-7c2d4e6f8a0b", "e2b", "i4k7m2p9x1q8w3e5r6t0", "running", "paused", version=2,
              updated_at=local("10:15:05.77")),
        lease("lease-0e1f2a3b4c5d", "docker", "leon-9d8c7b6a5f4e", "running", "running", version=3,
              needs_refresh=True, updated_at=local("11:50:12.90"),
              last_error="Failed to pause lease lease-0e1f2a3b4c5d: Docker command timed out after 20.0s: "
                         "docker pause 4be1"),
    ]  # fmt: skip
    terminals = [
        term("term-aa11bb22cc33", t1, "lease-3f9a1c2b7d4e", local("09:00:00.20")),
        term("term-dd44ee55ff66", t2, "lease-7c2d4e6f8a0b", local("10:02:11.10")),
        term("term-112233445566", t3, "lease-0e1f2a3b4c5d", local("11:10:00.50")),
        term("term-778899aabbcc", t3, "lease-0e1f2a3b4c5d", local("11:35:01")),
    ]
    sessions = [
        sess("sess-0f0e0d0c0b0a", t1, "term-aa11bb22cc33", "lease-3f9a1c2b7d4e", "active",
             local("09:00:00.31"), local("11:58:38")),
        sess("sess-1a1b1c1d1e1f", t2, "term-dd44ee55ff66", "lease-7c2d4e6f8a0b", "closed",
             local("10:02:11.20"), local("10:09:40")),
        sess("sess-2b2c2d2e2f20", t3, "term-112233445566", "lease-0e1f2a3b4c5d", "active",
             local("11:10:00.60"), local("11:58:55")),
        sess("sess-3c3d3e3f3031", t3, "term-778899aabbcc", "lease-0e1f2a3b4c5d", "active",
             local("11:35:02"), local("11:59:30")),
    ]  # fmt: skip
    snapshots = {
        "lease-3f9a1c2b7d4e": ResourceSnapshotRecord(
            "lease-3f9a1c2b7d4e", "docker", "running", "running_runtime", 3.2, None, 212.5, None, 1.0, None,
            None, None, None, datetime(2026, 3, 20, 3, 58, 41, tzinfo=UTC)),
        "lease-7c2d4e6f8a0b": ResourceSnapshotRecord(
            "lease-7c2d4e6f8a0b", "e2b", "paused", "non_running_sdk", None, None, None, None, None, None,
            None, None, "metrics unavailable", datetime(2026, 3, 20, 2, 15, 6, tzinfo=UTC)),
    }  # fmt: skip
    full_id = "4be1" + "0" * 60
    docker = listing(
        "docker",
        instances=(
            inst("docker", "leon-5b8e2a9c0d1f", R, aliases=("a1" * 32, "a1a1a1a1a1a1"),
                 claimed="lease-3f9a1c2b7d4e", resources=InstanceResources(cpu_count=2.0, memory_mb=4096.0)),
            inst("docker", "leon-9d8c7b6a5f4e", R, aliases=(full_id, full_id[:12]),
                 claimed="lease-0e1f2a3b4c5d"),
            # T1's first container exited and was replaced; it still holds its writable layer.
            inst("docker", "leon-1a2b3c4d5e6f", S, raw="exited", aliases=("b2" * 32,),
                 claimed="lease-3f9a1c2b7d4e",
                 labels={"leon.session_id": "leon-1a2b3c4d5e6f",
                         "leon.context_id": "leon-lease-3f9a1c2b7d4e"}),
        ),
    )  # fmt: skip
    e2b = listing(
        "e2b", instances=(inst("e2b", "i4k7m2p9x1q8w3e5r6t0", P), inst("e2b", "i0rphan00000000000000", R))
    )
    return db(leases, terminals, sessions, snapshots), {"docker": docker, "e2b": e2b}


def test_worked_example_rows():
    state, listings = worked_example()
    gt = reconcile(state, listings, NOW)
    assert gt.db_path == "/home/sre/.leon/sandbox.db" and gt.schema_variant == "leonai"
    assert gt.generated_at == NOW
    by_id = {r.lease_id: r for r in gt.rows}

    t1 = by_id["lease-3f9a1c2b7d4e"]
    assert t1.convergence is Convergence.CONVERGED
    # Its first container died and was replaced; the exited one is still there, labelled for it.
    assert t1.reason == "running as desired; orphan instance claims this lease: leon-1a2b3c4d5e6f (stopped)"
    assert (t1.thread_id, t1.thread_ids, t1.chat_session_id) == ("m_k3v8p1x9q2z7-1", ("m_k3v8p1x9q2z7-1",),
                                                                 "sess-0f0e0d0c0b0a")  # fmt: skip
    assert t1.provider_state == "running" and t1.source == "lease+provider"
    assert t1.last_active == local("11:58:40.55")  # lease.updated_at beats the session's 11:58:38
    assert t1.resources == Resources(
        cpu_used=3.2, memory_used_mb=212.5, disk_used_gb=1.0,
        collected_at=datetime(2026, 3, 20, 3, 58, 41, tzinfo=UTC), cpu_count=2.0, memory_mb=4096.0,
    )  # fmt: skip

    t2 = by_id["lease-7c2d4e6f8a0b"]
    assert t2.convergence is Convergence.DIVERGED
    assert t2.reason == "desired running, provider says paused (E2B auto-pause?)"
    assert t2.chat_session_id == "sess-1a1b1c1d1e1f"  # only a closed session: the latest one is shown
    assert t2.last_active == local("10:15:05.77")
    assert t2.resources is not None and t2.resources.probe_error == "metrics unavailable"

    t3 = by_id["lease-0e1f2a3b4c5d"]
    assert t3.convergence is Convergence.CONVERGED
    assert t3.reason.startswith("running as desired; needs_refresh set; last_error: Failed to pause lease")
    assert t3.thread_ids == ("m_r7t2w5y8u1i4-1",)  # two terminals, one distinct thread
    assert t3.chat_session_id == "sess-3c3d3e3f3031"  # the most recently started live session
    assert t3.last_active == local("11:59:30")
    assert t3.resources is None  # no snapshot, no allocation listed

    assert [r.lease_id for r in gt.rows] == ["lease-3f9a1c2b7d4e", "lease-0e1f2a3b4c5d", "lease-7c2d4e6f8a0b"]


def test_worked_example_orphans_only_when_e2b_listed_ok():
    state, listings = worked_example()
    gt = reconcile(state, listings, NOW)
    assert [o.key for o in gt.orphans] == ["docker/leon-1a2b3c4d5e6f", "e2b/i0rphan00000000000000"]
    replaced, untracked = gt.orphans
    assert (replaced.claimed_lease_id, replaced.claim) == ("lease-3f9a1c2b7d4e", "lease_points_elsewhere")
    assert replaced.provider_state == "stopped" and replaced.raw_state == "exited"
    assert (untracked.claimed_lease_id, untracked.claim, untracked.confirmed) == (None, None, None)

    failed = dataclasses.replace(
        listings["e2b"], ok=False, listed_at=NOW - timedelta(minutes=5), error="HTTP 503"
    )
    gt2 = reconcile(state, {**listings, "e2b": failed}, NOW)
    assert [o.key for o in gt2.orphans] == ["docker/leon-1a2b3c4d5e6f"]
    t2 = next(r for r in gt2.rows if r.lease_id == "lease-7c2d4e6f8a0b")
    assert t2.convergence is Convergence.STALE and t2.stale_age_s == 300.0
    assert t2.provider_state == "paused"
    assert "unreachable for 5m (HTTP 503)" in t2.reason


# --------------------------------------------------------------------------- threads, sessions, last_active


def test_multi_terminal_threads_newest_terminal_first():
    lid = "lease-9e8d7c6b5a4f"
    terminals = [
        term("term-000000000001", "m_aaaaaaaaaaaa-1", lid, local("10:00:00")),
        term("term-000000000002", "m_bbbbbbbbbbbb-1", lid, local("11:00:00")),
        term("term-000000000003", "m_aaaaaaaaaaaa-1", lid, local("11:30:00")),  # thread A forks again
        term("term-000000000004", "m_cccccccccccc-1", lid, None),  # undated: oldest
        term("term-000000000005", "m_dddddddddddd-1", "lease-other0000000", local("11:59:00")),
    ]
    row = only_row(reconcile(db([lease(lid, "docker", None)], terminals), [listing("docker")], NOW))
    assert row.thread_ids == ("m_aaaaaaaaaaaa-1", "m_bbbbbbbbbbbb-1", "m_cccccccccccc-1")
    assert row.thread_id == "m_aaaaaaaaaaaa-1"

    two = [terminals[0], terminals[1]]
    row2 = only_row(reconcile(db([lease(lid, "docker", None)], two), [listing("docker")], NOW))
    assert row2.thread_ids == ("m_bbbbbbbbbbbb-1", "m_aaaaaaaaaaaa-1")


def test_lease_without_terminals_has_no_thread():
    row = only_row(reconcile(db([lease(LID, "docker", None)]), [listing("docker")], NOW))
    assert row.thread_id is None and row.thread_ids == ()
    assert row.chat_session_id is None


def test_session_choice_live_beats_newer_closed_and_closed_only_takes_latest():
    lid, th, tm = LID, "m_k3v8p1x9q2z7-1", "term-aa11bb22cc33"
    sessions = [
        sess("sess-000000000001", th, tm, lid, "closed", local("09:00:00"), local("09:05:00")),
        sess("sess-000000000002", th, tm, lid, "paused", local("10:00:00"), local("10:01:00")),
        sess("sess-000000000003", th, tm, lid, "closed", local("11:00:00"), local("11:40:00")),
        sess("sess-000000000004", th, tm, lid, "failed", None, None),
    ]
    d = db(
        [lease(LID, "docker", None, updated_at=local("09:30:00"))],
        [term(tm, th, lid, local("09:00:00"))],
        sessions,
    )
    row = only_row(reconcile(d, [listing("docker")], NOW))
    assert row.chat_session_id == "sess-000000000002"
    assert row.last_active == local("11:40:00")

    closed_only = [s for s in sessions if s.status != "paused"]
    row2 = only_row(
        reconcile(dataclasses.replace(d, chat_sessions=tuple(closed_only)), [listing("docker")], NOW)
    )
    assert row2.chat_session_id == "sess-000000000003"


def test_dangling_rows_of_deleted_leases_do_not_shift_other_leases():
    # LEON never deletes chat_sessions/snapshots and may leave terminals of a deleted lease (§2.12);
    # they come first here so any positional mix-up would hand their data to the live leases.
    gone = "lease-deadbeef0000"
    terminals = [
        term("term-dead00000001", "m_deleted0000-1", gone, local("11:59:00")),
        term("term-aa11bb22cc33", "m_k3v8p1x9q2z7-1", LID, local("09:00:00")),
        term("term-dead00000002", "m_deleted0000-2", gone, local("11:59:30")),
    ]
    sessions = [
        sess("sess-dead00000001", "m_deleted0000-1", "term-dead00000001", gone, "active", local("11:59:00"),
             local("11:59:59")),
        sess("sess-0f0e0d0c0b0a", "m_k3v8p1x9q2z7-1", "term-aa11bb22cc33", LID, "closed", local("09:00:00"),
             local("09:30:00")),
    ]  # fmt: skip
    leases = [
        lease("lease-7c2d4e6f8a0b", "e2b", None),
        lease(LID, "docker", None, updated_at=local("09:10:00")),
    ]
    gt = reconcile(db(leases, terminals, sessions), [listing("docker"), listing("e2b")], NOW)
    by_id = {r.lease_id: r for r in gt.rows}
    assert set(by_id) == {LID, "lease-7c2d4e6f8a0b"}
    assert by_id[LID].thread_ids == ("m_k3v8p1x9q2z7-1",)
    assert by_id[LID].chat_session_id == "sess-0f0e0d0c0b0a"
    assert by_id[LID].last_active == local("09:30:00")
    other = by_id["lease-7c2d4e6f8a0b"]
    assert (other.thread_ids, other.chat_session_id, other.last_active) == ((), None, local("10:00:00"))


def test_duplicate_lease_ids_take_the_lookup_path():
    twin = lease(LID, "docker", DOCKER_ID)
    terminals = [term("term-aa11bb22cc33", "m_k3v8p1x9q2z7-1", LID, local("09:00:00"))]
    gt = reconcile(
        db([twin, lease("lease-7c2d4e6f8a0b", "docker", None), twin], terminals), [listing("docker")], NOW
    )
    assert [r.lease_id for r in gt.rows] == ["lease-7c2d4e6f8a0b", LID, LID]
    assert gt.rows[1] == gt.rows[2] and gt.rows[1].thread_id == "m_k3v8p1x9q2z7-1"
    assert gt.rows[0].thread_id is None


# --------------------------------------------------------------------------- matching and orphans


def test_docker_alias_matching_both_ways():
    full = "9f" * 32
    leases = [
        lease("lease-3f9a1c2b7d4e", "docker", "leon-5b8e2a9c0d1f"),  # LEON stores the container name
        lease("lease-7c2d4e6f8a0b", "docker", full),  # an id LEON saw as the 64-hex Id
    ]
    instances = (
        inst("docker", "leon-5b8e2a9c0d1f", R, aliases=("5b" * 32, "5b5b5b5b5b5b")),
        inst("docker", "leon-0c1d2e3f4a5b", P, aliases=(full, full[:12])),
    )
    gt = reconcile(db(leases), [listing("docker", instances=instances)], NOW)
    by_id = {r.lease_id: r for r in gt.rows}
    assert by_id["lease-3f9a1c2b7d4e"].provider_state == "running"
    assert by_id["lease-7c2d4e6f8a0b"].provider_state == "paused"
    assert by_id["lease-7c2d4e6f8a0b"].convergence is Convergence.DIVERGED
    assert gt.orphans == ()


def test_matching_needs_the_same_provider():
    gt = reconcile(
        db([lease(LID, "docker", DOCKER_ID)]),
        [listing("docker"), listing("docker_remote", "docker", (inst("docker_remote", DOCKER_ID),))],
        NOW,
    )
    row = only_row(gt)
    assert row.convergence is Convergence.DIVERGED and row.provider_state is None
    assert [o.key for o in gt.orphans] == [f"docker_remote/{DOCKER_ID}"]


def test_orphan_claims_are_decoded():
    leases = [
        lease("lease-000000000001", "docker", "leon-aaaaaaaaaaaa"),  # points at another container
        lease("lease-000000000002", "docker", None),  # exists, nothing bound
    ]
    instances = (
        inst("docker", "leon-aaaaaaaaaaaa", R, claimed="lease-000000000001"),  # bound: not an orphan
        inst("docker", "leon-bbbbbbbbbbbb", R, claimed="lease-000000000001"),
        inst("docker", "leon-cccccccccccc", P, claimed="lease-000000000002"),
        inst("docker", "leon-dddddddddddd", S, claimed="lease-ffffffffffff"),  # stopped still counts (disk)
        inst("docker", "leon-eeeeeeeeeeee", R),  # no claim at all
        inst("docker", "leon-ffffffffffff", G, claimed="lease-ffffffffffff"),  # gone: never an orphan
    )
    gt = reconcile(db(leases), [listing("docker", instances=instances)], NOW)
    claims = {o.instance_id: (o.claimed_lease_id, o.claim) for o in gt.orphans}
    assert claims == {
        "leon-bbbbbbbbbbbb": ("lease-000000000001", "lease_points_elsewhere"),
        "leon-cccccccccccc": ("lease-000000000002", "lease_exists"),
        "leon-dddddddddddd": ("lease-ffffffffffff", "lease_missing"),
        "leon-eeeeeeeeeeee": (None, None),
    }
    assert all(o.confirmed is None for o in gt.orphans)  # docker's list is authoritative
    assert [o.key for o in gt.orphans] == [f"docker/{i}" for i in sorted(claims)]


def test_destroyed_lease_with_a_live_instance_labelled_for_it_is_a_leak():
    # LEON destroyed the lease (detached, expired) but the container it labelled still runs.
    leases = [lease("lease-0000000000d1", "docker", None, "destroyed", "detached", status="expired")]
    running = inst("docker", "leon-111111111111", R, claimed="lease-0000000000d1")
    gt = reconcile(db(leases), [listing("docker", instances=(running,))], NOW)
    row = only_row(gt)
    assert row.convergence is Convergence.DIVERGED
    assert "leon-111111111111 (running)" in row.reason and "leak (costs money)" in row.reason
    assert [(o.instance_id, o.claim) for o in gt.orphans] == [("leon-111111111111", "lease_exists")]
    # Only stopped: still a leak, of disk.
    stopped = inst("docker", "leon-111111111111", S, claimed="lease-0000000000d1")
    row = only_row(reconcile(db(leases), [listing("docker", instances=(stopped,))], NOW))
    assert row.convergence is Convergence.DIVERGED and "holds disk" in row.reason
    # Gone at the provider: nothing claims the lease any more, so destroyed+detached is converged.
    gone = inst("docker", "leon-111111111111", G, claimed="lease-0000000000d1")
    row = only_row(reconcile(db(leases), [listing("docker", instances=(gone,))], NOW))
    assert row.convergence is Convergence.CONVERGED and row.reason == "destroyed and detached"


def test_replaced_container_still_alive_is_named_on_its_lease_row():
    leases = [lease("lease-000000000001", "docker", "leon-aaaaaaaaaaaa")]
    instances = (
        inst("docker", "leon-aaaaaaaaaaaa", R, claimed="lease-000000000001"),
        inst("docker", "leon-bbbbbbbbbbbb", R, claimed="lease-000000000001"),  # the replaced one
    )
    row = only_row(reconcile(db(leases), [listing("docker", instances=instances)], NOW))
    assert row.convergence is Convergence.CONVERGED  # the lease itself is fine ...
    assert row.reason.startswith("running as desired")
    assert "orphan instance claims this lease: leon-bbbbbbbbbbbb (running)" in row.reason  # ... but say so


def test_daytona_orphans_need_confirmation():
    instances = (inst("daytona", "sb-1111", S), inst("daytona", "sb-2222", R), inst("daytona", DAYTONA_ID, R))
    gt = reconcile(
        db([lease(LID, "daytona", DAYTONA_ID)]),
        [
            listing(
                "daytona", instances=instances, eventually_consistent=True, confirmed=frozenset({"sb-2222"})
            )
        ],
        NOW,
    )
    assert {o.instance_id: o.confirmed for o in gt.orphans} == {"sb-1111": False, "sb-2222": True}
    gt2 = reconcile(
        db([lease(LID, "daytona", DAYTONA_ID)]),
        [listing("daytona", instances=instances, eventually_consistent=True, confirmed=None)],
        NOW,
    )
    assert {o.instance_id: o.confirmed for o in gt2.orphans} == {"sb-1111": False, "sb-2222": False}


def test_db_only_and_failed_listings_never_produce_orphans():
    gt = reconcile(
        db([]),
        [
            listing("local", "local", (inst("local", "local-0a1b2c3d4e5f"),), has_api=False),
            listing(
                "e2b", "e2b", (inst("e2b", "i0rphan00000000000000"),), ok=False, listed_at=NOW, error="x"
            ),
        ],
        NOW,
    )
    assert gt.orphans == ()
    assert gt.rows == ()


def test_duplicate_ids_at_a_provider_yield_one_orphan():
    a = inst("e2b", "i0rphan00000000000000", R)
    b = inst("e2b", "i0rphan00000000000000", P)
    gt1 = reconcile(db([]), [listing("e2b", instances=(a, b))], NOW)
    gt2 = reconcile(db([]), [listing("e2b", instances=(b, a))], NOW)
    assert len(gt1.orphans) == 1
    assert gt1 == gt2


# --------------------------------------------------------------------------- resources and health


def test_allocation_without_snapshot_and_snapshot_without_allocation():
    snap = ResourceSnapshotRecord(
        "lease-7c2d4e6f8a0b", "docker", "running", "running_runtime", 87.0, None, 1480.0, None, 2.0, None,
        None, None, None, NOW,
    )  # fmt: skip
    gt = reconcile(
        db([lease(LID, "docker", DOCKER_ID), lease("lease-7c2d4e6f8a0b", "docker", None)],
           snapshots={"lease-7c2d4e6f8a0b": snap}),
        [listing("docker", instances=(inst("docker", DOCKER_ID, resources=InstanceResources(4.0, 8192.0)),))],
        NOW,
    )  # fmt: skip
    by_id = {r.lease_id: r for r in gt.rows}
    assert by_id[LID].resources == Resources(cpu_count=4.0, memory_mb=8192.0)
    assert by_id["lease-7c2d4e6f8a0b"].resources == Resources(
        cpu_used=87.0, memory_used_mb=1480.0, disk_used_gb=2.0, collected_at=NOW
    )


def test_provider_health_entries():
    gt = reconcile(
        db([]),
        {
            "e2b": listing("e2b", instances=(inst("e2b", E2B_ID),), listed_at=NOW - timedelta(seconds=3)),
            "docker": listing("docker"),
        },
        NOW,
    )
    assert [h.name for h in gt.providers] == ["docker", "e2b"]
    docker, e2b = gt.providers
    assert (docker.status, docker.instance_count, docker.age_s) == (ProviderStatus.OK, 0, 0.0)
    assert (e2b.status, e2b.instance_count, e2b.age_s, e2b.kind) == (ProviderStatus.OK, 1, 3.0, "e2b")


def test_duplicate_listing_names_are_rejected():
    with pytest.raises(ValueError, match="duplicate listing"):
        reconcile(db([]), [listing("docker"), listing("docker")], NOW)


# --------------------------------------------------------------------------- determinism and purity


def random_fleet(rng: random.Random, n: int) -> tuple[DbState, list[ProviderListing]]:
    kinds = [("docker", "docker"), ("e2b", "e2b"), ("daytona_selfhost", "daytona"), ("local", "local")]
    states = list(NormalState)
    leases, instances, terminals, sessions = [], {k: [] for k, _ in kinds}, [], []
    for i in range(n):
        pname, kind = kinds[i % 4]
        lid = f"lease-{rng.getrandbits(48):012x}"
        cid = None if rng.random() < 0.2 else f"leon-{rng.getrandbits(48):012x}"
        desired = rng.choice(["running", "paused", "destroyed"])
        observed = rng.choice(["running", "paused", "detached", "unknown"])
        # Coarse timestamps on purpose: many ties that must break on ids, not on input order.
        t = local(f"{9 + rng.randrange(3)}:00:00") if rng.random() < 0.9 else None
        leases.append(
            lease(lid, pname, cid, desired, observed, needs_refresh=rng.random() < 0.1, updated_at=t)
        )
        if cid and kind != "local" and rng.random() < 0.8:
            instances[pname].append(
                inst(pname, cid, rng.choice(states), aliases=(f"{rng.getrandbits(64):016x}",))
            )
        for k in range(rng.randrange(3)):
            thread = f"m_{rng.getrandbits(40):010x}-{k}"
            tid = f"term-{rng.getrandbits(48):012x}"
            terminals.append(term(tid, thread, lid, t))
            for _ in range(rng.randrange(3)):
                status = rng.choice(["active", "closed", "paused", "failed"])
                sessions.append(sess(f"sess-{rng.getrandbits(48):012x}", thread, tid, lid, status, t, t))
    for pname, _ in kinds[:3]:
        for _ in range(n // 10):
            claim = rng.choice([None, leases[rng.randrange(n)].lease_id, "lease-000000000000"])
            instances[pname].append(
                inst(pname, f"x{rng.getrandbits(48):012x}", rng.choice(states), claimed=claim)
            )
    listings = [
        listing("docker", "docker", tuple(instances["docker"])),
        listing("e2b", "e2b", tuple(instances["e2b"]), ok=False, listed_at=NOW - timedelta(seconds=90),
                error="503"),
        listing("daytona_selfhost", "daytona", tuple(instances["daytona_selfhost"]),
                eventually_consistent=True,
                confirmed=frozenset(i.instance_id for i in instances["daytona_selfhost"][::2])),
        listing("local", "local", has_api=False),
    ]  # fmt: skip
    leases.append(lease("lease-nolisting00", "agentbay", "s-1"))
    return db(leases, terminals, sessions), listings


def shuffled(state: DbState, listings: list[ProviderListing], rng: random.Random):
    def sh(seq):
        out = list(seq)
        rng.shuffle(out)
        return tuple(out)

    state2 = dataclasses.replace(
        state, leases=sh(state.leases), terminals=sh(state.terminals), chat_sessions=sh(state.chat_sessions)
    )
    listings2 = [dataclasses.replace(x, instances=sh(x.instances)) for x in listings]
    rng.shuffle(listings2)
    return state2, listings2


def test_identical_inputs_identical_output_even_shuffled():
    rng = random.Random(20260320)
    state, listings = random_fleet(rng, 400)
    first = reconcile(state, listings, NOW)
    assert reconcile(state, listings, NOW) == first
    for _ in range(5):
        s2, l2 = shuffled(state, listings, rng)
        assert reconcile(s2, l2, NOW) == first
    # The fleet exercises every branch that ordering could affect.
    assert {r.convergence for r in first.rows} == set(Convergence)
    assert any(len(r.thread_ids) > 1 for r in first.rows)
    assert first.orphans


def test_output_order_is_the_documented_one():
    state, listings = random_fleet(random.Random(7), 300)
    gt = reconcile(state, listings, NOW)
    keys = [(r.provider, r.thread_id or "", r.lease_id) for r in gt.rows]
    assert keys == sorted(keys)
    okeys = [(o.provider, o.instance_id) for o in gt.orphans]
    assert okeys == sorted(okeys)
    assert [h.name for h in gt.providers] == sorted(h.name for h in gt.providers)
    assert len({r.lease_id for r in gt.rows}) == len(state.leases)


def test_reconcile_restores_gc_state():
    state, listings = worked_example()
    assert gc.isenabled()
    reconcile(state, listings, NOW)
    assert gc.isenabled()
    gc.disable()
    try:
        reconcile(state, listings, NOW)
        assert not gc.isenabled()
    finally:
        gc.enable()


# --------------------------------------------------------------------------- the fast constructors


def test_fast_rows_are_genuine_frozen_dataclasses():
    gt = reconcile(*worked_example(), NOW)
    row = gt.rows[0]
    assert type(row) is GroundTruthRow
    assert row == GroundTruthRow(*(getattr(row, f.name) for f in dataclasses.fields(GroundTruthRow)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.reason = "edited"  # type: ignore[misc]
    assert type(gt.orphans[0]).__name__ == "OrphanRow" and type(row.resources) is Resources


def test_fast_factory_fails_loudly_on_reordered_fields_and_falls_back_without_slots():
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int
        b: int = 2

    build = reconcile_mod._fast_factory(NoSlots, ("a",))
    assert build(1) == NoSlots(1, 2)
    with pytest.raises(ImportError, match="fields changed"):
        reconcile_mod._fast_factory(NoSlots, ("b", "a"))

    @dataclasses.dataclass(frozen=True, slots=True)
    class Appended:
        a: int
        added: tuple[int, ...] = ()

    fast = reconcile_mod._fast_factory(Appended, ("a",))
    made = fast(5)
    assert type(made) is Appended and made == Appended(5)


def test_kind_facts_come_with_the_listing_not_the_kind_name():
    """A provider's pause semantics and paused-hint arrive on its listing (from its adapter's
    Capabilities), so a new kind needs no edit here; unset fields fall back to the old kinds."""
    name, cid = "newkind", "nk-0a1b2c3d"
    facts = {"pause_is_stop": True, "paused_hint": "idle auto-pause?"}

    def judge(desired: str, state: NormalState, **kw: object) -> GroundTruthRow:
        lst = dataclasses.replace(listing(name, "newkind", (inst(name, cid, state),)), **kw)
        return only_row(reconcile(db([lease(LID, name, cid, desired, desired)]), [lst], NOW))

    row = judge("paused", NormalState.STOPPED, **facts)
    assert (row.convergence, row.reason) == (Convergence.CONVERGED, "paused as desired")
    row = judge("running", NormalState.PAUSED, **facts)
    assert row.reason == "desired running, provider says paused (idle auto-pause?)"
    # Without the facts: an unknown kind's stop is not a pause, and the generic hint is used.
    assert judge("paused", NormalState.STOPPED).convergence is Convergence.DIVERGED
    assert judge("running", NormalState.PAUSED).reason.endswith("(paused outside LEON?)")
    # A listing that says so explicitly wins over what the kind name used to imply.
    no_stop = dataclasses.replace(listing("daytona", "daytona", (inst("daytona", DAYTONA_ID, S),)),
                                  pause_is_stop=False)  # fmt: skip
    gt = reconcile(db([lease(LID, "daytona", DAYTONA_ID, "paused", "paused")]), [no_stop], NOW)
    assert only_row(gt).convergence is Convergence.DIVERGED
