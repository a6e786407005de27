"""Operator actions (pause / resume / destroy / adopt): the one core API behind the CLI and the TUI.

    ops = Operations(config, collector=collector)          # or Operations(config, adapters=...)
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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from opcockpit.domain.models import GroundTruth, Instance, NormalState
from opcockpit.domain.secrets import scrub
from opcockpit.domain.targets import Action, Target, TargetError, expand_leaks, resolve_targets
from opcockpit.ports.errors import SourceError
from opcockpit.ports.ledger import AuditPort
from opcockpit.ports.leon import LeonAccess, LeonWriterPort, WriteError
from opcockpit.ports.provider import (
    ActionOutcome,
    ActionResult,
    Capabilities,
    NotFound,
    ProviderAdapter,
    Unavailable,
)
from opcockpit.services.collect import AdapterFactory, FleetCollector, one_line_error
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

# Working directory of a terminal created when an adopted instance is attached to a thread, when
# the provider's adapter does not declare its workspace root (Capabilities.workspace_root).
DEFAULT_WORKSPACE = "/workspace"
_ERROR_CHARS = 500
ProgressFn = Callable[[Operation, str], None]


@dataclass(frozen=True, slots=True)
class Gate:
    """Whether an action may run on a target, and why not (shown greyed out in the TUI)."""

    allowed: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PlanItem:
    target: Target
    gate: Gate


@dataclass(frozen=True, slots=True)
class Plan:
    action: Action
    items: tuple[PlanItem, ...]
    thread_id: str | None = None  # adopt: attach to this thread
    errors: tuple[str, ...] = field(default=())  # plan-level problems (e.g. --thread with 2 targets)

    @property
    def allowed(self) -> list[Target]:
        return [i.target for i in self.items if i.gate.allowed] if not self.errors else []

    @property
    def refused(self) -> list[PlanItem]:
        return [i for i in self.items if not i.gate.allowed]

    def summary(self) -> str:
        n, ok = len(self.items), len(self.allowed)
        text = f"{self.action.value} {n} target{'s' if n != 1 else ''}"
        if ok != n:
            text += f" ({ok} allowed, {n - ok} refused)"
        return text


class _Refuse(Exception):
    """Stop an operation before any change; the message is shown to the operator."""


class _Failed(Exception):
    """The provider call failed (the provider did not act); the message is LEON's last_error."""


class _Unknown(Exception):
    """The provider call's answer was lost and the read back failed: it may or may not have acted."""

    def __init__(self, first: str, why: str) -> None:
        super().__init__(f"{first}; read back: {why}")
        self.first, self.why = first, why


# Seconds an interrupted operation may spend completing its audit row before the process exits.
INTERRUPT_AUDIT_S = 2.0


class Operations:
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
    ) -> None:
        self.config = config
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
            op.message = op.error = _clip(str(exc))
        except Exception as exc:  # never let one target's surprise end the others
            op.status = OpStatus.FAILED
            op.message = op.error = _clip(f"{type(exc).__name__}: {exc}")
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

    # ------------------------------------------------------------------ re-reading the truth

    async def _fresh(self, op: Operation) -> Instance | None:
        """A fresh GET of the target instance; None when the provider says it is gone."""
        t = op.target
        assert t.instance_id is not None
        try:
            return await self._get(t.provider, t.instance_id)
        except Exception as exc:
            raise _Refuse(f"cannot verify {t.instance_key} at the provider right now: {_one(exc)}") from None

    async def _db_lease(self, lease_id: str) -> Any:
        try:
            async with self._leon().sandbox_reader(self.db_path) as reader:
                return await reader.lease(lease_id)
        except SourceError as exc:
            raise _Refuse(f"cannot re-read sandbox.db: {exc}") from None

    async def _binding_leases(self, provider: str, ids: Iterable[str]) -> list[str]:
        wanted = set(ids)
        found: list[str] = []
        try:
            async with self._leon().sandbox_reader(self.db_path) as reader:
                for iid in wanted:
                    for lease in await reader.find_leases(iid):
                        if lease.provider_name == provider and lease.current_instance_id in wanted:
                            found.append(lease.lease_id)
        except SourceError as exc:
            raise _Refuse(f"cannot re-read sandbox.db: {exc}") from None
        return sorted(set(found))

    # ------------------------------------------------------------------ lease actions

    def _satisfied(self, action: Action, inst: Instance | None, provider: str) -> bool:
        if action is Action.DESTROY:
            return inst is None
        if inst is None:
            return False
        if action is Action.PAUSE:
            return inst.state is NormalState.PAUSED or (
                inst.state is NormalState.STOPPED and self._caps(provider).pause_is_stop
            )
        return inst.state is NormalState.RUNNING

    async def _lease_action(self, op: Operation, stage: Callable[[str], None]) -> None:
        t, action = op.target, op.action
        assert t.lease_id is not None
        lease = await self._db_lease(t.lease_id)
        if lease is None:
            raise _Refuse(f"lease {t.lease_id} no longer exists in sandbox.db")
        if lease.provider_name != t.provider:
            raise _Refuse(
                f"lease {t.lease_id} now belongs to provider {lease.provider_name}, not {t.provider}"
            )
        if lease.current_instance_id != t.instance_id:
            raise _Refuse(
                f"lease {t.lease_id} changed since you looked: instance {t.instance_id or '(none)'} -> "
                f"{lease.current_instance_id or '(none)'}; refresh and retry"
            )
        op.before = {
            "desired_state": lease.desired_state,
            "observed_state": lease.observed_state,
            "instance_id": lease.current_instance_id,
            "version": lease.version,
            "provider_state": t.seen_provider_state,
        }
        desired = action.desired_state
        target_obs = action.observed_state
        db_done = lease.desired_state == desired and lease.observed_state == target_obs
        inst: Instance | None = None
        if t.instance_id is not None:
            inst = await self._fresh(op)
            op.before["provider_state"] = inst.state.value if inst else "gone"
            if inst is None and action is not Action.DESTROY:
                raise _Refuse(f"instance {t.instance_id} is gone at the provider; nothing to {action.value}")
        already = self._satisfied(action, inst, t.provider) if t.instance_id is not None else db_done
        if op.dry_run:
            op.status = OpStatus.PLANNED
            op.outcome = "already" if already else None
            op.message = (
                f"would {action.value}: already {'gone' if action is Action.DESTROY else target_obs}"
                if already
                else f"would {action.value} {t.describe()}"
            )
            return
        if already and db_done:
            op.outcome = "already"
            op.message = f"already {'gone' if action is Action.DESTROY else target_obs}; nothing to do"
            op.after = dict(op.before)
            return
        await self._audit_begin(op)
        writer = self.writer()
        payload = {"operator": self.operator, "op_id": op.op_id, "via": "opcockpit"}
        try:
            intent = await asyncio.to_thread(
                writer.write_intent,
                t.lease_id,
                action.value,
                expect_instance_id=t.instance_id,
                payload=payload,
            )
        except WriteError as exc:
            if exc.kind in ("conflict", "read_only"):
                raise _Refuse(str(exc)) from None
            op.status = OpStatus.FAILED
            op.message = op.error = _clip(f"could not write the intent: {exc}")
            return
        self._in_flight[op.op_id] = (writer, intent)
        stage("intent")
        result: ActionResult | None = None
        if already or t.instance_id is None:
            outcome = "already" if already else "done"
        else:
            try:
                result = await self._provider_call(op, f"lease {t.lease_id}")
            except (_Failed, _Unknown) as exc:
                self._in_flight.pop(op.op_id, None)  # settled below: an interruption adds nothing
                if isinstance(exc, _Failed):
                    message = _clip(str(exc))
                    op.status = OpStatus.FAILED
                    record = writer.record_failure
                else:
                    message = _clip(
                        f"Failed to {action.value} lease {t.lease_id}: outcome unknown: response lost "
                        f"({exc.first}) and the read back failed ({exc.why})"
                    )
                    op.status = OpStatus.UNKNOWN
                    record = writer.record_unknown
                op.message = op.error = message if op.status is OpStatus.FAILED else _unknown_text(op, exc)
                try:
                    snap = await asyncio.to_thread(record, intent, message, payload=payload)
                    op.after = snap.as_dict()
                except WriteError as wexc:
                    what = "failure" if op.status is OpStatus.FAILED else "unknown outcome"
                    op.message = f"{op.message}; and the {what} could not be recorded: {wexc}"
                stage("provider")
                return
            outcome = result.outcome.value
        self._in_flight.pop(op.op_id, None)
        stage("provider")
        op.outcome = outcome
        try:
            snap = await asyncio.to_thread(writer.record_success, intent, outcome=outcome, payload=payload)
            op.after = snap.as_dict()
        except WriteError as exc:
            # The provider did act: stay pending (observation decides), but say the DB lags.
            op.error = _clip(f"{action.value} done at the provider but the outcome was not recorded: {exc}")
        op.message = self._done_message(op, result, bound=t.instance_id is not None)
        stage("recorded")

    def _done_message(self, op: Operation, result: ActionResult | None, *, bound: bool) -> str:
        verb = op.action.past_tense
        if not bound:
            return "no instance bound; lease marked destroyed"
        if op.outcome == "already":
            state = "gone" if op.action is Action.DESTROY else op.intended_state
            return (
                f"already {state} at the provider; recorded in sandbox.db"
                if op.target.kind == "lease"
                else (f"already {state}")
            )
        if op.outcome == "accepted":
            return f"{op.action.value} accepted by the provider (in progress)"
        detail = f" ({result.detail})" if result is not None and result.detail else ""
        return f"{verb}{detail}"

    async def _provider_call(self, op: Operation, what: str) -> ActionResult:
        """Call the provider. A lost answer (timeout, connection error, 5xx) is settled by one
        read back: the target state -> done; the old state -> _Failed; no answer -> _Unknown."""
        t, action = op.target, op.action
        assert t.instance_id is not None
        try:
            return await self._call(action, t.provider, t.instance_id)
        except _Refuse:
            raise
        except Exception as exc:
            first = _one(exc)
            if not isinstance(exc, Unavailable | TimeoutError | ConnectionError):
                raise _Failed(f"Failed to {action.value} {what}: {first}") from None
        try:
            inst = await self._get(t.provider, t.instance_id)
        except Exception as exc:
            raise _Unknown(first, _one(exc)) from None
        now = inst.state.value if inst is not None else "gone"
        if self._satisfied(action, inst, t.provider):
            detail = f"its response was lost ({first}), a read back shows it {now}"
            state = inst.state if inst is not None else None
            return ActionResult(t.instance_id, action.value, ActionOutcome.DONE, state=state, detail=detail)
        if inst is not None and inst.state in (NormalState.TRANSITIONING, NormalState.UNKNOWN):
            raise _Unknown(first, f"the instance is {inst.raw_state or now}, neither before nor after")
        raise _Failed(f"Failed to {action.value} {what}: {first} (read back: still {now})")

    async def _get(self, provider: str, instance_id: str) -> Instance | None:
        """One GET; None when the provider says the instance is gone."""
        adapter = self.adapter(provider)
        assert adapter is not None
        try:
            inst = await adapter.get_instance(instance_id)
        except NotFound:
            return None
        return None if inst.state is NormalState.GONE else inst

    async def _call(self, action: Action, provider: str, instance_id: str) -> ActionResult:
        adapter = self.adapter(provider)
        assert adapter is not None
        if self.read_only:  # belt and braces: no mutation request may leave a read-only cockpit
            raise _Refuse("read-only mode: actions are disabled")
        if action is Action.PAUSE:
            return await adapter.pause(instance_id)
        if action is Action.RESUME:
            return await adapter.resume(instance_id)
        return await adapter.destroy(instance_id)

    # ------------------------------------------------------------------ orphans

    async def _orphan_checks(self, op: Operation) -> Instance | None:
        t = op.target
        assert t.instance_id is not None
        inst = await self._fresh(op)
        ids = [t.instance_id, *(inst.aliases if inst else ())]
        bound = await self._binding_leases(t.provider, ids)
        if bound:
            raise _Refuse(
                f"{t.instance_key} is now bound to lease {bound[0]} (adopted meanwhile?); "
                "act on the lease instead"
            )
        if t.is_leak:
            await self._leak_checks(op, inst)
        op.before = {
            "provider_state": inst.state.value if inst else "gone",
            "raw_state": inst.raw_state if inst else None,
            "lease_id": t.lease_id,
        } | ({"leak_of_destroyed_lease": True} if t.is_leak else {})
        return inst

    async def _leak_checks(self, op: Operation, inst: Instance | None) -> None:
        """A leaked instance is destroyed only while its lease is still destroyed and the instance
        still claims it (LEON may have revived the lease, or the id may now be someone else's)."""
        t = op.target
        assert t.lease_id is not None
        lease = await self._db_lease(t.lease_id)
        if lease is None or lease.desired_state != "destroyed":
            now = "gone from sandbox.db" if lease is None else f"desired_state now {lease.desired_state}"
            raise _Refuse(f"lease {t.lease_id} changed since you looked ({now}); refresh and retry")
        if inst is not None and inst.claimed_lease_id not in (None, t.lease_id):
            raise _Refuse(
                f"{t.instance_key} now claims lease {inst.claimed_lease_id}, not {t.lease_id}; "
                "refresh and retry"
            )

    async def _orphan_action(self, op: Operation, stage: Callable[[str], None]) -> None:
        t, action = op.target, op.action
        assert t.instance_id is not None
        inst = await self._orphan_checks(op)
        if inst is None and action is not Action.DESTROY:
            raise _Refuse(f"instance {t.instance_key} is gone at the provider; nothing to {action.value}")
        if inst is not None and inst.raw_state == "destroying" and action is Action.DESTROY:
            already = True
        else:
            already = self._satisfied(action, inst, t.provider)
        if op.dry_run:
            op.status = OpStatus.PLANNED
            op.outcome = "already" if already else None
            what = (
                f"leaked instance {t.instance_key} of destroyed lease {t.lease_id}"
                if t.is_leak
                else (f"orphan {t.instance_key}")
            )
            op.message = f"would {action.value} {what}" + (" (already there)" if already else "")
            return
        result: ActionResult | None = None
        if already:
            op.outcome = "already"
        else:
            await self._audit_begin(op)
            try:
                result = await self._provider_call(op, t.instance_key)
            except _Failed as exc:
                op.status = OpStatus.FAILED
                op.message = op.error = _clip(str(exc))
                stage("provider")
                return
            except _Unknown as exc:
                op.status = OpStatus.UNKNOWN
                op.message = op.error = _unknown_text(op, exc)
                stage("provider")
                return
            op.outcome = result.outcome.value
        stage("provider")
        op.after = {"provider_state": (result.state.value if result and result.state else op.intended_state)}
        op.message = self._done_message(op, result, bound=True)
        if t.is_leak:
            op.message += f" (leaked instance of destroyed lease {t.lease_id}; sandbox.db unchanged)"

    async def _adopt(self, op: Operation, thread_id: str | None, stage: Callable[[str], None]) -> None:
        t = op.target
        assert t.instance_id is not None
        inst = await self._orphan_checks(op)
        if inst is None:
            raise _Refuse(f"instance {t.instance_key} is gone at the provider; nothing to adopt")
        state = _leon_state(inst)
        if state is None:
            raise _Refuse(
                f"instance {t.instance_key} is {inst.raw_state}: LEON would see it as detached; "
                "destroy it instead"
            )
        op.adopt_state = state
        if op.dry_run:
            op.status = OpStatus.PLANNED
            where = f" and attach it to thread {thread_id}" if thread_id else ""
            op.message = f"would adopt {t.instance_key} as a new lease ({state}){where}"
            return
        cwd = self._caps(t.provider).workspace_root or DEFAULT_WORKSPACE
        await self._audit_begin(op)
        try:
            rec = await asyncio.to_thread(
                self.writer().adopt, t.provider, t.instance_id, state, aliases=inst.aliases,
                thread_id=thread_id, cwd=cwd,
            )  # fmt: skip
        except WriteError as exc:
            if exc.kind in ("conflict", "read_only"):
                raise _Refuse(str(exc)) from None
            op.status = OpStatus.FAILED
            op.message = op.error = _clip(f"could not adopt: {exc}")
            return
        stage("recorded")
        op.new_lease_id = rec.lease_id
        op.target = replace(t, thread_id=thread_id) if thread_id else t
        op.outcome = "done"
        op.after = rec.after.as_dict() | ({"terminal_id": rec.terminal_id} if rec.terminal_id else {})
        op.message = f"adopted as {rec.lease_id} ({state})" + (
            f", attached to thread {thread_id}" if thread_id else ""
        )

    async def _already_adopted(self, op: Operation, thread_id: str | None) -> None:
        """`adopt` of an instance bound to a lease: "already", with that lease (re-read from
        sandbox.db now). Refused when the operator asked for a thread the lease is not on: that
        would be a different binding, not a repeat."""
        t = op.target
        assert t.lease_id is not None and t.instance_id is not None
        lease = await self._db_lease(t.lease_id)
        if lease is None or lease.provider_name != t.provider or lease.current_instance_id != t.instance_id:
            now = "gone" if lease is None else f"now bound to {lease.current_instance_id or 'nothing'}"
            raise _Refuse(f"lease {t.lease_id} changed since you looked ({now}); refresh and retry")
        try:
            async with self._leon().sandbox_reader(self.db_path) as reader:
                threads = await reader.threads_for_lease(t.lease_id)
        except SourceError as exc:
            raise _Refuse(f"cannot re-read sandbox.db: {exc}") from None
        on = f"thread {', '.join(threads)}" if threads else "no thread"
        if thread_id is not None and thread_id not in threads:
            raise _Refuse(
                f"{t.instance_key} is already adopted as lease {t.lease_id} (on {on}), "
                f"not attached to thread {thread_id}; refusing to rebind it"
            )
        op.before = {
            "desired_state": lease.desired_state,
            "observed_state": lease.observed_state,
            "instance_id": lease.current_instance_id,
            "version": lease.version,
            "lease_id": lease.lease_id,
        }
        op.adopt_state = lease.observed_state
        op.outcome = "already"
        if op.dry_run:
            op.status = OpStatus.PLANNED
            op.message = f"would do nothing: {t.instance_key} is already lease {t.lease_id} ({on})"
            return
        # Stays pending: the tracker confirms the binding on the next listing, as for any action.
        op.after = dict(op.before)
        op.message = f"already adopted: {t.instance_key} is lease {t.lease_id} ({on})"

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
            message = _clip(
                f"Failed to {op.action.value} lease {op.target.lease_id}: interrupted while the "
                "provider call was in flight; outcome unknown"
            )
            try:
                snap = await asyncio.to_thread(writer.record_unknown, intent, message)
                op.after = snap.as_dict()
            except Exception as exc:
                op.message = op.error = f"{op.message} (sandbox.db not updated: {_one(exc)})"
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
                f"the audit ledger {self.audit.path} cannot be written ({_one(exc)}); "
                "refusing to act without an audit record"
            ) from None
        self._begun.add(op.op_id)

    async def _audit(self, op: Operation) -> None:
        if self.audit is None:
            return
        # AuditLog is blocking sqlite with a 5 s busy timeout (another cockpit, or an
        # `opcockpit audit` reader checkpointing, can hold the ledger): off the event loop, so
        # the TUI and the other targets' operations keep running. AuditLog serialises its one
        # connection with a lock and opens it with check_same_thread=False.
        try:
            await asyncio.to_thread(self._write_audit, op)
        except Exception as exc:  # the audit must not turn a done action into an error
            op.message = f"{op.message} (audit not written: {_one(exc)})"

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

    def _settled(self, op: Operation) -> None:
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


def _leon_state(inst: Instance) -> str | None:
    """LEON's normalised observed state for an adopted instance; None when it is not live."""
    if inst.state is NormalState.RUNNING:
        return "running"
    if inst.state is NormalState.PAUSED:
        return "paused"
    if inst.state in (NormalState.TRANSITIONING, NormalState.UNKNOWN):
        return "unknown"
    return None


def _one(exc: BaseException) -> str:
    text = " ".join((str(exc) or type(exc).__name__).split())
    return scrub(text)


def _unknown_text(op: Operation, exc: _Unknown) -> str:
    return _clip(
        f"outcome is unknown: the {op.action.value} of {op.target.key} was sent but its response was "
        f"lost ({exc.first}), and reading the instance back failed too ({exc.why}); "
        "check the provider before acting again"
    )


def _clip(text: str) -> str:
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


def index_targets(gt: GroundTruth) -> Mapping[str, Target]:
    """Every row and orphan of `gt` as a Target, by row key (for the TUI's marks)."""
    out: dict[str, Target] = {r.lease_id: Target.of_row(r) for r in gt.rows}
    out.update({o.key: Target.of_orphan(o) for o in gt.orphans})
    return out
