# ruff: noqa: F811  (pytest fixtures imported by name)
"""`opcockpit serve` on a team's PostgreSQL (issue 12 + 13): the platform source is LEON's tables in
PostgreSQL (`[sources] kind = "postgres"`, no sandbox.db at all) and the ledger is PostgreSQL.
A signed E2B webhook is matched to its lease through the PostgreSQL source, stored once in the
PostgreSQL ledger, and a retry is answered 2xx without a second row. Real server
(tests/fixtures/postgres.py), the real receiver app over ASGI."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import httpx

from opcockpit.adapters.ledger.events import EventLog
from opcockpit.adapters.webhooks.verify import e2b_signature
from opcockpit.demo.fleet import generate_fleet
from opcockpit.domain.events import EventQuery
from opcockpit.settings.models import CockpitConfig
from opcockpit.wiring import build_webhook_receiver
from tests.fixtures.postgres import PgServer, pg_server  # noqa: F401
from tests.test_pg_source import copy_fleet

SECRET = "e2b-pg-signing-secret-0123456789"


def _signed(instance_id: str, event_id: str) -> tuple[bytes, dict[str, str]]:
    payload = {"version": "v1", "id": event_id, "type": "sandbox.lifecycle.paused", "sandboxId": instance_id,
               "timestamp": datetime.now(UTC).isoformat()}  # fmt: skip
    body = json.dumps(payload).encode()
    sig = e2b_signature(SECRET, body)
    return body, {"content-type": "application/json", "e2b-signature-version": "v1", "e2b-signature": sig,
                  "e2b-delivery-id": "d-" + event_id}  # fmt: skip


async def test_leases_matched_from_the_postgres_source_stored_once_in_the_postgres_ledger(
    tmp_path: Path, pg_server: PgServer
) -> None:
    fleet = generate_fleet(tmp_path / "fleet", leases=80, seed=11, variant="mycel")
    conn = sqlite3.connect(fleet.sandbox_db)
    lease_id, instance_id = conn.execute(
        "SELECT lease_id, current_instance_id FROM sandbox_leases WHERE provider_name = 'e2b'"
        " AND current_instance_id IS NOT NULL ORDER BY lease_id LIMIT 1"
    ).fetchone()
    conn.close()
    source_url, ledger_url = pg_server.fresh_db(), pg_server.fresh_db()
    copy_fleet(fleet.sandbox_db, source_url)
    fleet.sandbox_db.unlink()  # the configured file is gone: only the PostgreSQL source can match
    cfg = CockpitConfig.model_validate({
        "sources": {"kind": "postgres", "url": source_url, "sandbox_db": str(fleet.sandbox_db)},
        "webhooks": {"e2b": {"kind": "e2b", "secret": SECRET}},
    })  # fmt: skip
    receiver = build_webhook_receiver(cfg, ledger_path=ledger_url)
    await receiver.start()
    try:
        transport = httpx.ASGITransport(app=receiver.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            body, headers = _signed(instance_id, "ev-1")
            first = await client.post("/webhooks/e2b", content=body, headers=headers)
            again = {**headers, "e2b-delivery-id": "d-2"}  # E2B retries with a fresh delivery id
            retry = await client.post("/webhooks/e2b", content=body, headers=again)
            other, other_h = _signed("not-a-known-instance", "ev-2")
            unknown = await client.post("/webhooks/e2b", content=other, headers=other_h)
            health = (await client.get("/healthz")).json()
        assert (first.status_code, retry.status_code, unknown.status_code) == (202, 200, 202)
        assert retry.json()["status"] == "duplicate"
        assert health["ledger"] == "ok" and "sandbox_db" not in health  # the source was readable
    finally:
        await receiver.stop()
    log = EventLog(ledger_url)
    try:
        events = log.query(EventQuery(types=("provider.event",), oldest_first=True))
    finally:
        log.close()
    assert [(e.instance_id, e.lease_id) for e in events] == [
        (instance_id, lease_id),
        ("not-a-known-instance", None),
    ]
