"""Exact assertions that kill the mutants of providers/http.py that survived the broad tests
(docs/mutation.md): the provider-message keys, what ApiClient's repr shows, the backoff arithmetic.

The backoff draws from the module-level `random`; the tests seed it and replay the same draw, so
the expected delay is exact without sleeping or reading a clock.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import pytest

from opcockpit.adapters.providers.http import (
    ApiClient,
    _default_message,
    error_class_for_status,
    parse_retry_after,
)
from opcockpit.ports.provider import AuthFailed, Conflict, NotFound, ProtocolError, RateLimited, Unavailable

SECRET = "sk-live-Mut4nt5SECRETkey"


def _response(status: int, body: object) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(status, content=raw, request=httpx.Request("GET", "http://127.0.0.1/x"))


# --------------------------------------------------------------------------- provider messages


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"message": "lower"}, "lower"),
        ({"Message": "Docker says"}, "Docker says"),  # Docker/Podman spell it with a capital
        ({"error": "e2b says"}, "e2b says"),
        ({"Error": "capital error"}, "capital error"),
        ({"detail": "fastapi detail"}, "fastapi detail"),
        ({"Code": "AgentBay.Code"}, "AgentBay.Code"),
        ({"code": "lower_code"}, "lower_code"),
        ({"detail": ["a", "b"]}, "a; b"),  # lists are joined, not repr'd
        # The first present key in the documented order wins.
        ({"Message": "M", "error": "e"}, "M"),
        ({"error": "e", "Error": "E", "detail": "d"}, "e"),
        ({"Error": "E", "detail": "d"}, "E"),
        # Empty values are skipped, not returned.
        ({"message": "", "Message": "M"}, "M"),
        ({"message": None, "error": "e"}, "e"),
    ],
)
def test_default_message_reads_each_key_in_order(body: dict[str, object], expected: str) -> None:
    assert _default_message(_response(400, body)) == expected


@pytest.mark.parametrize(
    "body",
    [{"MESSAGE": "no"}, {"ERROR": "no"}, {"XXMessageXX": "no"}, {"XXerrorXX": "no"}, ["a list"]],
)
def test_default_message_ignores_other_keys_and_falls_back_to_the_body(body: object) -> None:
    resp = _response(400, body)
    assert _default_message(resp) == resp.text == json.dumps(body)


def test_default_message_of_a_non_json_body_is_the_text() -> None:
    assert _default_message(_response(502, b"<html>bad gateway</html>")) == "<html>bad gateway</html>"


# --------------------------------------------------------------------------- repr


async def test_repr_of_a_tcp_client_shows_provider_and_base_url_never_the_key() -> None:
    api = ApiClient("e2b", base_url="http://127.0.0.1:9/v1/", headers={"X-API-Key": SECRET}, secrets=[SECRET])
    try:
        assert repr(api) == "ApiClient(provider='e2b', base_url='http://127.0.0.1:9/v1')"
        assert SECRET not in repr(api) and SECRET not in str(api)
    finally:
        await api.aclose()


async def test_repr_of_a_unix_socket_client_shows_the_socket(tmp_path: Path) -> None:
    sock = tmp_path / "docker.sock"
    api = ApiClient("docker", base_url=f"unix://{sock}", headers={"Authorization": f"Bearer {SECRET}"})
    try:
        assert repr(api) == f"ApiClient(provider='docker', base_url='unix://{sock}')"
        assert SECRET not in repr(api)
    finally:
        await api.aclose()


async def test_repr_of_tcp_scheme_is_rewritten_to_http() -> None:
    api = ApiClient("podman", base_url="tcp://127.0.0.1:8888")
    try:
        assert repr(api) == "ApiClient(provider='podman', base_url='http://127.0.0.1:8888')"
    finally:
        await api.aclose()


# --------------------------------------------------------------------------- backoff arithmetic


def _expected_backoff(seed: int, base: float, cap: float, attempt: int) -> float:
    """The documented formula: ceiling c = min(cap, base * 2**attempt); delay = c/2 + U(0, c/2)."""
    ceiling = min(cap, base * 2**attempt)
    rng = random.Random(seed)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 4])
async def test_backoff_is_exact_equal_jitter_for_a_seeded_draw(attempt: int) -> None:
    # base 0.3, cap far away: 2**attempt vs 2*attempt / 3**attempt differ at attempts 0, 3, 4.
    api = ApiClient("scripted", base_url="http://127.0.0.1:9", backoff_base_s=0.3, max_sleep_s=100.0)
    state = random.getstate()
    try:
        random.seed(1234)
        got = api._backoff(attempt)
    finally:
        random.setstate(state)
        await api.aclose()
    assert got == pytest.approx(_expected_backoff(1234, 0.3, 100.0, attempt), abs=1e-12)
    ceiling = 0.3 * 2**attempt
    assert ceiling / 2 <= got <= ceiling  # never ~0, never above the ceiling


async def test_backoff_ceiling_is_capped_by_max_sleep() -> None:
    api = ApiClient("scripted", base_url="http://127.0.0.1:9", backoff_base_s=1.0, max_sleep_s=1.5)
    state = random.getstate()
    try:
        random.seed(99)
        got = [api._backoff(a) for a in (0, 1, 5)]
    finally:
        random.setstate(state)
        await api.aclose()
    rng = random.Random(99)
    assert got == pytest.approx(
        [0.5 + rng.uniform(0, 0.5), 0.75 + rng.uniform(0, 0.75), 0.75 + rng.uniform(0, 0.75)], abs=1e-12
    )


async def test_backoff_bounds_hold_for_every_draw() -> None:
    """c/2 <= delay <= c over many draws (kills a jitter floor of 1 or a minus sign with any seed)."""
    api = ApiClient("scripted", base_url="http://127.0.0.1:9", backoff_base_s=0.1, max_sleep_s=5.0)
    state = random.getstate()
    try:
        random.seed(7)
        delays = [(a, api._backoff(a)) for a in range(8) for _ in range(25)]
    finally:
        random.setstate(state)
        await api.aclose()
    for attempt, d in delays:
        c = min(5.0, 0.1 * 2**attempt)
        assert c / 2 <= d <= c, (attempt, d)


# --------------------------------------------------------------------------- statuses and Retry-After


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, Conflict), (401, AuthFailed), (403, AuthFailed), (404, NotFound), (409, Conflict),
        (412, Conflict), (413, ProtocolError), (422, Conflict), (423, Conflict), (424, ProtocolError),
        (429, RateLimited), (499, ProtocolError), (500, Unavailable), (501, Unavailable), (503, Unavailable),
    ],
)  # fmt: skip
def test_error_class_for_each_status(status: int, cls: type) -> None:
    assert error_class_for_status(status) is cls


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # an HTTP date in the past: now
        ({"Retry-After": "soon"}, None),
        ({"Retry-After-a": "not a date", "Retry-After-b": "7"}, 7.0),  # a bad one does not stop the scan
        ({"Retry-After-a": "Wed, 21 Oct 2015 07:28:00 GMT", "Retry-After-b": "2.5"}, 2.5),
        ({"Retry-After": "-3"}, 0.0),
    ],
)
def test_parse_retry_after_dates_and_bad_values(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers) == seconds


async def test_a_failing_message_extractor_falls_back_to_the_reason_phrase() -> None:
    def broken(response: httpx.Response) -> str:
        raise KeyError("no such field")

    api = ApiClient("p", base_url="http://127.0.0.1:9", message_of=broken)
    try:
        err = api.status_error("get", "/x", _response(503, {"message": "ignored"}))
    finally:
        await api.aclose()
    assert type(err) is Unavailable
    assert str(err) == "p: GET /x -> HTTP 503: Service Unavailable"
