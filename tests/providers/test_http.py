"""ApiClient (providers/http.py) against a scripted double on 127.0.0.1 and a unix socket."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from opcockpit.doubles.base import FakeProvider, Request, Response, Router
from opcockpit.providers.base import (
    AuthFailed,
    Conflict,
    NotFound,
    ProtocolError,
    ProviderError,
    RateLimited,
    Unavailable,
)
from opcockpit.providers.http import ApiClient, error_class_for_status, parse_retry_after, redact
from tests.providers.contract import error_texts

SECRET = "sk-live-Hq93SECRETxyz"


class ScriptedDouble(FakeProvider):
    """Answers `/status/<code>` with that status, `/queue` from a script, tracks concurrency."""

    kind = "scripted"

    def __init__(self, **kw: object) -> None:
        self.script: list[Response] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._gate = threading.Lock()
        super().__init__(**kw)  # type: ignore[arg-type]

    def native_state(self, normal: str) -> str:
        return normal

    def _routes(self, router: Router) -> None:
        router.add("GET", r"/status/(?P<code>\d+)", self._status)
        router.add("GET", "/queue", self._queue)
        router.add("GET", "/text", lambda r: Response(200, b"<html>not json</html>"))
        router.add("GET", "/slow", self._slow)
        router.add(
            "GET", "/echo-auth", lambda r: Response(400, {"message": f"bad header {r.header('x-key')}"})
        )

    def _status(self, request: Request, code: str) -> Response:
        return Response(int(code), {"message": f"scripted {code}"})

    def _queue(self, request: Request) -> Response:
        with self._gate:
            return self.script.pop(0) if self.script else Response(200, {"ok": True})

    def _slow(self, request: Request) -> Response:
        with self._gate:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(float(request.q("s") or "0.1"))
        with self._gate:
            self.in_flight -= 1
        return Response(200, {"ok": True})


@pytest.fixture
def double() -> Iterator[ScriptedDouble]:
    with ScriptedDouble() as d:
        yield d  # type: ignore[misc]


@pytest.fixture
async def client(double: ScriptedDouble) -> AsyncIterator[ApiClient]:
    api = ApiClient(
        "scripted",
        base_url=double.url,
        headers={"X-Key": SECRET},
        secrets=[SECRET],
        timeout=2.0,
        retries=2,
        backoff_base_s=0.01,
    )
    yield api
    await api.aclose()


# --------------------------------------------------------------------------- pure helpers


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"Retry-After": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after": "-4"}) == 0.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None
    future = parse_retry_after({"Retry-After": formatdate(time.time() + 30, usegmt=True)})
    assert future is not None and 25 <= future <= 31
    assert parse_retry_after({"Retry-After": formatdate(time.time() - 30, usegmt=True)}) == 0.0
    scoped = {"Retry-After-authenticated": "2", "Retry-After-sandbox-lifecycle": "7"}
    assert parse_retry_after(scoped) == 7.0


def test_redact_known_secrets_escaped_spellings_and_patterns() -> None:
    assert redact(f"key {SECRET} here", [SECRET]) == "key *** here"
    odd = "abc\ndef-SECRET"
    assert "def-SECRET" not in redact(f"Illegal header value b'Bearer {odd!r}'", [odd])
    assert "def-SECRET" not in redact(repr(odd.encode()), [odd])
    assert redact("Authorization: Bearer zzzzzz.yyy") == "Authorization: ***"
    assert redact("sent bearer e2b_abcdef123456") == "sent bearer ***"
    assert redact("X-API-Key: whatever") == "X-API-Key: ***"
    assert redact("nothing here", [None, "", "ab"]) == "nothing here"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, AuthFailed),
        (403, AuthFailed),
        (404, NotFound),
        (409, Conflict),
        (400, Conflict),
        (422, Conflict),
        (429, RateLimited),
        (500, Unavailable),
        (503, Unavailable),
        (418, ProtocolError),
        (302, ProtocolError),
    ],
)
def test_status_classes(status: int, cls: type[ProviderError]) -> None:
    assert error_class_for_status(status) is cls


# --------------------------------------------------------------------------- over the wire


@pytest.mark.parametrize(
    ("code", "cls", "attempts"),
    [
        (401, AuthFailed, 1),
        (404, NotFound, 1),
        (409, Conflict, 1),
        (500, Unavailable, 1),
        (503, Unavailable, 3),
    ],
)
async def test_status_mapping_and_retries(
    client: ApiClient, code: int, cls: type[ProviderError], attempts: int
) -> None:
    with pytest.raises(cls) as info:
        await client.request("GET", f"/status/{code}")
    text = str(info.value)
    assert text == f"scripted: GET /status/{code} -> HTTP {code}: scripted {code}"
    assert "\n" not in text
    assert client.request_count == attempts  # only 429/502/503/504 are retried


async def test_expected_statuses_are_returned(client: ApiClient) -> None:
    response = await client.request("GET", "/status/409", expect=(204, 409))
    assert response.status_code == 409


async def test_retry_after_http_date_then_success(client: ApiClient, double: ScriptedDouble) -> None:
    double.script = [
        Response(429, {"message": "slow down"}, {"Retry-After": formatdate(time.time(), usegmt=True)})
    ]
    assert await client.json("GET", "/queue") == {"ok": True}
    assert client.request_count == 2


async def test_retry_after_beyond_cap_is_rate_limited_at_once(double: ScriptedDouble) -> None:
    api = ApiClient("scripted", base_url=double.url, retries=5, max_sleep_s=1.0)
    try:
        double.script = [Response(429, {"message": "quota"}, {"Retry-After": "120"})]
        with pytest.raises(RateLimited) as info:
            await api.request("GET", "/queue")
        assert info.value.retry_after == 120
        assert api.request_count == 1  # no hanging for two minutes
    finally:
        await api.aclose()


async def test_transient_502_then_success(client: ApiClient, double: ScriptedDouble) -> None:
    double.script = [Response(502, {"message": "bad gateway"}), Response(504, b"")]
    assert await client.json("GET", "/queue") == {"ok": True}
    assert client.request_count == 3


async def test_retry_disabled(client: ApiClient, double: ScriptedDouble) -> None:
    double.script = [Response(503, {"message": "busy"})]
    with pytest.raises(Unavailable):
        await client.request("GET", "/queue", retry=False)
    assert client.request_count == 1


async def test_non_json_is_protocol_error(client: ApiClient) -> None:
    with pytest.raises(ProtocolError) as info:
        await client.json("GET", "/text")
    assert "not JSON" in str(info.value)


async def test_timeout_is_unavailable_after_retries(double: ScriptedDouble) -> None:
    api = ApiClient("scripted", base_url=double.url, timeout=0.1, retries=1, backoff_base_s=0.01)
    try:
        with pytest.raises(Unavailable) as info:
            await api.request("GET", "/slow", params={"s": "0.5"})
        assert "timed out" in str(info.value)
        assert api.request_count == 2
    finally:
        await api.aclose()


async def test_bounded_concurrency(double: ScriptedDouble) -> None:
    api = ApiClient("scripted", base_url=double.url, max_concurrency=2, timeout=5)
    try:
        await asyncio.gather(*(api.request("GET", "/slow", params={"s": "0.05"}) for _ in range(8)))
        assert double.max_in_flight == 2
        assert api.request_count == 8
    finally:
        await api.aclose()


async def test_unix_socket_transport(tmp_path: Path) -> None:
    with ScriptedDouble(unix_path=str(tmp_path / "api.sock")) as d:
        api = ApiClient("sock", base_url=d.url)
        try:
            assert await api.json("GET", "/queue") == {"ok": True}
            assert "sock" in repr(api)
        finally:
            await api.aclose()


async def test_provider_message_echoing_the_secret_is_scrubbed(client: ApiClient) -> None:
    with pytest.raises(Conflict) as info:
        await client.request("GET", "/echo-auth")
    assert "bad header ***" in str(info.value)
    assert all(SECRET not in t for t in error_texts(info.value))
    assert SECRET not in repr(client)


async def test_httpx_exception_text_with_secret_is_scrubbed(double: ScriptedDouble) -> None:
    """A key with a newline makes h11 refuse the header and quote it in its exception text."""
    bad_key = "line1\nline2-SECRETPART"
    api = ApiClient("scripted", base_url=double.url, headers={"X-Key": bad_key}, secrets=[bad_key], retries=0)
    try:
        with pytest.raises(ProviderError) as info:
            await api.request("GET", "/queue")
        for text in error_texts(info.value):
            assert "SECRETPART" not in text
        assert info.value.__cause__ is None and info.value.__suppress_context__
    finally:
        await api.aclose()


async def test_connection_refused_is_unavailable() -> None:
    api = ApiClient("gone", base_url="unix:///nonexistent/dir/x.sock", retries=1, backoff_base_s=0.01)
    try:
        with pytest.raises(Unavailable) as info:
            await api.request("GET", "/queue")
        assert "ConnectError" in str(info.value)
        assert api.request_count == 2
    finally:
        await api.aclose()
