"""Exact assertions that kill mutants of the operations service (services/operations.py and its
split-off ops_plan.py) that the broader operations tests let through (docs/mutation.md).

The plan helpers are pure; they are checked on real Targets/Operations with exact strings.
"""

from __future__ import annotations

import pytest

from opcockpit.domain.models import Instance, NormalState
from opcockpit.domain.targets import Action, Target
from opcockpit.services.ops_plan import Gate, Plan, PlanItem, _Unknown, clip, leon_state, one, unknown_text
from opcockpit.services.ops_track import Operation

LEASE = Target("lease", "dock", "c-1", lease_id="lease-aaaaaaaaaaaa")
ORPHAN = Target("orphan", "dock", "stray-1")


def _item(target: Target, allowed: bool, reason: str | None = None) -> PlanItem:
    return PlanItem(target, Gate(allowed, reason))


# --------------------------------------------------------------------------- Plan


@pytest.mark.parametrize(
    ("gates", "text"),
    [
        ((True,), "pause 1 target"),
        ((True, True), "pause 2 targets"),
        ((True, False), "pause 2 targets (1 allowed, 1 refused)"),
        ((False,), "pause 1 target (0 allowed, 1 refused)"),
        ((), "pause 0 targets"),
    ],
)
def test_plan_summary_is_exact(gates: tuple[bool, ...], text: str) -> None:
    targets = [LEASE, ORPHAN]
    plan = Plan(Action.PAUSE, tuple(_item(targets[i], ok) for i, ok in enumerate(gates)))
    assert plan.summary() == text


def test_plan_allowed_and_refused_and_plan_errors_refuse_everything() -> None:
    items = (_item(LEASE, True), _item(ORPHAN, False, "read-only"))
    plan = Plan(Action.DESTROY, items)
    assert plan.allowed == [LEASE]
    assert plan.refused == [items[1]]
    blocked = Plan(Action.DESTROY, items, errors=("--thread needs exactly one target",))
    assert blocked.allowed == []  # a plan-level error allows nothing
    assert blocked.refused == [items[1]]  # ... while the per-target refusals stay as they are
    assert blocked.summary() == "destroy 2 targets (0 allowed, 2 refused)"


# --------------------------------------------------------------------------- helpers


def _inst(state: NormalState) -> Instance:
    return Instance(provider="dock", instance_id="c-1", raw_state=state.value, state=state)


@pytest.mark.parametrize(
    ("state", "leon"),
    [
        (NormalState.RUNNING, "running"),
        (NormalState.PAUSED, "paused"),
        (NormalState.TRANSITIONING, "unknown"),
        (NormalState.UNKNOWN, "unknown"),
        (NormalState.STOPPED, None),
        (NormalState.GONE, None),
    ],
)
def test_leon_state_of_an_adopted_instance(state: NormalState, leon: str | None) -> None:
    assert leon_state(_inst(state)) == leon


def test_one_flattens_and_names_an_empty_exception() -> None:
    assert one(RuntimeError("a\n  b\tc")) == "a b c"
    assert one(TimeoutError()) == "TimeoutError"


def test_clip_keeps_500_and_cuts_longer_with_one_ellipsis() -> None:
    assert clip("x" * 500) == "x" * 500
    assert clip("y" * 501) == "y" * 499 + "…"
    assert len(clip("z" * 2000)) == 500


def test_unknown_text_names_the_action_target_and_both_failures() -> None:
    op = Operation(Action.PAUSE, LEASE)
    text = unknown_text(op, _Unknown("ReadTimeout", "HTTP 503"))
    assert text == (
        "outcome is unknown: the pause of lease-aaaaaaaaaaaa was sent but its response was lost "
        "(ReadTimeout), and reading the instance back failed too (HTTP 503); "
        "check the provider before acting again"
    )
    assert str(_Unknown("a", "b")) == "a; read back: b"
    long = unknown_text(op, _Unknown("E" * 600, "x"))
    assert len(long) == 500 and long.endswith("…")
