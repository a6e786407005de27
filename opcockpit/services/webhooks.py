"""`opcockpit serve`: the provider webhook receiver (an ASGI app on Starlette).

One request, in order (cheap refusals first, nothing stored until the signature holds):
provider known -> per-source rate limit -> content type -> body size cap (streamed) -> signature
(the sender's verifier) -> dedup of recent keys in memory (same key + same body: 2xx again, stored
once; same key + other body: `replayed`) -> a bounded queue to one writer task, which matches the
instance to its lease the way LEON does (provider + `current_instance_id`) and stores batches in
the ledger, each delivery under its idempotency key: the ledger says, in the insert's own
transaction, which keys it held already (stored before a restart), so nothing is stored twice. The
answer is 2xx only once the delivery is stored; a full queue or a slow ledger is a 503 with
Retry-After (the sender retries; dedup keeps it stored once), never a silent drop.

Wiring gives this module its parts as ports (verifiers, the sink, the LEON sandbox.db reader);
it never imports an adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from opcockpit.domain.models import DbState
from opcockpit.domain.text import error_line
from opcockpit.domain.webhooks import (
    REASONS,
    Delivery,
    Rejected,
    event_type_of,
    instance_id_of,
    occurred_at_of,
)
from opcockpit.services.webhook_metrics import Metrics

__all__ = ["LeaseIndex", "Metrics", "Sender", "WebhookReceiver", "WebhookSink"]

log = logging.getLogger("opcockpit.webhooks")

_JSON_TYPES = ("application/json", "application/cloudevents+json")
_CACHE_MAX = 100_000  # recent delivery keys kept in memory; older ones are checked in the store
_BATCH_MAX = 256


class Verifier(Protocol):
    kind: str

    def verify(self, headers: Mapping[str, str], body: bytes) -> Delivery: ...


class WebhookSink(Protocol):
    """Where accepted events go (blocking; one writer thread calls it)."""

    def store(self, events: Sequence[Mapping[str, Any]]) -> list[str | None]:
        """Store the deliveries not stored yet, exactly once (check and insert in one transaction);
        per event None (stored now) or the body hash of the copy already stored."""
        ...

    def known(self, provider: str, key: str) -> str | None: ...  # stored body hash

    def close(self) -> None: ...


@dataclass
class Sender:
    """One configured sender: its verifier (None: the secret is missing) and its limits."""

    provider: str
    kind: str
    verifier: Verifier | None
    rate_per_s: float = 1000.0
    burst: int = 2000
    max_body_bytes: int = 256 * 1024


# --------------------------------------------------------------------------- rate limit


class _Buckets:
    """Token buckets per (provider, source address); idle buckets are dropped (bounded memory)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._b: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def allow(self, key: tuple[str, str], rate: float, burst: int) -> bool:
        now = self._clock()
        tokens, last = self._b.pop(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        ok = tokens >= 1.0
        self._b[key] = (tokens - 1.0 if ok else tokens, now)
        while len(self._b) > 10_000:
            self._b.popitem(last=False)
        return ok


# --------------------------------------------------------------------------- lease matching


class LeaseIndex:
    """(provider, instance id) -> lease id, LEON's way (`sandbox_leases.current_instance_id`).

    Rebuilt from one sandbox.db read at most every `max_age_s`, or sooner on a miss (at most once
    per `miss_s`), so a lease created a moment before its first webhook still matches. A failed
    read keeps the last index (events then match what was known, or nothing; never an error)."""

    def __init__(
        self,
        read_db_state: Callable[[str], DbState | Awaitable[DbState]] | None,
        sandbox_db: str | None,
        *,
        max_age_s: float = 30.0,
        miss_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read_db_state
        self._path = sandbox_db
        self._max_age_s, self._miss_s, self._clock = max_age_s, miss_s, clock
        self._index: dict[tuple[str, str], str] = {}
        self._at: float | None = None
        self.error: str | None = None

    async def _reload(self) -> None:
        assert self._read is not None and self._path is not None
        self._at = self._clock()
        try:
            if inspect.iscoroutinefunction(self._read):
                state = await self._read(self._path)
            else:  # a blocking reader runs in a thread
                state = await asyncio.to_thread(self._read, self._path)
            if inspect.isawaitable(state):
                state = await state
        except Exception as exc:  # a failed source never fails a delivery
            self.error = error_line(exc)
            return
        self.error = None
        self._index = {
            (lease.provider_name, lease.current_instance_id): lease.lease_id
            for lease in state.leases
            if lease.current_instance_id
        }

    async def match(self, provider: str, instance_id: str | None) -> str | None:
        if instance_id is None or self._read is None or self._path is None:
            return None
        now = self._clock()
        if self._at is None or now - self._at >= self._max_age_s:
            await self._reload()
        found = self._index.get((provider, instance_id))
        if found is None and self._at is not None and self._clock() - self._at >= self._miss_s:
            await self._reload()
            found = self._index.get((provider, instance_id))
        return found


# --------------------------------------------------------------------------- the receiver


@dataclass
class _Item:
    delivery: Delivery
    received_at: datetime
    done: asyncio.Future[str | None]  # None: stored now; else the body hash already stored


class WebhookReceiver:
    def __init__(
        self,
        senders: Mapping[str, Sender],
        sink: WebhookSink,
        *,
        leases: LeaseIndex | None = None,
        queue_max: int = 2000,
        ack_timeout_s: float = 5.0,
        retry_after_s: int = 5,
        clock: Callable[[], float] = time.monotonic,
        leon_log: Callable[[Sequence[Mapping[str, Any]]], object] | None = None,
    ) -> None:
        self.senders = dict(senders)
        self.sink = sink
        # Opt-in: LEON's provider_events row for each newly stored event (after the answer).
        self.leon_log = leon_log
        self.leon_error: str | None = None
        self.leases = leases
        self.queue_max = queue_max
        self.ack_timeout_s = ack_timeout_s
        self.retry_after_s = retry_after_s
        self.metrics = Metrics()
        self._clock = clock
        self._buckets = _Buckets(clock)
        self._recent: OrderedDict[tuple[str, str], tuple[str, asyncio.Future[str | None]]] = OrderedDict()
        self._queue: asyncio.Queue[_Item] | None = None
        self._writer: asyncio.Task[None] | None = None
        self.ledger_error: str | None = None
        self.app = Starlette(
            routes=[
                Route("/webhooks/{provider}", self._webhook, methods=["POST"]),
                Route("/healthz", self._healthz, methods=["GET"]),
                Route("/metrics", self._metrics, methods=["GET"]),
            ],
            lifespan=self._lifespan,
        )

    # -- lifecycle --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.queue_max)
        self.metrics.queue_depth = self._queue.qsize
        self._writer = asyncio.create_task(self._write_loop(), name="webhook-ledger-writer")
        try:  # open (and migrate) the ledger now, not on the first delivery's deadline
            await asyncio.to_thread(self.sink.known, "-", "-")
        except Exception as exc:  # /healthz says so; deliveries are refused 503 until it works
            self.ledger_error = error_line(exc)
            log.warning("webhook ledger unusable at start: %s", self.ledger_error)

    async def stop(self) -> None:
        """Store what is queued (the senders were told 2xx only for stored ones), then close."""
        if self._queue is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._queue.join(), timeout=max(self.ack_timeout_s, 1.0))
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await asyncio.to_thread(self.sink.close)

    # -- routes -----------------------------------------------------------------------------

    async def _healthz(self, request: Request) -> Response:
        depth = self._queue.qsize() if self._queue else 0
        body = {"status": "ok", "queue": depth, "queue_max": self.queue_max,
                "ledger": "failing" if self.ledger_error else "ok",
                "providers": sorted(self.senders)}  # fmt: skip
        if self.leases is not None and self.leases.error:
            body["sandbox_db"] = self.leases.error
        if self.leon_error:
            body["leon_provider_events"] = self.leon_error
        return JSONResponse(body)

    async def _metrics(self, request: Request) -> Response:
        return PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4")

    async def _webhook(self, request: Request) -> Response:
        started = time.perf_counter()
        name = request.path_params["provider"]
        sender = self.senders.get(name)
        label = name if sender else "-"  # unknown names never become metric labels
        self.metrics.received[label] += 1
        try:
            status, body = await self._handle(request, name, sender)
        except Rejected as rej:
            self.metrics.rejected[(label, rej.reason)] += 1
            headers = {"Retry-After": str(self.retry_after_s)} if rej.status in (429, 503) else None
            response: Response = JSONResponse(
                {"error": rej.reason, "detail": rej.detail}, rej.status, headers
            )
        else:
            response = JSONResponse(body, status)
        self.metrics.observe(time.perf_counter() - started)
        return response

    async def _handle(self, request: Request, name: str, sender: Sender | None) -> tuple[int, dict[str, Any]]:
        if sender is None:
            raise Rejected("unknown_provider", "no [webhooks.<provider>] for this path")
        client = request.client.host if request.client else "-"
        if not self._buckets.allow((name, client), sender.rate_per_s, sender.burst):
            raise Rejected("rate_limited", "too many requests from this source")
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype not in _JSON_TYPES:
            raise Rejected("content_type", "want application/json")
        body = await _read_capped(request, sender.max_body_bytes)
        if sender.verifier is None:
            raise Rejected("not_configured", "the receiver has no secret for this provider")
        delivery = sender.verifier.verify(request.headers, body)
        return await self._accept(name, delivery)

    async def _accept(self, name: str, delivery: Delivery) -> tuple[int, dict[str, Any]]:
        """Recent keys are answered from memory; a new one is queued, and the ledger's writer
        decides in the same transaction as its insert whether it was stored before (a restart
        ago): no lookup per delivery, no window between "known" and "stored"."""
        key, sha = (name, delivery.key), delivery.body_sha256
        seen = self._recent.get(key)
        if seen is not None:
            if seen[0] != sha:
                raise Rejected("replayed", "a known delivery id with a different body")
            held = await self._await_stored(key, seen[1])
            return self._duplicate(name, delivery, held)
        assert self._queue is not None
        fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Item(delivery, datetime.now(UTC), fut))
        except asyncio.QueueFull:
            raise Rejected("overloaded", "ledger queue full") from None
        self._remember(key, (sha, fut))
        held = await self._await_stored(key, fut)
        if held is not None:  # stored before this process started
            if held != sha:
                done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
                done.set_result(held)
                self._remember(key, (held, done))  # the ledger's copy is the one to compare with
            return self._duplicate(name, delivery, held)
        self.metrics.accepted[name] += 1
        return 202, {"status": "stored", "id": delivery.key}

    def _duplicate(self, name: str, delivery: Delivery, held: str | None) -> tuple[int, dict[str, Any]]:
        if held is not None and held != delivery.body_sha256:
            raise Rejected("replayed", "a known delivery id with a different body")
        self.metrics.duplicate[name] += 1
        self.metrics.accepted[name] += 1
        return 200, {"status": "duplicate", "id": delivery.key}

    def _remember(self, key: tuple[str, str], value: tuple[str, asyncio.Future[str | None]]) -> None:
        self._recent[key] = value
        self._recent.move_to_end(key)
        while len(self._recent) > _CACHE_MAX:
            self._recent.popitem(last=False)

    async def _await_stored(self, key: tuple[str, str], fut: asyncio.Future[str | None]) -> str | None:
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.ack_timeout_s)
        except TimeoutError:
            # Still queued: it will be stored; the sender's retry then answers "duplicate".
            raise Rejected("overloaded", "ledger slow") from None
        except Exception:
            self._recent.pop(key, None)  # not stored: the retry must be able to store it
            raise Rejected("ledger_unavailable", "the ledger refused the write") from None

    # -- the writer -------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _BATCH_MAX and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                events = [await self._event(item) for item in batch]
                await self._store(batch, events)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _store(self, batch: list[_Item], events: list[dict[str, Any]]) -> None:
        try:
            held = await asyncio.to_thread(self.sink.store, events)
        except Exception as exc:
            self.ledger_error = error_line(exc)
            log.warning("webhook ledger write failed: %s", self.ledger_error)
            for item in batch:
                if not item.done.done():
                    item.done.set_exception(RuntimeError("ledger write failed"))
                    item.done.exception()  # retrieved: no "never retrieved" noise when nobody waits
            return
        self.ledger_error = None
        for item, before in zip(batch, held, strict=True):
            if before is None:
                self.metrics.stored[item.delivery.provider] += 1
            if not item.done.done():
                item.done.set_result(before)
        if self.leon_log is not None:
            new = [ev for ev, before in zip(events, held, strict=True) if before is None]
            await self._leon(new)

    async def _leon(self, events: list[dict[str, Any]]) -> None:
        """LEON's own log: best effort (the ledger already holds these; a locked or missing
        sandbox.db is reported on /healthz, never a failed delivery)."""
        if not events or self.leon_log is None:
            return
        try:
            await asyncio.to_thread(self.leon_log, events)
        except Exception as exc:
            self.leon_error = error_line(exc)
            log.warning("LEON provider_events write failed: %s", self.leon_error)
        else:
            self.leon_error = None

    async def _event(self, item: _Item) -> dict[str, Any]:
        d = item.delivery
        instance_id = instance_id_of(d.payload)
        lease_id = await self.leases.match(d.provider, instance_id) if self.leases else None
        event_type = event_type_of(d.payload)
        before = after = None
        if "oldState" in d.payload or "newState" in d.payload:
            before, after = {"state": d.payload.get("oldState")}, {"state": d.payload.get("newState")}
        elif event_type:
            after = {"event": event_type}
        occurred = occurred_at_of(d.payload)
        return {
            "type": "provider.event",
            "occurred_at": occurred.isoformat() if occurred else None,
            "observed_at": item.received_at.isoformat(),
            "source": "provider_event",
            "lease_id": lease_id,
            "instance_id": instance_id,
            "thread_id": None,
            "provider": d.provider,
            "before": before,
            "after": after,
            "data": {
                "event_type": event_type,
                "delivery_key": d.key,
                "body_sha256": d.body_sha256,
                "via": "webhook",
                "headers": dict(d.headers),
                "payload": dict(d.payload),
            },
        }


async def _read_capped(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > cap:
                raise Rejected("too_large", f"body over {cap} bytes")
        except ValueError:
            raise Rejected("malformed", "bad content-length") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise Rejected("too_large", f"body over {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


assert set(REASONS) >= {"unsigned", "bad_signature", "stale", "replayed", "too_large", "content_type"}
