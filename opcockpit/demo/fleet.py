"""Deterministic demo fleet: a LEON-schema sandbox.db + events.db and the provider-side picture.

Every row is written the way LEON writes it (shared/domain/leon-sandbox-db.md): LEON-shaped ids,
naive local ISO times in the sandbox tables, UTC `Z` in lease_resource_snapshots, UTC
CURRENT_TIMESTAMP format in run_events, one `lease_events` row per `apply()` with `version` +1,
instance history rows that go `stopped` on detach, at most one live chat session per terminal,
all terminals of a thread on one lease. Lease lifecycles are *simulated* with LEON's apply()
semantics (see `fleet_sim.Lease`) rather than filled in column by column, so the rows stay mutually
consistent.

The provider side (`DemoFleet.instances`) is what the loopback doubles should hold, including a
planned amount of drift (`DemoFleet.drift`): instances paused behind the platform's back, killed
instances, orphans and a leaked instance of a destroyed lease.

Generation is one pass in Python plus executemany in one transaction: 50k leases in seconds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from opcockpit.adapters.leon.schema import events_ddl, sandbox_ddl
from opcockpit.demo.events import RunWriter
from opcockpit.demo.fleet_sim import Builder
from opcockpit.demo.fleet_types import (
    DEFAULT_PROVIDERS,
    DEFAULT_WEIGHTS,
    REMOTE_KINDS,
    DemoFleet,
    DriftItem,
    InstanceSpec,
    PlannedDrift,
)
from opcockpit.demo.fleet_write import (
    events_batches,
    provider_side,
    sandbox_batches,
    sandbox_counts,
    write_db,
)
from opcockpit.domain.gcpause import gc_paused

__all__ = [
    "DEFAULT_PROVIDERS",
    "DEFAULT_WEIGHTS",
    "REMOTE_KINDS",
    "DemoFleet",
    "DriftItem",
    "InstanceSpec",
    "PlannedDrift",
    "generate_fleet",
    "scenario_counts",
]


def generate_fleet(
    directory: str | Path,
    *,
    leases: int = 300,
    seed: int = 7,
    providers: Mapping[str, str] | None = None,
    weights: Mapping[str, float] | None = None,
    now: datetime | None = None,
    variant: str = "leonai",
    runs: bool = True,
) -> DemoFleet:
    """Write `sandbox.db` and `events.db` into `directory` and return the fleet description.

    `providers` maps provider name (as in `sandbox_leases.provider_name`) to kind; `weights`
    maps provider name to its share of leases (defaults: DEFAULT_PROVIDERS / DEFAULT_WEIGHTS;
    unknown names in `weights` are an error, names without a weight get none). `now` pins time so
    two generations with one seed are byte-identical; by default it is the current time.
    Existing DB files in `directory` are replaced.
    """
    if leases < 0:
        raise ValueError("leases must be >= 0")
    providers = dict(DEFAULT_PROVIDERS if providers is None else providers)
    for name, kind in providers.items():
        if kind not in (*REMOTE_KINDS, "local"):
            raise ValueError(f"provider {name!r}: unknown kind {kind!r}")
    if weights is None:
        weights = {n: DEFAULT_WEIGHTS.get(n, 0.1) for n in providers}
    unknown = set(weights) - set(providers)
    if unknown:
        raise ValueError(f"weights name unknown providers: {sorted(unknown)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sandbox_db, events_db = directory / "sandbox.db", directory / "events.db"
    for p in (sandbox_db, events_db):
        for suffix in ("", "-wal", "-shm"):
            Path(str(p) + suffix).unlink(missing_ok=True)

    # Millions of row tuples stay alive until they are written; the cyclic GC would rescan them
    # over and over (~10% of a 50k generation). The one cycle (leases <-> builder) is freed later.
    with gc_paused():
        b = Builder(seed=seed, providers=providers, weights=weights, now=now)
        for _ in range(leases):
            b.lease()
        instances, drift = provider_side(b, leases)
        run_rows = RunWriter(b.rng, b.ids, b.clock).build(b.threads) if runs else []
        # Written one after the other: two writer threads were measured slower (SQLite releases
        # the GIL for every row's insert, and the hand-offs cost more than the overlap gains).
        write_db(sandbox_db, sandbox_ddl(variant), sandbox_batches(b, variant))
        write_db(events_db, events_ddl(), events_batches(run_rows))
    counts = sandbox_counts(b)
    counts["run_events"] = len(run_rows)
    return DemoFleet(
        directory=directory,
        sandbox_db=sandbox_db,
        events_db=events_db,
        seed=seed,
        lease_count=leases,
        providers=providers,
        instances=instances,
        drift=drift,
        generated_at=b.clock.aware(b.now),
        counts=counts,
    )


def scenario_counts(fleet_db: str | Path) -> dict[str, int]:
    """Leases per (desired, observed, status): a quick look at what was generated."""
    conn = sqlite3.connect(f"file:{fleet_db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT desired_state, observed_state, status, COUNT(*) FROM sandbox_leases GROUP BY 1, 2, 3"
        ).fetchall()
    finally:
        conn.close()
    return {f"{d}/{o}/{s}": c for d, o, s, c in rows}
