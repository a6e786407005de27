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

The simulator (lifecycle, ticks, provider-side actions) is here; its shared helpers and LEON's
write are in drift_base.py, the LEON actions in drift_leon.py, runs and activity in drift_runs.py.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from opcockpit.demo.drift_base import (
    ACTION_WEIGHTS,
    OUTAGE_S,
    DriftEvent,
    _claimed_lease,
    normal_state,
)
from opcockpit.demo.drift_leon import LeonDrift
from opcockpit.demo.drift_runs import RunDrift
from opcockpit.demo.fleet import DemoFleet
from opcockpit.demo.ids import IdGen
from opcockpit.doubles.base import FakeProvider

__all__ = ["ACTION_WEIGHTS", "OUTAGE_S", "DriftEvent", "DriftSimulator", "normal_state"]


class DriftSimulator(LeonDrift, RunDrift):
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
