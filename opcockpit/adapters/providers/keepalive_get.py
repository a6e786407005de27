"""One polled GET on a kept-alive HTTP/1.1 connection, without httpx (issue 10, idle tick).

E2B's event feed is polled every 2 s, also on a quiet fleet, and a quiet poll only asks whether
the feed's first page is the one it read last time. Through httpx (client, httpcore's pool, h11,
anyio) one such GET was ~1.5-2 ms of the event loop's CPU, the largest part of a quiet tick.
`KeptAliveGet.get(target)` writes the request bytes built once and reads the answer with
asyncio's streams: its status, headers and body (Content-Length or chunked; no content coding is
asked for), or None when there is no answer it can read (a transport error, a timeout, a
malformed or compressed answer, a proxy configured in the environment); the caller then sends
the request through its ApiClient, which retries, counts and types the errors as every other
call. After such a failure it rests until the caller says a request went through (`ok()`): a
provider in trouble is not asked twice a poll; after MAX_FAILURES in a row it stays out.

The request's headers are the ApiClient's (the API key among them): they are written to the
socket and nowhere else; no error of this module carries text.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["Answer", "KeptAliveGet"]

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers (raw), body

_PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy")
_MAX_HEAD = 64 * 1024
_MAX_BODY = 4 * 1024 * 1024
MAX_FAILURES = 3


class _Unusual(Exception):
    """An answer this module does not read: the caller asks through httpx instead."""


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
    ) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "localhost"
        self._https = parts.scheme == "https"
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._uds = uds
        self._tls = tls
        self._timeout = timeout
        default_port = parts.port is None or parts.port == (443 if self._https else 80)
        host = self._host if default_port else f"{self._host}:{self._port}"
        lines = [f"Host: {host}", "Accept: */*", "Connection: keep-alive"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "connection")]
        self._head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.usable = (parts.scheme in ("http", "https") and not _proxied(os.environ if env is None else env)
                       and (not self._https or tls is not None))  # fmt: skip
        self.resting = False  # failed: not used until `ok()`
        self.failures = 0  # in a row
        self._requests: dict[str, bytes] = {}
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, target: str) -> Answer | None:
        """The answer to `GET <target>` (path and query, below the base URL); None when there is
        none this module can read (then ask through httpx)."""
        if not self.usable or self.resting:
            return None
        request = self._requests.get(target)
        if request is None:
            if len(self._requests) >= 16:
                self._requests.clear()
            request = self._requests[target] = (
                f"GET {self._prefix}{target} HTTP/1.1\r\n".encode() + self._head
            )
        try:
            async with asyncio.timeout(self._timeout):
                data = await self._exchange(request)
        except (OSError, EOFError, TimeoutError, ValueError, _Unusual, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, ssl.SSLError):  # fmt: skip
            await self.aclose()
            self.failures += 1
            self.resting = True
            self.usable = self.failures < MAX_FAILURES
            return None
        self.failures = 0
        return data

    def ok(self) -> None:
        """The caller's own request went through: ask again at the next poll."""
        self.resting = False

    async def _exchange(self, request: bytes) -> Answer:
        conn = self._conn
        if conn is None:
            conn = self._conn = await self._open()
        reader, writer = conn
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            raise _Unusual
        status_line, *header_lines = head[:-4].split(b"\r\n")
        version, status = status_line.split(b" ", 2)[:2]
        raw: list[tuple[bytes, bytes]] = []
        fields: dict[bytes, bytes] = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            raw.append((name.strip(), value.strip()))
            fields[name.strip().lower()] = value.strip()
        if (
            not 200 <= int(status) <= 599
            or fields.get(b"content-encoding", b"identity").lower() != b"identity"
            or not version.startswith(b"HTTP/1.")
        ):
            raise _Unusual  # not read: the connection is closed and httpx asks
        if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            data = await self._chunked(reader)
        elif (length := fields.get(b"content-length")) is not None:
            n = int(length)
            if not 0 <= n <= _MAX_BODY:
                raise _Unusual
            data = await reader.readexactly(n)
        else:
            raise _Unusual  # a body to the end of the connection
        if fields.get(b"connection", b"").lower() == b"close" or version == b"HTTP/1.0":
            await self.aclose()
        return int(status), raw, data

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes:
        out = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return bytes(out)
            if len(out) + size > _MAX_BODY:
                raise _Unusual
            out += await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise _Unusual

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._uds is not None:
            return await asyncio.open_unix_connection(self._uds, limit=_MAX_HEAD)
        tls = self._tls if self._https else None
        host = self._host if tls is not None else None
        return await asyncio.open_connection(
            self._host, self._port, ssl=tls, server_hostname=host, limit=_MAX_HEAD
        )

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn[1].close()
            with contextlib.suppress(Exception):
                await conn[1].wait_closed()
