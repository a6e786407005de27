"""Deterministic synthetic GroundTruth (fixed seed, fixed now) for TUI tests, snapshots and the bench.

Not demo data: the demo goes through the real pipeline. This exists so the table and screens can be
exercised at 10k-50k rows without starting doubles.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from opcockpit.domain.models import (
    Convergence,
    GroundTruth,
    GroundTruthRow,
    OrphanRow,
    ProviderHealth,
    ProviderStatus,
    Resources,
)

NOW = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
PROVIDERS = ("docker", "e2b", "daytona", "agentbay", "local")


def _row(i: int, rnd: random.Random, now: datetime) -> GroundTruthRow:
    provider = PROVIDERS[i % len(PROVIDERS)]
    roll = rnd.random()
    desired = "running" if roll < 0.7 else "paused"
    conv = Convergence.CONVERGED
    provider_state: str | None = desired
    reason = f"provider reports {desired}"
    observed = desired
    stale_age = None
    if provider == "local":
        provider_state = None
        reason = "db only (local provider)"
    elif i % 17 == 3:
        conv, provider_state, reason = Convergence.DIVERGED, "paused", "desired running, provider paused"
        desired = "running"
    elif i % 23 == 5:
        conv, provider_state, reason = Convergence.DIVERGED, "gone", "instance missing at provider"
    elif i % 29 == 7:
        conv, provider_state, reason = Convergence.TRANSITIONING, "transitioning", "provider: pausing"
    elif i % 31 == 9:
        conv, provider_state, reason = Convergence.UNBOUND, None, "lease not bound yet (lazy)"
    threads = tuple(f"thr-{i:05d}-{k}" for k in range(1 + (i % 7 == 0)))
    return GroundTruthRow(
        lease_id=f"lease-{i:05d}",
        provider=provider,
        thread_id=threads[0],
        thread_ids=threads,
        chat_session_id=f"cs-{i:05d}",
        instance_id=None if conv == Convergence.UNBOUND else f"{provider[:3]}-{i:06x}",
        desired_state=desired,
        observed_state=observed,
        provider_state=provider_state,
        convergence=conv,
        reason=reason,
        last_active=now - timedelta(seconds=rnd.randint(0, 86400)),
        source="lease" if provider == "local" else "lease+provider",
        lease_status="active",
        version=rnd.randint(1, 40),
        needs_refresh=i % 13 == 0,
        last_error="Conflict: instance busy" if i % 41 == 0 else None,
        resources=Resources(cpu_used=0.5, memory_used_mb=300.0, memory_total_mb=2048.0),
        updated_at=now - timedelta(seconds=rnd.randint(0, 3600)),
        stale_age_s=stale_age,
    )


def make_ground_truth(n: int = 40, *, seed: int = 7, now: datetime = NOW, orphans: int = 4) -> GroundTruth:
    rnd = random.Random(seed)
    rows = tuple(_row(i, rnd, now) for i in range(n))
    orphan_rows = tuple(
        OrphanRow(
            provider=PROVIDERS[k % 3],
            instance_id=f"orph-{k:04d}",
            name=f"leon-sandbox-{k}",
            provider_state="running" if k % 2 == 0 else "paused",
            raw_state="started" if k % 2 == 0 else "paused",
            labels={"leon.lease_id": f"lease-9{k:04d}", "team": "sre"},
            created_at=now - timedelta(hours=k + 1),
            claimed_lease_id=f"lease-9{k:04d}" if k % 3 else None,
            claim=("lease_missing" if k % 3 == 1 else "lease_points_elsewhere") if k % 3 else None,
            confirmed=False if PROVIDERS[k % 3] == "daytona" else None,
        )
        for k in range(orphans)
    )
    providers = (
        ProviderHealth("docker", "docker", ProviderStatus.OK, None, now, n // 5, 0.0),
        ProviderHealth("e2b", "e2b", ProviderStatus.OK, None, now, n // 5, 0.0),
        ProviderHealth(
            "daytona",
            "daytona",
            ProviderStatus.STALE,
            "Unavailable: 503",
            now - timedelta(seconds=95),
            n // 5,
            95.0,
        ),
        ProviderHealth("agentbay", "agentbay", ProviderStatus.OK, None, now, n // 5, 0.0),
        ProviderHealth("local", "local", ProviderStatus.DB_ONLY, None, None, None, None),
    )
    # Rows of the stale provider are shown stale with the listing's age, as reconcile does.
    rows = tuple(
        replace(
            r,
            convergence=Convergence.STALE,
            stale_age_s=95.0 if r.version % 2 else 420.0,
            reason="provider listing failed; last known state",
        )
        if r.provider == "daytona" and r.convergence == Convergence.CONVERGED
        else r
        for r in rows
    )
    return GroundTruth(
        generated_at=now,
        providers=providers,
        rows=rows,
        orphans=orphan_rows,
        db_path="/var/lib/leon/sandbox.db",
        schema_variant="leonai",
    )


def mutate(gt: GroundTruth, fraction: float = 0.01, *, seed: int = 11, step: int = 1) -> GroundTruth:
    """A later refresh: `fraction` of rows change state/version; time moves by `step` seconds."""
    rnd = random.Random(seed + step)
    rows = list(gt.rows)
    k = max(1, int(len(rows) * fraction))
    for i in rnd.sample(range(len(rows)), k):
        r = rows[i]
        paused = r.provider_state == "paused"
        rows[i] = replace(
            r,
            provider_state="running" if paused else "paused",
            convergence=Convergence.CONVERGED if paused else Convergence.DIVERGED,
            reason="provider reports running" if paused else "desired running, provider paused",
            version=r.version + 1,
        )
    return replace(gt, rows=tuple(rows), generated_at=gt.generated_at)
