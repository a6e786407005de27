"""Issue 16, operator actions: an interrupted action is audited, an action that cannot be audited
does not run, and a lost provider response is settled by reading the instance back.

Real parts only: `python -m opcockpit.cli.ops` subprocesses, LEON-schema sandbox.db files, the
E2B double on 127.0.0.1 with its fault injection (slow / dropped / delayed mutation responses)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.audit import list_audit
from opcockpit.doubles.base import Request
from opcockpit.doubles.docker import DockerDouble
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.services.operations import Action, OpStatus
from opcockpit.settings.config import ProviderConfig
from tests.cli_support import REPO
from tests.operations_support import (
    LeaseSpec,
    assert_leon_invariants,
    build_db,
    cockpit,
    config_for,
    events,
    lease_row,
    mutations,
    sha,
)
from tests.test_cli_ops import Env

LID = "lease-e2b000000001"
WAIT = 15.0  # upper bound for waits; never asserted as a duration


@pytest.fixture
def env(tmp_path: Path):
    with E2BDouble(api_key="test-key") as e2b, DockerDouble(flavor="docker") as docker:
        yield Env(tmp_path, e2b, docker)


def _deletes(double: E2BDouble) -> int:
    return sum(n for key, n in double.requests_by_route.items() if key.startswith("DELETE "))


def _start(env: Env, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "opcockpit.cli.ops", *args, "--config", str(env.config)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env.env, cwd=str(REPO),
    )  # fmt: skip


def _wait_for(predicate, what: str, proc: subprocess.Popen[str] | None = None) -> None:
    """Poll until `predicate()` (a bound, not a timing assertion)."""
    end = time.monotonic() + 60
    while not predicate():
        if proc is not None and proc.poll() is not None:
            out, errs = proc.communicate()
            raise AssertionError(f"process ended before {what}: {proc.returncode}\n{out}\n{errs}")
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


# --------------------------------------------------------------------------- 1. interrupted actions


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_a_slow_delete_leaves_an_interrupted_audit_row(
    env: Env, sig: signal.Signals, code: int
) -> None:
    env.e2b.faults.mutation_delay_s = 60.0  # the DELETE hangs at the provider until the signal
    proc = _start(env, "destroy", "--yes", LID)
    try:
        _wait_for(lambda: _deletes(env.e2b) >= 1, "the DELETE to reach the provider", proc)
        proc.send_signal(sig)
        out, errs = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, out + errs
    assert "interrupted" in errs and "opcockpit audit" in errs
    (entry,) = list_audit(10, path=env.ledger)
    assert (entry.action, entry.lease_id, entry.instance_id, entry.thread_id) == (
        "destroy", LID, env.running, "t-one",
    )  # fmt: skip
    assert entry.result == "interrupted" and "outcome at the provider is unknown" in (entry.error or "")
    assert entry.before is not None and entry.before["desired_state"] == "running"
    assert entry.operator.count("@") == 1 and entry.duration_ms is not None
    shown = env.run("audit")
    assert shown.returncode == 0 and "interrupted" in shown.stdout and LID in shown.stdout
    # the intent is LEON's record that someone asked; it stays (the outcome is unknown), and
    # LEON is told to probe before trusting the row
    row = lease_row(env.db, LID)
    assert (row["desired_state"], row["needs_refresh"], row["current_instance_id"]) == (
        "destroyed", 1, env.running,
    )  # fmt: skip
    assert "interrupted" in row["last_error"] and "outcome unknown" in row["last_error"]
    assert_leon_invariants(env.db)


def test_a_killed_action_stays_visible_as_started_in_the_audit(env: Env) -> None:
    env.e2b.faults.mutation_delay_s = 60.0
    proc = _start(env, "pause", LID)
    try:
        _wait_for(lambda: mutations(env.e2b) >= 1, "the pause to reach the provider", proc)
        proc.kill()  # SIGKILL: no handler runs; only the row written before the call remains
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    (entry,) = list_audit(10, path=env.ledger)
    assert (entry.action, entry.lease_id, entry.result, entry.outcome) == ("pause", LID, "started", None)
    assert entry.before is not None and entry.before["desired_state"] == "running"
    shown = env.run("audit")
    assert shown.returncode == 0, shown.stderr
    (line,) = [ln for ln in shown.stdout.splitlines() if LID in ln]
    assert "started (unsettled)" in line and "never completed" in line
    as_json = json.loads(env.run("audit", "--format", "json").stdout)
    assert as_json[0]["result"] == "started"


@pytest.mark.parametrize("breakage", ["corrupt", "not-a-file", "no-directory"])
def test_an_action_that_cannot_be_audited_does_not_run(env: Env, tmp_path: Path, breakage: str) -> None:
    ledger = tmp_path / "broken" / "ledger.db"
    ledger.parent.mkdir()
    if breakage == "corrupt":
        ledger.write_bytes(b"this is not an SQLite database at all; " * 200)
    elif breakage == "not-a-file":
        ledger.mkdir()
    else:  # the ledger's directory is a regular file: nothing can be created below it
        ledger = tmp_path / "broken" / "file" / "ledger.db"
        ledger.parent.write_text("a file where the ledger directory should be")
    env.env["OPCOCKPIT_LEDGER"] = str(ledger)
    snapshot = sha(env.db)
    r = env.run("destroy", "--yes", LID, f"docker/{env.orphan}")
    assert r.returncode == 4, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(ledger) in lines[0] and "audit" in lines[0], r.stderr
    assert "refusing" in lines[0]
    assert mutations(env.e2b) == 0 and mutations(env.docker) == 0
    assert env.running in env.e2b.instances and env.orphan in env.docker.instances
    assert sha(env.db) == snapshot
    # a dry run changes nothing: it needs no audit row to be safe
    assert env.run("pause", "--dry-run", LID).returncode == 0


async def test_the_audit_row_exists_before_the_provider_is_called(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    with E2BDouble() as e2b:
        iid = e2b.add(state="running").instance_id
        db = build_db(tmp_path / "sandbox.db", [LeaseSpec(LID, "e2b", iid, thread_id="t-one")])
        c = cockpit(config_for(db, {"e2b": ("e2b", e2b)}), ledger)
        seen: list[list[dict]] = []

        def at_delete(request: Request) -> None:
            if request.method == "DELETE":  # what an auditor finds while the DELETE is in flight
                seen.append([e.as_dict() for e in list_audit(10, path=ledger)])

        e2b.faults.on_request = at_delete
        try:
            gt = await c.collector.refresh()
            (op,) = await c.ops.execute(c.ops.plan(Action.DESTROY, [LID], seen=gt))
            assert op.status is OpStatus.PENDING, op.message
        finally:
            await c.close()
    (during,) = seen
    (row,) = during
    assert (row["result"], row["op_id"], row["lease_id"], row["thread_id"]) == (
        "started",
        op.op_id,
        LID,
        "t-one",
    )
    assert row["before"]["desired_state"] == "running" and row["after"] is None
    (entry,) = list_audit(10, path=ledger)  # the same row, settled: not a second one
    assert (entry.result, entry.outcome, entry.op_id) == ("pending", "done", op.op_id)
    assert entry.after is not None and entry.after["desired_state"] == "destroyed"
    assert entry.duration_ms is not None


async def test_core_refuses_when_the_audit_row_cannot_be_written(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    ledger.write_bytes(b"garbage, not a ledger " * 100)
    with E2BDouble() as e2b:
        iid = e2b.add(state="running").instance_id
        db = build_db(tmp_path / "sandbox.db", [LeaseSpec(LID, "e2b", iid)])
        orphan = e2b.add(state="running").instance_id
        c = cockpit(config_for(db, {"e2b": ("e2b", e2b)}), ledger)
        snapshot = sha(db)
        try:
            gt = await c.collector.refresh()
            for action, ref in (
                (Action.PAUSE, LID),
                (Action.DESTROY, f"e2b/{orphan}"),
                (Action.ADOPT, orphan),
            ):
                (op,) = await c.ops.execute(c.ops.plan(action, [ref], seen=gt))
                assert op.status is OpStatus.REFUSED, (action, op.message)
                assert str(ledger) in op.message and "audit" in op.message
        finally:
            await c.close()
        assert mutations(e2b) == 0 and sha(db) == snapshot


# --------------------------------------------------------------------------- 2. lost responses


def _short_timeout(config, e2b: E2BDouble, timeout_s: float = 0.5):
    config.providers["e2b"] = ProviderConfig(
        name="e2b", kind="e2b", api_url=e2b.url, api_key="test-key", retries=0, timeout_s=timeout_s
    )
    return config


@pytest.mark.parametrize("how", ["dropped", "too-late"])
async def test_destroy_whose_response_is_lost_is_settled_by_reading_back(tmp_path: Path, how: str) -> None:
    ledger = tmp_path / "ledger.db"
    with E2BDouble() as e2b:
        iid = e2b.add(state="running").instance_id
        orphan = e2b.add(state="running").instance_id
        db = build_db(tmp_path / "sandbox.db", [LeaseSpec(LID, "e2b", iid, thread_id="t-one")])
        c = cockpit(_short_timeout(config_for(db, {"e2b": ("e2b", e2b)}), e2b), ledger)
        try:
            gt = await c.collector.refresh()
            if how == "dropped":
                e2b.faults.drop_mutation_response = True
            else:
                e2b.faults.mutation_response_delay_s = 3.0  # beyond the 0.5 s client timeout
            lease_op, orphan_op = await c.ops.execute(
                c.ops.plan(Action.DESTROY, [LID, f"e2b/{orphan}"], seen=gt)
            )
            assert iid not in e2b.instances and orphan not in e2b.instances
            for op in (lease_op, orphan_op):
                assert op.status is OpStatus.PENDING and op.outcome == "done", op.message
                assert "response" in op.message and "read back" in op.message
            row = lease_row(db, LID)
            assert (row["desired_state"], row["observed_state"], row["current_instance_id"]) == (
                "destroyed", "detached", None,
            )  # fmt: skip
            assert row["needs_refresh"] == 0 and row["last_error"] is None
            assert events(db, LID)[-1]["event_type"] == "observe.status"
            e2b.faults.clear()
            await c.ops.wait_converged([lease_op, orphan_op], WAIT)
            assert lease_op.status is OpStatus.CONVERGED and orphan_op.status is OpStatus.CONVERGED
            assert_leon_invariants(db)
        finally:
            await c.close()
    by_op = {a.op_id: a for a in list_audit(10, path=ledger)}
    assert by_op[lease_op.op_id].result == "pending" and by_op[lease_op.op_id].convergence == "converged"


async def test_pause_whose_response_is_lost_converges_from_the_read_back(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    with E2BDouble() as e2b:
        iid = e2b.add(state="running").instance_id
        db = build_db(tmp_path / "sandbox.db", [LeaseSpec(LID, "e2b", iid)])
        c = cockpit(_short_timeout(config_for(db, {"e2b": ("e2b", e2b)}), e2b), ledger)
        try:
            gt = await c.collector.refresh()
            e2b.faults.drop_mutation_response = True
            (op,) = await c.ops.execute(c.ops.plan(Action.PAUSE, [LID], seen=gt))
            assert e2b.instances[iid].state == "paused"
            assert op.status is OpStatus.PENDING and op.outcome == "done", op.message
            row = lease_row(db, LID)
            assert (row["desired_state"], row["observed_state"], row["needs_refresh"]) == (
                "paused",
                "paused",
                0,
            )
            e2b.faults.clear()
            await c.ops.wait_converged(op, WAIT)
            assert op.status is OpStatus.CONVERGED
        finally:
            await c.close()


async def test_unavailable_and_still_running_at_read_back_is_a_failure(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    with E2BDouble() as e2b:
        iid = e2b.add(state="running").instance_id
        db = build_db(tmp_path / "sandbox.db", [LeaseSpec(LID, "e2b", iid)])
        c = cockpit(config_for(db, {"e2b": ("e2b", e2b)}), ledger)
        try:
            gt = await c.collector.refresh()

            def hook(op, stage: str) -> None:
                if stage == "intent":  # a 503 for the DELETE only: not performed
                    e2b.faults.error_status, e2b.faults.error_times = 503, 1

            (op,) = await c.ops.execute(c.ops.plan(Action.DESTROY, [LID], seen=gt), on_progress=hook)
            assert iid in e2b.instances
            assert op.status is OpStatus.FAILED and op.message.startswith(f"Failed to destroy lease {LID}: ")
            assert "still running" in op.message
            row = lease_row(db, LID)
            assert (row["desired_state"], row["needs_refresh"]) == ("running", 1)  # rolled back, LEON's way
            assert_leon_invariants(db)
        finally:
            await c.close()


async def test_lost_response_and_failing_read_back_is_unknown_not_rolled_back(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    with E2BDouble() as e2b:
        iid = e2b.add(state="running").instance_id
        db = build_db(tmp_path / "sandbox.db", [LeaseSpec(LID, "e2b", iid)])
        c = cockpit(_short_timeout(config_for(db, {"e2b": ("e2b", e2b)}), e2b), ledger)

        def break_after_delete(request: Request) -> None:
            if request.method == "DELETE":  # every later request (the read-back GET) answers 503
                e2b.faults.error_status = 503

        try:
            gt = await c.collector.refresh()
            e2b.faults.drop_mutation_response = True
            e2b.faults.on_request = break_after_delete
            (op,) = await c.ops.execute(c.ops.plan(Action.DESTROY, [LID], seen=gt))
            assert op.status is OpStatus.UNKNOWN, op.message
            assert "outcome is unknown" in op.message and op.outcome is None
            assert c.ops.tracker.pending() == []
            row = lease_row(db, LID)
            # not rolled back (it may well be gone), but LEON is told to look again
            assert (row["desired_state"], row["needs_refresh"], row["current_instance_id"]) == (
                "destroyed", 1, iid,
            )  # fmt: skip
            assert "outcome unknown" in row["last_error"]
            last = events(db, LID)[-1]
            assert last["event_type"] == "intent.destroy" and last["error"] == row["last_error"]
            assert_leon_invariants(db)
        finally:
            await c.close()
    (entry,) = list_audit(5, path=ledger)
    assert entry.result == "unknown" and "unknown" in (entry.error or "")


def test_cli_says_the_outcome_is_unknown_and_exits_4(env: Env) -> None:
    def break_after_delete(request: Request) -> None:
        if request.method == "DELETE":
            env.e2b.faults.error_status = 503

    env.e2b.faults.drop_mutation_response = True
    env.e2b.faults.on_request = break_after_delete
    r = env.run("destroy", "--yes", LID, "--format", "json")
    assert r.returncode == 4, r.stdout + r.stderr
    (op,) = json.loads(r.stdout)["operations"]
    assert op["status"] == "unknown"
    assert any("outcome is unknown" in line and LID in line for line in r.stderr.splitlines()), r.stderr
    assert lease_row(env.db, LID)["desired_state"] == "destroyed"
