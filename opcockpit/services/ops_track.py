"""Operation records and convergence tracking.

An executed operation is `pending` until a later observation (a GroundTruth whose provider
listing was taken after the operation finished) confirms it (`converged`), contradicts it
(`failed`) or its deadline passes (`timed_out`). A contradiction must be seen in two consecutive
post-operation observations before it counts: a listing in flight while the action ran, or an
eventually consistent list (Daytona), must not fail an action that is about to converge.

The TUI calls `OperationTracker.observe(gt)` after every refresh; the CLI awaits
`wait_converged(collector, ops, timeout)`, which re-lists through the collector.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from opcockpit.domain.models import GroundTruth, GroundTruthRow, OrphanRow, ProviderStatus
from opcockpit.domain.targets import Action, Target

if TYPE_CHECKING:
    from opcockpit.services.collect import FleetCollector

__all__ = ["OpStatus", "Operation", "OperationTracker", "wait_converged"]

CONTRADICTIONS_TO_FAIL = 2


class OpStatus(StrEnum):
    PENDING = "pending"  # done at the provider / in the DB; awaiting confirmation by an observation
    CONVERGED = "converged"
    FAILED = "failed"  # the action failed, or an observation contradicted it
    TIMED_OUT = "timed_out"
    REFUSED = "refused"  # never started: gate, read-only, or the truth changed since it was seen
    PLANNED = "planned"  # dry run: checks passed, nothing was changed
    # The provider call's answer was lost and reading the instance back failed too: it may or may
    # not have acted. Not rolled back, not tracked; the operator has to look.
    UNKNOWN = "unknown"
    INTERRUPTED = "interrupted"  # SIGINT/SIGTERM/cancellation while it ran: outcome not settled


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class Operation:
    """One action on one target. Mutable: the tracker moves it from pending to its end state."""

    action: Action
    target: Target
    status: OpStatus = OpStatus.PENDING
    outcome: str | None = None  # ActionOutcome value: done | already | accepted
    message: str = ""
    error: str | None = None
    new_lease_id: str | None = None  # adopt
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    dry_run: bool = False
    op_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    started_at: datetime = field(default_factory=_utcnow)
    finished_at: datetime | None = None
    deadline: datetime | None = None
    settled_at: datetime | None = None
    duration_ms: int | None = None
    adopt_state: str | None = None  # adopt: the state the new lease was bound in
    contradictions: int = 0
    last_reason: str | None = None

    @property
    def settled(self) -> bool:
        return self.status is not OpStatus.PENDING

    @property
    def ok(self) -> bool:
        """Converged (an already-in-state action converges too)."""
        return self.status is OpStatus.CONVERGED

    @property
    def intended_state(self) -> str | None:
        """What the row should show once converged (for optimistic display)."""
        if self.action is Action.ADOPT:
            return self.adopt_state
        return self.action.provider_state

    @property
    def key(self) -> str:
        return self.target.key

    def as_dict(self) -> dict[str, Any]:
        t = self.target
        return {
            "op_id": self.op_id,
            "action": self.action.value,
            "target": t.key,
            "provider": t.provider,
            "lease_id": t.lease_id or self.new_lease_id,
            "instance_id": t.instance_id,
            "thread_id": t.thread_id,
            "status": self.status.value,
            "outcome": self.outcome,
            "message": self.message,
            "error": self.error,
            "new_lease_id": self.new_lease_id,
            "before": self.before,
            "after": self.after,
            "dry_run": self.dry_run,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "settled_at": self.settled_at.isoformat() if self.settled_at else None,
            "duration_ms": self.duration_ms,
        }


# --------------------------------------------------------------------------- judging


def _verdict_state(op: Operation, state: str | None, pause_is_stop: bool) -> bool | None:
    """True: the provider state is the target; False: it contradicts; None: cannot tell yet.
    `pause_is_stop`: the provider pauses by stopping (Capabilities.pause_is_stop, e.g. Daytona)."""
    if op.action is Action.PAUSE:
        if state == "paused" or (state == "stopped" and pause_is_stop):
            return True
        return None if state in ("transitioning", "unknown") else False
    if op.action is Action.RESUME:
        if state == "running":
            return True
        return None if state in ("transitioning", "unknown") else False
    return None


def judge(op: Operation, gt: GroundTruth, *, pause_is_stop: bool = False) -> tuple[bool | None, str]:
    """(True converged | False contradicted | None undetermined, reason) for one observation."""
    t = op.target
    health = next((p for p in gt.providers if p.name == t.provider), None)
    if health is None or health.status is not ProviderStatus.OK:
        return None, f"provider {t.provider} not listed fresh"
    if op.finished_at is not None and health.listed_at is not None and health.listed_at < op.finished_at:
        return None, "listing predates the action"
    iid = t.instance_id
    row_by_inst: GroundTruthRow | None = None
    if iid is not None:
        row_by_inst = next((r for r in gt.rows if r.provider == t.provider and r.instance_id == iid), None)
    orphan: OrphanRow | None = None
    if iid is not None:
        orphan = next((o for o in gt.orphans if o.provider == t.provider and o.instance_id == iid), None)

    if op.action is Action.DESTROY:
        if iid is None:
            row = next((r for r in gt.rows if r.lease_id == t.lease_id), None)
            if row is None or row.desired_state == "destroyed":
                return True, "lease marked destroyed"
            return False, f"lease desired_state is {row.desired_state}"
        live = (row_by_inst.provider_state if row_by_inst else None) or (
            orphan.provider_state if orphan else None
        )
        if live is None or live == "gone":
            return True, "instance no longer listed by the provider"
        if live in ("transitioning", "unknown"):
            return None, f"instance still {live}"
        return False, f"instance still {live} at the provider"

    if op.action is Action.ADOPT:
        lease_id = op.new_lease_id or t.lease_id  # t.lease_id: a repeat ("already" that lease's)
        row = next((r for r in gt.rows if r.lease_id == lease_id), None)
        if row is not None and row.instance_id == iid:
            return True, f"lease {lease_id} bound to {iid}"
        if row is None and orphan is not None:
            return None, "sandbox.db read predates the adoption"
        return False, f"lease {lease_id} not bound to {iid}"

    # pause / resume
    if t.kind == "lease":
        row = next((r for r in gt.rows if r.lease_id == t.lease_id), None)
        if row is None:
            return False, f"lease {t.lease_id} no longer in sandbox.db"
        if row.instance_id != iid:
            return False, f"lease now bound to {row.instance_id or 'no instance'}"
        if row.desired_state != ("paused" if op.action is Action.PAUSE else "running"):
            return False, f"desired_state changed to {row.desired_state} (superseded)"
        state = row.provider_state
    else:
        state = (row_by_inst.provider_state if row_by_inst else None) or (
            orphan.provider_state if orphan else None
        )
    if state is None:
        return False, "instance not listed by the provider"
    verdict = _verdict_state(op, state, pause_is_stop)
    return verdict, f"provider says {state}"


class OperationTracker:
    """Pending operations and their settlement. Not thread-safe; use from the event loop."""

    def __init__(
        self,
        *,
        on_settle: Callable[[Operation], None] | None = None,
        clock: Callable[[], datetime] | None = None,
        eventually_consistent: Callable[[str], bool] | None = None,
        pause_is_stop: Callable[[str], bool] | None = None,
    ) -> None:
        self._ops: dict[str, Operation] = {}
        self._on_settle = on_settle
        self._clock = clock or _utcnow
        # provider name -> its list may lag (Daytona): a contradiction there only delays, the
        # deadline decides (a lagging list must never fail an action that is converging).
        self._eventual = eventually_consistent or (lambda _provider: False)
        self._pause_is_stop = pause_is_stop or (lambda _provider: False)

    def track(self, op: Operation) -> None:
        if op.status is OpStatus.PENDING:
            self._ops[op.op_id] = op

    def pending(self) -> list[Operation]:
        return [op for op in self._ops.values() if op.status is OpStatus.PENDING]

    def pending_for(self, key: str) -> list[Operation]:
        """Pending operations on a row key (lease_id or provider/instance_id)."""
        return [op for op in self.pending() if op.key == key or op.target.instance_key == key]

    def _settle(self, op: Operation, status: OpStatus, reason: str) -> None:
        op.status = status
        op.settled_at = self._clock()
        op.last_reason = reason
        if status is not OpStatus.CONVERGED and not op.error:
            op.error = reason
        if status is OpStatus.CONVERGED:
            op.message = f"{op.message}; converged ({reason})" if op.message else f"converged ({reason})"
        self._ops.pop(op.op_id, None)
        if self._on_settle is not None:
            self._on_settle(op)

    def observe(self, gt: GroundTruth) -> list[Operation]:
        """Judge every pending operation against a fresh picture; return those that settled."""
        settled: list[Operation] = []
        for op in self.pending():
            verdict, reason = judge(op, gt, pause_is_stop=self._pause_is_stop(op.target.provider))
            if verdict is True:
                self._settle(op, OpStatus.CONVERGED, reason)
            elif verdict is False and self._eventual(op.target.provider):
                op.last_reason = f"{reason} (eventually consistent list: waiting)"
            elif verdict is False:
                op.contradictions += 1
                op.last_reason = reason
                if op.contradictions >= CONTRADICTIONS_TO_FAIL:
                    self._settle(op, OpStatus.FAILED, f"contradicted: {reason}")
            else:
                op.contradictions = 0
                op.last_reason = reason
            if op.status is OpStatus.PENDING:
                continue
            settled.append(op)
        return settled + self.expire()

    def expire(self, now: datetime | None = None) -> list[Operation]:
        now = now or self._clock()
        out = []
        for op in self.pending():
            if op.deadline is not None and now >= op.deadline:
                why = f"not confirmed by {op.deadline.isoformat(timespec='seconds')}"
                self._settle(
                    op, OpStatus.TIMED_OUT, f"{why} (last: {op.last_reason})" if op.last_reason else why
                )
                out.append(op)
        return out


async def wait_converged(
    collector: FleetCollector,
    ops: Operation | Iterable[Operation],
    timeout: float,
    *,
    tracker: OperationTracker | None = None,
    first_delay_s: float = 0.0,
    max_interval_s: float | None = None,
) -> list[Operation]:
    """Re-list through `collector` until every operation settles or `timeout` passes.

    The first refresh runs at once (docker/e2b usually converge on it), later ones back off
    from 0.25 s to the configured refresh interval. Operations still pending at the end are
    timed out.
    """
    items = [ops] if isinstance(ops, Operation) else list(ops)
    tracker = tracker or OperationTracker()
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    deadline = _utcnow() + timedelta(seconds=timeout)
    for op in items:
        if op.status is OpStatus.PENDING:
            if op.deadline is None or op.deadline > deadline:
                op.deadline = deadline
            tracker.track(op)
    cap = max_interval_s if max_interval_s is not None else max(0.25, float(collector.config.refresh_s))
    delay = first_delay_s
    while any(op.status is OpStatus.PENDING for op in items):
        remaining = end - loop.time()
        if remaining <= 0:
            break
        if delay:
            await asyncio.sleep(min(delay, remaining))
        try:
            gt = await asyncio.wait_for(collector.refresh(), max(0.1, end - loop.time()))
        except TimeoutError:
            break
        except Exception as exc:  # a DB read error: keep waiting, the next refresh may work
            for op in items:
                if op.status is OpStatus.PENDING:
                    op.last_reason = f"refresh failed: {exc}"
        else:
            tracker.observe(gt)
        delay = min(cap, max(0.25, delay * 2))
    for op in items:
        if op.status is OpStatus.PENDING:
            tracker._settle(
                op, OpStatus.TIMED_OUT, f"not confirmed within {timeout:g}s (last: {op.last_reason})"
            )
    return items
