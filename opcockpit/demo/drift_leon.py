"""Drift actions of LEON itself: observing, the idle reaper, resuming, repairing, the platform's
orphan cleanup and a failed intent, each written LEON's way (DriftBase.apply)."""

from __future__ import annotations

from typing import Any

from opcockpit.demo.drift_base import (
    _PAUSE_ERROR,
    _RUNNING_BOUND,
    DriftBase,
    DriftEvent,
    _normal_db,
)
from opcockpit.demo.ids import local_now_iso


class LeonDrift(DriftBase):
    """The `leon_*` and `orphan_gc` actions of DriftSimulator."""

    def _a_leon_observe(self) -> DriftEvent | None:
        """LEON's refresh notices what the provider says (drift first, else a routine refresh)."""
        rows = []
        conn = self._connect(self.fleet.sandbox_db)
        try:
            rows = conn.execute(
                "SELECT lease_id, provider_name, current_instance_id, observed_state FROM sandbox_leases "
                "WHERE current_instance_id IS NOT NULL AND desired_state != 'destroyed' ORDER BY lease_id"
            ).fetchall()
        finally:
            conn.close()
        rows = [r for r in rows if r[1] in self.doubles]
        if not rows:
            return None
        drifted = [r for r in rows if _normal_db(self._provider_view(r[1], r[2])) != r[3]]
        lease_id, provider, iid, _obs = self.rng.choice(drifted or rows)
        status = self._provider_view(provider, iid) or "unknown"
        observed = _normal_db(status)
        version = self.apply(lease_id, "observe.status", "read.status", f'{{"status": "{status}"}}',
                             observed=observed)  # fmt: skip
        return DriftEvent(
            "leon_observe", f"LEON observed {lease_id} {status} (v{version})", provider, lease_id, iid
        )

    def _a_leon_pause(self) -> DriftEvent | None:
        """The idle reaper: pause the instance, then close the expired session (idle_timeout)."""
        pick = self._pick_lease(_RUNNING_BOUND)
        if pick is None:
            return None
        lease_id, provider, iid = pick
        if self._provider_view(provider, iid) != "running":
            return None
        self.doubles[provider].set_state(iid, "paused")  # type: ignore[arg-type]
        version = self.apply(lease_id, "intent.pause", "api", "{}", desired="paused", observed="paused")
        self._set_sessions(lease_id, ("active", "idle"), "closed", "idle_timeout")
        return DriftEvent(
            "leon_pause", f"idle reaper paused {lease_id} (v{version})", provider, lease_id, iid
        )

    def _a_leon_resume(self) -> DriftEvent | None:
        pick = self._pick_lease("desired_state='paused' AND current_instance_id IS NOT NULL")
        if pick is None:
            return None
        lease_id, provider, iid = pick
        if self._provider_view(provider, iid) != "paused":
            return None
        self.doubles[provider].set_state(iid, "running")  # type: ignore[arg-type]
        version = self.apply(lease_id, "intent.resume", "api", "{}", desired="running", observed="running")
        self._set_sessions(lease_id, ("paused",), "active", None)
        return DriftEvent("leon_resume", f"LEON resumed {lease_id} (v{version})", provider, lease_id, iid)

    def _a_leon_repair(self) -> DriftEvent | None:
        """LEON puts a drifted lease back to what it wants: resume a paused (or stopped) instance,
        pause one that should be paused, recreate one that died, bind a new one to a detached lease
        that should run; then observes it (one apply). Providers in an outage are left alone."""
        conn = self._connect(self.fleet.sandbox_db)
        try:
            rows = conn.execute(
                "SELECT lease_id, provider_name, current_instance_id, desired_state FROM sandbox_leases "
                "WHERE desired_state IN ('running', 'paused') ORDER BY lease_id"
            ).fetchall()
        finally:
            conn.close()
        cands = [
            r
            for r in rows
            if r[1] in self.doubles and r[1] not in self.outages and self._wants_repair(*r[1:])
        ]
        if not cands:
            return None
        lease_id, provider, iid, desired = self.rng.choice(cands)
        double = self.doubles[provider]
        kind = self.fleet.providers.get(provider, double.kind)
        what = "recreated"
        if iid is None:
            iid = self.ids.instance(kind, lease_id)
            self._bind(lease_id, iid)
            what = "provisioned"
        with double.lock:
            inst = double.instances.get(iid)
        if inst is None:
            extra: dict[str, Any] = {"docker_id": self.ids.docker_id()} if kind == "docker" else {}
            labels = (
                {"leon.session_id": iid, "leon.context_id": f"leon-{lease_id}"}
                if kind == "docker"
                else {"lease_id": lease_id}
            )
            double.add(iid, state=desired, name=iid if kind in ("docker", "daytona") else None,
                       labels=labels, **extra)  # fmt: skip
        else:
            what = "resumed" if desired == "running" else "paused"
            double.set_state(iid, desired)
        event = "intent.resume" if desired == "running" else "intent.pause"
        version = self.apply(lease_id, event, "reconcile", "{}", observed=desired)
        return DriftEvent("leon_repair", f"LEON {what} {lease_id} (v{version})", provider, lease_id, iid)

    def _wants_repair(self, provider: str, iid: str | None, desired: str) -> bool:
        if iid is None:
            return desired == "running"  # detached: LEON provisions a new instance when it should run
        return self._provider_view(provider, iid) != desired

    def _bind(self, lease_id: str, iid: str) -> None:
        now = local_now_iso()
        conn = self._connect(self.fleet.sandbox_db)
        try:
            with conn:
                conn.execute(
                    "UPDATE sandbox_leases SET current_instance_id=?, instance_created_at=? WHERE lease_id=?",
                    (iid, now, lease_id),
                )
        finally:
            conn.close()

    def _a_orphan_gc(self) -> DriftEvent | None:
        """The platform's cleanup removes an instance no lease claims (orphans do not pile up)."""
        cands = [
            (p, inst)
            for state in ("running", "paused", "stopped")
            for p, inst in self._instances(state, bound=False)
            if p not in self.outages
        ]
        if not cands:
            return None
        provider, inst = self.rng.choice(cands)
        self.doubles[provider].remove(inst.instance_id)
        return DriftEvent(
            "orphan_gc", f"cleanup removed orphan {inst.instance_id}", provider, None, inst.instance_id
        )

    def _a_leon_failed_intent(self) -> DriftEvent | None:
        pick = self._pick_lease(_RUNNING_BOUND + " AND needs_refresh=0")
        if pick is None:
            return None
        lease_id, provider, iid = pick
        kind = self.fleet.providers.get(provider, "docker")
        message = _PAUSE_ERROR.get(kind, "Failed to pause lease {lease}").format(lease=lease_id, inst=iid)
        version = self.apply(lease_id, "intent.pause", "api", "{}", error=message)
        return DriftEvent(
            "leon_failed_intent", f"pause of {lease_id} failed (v{version})", provider, lease_id, iid
        )
