"""ApiClient (providers/http.py) against a scripted double on 127.0.0.1 and a unix socket."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest

from opcockpit.adapters.providers import http as http_module
from opcockpit.adapters.providers.http import (
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MAX_PAGES,
    ApiClient,
    Page,
    error_class_for_status,
    parse_retry_after,
    redact,
)
from opcockpit.domain.secrets import redact as redact_secret
from opcockpit.doubles.base import FakeProvider, Request, Response, Router
from opcockpit.ports.provider import (
    AuthFailed,
    Conflict,
    NotFound,
    ProtocolError,
    ProviderError,
    RateLimited,
    Unavailable,
)
from tests.providers.contract import error_texts
from tests.providers.test_keepalive_get import _ok, _serve

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
        router.add("GET", "/trickle", self._trickle)
        router.add(
            "GET", "/echo-auth", lambda r: Response(400, {"message": f"bad header {r.header('x-key')}"})
        )

    def _status(self, request: Request, code: str) -> Response:
        return Response(int(code), {"message": f"scripted {code}"})

    def _queue(self, request: Request) -> Response:
        with self._gate:
            return self.script.pop(0) if self.script else Response(200, {"ok": True})

    def _trickle(self, request: Request) -> Response:
        """A stream that sends one line, then goes quiet for `s` seconds (a stalled /events)."""

        def chunks() -> Iterator[bytes]:
            yield b'{"n": 1}\n'
            self._stopping.wait(float(request.q("s") or "1"))
            yield b'{"n": 2}\n'

        return Response(200, stream=chunks())

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


@pytest.fixture(params=[True, False], ids=["lean", "httpx"])
async def client(double: ScriptedDouble, request: pytest.FixtureRequest) -> AsyncIterator[ApiClient]:
    """Every client test twice: plain GETs on the kept-alive connection without httpx (what the
    adapters use) and through httpx (what that falls back to, and every other request)."""
    api = ApiClient(
        "scripted",
        base_url=double.url,
        headers={"X-Key": SECRET},
        secrets=[SECRET],
        timeout=2.0,
        retries=2,
        backoff_base_s=0.01,
        lean=request.param,
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
    # The product's one redactor: a known secret shows as its redacted form, never the value.
    assert redact(f"key {SECRET} here", [SECRET]) == f"key {redact_secret(SECRET)} here"
    assert SECRET not in redact(f"key {SECRET} here", [SECRET])
    odd = "abc\ndef-SECRET"
    assert "def-SECRET" not in redact(f"Illegal header value b'Bearer {odd!r}'", [odd])
    assert "def-SECRET" not in redact(repr(odd.encode()), [odd])
    assert redact("Authorization: Bearer zzzzzz.yyy") == "Authorization: *** ***"
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
    assert f"bad header {redact_secret(SECRET)}" in str(info.value)  # the one redactor's form
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


# --------------------------------------------------------------------------- sleeps, exactly


class _RecordingAsyncio:
    """Stands in for the `asyncio` module inside one of our modules: `sleep` records the delay it
    was asked for and yields at once (the exact delays are asserted, no wall clock involved)."""

    def __init__(self, on_sleep: Callable[[int], None] | None = None) -> None:
        self.delays: list[float] = []
        self.on_sleep = on_sleep

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float, result: Any = None) -> Any:
        self.delays.append(delay)
        if self.on_sleep is not None:
            self.on_sleep(len(self.delays))
        await asyncio.sleep(0)
        return result


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> _RecordingAsyncio:
    recorder = _RecordingAsyncio()
    monkeypatch.setattr(http_module, "asyncio", recorder)
    return recorder


async def test_retries_exhausted_makes_exactly_retries_plus_one_attempts(
    double: ScriptedDouble, sleeps: _RecordingAsyncio
) -> None:
    api = ApiClient("scripted", base_url=double.url, retries=2, backoff_base_s=0.1)
    try:
        double.script = [Response(503, {"message": f"busy {n}"}) for n in range(5)]
        with pytest.raises(Unavailable) as info:
            await api.request("GET", "/queue")
        assert str(info.value) == "scripted: GET /queue -> HTTP 503: busy 2"  # the last answer
        assert api.request_count == 3
        assert len(double.script) == 2
        # Exponential backoff with equal jitter: attempt n sleeps in [c/2, c], c = base * 2**n.
        assert len(sleeps.delays) == 2
        assert 0.05 <= sleeps.delays[0] <= 0.1
        assert 0.1 <= sleeps.delays[1] <= 0.2
    finally:
        await api.aclose()


async def test_backoff_is_capped_by_max_sleep(double: ScriptedDouble, sleeps: _RecordingAsyncio) -> None:
    api = ApiClient("scripted", base_url=double.url, retries=3, backoff_base_s=1.0, max_sleep_s=1.5)
    try:
        double.script = [Response(502, {"message": "bad gateway"}) for _ in range(3)]
        assert await api.json("GET", "/queue") == {"ok": True}
        assert api.request_count == 4
        assert 0.5 <= sleeps.delays[0] <= 1.0
        assert all(0.75 <= d <= 1.5 for d in sleeps.delays[1:]) and len(sleeps.delays) == 3
    finally:
        await api.aclose()


async def test_retry_budget_exhausted_stops_early(double: ScriptedDouble, sleeps: _RecordingAsyncio) -> None:
    """Retry-After 1 s, budget 2.5 s: two waits fit (<= 2.2 s with jitter), a third would not."""
    api = ApiClient("scripted", base_url=double.url, retries=10, retry_budget_s=2.5)
    try:
        double.script = [Response(503, {"message": "later"}, {"Retry-After": "1"}) for _ in range(10)]
        with pytest.raises(Unavailable) as info:
            await api.request("GET", "/queue")
        assert str(info.value) == "scripted: GET /queue -> HTTP 503: later"
        assert api.request_count == 3
        assert len(sleeps.delays) == 2 and all(1.0 <= d <= 1.1 for d in sleeps.delays)
    finally:
        await api.aclose()


@pytest.mark.parametrize(
    ("status", "retry_after", "low", "high"), [(429, "2", 2.0, 2.2), (503, "4", 4.0, 4.25)]
)
async def test_retry_after_is_honoured(
    client: ApiClient,
    double: ScriptedDouble,
    sleeps: _RecordingAsyncio,
    status: int,
    retry_after: str,
    low: float,
    high: float,
) -> None:
    double.script = [Response(status, {"message": "wait"}, {"Retry-After": retry_after})]
    assert await client.json("GET", "/queue") == {"ok": True}
    assert client.request_count == 2
    assert len(sleeps.delays) == 1 and low <= sleeps.delays[0] <= high


async def test_retry_after_zero_retries_at_once(
    client: ApiClient, double: ScriptedDouble, sleeps: _RecordingAsyncio
) -> None:
    double.script = [Response(429, {"message": "now"}, {"Retry-After": "0"})]
    assert await client.json("GET", "/queue") == {"ok": True}
    assert sleeps.delays == [0.0]


async def test_503_retry_after_beyond_cap_is_not_waited_for(
    double: ScriptedDouble, sleeps: _RecordingAsyncio
) -> None:
    api = ApiClient("scripted", base_url=double.url, retries=3, max_sleep_s=1.0)
    try:
        double.script = [Response(503, {"message": "maintenance"}, {"Retry-After": "1.5"})]
        with pytest.raises(Unavailable) as info:
            await api.request("GET", "/queue")
        assert str(info.value) == "scripted: GET /queue -> HTTP 503: maintenance"
        assert (api.request_count, sleeps.delays) == (1, [])
        # Exactly at the cap it is still waited for.
        double.script = [Response(503, {"message": "maintenance"}, {"Retry-After": "1"})]
        assert await api.json("GET", "/queue") == {"ok": True}
        assert api.request_count == 3 and len(sleeps.delays) == 1 and 1.0 <= sleeps.delays[0] <= 1.1
    finally:
        await api.aclose()


async def test_rate_limited_carries_retry_after_and_is_not_retried_past_retries(
    double: ScriptedDouble, sleeps: _RecordingAsyncio
) -> None:
    api = ApiClient("scripted", base_url=double.url, retries=1)
    try:
        double.script = [Response(429, {"message": "quota"}, {"Retry-After": "0.5"}) for _ in range(3)]
        with pytest.raises(RateLimited) as info:
            await api.request("GET", "/queue")
        assert info.value.retry_after == 0.5
        assert str(info.value) == "scripted: GET /queue -> HTTP 429: quota"
        assert api.request_count == 2 and len(sleeps.delays) == 1
    finally:
        await api.aclose()


async def test_retry_disabled_never_sleeps(
    client: ApiClient, double: ScriptedDouble, sleeps: _RecordingAsyncio
) -> None:
    double.script = [Response(429, {"message": "no"}, {"Retry-After": "0"})]
    with pytest.raises(RateLimited):
        await client.request("GET", "/queue", retry=False)
    assert (client.request_count, sleeps.delays) == (1, [])


async def test_timeout_message_names_the_timeout(double: ScriptedDouble, sleeps: _RecordingAsyncio) -> None:
    api = ApiClient("scripted", base_url=double.url, timeout=5.0, retries=0)
    try:
        with pytest.raises(Unavailable) as info:
            await api.request("GET", "/slow", params={"s": "1"}, timeout=0.1)
        assert str(info.value) == "scripted: GET /slow: timed out after 0.1s (ReadTimeout)"
    finally:
        await api.aclose()


# --------------------------------------------------------------------------- streams


async def test_stream_timeout_before_headers_is_unavailable(double: ScriptedDouble) -> None:
    api = ApiClient("scripted", base_url=double.url, timeout=0.2)
    try:
        with pytest.raises(Unavailable) as info:
            async with api.stream("GET", "/slow", params={"s": "1"}, timeout=0.2):
                pytest.fail("no headers were due")
        assert type(info.value) is Unavailable
        assert str(info.value) == "scripted: GET /slow: stream timed out (ReadTimeout)"
        assert api.request_count == 1  # streams are not retried
    finally:
        await api.aclose()


async def test_stream_stalling_mid_body_is_unavailable_not_protocol_error(double: ScriptedDouble) -> None:
    api = ApiClient("scripted", base_url=double.url)
    got: list[bytes] = []
    try:
        with pytest.raises(Unavailable) as info:
            async with api.stream("GET", "/trickle", params={"s": "2"}, timeout=0.2) as response:
                async for chunk in response.aiter_bytes():
                    got.append(chunk)
        assert type(info.value) is Unavailable
        assert str(info.value) == "scripted: GET /trickle: stream timed out (ReadTimeout)"
        assert got == [b'{"n": 1}\n']
    finally:
        await api.aclose()


@pytest.mark.parametrize(("code", "cls"), [(401, AuthFailed), (404, NotFound), (503, Unavailable)])
async def test_stream_unexpected_status_is_typed(
    client: ApiClient, code: int, cls: type[ProviderError]
) -> None:
    with pytest.raises(cls) as info:
        async with client.stream("GET", f"/status/{code}"):
            pytest.fail("an error status must not be yielded")
    assert type(info.value) is cls
    assert str(info.value) == f"scripted: GET /status/{code} -> HTTP {code}: scripted {code}"
    assert client.request_count == 1


async def test_stream_connect_failure_is_unavailable() -> None:
    api = ApiClient("gone", base_url="unix:///nonexistent/dir/x.sock")
    try:
        with pytest.raises(Unavailable) as info:
            async with api.stream("GET", "/events"):
                pytest.fail("nothing listens")
        assert str(info.value).startswith("gone: GET /events: ConnectError")
    finally:
        await api.aclose()


# --------------------------------------------------------------------------- paginate


async def _paged(pages: list[Page[str]], **kw: Any) -> tuple[list[str], list[str | None]]:
    api = ApiClient("paged", base_url="http://127.0.0.1:9")
    asked: list[str | None] = []

    async def fetch(cursor: str | None) -> Page[str]:
        asked.append(cursor)
        return pages[len(asked) - 1]

    try:
        return await api.paginate("GET", "/list", fetch, **kw), asked
    finally:
        await api.aclose()


async def _paged_error(pages: list[Page[str]], **kw: Any) -> str:
    with pytest.raises(ProtocolError) as info:
        await _paged(pages, **kw)
    assert type(info.value) is ProtocolError
    return str(info.value)


async def test_paginate_follows_cursors_in_order() -> None:
    pages = [Page(["a", "b"], "c1"), Page(["c"], "c2"), Page(["d"], "")]
    items, asked = await _paged(pages)
    assert (items, asked) == (["a", "b", "c", "d"], [None, "c1", "c2"])
    items, asked = await _paged([Page(["x"], None)])
    assert (items, asked) == (["x"], [None])


async def test_paginate_caps_are_inclusive() -> None:
    pages = [Page(["a", "b"], "c1"), Page(["c", "d"], "c2"), Page(["e", "f"], None)]
    items, _ = await _paged(pages, max_pages=3, max_instances=6)
    assert len(items) == 6
    assert await _paged_error(pages, max_pages=2, max_instances=6) == (
        "paged: GET /list: listing exceeded max_pages=2 (the provider still hands out a next cursor)"
    )
    assert await _paged_error(pages, max_pages=3, max_instances=5) == (
        "paged: GET /list: listing exceeded max_instances=5 (6 after 3 pages)"
    )


async def test_paginate_defaults_are_the_config_defaults() -> None:
    assert (DEFAULT_MAX_PAGES, DEFAULT_MAX_INSTANCES) == (1000, 200_000)
    endless = [Page(["i"], f"c{n}") for n in range(1001)]
    assert await _paged_error(endless) == (
        "paged: GET /list: listing exceeded max_pages=1000 (the provider still hands out a next cursor)"
    )


async def test_paginate_repeated_cursor_anywhere() -> None:
    pages = [Page(["a"], "c1"), Page(["b"], "c2"), Page(["c"], "c1"), Page(["d"], None)]
    assert await _paged_error(pages) == "paged: GET /list: pagination cursor repeated after page 3"
    assert await _paged_error([Page([], "x"), Page([], "x")]) == (
        "paged: GET /list: pagination cursor repeated after page 2"
    )


async def test_paginate_checks_the_smallest_total() -> None:
    ok = [Page(["a", "b"], "c1", total=5), Page(["c", "d"], "c2", total=4), Page([], None, total=6)]
    assert len((await _paged(ok))[0]) == 4
    short = [Page(["a", "b"], "c1", total=5), Page(["c"], None, total=5)]
    assert await _paged_error(short, what="things") == (
        "paged: GET /list: incomplete listing: the provider counts 5 things but listed 3"
    )
    assert len((await _paged([Page([], None, total=0)]))[0]) == 0
    assert len((await _paged([Page(["a"], None, total=None)]))[0]) == 1


async def test_paginate_counts_distinct_counted_items_only() -> None:
    dupes = [Page(["a", "a"], None, total=2)]
    assert len((await _paged(dupes))[0]) == 2  # counted=None: every item counts
    assert await _paged_error(dupes, counted=lambda i: i) == (
        "paged: GET /list: incomplete listing: the provider counts 2 instances but listed 1"
    )
    mixed = [Page(["run-1", "paused-1", "run-2"], None, total=2)]

    def running(i: str) -> str | None:
        return i if i.startswith("run") else None

    assert len((await _paged(mixed, counted=running))[0]) == 3
    assert await _paged_error([Page(["run-1", "paused-1"], None, total=2)], counted=running) == (
        "paged: GET /list: incomplete listing: the provider counts 2 instances but listed 1"
    )


@pytest.mark.parametrize("client", [False], ids=["httpx"], indirect=True)  # a prepared httpx.Request
async def test_a_reused_get_is_built_once_and_still_retried(
    double: ScriptedDouble, client: ApiClient
) -> None:
    """Issue 10 (idle tick): `reuse=True` (an event feed polled every 2 s) sends the same prepared
    request again, with the client's headers and the params, and keeps the retry of a 503."""
    double.script = [Response(503, {"message": "busy"}), Response(200, {"n": 1}), Response(200, {"n": 2})]
    first = await client.request("GET", "/queue", params={"a": "1"}, reuse=True)  # 503, then 200
    second = await client.request("GET", "/queue", params={"a": "1"}, reuse=True)
    assert (first.json(), second.json()) == ({"n": 1}, {"n": 2})
    assert len(client._requests) == 1 and first.request is second.request  # built once
    assert first.request.url.params["a"] == "1" and first.request.headers["x-key"] == SECRET
    other = await client.request("GET", "/queue", params={"a": "2"}, reuse=True)
    assert other.request is not first.request and other.request.url.params["a"] == "2"


# --------------------------------------------------------------------------- the lean GET


async def _raw(answers: list[bytes], **kw: Any) -> tuple[ApiClient, list[bytes], asyncio.Server]:
    """An ApiClient on a raw HTTP/1.1 server written byte by byte (test_keepalive_get._serve)."""
    server, got, port = await _serve(answers)
    kw = {"retries": 0, "backoff_base_s": 0.01, **kw}
    return ApiClient("raw", base_url=f"http://127.0.0.1:{port}", headers={"X-Key": SECRET}, **kw), got, server


def _lean_sent(request: bytes) -> bool:
    """Sent by the lean GET: httpx asks for gzip, the lean GET asks for the body as it is."""
    return b"accept-encoding" not in request.lower() and SECRET.encode() in request


async def test_lean_get_reads_a_chunked_body_and_keeps_its_connection() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n[1,2\r\n3\r\n,3]\r\n0\r\n\r\n"
    api, got, server = await _raw([chunked, _ok(b"[]")])
    try:
        first = await api.request("GET", "/v", params={"a": "x y", "b": 2})
        second = await api.request("GET", "/v")
    finally:
        await api.aclose()
        server.close()
    assert (first.content, first.json(), second.content) == (b"[1,2,3]", [1, 2, 3], b"[]")
    assert got[0].startswith(b"GET /v?a=x+y&b=2 HTTP/1.1\r\n") and all(map(_lean_sent, got))
    assert api.request_count == 2


async def test_lean_get_opens_again_after_the_server_closed_the_idle_connection() -> None:
    # The first answer says keep-alive, then the server closes; then one drops a request unanswered.
    api, got, server = await _raw([_ok(b"[1]") + b"<close>", _ok(b"[2]"), b"<close>", _ok(b"[3]")])
    try:
        assert (await api.request("GET", "/v")).content == b"[1]"
        await asyncio.sleep(0.05)  # the server's close reaches the client while idle
        assert (await api.request("GET", "/v")).content == b"[2]"
        assert (await api.request("GET", "/v")).content == b"[3]"  # sent again on a new connection
    finally:
        await api.aclose()
        server.close()
    assert len(got) == 4 and all(map(_lean_sent, got))  # never through httpx
    assert api.request_count == 4  # the dropped one too


async def test_lean_get_cut_mid_body_is_asked_again_through_httpx_in_the_same_attempt() -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n[1,<close>"
    api, got, server = await _raw([cut, _ok(b"[1,2]")])
    try:
        assert (await api.request("GET", "/v")).json() == [1, 2]
    finally:
        await api.aclose()
        server.close()
    assert _lean_sent(got[0]) and not _lean_sent(got[1])  # the second is httpx's
    assert api.request_count == 2  # both were sent


async def test_lean_get_timeout_is_the_attempts_timeout_not_asked_again() -> None:
    api, got, server = await _raw([b"<hang>", _ok(b"[]")], timeout=0.2)
    try:
        with pytest.raises(Unavailable) as info:
            await api.request("GET", "/v")
    finally:
        await api.aclose()
        server.close()
    assert str(info.value) == "raw: GET /v: timed out after 0.2s (ReadTimeout)"
    assert len(got) == 1 and api.request_count == 1  # httpx did not wait the timeout once more


async def test_lean_get_429_with_retry_after_is_waited_then_rate_limited_past_the_cap() -> None:
    too_many = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: %s\r\nContent-Length: 19\r\n\r\n"
    too_many += b'{"message":"slow!"}'
    api, got, server = await _raw([too_many % b"0", _ok(b"[7]"), too_many % b"60"], retries=2)
    try:
        assert (await api.request("GET", "/v")).json() == [7]  # waited 0 s, then asked again
        with pytest.raises(RateLimited) as info:
            await api.request("GET", "/v")  # 60 s is past max_sleep_s: handed up at once
    finally:
        await api.aclose()
        server.close()
    assert info.value.retry_after == 60.0 and "HTTP 429: slow!" in str(info.value)
    assert len(got) == 3 and all(map(_lean_sent, got)) and api.request_count == 3


async def test_lean_get_statuses_are_typed_as_httpx_answers_are() -> None:
    def answer(status: bytes, body: bytes) -> bytes:
        return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)

    answers = [answer(b"404 Not Found", b'{"message":"no such"}'), answer(b"401 Unauthorized", b"{}")]
    answers += [answer(b"503 Unavailable", b"{}"), answer(b"204 No Content", b"")]
    api, got, server = await _raw(answers, retries=1)
    try:
        with pytest.raises(NotFound, match="GET /a -> HTTP 404: no such"):
            await api.request("GET", "/a")
        with pytest.raises(AuthFailed):
            await api.request("GET", "/b")
        response = await api.request("GET", "/c", expect=(204,))  # the 503 is retried
    finally:
        await api.aclose()
        server.close()
    assert response.status_code == 204 and all(map(_lean_sent, got)) and api.request_count == 4


async def test_a_read_posted_goes_lean_with_its_form_and_is_sent_again_when_dropped() -> None:
    """`idempotent=True` (AgentBay's listing RPCs): the form body and the call's headers go on the
    lean connection, and a kept connection that dropped it unanswered gets it once more; a POST
    that is not a read is sent by httpx only (never twice)."""
    api, got, server = await _raw([_ok(b"{}"), b"<close>", _ok(b'{"n":2}'), _ok(b"{}")])
    form = {"Authorization": "Bearer k", "Labels": '{"a": "b c"}'}
    try:
        for _ in range(2):
            response = await api.request(
                "POST", "/?Action=ListSession", params={"Action": "ListSession"}, data=form,
                headers={"x-acs-action": "ListSession"}, idempotent=True,
            )  # fmt: skip
        await api.request("POST", "/act", data=form)
    finally:
        await api.aclose()
        server.close()
    assert response.json() == {"n": 2} and len(got) == 4 and api.request_count == 4
    assert all(map(_lean_sent, got[:3])) and not _lean_sent(got[3])
    assert all(g.startswith(b"POST /?Action=ListSession HTTP/1.1\r\n") for g in got[:3])
    assert b"x-acs-action: ListSession" in got[0]
    body = b"Authorization=Bearer+k&Labels=%7B%22a%22%3A+%22b+c%22%7D"  # httpx's form encoding
    assert all(g.endswith(b"\r\n\r\n" + body) for g in got)


async def test_a_request_cancelled_in_flight_leaves_no_answer_for_the_next_one() -> None:
    """A listing cut short (the collector's timeout) while its page was asked: the connection is
    dropped, so the next request gets its own answer on a new one, still without httpx."""
    api, got, server = await _raw([_ok(b"[1]"), b"<hang>", _ok(b"[3]")])
    try:
        assert (await api.request("GET", "/v")).json() == [1]
        asked = asyncio.ensure_future(api.request("GET", "/v"))
        while len(got) < 2:
            await asyncio.sleep(0.005)
        asked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asked
        assert (await api.request("GET", "/v")).json() == [3]
    finally:
        await api.aclose()
        server.close()
    assert len(got) == 3 and all(map(_lean_sent, got))


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v", {"state": "running,paused", "limit": 100, "metadata": "a%3Db c"}),
        ("/v?a=1", {"b": "x y"}),  # the path's query is replaced, as httpx does
        ("/v?a=1", {}),
        ("/v?a=1", None),
        ("/v", {"t": True, "f": False, "n": None}),
    ],
)
async def test_lean_request_line_is_httpx_own(path: str, params: dict[str, Any] | None) -> None:
    api, got, server = await _raw([_ok(b"[]"), _ok(b"[]")])
    plain = ApiClient("raw", base_url=api.base_url, headers={"X-Key": SECRET}, lean=False)
    try:
        await api.request("GET", path, params=params)
        await plain.request("GET", path, params=params)
    finally:
        await api.aclose()
        await plain.aclose()
        server.close()
    assert _lean_sent(got[0]) and not _lean_sent(got[1])
    assert got[0].split(b"\r\n")[0] == got[1].split(b"\r\n")[0]


async def test_lean_get_reads_a_body_larger_than_the_event_polls_bound() -> None:
    big = b"[" + b"1," * (3 * 1024 * 1024) + b"1]"  # ~6 MB: a 12k-container Docker listing's size
    api, got, server = await _raw([_ok(big)])
    try:
        assert (await api.request("GET", "/containers/json")).content == big
    finally:
        await api.aclose()
        server.close()
    assert _lean_sent(got[0])


async def test_a_read_posted_with_a_header_of_the_clients_own_goes_through_httpx() -> None:
    """httpx replaces a client header the call sets again; the lean request would send both."""
    api, got, server = await _raw([_ok(b"{}")])
    try:
        await api.request("POST", "/rpc", data={"a": "1"}, headers={"X-Key": "another"}, idempotent=True)
    finally:
        await api.aclose()
        server.close()
    assert not _lean_sent(got[0]) and got[0].lower().count(b"x-key:") == 1 and b"another" in got[0]


async def test_on_response_sees_every_answer_lean_or_not() -> None:
    """The hook (AgentBay's own Retry-After header) is applied before the status is judged."""
    hinted = b"HTTP/1.1 503 Busy\r\nX-Wait: 0\r\nContent-Length: 2\r\n\r\n{}"
    seen: list[int] = []

    def hook(response: httpx.Response) -> None:
        seen.append(response.status_code)
        if "x-wait" in response.headers:
            response.headers["Retry-After"] = "30"  # past max_sleep_s: handed up at once

    for lean in (True, False):
        seen.clear()
        api, got, server = await _raw([hinted, _ok(b"{}")], retries=2, on_response=hook, lean=lean)
        try:
            with pytest.raises(Unavailable):
                await api.request("GET", "/v")
        finally:
            await api.aclose()
            server.close()
        assert seen == [503] and len(got) == 1 and _lean_sent(got[0]) is lean


async def test_a_client_given_a_transport_sends_everything_through_it() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, json=[])

    api = ApiClient("mock", base_url="http://127.0.0.1:9", transport=httpx.MockTransport(answer))
    try:
        assert (await api.request("GET", "/v", params={"a": "1"})).json() == []
    finally:
        await api.aclose()
    assert asked == ["http://127.0.0.1:9/v?a=1"]
