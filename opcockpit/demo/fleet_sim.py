"""The demo fleet's lease simulation: scenarios, LEON's apply() semantics per lease (`Lease`),
and the `Builder` that collects every row (see demo/fleet.py for the whole picture).
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
from collections.abc import Mapping
from datetime import datetime

from opcockpit.demo.ids import Clock, IdGen, cumulative, weighted

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


class Lease:
    """One lease driven through LEON's `SQLiteLease.apply()` semantics (domain doc §3.3)."""

    __slots__ = (
        "b", "created", "current", "desired", "id", "inst_created", "instances", "kind", "last_error",
        "needs_refresh", "observed", "observed_at", "provider", "refresh_hint", "status", "updated",
        "version",
    )  # fmt: skip

    def __init__(self, b: Builder, lease_id: str, provider: str, kind: str, t: float) -> None:
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


class Builder:
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
        self.leases: list[Lease] = []
        self.lease_events: list[tuple] = []
        self.terminals: list[tuple] = []
        self.pointers: list[tuple] = []
        self.sessions: list[tuple] = []
        self.commands: list[tuple] = []
        self.chunks: list[tuple] = []
        self.provider_events: list[tuple] = []  # (ts, provider, instance, type, payload, matched)
        self.snapshots: list[tuple] = []
        self.threads: list[tuple[str, Lease, str, float]] = []  # (thread, lease, live, t_last)
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
            lease = Lease(self, self.ids.adopted_lease(), provider, kind, t0)
        else:
            lease = Lease(self, self.ids.lease(), provider, kind, t0)
        self.scenario_of[lease.id] = scenario
        live, t_end = self._lifecycle(lease, scenario, t0)
        self.leases.append(lease)
        if scenario != "adopted":  # adopt creates no terminals or sessions (§4.4)
            self._thread(lease, live, t_end, t0)
        self._snapshot(lease, scenario)

    def _lifecycle(self, lease: Lease, scenario: str, t0: float) -> tuple[str, float]:
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

    def _webhook(self, lease: Lease, iid: str, t: float, what: str, *, matched: bool) -> None:
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
    def _thread(self, lease: Lease, live: str, t_end: float, t0: float) -> None:
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

    def _sessions(self, lease: Lease, thread: str, tid: str, tc: float, end: float, live: str) -> str:
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

    def _snapshot(self, lease: Lease, scenario: str) -> None:
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
