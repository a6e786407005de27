"""Exact assertions that kill mutants of the operations service (services/operations.py and its
split-off ops_plan.py) that the broader operations tests let through (docs/mutation.md).

The plan helpers are pure; they are checked on real Targets/Operations with exact strings.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from opcockpit.adapters.ledger.audit import list_audit
from opcockpit.domain.events import Event
from opcockpit.domain.models import Instance, NormalState
from opcockpit.domain.targets import Action, Target
from opcockpit.doubles.daytona import DaytonaDouble
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.ports.provider import Capabilities
from opcockpit.services.history import ACTION_REQUESTED, ACTION_SETTLED
from opcockpit.services.operations import Operations, OpStatus
from opcockpit.services.ops_plan import Gate, Plan, PlanItem, _Unknown, clip, leon_state, one, unknown_text
from opcockpit.services.ops_track import Operation
from opcockpit.wiring import build_adapter, build_collector, build_operations
from tests.operations_support import LeaseSpec, build_db, cockpit, config_for, mutations, query

LEASE = Target("lease", "dock", "c-1", lease_id="lease-aaaaaaaaaaaa")
ORPHAN = Target("orphan", "dock", "stray-1")
UNBOUND = "lease lease-e2b000000001 has no instance bound (LEON binds on first use)"


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


# --------------------------------------------------------------------------- gates, exactly


@pytest.fixture
def e2b() -> Iterator[E2BDouble]:
    with E2BDouble() as d:
        yield d


def _ops(tmp_path: Path, e2b: E2BDouble, **kw: Any) -> Operations:
    db = build_db(tmp_path / "sandbox.db", [LeaseSpec("lease-e2b000000001", "e2b", "sbx-1")])
    config = config_for(db, {"e2b": ("e2b", e2b)})
    off = config.providers["e2b"].model_copy(update={"name": "off", "enabled": False})
    config = config.model_copy(update={"providers": {**config.providers, "off": off}})
    return build_operations(config, operator="alice@testhost", **kw)


def _lease(provider: str = "e2b", instance_id: str | None = "sbx-1") -> Target:
    return Target(
        "lease", provider, instance_id, lease_id="lease-e2b000000001", seen_provider_state="running"
    )


def _orphan(state: str = "running", confirmed: bool | None = None) -> Target:
    return Target("orphan", "e2b", "sbx-9", seen_provider_state=state, confirmed=confirmed)


@pytest.mark.parametrize(
    ("action", "target", "reason"),
    [
        ("pause", _lease("ghost"), "provider 'ghost' is not configured"),
        ("pause", _lease("off"), "provider 'off' is disabled in the config"),
        (
            "pause",
            _lease("local", "leon-x"),
            "provider 'local' is LEON's local provider: it has no API the cockpit can call",
        ),
        ("adopt", _lease(), "lease lease-e2b000000001 is already a lease; adopt applies to orphans"),
        ("adopt", _orphan("stopped"), "instance is stopped: destroy it rather than adopt it"),
        ("adopt", _orphan("gone"), "instance is gone: destroy it rather than adopt it"),
        ("pause", _lease(instance_id=None), UNBOUND),
        ("resume", _lease(instance_id=None), UNBOUND),
        (
            "destroy",
            _orphan(confirmed=False),
            "orphan not confirmed by a GET yet (eventually consistent listing); wait a refresh",
        ),
    ],
)  # fmt: skip
async def test_gate_reasons_are_exact(
    tmp_path: Path, e2b: E2BDouble, action: str, target: Target, reason: str
) -> None:
    ops = _ops(tmp_path, e2b)
    try:
        assert ops.gate(action, target) == Gate(False, reason)
    finally:
        await ops.aclose()


@pytest.mark.parametrize(
    ("action", "target"),
    [
        ("pause", _lease()),
        ("resume", _lease()),
        ("destroy", _lease()),
        ("destroy", _lease(instance_id=None)),  # an unbound lease is destroyed in the DB only
        ("adopt", _orphan("running")),
        ("adopt", _orphan("paused", confirmed=True)),
        ("destroy", _orphan("stopped", confirmed=None)),
    ],
)
async def test_gate_allows(tmp_path: Path, e2b: E2BDouble, action: str, target: Target) -> None:
    ops = _ops(tmp_path, e2b)
    try:
        assert ops.gate(action, target) == Gate(True)
    finally:
        await ops.aclose()


async def test_read_only_gate_closes_everything_but_a_dry_run(tmp_path: Path, e2b: E2BDouble) -> None:
    ops = _ops(tmp_path, e2b, read_only=True)
    try:
        assert ops.gate("pause", _lease()) == Gate(False, "read-only mode: actions are disabled")
        assert ops.gate("pause", _lease(), dry_run=True) == Gate(True)
    finally:
        await ops.aclose()


@pytest.mark.parametrize(
    ("action", "n", "thread", "errors"),
    [
        ("pause", 1, "t-1", ("--thread applies to adopt only",)),
        ("adopt", 2, "t-1", ("a thread has one lease: adopt one target when attaching to a thread",)),
        ("adopt", 1, "  ", ("empty thread id",)),
        ("adopt", 1, "t-1", ()),
        ("adopt", 2, None, ()),
    ],
)
async def test_plan_thread_errors_are_exact(
    tmp_path: Path, e2b: E2BDouble, action: str, n: int, thread: str | None, errors: tuple[str, ...]
) -> None:
    ops = _ops(tmp_path, e2b)
    targets = [Target("orphan", "e2b", f"sbx-{i}", seen_provider_state="running") for i in range(n)]
    try:
        plan = ops.plan(action, targets, thread_id=thread)
        assert plan.errors == errors and plan.thread_id == thread
        assert [i.target for i in plan.items] == targets
        if errors:
            with pytest.raises(ValueError, match="^" + re.escape("; ".join(errors)) + "$"):
                await ops.execute(plan)
    finally:
        await ops.aclose()


# --------------------------------------------------------------------------- run() forwards its options


async def test_run_forwards_dry_run_progress_and_thread(tmp_path: Path, e2b: E2BDouble) -> None:
    iid = e2b.add(state="running").instance_id
    db = build_db(tmp_path / "sandbox.db", [LeaseSpec("lease-e2b000000001", "e2b", iid)])
    ops = build_operations(config_for(db, {"e2b": ("e2b", e2b)}), operator="alice@testhost", read_only=True)
    target = Target("lease", "e2b", iid, lease_id="lease-e2b000000001", seen_desired="running",
                    seen_observed="running", seen_provider_state="running")  # fmt: skip
    stages: list[str] = []
    try:
        # read-only: only a dry run may pass the gate and the execution check
        op = await ops.run("pause", target, dry_run=True, on_progress=lambda o, s: stages.append(s))
        assert op.dry_run is True
        assert (op.status.value, op.message) == (
            "planned",
            f"would pause provider e2b, instance {iid}, lease lease-e2b000000001, thread (none)",
        )
        assert stages == ["checking", "done"]
        refused = await ops.run("pause", target)
        assert (refused.status, refused.message) == (OpStatus.REFUSED, "read-only mode: actions are disabled")
        with pytest.raises(ValueError, match=r"^--thread applies to adopt only$"):
            await ops.run("pause", target, thread_id="m_t-1", dry_run=True)
    finally:
        await ops.aclose()
    assert mutations(e2b) == 0


async def test_capabilities_of_an_unknown_provider_are_the_defaults(tmp_path: Path, e2b: E2BDouble) -> None:
    ops = _ops(tmp_path, e2b)
    try:
        assert ops._caps("ghost") == Capabilities()
        assert ops._eventual("ghost") is False and ops._pause_is_stop("ghost") is False
        assert ops._caps("e2b") == ops.adapter("e2b").capabilities  # type: ignore[union-attr]
    finally:
        await ops.aclose()


# --------------------------------------------------------------------------- aclose


class _BrokenClose:
    """A provider port whose close fails (a dead transport): closing the others must go on."""

    capabilities = Capabilities()

    async def aclose(self) -> None:
        raise RuntimeError("transport already gone")


async def test_aclose_closes_own_adapters_past_a_failing_one(tmp_path: Path, e2b: E2BDouble) -> None:
    db = build_db(tmp_path / "sandbox.db", [])
    config = config_for(db, {"e2b": ("e2b", e2b)})
    real = build_adapter(config.providers["e2b"])
    ops = build_operations(config, adapters={"a-broken": _BrokenClose(), "e2b": real})  # type: ignore[dict-item]
    await ops.aclose()  # does not raise
    assert real._api.http.is_closed


async def test_aclose_leaves_a_shared_collectors_adapters_open(tmp_path: Path, e2b: E2BDouble) -> None:
    e2b.add(state="running")
    db = build_db(tmp_path / "sandbox.db", [])
    config = config_for(db, {"e2b": ("e2b", e2b)})
    collector = build_collector(config)
    ops = build_operations(config, collector=collector)
    try:
        before = await collector.refresh()
        await ops.aclose()
        after = await collector.refresh()  # the collector's adapters still work
        assert [o.key for o in after.orphans] == [o.key for o in before.orphans] and len(after.orphans) == 1
        assert all(p.error is None for p in after.providers)
    finally:
        await collector.aclose()


async def test_kind_facts_come_from_the_built_adapter(tmp_path: Path, e2b: E2BDouble) -> None:
    """Daytona pauses by stopping and lists eventually consistently; E2B does neither. The tracker
    asks Operations for these facts per provider (an archived Daytona sandbox still counts as paused)."""
    with DaytonaDouble() as daytona:
        db = build_db(tmp_path / "sandbox.db", [])
        config = config_for(db, {"dt": ("daytona", daytona), "e2b": ("e2b", e2b)})
        ops = build_operations(config)
        try:
            assert ops.adapter("dt") is not None and ops.adapter("e2b") is not None
            assert ops._pause_is_stop("dt") is True and ops._eventual("dt") is True
            assert ops._pause_is_stop("e2b") is False and ops._eventual("e2b") is False
        finally:
            await ops.aclose()


async def test_wait_converged_without_a_collector_says_what_is_missing(
    tmp_path: Path, e2b: E2BDouble
) -> None:
    ops = _ops(tmp_path, e2b)
    try:
        with pytest.raises(RuntimeError) as info:
            await ops.wait_converged([], 1.0)
        assert str(info.value) == (
            "Operations.wait_converged needs a collector (Operations(config, collector=...))"
        )
    finally:
        await ops.aclose()


# --------------------------------------------------------------------------- the event hook


async def test_actions_emit_requested_then_settled_and_a_failing_hook_fails_nothing(
    tmp_path: Path, e2b: E2BDouble
) -> None:
    iid = e2b.add(state="running").instance_id
    db = build_db(tmp_path / "sandbox.db", [LeaseSpec("lease-e2b000000001", "e2b", iid, thread_id="m_t-1")])
    seen: list[Event] = []

    def hook(event: Event) -> None:
        seen.append(event)
        raise RuntimeError("event ledger is down")  # must not fail or change the action

    c = cockpit(config_for(db, {"e2b": ("e2b", e2b)}), tmp_path / "ledger.db", on_event=hook)
    try:
        gt = await c.collector.refresh()
        (op,) = await c.ops.execute(c.ops.plan("pause", ["lease-e2b000000001"], seen=gt))
        assert op.status is OpStatus.PENDING, op.message
        await c.ops.wait_converged(op, 15.0)
        assert op.status is OpStatus.CONVERGED
    finally:
        await c.close()
    assert [e.type for e in seen] == [ACTION_REQUESTED, ACTION_SETTLED]
    for e in seen:
        assert (e.lease_id, e.instance_id, e.thread_id, e.provider) == (
            "lease-e2b000000001",
            iid,
            "m_t-1",
            "e2b",
        )
        assert (e.after.action, e.after.operator, e.after.op_id) == ("pause", "alice@testhost", op.op_id)
    assert (seen[0].after.status, seen[1].after.status) == ("pending", "converged")
    rows = list_audit(10, path=tmp_path / "ledger.db")
    assert [(r.op_id, r.result, r.convergence) for r in rows] == [(op.op_id, "pending", "converged")]


# ---------------------------------------------------------------- audit rows and the writer's clock


async def test_audit_rows_pause_and_adopt_are_exact_and_leon_writes_use_the_injected_clock(
    tmp_path: Path, e2b: E2BDouble
) -> None:
    iid = e2b.add(state="running").instance_id
    orphan = e2b.add(state="paused").instance_id
    db = build_db(tmp_path / "sandbox.db", [LeaseSpec("lease-e2b000000001", "e2b", iid, thread_id="m_t-1")])
    fixed = datetime(2026, 3, 20, 10, 11, 12, 131415)  # LEON stores naive local time
    ledger = tmp_path / "ledger.db"
    c = cockpit(config_for(db, {"e2b": ("e2b", e2b)}), ledger, writer_clock=lambda: fixed)
    try:
        gt = await c.collector.refresh()
        (pause,) = await c.ops.execute(c.ops.plan("pause", ["lease-e2b000000001"], seen=gt))
        (adopt,) = await c.ops.execute(c.ops.plan("adopt", [f"e2b/{orphan}"], seen=gt))
        assert pause.status is OpStatus.PENDING and adopt.status is OpStatus.PENDING, (
            pause.message,
            adopt.message,
        )
    finally:
        await c.close()
    by_op = {e.op_id: e for e in list_audit(10, path=ledger)}
    p, a = by_op[pause.op_id], by_op[adopt.op_id]
    assert (p.at, p.operator, p.action, p.provider, p.lease_id, p.instance_id, p.thread_id) == (
        pause.started_at, "alice@testhost", "pause", "e2b", "lease-e2b000000001", iid, "m_t-1",
    )  # fmt: skip
    assert (p.read_only, p.dry_run, p.result) == (False, False, "pending")
    assert a.lease_id == adopt.new_lease_id and a.lease_id is not None  # the lease the adopt created
    assert (a.at, a.action, a.instance_id) == (adopt.started_at, "adopt", orphan)
    # LEON's intent rows carry the writer's clock
    stamps = {
        r[0]
        for r in query(db, "SELECT created_at FROM lease_events WHERE lease_id = ?", "lease-e2b000000001")
    }
    assert stamps == {fixed.isoformat()}


async def test_an_unwritable_audit_ledger_refuses_the_action_with_its_reason(
    tmp_path: Path, e2b: E2BDouble
) -> None:
    iid = e2b.add(state="running").instance_id
    db = build_db(tmp_path / "sandbox.db", [LeaseSpec("lease-e2b000000001", "e2b", iid)])
    ledger = tmp_path / "ledger.db"
    c = cockpit(config_for(db, {"e2b": ("e2b", e2b)}), ledger)
    holder = sqlite3.connect(ledger, isolation_level=None)  # another writer holds the ledger
    try:
        gt = await c.collector.refresh()
        c.audit.list(1)  # the ledger exists with its schema before it is locked
        holder.execute("BEGIN EXCLUSIVE")
        (op,) = await c.ops.execute(c.ops.plan("pause", ["lease-e2b000000001"], seen=gt))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await c.close()
    assert op.status is OpStatus.REFUSED
    assert op.message.startswith(f"the audit ledger {ledger} cannot be written (")
    reason = op.message.split(" cannot be written (", 1)[1].split("); refusing", 1)[0]
    assert reason.endswith("database is locked")  # the begin's own reason, not "None"
    # ... and the closing audit write, still locked out, says so too
    assert "); refusing to act without an audit record (audit not written: " in op.message
    assert e2b.instances[iid].state == "running" and mutations(e2b) == 0  # nothing was done


async def test_the_leon_writer_gets_the_configured_busy_timeout(tmp_path: Path, e2b: E2BDouble) -> None:
    ops = _ops(tmp_path, e2b, busy_timeout_s=0.75)
    try:
        assert ops.writer().busy_timeout_s == 0.75  # how long an action waits for LEON's own writes
    finally:
        await ops.aclose()
