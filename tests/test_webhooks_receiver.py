"""`opcockpit serve` end to end on loopback: a real Uvicorn server, the E2B double sending signed
lifecycle webhooks, the real delivery store and event ledger, a real LEON sandbox.db."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from standardwebhooks import Webhook

from opcockpit.adapters.ledger.events import EventLog
from opcockpit.adapters.leon.schema import create_sandbox_db
from opcockpit.adapters.providers.e2b_webhooks import E2BWebhooks
from opcockpit.adapters.webhooks.verify import e2b_signature
from opcockpit.domain.events import EventQuery
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.settings.models import CockpitConfig
from opcockpit.wiring import build_webhook_receiver
from tests.fixtures.leon_db import add_lease

SECRET = "e2b-signing-secret-abcdef012345"
WHSEC = "whsec_" + base64.b64encode(b"daytona-signing-key-32-bytes!!!!").decode()


class Served:
    def __init__(self, tmp: Path, instance_id: str) -> None:
        db = tmp / "sandbox.db"
        if not db.exists():  # a restart keeps the same files
            conn = create_sandbox_db(str(db))
            add_lease(conn, "lease-1", "e2b", current_instance_id=instance_id, observed_state="running")
            conn.commit()
            conn.close()
        self.ledger = tmp / "ledger.db"
        cfg = CockpitConfig.model_validate({
            "sources": {"sandbox_db": str(db)},
            "webhooks": {
                "e2b": {"kind": "e2b", "secret": SECRET},
                "daytona": {"kind": "daytona", "secret": WHSEC, "max_body_bytes": 4096},
            },
        })  # fmt: skip
        self.receiver = build_webhook_receiver(cfg, ledger_path=self.ledger)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.receiver.app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def events(self) -> list[Any]:
        log = EventLog(self.ledger)
        try:
            return log.query(EventQuery(types=("provider.event",)))
        finally:
            log.close()

    def stored(self) -> int:
        """Rows in the ledger holding a webhook idempotency key (one per stored delivery)."""
        conn = sqlite3.connect(self.ledger)
        try:
            sql = "SELECT count(*) FROM events WHERE idem_key LIKE 'webhook:%'"
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics").text


@pytest.fixture
def double() -> Iterator[E2BDouble]:
    with E2BDouble() as d:
        yield d  # type: ignore[misc]


def test_e2b_double_sends_signed_webhooks_stored_exactly_once(tmp_path: Path, double: E2BDouble) -> None:
    inst = double.add(state="running", labels={"lease_id": "lease-1"})
    srv = Served(tmp_path, inst.instance_id)
    try:
        client = E2BWebhooks(double.url, "test-key")
        hook = client.register(f"{srv.url}/webhooks/e2b", SECRET)
        assert "signatureSecret" not in hook and [h["id"] for h in client.list()] == [hook["id"]]
        double.set_state(inst.instance_id, "paused")
        double.set_state(inst.instance_id, "running")
        first = double.deliver()
        again = double.deliver()  # the provider retries every delivery (fresh delivery ids)
        assert first == [202, 202, 202] and again == [200, 200, 200]
        events = srv.events()
        assert len(events) == 3 and srv.stored() == 3
        assert {e.data["event_type"] for e in events} == {
            "sandbox.lifecycle.created", "sandbox.lifecycle.paused", "sandbox.lifecycle.resumed"}  # fmt: skip
        assert all(e.lease_id == "lease-1" and e.instance_id == inst.instance_id for e in events)
        assert all(e.source == "provider_event" and e.provider == "e2b" for e in events)
        m = srv.metrics()
        assert 'opcockpit_webhooks_stored_total{provider="e2b"} 3' in m
        assert 'opcockpit_webhooks_duplicate_total{provider="e2b"} 3' in m
        client.delete(hook["id"])
        assert client.list() == []
        client.close()
    finally:
        srv.stop()
    # restart: a retried delivery is still stored once (the delivery index is durable)
    srv = Served(tmp_path, inst.instance_id)
    try:
        assert double.send_webhook(f"{srv.url}/webhooks/e2b", SECRET, double.events_log[0]) == 200
        assert len(srv.events()) == 3
    finally:
        srv.stop()


def test_bad_deliveries_are_refused_counted_and_stored_nowhere(tmp_path: Path, double: E2BDouble) -> None:
    inst = double.add(state="running")
    srv = Served(tmp_path, inst.instance_id)
    try:
        body, headers = double.webhook_request(SECRET, double.events_log[0])
        url = f"{srv.url}/webhooks/e2b"

        def post(path: str = url, data: bytes = body, **h: str) -> httpx.Response:
            return httpx.post(path, content=data, headers={**headers, **h})

        assert post(**{"e2b-signature": e2b_signature("not-the-secret", body)}).status_code == 401
        unsigned = {k: v for k, v in headers.items() if k != "e2b-signature"}
        assert httpx.post(url, content=body, headers=unsigned).status_code == 401
        assert post(**{"content-type": "text/plain"}).status_code == 415
        assert post(f"{srv.url}/webhooks/nobody").status_code == 404
        big = json.dumps({"event": "x", "pad": "a" * 5000}).encode()
        now = datetime.now(UTC)
        stamp = str(int(now.timestamp()))
        svix = {"content-type": "application/json", "svix-id": "m1", "svix-timestamp": stamp,
                "svix-signature": Webhook(WHSEC).sign("m1", now, big)}  # fmt: skip
        assert httpx.post(f"{srv.url}/webhooks/daytona", content=big, headers=svix).status_code == 413
        old = datetime.fromtimestamp(time.time() - 900, UTC)
        small = b'{"event":"sandbox.created","id":"sb1"}'
        stale = {
            **svix,
            "svix-timestamp": str(int(old.timestamp())),
            "svix-signature": Webhook(WHSEC).sign("m1", old, small),
        }
        assert httpx.post(f"{srv.url}/webhooks/daytona", content=small, headers=stale).status_code == 401
        # replayed: a known delivery id with another (validly signed) body
        ok = {**svix, "svix-signature": Webhook(WHSEC).sign("m1", now, small)}
        assert httpx.post(f"{srv.url}/webhooks/daytona", content=small, headers=ok).status_code == 202
        other = b'{"event":"sandbox.created","id":"sb2"}'
        replay = {**svix, "svix-signature": Webhook(WHSEC).sign("m1", now, other)}
        r = httpx.post(f"{srv.url}/webhooks/daytona", content=other, headers=replay)
        assert r.status_code == 409 and r.json()["error"] == "replayed"
        assert SECRET not in r.text
        m = srv.metrics()
        for provider, reason in [("e2b", "bad_signature"), ("e2b", "unsigned"), ("e2b", "content_type"),
                                 ("-", "unknown_provider"), ("daytona", "too_large"), ("daytona", "stale"),
                                 ("daytona", "replayed")]:  # fmt: skip
            assert f'opcockpit_webhooks_rejected_total{{provider="{provider}",reason="{reason}"}} 1' in m
        assert [e.provider for e in srv.events()] == ["daytona"] and srv.stored() == 1  # only the good one
        assert httpx.get(f"{srv.url}/healthz").json()["status"] == "ok"
    finally:
        srv.stop()


def test_slow_ledger_answers_503_with_retry_after_then_stores_once(tmp_path: Path, double: E2BDouble) -> None:
    inst = double.add(state="running")
    srv = Served(tmp_path, inst.instance_id)
    srv.receiver.ack_timeout_s = 0.3
    try:
        body, headers = double.webhook_request(SECRET, double.events_log[0])
        blocker = sqlite3.connect(srv.ledger, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the ledger: the ledger is slow
        try:
            r = httpx.post(f"{srv.url}/webhooks/e2b", content=body, headers=headers)
            assert r.status_code == 503 and r.headers["retry-after"] and r.json()["error"] == "overloaded"
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        for _ in range(50):  # the sender retries until stored
            r = httpx.post(f"{srv.url}/webhooks/e2b", content=body, headers=headers)
            if r.status_code != 503:
                break
            asyncio.run(asyncio.sleep(0.1))
        assert r.status_code in (200, 202)
        assert len(srv.events()) == 1 and srv.stored() == 1
    finally:
        srv.stop()
