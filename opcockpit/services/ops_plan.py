"""The plan side of operator actions: gates, plans, the refusal/failure signals and the message
helpers shared by `services.operations` (orchestration) and `services.ops_actions` (the steps)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from opcockpit.domain.models import Instance, NormalState
from opcockpit.domain.secrets import scrub
from opcockpit.domain.targets import Action, Target
from opcockpit.services.ops_track import Operation

__all__ = ["DEFAULT_WORKSPACE", "INTERRUPT_AUDIT_S", "Gate", "Plan", "PlanItem", "ProgressFn"]

# Working directory of a terminal created when an adopted instance is attached to a thread, when
# the provider's adapter does not declare its workspace root (Capabilities.workspace_root).
DEFAULT_WORKSPACE = "/workspace"
_ERROR_CHARS = 500  # LEON truncates last_error to 500 characters
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


def leon_state(inst: Instance) -> str | None:
    """LEON's normalised observed state for an adopted instance; None when it is not live."""
    if inst.state is NormalState.RUNNING:
        return "running"
    if inst.state is NormalState.PAUSED:
        return "paused"
    if inst.state in (NormalState.TRANSITIONING, NormalState.UNKNOWN):
        return "unknown"
    return None


def one(exc: BaseException) -> str:
    text = " ".join((str(exc) or type(exc).__name__).split())
    return scrub(text)


def unknown_text(op: Operation, exc: _Unknown) -> str:
    return clip(
        f"outcome is unknown: the {op.action.value} of {op.target.key} was sent but its response was "
        f"lost ({exc.first}), and reading the instance back failed too ({exc.why}); "
        "check the provider before acting again"
    )


def clip(text: str) -> str:
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"
