"""The E2B event poll's GET without httpx (issue 10, idle tick: providers/keepalive_get.py).

Against the E2B double (the stream's quiet polls go through it, a new event still comes through
once) and against raw loopback HTTP/1.1 servers written byte by byte (chunked bodies, a closed
connection, what it does not read: then None, rest until `ok()`, out after MAX_FAILURES)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable

import pytest

from opcockpit.adapters.providers.e2b import E2BAdapter
from opcockpit.adapters.providers.keepalive_get import MAX_FAILURES, KeptAliveGet
from opcockpit.doubles.base import Request
from opcockpit.doubles.e2b import E2BDouble

SECRET = "e2b-secret-key-0123456789"


async def test_quiet_polls_go_without_httpx_and_a_new_event_comes_through_once() -> None:
    with E2BDouble(api_key=SECRET) as double:
        double.add()
        asked: list[Request] = []
        double.faults.on_request = lambda r: asked.append(r) if r.path.startswith("/events") else None
        adapter = E2BAdapter("e2b", base_url=double.url, api_key=SECRET, events_poll_s=0.01)
        stream = adapter.events()
        try:
            first = asyncio.ensure_future(anext(stream))
            while len(asked) < 3:  # the baseline and two quiet polls
                await asyncio.sleep(0.005)
            new = double.add(labels={"lease_id": "L7"}).instance_id
            event = await asyncio.wait_for(first, 10)
            n = len(asked)
            second = asyncio.ensure_future(anext(stream))
            while len(asked) < n + 2:  # two more quiet polls: nothing new
                await asyncio.sleep(0.005)
            assert not second.done()
            second.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await second
        finally:
            await stream.aclose()
            await adapter.aclose()
    assert event.instance_id == new and event.action == "sandbox.lifecycle.created"
    # The baseline on the ApiClient's lean GET, every poll after it on the stream's own: neither
    # is httpx (which asks gzip), so every page came as it is sent.
    coded = ["gzip" in r.headers.get("accept-encoding", "") for r in asked]
    assert not any(coded), coded
    assert all(r.headers.get("x-api-key") == SECRET for r in asked)
    assert adapter.request_count == len(asked)


async def _serve(answers: list[bytes]) -> tuple[asyncio.Server, list[bytes], int]:
    """A raw HTTP/1.1 server answering each request with the next of `answers` (bytes as is);
    an answer ending in b'<close>' closes the connection after it, b'<hang>' never answers.
    `got`: each request as it came (its body after the head)."""
    got: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                size = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                got.append(head + (await reader.readexactly(int(size.group(1))) if size else b""))
                answer = answers.pop(0)
                if answer == b"<hang>":
                    await reader.read()  # until the client gives up and closes
                close = answer.endswith(b"<close>")
                writer.write(answer.removesuffix(b"<close>"))
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, got, server.sockets[0].getsockname()[1]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[list[bytes]], object]]:
    servers: list[asyncio.Server] = []

    async def start(answers: list[bytes]) -> tuple[KeptAliveGet, list[bytes]]:
        server, got, port = await _serve(answers)
        servers.append(server)
        return KeptAliveGet(f"http://127.0.0.1:{port}/v1", {"X-API-Key": SECRET}, timeout=5.0, env={}), got

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def test_bodies_by_length_and_chunked_on_one_connection_then_reconnects(serve) -> None:  # type: ignore[no-untyped-def]
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"4\r\n[1,2\r\n2;x=y\r\n,3\r\n1\r\n]\r\n0\r\n\r\n"
    lean, got = await serve(
        [_ok(b"[]"), chunked, _ok(b"[9]", b"Connection: close\r\n") + b"<close>", _ok(b"[]")]
    )
    assert await lean.get("/events?limit=10") == (200, [(b"Content-Length", b"2")], b"[]")
    answer = await lean.get("/events?limit=10")
    assert answer is not None and answer[2] == b"[1,2,3]"
    answer = await lean.get("/events?limit=10")
    assert answer is not None and answer[2] == b"[9]"
    # The server closed after it (Connection: close): the next GET goes on a new connection.
    assert await lean.get("/events?limit=10") == (200, [(b"Content-Length", b"2")], b"[]")
    assert len(got) == 4
    assert got[0].startswith(b"GET /v1/events?limit=10 HTTP/1.1\r\n")
    assert b"X-API-Key: " + SECRET.encode() in got[0] and b"Accept-Encoding" not in got[0]
    await lean.aclose()


async def test_a_status_is_an_answer_but_a_compressed_body_is_not_read(serve) -> None:  # type: ignore[no-untyped-def]
    gz = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\nxx"
    lean, _ = await serve([b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n", gz])
    answer = await lean.get("/e")
    assert answer is not None and answer[0] == 429 and (b"Retry-After", b"7") in answer[1]
    assert await lean.get("/e") is None and lean.resting  # not read: httpx asks instead
    assert await lean.get("/e") is None  # resting: not even sent until the caller's request went through
    await lean.aclose()


async def test_failures_rest_until_ok_and_stop_after_max_failures(serve) -> None:  # type: ignore[no-untyped-def]
    bad = b"NOT HTTP AT ALL\r\n\r\n<close>"
    lean, got = await serve([bad] * (MAX_FAILURES + 1))
    for n in range(MAX_FAILURES):
        assert await lean.get("/e") is None
        assert len(got) == n + 1
        lean.ok()
    assert not lean.usable
    assert await lean.get("/e") is None and len(got) == MAX_FAILURES  # out for good
    await lean.aclose()


def test_a_proxy_in_the_environment_leaves_it_to_httpx() -> None:
    assert not KeptAliveGet("http://h", {}, timeout=1, env={"HTTPS_PROXY": "http://p:3128"}).usable
    assert not KeptAliveGet("https://h", {}, timeout=1, env={}).usable  # https without a TLS context
    assert KeptAliveGet("http://h", {}, timeout=1, env={"NO_PROXY": "*"}).usable
