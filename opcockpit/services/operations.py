"""Operator actions (pause / resume / destroy / adopt): the one core API behind the CLI and the TUI.

    ops = build_cockpit(config).operations                 # wiring passes the ports in
    plan = ops.plan(Action.PAUSE, ["lease-3f9a", row], seen=gt)   # resolve + gate, no I/O
    results = await ops.execute(plan)                       # list[Operation], pending/refused/failed
    ops.tracker.observe(next_gt)                            # TUI: after every refresh
    await ops.wait_converged(results, timeout=30)           # CLI: re-lists until settled

Every operation, under a per-target lock (two operations on one lease run one after the other,
and the second re-checks):
1. refuses at once in read-only mode (no provider request, no DB write);
2. re-reads the truth: the lease row (read-only connection) and a fresh provider GET; refuses
   when it no longer matches what the operator saw (lease rebound to another instance, orphan
   adopted meanwhile, orphan not confirmed by GET on an eventually consistent provider);
3. writes the intent LEON's way (`LeonWriter.write_intent`, one BEGIN IMMEDIATE transaction);
4. calls the provider (capability-gated; LEON's `local` has no API and is refused);
5. records the outcome LEON's way (success: observed state; failure: last_error, needs_refresh);
6. audits it: an action that changes anything first writes its audit row (result "started";
   no row, no action) and completes that row at the end; the result stays `pending` until an
   observation confirms it. An interrupted action (SIGINT/SIGTERM/cancellation) completes its
   row as "interrupted" within a short bound.
A provider call whose answer is lost (timeout, connection error, 5xx: `Unavailable`) is settled
by reading the instance back: done when the provider shows the target state, failed when it
shows the old one, `unknown` (not rolled back) when the read back fails too.
Idempotent: an instance already in the requested state (or already gone) is `already`, not an
error. Orphans are acted on at the provider only (no DB write); adopt writes a new lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from opcockpit.domain.models import GroundTruth
from opcockpit.domain.targets import Action, Target, TargetError, expand_leaks, resolve_targets
from opcockpit.ports.ledger import AuditPort
from opcockpit.ports.leon import LeonAccess, LeonWriterPort
from opcockpit.ports.provider import (
    Capabilities,
    ProviderAdapter,
)
from opcockpit.services.collect import AdapterFactory, FleetCollector, one_line_error
from opcockpit.services.history import ACTION_REQUESTED, ACTION_SETTLED, action_event
from opcockpit.services.ops_actions import ActionSteps
from opcockpit.services.ops_plan import (
    INTERRUPT_AUDIT_S,
    Gate,
    Plan,
    PlanItem,
    ProgressFn,
    _Refuse,
    clip,
    one,
)
from opcockpit.services.ops_track import Operation, OperationTracker, OpStatus, wait_converged

if TYPE_CHECKING:
    from opcockpit.settings.config import CockpitConfig

__all__ = [
    "Action",
    "Gate",
    "OpStatus",
    "Operation",
    "OperationTracker",
    "Operations",
    "Plan",
    "PlanItem",
    "Target",
    "TargetError",
    "wait_converged",
]


class Operations(ActionSteps):
    """The operator-action API. One per cockpit process (its locks serialise per target)."""

    def __init__(
        self,
        config: CockpitConfig,
        *,
        collector: FleetCollector | None = None,
        adapters: MutableMapping[str, ProviderAdapter] | None = None,
        read_only: bool | None = None,
        operator: str | None = None,
        audit: AuditPort | None = None,
        convergence_timeout_s: float | None = None,
        busy_timeout_s: float = 5.0,
        max_parallel: int = 8,
        writer_clock: Callable[[], datetime] | None = None,
        leon: LeonAccess | None = None,
        build_adapter: AdapterFactory | None = None,
        on_event: Callable[[Any], None] | None = None,
    ) -> None:
        self.config = config
        self.on_event = on_event  # history.record_events: action.requested / action.settled
        # The ports default to the collector's (one set of readers and one adapter factory).
        self.leon = leon or (collector.leon if collector is not None else None)
        self.build_adapter = build_adapter or (collector.build_adapter if collector is not None else None)
        self.collector = collector
        # Share the collector's adapters: one connection pool per provider, built once.
        if adapters is not None:
            self.adapters: MutableMapping[str, ProviderAdapter] = adapters
        elif collector is not None:
            self.adapters = collector.adapters
        else:
            self.adapters = {}
        self.read_only = bool(config.read_only or read_only)
        self.operator = operator or "unknown"  # wiring passes operator_name()
        self.audit = audit
        self.convergence_timeout_s = convergence_timeout_s or max(30.0, 5 * config.refresh_s)
        self.busy_timeout_s = busy_timeout_s
        self._writer_clock = writer_clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._sem = asyncio.Semaphore(max(1, max_parallel))
        self._build_errors: dict[str, str] = {}
        self._begun: set[str] = set()  # op ids whose audit row was written before they acted
        # op id -> (writer, intent) while an intent is written but its outcome not yet recorded
        self._in_flight: dict[str, tuple[LeonWriterPort, Any]] = {}
        self.tracker = OperationTracker(
            on_settle=self._settled, eventually_consistent=self._eventual, pause_is_stop=self._pause_is_stop
        )

    # ------------------------------------------------------------------ adapters and gates

    @property
    def db_path(self) -> str:
        return str(self.config.sources.sandbox_db)

    def _leon(self) -> LeonAccess:
        if self.leon is None:
            raise RuntimeError("Operations needs the LEON readers/writer: build it with opcockpit.wiring")
        return self.leon

    def writer(self) -> LeonWriterPort:
        return self._leon().writer(
            self.db_path,
            operator=self.operator,
            read_only=self.read_only,
            busy_timeout_s=self.busy_timeout_s,
            clock=self._writer_clock,
        )

    def adapter(self, provider: str) -> ProviderAdapter | None:
        """The adapter for a configured provider, built on first use; None (see gate) otherwise."""
        found = self.adapters.get(provider)
        if found is not None:
            return found
        cfg = self.config.providers.get(provider)
        if cfg is None or not cfg.enabled:
            return None
        if self.build_adapter is None:
            self._build_errors[provider] = "no adapter factory"
            return None
        try:
            built = self.build_adapter(cfg)
        except Exception as exc:
            self._build_errors[provider] = one_line_error(exc)
            return None
        self.adapters[provider] = built
        return built

    def _eventual(self, provider: str) -> bool:
        adapter = self.adapters.get(provider)
        caps = getattr(adapter, "capabilities", None)
        return bool(getattr(caps, "eventually_consistent_list", False))

    def _pause_is_stop(self, provider: str) -> bool:
        caps = getattr(self.adapters.get(provider), "capabilities", None)
        return bool(getattr(caps, "pause_is_stop", False))

    def _caps(self, provider: str) -> Capabilities:
        """The provider's capabilities (kind-specific facts live with its adapter)."""
        caps = getattr(self.adapter(provider), "capabilities", None)
        return caps if isinstance(caps, Capabilities) else Capabilities()

    def gate(self, action: Action | str, target: Target | Any, *, dry_run: bool = False) -> Gate:
        """Static check (no I/O beyond building an adapter): may `action` run on `target`?

        The TUI greys out keys whose gate is closed, with `reason` as the hint. A dry run is
        allowed in read-only mode (it changes nothing).
        """
        action = Action(action)
        if not isinstance(target, Target):
            target = resolve_targets([target], None)[0]
        if self.read_only and not dry_run:
            return Gate(False, "read-only mode: actions are disabled")
        # A source the LEON writer cannot write (PostgreSQL, issue 12) names its reason.
        refusal = getattr(getattr(self.leon, "writer", None), "refusal", None)
        if refusal and not dry_run:
            return Gate(False, str(refusal))
        prov = target.provider
        cfg = self.config.providers.get(prov)
        if prov not in self.adapters:
            if cfg is None:
                return Gate(False, f"provider {prov!r} is not configured")
            if not cfg.enabled:
                return Gate(False, f"provider {prov!r} is disabled in the config")
        adapter = self.adapter(prov)
        if adapter is None:
            why = self._build_errors.get(prov, "no adapter")
            return Gate(False, f"provider {prov!r} unavailable: {why}")
        caps = adapter.capabilities
        if not caps.has_api:  # LEON's `local`: sandbox.db is the only truth there is
            return Gate(
                False,
                f"provider {prov!r} is LEON's {adapter.kind} provider: it has no API the cockpit can call",
            )
        if action is Action.ADOPT:
            if target.kind != "orphan":
                return Gate(False, f"lease {target.lease_id} is already a lease; adopt applies to orphans")
            if target.seen_provider_state in ("stopped", "gone"):
                return Gate(
                    False, f"instance is {target.seen_provider_state}: destroy it rather than adopt it"
                )
        else:
            can = {
                Action.PAUSE: caps.can_pause,
                Action.RESUME: caps.can_resume,
                Action.DESTROY: caps.can_destroy,
            }
            if not can[action]:
                return Gate(False, f"provider {prov!r} does not support {action.value}")
            if action is not Action.DESTROY and target.instance_id is None:
                if target.seen_desired == "destroyed":  # its leaked instance is destroyed, never paused
                    why = f"{action.value} does not apply; destroy removes an instance it left behind"
                    return Gate(False, f"lease {target.lease_id} is destroyed: {why}")
                return Gate(False, f"lease {target.lease_id} has no instance bound (LEON binds on first use)")
        if target.kind == "orphan" and target.confirmed is False:
            return Gate(
                False, "orphan not confirmed by a GET yet (eventually consistent listing); wait a refresh"
            )
        return Gate(True)

    # ------------------------------------------------------------------ planning

    def resolve(self, refs: Sequence[object], seen: GroundTruth | None) -> list[Target]:
        return resolve_targets(list(refs), seen)

    def plan(
        self,
        action: Action | str,
        targets: Sequence[object],
        *,
        seen: GroundTruth | None = None,
        thread_id: str | None = None,
        dry_run: bool = False,
    ) -> Plan:
        """Resolve `targets` (strings need `seen`) and gate each one. Raises TargetError."""
        action = Action(action)
        resolved = self.resolve(targets, seen)
        if action is Action.DESTROY:  # a destroyed lease that leaked: destroy its live instances
            resolved = expand_leaks(resolved, seen)
        errors: list[str] = []
        if thread_id is not None:
            if action is not Action.ADOPT:
                errors.append("--thread applies to adopt only")
            elif len(resolved) > 1:
                errors.append("a thread has one lease: adopt one target when attaching to a thread")
            elif not thread_id.strip():
                errors.append("empty thread id")
        items = tuple(PlanItem(t, self.gate(action, t, dry_run=dry_run)) for t in resolved)
        return Plan(action, items, thread_id=thread_id, errors=tuple(errors))

    # ------------------------------------------------------------------ execution

    async def execute(
        self,
        plan: Plan,
        *,
        dry_run: bool = False,
        on_progress: ProgressFn | None = None,
    ) -> list[Operation]:
        """Run the plan (targets concurrently, each target serialised). Never raises for a target:
        refusals and failures are in the returned operations (same order as the plan)."""
        if plan.errors:
            raise ValueError("; ".join(plan.errors))
        return list(
            await asyncio.gather(
                *(self._run(plan.action, item, plan.thread_id, dry_run, on_progress) for item in plan.items)
            )
        )

    async def run(
        self,
        action: Action | str,
        target: Target | Any,
        *,
        thread_id: str | None = None,
        dry_run: bool = False,
        on_progress: ProgressFn | None = None,
    ) -> Operation:
        """One action on one target (a Target, GroundTruthRow or OrphanRow)."""
        plan = self.plan(action, [target], thread_id=thread_id, dry_run=dry_run)
        return (await self.execute(plan, dry_run=dry_run, on_progress=on_progress))[0]

    def _lock_keys(self, target: Target) -> list[str]:
        keys = [f"inst:{target.instance_key}"] if target.instance_key else []
        if target.lease_id:
            keys.append(f"lease:{target.lease_id}")
        return sorted(keys)

    async def _run(
        self,
        action: Action,
        item: PlanItem,
        thread_id: str | None,
        dry_run: bool,
        progress: ProgressFn | None,
    ) -> Operation:
        target = item.target
        op = Operation(action, target, dry_run=dry_run, before=target.seen())
        started = time.perf_counter()
        reached = ["queued"]

        def stage(name: str) -> None:
            reached[0] = name
            if progress is not None:
                progress(op, name)

        # Adopting an instance that is already a lease's (a repeated `adopt provider/id`) is
        # idempotent: reported as "already" with that lease, not refused. The gate still says no
        # (nothing to do: the TUI keeps the key greyed out), so it is not consulted for this case.
        adopted = action is Action.ADOPT and target.kind == "lease" and target.instance_id is not None
        try:
            async with self._sem, contextlib.AsyncExitStack() as stack:
                if not item.gate.allowed and not adopted:
                    raise _Refuse(item.gate.reason or "not allowed")
                if self.read_only and not dry_run:
                    raise _Refuse("read-only mode: actions are disabled")
                for key in self._lock_keys(target):
                    await stack.enter_async_context(self._locks.setdefault(key, asyncio.Lock()))
                stage("checking")
                gate = Gate(True) if adopted else self.gate(action, target, dry_run=dry_run)  # re-check
                if not gate.allowed:
                    raise _Refuse(gate.reason or "not allowed")
                if adopted:
                    await self._already_adopted(op, thread_id)
                elif target.kind == "lease":
                    await self._lease_action(op, stage)
                elif action is Action.ADOPT:
                    await self._adopt(op, thread_id, stage)
                else:
                    await self._orphan_action(op, stage)
        except _Refuse as exc:
            op.status = OpStatus.REFUSED
            op.message = op.error = clip(str(exc))
        except Exception as exc:  # never let one target's surprise end the others
            op.status = OpStatus.FAILED
            op.message = op.error = clip(f"{type(exc).__name__}: {exc}")
        except asyncio.CancelledError:  # SIGINT/SIGTERM in the CLI, the TUI quitting
            op.status = OpStatus.INTERRUPTED
            if op.op_id in self._begun:
                why = "the outcome at the provider is unknown: check it before acting again"
            else:
                why = "nothing was changed"
            op.message = op.error = f"interrupted after stage {reached[0]!r}; {why}"
            op.finished_at = datetime.now(UTC)
            op.duration_ms = int((time.perf_counter() - started) * 1000)
            # Bounded: the process is on its way out. The writes run on in their threads
            # (asyncio.run waits for them), so a slow DB delays the exit, never loses the row.
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._interrupted(op)), INTERRUPT_AUDIT_S)
            raise
        finally:
            self._in_flight.pop(op.op_id, None)
        op.finished_at = datetime.now(UTC)
        op.duration_ms = int((time.perf_counter() - started) * 1000)
        if op.status is OpStatus.PENDING:
            op.deadline = op.finished_at + timedelta(seconds=self.convergence_timeout_s)
            self.tracker.track(op)
        await self._audit(op)
        stage("done")
        return op

    # ------------------------------------------------------------------ convergence and audit

    async def wait_converged(self, ops: Operation | Iterable[Operation], timeout: float) -> list[Operation]:
        if self.collector is None:
            raise RuntimeError(
                "Operations.wait_converged needs a collector (Operations(config, collector=...))"
            )
        return await wait_converged(self.collector, ops, timeout, tracker=self.tracker)

    async def _interrupted(self, op: Operation) -> None:
        """An intent written, its provider call cut short: LEON's error fields without a rollback
        (needs_refresh=1: LEON probes before trusting the row), then the audit row."""
        in_flight = self._in_flight.pop(op.op_id, None)
        if in_flight is not None:
            writer, intent = in_flight
            message = clip(
                f"Failed to {op.action.value} lease {op.target.lease_id}: interrupted while the "
                "provider call was in flight; outcome unknown"
            )
            try:
                snap = await asyncio.to_thread(writer.record_unknown, intent, message)
                op.after = snap.as_dict()
            except Exception as exc:
                op.message = op.error = f"{op.message} (sandbox.db not updated: {one(exc)})"
        await self._audit(op)

    async def _audit_begin(self, op: Operation) -> None:
        """Write the action's audit row before it changes anything; refuse when that fails."""
        if self.audit is None:
            return
        t = op.target
        try:
            await asyncio.to_thread(
                self.audit.begin,
                op_id=op.op_id, operator=self.operator, action=op.action.value, provider=t.provider,
                lease_id=t.lease_id, instance_id=t.instance_id, thread_id=t.thread_id, before=op.before,
                read_only=self.read_only, at=op.started_at,
            )  # fmt: skip
        except Exception as exc:
            raise _Refuse(
                f"the audit ledger {self.audit.path} cannot be written ({one(exc)}); "
                "refusing to act without an audit record"
            ) from None
        self._begun.add(op.op_id)

    async def _audit(self, op: Operation) -> None:
        if self.on_event is not None:
            await asyncio.to_thread(self._emit, ACTION_REQUESTED, op)
        if self.audit is None:
            return
        # AuditLog is blocking sqlite with a 5 s busy timeout (another cockpit, or an
        # `opcockpit audit` reader checkpointing, can hold the ledger): off the event loop, so
        # the TUI and the other targets' operations keep running. AuditLog serialises its one
        # connection with a lock and opens it with check_same_thread=False.
        try:
            await asyncio.to_thread(self._write_audit, op)
        except Exception as exc:  # the audit must not turn a done action into an error
            op.message = f"{op.message} (audit not written: {one(exc)})"

    def _write_audit(self, op: Operation) -> None:
        assert self.audit is not None
        t = op.target
        lease_id = t.lease_id or op.new_lease_id
        if op.op_id in self._begun:
            self._begun.discard(op.op_id)
            if self.audit.finish(
                op.op_id, result=op.status.value, lease_id=lease_id, thread_id=t.thread_id,
                before=op.before, after=op.after, outcome=op.outcome, error=op.error,
                duration_ms=op.duration_ms,
            ):  # fmt: skip
                return
        self.audit.record(
            op_id=op.op_id, operator=self.operator, action=op.action.value, result=op.status.value,
            provider=t.provider, lease_id=lease_id, instance_id=t.instance_id, thread_id=t.thread_id,
            before=op.before, after=op.after, outcome=op.outcome, error=op.error,
            duration_ms=op.duration_ms, dry_run=op.dry_run, read_only=self.read_only, at=op.started_at,
        )  # fmt: skip

    def _emit(self, kind: str, op: Operation) -> None:
        if self.on_event is not None:
            with contextlib.suppress(Exception):  # the event ledger never fails an action
                self.on_event(action_event(kind, op, self.operator))

    def _settled(self, op: Operation) -> None:
        self._emit(ACTION_SETTLED, op)
        if self.audit is not None:
            with contextlib.suppress(Exception):
                self.audit.settle(op.op_id, op.status.value)

    async def aclose(self) -> None:
        """Close adapters this object built itself (a shared collector closes its own)."""
        if self.collector is not None and self.adapters is self.collector.adapters:
            return
        for adapter in list(self.adapters.values()):
            with contextlib.suppress(Exception):
                await adapter.aclose()


def index_targets(gt: GroundTruth) -> Mapping[str, Target]:
    """Every row and orphan of `gt` as a Target, by row key (for the TUI's marks)."""
    out: dict[str, Target] = {r.lease_id: Target.of_row(r) for r in gt.rows}
    out.update({o.key: Target.of_orphan(o) for o in gt.orphans})
    return out
