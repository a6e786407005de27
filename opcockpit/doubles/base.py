"""Shared machinery for the loopback provider doubles: a real threaded HTTP/1.1 server on 127.0.0.1
(or a unix socket), request routing, fault injection and an in-memory fleet.

The doubles speak each provider's real wire format (see shared/domain/provider-apis.md §7); they
are part of the package because `opcockpit demo` and the benchmarks run on them.
Stdlib only (http.server in a background thread) so they work from sync tests, async tests and the
demo's event loop alike.
"""

from __future__ import annotations

import contextlib
import json
import operator
import re
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# --------------------------------------------------------------------------- faults


@dataclass
class Faults:
    """Failure modes a test or the demo can switch on at run time (all off by default)."""

    latency_s: float = 0.0  # added to every request
    error_status: int | None = None  # answer every request with this status (e.g. 503)
    error_times: int | None = None  # ... only for the next N requests (None = until cleared)
    rate_limit_retry_after: float | None = None  # answer 429 with Retry-After: <this>
    rate_limit_times: int | None = None  # ... only for the next N requests
    malformed_json: bool = False  # listing answers with a body that is not JSON
    fail_page: int | None = None  # listing page N (1-based) answers 500
    auth_fail: bool = False  # reject every credential as if the key were revoked
    list_delay_s: float = 0.0  # listing only: sleep this long (to exceed client timeouts)
    # Mutating requests (anything but GET/HEAD) only; the request is counted first, so a test can
    # see that it arrived. Waits end early when the double stops.
    mutation_delay_s: float = 0.0  # wait this long, then act (a slow DELETE a signal can interrupt)
    mutation_response_delay_s: float = 0.0  # act, then wait this long before answering (lost answer)
    drop_mutation_response: bool = False  # act, then close the connection without answering
    # Called with every request before it is served (a test can change the world "meanwhile").
    on_request: Callable[[Request], None] | None = None

    def clear(self) -> None:
        for name, value in Faults().__dict__.items():
            setattr(self, name, value)


# --------------------------------------------------------------------------- request / response


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int = 200
    body: Any = None  # bytes/str are sent as is; anything else is JSON-encoded
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterable[bytes] | None = None  # chunked body (e.g. Docker /events)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        # A fresh tree per response (no cycles): skip the encoder's per-container cycle check.
        return json.dumps(self.body, check_circular=False).encode("utf-8")


Handler = Callable[..., Response]
DROP_STATUS = -1  # a Response with this status closes the connection without an answer


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    listing: bool = False  # listing routes honour list_delay_s / malformed_json


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, *, listing: bool = False) -> None:
        self.routes.append(Route(method, re.compile(f"^{pattern}$"), handler, listing))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method == method:
                m = route.pattern.match(path)
                if m:
                    return route, m.groupdict()
        return None


# --------------------------------------------------------------------------- fleet


@dataclass
class FakeInstance:
    """One instance in a double's memory. `state` is the provider's native word."""

    instance_id: str
    state: str
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    cpu: float = 2.0
    memory_mb: int = 2048
    disk_gb: float = 10.0
    # Asynchronous transition in flight: (native target state, monotonic time it settles).
    pending: tuple[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_PENDING = operator.attrgetter("pending")


class FakeProvider:
    """Base of every double: server lifecycle, auth, faults, fleet, event log.

    Subclasses set `kind`, build their routes in `_routes(router)` and map the normalised words
    `running | paused | stopped` to native states in `native_state`.
    """

    kind = "base"

    def __init__(self, *, api_key: str | None = "test-key", unix_path: str | None = None) -> None:
        self.api_key = api_key
        self.unix_path = unix_path
        self.faults = Faults()
        self.instances: dict[str, FakeInstance] = {}
        self.events_log: list[dict[str, Any]] = []
        self.lock = threading.RLock()
        self.request_count = 0
        self.requests_by_route: dict[str, int] = {}
        self.router = Router()
        self._routes(self.router)
        self._server: socketserver.BaseServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.event_cond = threading.Condition(self.lock)
        self._tls = threading.local()  # the request being dispatched, per server thread

    # -- subclass hooks ---------------------------------------------------------------------

    def _routes(self, router: Router) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def native_state(self, normal: str) -> str:
        """Map running | paused | stopped to this provider's word."""
        raise NotImplementedError

    def authorized(self, request: Request) -> bool:
        return True

    def unauthorized(self) -> Response:
        return Response(401, {"message": "unauthorized"})

    def emit(self, instance: FakeInstance, action: str) -> None:
        """Record a lifecycle event (subclasses with event endpoints render it). The record is
        whole when it is appended: a streaming reader woken by the notify renders it at once."""
        with self.event_cond:
            self.events_log.append(
                {
                    "id": str(uuid.uuid4()),
                    "instance_id": instance.instance_id,
                    "name": instance.name,
                    "labels": dict(instance.labels),
                    "action": action,
                    "time": time.time(),
                    **self.event_fields(instance),
                }
            )
            self.event_cond.notify_all()

    def event_fields(self, instance: FakeInstance) -> dict[str, Any]:
        """What a kind's event records carry besides the common fields (none here)."""
        return {}

    # -- fleet manipulation (tests, demo drift simulator) -------------------------------------

    def new_id(self) -> str:
        return uuid.uuid4().hex[:20]

    def add(
        self,
        instance_id: str | None = None,
        *,
        state: str = "running",
        name: str | None = None,
        labels: dict[str, str] | None = None,
        created_at: datetime | None = None,
        **extra: Any,
    ) -> FakeInstance:
        """Add an instance in normalised state `state` (running | paused | stopped)."""
        iid = instance_id or self.new_id()
        now = datetime.now(UTC)
        inst = FakeInstance(
            instance_id=iid,
            state=self.native_state(state),
            name=name,
            labels=dict(labels or {}),
            created_at=created_at or now,
            started_at=now if state == "running" else None,
        )
        for key in ("cpu", "memory_mb", "disk_gb"):
            if key in extra:
                setattr(inst, key, extra.pop(key))
        inst.extra.update(extra)
        with self.lock:
            self.instances[iid] = inst
        self.emit(inst, "create")
        return inst

    def set_state(self, instance_id: str, state: str) -> None:
        """Change state behind the platform's back (normalised word)."""
        with self.lock:
            inst = self.instances[instance_id]
            inst.state = self.native_state(state)
            inst.pending = None
        self.emit(inst, state)

    def remove(self, instance_id: str) -> None:
        """The instance dies / is deleted out of band."""
        with self.lock:
            inst = self.instances.pop(instance_id, None)
        if inst is not None:
            self.emit(inst, "destroy")

    def settle(self) -> None:
        """Finish every asynchronous transition whose time has come."""
        now = time.monotonic()
        with self.lock:
            # Runs before every request: with nothing in flight (the usual case) the scan for
            # pending transitions stays in C instead of a Python loop over the whole fleet.
            if not any(map(_PENDING, self.instances.values())):
                return
            for inst in list(self.instances.values()):
                if inst.pending and inst.pending[1] <= now:
                    self._complete(inst, inst.pending[0])

    def _complete(self, inst: FakeInstance, target: str) -> None:
        inst.pending = None
        if target == "__gone__":
            self.instances.pop(inst.instance_id, None)
        else:
            inst.state = target

    # -- serving -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL for TCP doubles; for unix-socket doubles, `unix://<path>`."""
        if self.unix_path:
            return f"unix://{self.unix_path}"
        assert self._server is not None, "double not started"
        host, port = self._server.server_address[:2]  # type: ignore[misc]
        return f"http://{host}:{port}"

    def start(self) -> FakeProvider:
        handler = _make_handler(self)
        if self.unix_path:
            server: socketserver.BaseServer = _ThreadingUnixHTTPServer(self.unix_path, handler)
        else:
            server = _QuietThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server = server
        # A short poll interval keeps stop() fast (tests start and stop many doubles).
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"double-{self.kind}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self.event_cond:
            self.event_cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.unix_path:
            try:
                import os

                os.unlink(self.unix_path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- dispatch ------------------------------------------------------------------------------

    @property
    def current_request(self) -> Request | None:
        """The request this server thread is answering (error bodies echo its path)."""
        return getattr(self._tls, "request", None)

    def dispatch(self, request: Request) -> Response:
        self._tls.request = request
        try:
            return self._dispatch(request)
        finally:
            self._tls.request = None

    def _dispatch(self, request: Request) -> Response:
        with self.lock:
            self.request_count += 1
        f = self.faults
        if f.latency_s:
            time.sleep(f.latency_s)
        self.settle()
        if f.auth_fail or not self.authorized(request):
            return self.unauthorized()
        if f.rate_limit_retry_after is not None:
            retry_after = f.rate_limit_retry_after
            if f.rate_limit_times is not None:
                f.rate_limit_times -= 1
                if f.rate_limit_times <= 0:
                    f.rate_limit_retry_after, f.rate_limit_times = None, None
            return self.rate_limited(retry_after)
        if f.error_status is not None:
            status = f.error_status
            if f.error_times is not None:
                f.error_times -= 1
                if f.error_times <= 0:
                    f.error_status, f.error_times = None, None
            return self.server_error(status)
        found = self.router.match(request.method, request.path)
        if found is None:
            return self.no_route(request)
        route, params = found
        key = f"{route.method} {route.pattern.pattern}"
        with self.lock:
            self.requests_by_route[key] = self.requests_by_route.get(key, 0) + 1
        if route.listing and f.list_delay_s:
            time.sleep(f.list_delay_s)
        if f.on_request is not None:
            f.on_request(request)
        mutation = request.method not in ("GET", "HEAD")
        if mutation and f.mutation_delay_s:
            self._stopping.wait(f.mutation_delay_s)
        response = route.handler(request, **params)
        if mutation and f.mutation_response_delay_s:
            self._stopping.wait(f.mutation_response_delay_s)
        if mutation and f.drop_mutation_response:
            return Response(DROP_STATUS)
        if route.listing and f.malformed_json and response.status == 200:
            return Response(200, b'{"items": [ {"id": "trunc', {"Content-Type": "application/json"})
        return response

    def no_route(self, request: Request) -> Response:
        """Answer for a path/method the double does not serve (subclasses use their error shape)."""
        return Response(404, {"message": f"no route {request.method} {request.path}"})

    def page_fault(self, page: int) -> Response | None:
        """Listing handlers call this with the 1-based page number they are about to serve."""
        if self.faults.fail_page is not None and page >= self.faults.fail_page:
            return self.server_error(500)
        return None

    def rate_limited(self, retry_after: float) -> Response:
        return Response(429, {"message": "rate limit exceeded"}, {"Retry-After": f"{retry_after:g}"})

    def server_error(self, status: int) -> Response:
        return Response(status, {"message": "injected failure"})

    def wait_events(self, after: int, timeout: float) -> int:
        """Block until the event log grows past `after` (or timeout); return its length."""
        deadline = time.monotonic() + timeout
        with self.event_cond:
            while len(self.events_log) <= after and not self.stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.event_cond.wait(remaining)
            return len(self.events_log)


_ISO_CACHE: dict[datetime, str] = {}
_ISO_CACHE_MAX = 200_000  # a few 10k fleets' worth of timestamps; cleared wholesale when full


def iso(dt: datetime | None) -> str | None:
    """RFC3339 with Z, millisecond precision, as the real APIs answer.

    Memoised: listings render the same created/started times of every instance on every page
    and every refresh, and strftime was the doubles' largest cost in a 10k listing.
    """
    if dt is None:
        return None
    text = _ISO_CACHE.get(dt)
    if text is None:
        text = dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
        if len(_ISO_CACHE) >= _ISO_CACHE_MAX:
            _ISO_CACHE.clear()
        _ISO_CACHE[dt] = text
    return text


# --------------------------------------------------------------------------- http.server glue


class _QuietThreadingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        # http.server writes headers and body separately; without NODELAY, Nagle + delayed ACK
        # add ~40 ms per keep-alive request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr


class _ThreadingUnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, handler: type[BaseHTTPRequestHandler]) -> None:
        import os

        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        super().__init__(path, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, _ = super().get_request()
        return sock, ("unix", 0)


def _make_handler(double: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"opcockpit-double-{double.kind}"

        def log_message(self, format: str, *args: Any) -> None:  # silence stderr
            return

        def address_string(self) -> str:
            return "loopback"

        def _handle(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            try:
                response = double.dispatch(request)
            except Exception as exc:  # a bug in a double must show up as a 500, not a hang
                response = Response(500, {"message": f"double crashed: {type(exc).__name__}: {exc}"})
            self._send(response)

        def _send(self, response: Response) -> None:
            if response.status == DROP_STATUS:  # Faults.drop_mutation_response: no answer at all
                self.close_connection = True
                return
            try:
                self.send_response(response.status)
                headers = {"Content-Type": "application/json", **response.headers}
                if response.stream is not None:
                    headers["Transfer-Encoding"] = "chunked"
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.flush()
                    self._stream(response.stream)
                    return
                payload = response.encoded()
                if response.status in (204, 304):
                    payload = b""
                    headers.pop("Content-Type", None)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _stream(self, chunks: Iterable[bytes]) -> None:
            it: Iterator[bytes] = iter(chunks)
            try:
                for chunk in it:
                    if chunk:
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass
            finally:
                close = getattr(it, "close", None)
                if close:
                    close()
                self.close_connection = True

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = _handle

    return _Handler
