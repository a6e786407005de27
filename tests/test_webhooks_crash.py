"""Exactly once across a crash (issue 13): a real `opcockpit serve` process receives signed E2B
lifecycle webhooks from the E2B double's senders (several at once), is killed with SIGKILL
mid-stream, restarted on the same ledger, and the provider retries every delivery: each event is
in the ledger exactly once, every retry is answered 2xx. On a SQLite ledger and on a real
PostgreSQL ledger (tests/fixtures/postgres.py), the same test."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from opcockpit.adapters.ledger.events import EventLog
from opcockpit.adapters.leon.schema import create_sandbox_db
from opcockpit.adapters.providers.e2b_webhooks import E2BWebhooks
from opcockpit.domain.events import EventQuery
from opcockpit.doubles.e2b import E2BDouble
from tests.cli_support import REPO, clean_env
from tests.fixtures.leon_db import add_lease
from tests.fixtures.postgres import pg_server  # noqa: F401

SECRET = "e2b-crash-test-signing-secret-0123"
INSTANCES = 60  # x (created, paused, resumed) = 180 deliveries
SENDERS = 4


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """`python -m opcockpit.cli serve` in its own process (its own process group)."""

    def __init__(self, tmp: Path, ledger: str, port: int) -> None:
        self.tmp, self.ledger, self.port = tmp, ledger, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = clean_env(self.tmp, E2B_HOOK_SECRET=SECRET)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opcockpit.cli", "serve", "--config", str(self.tmp / "cockpit.toml"),
             "--listen", f"127.0.0.1:{self.port}", "--ledger", self.ledger],
            env=env, cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.proc.stderr.read().decode() if self.proc.stderr else ""
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).json()["ledger"] == "ok":
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "opcockpit serve did not come up"
            time.sleep(0.1)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


def _config(tmp: Path, instance_id: str) -> None:
    db = tmp / "sandbox.db"
    conn = create_sandbox_db(str(db))
    add_lease(conn, "lease-1", "e2b", current_instance_id=instance_id, observed_state="running")
    conn.commit()
    conn.close()
    (tmp / "cockpit.toml").write_text(
        f'[sources]\nsandbox_db = "{db}"\n\n[webhooks.e2b]\nkind = "e2b"\nsecret_env = "E2B_HOOK_SECRET"\n'
    )


COUNT_SQL = "SELECT count(*) FROM events WHERE type = 'provider.event'"


def _count_rows(ledger: str) -> Callable[[], int]:
    """Stored webhooks, read beside the receiver (not through it: it is about to be killed)."""
    if ledger.startswith("postgresql://"):
        import psycopg

        def pg() -> int:
            with psycopg.connect(ledger) as conn:
                row = conn.execute(COUNT_SQL).fetchone()
                return int(row[0]) if row else 0

        return pg

    def lite() -> int:
        conn = sqlite3.connect(ledger, timeout=5)
        try:
            return int(conn.execute(COUNT_SQL).fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0
        finally:
            conn.close()

    return lite


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return request.getfixturevalue("pg_server").fresh_db()


def test_killed_receiver_restarted_stores_every_retried_delivery_once(tmp_path: Path, ledger: str) -> None:
    with E2BDouble() as double:
        instances = [double.add(state="running") for _ in range(INSTANCES)]
        for inst in instances:
            double.set_state(inst.instance_id, "paused")
            double.set_state(inst.instance_id, "running")
        entries = list(double.events_log)
        assert len(entries) == 3 * INSTANCES
        _config(tmp_path, instances[0].instance_id)
        serve = Serve(tmp_path, ledger, _port())
        serve.start()
        count = _count_rows(ledger)
        try:
            client = E2BWebhooks(double.url, "test-key")
            client.register(f"{serve.url}/webhooks/e2b", SECRET)
            client.close()
            first: list[int] = []

            def send(part: list[dict]) -> None:  # type: ignore[type-arg]
                first.extend(double.deliver(part, retries=0, timeout=2.0))

            senders = [threading.Thread(target=send, args=(entries[i::SENDERS],)) for i in range(SENDERS)]
            for t in senders:
                t.start()
            deadline = time.monotonic() + 60
            while count() < len(entries) // 3:  # mid-stream: a third stored, the rest in flight
                assert time.monotonic() < deadline, "deliveries were not being stored"
                time.sleep(0.01)
            serve.kill9()
            for t in senders:
                t.join(60)
            stored_before = count()
            assert 0 < stored_before < len(entries), "the kill did not land mid-stream"
            assert len(first) == len(entries) and sum(1 for s in first if 200 <= s < 300) < len(entries)

            serve.start()  # same ledger, same port; the provider retries every delivery
            again = double.deliver()
            assert all(s in (200, 202) for s in again), sorted(set(again))
            assert again.count(202) == len(entries) - stored_before  # only the missing ones were new
        finally:
            serve.stop()
    log = EventLog(ledger)
    try:
        events = log.query(EventQuery(types=("provider.event",), limit=None))
    finally:
        log.close()
    keys = [e.data["delivery_key"] for e in events]
    assert len(keys) == len(set(keys)) == len(entries)  # nothing lost, nothing twice
    assert set(keys) == {e["id"] for e in entries}
    matched = [e for e in events if e.instance_id == instances[0].instance_id]
    assert len(matched) == 3 and all(e.lease_id == "lease-1" for e in matched)
