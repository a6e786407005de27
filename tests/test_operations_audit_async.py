"""The audit write (sqlite, 5 s busy timeout) must not block the event loop: while another
connection holds the ledger's write lock, the cockpit's other tasks keep running.

Real parts: a LEON-schema sandbox.db, the E2B double on 127.0.0.1, a real ledger file locked by a
second sqlite connection. The lock is released by a task on the same event loop, only after that
task has ticked a number of times *after* the operation reached its audit write: with a blocking
audit the ticker cannot tick, the lock is never released, and the audit gives up ("audit not
written") after the busy timeout.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from opcockpit.adapters.ledger.audit import AuditLog, list_audit
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.services.operations import Action, Operation, OpStatus
from tests.operations_support import LeaseSpec, build_db, cockpit, config_for

TICKS_WHILE_LOCKED = 25  # ticker rounds (~20 ms each) the ledger stays locked during the audit write


async def test_audit_write_runs_off_the_event_loop(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    AuditLog(ledger).list()  # create the ledger and its table first (schema writes are not the point)
    with E2BDouble() as e2b:
        iid = e2b.add(state="running").instance_id
        db = build_db(tmp_path / "sandbox.db", [LeaseSpec("lease-e2b000000001", "e2b", iid, thread_id="t-1")])
        c = cockpit(config_for(db, {"e2b": ("e2b", e2b)}), ledger)
        locker = sqlite3.connect(ledger, isolation_level=None)
        try:
            gt = await c.collector.refresh()
            plan = c.ops.plan(Action.PAUSE, ["lease-e2b000000001"], seen=gt)

            reached_audit = asyncio.Event()
            ticks_after_audit_started = 0
            released = False

            def progress(_op: Operation, stage: str) -> None:
                if stage == "intent":  # after the audit row was begun: lock the ledger for its end
                    locker.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
                if stage == "recorded":  # the last stage before the audit write
                    reached_audit.set()

            async def ticker() -> None:
                nonlocal ticks_after_audit_started, released
                await reached_audit.wait()
                while ticks_after_audit_started < TICKS_WHILE_LOCKED:
                    await asyncio.sleep(0.02)
                    ticks_after_audit_started += 1
                locker.execute("ROLLBACK")  # only a running loop ever lets the audit through
                released = True

            tick_task = asyncio.create_task(ticker())
            (op,) = await c.ops.execute(plan, on_progress=progress)
            ticks_at_done = ticks_after_audit_started
            await asyncio.wait_for(tick_task, 10)
        finally:
            if locker.in_transaction:
                locker.execute("ROLLBACK")
            locker.close()
            await c.close()

    assert op.status is OpStatus.PENDING and op.outcome == "done", op.message
    assert "audit not written" not in op.message, op.message
    # the loop serviced the ticker while the operation sat in its audit write
    assert released and ticks_at_done == TICKS_WHILE_LOCKED
    (entry,) = list_audit(10, path=ledger)
    assert (entry.op_id, entry.action, entry.result) == (op.op_id, "pause", "pending")
