"""What every drift action builds on: the action table, `DriftEvent`, and `DriftBase` (the
provider-side lookups and LEON's way of writing sandbox.db) that the action mixins extend.

Split from drift.py along its seams: drift_leon.py (LEON acting/observing), drift_runs.py (agent
runs and session activity), drift.py (the simulator: lifecycle, ticks, provider-side actions).
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opcockpit.demo.fleet import DemoFleet
from opcockpit.demo.ids import IdGen, local_now_iso
from opcockpit.doubles.base import FakeInstance, FakeProvider

ACTION_WEIGHTS: dict[str, float] = {
    "pause_behind_back": 3,
    "resume_behind_back": 1,
    "kill": 1,
    "spawn_orphan": 1,
    "leon_observe": 3,
    "leon_pause": 2,
    "leon_resume": 1.5,
    "leon_failed_intent": 1,
    "run_start": 3,
    "run_finish": 2.5,
    "run_error": 1,
    "session_touch": 3,
    "provider_outage": 0.4,
    # LEON's own reconcile loop and the platform's cleanup: without them the demo only decays
    # (converged 48 -> 19 in ten minutes); with them the converged share holds steady.
    "leon_repair": 4,
    "orphan_gc": 1,
}

# How long a simulated provider outage lasts: long enough to watch rows go stale with their age.
OUTAGE_S = 15.0

_PAUSE_ERROR = {
    "docker": "Failed to pause lease {lease}: Docker command timed out after 20.0s: docker pause {inst}",
    "e2b": "Failed to pause lease {lease}: TimeoutException: Request timed out",
    "daytona": "Failed to pause lease {lease}: DaytonaError: Sandbox {inst} is in state 'stopping'",
    "agentbay": "Failed to pause lease {lease}: Failed to pause session {inst}: BenefitLevel.NotSupport",
}


_RUNNING_BOUND = "desired_state='running' AND observed_state='running' AND current_instance_id IS NOT NULL"


@dataclass(frozen=True)
class DriftEvent:
    """One thing the simulator did (kept in `DriftSimulator.history`, newest last)."""

    action: str
    detail: str
    provider: str | None = None
    lease_id: str | None = None
    instance_id: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


def normal_state(double: FakeProvider, inst: FakeInstance) -> str | None:
    """The normalised word (running | paused | stopped) of a double's native state."""
    for word in ("running", "paused", "stopped"):
        try:
            if double.native_state(word) == inst.state:
                return word
        except (KeyError, ValueError):
            continue
    return None


class DriftBase:
    """The state and helpers the action mixins share (DriftSimulator.__init__ sets the state)."""

    fleet: DemoFleet
    doubles: dict[str, FakeProvider]
    rng: random.Random
    ids: IdGen
    busy_timeout_s: float
    inflight_runs: dict[str, str]
    outages: dict[str, float]
    _lease_cols: set[str] | None

    # -- helpers: provider side -------------------------------------------------------------------
    def _instances(self, state: str, *, bound: bool | None = None) -> list[tuple[str, FakeInstance]]:
        """(provider, instance) pairs in normalised `state`, in a stable order."""
        out = []
        for provider in sorted(self.doubles):
            double = self.doubles[provider]
            with double.lock:
                items = sorted(double.instances.items())
            for _iid, inst in items:
                if normal_state(double, inst) != state:
                    continue
                claimed = _claimed_lease(inst)
                if bound is not None and bound != (claimed is not None):
                    continue
                out.append((provider, inst))
        return out

    # -- helpers: sandbox.db ----------------------------------------------------------------------
    def _connect(self, path: Any) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), timeout=self.busy_timeout_s, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        return conn

    def _cols(self, conn: sqlite3.Connection) -> set[str]:
        if self._lease_cols is None:
            self._lease_cols = {r[1] for r in conn.execute("PRAGMA table_info(sandbox_leases)")}
        return self._lease_cols

    def _pick_lease(self, where: str, args: tuple = ()) -> tuple[str, str, str | None] | None:
        providers = sorted(self.doubles)
        if not providers:
            return None
        conn = self._connect(self.fleet.sandbox_db)
        try:
            marks = ",".join("?" * len(providers))
            rows = conn.execute(
                f"SELECT lease_id, provider_name, current_instance_id FROM sandbox_leases "
                f"WHERE provider_name IN ({marks}) AND {where} ORDER BY lease_id",
                (*providers, *args),
            ).fetchall()
        finally:
            conn.close()
        return self.rng.choice(rows) if rows else None

    def apply(
        self,
        lease_id: str,
        event_type: str,
        source: str,
        payload: str,
        *,
        desired: str | None = None,
        observed: str | None = None,
        error: str | None = None,
    ) -> int:
        """LEON's SQLiteLease.apply(): lease snapshot + one lease_events row in one transaction.

        Success: desired/observed set, status active (expired when detached), error and refresh
        flag cleared, instance row upserted (stopped + unbound on detach). Failure (`error`):
        last_error/needs_refresh/refresh_hint_at/observed_at persisted, desired/observed unchanged.
        Returns the new version.
        """
        now = local_now_iso()
        conn = self._connect(self.fleet.sandbox_db)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT version, current_instance_id FROM sandbox_leases WHERE lease_id = ?", (lease_id,)
                ).fetchone()
                if row is None:
                    raise LookupError(f"lease {lease_id} not found")
                version, current = row[0] + 1, row[1]
                conn.execute(
                    "INSERT INTO lease_events (event_id, lease_id, event_type, source, payload_json, error, "
                    "created_at) VALUES (?,?,?,?,?,?,?)",
                    (self.ids.event(), lease_id, event_type, source, payload, error, now),
                )
                has_mirror = "instance_status" in self._cols(conn)
                if error is not None:
                    conn.execute(
                        "UPDATE sandbox_leases SET version=?, last_error=?, needs_refresh=1, "
                        "refresh_hint_at=?, observed_at=?, updated_at=? WHERE lease_id=?",
                        (version, error[:500], now, now, now, lease_id),
                    )
                else:
                    obs = observed or "unknown"
                    detached = obs == "detached"
                    sets = "version=?, observed_state=?, observed_at=?, updated_at=?, status=?, "
                    sets += "last_error=NULL, needs_refresh=0, refresh_hint_at=NULL"
                    args: list[Any] = [version, obs, now, now, "expired" if detached else "active"]
                    if has_mirror:
                        sets += ", instance_status=?"
                        args.append(obs)
                    if desired is not None:
                        sets += ", desired_state=?"
                        args.append(desired)
                    if detached:
                        sets += ", current_instance_id=NULL, instance_created_at=NULL"
                    conn.execute(f"UPDATE sandbox_leases SET {sets} WHERE lease_id=?", (*args, lease_id))
                    if current is not None:
                        conn.execute(
                            "UPDATE sandbox_instances SET status=?, last_seen_at=? WHERE instance_id=?",
                            ("stopped" if detached else obs, now, current),
                        )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return version
        finally:
            conn.close()

    def _set_sessions(self, lease_id: str, from_status: tuple[str, ...], to: str, reason: str | None) -> None:
        now = local_now_iso()
        conn = self._connect(self.fleet.sandbox_db)
        try:
            marks = ",".join("?" * len(from_status))
            ended = now if to == "closed" else None
            with conn:
                conn.execute(
                    f"UPDATE chat_sessions SET status=?, close_reason=?, ended_at=COALESCE(?, ended_at), "
                    f"last_active_at=? WHERE lease_id=? AND status IN ({marks})",
                    (to, reason, ended, now, lease_id, *from_status),
                )
        finally:
            conn.close()

    def _provider_view(self, provider: str, iid: str | None) -> str | None:
        """What LEON's status probe would report: running | paused | deleted (gone)."""
        double = self.doubles.get(provider)
        if double is None or iid is None:
            return None
        with double.lock:
            inst = double.instances.get(iid)
        if inst is None:
            return "deleted"
        state = normal_state(double, inst)
        return "deleted" if state in (None, "stopped") else state


def _claimed_lease(inst: FakeInstance) -> str | None:
    labels = inst.labels or {}
    if "lease_id" in labels:
        return labels["lease_id"]
    ctx = labels.get("leon.context_id", "")
    return ctx.removeprefix("leon-") if ctx.startswith("leon-") else None


def _normal_db(status: str | None) -> str:
    """SQLiteLease._normalize_provider_state."""
    if status in ("running", "paused", "unknown"):
        return status
    if status in ("deleted", "dead", "stopped", "detached"):
        return "detached"
    return "unknown"
