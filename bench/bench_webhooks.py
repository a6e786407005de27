"""Webhook receiver under load, on loopback: signed E2B deliveries at a fixed rate into a real
`opcockpit serve` app (Uvicorn thread, real delivery store + event ledger in a temp dir).

    python -m bench.bench_webhooks [--rate 500] [--seconds 60] [--dup-every 10]

Target (issue 13): 500/s for 60 s, 0 lost, 0 duplicated in the ledger, p99 <= 50 ms. Every
`--dup-every`th delivery is sent twice (a provider retry) to exercise dedup. Bounded: the sender
issues exactly rate*seconds deliveries and stops. `SIZES_CAP = 0`: not in the default bench run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from opcockpit.adapters.ledger.events import EventLog
from opcockpit.adapters.webhooks.verify import e2b_signature
from opcockpit.domain.events import EventQuery
from opcockpit.settings.models import CockpitConfig
from opcockpit.wiring import build_webhook_receiver

SIZES_CAP = 0  # bench/run.py: never in the default run
SECRET = "bench-e2b-signing-secret-0123456789"


def _serve_child(tmp: str, port_q: Any) -> None:
    """The receiver in its own process (the sender must not share its GIL)."""
    from opcockpit.adapters.leon.schema import create_sandbox_db

    create_sandbox_db(str(Path(tmp) / "sandbox.db")).close()
    cfg = CockpitConfig.model_validate({
        "sources": {"sandbox_db": str(Path(tmp) / "sandbox.db")},
        "webhooks": {"e2b": {"kind": "e2b", "secret": SECRET, "rate_per_s": 100_000, "burst": 100_000}},
        "serve": {"queue_max": 20_000},
    })  # fmt: skip
    receiver = build_webhook_receiver(cfg, ledger_path=Path(tmp) / "ledger.db")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(receiver.app, log_level="warning", access_log=False, lifespan="on")
    )
    port_q.put(sock.getsockname()[1])
    server.run(sockets=[sock])


def _delivery(i: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"version": "v1", "id": f"ev-{i}", "type": "sandbox.lifecycle.updated",
                       "sandboxId": f"sbx{i % 500}", "timestamp": datetime.now(UTC).isoformat(),
                       "eventData": None}).encode()  # fmt: skip
    sig = e2b_signature(SECRET, body)
    return body, {"content-type": "application/json", "e2b-webhook-id": "wh", "e2b-signature-version": "v1",
                  "e2b-delivery-id": str(uuid.uuid4()), "e2b-signature": sig}  # fmt: skip


async def _send(url: str, rate: float, seconds: float, dup_every: int) -> dict[str, Any]:
    total = int(rate * seconds)
    lat: list[float] = []
    statuses: dict[int, int] = {}
    lost = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(10.0, pool=None)) as client:

        async def one(i: int) -> None:
            nonlocal lost
            body, headers = _delivery(i)
            for attempt in range(2 if dup_every and i % dup_every == 0 else 1):
                for _ in range(20):  # a 503 is retried like a provider would
                    t0 = time.perf_counter()
                    r = await client.post(url, content=body, headers=headers)
                    lat.append(time.perf_counter() - t0)
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code != 503:
                        break
                    await asyncio.sleep(0.05)
                if r.status_code not in (200, 202) and attempt == 0:
                    lost += 1

        start = time.perf_counter()
        tasks = []
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    lat.sort()
    p99 = lat[int(len(lat) * 0.99) - 1] if lat else 0.0
    return {"sent": total, "elapsed_s": elapsed, "p99_ms": p99 * 1000, "p50_ms": lat[len(lat) // 2] * 1000,
            "statuses": statuses, "lost_answers": lost}  # fmt: skip


def measure(rate: float = 500, seconds: float = 60, dup_every: int = 10) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = multiprocessing.get_context("spawn")
        port_q = ctx.Queue()
        proc = ctx.Process(target=_serve_child, args=(tmp, port_q), daemon=True)
        proc.start()
        url = f"http://127.0.0.1:{port_q.get(timeout=30)}/webhooks/e2b"
        time.sleep(0.5)  # lifespan startup
        try:
            out = asyncio.run(_send(url, rate, seconds, dup_every))
        finally:
            proc.terminate()  # SIGTERM: uvicorn drains the queue to the ledger, then exits
            proc.join(30)
        log = EventLog(Path(tmp) / "ledger.db")
        events = log.query(EventQuery(types=("provider.event",), limit=None))
        log.close()
        keys = [e.data["delivery_key"] for e in events]
        out["stored"] = len(keys)
        out["lost"] = out["sent"] - len(set(keys))
        out["duplicated"] = len(keys) - len(set(keys))
        return out


def run(sizes: list[int]) -> list[dict[str, Any]]:
    r = measure(500, 10)
    notes = f"{r['sent']} sent in {r['elapsed_s']:.1f}s, lost {r['lost']}, duplicated {r['duplicated']}"
    return [{"name": "webhooks p99 at 500/s (10 s)", "size": r["sent"], "value": round(r["p99_ms"], 1),
             "unit": "ms", "target": 50, "notes": notes}]  # fmt: skip


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--dup-every", type=int, default=10)
    a = ap.parse_args()
    print(json.dumps(measure(a.rate, a.seconds, a.dup_every), indent=2))
