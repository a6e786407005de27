"""Deterministic demo fleet: a LEON-schema sandbox.db + events.db and the provider-side picture.

Every row is written the way LEON writes it (shared/domain/leon-sandbox-db.md): LEON-shaped ids,
naive local ISO times in the sandbox tables, UTC `Z` in lease_resource_snapshots, UTC
CURRENT_TIMESTAMP format in run_events, one `lease_events` row per `apply()` with `version` +1,
instance history rows that go `stopped` on detach, at most one live chat session per terminal,
all terminals of a thread on one lease. Lease lifecycles are *simulated* with LEON's apply()
semantics (see `_Lease`) rather than filled in column by column, so the rows stay mutually
consistent.

The provider side (`DemoFleet.instances`) is what the loopback doubles should hold, including a
planned amount of drift (`DemoFleet.drift`): instances paused behind the platform's back, killed
instances, orphans and a leaked instance of a destroyed lease.

Generation is one pass in Python plus executemany in one transaction: 50k leases in seconds.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from opcockpit.adapters.leon.schema import events_ddl, sandbox_ddl
from opcockpit.demo.events import RunWriter
from opcockpit.demo.ids import Clock, IdGen, cumulative, weighted
from opcockpit.domain.gcpause import gc_paused

DEFAULT_PROVIDERS: dict[str, str] = {
    "docker": "docker",
    "e2b": "e2b",
    "daytona": "daytona",
    "agentbay": "agentbay",
    "local": "local",
}
DEFAULT_WEIGHTS: dict[str, float] = {
    "docker": 0.30,
    "e2b": 0.25,
    "daytona": 0.20,
    "agentbay": 0.10,
    "local": 0.15,
}
REMOTE_KINDS = ("docker", "e2b", "daytona", "agentbay")

# Lease lifecycle scenarios and their weights. `autopaused`: the provider paused the instance
# (E2B auto_pause=True) and LEON observed it: desired running / observed paused.
_REMOTE_SCENARIOS = {
    "healthy": 50,
    "replaced": 8,
    "paused": 12,
    "autopaused": 3,
    "destroyed": 10,
    "unbound": 6,
    "recovering": 2,
    "failed_intent": 4,
    "provider_error": 2,
    "unknown": 1,
    "adopted": 0.4,
}
_LOCAL_SCENARIOS = {"healthy": 70, "paused": 15, "destroyed": 15}

_N_TERMINALS = cumulative((1, 70), (2, 20), (3, 10))  # background commands fork terminals
_N_OLD_SESSIONS = cumulative((0, 55), (1, 30), (2, 15))
_N_COMMANDS = cumulative((0, 30), (1, 35), (2, 20), (3, 15))
_CWD = {"docker": "/workspace", "e2b": "/home/user", "daytona": "/home/daytona", "agentbay": "/home/wuying"}
_COMMANDS = (
    "pytest -q",
    "pip install pandas",
    "npm run build",
    "npm test",
    "git status",
    "python train.py --epochs 3",
    "ls -la",
    "make lint",
    "cargo build --release",
    "curl -s http://localhost:8000/health",
)
_STDOUT = ("", "ok\n", "> build\nvite v5 building for production...\n", "3 passed in 0.41s\n", "done\n")

_PAUSE_ERRORS = {
    "docker": "Failed to pause lease {lease}: Docker command timed out after 20.0s: docker pause {inst}",
    "e2b": "Failed to pause lease {lease}: TimeoutException: Request timed out",
    "daytona": "Failed to pause lease {lease}: DaytonaError: Sandbox {inst} is in state 'stopping'",
    "agentbay": "Failed to pause lease {lease}: Failed to pause session {inst}: BenefitLevel.NotSupport",
    "local": "Failed to pause lease {lease}",
}
_PROVIDER_ERRORS = {
    "docker": "Docker command timed out after 20.0s: docker inspect -f {{{{.State.Status}}}} {inst}",
    "e2b": "502 Bad Gateway: sandbox {inst} is not reachable",
    "daytona": "Failed to get sandbox {inst}: 503 Service Unavailable",
    "agentbay": "GetSession {inst} failed: ServiceUnavailable",
    "local": "local provider error",
}


# --------------------------------------------------------------------------- public results


@dataclass(frozen=True)
class InstanceSpec:
    """One instance a provider double should hold.

    `instance_id` is LEON's id (`current_instance_id`; for Docker the container name, which the
    DockerDouble uses as its key). `state` is the normalised word the doubles take.
    """

    provider: str
    kind: str
    instance_id: str
    state: str  # running | paused | stopped
    labels: dict[str, str]
    created_at: datetime
    name: str | None = None
    lease_id: str | None = None  # lease this instance belongs to or claims
    role: str = "bound"  # bound | paused_drift | orphan_replaced | orphan_untracked | leak
    extra: dict[str, str] = field(default_factory=dict)  # e.g. docker_id


@dataclass(frozen=True)
class DriftItem:
    provider: str
    instance_id: str
    lease_id: str | None


@dataclass
class PlannedDrift:
    """Deliberate disagreements between sandbox.db and the providers."""

    paused_at_provider: list[DriftItem] = field(default_factory=list)  # DB running, provider paused
    killed: list[DriftItem] = field(default_factory=list)  # DB running, instance gone
    orphans: list[DriftItem] = field(default_factory=list)  # no lease accounts for them
    leaks: list[DriftItem] = field(default_factory=list)  # destroyed lease, instance still runs


@dataclass
class DemoFleet:
    directory: Path
    sandbox_db: Path
    events_db: Path
    seed: int
    lease_count: int
    providers: dict[str, str]  # provider name -> kind
    instances: dict[str, list[InstanceSpec]]  # provider name -> what its double holds
    drift: PlannedDrift
    generated_at: datetime  # the `now` the fleet was generated against (aware UTC)
    counts: dict[str, int]  # rows written per table

    def specs(self, provider: str) -> list[InstanceSpec]:
        return self.instances.get(provider, [])


# --------------------------------------------------------------------------- time formatting


_HMS: list[str] = []  # "HH:MM:SS" for every second of a day, built on first use (~15 ms, 5 MB)


def _hms_table() -> list[str]:
    if not _HMS:
        two = [f"{i:02d}" for i in range(60)]
        _HMS.extend(f"{h}:{m}:{s}" for h in two[:24] for m in two for s in two)
    return _HMS


class _FastClock(Clock):
    """`Clock` with the time of day looked up instead of formatted: the same text (verified
    against Clock by tests/test_fast_paths.py), ~2x cheaper, and formatting ~1M timestamps
    was the largest Python cost of a 50k-lease fleet."""

    def __init__(self, now: datetime | None = None) -> None:
        super().__init__(now)
        self._hms = _hms_table()

    def local(self, ts: float) -> str:
        ts += self._offset
        sec = int(ts)
        us = int((ts - sec) * 1_000_000)
        day, rem = divmod(sec, 86400)
        date = self._days.get(day) or self._day(day)
        if us:
            return "%sT%s.%06d" % (date, self._hms[rem], us)  # noqa: UP031 - fastest here
        return f"{date}T{self._hms[rem]}"  # isoformat drops zero micros

    def _utc(self, ts: float, sep: str, z: str) -> str:
        day, rem = divmod(int(ts), 86400)
        return f"{self._days.get(day) or self._day(day)}{sep}{self._hms[rem]}{z}"

    # The two public UTC formats spelled out: one call per timestamp instead of two.
    def utc_z(self, ts: float) -> str:
        day, rem = divmod(int(ts), 86400)
        return f"{self._days.get(day) or self._day(day)}T{self._hms[rem]}Z"

    def utc_sql(self, ts: float) -> str:
        day, rem = divmod(int(ts), 86400)
        return f"{self._days.get(day) or self._day(day)} {self._hms[rem]}"


# --------------------------------------------------------------------------- lease simulation


class _Lease:
    """One lease driven through LEON's `SQLiteLease.apply()` semantics (domain doc §3.3)."""

    __slots__ = (
        "b", "created", "current", "desired", "id", "inst_created", "instances", "kind", "last_error",
        "needs_refresh", "observed", "observed_at", "provider", "refresh_hint", "status", "updated",
        "version",
    )  # fmt: skip

    def __init__(self, b: _Builder, lease_id: str, provider: str, kind: str, t: float) -> None:
        self.b, self.id, self.provider, self.kind = b, lease_id, provider, kind
        self.desired, self.observed, self.status = "running", "detached", "active"
        self.current: str | None = None
        self.inst_created: float | None = None
        self.version, self.needs_refresh = 0, 0
        self.observed_at: float | None = None
        self.refresh_hint: float | None = None
        self.last_error: str | None = None
        self.created = self.updated = t
        self.instances: dict[str, list] = {}  # instance_id -> [status, created, last_seen]

    def _event(self, t: float, etype: str, source: str, payload: str, error: str | None = None) -> None:
        b = self.b
        b.lease_events.append((b.ids.event(), self.id, etype, source, payload, error, b.clock.local(t)))
        self.version += 1
        self.updated = t

    def _ok(self, t: float) -> None:
        self.observed_at, self.last_error, self.needs_refresh, self.refresh_hint = t, None, 0, None
        if self.current is not None:  # _persist_snapshot upserts the current instance row
            row = self.instances[self.current]
            row[0], row[2] = self.observed, t

    def _detach(self, t: float) -> None:
        if self.current is not None:
            row = self.instances[self.current]
            row[0], row[2] = "stopped", max(row[2], t)
        self.current, self.inst_created = None, None
        self.observed, self.status = "detached", "expired"

    def bind(self, t: float, instance_id: str | None = None) -> str:
        iid = instance_id or self.b.ids.instance(self.kind, self.id)
        self.instances[iid] = ["running", t, t]
        self.current, self.inst_created = iid, t
        self._event(t, "intent.ensure_running", "run.create", f'{{"created": true, "instance_id": "{iid}"}}')
        self.desired, self.observed, self.status = "running", "running", "active"
        self._ok(t)
        return iid

    def observe(self, t: float, status: str, source: str = "read.status", raw: str | None = None) -> None:
        payload = f'{{"status": "{status}"}}'
        if raw is not None:  # webhook observation carries the provider's event type
            payload = f'{{"status": "{status}", "raw_event_type": "{raw}"}}'
        self._event(t, "observe.status", source, payload)
        normal = status if status in ("running", "paused", "unknown") else "detached"
        if normal == "detached":
            self._detach(t)
        else:
            self.observed, self.status = normal, "active"
        self._ok(t)

    def pause(self, t: float) -> None:
        self._event(t, "intent.pause", "api", "{}")
        self.desired, self.observed, self.status = "paused", "paused", "active"
        self._ok(t)

    def resume(self, t: float) -> None:
        self._event(t, "intent.resume", "api", "{}")
        self.desired, self.observed, self.status = "running", "running", "active"
        self._ok(t)

    def destroy(self, t: float) -> None:
        self._event(t, "intent.destroy", "api", "{}")
        self.desired = "destroyed"
        self._detach(t)
        self._ok(t)

    def fail(self, t: float, op: str, message: str) -> None:
        """A failed intent: error persisted, flagged for refresh, desired/observed unchanged."""
        self._event(t, f"intent.{op}", "api", "{}", error=message)
        self.last_error, self.needs_refresh = message[:500], 1
        self.refresh_hint = self.observed_at = t

    def provider_error(self, t: float, message: str) -> None:
        self._event(t, "provider.error", "run.refresh", json.dumps({"error": message}))
        self.last_error, self.needs_refresh, self.refresh_hint = message[:500], 1, t

    def adopt(self, t: float, instance_id: str, status: str) -> None:
        """LeaseStore.adopt_instance: lease + instance row + observe.status/adopt, needs_refresh=1."""
        self.instances[instance_id] = [status, t, t]
        self.current, self.inst_created = instance_id, t
        self.desired = "paused" if status == "paused" else "running"
        self.observed, self.status = status, "active"
        self._event(t, "observe.status", "adopt", f'{{"status": "{status}", "instance_id": "{instance_id}"}}')
        self.observed_at, self.needs_refresh, self.refresh_hint = t, 1, t


# --------------------------------------------------------------------------- builder


class _Builder:
    def __init__(
        self,
        *,
        seed: int,
        providers: Mapping[str, str],
        weights: Mapping[str, float],
        now: datetime | None,
    ) -> None:
        self.rng = random.Random(seed)
        self.ids = IdGen(self.rng)
        self.clock = _FastClock(now)
        self.now = self.clock.now_ts
        names = [n for n in providers if weights.get(n, 0) > 0]
        if not names:
            raise ValueError("no provider has a positive weight")
        self.provider_names = names
        self.providers = dict(providers)
        self.cum = list(itertools.accumulate(weights[n] for n in names))
        self.scen = {}
        for kind in set(providers.values()):
            table = dict(_LOCAL_SCENARIOS if kind == "local" else _REMOTE_SCENARIOS)
            if kind == "e2b":  # E2B sandboxes are created with auto_pause=True
                table["autopaused"] = 12
            self.scen[kind] = (list(table), list(itertools.accumulate(table.values())))
        self.leases: list[_Lease] = []
        self.lease_events: list[tuple] = []
        self.terminals: list[tuple] = []
        self.pointers: list[tuple] = []
        self.sessions: list[tuple] = []
        self.commands: list[tuple] = []
        self.chunks: list[tuple] = []
        self.provider_events: list[tuple] = []  # (ts, provider, instance, type, payload, matched)
        self.snapshots: list[tuple] = []
        self.threads: list[tuple[str, _Lease, str, float]] = []  # (thread, lease, live, t_last)
        self.scenario_of: dict[str, str] = {}
        self.members: list[list] = []  # [member_id, next_seq]

    # -- helpers ----------------------------------------------------------------------------
    def pick(self, names: list[str], cum: list[float]) -> str:
        return names[bisect.bisect_right(cum, self.rng.random() * cum[-1])]

    def times(self, start: float, k: int, end: float | None = None) -> list[float]:
        end = self.now - 2.0 if end is None else end
        return sorted(self.rng.uniform(start, end) for _ in range(k))

    def thread_id(self) -> str:
        # Members own several threads: thread id = f"{member_id}-{seq}"
        if not self.members or self.rng.random() < 0.35:
            self.members.append([self.ids.member(), 1])
        member = self.members[self.rng.randrange(len(self.members))]
        tid = f"{member[0]}-{member[1]}"
        member[1] += 1
        return tid

    # -- one lease ----------------------------------------------------------------------------
    def lease(self) -> None:
        rng = self.rng
        provider = self.pick(self.provider_names, self.cum)
        kind = self.providers[provider]
        scenario = self.pick(*self.scen[kind])
        # Recent leases are more common than old ones (exponential age, capped at 14 days).
        age = min(14 * 86400.0, 900.0 + rng.expovariate(1 / (2.5 * 86400)))
        t0 = self.now - age
        if scenario == "adopted":
            lease = _Lease(self, self.ids.adopted_lease(), provider, kind, t0)
        else:
            lease = _Lease(self, self.ids.lease(), provider, kind, t0)
        self.scenario_of[lease.id] = scenario
        live, t_end = self._lifecycle(lease, scenario, t0)
        self.leases.append(lease)
        if scenario != "adopted":  # adopt creates no terminals or sessions (§4.4)
            self._thread(lease, live, t_end, t0)
        self._snapshot(lease, scenario)

    def _lifecycle(self, lease: _Lease, scenario: str, t0: float) -> tuple[str, float]:
        """Drive the lease; return (what the chat sessions look like, when activity ended)."""
        rng, kind = self.rng, lease.kind
        if scenario == "unbound":  # remote leases bind lazily: desired running, observed detached
            return "active", self.now - rng.uniform(5, 250)
        if scenario == "adopted":
            iid = self.ids.instance(kind, lease.id)
            lease.adopt(self.rng.uniform(t0, self.now - 60), iid, rng.choice(("running", "paused")))
            return "none", lease.updated
        ts = self.times(t0, 6)
        iid = lease.bind(ts[0] + rng.uniform(0.5, 4.0) if ts[0] + 4 < ts[1] else ts[0])
        if kind == "local":  # local never probes (supports_status_probe=False)
            if scenario == "paused":
                lease.pause(ts[3])
                return "paused", ts[3]
            if scenario == "destroyed":
                lease.destroy(ts[4])
                return "closed", ts[4]
            return "active", self.now - rng.uniform(1, 280)
        for t in ts[1 : 1 + rng.randrange(0, 3)]:
            lease.observe(t, "running", rng.choice(("read.status", "run.refresh")))
        if scenario == "healthy":
            if rng.random() < 0.15:  # paused once and resumed later
                lease.pause(ts[3])
                lease.resume(ts[4])
            return "active", self.now - rng.uniform(1, 280)
        if scenario == "replaced":  # container died, LEON created a new one on next use
            lease.observe(ts[3], "deleted", "run.refresh")
            self._webhook(lease, iid, ts[3], "killed", matched=True)
            lease.bind(ts[3] + rng.uniform(2, 8))
            lease.observe(ts[5], "running", "read.status")
            return "active", self.now - rng.uniform(1, 280)
        if scenario == "paused":
            if rng.random() < 0.2:
                lease.fail(ts[3], "pause", _PAUSE_ERRORS[kind].format(lease=lease.id, inst=iid))
            lease.pause(ts[4])
            if kind == "e2b" and rng.random() < 0.5:  # E2B reports our own pause back to LEON
                self._webhook(lease, iid, ts[4] + 1, "paused", matched=True)
            return "paused", ts[4]
        if scenario == "autopaused":  # provider paused it; the idle reaper's refresh saw it
            if kind == "e2b" and rng.random() < 0.5:
                self._webhook(lease, iid, ts[4], "paused", matched=True)
            else:
                lease.observe(ts[4], "paused", "read.status")
            return "closed_idle", ts[4]
        if scenario == "destroyed":
            if rng.random() < 0.3:
                lease.pause(ts[3])
            lease.destroy(ts[5])
            self._webhook(lease, iid, ts[5] + 2, "killed", matched=False)  # arrives after unbind
            return "closed", ts[5]
        if scenario == "recovering":  # instance gone; create_session hung after status=recovering
            lease.observe(ts[4], "deleted", "run.refresh")
            lease.status = "recovering"  # persisted directly, not versioned (§3.4)
            return "active", self.now - rng.uniform(1, 120)
        if scenario == "failed_intent":
            op = "pause" if rng.random() < 0.8 else "resume"
            msg = _PAUSE_ERRORS[kind].format(lease=lease.id, inst=iid)
            lease.fail(ts[5], op, msg.replace("pause", op) if op != "pause" else msg)
            return "active", self.now - rng.uniform(1, 280)
        if scenario == "provider_error":
            lease.provider_error(ts[5], _PROVIDER_ERRORS[kind].format(inst=iid))
            return "active", self.now - rng.uniform(1, 280)
        if scenario == "unknown":
            if kind == "daytona":  # LEON's webhook hint of "sandbox.state.updated" is "unknown"
                self._webhook(lease, iid, ts[5], "started", matched=True)
            else:
                lease.observe(ts[5], "unknown", "read.status")
            return "active", self.now - rng.uniform(1, 280)
        raise AssertionError(scenario)

    def _webhook(self, lease: _Lease, iid: str, t: float, what: str, *, matched: bool) -> None:
        """A provider webhook (only E2B/Daytona push them) logged to provider_events, and, when it
        matches the lease's current instance, LEON's observe.status/webhook with its status hint."""
        kind = lease.kind
        if kind == "e2b":
            etype = f"sandbox.lifecycle.{what}"
            payload = json.dumps(
                {
                    "version": "v1",
                    "id": self.ids.uuid4(),
                    "type": etype,
                    "eventData": {"sandbox_metadata": {"lease_id": lease.id}},
                    "sandboxId": iid,
                    "timestamp": self.clock.utc_z(t),
                }
            )
            hint = {"paused": "paused", "resumed": "running", "killed": "detached"}.get(what, "unknown")
        elif kind == "daytona":
            etype = "sandbox.state.updated"
            new = {"paused": "stopped", "killed": "destroyed", "started": "started"}.get(what, "started")
            payload = json.dumps(
                {
                    "event": etype,
                    "timestamp": self.clock.utc_z(t),
                    "id": iid,
                    "organizationId": "org-demo",
                    "oldState": "started" if new != "started" else "stopped",
                    "newState": new,
                    "updatedAt": self.clock.utc_z(t),
                }
            )
            hint = "unknown"  # payload has no status/state; "sandbox.state.updated" matches no word
        else:
            return
        match = lease.id if matched and lease.current == iid else None
        self.provider_events.append((t, lease.provider, iid, etype, payload, match))
        if match:
            lease.observe(t + 0.05, hint, "webhook", raw=etype)

    # -- thread, terminals, sessions, commands ---------------------------------------------
    def _thread(self, lease: _Lease, live: str, t_end: float, t0: float) -> None:
        rng, ids, clock = self.rng, self.ids, self.clock
        thread = self.thread_id()
        n_terms = weighted(rng, _N_TERMINALS)
        base_cwd = _CWD.get(lease.kind, f"/home/dev/projects/{thread[-6:]}")
        env = '{"NODE_ENV": "production"}' if rng.random() < 0.2 else "{}"
        t_term = t0 + rng.uniform(0.05, 0.5)
        end = max(t_end, t_term + 1)
        terms = []
        for i in range(n_terms):
            tid = ids.terminal()
            tc = t_term if i == 0 else rng.uniform(t_term, end)
            cwd = base_cwd if i == 0 else f"{base_cwd}/{rng.choice(('app', 'src', 'build', 'web'))}"
            sv = rng.randrange(0, 7)
            self.terminals.append(
                (tid, thread, lease.id, cwd, env, sv, clock.local(tc), clock.local(max(tc, end - 1)))
            )
            terms.append((tid, tc, cwd))
        first = terms[0][0]
        self.pointers.append((thread, first, first, clock.local(t_term)))
        busy_possible = live == "active" and lease.observed == "running"
        for i, (tid, tc, cwd) in enumerate(terms):
            sess_live = live  # the main terminal follows the lease; background ones mostly idle out
            if i > 0 and live != "paused":
                sess_live = "active" if live == "active" and rng.random() < 0.4 else "closed"
            session = self._sessions(lease, thread, tid, tc, end, sess_live)
            self._commands(tid, session, cwd, tc, end, busy_possible and sess_live == "active")
        self.threads.append((thread, lease, live, end))

    def _sessions(self, lease: _Lease, thread: str, tid: str, tc: float, end: float, live: str) -> str:
        rng, ids, clock = self.rng, self.ids, self.clock
        n_old = weighted(rng, _N_OLD_SESSIONS)
        t = tc
        last_sid = ""
        for _ in range(n_old):  # closed history before the current window
            start = t + rng.uniform(0.1, 5)
            if start >= end - 60:
                break
            stop = rng.uniform(start, min(end - 30, start + 7200))
            reason = rng.choice(("idle_timeout", "idle_timeout", "superseded", "expired"))
            last_sid = ids.session()
            self.sessions.append(
                (last_sid, thread, tid, lease.id, ids.runtime(), "closed", 300, 86400, None,
                 clock.local(start), clock.local(stop - rng.uniform(0, 30)), clock.local(stop), reason)
            )  # fmt: skip
            t = stop
        start = t + rng.uniform(0.1, 5)
        if live == "active":
            last = max(start, end)
            row = ("active", clock.local(last), None, None)
        elif live == "paused":
            row = ("paused", clock.local(max(start, end - rng.uniform(1, 300))), None, "paused")
        else:  # closed with the lease (idle reaper, destroy, thread deletion)
            reason = "idle_timeout" if live == "closed_idle" else rng.choice(("closed", "thread_deleted"))
            stop = max(start, end)
            row = ("closed", clock.local(stop - rng.uniform(0, 300)), clock.local(stop), reason)
        last_sid = ids.session()
        self.sessions.append(
            (last_sid, thread, tid, lease.id, ids.runtime(), row[0], 300, 86400, None, clock.local(start),
             row[1], row[2], row[3])
        )  # fmt: skip
        return last_sid

    def _commands(self, tid: str, session: str, cwd: str, tc: float, end: float, busy: bool) -> None:
        rng, ids, clock = self.rng, self.ids, self.clock
        n = weighted(rng, _N_COMMANDS)
        for j in range(n):
            cid = ids.command()
            line = rng.choice(_COMMANDS)
            t = rng.uniform(tc, max(tc + 1, end - 2))
            if busy and j == n - 1 and rng.random() < 0.5:  # a background command still running
                tail = "> build\n"
                self.commands.append(
                    (cid, tid, session, line, cwd, "running", tail, "", None, clock.local(t),
                     clock.local(end), None)
                )  # fmt: skip
                self.chunks.append((cid, "stdout", tail, clock.local(t + 0.5)))
                self.chunks.append((cid, "stdout", "vite v5 building...\n", clock.local(t + 1.2)))
                continue
            roll = rng.random()
            dur = rng.uniform(0.2, 90)
            if roll < 0.65:
                status, code, out, err = "done", 0, rng.choice(_STDOUT), ""
            elif roll < 0.88:  # LEON writes 'done' with the exit code; 'failed' is only ever read
                status, code, out, err = "done", 1, "", "Error: command failed\n"
            else:
                status, code, out, err = "cancelled", 130, "", "^C\n"
            self.commands.append(
                (cid, tid, session, line, cwd, status, out, err, code, clock.local(t),
                 clock.local(t + dur), clock.local(t + dur))
            )  # fmt: skip
            if out and rng.random() < 0.3:
                self.chunks.append((cid, "stdout", out, clock.local(t + dur / 2)))

    def _snapshot(self, lease: _Lease, scenario: str) -> None:
        rng, clock = self.rng, self.clock
        if lease.current is None and not (scenario == "destroyed" and rng.random() < 0.3):
            return  # never probed (unbound/recovering) or no stale row kept
        t = min(self.now - 1, max(lease.updated, self.now - rng.uniform(5, 600)))
        observed = lease.observed
        if observed == "running" and rng.random() > 0.06:
            mode = "create_running" if rng.random() < 0.1 else "running_runtime"
            mem_total = None if lease.kind in ("docker", "e2b") else float(rng.choice((2048, 4096, 8192)))
            disk_total = None if lease.kind in ("docker", "e2b") else float(rng.choice((10, 20, 50)))
            row = (mode, round(rng.uniform(0.5, 95), 1), None, round(rng.uniform(80, 1900), 1), mem_total,
                   round(rng.uniform(0.2, 8), 1), disk_total, round(rng.uniform(0, 500), 1),
                   round(rng.uniform(0, 200), 1), None)  # fmt: skip
        else:
            mode = "non_running_sdk" if observed == "paused" else "running_runtime"
            row = (mode, None, None, None, None, None, None, None, None, "metrics unavailable")
        self.snapshots.append((lease.id, lease.provider, observed, *row, clock.utc_z(t), clock.utc_z(t)))


# --------------------------------------------------------------------------- provider side


def _labels(kind: str, instance_id: str, lease_id: str | None) -> dict[str, str]:
    if kind == "docker":  # LEON's labels (§4.3); lease-bound containers carry the context id
        labels = {"leon.session_id": instance_id}
        if lease_id:
            labels["leon.context_id"] = f"leon-{lease_id}"
        return labels
    return {"lease_id": lease_id} if lease_id else {}


def _spec(b: _Builder, lease: _Lease, iid: str, state: str, role: str, claim: str | None) -> InstanceSpec:
    created = lease.instances[iid][1] if iid in lease.instances else b.now - 60
    extra = {"docker_id": b.ids.docker_id()} if lease.kind == "docker" else {}
    name = iid if lease.kind in ("docker", "daytona") else None
    return InstanceSpec(
        provider=lease.provider,
        kind=lease.kind,
        instance_id=iid,
        state=state,
        labels=_labels(lease.kind, iid, claim),
        created_at=b.clock.aware(created),
        name=name,
        lease_id=claim,
        role=role,
        extra=extra,
    )


def _provider_side(b: _Builder, n: int) -> tuple[dict[str, list[InstanceSpec]], PlannedDrift]:
    rng = b.rng
    instances: dict[str, list[InstanceSpec]] = {p: [] for p, k in b.providers.items() if k != "local"}
    drift = PlannedDrift()
    remote = [lease for lease in b.leases if lease.kind != "local"]
    steady = [
        lease
        for lease in remote
        if lease.current and b.scenario_of[lease.id] == "healthy" and lease.observed == "running"
    ]
    k_paused, k_killed = max(2, n // 60), max(1, n // 200)
    chosen = rng.sample(steady, min(len(steady), k_paused + k_killed))
    paused_ids = {lease.id for lease in chosen[:k_paused]}
    killed_ids = {lease.id for lease in chosen[k_paused:]}
    for lease in remote:
        if lease.current is None:
            continue
        iid = lease.current
        if lease.id in killed_ids:
            drift.killed.append(DriftItem(lease.provider, iid, lease.id))
            continue
        state = {"paused": "paused"}.get(lease.observed, "running")
        role = "bound"
        if lease.id in paused_ids:
            state, role = "paused", "paused_drift"
            drift.paused_at_provider.append(DriftItem(lease.provider, iid, lease.id))
        claim = None if b.scenario_of[lease.id] == "adopted" else lease.id
        instances[lease.provider].append(_spec(b, lease, iid, state, role, claim))
    # Orphan 1: an old instance of a replaced lease that never went away (exited container).
    replaced = [lease for lease in remote if b.scenario_of[lease.id] == "replaced"]
    replaced.sort(key=lambda lease: lease.kind != "docker")  # stable: generation order within kind
    for lease in replaced[: max(1, n // 500)]:
        old = next(i for i in lease.instances if i != lease.current)
        state = "stopped" if lease.kind == "docker" else "running"
        instances[lease.provider].append(_spec(b, lease, old, state, "orphan_replaced", lease.id))
        drift.orphans.append(DriftItem(lease.provider, old, lease.id))
    # Orphan 2: an instance nobody tracks (created by hand or by a crashed platform process).
    kinds = [p for p, k in b.providers.items() if k != "local"]
    pref = [p for p in kinds if b.providers[p] == "e2b"] or kinds
    for _ in range(max(1, n // 500) if pref else 0):
        provider = pref[0]
        kind = b.providers[provider]
        iid = b.ids.instance(kind, "untracked")
        extra = {"docker_id": b.ids.docker_id()} if kind == "docker" else {}
        spec = InstanceSpec(
            provider=provider,
            kind=kind,
            instance_id=iid,
            state="running",
            labels=_labels(kind, iid, None),
            created_at=b.clock.aware(b.now - rng.uniform(600, 86400)),
            name=iid if kind in ("docker", "daytona") else None,
            role="orphan_untracked",
            extra=extra,
        )
        instances[provider].append(spec)
        drift.orphans.append(DriftItem(provider, iid, None))
    # Leak: a destroyed lease whose instance still runs at the provider.
    destroyed = [lease for lease in remote if lease.desired == "destroyed" and lease.instances]
    for lease in destroyed[: max(1, n // 1000)]:
        iid = next(iter(lease.instances))
        instances[lease.provider].append(_spec(b, lease, iid, "running", "leak", lease.id))
        drift.leaks.append(DriftItem(lease.provider, iid, lease.id))
    return instances, drift


# --------------------------------------------------------------------------- writing


class _BulkDb:
    """Create a LEON DB for a bulk load: the verbatim DDL of opcockpit.adapters.leon.schema (what
    create_sandbox_db/create_events_db run), tables first and secondary indexes after the rows
    (a sort-based index build is several times faster than 1M random-key index inserts; building
    `uq_chat_sessions_active_thread` afterwards still enforces one live session per terminal).
    A fresh file nobody else has open skips the journal and fsyncs; it is switched to WAL with
    LEON's pragmas before anyone else opens it."""

    def __init__(self, path: Path, ddl: list[str]) -> None:
        self.conn = sqlite3.connect(str(path))
        self.indexes = [s for s in ddl if s.lstrip().upper().startswith("CREATE UNIQUE INDEX")
                        or s.lstrip().upper().startswith("CREATE INDEX")]  # fmt: skip
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA cache_size=-262144")
        for stmt in ddl:
            if stmt not in self.indexes:
                self.conn.execute(stmt)

    def finish(self) -> None:
        for stmt in self.indexes:
            self.conn.execute(stmt)
        self.conn.commit()
        self.conn.execute("PRAGMA journal_mode=WAL")  # LEON's connect_sqlite mode (persistent)
        self.conn.execute("PRAGMA synchronous=NORMAL")


def _lease_row(lease: _Lease, clock: Clock, variant: str) -> tuple:
    loc = clock.local
    row = [
        lease.id, lease.provider, None, lease.current,
        loc(lease.inst_created) if lease.inst_created is not None else None,
        lease.desired, lease.observed, lease.observed, lease.version,
        loc(lease.observed_at) if lease.observed_at is not None else None,
        lease.last_error, lease.needs_refresh,
        loc(lease.refresh_hint) if lease.refresh_hint is not None else None,
        lease.status, loc(lease.created), loc(lease.updated),
    ]  # fmt: skip
    if variant == "older":
        del row[7]  # no instance_status column before the migration
    elif variant == "mycel":
        row += [None, None, None]  # recipe_id, recipe_json, volume_id
    return tuple(row)


Batch = tuple[str, list[tuple]]  # (INSERT statement, its rows)


def _sandbox_batches(b: _Builder, variant: str) -> list[Batch]:
    """Every sandbox.db row as (INSERT, rows), in LEON's table order."""
    cols = 16 - (variant == "older") + 3 * (variant == "mycel")
    clock = b.clock
    b.provider_events.sort(key=lambda r: r[0])  # AUTOINCREMENT ids follow arrival order
    return [
        (
            f"INSERT INTO sandbox_leases VALUES ({','.join('?' * cols)})",
            [_lease_row(lease, clock, variant) for lease in b.leases],
        ),
        (
            "INSERT INTO sandbox_instances VALUES (?,?,?,?,?,?)",
            [
                (iid, lease.id, iid, row[0], clock.local(row[1]), clock.local(row[2]))
                for lease in b.leases
                for iid, row in lease.instances.items()
            ],
        ),
        ("INSERT INTO lease_events VALUES (?,?,?,?,?,?,?)", b.lease_events),
        ("INSERT INTO abstract_terminals VALUES (?,?,?,?,?,?,?,?)", b.terminals),
        ("INSERT INTO thread_terminal_pointers VALUES (?,?,?,?)", b.pointers),
        ("INSERT INTO chat_sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", b.sessions),
        ("INSERT INTO terminal_commands VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", b.commands),
        (
            "INSERT INTO terminal_command_chunks (command_id, stream, content, created_at) VALUES (?,?,?,?)",
            b.chunks,
        ),
        (
            "INSERT INTO provider_events (provider_name, instance_id, event_type, payload_json, "
            "matched_lease_id, created_at) VALUES (?,?,?,?,?,?)",
            [(p, i, e, pl, m, clock.local(t)) for t, p, i, e, pl, m in b.provider_events],
        ),
        ("INSERT INTO lease_resource_snapshots VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", b.snapshots),
    ]


def _sandbox_counts(b: _Builder) -> dict[str, int]:
    return {
        "sandbox_leases": len(b.leases),
        "sandbox_instances": sum(len(lease.instances) for lease in b.leases),
        "lease_events": len(b.lease_events),
        "abstract_terminals": len(b.terminals),
        "thread_terminal_pointers": len(b.pointers),
        "chat_sessions": len(b.sessions),
        "terminal_commands": len(b.commands),
        "terminal_command_chunks": len(b.chunks),
        "provider_events": len(b.provider_events),
        "lease_resource_snapshots": len(b.snapshots),
    }


def _events_batches(rows: list[tuple]) -> list[Batch]:
    return [
        (
            "INSERT INTO run_events (thread_id, run_id, event_type, data, message_id, created_at) "
            "VALUES (?,?,?,?,?,?)",
            rows,
        )
    ]


def _write_db(path: Path, ddl: list[str], batches: list[Batch]) -> None:
    db = _BulkDb(path, ddl)
    conn = db.conn
    try:
        with conn:
            for sql, rows in batches:
                conn.executemany(sql, rows)
        db.finish()
    finally:
        conn.close()


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
        b = _Builder(seed=seed, providers=providers, weights=weights, now=now)
        for _ in range(leases):
            b.lease()
        instances, drift = _provider_side(b, leases)
        run_rows = RunWriter(b.rng, b.ids, b.clock).build(b.threads) if runs else []
        # Written one after the other: two writer threads were measured slower (SQLite releases
        # the GIL for every row's insert, and the hand-offs cost more than the overlap gains).
        _write_db(sandbox_db, sandbox_ddl(variant), _sandbox_batches(b, variant))
        _write_db(events_db, events_ddl(), _events_batches(run_rows))
    counts = _sandbox_counts(b)
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
