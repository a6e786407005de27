"""The TUI side of operator actions, without Textual: which keys apply, the optimistic overlay,
and the one-line summary of a (bulk) action.

The semantics (re-check, LEON-way writes, convergence) live in opcockpit.services.operations; this
module only decides what the screen shows while an operation is in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from opcockpit.domain.targets import Action, Target
from opcockpit.services.ops_track import Operation, OpStatus

if TYPE_CHECKING:
    from opcockpit.services.operations import Operations

FAILED_SHOWN_S = 60.0  # a failure stays on its row this long (then the DB's last_error remains)


@dataclass(slots=True)
class Mark:
    action: str
    intended: str | None
    status: Literal["pending", "failed"]
    note: str | None
    op: Operation | None
    since: datetime


class OpsOverlay:
    """Row key -> what an operator action currently shows on that row."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._marks: dict[str, Mark] = {}

    def __len__(self) -> int:
        return len(self._marks)

    def __contains__(self, key: object) -> bool:
        return key in self._marks

    def get(self, key: str) -> Mark | None:
        return self._marks.get(key)

    def items(self) -> Iterator[tuple[str, Mark]]:
        return iter(list(self._marks.items()))

    def pending_count(self) -> int:
        return sum(1 for m in self._marks.values() if m.status == "pending")

    def is_pending(self, key: str) -> bool:
        mark = self._marks.get(key)
        return mark is not None and mark.status == "pending"

    def start(self, key: str, action: str, intended: str | None) -> None:
        self._marks[key] = Mark(action, intended, "pending", None, None, self._clock())

    def attach(self, op: Operation) -> None:
        """The operation ran and awaits confirmation: keep the pending marker, tied to `op`."""
        mark = self._marks.get(op.key)
        intended = op.intended_state or (mark.intended if mark else None)
        note = op.message or None
        if note and not note.endswith("…"):
            note = f"{note}; waiting for an observation"
        self._marks[op.key] = Mark(op.action.value, intended, "pending", note, op, self._clock())

    def fail(self, key: str, action: str, error: str | None, op: Operation | None = None) -> None:
        """Roll back: the row shows the real state again, with the error."""
        self._marks[key] = Mark(action, None, "failed", error, op, self._clock())

    def converged(self, op: Operation) -> None:
        mark = self._marks.get(op.key)
        if mark is not None and (mark.op is None or mark.op is op):
            del self._marks[op.key]

    def expire(self) -> None:
        now = self._clock()
        for key, mark in list(self._marks.items()):
            if mark.status == "failed" and (now - mark.since).total_seconds() >= FAILED_SHOWN_S:
                del self._marks[key]


_ALREADY = {
    Action.PAUSE: ("paused", "stopped"),
    Action.RESUME: ("running",),
}


def applicable(
    ops: Operations, action: Action, target: Target, overlay: OpsOverlay | None = None, *, why: bool = False
) -> bool | str | None:
    """Does `action` apply to `target` now? (why=True: the reason it does not, None when it does.)

    Capability and read-only come from the core's gate; row state (nothing to do, instance gone,
    an operation already pending on the row) is decided here, because a greyed key is a hint, not a
    safety check (the core re-checks everything at action time).
    """
    reason: str | None = None
    gate = ops.gate(action, target)
    state = target.seen_provider_state
    if not gate.allowed:
        reason = gate.reason or "not allowed"
    elif overlay is not None and overlay.is_pending(target.key):
        reason = "an operation on this row is still pending"
    elif action in _ALREADY and state in _ALREADY[action]:
        reason = f"already {state}"
    elif action in (Action.PAUSE, Action.RESUME) and state in ("gone", None) and target.kind == "lease":
        reason = "the instance is gone at the provider" if state == "gone" else "provider state unknown"
    elif (
        action is Action.DESTROY
        and target.kind == "lease"
        and (state == "gone" or (target.instance_id is None and target.seen_observed == "detached"))
        and target.seen_desired == "destroyed"
    ):
        # A leaked lease (its labelled instance still lives) never gets here: the app expands it
        # to that instance first (expand_leaks), which destroy applies to.
        reason = "already destroyed"
    if why:
        return reason
    return reason is None


def summarize(action: str, results: Sequence[Operation]) -> tuple[str, str]:
    """'pause 3: 2 ok · 1 already · 0 failed' (+ the first error) and a notification severity."""
    ok = already = failed = 0
    first_error: str | None = None
    for op in results:
        if op.status in (OpStatus.PENDING, OpStatus.CONVERGED):
            if op.outcome == "already":
                already += 1
            else:
                ok += 1
        else:
            failed += 1
            if first_error is None:
                first_error = f"{op.key}: {op.error or op.message or op.status.value}"
    n = len(results)
    text = f"{action} {n}: {ok} ok · {already} already · {failed} failed"
    if first_error:
        text += f" — {first_error}"
    severity = "information" if not failed else ("error" if failed == n else "warning")
    return text, severity
