"""Opt-in `[serve] leon_provider_events = true`: each newly stored webhook also gets LEON's own
`provider_events` row, written LEON's way (event_type from the payload, the payload as JSON,
`matched_lease_id` from the lease match, NULL when nothing matches, naive local `created_at`);
a retry adds no second row; off by default; a sandbox.db without the (lazily created) table gets
no DDL and the delivery is still stored. Real LEON sandbox.db, the real receiver app over ASGI."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from opcockpit.adapters.leon.schema import create_sandbox_db
from opcockpit.adapters.webhooks.verify import e2b_signature
from opcockpit.settings.models import CockpitConfig
from opcockpit.wiring import build_webhook_receiver
from tests.fixtures.leon_db import add_lease

SECRET = "e2b-leon-log-secret-0123456789"


def _db(tmp: Path, *, optional: bool = True) -> Path:
    db = tmp / "sandbox.db"
    conn = create_sandbox_db(str(db), optional=optional)
    add_lease(conn, "lease-1", "e2b", current_instance_id="sbx-1", observed_state="running")
    conn.commit()
    conn.close()
    return db


def _signed(event_id: str, sandbox: str, kind: str) -> tuple[bytes, dict[str, str]]:
    payload = {"version": "v1", "id": event_id, "type": kind, "sandboxId": sandbox,
               "timestamp": datetime.now(UTC).isoformat()}  # fmt: skip
    body = json.dumps(payload).encode()
    return body, {"content-type": "application/json", "e2b-signature": e2b_signature(SECRET, body)}


async def _post_all(tmp: Path, db: Path, *, leon: bool | None) -> tuple[list[int], dict[str, Any]]:
    serve = {} if leon is None else {"leon_provider_events": leon}
    cfg = CockpitConfig.model_validate({
        "sources": {"sandbox_db": str(db)}, "serve": serve,
        "webhooks": {"e2b": {"kind": "e2b", "secret": SECRET}},
    })  # fmt: skip
    receiver = build_webhook_receiver(cfg, ledger_path=tmp / "ledger.db")
    await receiver.start()
    try:
        first = _signed("ev-1", "sbx-1", "sandbox.lifecycle.paused")
        deliveries = [first, _signed("ev-2", "sbx-unknown", "sandbox.lifecycle.killed"), first]  # a retry
        transport = httpx.ASGITransport(app=receiver.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as c:
            statuses = []
            for body, headers in deliveries:
                statuses.append((await c.post("/webhooks/e2b", content=body, headers=headers)).status_code)
            health = (await c.get("/healthz")).json()
    finally:
        await receiver.stop()
    return statuses, health


def _leon_rows(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT provider_name, instance_id, event_type, payload_json, matched_lease_id, created_at"
            " FROM provider_events ORDER BY event_id"
        ).fetchall()
    finally:
        conn.close()


async def test_stored_webhooks_get_leons_row_once(tmp_path: Path) -> None:
    db = _db(tmp_path)
    statuses, health = await _post_all(tmp_path, db, leon=True)
    assert statuses == [202, 202, 200] and "leon_provider_events" not in health
    rows = _leon_rows(db)
    assert [(*r[:3], r[4]) for r in rows] == [
        ("e2b", "sbx-1", "sandbox.lifecycle.paused", "lease-1"),
        ("e2b", "sbx-unknown", "sandbox.lifecycle.killed", None),
    ]
    assert json.loads(rows[0][3])["id"] == "ev-1"
    created = datetime.fromisoformat(rows[0][5])
    assert created.tzinfo is None  # LEON's naive local time


async def test_off_by_default_and_no_ddl_on_a_db_without_the_table(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    db = _db(tmp_path / "a")
    assert (await _post_all(tmp_path / "a", db, leon=None))[0] == [202, 202, 200]
    assert _leon_rows(db) == []
    (tmp_path / "b").mkdir()
    bare = _db(tmp_path / "b", optional=False)
    statuses, health = await _post_all(tmp_path / "b", bare, leon=True)
    assert statuses == [202, 202, 200] and "leon_provider_events" not in health
    conn = sqlite3.connect(bare)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert "provider_events" not in tables
