"""Incremental must equal full: random LEON-way writes to a real sandbox.db, provider changes,
listing failures and resyncs; after every step the change-detecting reader + incremental
reconciler give the GroundTruth a from-scratch read + reconcile gives for the same inputs."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opcockpit.adapters.leon.sandbox_changes import SandboxDbTracker
from opcockpit.adapters.leon.sandbox_db import read_db_state
from opcockpit.domain.models import Instance, NormalState, ProviderListing
from opcockpit.domain.reconcile import reconcile
from opcockpit.domain.reconcile_inc import IncrementalReconciler
from opcockpit.services.collect import _same_or_new
from tests.fixtures.leon_db import (
    add_lease,
    add_lease_event,
    add_resource_snapshot,
    add_session,
    add_terminal,
    create_sandbox_db,
    local_iso,
)

LEASES = [f"lease-{i}" for i in range(4)]
IIDS = [f"i-{i}" for i in range(4)]
PROVIDERS = ["docker", "e2b", "daytona", "local", "ghost"]  # ghost: named by leases, never configured
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STATES = list(NormalState)

lease_id = st.sampled_from(LEASES)
op = st.one_of(
    st.tuples(
        st.just("lease"), lease_id, st.sampled_from(PROVIDERS), st.sampled_from([None, *IIDS]),
        st.sampled_from(["running", "paused", "destroyed"]),
        st.sampled_from(["running", "paused", "detached", "unknown"]),
    ),
    st.tuples(st.just("update"), lease_id, st.sampled_from(["running", "paused", "destroyed"]),
              st.booleans()),
    st.tuples(st.just("delete"), lease_id),
    # LEON's apply() error path: version+1, last_error, needs_refresh, one lease_events row, and
    # no updated_at bump (the tracker finds the lease through the lease_events watermark).
    st.tuples(st.just("error"), lease_id, st.sampled_from(["boom", "HTTP 503"])),
    # A writer that bumps no timestamp and appends no event (the tracker's full-scan fallback).
    st.tuples(st.just("sneak"), lease_id, st.sampled_from([None, *IIDS])),
    st.tuples(st.just("terminal"), lease_id, st.integers(0, 5), st.integers(0, 3)),
    st.tuples(st.just("drop_terminal"), st.integers(0, 5)),
    st.tuples(st.just("session"), lease_id, st.integers(0, 5), st.sampled_from(["active", "idle", "closed"])),
    st.tuples(st.just("snapshot"), lease_id, st.floats(0, 4)),
    st.tuples(
        st.just("instance"), st.sampled_from(PROVIDERS[:3]), st.sampled_from(IIDS), st.sampled_from(STATES),
        st.sampled_from([None, *LEASES]), st.booleans(),
    ),
    st.tuples(st.just("vanish"), st.sampled_from(PROVIDERS[:3]), st.sampled_from(IIDS)),
    st.tuples(st.just("fail"), st.sampled_from(PROVIDERS[:3])),
    # A quiet relisting: the same instance objects, handed over as the last tuple (the collector's
    # way), a new listing time; Daytona's also confirms or unconfirms an orphan by GET.
    st.tuples(st.just("relist"), st.sampled_from(PROVIDERS[:3])),
    st.tuples(st.just("confirm"), st.sampled_from(IIDS)),
    st.tuples(st.just("recover"), st.sampled_from(PROVIDERS[:3])),
    st.tuples(st.just("tick"), st.integers(1, 400)),
    st.tuples(st.just("resync")),
    st.tuples(st.just("replace_file")),
)  # fmt: skip


class World:
    """The inputs: a real sandbox.db written LEON's way, and in-memory provider listings."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = create_sandbox_db(str(path))
        self.now = T0
        self.fleet: dict[str, dict[str, Instance]] = {p: {} for p in PROVIDERS[:3]}
        self.failing: set[str] = set()
        self.last_good: dict[str, ProviderListing] = {}
        self.listings: dict[str, ProviderListing] = {}
        self.confirmed: frozenset[str] = frozenset()  # Daytona's orphans confirmed by GET
        self.n = 0
        for p in PROVIDERS[:3]:
            self.relist(p)
        self.listings["local"] = ProviderListing(provider="local", kind="local", ok=True, has_api=False)

    def relist(self, p: str) -> None:
        kind = p
        caps = {"pause_is_stop": p == "daytona", "paused_hint": "E2B auto-pause?" if p == "e2b" else None}
        if p in self.failing:
            last = self.last_good.get(p)
            self.listings[p] = ProviderListing(
                provider=p, kind=kind, ok=False, instances=last.instances if last else (),
                listed_at=last.listed_at if last else None, error="HTTP 503", **caps,
            )  # fmt: skip
            return
        # Unchanged: the last tuple itself, as the collector hands it over.
        instances = _same_or_new(self.last_good.get(p), list(self.fleet[p].values()))
        eventual = {"eventually_consistent": p == "daytona", "confirmed_orphans": self.confirmed}
        listing = ProviderListing(
            provider=p,
            kind=kind,
            ok=True,
            instances=instances,
            listed_at=self.now,
            **caps,
            **eventual,
        )
        self.last_good[p] = self.listings[p] = listing

    def now_iso(self) -> str:
        return local_iso(self.now - timedelta(hours=1))  # older than the watermark on purpose

    def ts(self) -> str | None:
        self.n += 1
        return local_iso(self.now + timedelta(milliseconds=self.n))

    def apply(self, step: tuple) -> None:
        c = self.conn
        kind, *a = step
        if kind == "lease":
            lid, prov, cid, desired, observed = a
            c.execute("DELETE FROM sandbox_leases WHERE lease_id = ?", (lid,))
            add_lease(c, lid, prov, current_instance_id=cid, desired_state=desired, observed_state=observed,
                      created_at=self.now, updated_at=self.ts())  # fmt: skip
        elif kind == "update":  # LEON's apply(): desired + version+1 + updated_at, or an observation
            lid, desired, observe = a
            if observe:
                c.execute(
                    "UPDATE sandbox_leases SET observed_state = ?, instance_status = ?, needs_refresh = 1,"
                    " version = version + 1, updated_at = ? WHERE lease_id = ?",
                    (desired if desired != "destroyed" else "detached",) * 2 + (self.ts(), lid),
                )
            else:
                c.execute(
                    "UPDATE sandbox_leases SET desired_state = ?, version = version + 1, updated_at = ?"
                    " WHERE lease_id = ?",
                    (desired, self.ts(), lid),
                )
        elif kind == "delete":
            c.execute("DELETE FROM sandbox_leases WHERE lease_id = ?", a)
        elif kind == "error":
            lid, error = a
            c.execute(
                "UPDATE sandbox_leases SET version = version + 1, last_error = ?, needs_refresh = 1,"
                " refresh_hint_at = ?, observed_at = ? WHERE lease_id = ?",
                (error, self.now_iso(), self.now_iso(), lid),
            )
            add_lease_event(c, lid, "intent.pause", "api", error=error, created_at=self.now)
        elif kind == "sneak":
            c.execute("UPDATE sandbox_leases SET current_instance_id = ? WHERE lease_id = ?", (a[1], a[0]))
        elif kind == "terminal":
            lid, n, thread = a
            c.execute("DELETE FROM abstract_terminals WHERE terminal_id = ?", (f"term-{n}",))
            add_terminal(c, f"term-{n}", f"thread-{thread}", lid, created_at=self.now + timedelta(seconds=n))
        elif kind == "drop_terminal":
            c.execute("DELETE FROM abstract_terminals WHERE terminal_id = ?", (f"term-{a[0]}",))
        elif kind == "session":
            lid, n, status = a
            c.execute("DELETE FROM chat_sessions WHERE chat_session_id = ?", (f"sess-{n}",))
            add_session(c, f"sess-{n}", f"thread-{n}", f"term-{n}", lid, status=status,
                        started_at=self.now, last_active_at=self.now + timedelta(seconds=n))  # fmt: skip
        elif kind == "snapshot":
            lid, cpu = a
            c.execute("DELETE FROM lease_resource_snapshots WHERE lease_id = ?", (lid,))
            add_resource_snapshot(c, lid, "docker", cpu_used=cpu, collected_at=self.now)
        elif kind == "instance":
            p, iid, state, claimed, alias = a
            self.fleet[p][iid] = Instance(
                provider=p, instance_id=iid, raw_state=state.value, state=state, name=iid,
                aliases=(f"{iid}-long",) if alias else (), claimed_lease_id=claimed,
            )  # fmt: skip
            self.relist(p)
        elif kind == "vanish":
            p, iid = a
            self.fleet[p].pop(iid, None)
            self.relist(p)
        elif kind == "fail":
            self.failing.add(a[0])
            self.relist(a[0])
        elif kind == "recover":
            self.failing.discard(a[0])
            self.relist(a[0])
        elif kind == "relist":
            self.relist(a[0])
        elif kind == "confirm":
            self.confirmed ^= {a[0]}
            self.relist("daytona")
        elif kind == "tick":
            self.now += timedelta(seconds=a[0])
        elif kind == "replace_file":  # a restored backup: same content, new inode
            c.commit()
            copy = self.path.with_suffix(".copy")
            dst = sqlite3.connect(copy)
            c.backup(dst)
            dst.close()
            c.close()
            for suffix in ("-wal", "-shm"):
                with_suffix = Path(str(self.path) + suffix)
                if with_suffix.exists():
                    with_suffix.unlink()
            os.replace(copy, self.path)
            self.conn = create_sandbox_db(str(self.path))
        c = self.conn
        c.commit()


def _same(inc, full) -> None:
    assert inc.rows == full.rows
    assert inc.orphans == full.orphans
    assert inc.providers == full.providers
    assert (inc.generated_at, inc.db_path, inc.schema_variant, inc.db_problems) == (
        full.generated_at, full.db_path, full.schema_variant, full.db_problems,
    )  # fmt: skip


# A populated fleet first, so random updates, deletes and instance changes hit existing rows.
PRELUDE = [
    step
    for i, lid in enumerate(LEASES)
    for step in (
        ("lease", lid, PROVIDERS[i % 3], IIDS[i], "running", "running"),
        ("instance", PROVIDERS[i % 3], IIDS[i], NormalState.RUNNING, None, False),
        ("terminal", lid, i, i),
        ("session", lid, i, "active"),
    )
]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(op, min_size=3, max_size=30))
def test_incremental_equals_full_after_every_step(tmp_path_factory, steps):
    path = tmp_path_factory.mktemp("inc") / "sandbox.db"
    world = World(path)

    async def run() -> None:
        tracker = SandboxDbTracker(str(path), resync_s=10_000)
        inc = IncrementalReconciler()
        try:
            for step in [*PRELUDE, *steps]:
                world.apply(step)
                if step[0] == "resync":
                    tracker.invalidate("test")
                    inc.reset()
                db_inc = await tracker.read_state(now=world.now)
                db_full = await read_db_state(str(path), now=world.now)
                _same(
                    inc.step(db_inc, dict(world.listings), world.now),
                    reconcile(db_full, world.listings, world.now),
                )
        finally:
            await tracker.aclose()
            world.conn.close()

    asyncio.run(run())
