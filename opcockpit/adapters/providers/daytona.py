"""Daytona adapter (provider-apis.md §2): plain REST over httpx, base URL ends in `/api`.

- List: `GET /sandbox`, every page via `cursor` ⇄ `nextCursor`; label filter as a JSON object.
  The list is eventually consistent (daytonaio/daytona#5138), so `confirm_orphans` re-reads
  candidate orphans by id before anyone may act on them.
- States: LEON's Daytona "pause" is a stop, so `stopped` normalises to PAUSED (raw_state keeps
  "stopped"); `archived` is STOPPED; every in-between state is TRANSITIONING, and so is a settled
  state whose `desiredState` already differs (the server accepted a change it has not begun).
- Actions answer 200 before the transition finishes: the result is ACCEPTED, convergence is
  observed by polling GET. pause = POST stop (or POST pause for VM classes when
  `pause_mode="pause"`), resume = POST start, destroy = DELETE (404 = already gone).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from sys import intern
from typing import Any, Literal
from urllib.parse import quote

from opcockpit.adapters.providers.http import DEFAULT_MAX_INSTANCES, DEFAULT_MAX_PAGES, ApiClient, Page
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
    Capabilities,
    NotFound,
    ProviderEvent,
    ProviderKind,
)

__all__ = ["DaytonaAdapter", "normalise_state"]

DEFAULT_BASE_URL = "https://app.daytona.io/api"
# LEON's Daytona "pause" is a stop (so STOPPED counts as paused); listings lag writes (#5138).
# Listed in full every 30 s, not the default 15: its DTOs are the largest to decode (at 50k leases
# ~8k sandboxes, 80 pages: the costliest listing of the four), the list lags writes anyway, and
# actions still relist at once.
CAPABILITIES = Capabilities(
    eventually_consistent_list=True, pause_is_stop=True, workspace_root="/home/daytona", list_interval_s=30.0
)

_STABLE = {
    "started": NormalState.RUNNING,
    "stopped": NormalState.PAUSED,
    "paused": NormalState.PAUSED,
    "archived": NormalState.STOPPED,
    "destroyed": NormalState.GONE,
}
_TRANSITIONAL = frozenset(
    {
        "creating",
        "restoring",
        "starting",
        "stopping",
        "pausing",
        "resuming",
        "destroying",
        "archiving",
        "snapshotting",
        "forking",
        "pulling_snapshot",
        "building_snapshot",
        "pending_build",
        "resizing",
    }
)
# error, build_failed, unknown and any word we have never seen -> UNKNOWN


_OLD_MAX_LIMIT = 100  # the listing's `limit` bound in the v0.190 server source


class _LimitRefused(Exception):
    """The first page of 200 was refused (HTTP 400): the server wants pages of 100."""


_CURSOR_KEY = b'"nextCursor"'
_CURSOR_VALUE = re.compile(rb'[ \t\r\n]*:[ \t\r\n]*(null|"[^"\\]*")')


def _cut_cursor(content: bytes) -> tuple[bytes, str | None] | None:
    """(the body without its `nextCursor` value, that value) read without decoding the body;
    None when that is not plain: the key more than once (a label may be named so), a value
    that is not null or a string without escapes. The caller checks the cut against the decoded
    body before a page is kept for reuse, so a cut found in a label never hands a page back."""
    at = content.find(_CURSOR_KEY)
    if at < 0:
        return content, None  # no cursor anywhere: the last page
    if content.find(_CURSOR_KEY, at + 1) >= 0:
        return None
    found = _CURSOR_VALUE.match(content, at + len(_CURSOR_KEY))
    if found is None or not found.group(1).isascii():
        return None
    raw, (start, end) = found.group(1), found.span(1)
    return content[:start] + content[end:], None if raw == b"null" else raw[1:-1].decode()


def normalise_state(state: str, desired: str | None = None) -> NormalState:
    if state in _TRANSITIONAL:
        return NormalState.TRANSITIONING
    stable = _STABLE.get(state)
    if stable is None:
        return NormalState.UNKNOWN
    if desired and desired != state and desired != "resized" and state != "destroyed":
        return NormalState.TRANSITIONING  # accepted, not yet begun
    return stable


class DaytonaAdapter:
    kind = "daytona"

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
        page_size: int = 200,
        pause_mode: Literal["stop", "pause"] = "stop",
        organization_id: str | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_instances: int = DEFAULT_MAX_INSTANCES,
    ) -> None:
        self.name = name
        self.max_pages = max_pages
        self.max_instances = max_instances
        self.capabilities = CAPABILITIES
        self._reuse = ReusedInstances()
        self.label_filter = dict(label_filter or {})
        self.page_size = max(1, min(200, page_size))
        self.pause_mode = pause_mode
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        if organization_id:  # needed with a JWT instead of an API key
            headers["X-Daytona-Organization-ID"] = organization_id
        self._api = ApiClient(
            name,
            base_url=base_url,
            headers=headers,
            secrets=[api_key],
            timeout=timeout,
            max_concurrency=max_concurrency,
            retries=retries,
        )

    def __repr__(self) -> str:
        return f"DaytonaAdapter(name={self.name!r}, base_url={self._api.base_url!r})"

    @property
    def request_count(self) -> int:
        return self._api.request_count

    async def aclose(self) -> None:
        await self._api.aclose()

    def events(self) -> AsyncIterator[ProviderEvent]:
        # Daytona pushes Svix webhooks and a Socket.IO stream; neither is plain HTTP polling.
        raise NotImplementedError("daytona has no pollable event stream")

    # -- decoding ------------------------------------------------------------------------------

    def _instance(self, item: Any, method: str, path: str) -> Instance:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise self._api.protocol_error(method, path, "sandbox without an id")
        raw = item.get("state")
        raw_state = intern(raw) if isinstance(raw, str) and raw else "unknown"  # one object per state
        desired = item.get("desiredState")
        labels = str_map(item.get("labels"))
        name = item.get("name") if isinstance(item.get("name"), str) else None
        memory_gib = number(item.get("memory"))
        return Instance(
            provider=self.name,
            instance_id=item["id"],
            raw_state=raw_state,
            state=normalise_state(raw_state, desired if isinstance(desired, str) else None),
            name=name,
            labels=labels,
            created_at=parse_time(item.get("createdAt")),
            started_at=None,  # Daytona reports no start time
            resources=shared_resources(
                number(item.get("cpu")),
                memory_gib * 1024 if memory_gib is not None else None,
                number(item.get("disk")),
            ),
            aliases=(name,) if name and name != item["id"] else (),
            claimed_lease_id=claimed_lease(labels),
        )

    def _path(self, instance_id: str, action: str | None = None) -> str:
        path = f"/sandbox/{quote(instance_id, safe='')}"
        return f"{path}/{action}" if action else path

    # -- listing -------------------------------------------------------------------------------

    async def list_instances(self) -> list[Instance]:
        """Pages of 200 (the API client's `limit` bound since 0.23x: half the requests of 100);
        a server that refuses more than 100 (the v0.190 source's bound: HTTP 400 on the first
        page) is asked in pages of 100 from then on."""
        try:
            return await self._list_pages()
        except _LimitRefused:
            self.page_size = _OLD_MAX_LIMIT
            return await self._list_pages()

    async def _list_pages(self) -> list[Instance]:
        path = "/sandbox"
        params: dict[str, Any] = {"limit": self.page_size}
        if self.label_filter:
            params["labels"] = json.dumps(self.label_filter, separators=(",", ":"))

        pages = itertools.count()

        async def fetch(cursor: str | None) -> Page[Instance]:
            if cursor:
                params["cursor"] = cursor
            response = await self._api.request("GET", path, params=params, expect=(200, 400))
            if response.status_code == 400:
                if cursor is None and self.page_size > _OLD_MAX_LIMIT:
                    raise _LimitRefused
                raise self._api.status_error("GET", path, response)
            # The page's bytes but its next cursor (which may name this listing) the same as at
            # this position last time: the same Instances and total, the body not even decoded.
            index, content = next(pages), response.content
            cut = _cut_cursor(content)
            if cut is not None:
                same = self._reuse.page(index, cut[0])
                if same is not None:
                    return Page(same[0], cut[1], same[1])
            body = self._api.decode("GET", path, response)
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise self._api.protocol_error("GET", path, 'expected {"items": [...], "nextCursor": ...}')
            next_cursor = body.get("nextCursor")
            if next_cursor is not None and not isinstance(next_cursor, str):
                raise self._api.protocol_error("GET", path, "nextCursor is not a string")
            # `total`: the paginated listing's count (deprecated /sandbox/paginated; newer servers
            # may send it on the cursor listing too). Used only when it is a plain count.
            total = body.get("total")
            if isinstance(total, bool) or not isinstance(total, int) or total < 0:
                total = None
            if cut is not None and cut[1] != next_cursor:
                self._reuse.skip_page()  # the cut was not the listing's cursor: never reused
            instances = [self._listed(item, path) for item in items]
            self._reuse.page_done(instances, total)
            return Page(instances, next_cursor, total)

        self._reuse.start()
        listing = await self._api.paginate(
            "GET",
            path,
            fetch,
            max_pages=self.max_pages,
            max_instances=self.max_instances,
            counted=lambda i: i.instance_id,
        )
        self._reuse.done()
        return listing

    def _listed(self, item: Any, path: str) -> Instance:
        """A listed sandbox: the previous listing's Instance when nothing it is made of changed."""
        if not isinstance(item, dict):
            return self._instance(item, "GET", path)
        get = item.get
        sig = (
            get("state"), get("desiredState"), get("name"), get("createdAt"),
            get("cpu"), get("memory"), get("disk"),
        )  # fmt: skip
        make = lambda: self._instance(item, "GET", path)  # noqa: E731
        return self._reuse.instance(get("id"), sig, get("labels") or {}, make)

    async def get_instance(self, instance_id: str) -> Instance:
        path = self._path(instance_id)
        return self._instance(await self._api.json("GET", path), "GET", path)

    async def raw_record(self, instance_id: str) -> dict[str, Any]:
        """`GET /sandbox/{idOrName}` (the Sandbox DTO, `env` included) as sent: the caller
        (services.inspect) redacts before anything is shown. 404 -> NotFound."""
        path = self._path(instance_id)
        body = await self._api.json("GET", path)
        if not isinstance(body, dict):
            raise self._api.protocol_error("GET", path, "sandbox is not a JSON object")
        return body

    async def confirm_orphans(self, ids: Iterable[str]) -> frozenset[str]:
        """Ids a GET by id confirms exist and are not being destroyed.

        The list can show sandboxes that are already gone (or stale states): only confirmed ids
        may be shown as actionable orphans. A GET that fails for any reason leaves its id
        unconfirmed (the safe side). Concurrency is bounded by the client's semaphore.
        """
        unique = list(dict.fromkeys(ids))

        async def check(iid: str) -> str | None:
            inst = await self.get_instance(iid)
            gone = inst.state is NormalState.GONE or inst.raw_state == "destroying"
            return None if gone else iid

        results = await asyncio.gather(*(check(i) for i in unique), return_exceptions=True)
        return frozenset(r for r in results if isinstance(r, str))

    # -- actions -------------------------------------------------------------------------------

    async def _refusal(
        self,
        action: str,
        instance_id: str,
        path: str,
        response: httpx.Response,
        satisfied: set[NormalState],
        converging: set[str],
    ) -> ActionResult:
        """400/409 answer: already there (or already on its way) is success, anything else raises."""
        current = await self.get_instance(instance_id)
        already = current.state in satisfied or (
            current.state is NormalState.TRANSITIONING and current.raw_state in converging
        )
        if already:
            return ActionResult(
                instance_id, action, ActionOutcome.ALREADY, current.state, f"already {current.raw_state}"
            )
        raise self._api.status_error("POST", path, response)

    def _accepted(self, instance_id: str, action: str, item: Any, method: str, path: str) -> ActionResult:
        inst = self._instance(item, method, path)
        return ActionResult(instance_id, action, ActionOutcome.ACCEPTED, inst.state, f"now {inst.raw_state}")

    async def pause(self, instance_id: str) -> ActionResult:
        verb = "pause" if self.pause_mode == "pause" else "stop"
        path = self._path(instance_id, verb)
        response = await self._api.request("POST", path, expect=(200, 400, 409))
        if response.status_code == 200:
            return self._accepted(
                instance_id, "pause", self._api.decode("POST", path, response), "POST", path
            )
        return await self._refusal(
            "pause",
            instance_id,
            path,
            response,
            {NormalState.PAUSED, NormalState.STOPPED},
            {"stopping", "pausing"},
        )

    async def resume(self, instance_id: str) -> ActionResult:
        path = self._path(instance_id, "start")
        response = await self._api.request("POST", path, expect=(200, 409))
        if response.status_code == 409:
            return await self._refusal(
                "resume",
                instance_id,
                path,
                response,
                {NormalState.RUNNING},
                {"starting", "resuming", "restoring"},
            )
        item = self._api.decode("POST", path, response)
        inst = self._instance(item, "POST", path)
        if inst.raw_state == "started" and inst.state is NormalState.RUNNING:
            # The server answers 200 as a no-op for a started sandbox.
            return ActionResult(instance_id, "resume", ActionOutcome.ALREADY, inst.state, "already started")
        return ActionResult(
            instance_id, "resume", ActionOutcome.ACCEPTED, inst.state, f"now {inst.raw_state}"
        )

    async def destroy(self, instance_id: str) -> ActionResult:
        path = self._path(instance_id)
        response = await self._api.request("DELETE", path, expect=(200, 404, 409))
        if response.status_code == 404:
            return ActionResult(
                instance_id, "destroy", ActionOutcome.ALREADY, NormalState.GONE, "already gone"
            )
        if response.status_code == 409:
            try:
                current = await self.get_instance(instance_id)
            except NotFound:
                return ActionResult(
                    instance_id, "destroy", ActionOutcome.ALREADY, NormalState.GONE, "already gone"
                )
            if current.raw_state == "destroying":
                return ActionResult(
                    instance_id, "destroy", ActionOutcome.ALREADY, current.state, "already destroying"
                )
            raise self._api.status_error("DELETE", path, response)
        return self._accepted(
            instance_id, "destroy", self._api.decode("DELETE", path, response), "DELETE", path
        )


# --------------------------------------------------------------------------- the kind


def _defaults(fields: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    out: dict[str, tuple[Any, str]] = {}
    if env.get("DAYTONA_API_URL"):
        out["api_url"] = (env["DAYTONA_API_URL"], "$DAYTONA_API_URL")
    else:
        out["api_url"] = (DEFAULT_BASE_URL, "default")
    if env.get("DAYTONA_TARGET"):
        out["target"] = (env["DAYTONA_TARGET"], "$DAYTONA_TARGET")
    return out


KIND = ProviderKind(
    name="daytona",
    factory=DaytonaAdapter,
    capabilities=CAPABILITIES,
    key_env="DAYTONA_API_KEY",
    defaults=_defaults,
    from_leon=leon_api_fields,
)
