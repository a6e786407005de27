"""E2B adapter (provider-apis.md §1): plain REST over httpx.

- List: `GET /v2/sandboxes?state=running,paused` (the default listing hides paused ones in some
  tools, so both are always asked for), every page via the `X-Next-Token` header.
- Inspect: `GET /sandboxes/{id}` only. `connect` resumes a paused sandbox; it is not a read.
- Pause 204 / 409 (already paused, or a state that cannot pause: told apart by a GET);
  resume = `connect` 200 (was running) / 201 (resumed); destroy 204 / 404 (already gone).
- Events: polls `GET /events/sandboxes` (newest first) and yields what it has not seen yet.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections import deque
from collections.abc import AsyncIterator, Mapping
from sys import intern
from typing import Any
from urllib.parse import quote, urlencode

from opcockpit.adapters.providers.http import (
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MAX_PAGES,
    RETRY_STATUSES,
    ApiClient,
    Page,
)
from opcockpit.adapters.providers.keepalive_get import KeptAliveGet
from opcockpit.adapters.providers.lean_httpx import httpx
from opcockpit.adapters.providers.wire import (
    ReusedInstances,
    claimed_lease,
    leon_api_fields,
    number,
    parse_time,
    shared_resources,
    str_map,
)
from opcockpit.domain.models import Instance, NormalState
from opcockpit.ports.provider import (
    ActionOutcome,
    ActionResult,
    AuthFailed,
    Capabilities,
    Conflict,
    ProtocolError,
    ProviderEvent,
    ProviderKind,
)

__all__ = ["E2BAdapter"]

DEFAULT_BASE_URL = "https://api.e2b.app"

_STATES = {"running": NormalState.RUNNING, "paused": NormalState.PAUSED}
_SEEN_EVENTS_KEPT = 10_000
_FIRST_EVENT_PAGE = 10  # events on a poll's first page (then pages of `limit`)


def _metadata_query(labels: Mapping[str, str]) -> str:
    # The server unescapes the whole value, splits on & and =, then unescapes each part: escape
    # twice so a '&' or '=' inside a key or value survives (a no-op for [A-Za-z0-9._-]).
    return "&".join(
        f"{quote(quote(k, safe=''), safe='')}={quote(quote(v, safe=''), safe='')}" for k, v in labels.items()
    )


class E2BAdapter:
    kind = "e2b"

    def __init__(
        self,
        name: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        timeout: float = 10.0,
        max_concurrency: int = 8,
        retries: int = 3,
        label_filter: dict[str, str] | None = None,
        page_size: int = 100,
        resume_timeout_s: int = 300,
        events_poll_s: float = 2.0,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_instances: int = DEFAULT_MAX_INSTANCES,
    ) -> None:
        self.name = name
        self.max_pages = max_pages
        self.max_instances = max_instances
        self.capabilities = KIND.capabilities
        self._reuse = ReusedInstances()
        self.label_filter = dict(label_filter or {})
        self.page_size = max(1, min(100, page_size))
        self.resume_timeout_s = resume_timeout_s
        self.events_poll_s = events_poll_s
        self._api = ApiClient(
            name,
            base_url=base_url,
            headers={"X-API-Key": api_key} if api_key else {},
            secrets=[api_key],
            timeout=timeout,
            max_concurrency=max_concurrency,
            retries=retries,
        )

    def __repr__(self) -> str:
        return f"E2BAdapter(name={self.name!r}, base_url={self._api.base_url!r})"

    @property
    def request_count(self) -> int:
        return self._api.request_count

    async def aclose(self) -> None:
        await self._api.aclose()

    # -- decoding ------------------------------------------------------------------------------

    def _instance(self, item: Any, method: str, path: str) -> Instance:
        if not isinstance(item, dict) or not isinstance(item.get("sandboxID"), str):
            raise self._api.protocol_error(method, path, "sandbox without a sandboxID")
        raw = item.get("state")
        raw_state = intern(raw) if isinstance(raw, str) and raw else "unknown"  # one object per state
        metadata = str_map(item.get("metadata"))
        disk_mb = number(item.get("diskSizeMB"))
        return Instance(
            provider=self.name,
            instance_id=item["sandboxID"],
            raw_state=raw_state,
            state=_STATES.get(raw_state, NormalState.UNKNOWN),
            name=metadata.get("name"),
            labels=metadata,
            created_at=None,  # E2B has no createdAt; startedAt is the current execution's start
            started_at=parse_time(item.get("startedAt")),
            resources=shared_resources(
                number(item.get("cpuCount")),
                number(item.get("memoryMB")),
                disk_mb / 1024 if disk_mb is not None else None,
            ),
            claimed_lease_id=claimed_lease(metadata),
        )

    # -- listing -------------------------------------------------------------------------------

    async def list_instances(self) -> list[Instance]:
        path = "/v2/sandboxes"
        params: dict[str, Any] = {"state": "running,paused", "limit": self.page_size}
        if self.label_filter:
            params["metadata"] = _metadata_query(self.label_filter)

        pages = itertools.count()

        async def fetch(cursor: str | None) -> Page[Instance]:
            if cursor:
                params["nextToken"] = cursor
            response = await self._api.request("GET", path, params=params)
            # The same bytes at this position as last time: not decoded again (the cursor is a
            # header, and may name the listing: the position, not the cursor, is the key).
            same = self._reuse.page(next(pages), response.content)
            items = same[0] if same is not None else None
            if items is None:
                body = self._api.decode("GET", path, response)
                if not isinstance(body, list):
                    raise self._api.protocol_error(
                        "GET", path, f"expected a JSON array, got {type(body).__name__}"
                    )
                items = [self._listed(item, path) for item in body]
                self._reuse.page_done(items)
            return Page(
                items,
                cursor=response.headers.get("X-Next-Token"),
                total=self._total_running(response, path),
            )

        self._reuse.start()
        listing = await self._api.paginate(
            "GET",
            path,
            fetch,
            max_pages=self.max_pages,
            max_instances=self.max_instances,
            # X-Total-Running counts running sandboxes only (after filters, before paging).
            counted=lambda i: i.instance_id if i.state is NormalState.RUNNING else None,
            what="running sandboxes",
        )
        self._reuse.done()
        return listing

    def _listed(self, item: Any, path: str) -> Instance:
        """A listed sandbox: the previous listing's Instance when nothing it is made of changed."""
        if not isinstance(item, dict):
            return self._instance(item, "GET", path)
        get = item.get
        sig = (get("state"), get("startedAt"), get("cpuCount"), get("memoryMB"), get("diskSizeMB"))
        make = lambda: self._instance(item, "GET", path)  # noqa: E731
        return self._reuse.instance(get("sandboxID"), sig, get("metadata") or {}, make)

    def _total_running(self, response: Any, path: str) -> int | None:
        raw = response.headers.get("X-Total-Running")
        if raw is None:
            return None
        try:
            total = int(raw)
        except ValueError:
            total = -1
        if total < 0:
            raise self._api.protocol_error("GET", path, f"X-Total-Running is not a count: {raw[:40]!r}")
        return total

    async def get_instance(self, instance_id: str) -> Instance:
        path = f"/sandboxes/{quote(instance_id, safe='')}"
        body = await self._api.json("GET", path)
        return self._instance(body, "GET", path)

    async def raw_record(self, instance_id: str) -> dict[str, Any]:
        """`GET /sandboxes/{id}` (SandboxDetail) as sent, `envdAccessToken` included: the caller
        (services.inspect) redacts before anything is shown. 404 -> NotFound."""
        path = f"/sandboxes/{quote(instance_id, safe='')}"
        body = await self._api.json("GET", path)
        if not isinstance(body, dict):
            raise self._api.protocol_error("GET", path, "sandbox detail is not a JSON object")
        return body

    # -- actions -------------------------------------------------------------------------------

    async def pause(self, instance_id: str) -> ActionResult:
        path = f"/sandboxes/{quote(instance_id, safe='')}/pause"
        # E2B's OpenAPI marks the pause body (SandboxPauseRequest) required; the SDK always sends
        # JSON. An empty object keeps the API's defaults (memory snapshot included).
        response = await self._api.request("POST", path, json={}, expect=(200, 204, 409))
        if response.status_code != 409:
            return ActionResult(instance_id, "pause", ActionOutcome.DONE, NormalState.PAUSED)
        # 409 is both "already paused" and "cannot be paused now": look before calling it success.
        current = await self.get_instance(instance_id)
        if current.state is NormalState.PAUSED:
            return ActionResult(instance_id, "pause", ActionOutcome.ALREADY, current.state, "already paused")
        raise self._api.status_error("POST", path, response)

    async def resume(self, instance_id: str) -> ActionResult:
        path = f"/sandboxes/{quote(instance_id, safe='')}/connect"
        response = await self._api.request(
            "POST", path, json={"timeout": self.resume_timeout_s}, expect=(200, 201)
        )
        if response.status_code == 200:
            return ActionResult(
                instance_id, "resume", ActionOutcome.ALREADY, NormalState.RUNNING, "already running"
            )
        return ActionResult(instance_id, "resume", ActionOutcome.DONE, NormalState.RUNNING)

    async def destroy(self, instance_id: str) -> ActionResult:
        path = f"/sandboxes/{quote(instance_id, safe='')}"
        response = await self._api.request("DELETE", path, expect=(200, 204, 404))
        if response.status_code == 404:
            return ActionResult(
                instance_id, "destroy", ActionOutcome.ALREADY, NormalState.GONE, "already gone"
            )
        return ActionResult(instance_id, "destroy", ActionOutcome.DONE, NormalState.GONE)

    # -- events --------------------------------------------------------------------------------

    async def _event_page(
        self, offset: int, limit: int, last: list[bytes] | None = None, lean: KeptAliveGet | None = None
    ) -> list[dict[str, Any]] | None:
        """One page of events, newest first. `last` (one stream's): the digest of the first
        page its previous poll read; None is returned when this one is byte-for-byte the same
        (nothing new, and not decoded: a quiet fleet is polled every 2 s, issue 10). `lean` (the
        stream's) asks without httpx (~0.4 ms of CPU instead of ~2); what it cannot read is asked
        through the ApiClient, and a status it reads is typed as the ApiClient types it."""
        path = "/events/sandboxes"
        params = {"offset": offset, "limit": limit, "orderAsc": "false"}
        content = await self._lean_answer(lean, path, params) if lean is not None else None
        response = None
        if content is None:
            response = await self._api.request("GET", path, params=params, reuse=True)
            content = response.content
            if lean is not None:
                lean.ok()
        digest = hashlib.blake2b(content, digest_size=16).digest() if last is not None else b""
        if last is not None and last and last[0] == digest:
            return None
        body = self._api.decode("GET", path, response or httpx.Response(200, content=content))
        if not isinstance(body, list) or not all(
            isinstance(e, dict) and isinstance(e.get("id"), str) for e in body
        ):
            raise self._api.protocol_error("GET", path, "expected a JSON array of events with ids")
        if last is not None:
            last[:] = [digest]
        return body

    async def _lean_answer(self, lean: KeptAliveGet, path: str, params: dict[str, Any]) -> bytes | None:
        """The page as `lean` read it; None: ask through the ApiClient. A status other than 200
        raises the error the ApiClient raises for it (a 429's Retry-After honoured by the poll's
        back-off), unless the ApiClient would retry it: then it is asked again there."""
        answer = await lean.get(f"{path}?{urlencode(params)}")
        if answer is None:
            return None
        api = self._api
        status, headers, content = answer
        if status == 200:
            return content
        if status == 429 or status not in RETRY_STATUSES or api.retries == 0:
            response = httpx.Response(status, headers=headers, content=content)
            raise api.status_error("GET", path, response) from None
        return None

    async def _fresh_events(
        self,
        seen: set[str],
        limit: int = 100,
        max_pages: int = 10,
        last: list[bytes] | None = None,
        lean: KeptAliveGet | None = None,
    ) -> list[dict[str, Any]]:
        """Unseen events, oldest first: newest-first pages until one holds an already seen id
        (`last`: see `_event_page`, for the first page)."""
        fresh: list[dict[str, Any]] = []
        offset = 0
        for page in range(max_pages):
            # The first page is small: on a quiet feed it is the one that repeats (the poll's
            # whole cost), and 100 events were ~40 KB read and hashed every poll (issue 10).
            size = min(limit, _FIRST_EVENT_PAGE) if page == 0 else limit
            first = page == 0
            items = await self._event_page(offset, size, last if first else None, lean if first else None)
            if items is None:
                return []
            offset += size
            stop = len(items) < size
            for item in items:
                if item["id"] in seen:
                    stop = True
                    break
                fresh.append(item)
            if stop:
                break
        fresh.reverse()
        return fresh

    def _event(self, item: dict[str, Any]) -> ProviderEvent:
        sandbox_id = item.get("sandboxId")
        return ProviderEvent(
            provider=self.name,
            instance_id=sandbox_id if isinstance(sandbox_id, str) else None,
            action=str(item.get("type") or item.get("eventLabel") or "unknown"),
            at=parse_time(item.get("timestamp")),
            attributes={
                k: v for k, v in item.items() if k in ("id", "eventData", "sandboxTemplateId", "version")
            },
        )

    async def events(self) -> AsyncIterator[ProviderEvent]:
        """New lifecycle events from now on (history before the call is skipped).

        Transient failures (timeouts, 5xx, 429) back off and keep polling; AuthFailed and
        ProtocolError end the stream by raising.
        """
        order: deque[str] = deque()
        seen: set[str] = set()

        def remember(event_id: str) -> None:
            seen.add(event_id)
            order.append(event_id)
            if len(order) > _SEEN_EVENTS_KEPT:
                seen.discard(order.popleft())

        last: list[bytes] = []  # this stream's last first page, by digest
        for item in await self._fresh_events(seen, max_pages=1, last=last):
            remember(item["id"])
        lean = self._lean_get()
        try:
            delay = self.events_poll_s
            while True:
                await asyncio.sleep(delay)
                try:
                    fresh = await self._fresh_events(seen, last=last, lean=lean)
                except (AuthFailed, ProtocolError, Conflict):
                    raise
                except Exception as exc:  # Unavailable / RateLimited / NotFound: try again later
                    retry_after = getattr(exc, "retry_after", None)
                    delay = min(60.0, max(delay * 2, retry_after or 0.0))
                    continue
                delay = self.events_poll_s
                for item in fresh:
                    remember(item["id"])
                    yield self._event(item)
        finally:
            await lean.aclose()

    def _lean_get(self) -> KeptAliveGet:
        """The stream's own GET without httpx (providers/keepalive_get.py): its connection is
        the stream's, apart from the one the ApiClient lists on."""
        return self._api.lean_get()


# --------------------------------------------------------------------------- the kind


def _defaults(fields: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    if env.get("E2B_API_URL"):
        return {"api_url": (env["E2B_API_URL"], "$E2B_API_URL")}
    return {"api_url": (f"https://api.{env.get('E2B_DOMAIN') or 'e2b.app'}", "default")}


def _from_leon(block: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    fields = leon_api_fields(block, data)
    if isinstance(block.get("domain"), str) and "api_url" not in fields:
        fields["api_url"] = f"https://api.{block['domain']}"  # LEON's e2b `domain` setting
    return fields


KIND = ProviderKind(
    name="e2b",
    factory=E2BAdapter,
    # E2B pauses idle sandboxes itself (auto-pause): the likely reason for an unexpected pause.
    # Listed in full every 30 s, not the default 15: its event feed and the GETs it triggers keep
    # the picture current in between (issue 10: a full listing at 50k leases is ~10k sandboxes).
    capabilities=Capabilities(
        has_events=True, workspace_root="/home/user", paused_hint="E2B auto-pause?", list_interval_s=30.0
    ),
    key_env="E2B_API_KEY",
    defaults=_defaults,
    from_leon=_from_leon,
)
