"""One polled GET on a kept-alive HTTP/1.1 connection, without httpx (issue 10, idle tick).

E2B's event feed is polled every 2 s, also on a quiet fleet, and a quiet poll only asks whether
the feed's first page is the one it read last time. Through httpx (client, httpcore's pool, h11,
anyio) one such GET was ~1.5-2 ms of the event loop's CPU, the largest part of a quiet tick.
`KeptAliveGet.get(target)` sends the request (built once) and reads the answer with h11 on
asyncio's streams: its status, headers and body (no content coding is asked for), or None when
there is no answer it can read (a transport error, a timeout, a malformed or compressed answer,
a proxy configured in the environment); the caller then sends the request through its ApiClient,
which retries, counts and types the errors as every other call. After such a failure it rests
until the caller says a request went through (`ok()`): a provider in trouble is not asked twice
a poll; after MAX_FAILURES in a row it stays out.

The ApiClient itself sends its plain GETs (the listings' pages) through one such connection
(`ApiClient.lean_get`) and wraps each answer in an httpx.Response, so statuses, retries and errors
are handled by the same code as httpx's answers. A connection the server closed while it was idle
(a listing every 30 s outlives many keep-alive timeouts) is opened again before the request is
written, and a request that a reused connection got no byte of answer to is sent once more on a
new one (a GET: asking twice is harmless). One request at a time: while one is in flight, `busy`
tells the caller to ask through httpx.

The request's headers are the ApiClient's (the API key among them): they are written to the
socket and nowhere else; no error of this module carries text.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

import h11

__all__ = ["Answer", "KeptAliveGet"]

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers (raw), body
_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter, h11.Connection]

_PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy")
_MAX_HEAD = 64 * 1024
_MAX_BODY = 4 * 1024 * 1024
_READ = 256 * 1024  # what asyncio's socket transport reads at most per wake-up
MAX_FAILURES = 3


class _Unusual(Exception):
    """An answer this module does not read: the caller asks through httpx instead."""


class _Closed(_Unusual):
    """The connection closed before a byte of the answer came."""


def _proxied(env: Mapping[str, str]) -> bool:
    """A proxy in the environment: httpx would go through it, so this module steps aside."""
    return any(env.get(name) or env.get(name.upper()) for name in _PROXY_ENV)


class KeptAliveGet:
    """GETs of one origin on one connection, opened on first use and again after any trouble."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        timeout: float,
        uds: str | None = None,
        tls: ssl.SSLContext | None = None,
        env: Mapping[str, str] | None = None,
        max_body: int = _MAX_BODY,
        on_send: Callable[[], object] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "localhost"
        self._https = parts.scheme == "https"
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._uds = uds
        self._tls = tls
        self._timeout = timeout
        self._max_body = max_body
        self._on_send = on_send  # told of every request as it is written (the ApiClient counts)
        default_port = parts.port is None or parts.port == (443 if self._https else 80)
        host = self._host if default_port else f"{self._host}:{self._port}"
        self._headers = [("Host", host), ("Accept", "*/*"), ("Connection", "keep-alive")]
        self._headers += [(k, v) for k, v in headers.items() if k.lower() not in ("host", "connection")]
        self.usable = (parts.scheme in ("http", "https") and not _proxied(os.environ if env is None else env)
                       and (not self._https or tls is not None))  # fmt: skip
        self.resting = False  # failed: not used until `ok()`
        self.failures = 0  # in a row
        self.timed_out = False  # the last failure was the timeout
        self.busy = False  # a request is in flight on the connection
        self._requests: dict[str, h11.Request] = {}
        self._conn: _Conn | None = None

    async def get(self, target: str, timeout: float | None = None) -> Answer | None:
        """The answer to `GET <target>` (path and query, below the base URL) within `timeout`
        (default: the constructor's); None when there is none this module can read (then ask
        through httpx; `timed_out` says whether the time ran out)."""
        return await self.ask("GET", target, timeout=timeout)

    async def ask(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
    ) -> Answer | None:
        """`get` for any request that may be sent twice (a read, e.g. AgentBay's POST RPCs that
        only list): `body` and `headers` (beside the constructor's) go with it."""
        self.timed_out = False
        if not self.usable or self.resting or self.busy:
            return None
        self.busy = True
        try:  # h11 refuses a header it cannot send (a key with a newline): then httpx asks
            request = self._request(method, target, body, headers)
            async with asyncio.timeout(self._timeout if timeout is None else timeout):
                data = await self._exchange(request, body)
        except (OSError, TimeoutError, _Unusual, h11.ProtocolError, ssl.SSLError) as exc:
            await self.aclose()
            self.failures += 1
            self.resting = True
            self.timed_out = isinstance(exc, TimeoutError)
            self.usable = self.failures < MAX_FAILURES
            return None
        except asyncio.CancelledError:  # a listing cut short: its answer must not meet the next request
            conn, self._conn = self._conn, None
            if conn is not None:
                conn[1].close()
            raise
        finally:
            self.busy = False
        self.failures = 0
        return data

    def _request(
        self, method: str, target: str, body: bytes, headers: Sequence[tuple[str, str]]
    ) -> h11.Request:
        if body or headers or method != "GET":  # one of a kind (AgentBay's carry a nonce)
            sized = [*self._headers, *headers, ("Content-Length", str(len(body)))]
            return h11.Request(method=method, target=f"{self._prefix}{target}", headers=sized)
        request = self._requests.get(target)
        if request is None:
            if len(self._requests) >= 64:  # a listing's pages (their cursors) and a poll
                self._requests.clear()
            request = self._requests[target] = h11.Request(
                method="GET", target=f"{self._prefix}{target}", headers=self._headers
            )
        return request

    def ok(self) -> None:
        """The caller's own request went through: ask again at the next poll."""
        self.resting = False

    async def _exchange(self, request: h11.Request, body: bytes) -> Answer:
        """Write `request`, read the answer with h11 (the HTTP/1.1 parser under httpx's own
        stack: framing, chunked bodies, keep-alive, all its checks); only the layers above it
        (client, pool, anyio) are left out. A kept connection that closed before answering a
        byte is replaced once."""
        conn = self._conn
        if conn is not None and conn[0].at_eof():  # the server closed it while it was idle
            await self.aclose()
            conn = None
        if conn is not None:
            try:
                return await self._read(conn, request, body)
            except (_Closed, ConnectionError):
                await self.aclose()
        conn = self._conn = await self._open()
        return await self._read(conn, request, body)

    async def _read(self, conn: _Conn, request: h11.Request, body: bytes) -> Answer:
        reader, writer, http = conn
        if self._on_send is not None:
            self._on_send()
        sent = [
            http.send(request),
            http.send(h11.Data(data=body)) if body else b"",
            http.send(h11.EndOfMessage()),
        ]
        writer.write(b"".join(part or b"" for part in sent))
        status, raw, chunks, size = 0, [], [], 0
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(_READ)
                if not data and not status:
                    raise _Closed  # not a byte of answer: a kept connection the server had dropped
                http.receive_data(data)
            elif isinstance(event, h11.Response):
                status, raw = event.status_code, event.headers.raw_items()
                coding = dict(event.headers).get(b"content-encoding", b"identity")
                if not 200 <= status <= 599 or coding.lower() != b"identity":
                    raise _Unusual  # not read: the connection is closed and httpx asks
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
                size += len(event.data)
                if size > self._max_body:
                    raise _Unusual
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # an informational answer
                raise _Unusual
        if http.our_state is h11.MUST_CLOSE or http.their_state is h11.MUST_CLOSE:
            await self.aclose()
        else:
            http.start_next_cycle()
        return status, list(raw), b"".join(chunks)

    async def _open(self) -> _Conn:
        if self._uds is not None:
            reader, writer = await asyncio.open_unix_connection(self._uds)
        else:
            tls = self._tls if self._https else None
            host = self._host if tls is not None else None
            reader, writer = await asyncio.open_connection(
                self._host, self._port, ssl=tls, server_hostname=host
            )
        return reader, writer, h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn[1].close()
            with contextlib.suppress(Exception):
                await conn[1].wait_closed()
