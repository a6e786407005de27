"""Shared HTTP plumbing for the provider adapters (httpx, no vendor SDKs).

One `ApiClient` per configured provider gives the adapters:
- a base URL (`http(s)://…`, `tcp://h:p`) or a unix socket (`unix:///path` or `uds=`),
- a per-request timeout and bounded concurrency (an asyncio.Semaphore per client),
- retries with exponential backoff + jitter on 429/502/503/504 and connection errors/timeouts,
  honouring `Retry-After` (seconds or HTTP date, also Daytona's `Retry-After-<throttler>`), with
  every sleep capped so a listing can never hang for long,
- a request counter (`request_count`, every HTTP attempt counts),
- mapping of failures to the typed errors of `providers.base`, with one-line messages that name
  provider, method, path, status and the provider's own message, and never a secret,
- `paginate`: the one paging loop of every adapter, bounded in pages and instances (a provider
  handing out endless cursors must not grow the cockpit without limit), refusing a repeated
  cursor, and checking the listing against the provider's own total where it reports one (a
  listing that silently comes up short must fail, not show instances as gone).

A plain GET (no body, no headers of its own: every listing page) goes on one kept-alive
connection without httpx's client and pool (`keepalive_get.KeptAliveGet`, read by h11: ~0.3 ms
of CPU instead of ~1 ms a page, issue 10); its answer is wrapped in an httpx.Response and handled
by the same status, retry and error code. What it cannot read (a proxy in the environment, a
compressed or malformed answer, a broken connection, a request while one is in flight) is asked
through httpx in the same attempt; a client given its own transport (tests, AgentBay's header
hint) always asks through that transport.

Secrets (API keys) travel only in headers or form bodies. As a second line of defence every
message is passed through `redact`, which scrubs the known secrets and anything that looks like
a credential, and exceptions are raised `from None` so no httpx exception (whose text we do not
control) hangs off them as `__cause__`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json as jsonlib
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

from opcockpit.adapters.providers.keepalive_get import KeptAliveGet
from opcockpit.adapters.providers.lean_httpx import httpx
from opcockpit.domain.secrets import scrub
from opcockpit.domain.text import one_line
from opcockpit.ports.provider import (
    AuthFailed,
    Conflict,
    NotFound,
    ProtocolError,
    ProviderError,
    RateLimited,
    Unavailable,
)

__all__ = [
    "DEFAULT_MAX_INSTANCES",
    "DEFAULT_MAX_PAGES",
    "RETRY_STATUSES",
    "ApiClient",
    "Page",
    "error_class_for_status",
    "parse_retry_after",
    "redact",
    "shared_tls",
]

RETRY_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})


# A lean GET's body bound: far above any listing (a 12k-container Docker listing is ~6 MB).
_LEAN_MAX_BODY = 512 * 1024 * 1024

# Per-listing caps; the same defaults as ProviderConfig.max_pages / max_instances.
DEFAULT_MAX_PAGES = 1000
DEFAULT_MAX_INSTANCES = 200_000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing as an adapter decoded it."""

    items: Sequence[T]
    cursor: str | None = None  # where the next page starts; None or "" = this was the last page
    total: int | None = None  # the provider's own count of what the whole listing holds, if any


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Scrub `secrets` (every spelling), every secret the config loader learnt, and anything
    credential-shaped from `text`: the product's one redactor (opcockpit.domain.secrets.scrub)."""
    return scrub(text, secrets)


def parse_retry_after(headers: httpx.Headers | Mapping[str, str]) -> float | None:
    """Seconds to wait from `Retry-After` (delta seconds or HTTP date) or `Retry-After-<scope>`.

    With several scoped headers (Daytona sends one per throttler) the largest wins.
    """
    values = [v for k, v in headers.items() if k.lower().startswith("retry-after")]
    best: float | None = None
    for raw in values:
        raw = raw.strip()
        seconds: float | None
        try:
            seconds = max(0.0, float(raw))
        except ValueError:
            try:
                when = parsedate_to_datetime(raw)
            except (TypeError, ValueError, IndexError):
                continue
            if when is None:
                continue
            seconds = max(0.0, when.timestamp() - time.time())
        if best is None or seconds > best:
            best = seconds
    return best


def error_class_for_status(status: int) -> type[ProviderError]:
    """The typed error for an HTTP status the caller did not expect."""
    if status in (401, 403):
        return AuthFailed
    if status == 404:
        return NotFound
    # 400/422 on these lifecycle APIs mean "not in a state that allows this" (Daytona stop of a
    # stopped sandbox, pause of a container-class sandbox); 409 is a transition in flight.
    if status in (400, 409, 412, 422, 423):
        return Conflict
    if status == 429:
        return RateLimited
    if status >= 500:
        return Unavailable
    return ProtocolError


def _default_message(response: httpx.Response) -> str:
    """The provider's own words: `message`/`Message`/`error` from a JSON body, else the text."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text
    if isinstance(body, dict):
        for key in ("message", "Message", "error", "Error", "detail", "Code", "code"):
            value = body.get(key)
            if isinstance(value, list):
                value = "; ".join(str(v) for v in value)
            if value not in (None, ""):
                return str(value)
    return response.text


@functools.cache
def shared_tls() -> ssl.SSLContext:
    """One TLS context for every provider transport. httpx makes one per transport by default and
    each parses the CA bundle: ~1.5 MB of RSS per adapter in the live cockpit (issue 10); the
    settings (verify, SSL_CERT_FILE/SSL_CERT_DIR) are the same for all of them."""
    return httpx.create_ssl_context()


class ApiClient:
    """An httpx.AsyncClient wrapped with retry, limits, counting and typed errors.

    `request(..., expect=(200,))` returns the response when its status is in `expect` and raises
    the typed error otherwise (after retries for retryable statuses). Put statuses you want to
    interpret yourself into `expect` (e.g. `expect=(204, 409)` for an idempotent pause).
    """

    def __init__(
        self,
        provider: str,
        *,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str | None] = (),
        timeout: float = 10.0,
        max_concurrency: int = 8,
        retries: int = 3,
        uds: str | None = None,
        backoff_base_s: float = 0.1,
        max_sleep_s: float = 5.0,
        retry_budget_s: float = 15.0,
        message_of: Callable[[httpx.Response], str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        lean: bool = True,
        on_response: Callable[[httpx.Response], object] | None = None,
    ) -> None:
        self.provider = provider
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff_base_s = backoff_base_s
        self.max_sleep_s = max_sleep_s
        self.retry_budget_s = retry_budget_s
        self.request_count = 0
        self._secrets = tuple(s for s in secrets if s)
        self._message_of = message_of or _default_message
        self._on_response = on_response  # sees every answer first (AgentBay's own Retry-After)
        self._sem = asyncio.Semaphore(max(1, max_concurrency))

        base_url, uds = _resolve_base(base_url, uds)
        self.base_url = base_url
        self.uds = uds
        lean = lean and transport is None
        if transport is None:
            # Retries are ours (with Retry-After and counting); httpx's own are connect-only.
            transport = httpx.AsyncHTTPTransport(
                uds=uds,
                retries=0,
                limits=httpx.Limits(max_connections=max(1, max_concurrency), max_keepalive_connections=8),
                verify=shared_tls(),
            )
        self._requests: dict[tuple[Any, ...], httpx.Request] = {}  # request(reuse=True)'s
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )
        # Plain GETs without httpx, on our own transport only (a given one must see every request).
        self._lean = self.lean_get(max_body=_LEAN_MAX_BODY) if lean else None

    def lean_get(self, max_body: int | None = None) -> KeptAliveGet:
        """A kept-alive GET without httpx on this client's origin and headers (the key, its
        User-Agent) but no content coding: the answer as it is sent. Its requests are counted."""
        skip = ("accept-encoding", "accept", "connection", "host")
        headers = {k: v for k, v in self.http.headers.items() if k.lower() not in skip}
        tls = shared_tls() if self.base_url.startswith("https:") else None
        extra = {} if max_body is None else {"max_body": max_body}
        return KeptAliveGet(
            self.base_url, headers, timeout=self.timeout, uds=self.uds, tls=tls, on_send=self._sent, **extra
        )

    def _sent(self) -> None:
        self.request_count += 1  # a lean request as it is written: every HTTP attempt counts

    def __repr__(self) -> str:  # never the headers: they hold the key
        where = f"unix://{self.uds}" if self.uds else self.base_url
        return f"ApiClient(provider={self.provider!r}, base_url={where!r})"

    # -- messages and errors ------------------------------------------------------------------

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def error(
        self,
        cls: type[ProviderError],
        method: str,
        path: str,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> ProviderError:
        """Build a one-line, redacted typed error: `<METHOD> <path> -> HTTP <status>: <detail>`.

        The provider name is prefixed by `ProviderError.__str__`.
        """
        where = f"{method.upper()} {path}"
        if status is not None:
            where += f" -> HTTP {status}"
        # Redact before clipping: a clip through the middle of a secret would hide it from the scrub.
        text = one_line(self.redact(f"{where}: {detail}" if detail else where))
        if cls is RateLimited or issubclass(cls, RateLimited):
            return cls(text, retry_after=retry_after, provider=self.provider)  # type: ignore[call-arg]
        return cls(text, provider=self.provider)

    def protocol_error(self, method: str, path: str, detail: str) -> ProtocolError:
        err = self.error(ProtocolError, method, path, detail)
        assert isinstance(err, ProtocolError)
        return err

    def status_error(self, method: str, path: str, response: httpx.Response) -> ProviderError:
        """The typed error for an unexpected response status."""
        try:
            detail = self._message_of(response)
        except Exception:  # a message extractor must never hide the real error
            detail = ""
        status = response.status_code
        return self.error(
            error_class_for_status(status),
            method,
            path,
            detail or response.reason_phrase,
            status=status,
            retry_after=parse_retry_after(response.headers) if status == 429 else None,
        )

    # -- requests -------------------------------------------------------------------------------

    @staticmethod
    def _timeout(timeout: float | None) -> Any:
        return httpx.Timeout(timeout) if timeout is not None else httpx.USE_CLIENT_DEFAULT

    def _prepared(self, method: str, path: str, params: Any, timeout: float | None) -> httpx.Request | None:
        """The request for a `reuse` call, built once per (method, path, params, timeout)."""
        if method != "GET" or not (params is None or isinstance(params, Mapping)):
            return None
        key = (method, path, tuple(sorted((params or {}).items())), timeout)
        cache = self._requests
        req = cache.get(key)
        if req is None:
            if len(cache) >= 64:  # a few polled URLs; never a pager's cursors
                cache.clear()
            req = self.http.build_request(method, path, params=params, timeout=self._timeout(timeout))
            cache[key] = req
        return req

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.max_sleep_s, self.backoff_base_s * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # "equal jitter": never ~0

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        expect: Collection[int] = (200,),
        timeout: float | None = None,
        retry: bool = True,
        reuse: bool = False,
        idempotent: bool = False,
    ) -> httpx.Response:
        """One logical call: retried on 429/502/503/504 and transport errors, then typed errors.

        `reuse` (a GET polled with the same path and params, e.g. an event feed every 2 s): the
        request is built once and sent again (httpx's URL parsing and header merging were ~15 %
        of such a poll's CPU). `idempotent`: a POST that only reads (AgentBay's listing RPCs)
        goes on the lean connection like a plain GET, its form body and headers with it."""
        method = method.upper()
        # Only a plain GET is prepared: its body and per-call headers are not part of the key.
        plain = reuse and json is None and data is None and headers is None
        prepared = self._prepared(method, path, params, timeout) if plain else None
        plain_get = method == "GET" and data is None and headers is None
        lean = self._lean if json is None and (plain_get or (method == "POST" and idempotent)) else None
        slept = 0.0
        attempt = 0
        while True:
            delay: float | None = None
            failure: ProviderError
            try:
                async with self._sem:
                    response = (
                        await self._lean_send(lean, method, path, params, data, headers, timeout)
                        if lean
                        else None
                    )
                    if response is None:
                        self.request_count += 1
                        # What httpx's client.request does (build, send), a prepared GET built once.
                        request = prepared or self.http.build_request(
                            method, path, params=params, json=json, data=data, headers=headers,
                            timeout=self._timeout(timeout),
                        )  # fmt: skip
                        response = await self.http.send(request)
                        if lean is not None:
                            lean.ok()
                    if self._on_response is not None:
                        self._on_response(response)
            except httpx.TimeoutException as exc:
                secs = timeout if timeout is not None else self.timeout
                failure = self.error(
                    Unavailable, method, path, f"timed out after {secs:g}s ({type(exc).__name__})"
                )
            except httpx.HTTPError as exc:
                failure = self.error(Unavailable, method, path, f"{type(exc).__name__}: {exc}")
            except (ValueError, UnicodeError) as exc:  # e.g. a key that cannot go into a header
                raise self.error(
                    ProtocolError, method, path, f"cannot send request: {type(exc).__name__}: {exc}"
                ) from None
            else:
                status = response.status_code
                if status in expect:
                    return response
                failure = self.status_error(method, path, response)
                if status not in RETRY_STATUSES:
                    raise failure from None
                retry_after = parse_retry_after(response.headers)
                if retry_after is not None:
                    if retry_after > self.max_sleep_s:
                        # Waiting less than asked only earns another 429; hand it up instead.
                        raise failure from None
                    delay = retry_after + random.uniform(0, min(0.1 * retry_after, 0.25))
            if not retry or attempt >= self.retries:
                raise failure from None
            if delay is None:
                delay = self._backoff(attempt)
            if slept + delay > self.retry_budget_s:
                raise failure from None
            attempt += 1
            slept += delay
            await asyncio.sleep(delay)

    async def _lean_send(
        self,
        lean: KeptAliveGet,
        method: str,
        path: str,
        params: Any,
        data: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        timeout: float | None,
    ) -> httpx.Response | None:
        """The request on the lean connection, its answer as an httpx.Response; None: ask through
        httpx. Its timeout is the attempt's: raised as httpx's, so it is typed and retried alike."""
        if not (params is None or isinstance(params, Mapping)) or (headers and self._overrides(headers)):
            return None  # httpx merges these its own way
        target = path
        if params is not None:  # the whole query, as httpx makes it (one in the path is replaced)
            query = str(httpx.QueryParams(params))
            target = f"{path.partition('?')[0]}?{query}" if query else path.partition("?")[0]
        if data is None:
            answer = await lean.ask(method, target, timeout=timeout)
        else:
            body = str(httpx.QueryParams(data)).encode()  # httpx's form encoding
            sent = [("Content-Type", "application/x-www-form-urlencoded"), *(headers or {}).items()]
            answer = await lean.ask(method, target, body, sent, timeout)
        if answer is None:
            if lean.timed_out:
                raise httpx.ReadTimeout("timed out")
            return None
        status, raw, content = answer
        return httpx.Response(status, headers=raw, content=content)

    def _overrides(self, headers: Mapping[str, str]) -> bool:
        """Per-call headers replacing one of the client's (httpx replaces, the lean GET would
        send both)."""
        return any(name in self.http.headers for name in headers)

    async def json(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        expect: Collection[int] = (200,),
        timeout: float | None = None,
        retry: bool = True,
    ) -> Any:
        """`request` + JSON decoding; undecodable bodies raise ProtocolError."""
        response = await self.request(
            method,
            path,
            params=params,
            json=json,
            data=data,
            headers=headers,
            expect=expect,
            timeout=timeout,
            retry=retry,
        )
        return self.decode(method, path, response)

    async def paginate(
        self,
        method: str,
        path: str,
        fetch: Callable[[str | None], Awaitable[Page[T]]],
        *,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_instances: int = DEFAULT_MAX_INSTANCES,
        counted: Callable[[T], str | None] | None = None,
        what: str = "instances",
    ) -> list[T]:
        """Every page of one listing: `fetch(None)`, then `fetch(cursor)` while a cursor comes back.

        Fails the whole listing with ProtocolError (never a short list) when the provider hands
        out more than `max_pages` pages or `max_instances` items, repeats a cursor, or lists fewer
        than its own total. `counted(item)` names the items the totals count (their id, or None
        for items outside the total, e.g. E2B's paused sandboxes); default: every item.

        Totals are compared with the *smallest* one reported: each page's total is right for its
        own moment, so an instance killed after page 1 lowers the later ones, and one created
        after page 1 (behind the cursor) only raises them. A kill and a create between the same
        two pages can still make an honest listing look short: it then fails one refresh.
        """
        items: list[T] = []
        seen: set[str] = set()
        smallest_total: int | None = None
        cursor: str | None = None
        pages = 0
        while True:
            page = await fetch(cursor)
            pages += 1
            items.extend(page.items)
            if len(items) > max_instances:
                raise self.protocol_error(
                    method,
                    path,
                    f"listing exceeded max_instances={max_instances} ({len(items)} after {pages} pages)",
                )
            if page.total is not None and (smallest_total is None or page.total < smallest_total):
                smallest_total = page.total
            cursor = page.cursor
            if not cursor:
                break
            if cursor in seen:  # a looping cursor would otherwise list forever
                raise self.protocol_error(method, path, f"pagination cursor repeated after page {pages}")
            if pages >= max_pages:
                raise self.protocol_error(
                    method,
                    path,
                    f"listing exceeded max_pages={max_pages} (the provider still hands out a next cursor)",
                )
            seen.add(cursor)
        if smallest_total is not None:
            if counted is None:
                listed = len(items)
            else:
                keys = set(map(counted, items))  # in C: ~2x the comprehension's speed (issue 10)
                keys.discard(None)
                listed = len(keys)
            if listed < smallest_total:
                raise self.protocol_error(
                    method,
                    path,
                    f"incomplete listing: the provider counts {smallest_total} {what} but listed {listed}",
                )
        return items

    def decode(self, method: str, path: str, response: httpx.Response) -> Any:
        try:
            return jsonlib.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self.protocol_error(
                method, path, f"HTTP {response.status_code} body is not JSON ({type(exc).__name__})"
            ) from None

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        expect: Collection[int] = (200,),
        timeout: float | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A long-lived streaming response (Docker /events). Not retried, not under the semaphore.

        `timeout` is the read timeout between chunks; None = wait forever for the next chunk.
        """
        method = method.upper()
        self.request_count += 1
        to = httpx.Timeout(self.timeout, read=timeout)
        try:
            async with self.http.stream(method, path, params=params, headers=headers, timeout=to) as response:
                if response.status_code not in expect:
                    await response.aread()
                    raise self.status_error(method, path, response)
                yield response
        except httpx.TimeoutException as exc:
            raise self.error(Unavailable, method, path, f"stream timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise self.error(Unavailable, method, path, f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        if self._lean is not None:
            await self._lean.aclose()
        await self.http.aclose()


def _resolve_base(base_url: str, uds: str | None) -> tuple[str, str | None]:
    """`unix:///p` -> (http://localhost, /p); `tcp://h:p` -> http://h:p; trailing slash dropped."""
    if base_url.startswith("unix://"):
        return "http://localhost", uds or base_url[len("unix://") :]
    if base_url.startswith("tcp://"):
        base_url = "http://" + base_url[len("tcp://") :]
    return base_url.rstrip("/"), uds
