"""Background drift for `opcockpit demo`: the fleet keeps changing while the cockpit watches.

Every tick does one realistic thing, chosen by a seeded RNG:
- behind the platform's back, at a provider double: pause an instance, resume one, kill one,
  spawn an orphan;
- LEON itself acting or observing, written LEON's way (one `lease_events` row + the lease update
  with `version`+1 in one transaction, instance history row upserted, `stopped` on detach):
  `observe.status`/`read.status` noticing drift, an idle-reaper `intent.pause` that also closes the
  session, `intent.resume`, a failed `intent.pause` with its error text;
- agent runs in events.db starting, finishing (with keep-latest-1 retention) or erroring;
- chat session activity (`last_active_at` touched).

The cockpit reads the same files concurrently, so each tick opens its own connection with a busy
timeout and holds its write transaction for a handful of statements only.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
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


class DriftSimulator:
    """Seeded, stoppable drift in a daemon thread. `tick()`/`step()` also work synchronously."""

    def __init__(
        self,
        fleet: DemoFleet,
        doubles: Mapping[str, FakeProvider],
        *,
        seed: int = 7,
        interval_s: float = 2.5,
        weights: Mapping[str, float] | None = None,
        busy_timeout_s: float = 5.0,
        history: int = 200,
    ) -> None:
        self.fleet = fleet
        self.doubles = dict(doubles)
        self.rng = random.Random(seed * 7919 + 1)
        self.ids = IdGen(self.rng)
        self.interval_s = interval_s
        self.weights = dict(weights or ACTION_WEIGHTS)
        unknown = set(self.weights) - set(ACTION_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown drift actions: {sorted(unknown)}")
        self.busy_timeout_s = busy_timeout_s
        self.history: deque[DriftEvent] = deque(maxlen=history)
        self.errors: deque[str] = deque(maxlen=50)  # a locked DB skips a tick; it never kills drift
        self.inflight_runs: dict[str, str] = {}  # thread_id -> run_id started by the simulator
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease_cols: set[str] | None = None
        self.outages: dict[str, float] = {}  # provider -> monotonic time its outage ends
        self._actions: dict[str, Callable[[], DriftEvent | None]] = {
            name: getattr(self, f"_a_{name}") for name in ACTION_WEIGHTS
        }

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> DriftSimulator:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="demo-drift", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.heal_outages(now=float("inf"))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> DriftSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception as exc:  # drift is decoration: log and keep going
                self.errors.append(f"{type(exc).__name__}: {exc}")

    # -- one tick -------------------------------------------------------------------------------
    def tick(self) -> DriftEvent | None:
        """Do one weighted-random action; if it does not apply right now, try another."""
        self.heal_outages()
        names = [n for n, w in self.weights.items() if w > 0]
        weights = [self.weights[n] for n in names]
        for _ in range(6):
            name = self.rng.choices(names, weights)[0]
            event = self.step(name)
            if event is not None:
                return event
        return None

    def step(self, action: str) -> DriftEvent | None:
        """Do `action` now (None when nothing it could act on exists)."""
        with self._lock:
            event = self._actions[action]()
        if event is not None:
            self.history.append(event)
        return event

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

    # -- actions: behind the platform's back --------------------------------------------------
    def _a_pause_behind_back(self) -> DriftEvent | None:
        cands = self._instances("running", bound=True)
        if not cands:
            return None
        provider, inst = self.rng.choice(cands)
        self.doubles[provider].set_state(inst.instance_id, "paused")
        return DriftEvent("pause_behind_back", f"{provider} paused {inst.instance_id} (platform not told)",
                          provider, _claimed_lease(inst), inst.instance_id)  # fmt: skip

    def _a_resume_behind_back(self) -> DriftEvent | None:
        cands = self._instances("paused", bound=True)
        if not cands:
            return None
        provider, inst = self.rng.choice(cands)
        self.doubles[provider].set_state(inst.instance_id, "running")
        return DriftEvent("resume_behind_back", f"{provider} resumed {inst.instance_id} on its own",
                          provider, _claimed_lease(inst), inst.instance_id)  # fmt: skip

    def _a_kill(self) -> DriftEvent | None:
        cands = self._instances("running", bound=True)
        if len(cands) < 3:  # keep the demo populated
            return None
        provider, inst = self.rng.choice(cands)
        self.doubles[provider].remove(inst.instance_id)
        return DriftEvent("kill", f"{provider} instance {inst.instance_id} died",
                          provider, _claimed_lease(inst), inst.instance_id)  # fmt: skip

    def _a_spawn_orphan(self) -> DriftEvent | None:
        if not self.doubles:
            return None
        provider = self.rng.choice(sorted(self.doubles))
        kind = self.fleet.providers.get(provider, self.doubles[provider].kind)
        iid = self.ids.instance(kind, "orphan")
        extra: dict[str, Any] = {"docker_id": self.ids.docker_id()} if kind == "docker" else {}
        labels = {"leon.session_id": iid} if kind == "docker" else {}
        self.doubles[provider].add(iid, state="running", name=iid if kind in ("docker", "daytona") else None,
                                   labels=labels, **extra)  # fmt: skip
        return DriftEvent(
            "spawn_orphan", f"untracked instance {iid} appeared at {provider}", provider, None, iid
        )

    def _a_provider_outage(self) -> DriftEvent | None:
        """A provider API starts answering 503 for a while: its rows must go stale, never gone."""
        healthy = sorted(p for p in self.doubles if p not in self.outages)
        if not healthy:
            return None
        provider = self.rng.choice(healthy)
        self.doubles[provider].faults.error_status = 503
        self.outages[provider] = time.monotonic() + OUTAGE_S
        return DriftEvent(
            "provider_outage", f"{provider} API answers 503 for {OUTAGE_S:g}s (rows go stale)", provider
        )

    def heal_outages(self, *, now: float | None = None) -> list[str]:
        """End the outages whose time has come; returns the providers healed."""
        now = time.monotonic() if now is None else now
        healed = [p for p, until in self.outages.items() if until <= now]
        for provider in healed:
            del self.outages[provider]
            self.doubles[provider].faults.error_status = None
            self.history.append(DriftEvent("provider_recovered", f"{provider} API answers again", provider))
        return healed

    # -- actions: LEON acting / observing --------------------------------------------------------
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

    # -- actions: runs and activity ----------------------------------------------------------------
    def _live_threads(self) -> list[tuple[str, str]]:
        conn = self._connect(self.fleet.sandbox_db)
        try:
            return conn.execute(
                "SELECT DISTINCT thread_id, lease_id FROM chat_sessions WHERE status='active' "
                "ORDER BY thread_id"
            ).fetchall()
        finally:
            conn.close()

    def _run_events(
        self, rows: list[tuple[str, str, str, str, str | None]], cleanup: str | None = None
    ) -> None:
        conn = self._connect(self.fleet.events_db)
        try:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                # created_at is left to its CURRENT_TIMESTAMP default, exactly as LEON does.
                conn.executemany(
                    "INSERT INTO run_events (thread_id, run_id, event_type, data, message_id) "
                    "VALUES (?,?,?,?,?)",
                    rows,
                )
                if cleanup is not None:  # cleanup_old_runs(thread_id, keep_latest=1)
                    thread = rows[0][0]
                    conn.execute(
                        "DELETE FROM run_events WHERE thread_id=? AND run_id != ? "
                        "AND run_id NOT LIKE 'activity_%'",
                        (thread, cleanup),
                    )
        finally:
            conn.close()

    def _a_run_start(self) -> DriftEvent | None:
        threads = [t for t in self._live_threads() if t[0] not in self.inflight_runs]
        if not threads:
            return None
        thread, lease_id = self.rng.choice(threads)
        run_id = self.ids.uuid4()
        self._run_events(
            [
                (thread, run_id, "user_message", '{"content": "check the build again", "showing": true}',
                 self.ids.uuid4()),
                (thread, run_id, "run_start", f'{{"thread_id": "{thread}", "run_id": "{run_id}", '
                 '"source": "owner", "sender_name": "owner", "showing": true}', None),
                (thread, run_id, "text", '{"content": "Running the command now."}', self.ids.uuid4()),
            ]
        )  # fmt: skip
        self.inflight_runs[thread] = run_id
        return DriftEvent("run_start", f"run {run_id[:8]} started on {thread}", None, lease_id, None)

    def _finish(self, error: bool) -> DriftEvent | None:
        if not self.inflight_runs:
            return None
        thread = self.rng.choice(sorted(self.inflight_runs))
        run_id = self.inflight_runs.pop(thread)
        call = "call_" + self.ids.hex(24)
        rows: list[tuple[str, str, str, str, str | None]] = [
            (thread, run_id, "tool_call", f'{{"id": "{call}", "name": "run_command", "args": {{}}}}', None),
        ]
        if error:
            rows.append((thread, run_id, "error", '{"error": "Connection error."}', None))
        else:
            result = f'{{"tool_call_id": "{call}", "name": "run_command", "content": "ok"}}'
            rows.append((thread, run_id, "tool_result", result, None))
            rows.append((thread, run_id, "text", '{"content": "Done: all checks pass."}', self.ids.uuid4()))
        rows.append((thread, run_id, "run_done", f'{{"thread_id": "{thread}", "run_id": "{run_id}"}}', None))
        self._run_events(rows, cleanup=run_id)
        what = "errored" if error else "finished"
        return DriftEvent("run_error" if error else "run_finish", f"run {run_id[:8]} {what} on {thread}")

    def _a_run_finish(self) -> DriftEvent | None:
        return self._finish(error=False)

    def _a_run_error(self) -> DriftEvent | None:
        return self._finish(error=True)

    def _a_session_touch(self) -> DriftEvent | None:
        conn = self._connect(self.fleet.sandbox_db)
        try:
            rows = conn.execute(
                "SELECT chat_session_id, lease_id FROM chat_sessions WHERE status='active' "
                "ORDER BY chat_session_id"
            ).fetchall()
            if not rows:
                return None
            sid, lease_id = self.rng.choice(rows)
            with conn:  # ChatSession.touch(): last_active_at only
                conn.execute(
                    "UPDATE chat_sessions SET last_active_at=? WHERE chat_session_id=?",
                    (local_now_iso(), sid),
                )
        finally:
            conn.close()
        return DriftEvent("session_touch", f"activity on {sid}", None, lease_id, None)


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
