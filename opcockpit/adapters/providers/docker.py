"""Docker Engine API adapter (also podman's compat API), over a unix socket or tcp.

Wire format: provider-apis.md §3 (Docker) and §5 (podman differences). Paths use /v1.41, which
both moby (min 1.40 by default) and podman 4.3 (reports 1.41) serve, unless the engine's
`GET /version` says it refuses it (Docker Engine 29 raised its minimum to 1.44): then the oldest
version it serves (see `negotiate_api`).

Identity follows LEON (leon-sandbox-db.md §4.3): LEON names containers ``leon-<12hex>``, labels
them ``leon.session_id=<that name>`` and, when bound to a lease, ``leon.context_id=leon-<lease_id>``.
The session id is what sandbox.db stores as the instance id, so it is our ``instance_id``; the
64-hex Id and its 12-char short form are aliases, never the instance id when the label exists.

podman quirks handled here: pause-on-paused / unpause-on-running / kill-on-exited answer 500
(moby: 409 / 500 / 409), so state refusals are confirmed by an inspect instead of trusting the
status or message text; removal events are ``remove`` (moby: ``destroy``); a key-only label filter
on /events matches nothing, so key-only filters are applied client-side for events; the compat
list may briefly report the non-Docker state ``stopped``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from sys import intern
from typing import Any

from opcockpit.adapters.providers.http import DEFAULT_MAX_INSTANCES, DEFAULT_MAX_PAGES, ApiClient
from opcockpit.adapters.providers.lean_httpx import httpx
from opcockpit.adapters.providers.wire import ReusedInstances, json_array_items
from opcockpit.domain.models import Instance, InstanceResources, NormalState
from opcockpit.ports.provider import (
    ActionOutcome,
    ActionResult,
    AuthFailed,
    Capabilities,
    Conflict,
    LogLine,
    NotFound,
    ProtocolError,
    ProviderError,
    ProviderEvent,
    ProviderKind,
    Unavailable,
)

__all__ = ["DEFAULT_LABEL_FILTER", "DockerAdapter", "UnsupportedHost", "negotiate_api", "normalise_state"]

PREFERRED_API = (1, 41)  # what this adapter was written and probed against (§3.1, §5)
DEFAULT_HOST = "unix:///var/run/docker.sock"
SESSION_LABEL = "leon.session_id"
CONTEXT_LABEL = "leon.context_id"
COCKPIT_LEASE_LABEL = "cockpit.lease_id"
# LEON labels every container it makes with leon.session_id; key-only = "label present".
DEFAULT_LABEL_FILTER: dict[str, str] = {SESSION_LABEL: ""}
KEY_ONLY = ("", "*")  # label_filter values meaning "label present, any value"

_STATES: dict[str, NormalState] = {
    "running": NormalState.RUNNING,
    "paused": NormalState.PAUSED,
    "exited": NormalState.STOPPED,
    "dead": NormalState.STOPPED,
    "stopped": NormalState.STOPPED,  # podman compat list, briefly (podman#28359)
    "created": NormalState.TRANSITIONING,
    "restarting": NormalState.TRANSITIONING,
    "removing": NormalState.TRANSITIONING,
}
# Event action -> the state it implies (both engines' removal words mean gone).
_EVENT_STATES: dict[str, NormalState] = {
    "create": NormalState.TRANSITIONING,
    "start": NormalState.RUNNING,
    "unpause": NormalState.RUNNING,
    "restart": NormalState.RUNNING,
    "pause": NormalState.PAUSED,
    "die": NormalState.STOPPED,
    "stop": NormalState.STOPPED,
    "oom": NormalState.STOPPED,
    "destroy": NormalState.GONE,
    "remove": NormalState.GONE,
}
GONE_ACTIONS = frozenset({"destroy", "remove"})
_ZERO_TIME = "0001-01-01"
_END = object()  # the end of a listing's items
# What may go into a URL path as a container reference (Docker names: [a-zA-Z0-9][a-zA-Z0-9_.-]+).
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class UnsupportedHost(ProviderError, ValueError):
    """A host URL this adapter cannot speak to (ssh://, npipe://): a configuration error that
    fails this provider only (it is a ProviderError like any other listing failure)."""


def negotiate_api(version: Any) -> str:
    """The path prefix for an engine, from its `GET /version` body: /v1.41 when it is inside the
    engine's [MinAPIVersion, ApiVersion], else the nearest end of that range (the container,
    inspect and event fields read here are unchanged across those versions). A body without a
    usable range keeps /v1.41, as before negotiation existed."""

    def parse(text: Any) -> tuple[int, int] | None:
        m = re.fullmatch(r"(\d{1,3})\.(\d{1,3})", text) if isinstance(text, str) else None
        return (int(m.group(1)), int(m.group(2))) if m else None

    body = version if isinstance(version, dict) else {}
    high, low = parse(body.get("ApiVersion")), parse(body.get("MinAPIVersion"))
    chosen = PREFERRED_API
    if low is not None and chosen < low:
        chosen = low
    if high is not None and chosen > high:
        chosen = high
    return f"/v{chosen[0]}.{chosen[1]}"


def normalise_state(raw: str | None) -> NormalState:
    return _STATES.get((raw or "").lower(), NormalState.UNKNOWN)


def _parse_rfc3339(value: Any) -> datetime | None:
    """Docker's RFC3339 with nanoseconds ('2026-11-26T01:32:18.522235797Z'); zero time = None."""
    if not isinstance(value, str) or not value or value.startswith(_ZERO_TIME):
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$", value.strip())
    if not m:
        return None
    base, frac, tz = m.groups()
    text = base + (f".{frac[:6].ljust(6, '0')}" if frac else "") + ("+00:00" if tz in (None, "Z") else tz)
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def _unix(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return None


def claimed_lease(labels: Mapping[str, str]) -> str | None:
    """The lease a container says it belongs to: leon.context_id=leon-<lease_id>, or cockpit's."""
    ctx = labels.get(CONTEXT_LABEL)
    if ctx and ctx.startswith("leon-") and len(ctx) > len("leon-"):
        # interned: the slice is a new str per container; sandbox.db's lease ids are interned
        return intern(ctx[len("leon-") :])
    return labels.get(COCKPIT_LEASE_LABEL) or None


class DockerAdapter:
    """ProviderAdapter for a Docker Engine API (moby or podman)."""

    kind = "docker"

    def __init__(
        self,
        name: str,
        *,
        host: str | None = None,
        timeout: float = 10.0,
        max_concurrency: int = 8,
        retries: int = 3,
        label_filter: dict[str, str] | None = None,
        events_backoff_s: tuple[float, float] = (0.2, 5.0),
        max_pages: int = DEFAULT_MAX_PAGES,
        max_instances: int = DEFAULT_MAX_INSTANCES,
    ) -> None:
        self.name = name
        self.max_pages = max_pages  # the Engine API does not paginate: kept for a uniform shape
        self.max_instances = max_instances
        self.host = host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
        if not self.host.startswith(("unix://", "tcp://", "http://")):
            raise UnsupportedHost(
                f"unsupported docker host {self.host!r} (want unix:///path or tcp://host:port)", provider=name
            )
        self.label_filter = dict(DEFAULT_LABEL_FILTER if label_filter is None else label_filter)
        self.capabilities = KIND.capabilities
        self._reuse = ReusedInstances()
        self.events_backoff_s = events_backoff_s
        self._api_prefix: str | None = None  # negotiated on first use (`_api`)
        self.client = ApiClient(
            name,
            base_url=self.host,
            timeout=timeout,
            max_concurrency=max_concurrency,
            retries=retries,
        )

    def __repr__(self) -> str:
        return f"DockerAdapter(name={self.name!r}, host={self.host!r})"

    @property
    def request_count(self) -> int:
        return self.client.request_count

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _api(self) -> str:
        """The versioned path prefix, asked of the engine once. An engine that cannot answer
        (down, auth) fails this call like any other and is asked again next time; one without
        a usable /version gets /v1.41."""
        if self._api_prefix is None:
            try:
                body = await self.client.json("GET", "/version")
            except (NotFound, ProtocolError):
                body = None
            self._api_prefix = negotiate_api(body)
        return self._api_prefix

    # -- decoding -------------------------------------------------------------------------------

    def _label_terms(self, *, key_only: bool = True) -> list[str]:
        return [
            k if v in KEY_ONLY else f"{k}={v}"
            for k, v in self.label_filter.items()
            if key_only or v not in KEY_ONLY
        ]

    def _instance(
        self, *, cid: str, name: str | None, labels: Mapping[str, str], raw: str, **kw: Any
    ) -> Instance:
        name = name.lstrip("/") if name else None
        instance_id = labels.get(SESSION_LABEL) or name or cid
        if name == instance_id:  # LEON names a container after its session: one str for both
            name = instance_id
        aliases = tuple(dict.fromkeys(a for a in (cid, cid[:12], name) if a and a != instance_id))
        return Instance(
            provider=self.name,
            instance_id=instance_id,
            raw_state=raw,
            state=normalise_state(raw),
            name=name,
            labels=dict(labels),
            aliases=aliases,
            claimed_lease_id=claimed_lease(labels),
            **kw,
        )

    def _from_summary(self, item: Any) -> Instance:
        if not isinstance(item, dict) or not isinstance(item.get("Id"), str):
            raise ProtocolError("container list item without an Id", provider=self.name)
        names = item.get("Names") or []
        labels = item.get("Labels") or {}
        if not isinstance(labels, dict) or not isinstance(names, list):
            raise ProtocolError(f"container {item['Id'][:12]}: Labels/Names malformed", provider=self.name)
        # Label keys and states, one object each (sys.intern): decoded one item at a time
        # (json_array_items), no key memo spans the items, and every Instance keeps its own.
        return self._instance(
            cid=item["Id"],
            name=names[0] if names else None,
            labels={intern(str(k)): str(v) for k, v in labels.items()},
            raw=intern(str(item.get("State") or "")),
            created_at=_unix(item.get("Created")),
        )

    def _from_inspect(self, body: Any) -> Instance:
        if not isinstance(body, dict) or not isinstance(body.get("Id"), str):
            raise ProtocolError("container inspect without an Id", provider=self.name)
        state = body.get("State") or {}
        config = body.get("Config") or {}
        host = body.get("HostConfig") or {}
        labels = config.get("Labels") or {}
        nano_cpus = host.get("NanoCpus") or 0
        memory = host.get("Memory") or 0
        resources = None
        if nano_cpus or memory:  # 0 = unlimited
            resources = InstanceResources(
                cpu_count=nano_cpus / 1e9 if nano_cpus else None,
                memory_mb=memory / (1024 * 1024) if memory else None,
            )
        return self._instance(
            cid=body["Id"],
            name=body.get("Name"),
            labels={str(k): str(v) for k, v in labels.items()},
            raw=str(state.get("Status") or ""),
            created_at=_parse_rfc3339(body.get("Created")),
            started_at=_parse_rfc3339(state.get("StartedAt")),
            resources=resources,
        )

    # -- reads ----------------------------------------------------------------------------------

    async def list_instances(self) -> list[Instance]:
        # all=1: exited/created containers are orphans too, and podman hides paused ones without it.
        params: dict[str, str] = {"all": "1"}
        terms = self._label_terms()
        if terms:
            params["filters"] = json.dumps({"label": terms})
        path = f"{await self._api()}/containers/json"
        response = await self.client.request("GET", path, params=params)
        reuse = self._reuse
        reuse.start()
        same = reuse.page(0, response.content)  # the same bytes as last time: not decoded again
        if same is not None:
            reuse.done()
            return same[0]
        listing = self._decode_listing(path, response)
        reuse.page_done(listing)
        reuse.done()
        return listing

    def _decode_listing(self, path: str, response: Any) -> list[Instance]:
        """The listing's Instances, its array decoded one item at a time (wire.json_array_items:
        only the Instances outlive the decoding, not a whole decoded body beside them). Errors as
        a whole decode gives them: not JSON, not an array, more than max_instances items."""

        def not_json(exc: Exception) -> ProtocolError:  # as ApiClient.decode says it
            detail = f"HTTP {response.status_code} body is not JSON ({type(exc).__name__})"
            return self.client.protocol_error("GET", path, detail)

        try:
            items = json_array_items(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise not_json(exc) from None
        if items is None:  # not an array: the whole decode says what it is
            body = self.client.decode("GET", path, response)
            raise self.client.protocol_error("GET", path, f"expected a JSON array, got {type(body).__name__}")
        listing: list[Instance] = []
        while True:
            try:
                item = next(items, _END)
                if item is not _END and len(listing) >= self.max_instances:
                    total = len(listing) + 1 + sum(1 for _ in items)  # the whole body is JSON first
                    detail = f"listing exceeded max_instances={self.max_instances} ({total} after 1 pages)"
                    raise self.client.protocol_error("GET", path, detail)
            except (ValueError, UnicodeDecodeError) as exc:
                raise not_json(exc) from None
            if item is _END:
                return listing
            listing.append(self._listed(item))

    def _listed(self, item: Any) -> Instance:
        """A listed container: the previous listing's Instance when nothing it is made of changed."""
        if not isinstance(item, dict):
            return self._from_summary(item)
        get = item.get
        names = get("Names")
        first = names[0] if isinstance(names, list) and names else names
        sig = (get("State"), first, get("Created"))
        return self._reuse.instance(get("Id"), sig, get("Labels") or {}, lambda: self._from_summary(item))

    async def _inspect(self, ref: str) -> Instance | None:
        path = f"{await self._api()}/containers/{ref}/json"
        response = await self.client.request("GET", path, expect=(200, 404))
        if response.status_code == 404:
            return None
        return self._from_inspect(self.client.decode("GET", path, response))

    async def _resolve_by_label(self, instance_id: str) -> str | None:
        """LEON's own lookup (`docker ps -aq --filter label=leon.session_id=<id>`), for when the
        session id is not also the container name."""
        params = {"all": "1", "filters": json.dumps({"label": [f"{SESSION_LABEL}={instance_id}"]})}
        body = await self.client.json("GET", f"{await self._api()}/containers/json", params=params)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], dict)
            and isinstance(body[0].get("Id"), str)
        ):
            return body[0]["Id"]
        return None

    async def _find(self, instance_id: str) -> Instance | None:
        if _REF.fullmatch(instance_id):
            inst = await self._inspect(instance_id)
            if inst is not None:
                return inst
        cid = await self._resolve_by_label(instance_id)
        return await self._inspect(cid) if cid else None

    async def get_instance(self, instance_id: str) -> Instance:
        inst = await self._find(instance_id)
        if inst is None:
            raise NotFound(f"container {instance_id} not found", provider=self.name)
        return inst

    # -- inspect and logs (k9s `y`, lazydocker's logs) ------------------------------------------

    async def raw_record(self, instance_id: str) -> dict[str, Any]:
        """`GET /containers/{id}/json` as the engine sent it (the caller redacts Env and the like)."""
        refs = [instance_id] if _REF.fullmatch(instance_id) else []
        for attempt in range(2):
            for ref in refs:
                path = f"{await self._api()}/containers/{ref}/json"
                response = await self.client.request("GET", path, expect=(200, 404))
                if response.status_code == 200:
                    body = self.client.decode("GET", path, response)
                    if not isinstance(body, dict):
                        raise self.client.protocol_error("GET", path, "inspect is not a JSON object")
                    return body
            if attempt == 0:  # LEON's session id need not be the name: its label finds it
                cid = await self._resolve_by_label(instance_id)
                refs = [cid] if cid else []
        raise NotFound(f"container {instance_id} not found", provider=self.name)

    async def logs(
        self, instance_id: str, *, tail: int | None = 200, follow: bool = False
    ) -> AsyncIterator[LogLine]:
        """`GET /containers/{id}/logs`: the last `tail` lines, then new ones while `follow`.

        Without a TTY the engine multiplexes stdout and stderr into frames (8-byte header: stream
        byte, 3 zero bytes, big-endian length); with one it sends the bytes as written."""
        body = await self.raw_record(instance_id)
        tty = bool((body.get("Config") or {}).get("Tty"))
        params = {
            "stdout": "1", "stderr": "1", "follow": "1" if follow else "0",
            "tail": "all" if tail is None else str(max(int(tail), 0)),
        }  # fmt: skip
        path = f"{await self._api()}/containers/{body['Id']}/logs"
        read_timeout = None if follow else self.client.timeout  # following waits for new lines
        async with self.client.stream("GET", path, params=params, timeout=read_timeout) as resp:
            ctype = resp.headers.get("content-type", "")
            if "multiplexed" in ctype:
                tty = False
            elif "raw-stream" in ctype:
                tty = True
            try:
                source = resp.aiter_bytes()
                frames = _raw_frames(source) if tty else demux_frames(source)
                async for line in split_lines(frames):
                    yield line
            except httpx.HTTPError as exc:
                raise Unavailable(f"logs stream broke ({type(exc).__name__})", provider=self.name) from None

    # -- actions --------------------------------------------------------------------------------

    async def _act(
        self, instance_id: str, method: str, verb: str, params: dict[str, str] | None = None
    ) -> tuple[httpx.Response | None, str, str]:
        """Send `verb` to the container by LEON id (a name or Id the engine resolves), falling
        back to the label lookup when the engine does not know it. Returns (response, path, ref
        used); response None = no such container."""
        ref: str | None = instance_id if _REF.fullmatch(instance_id) else None
        looked_up = False
        while True:
            if ref is None:
                if looked_up:
                    return None, "", instance_id
                looked_up = True
                ref = await self._resolve_by_label(instance_id)
                if ref is None:
                    return None, "", instance_id
            path = f"{await self._api()}/containers/{ref}" + (f"/{verb}" if verb else "")
            # 409 and 500 are interpreted by the callers (podman answers state refusals with 500).
            response = await self.client.request(method, path, params=params, expect=(204, 404, 409, 500))
            if response.status_code != 404:
                return response, path, ref
            if looked_up:
                return None, path, ref
            ref = None

    def _refusal(
        self, cls: type[ProviderError], method: str, path: str, response: httpx.Response, note: str
    ) -> ProviderError:
        detail = f"{engine_message(response)} ({note})"
        return self.client.error(cls, method, path, detail, status=response.status_code)

    async def pause(self, instance_id: str) -> ActionResult:
        return await self._toggle(instance_id, "pause", "pause", NormalState.PAUSED)

    async def resume(self, instance_id: str) -> ActionResult:
        return await self._toggle(instance_id, "resume", "unpause", NormalState.RUNNING)

    async def _toggle(self, instance_id: str, action: str, verb: str, target: NormalState) -> ActionResult:
        response, path, ref = await self._act(instance_id, "POST", verb)
        if response is None:
            raise NotFound(f"container {instance_id} not found", provider=self.name)
        status = response.status_code
        if status == 204:
            return ActionResult(instance_id, action, ActionOutcome.DONE, target)
        # 409 (moby) / 500 (podman, and moby's unpause): confirm by state, not by message text.
        current = await self._inspect(ref)
        if current is None:
            raise NotFound(f"container {instance_id} vanished during {action}", provider=self.name)
        if current.state is target:
            return ActionResult(instance_id, action, ActionOutcome.ALREADY, target, detail=current.raw_state)
        if status == 409 or current.state in (NormalState.STOPPED, NormalState.TRANSITIONING):
            raise self._refusal(Conflict, "POST", path, response, f"container is {current.raw_state}")
        # 500 and the container is in a state that allows the call: a genuine engine failure.
        raise self._refusal(Unavailable, "POST", path, response, f"container is {current.raw_state}")

    async def destroy(self, instance_id: str) -> ActionResult:
        """SIGKILL, then DELETE ?force=1.

        The kill first is for podman: its force-remove of a *running* container stops it with
        SIGTERM and waits the 10 s stop timeout before SIGKILL, and LEON's `sleep infinity` (PID 1)
        ignores SIGTERM, so a bare DELETE takes 10 s (and hits a 10 s client timeout). moby's
        force-remove kills at once anyway, so the kill costs it one cheap request, nothing else.
        A kill refused because the container is not running (409 / podman 500) is fine.
        """
        kill, _, ref = await self._act(instance_id, "POST", "kill")
        if kill is None:
            return ActionResult(instance_id, "destroy", ActionOutcome.ALREADY, NormalState.GONE)
        path = f"{await self._api()}/containers/{ref}"
        response = await self.client.request(
            "DELETE", path, params={"force": "1"}, expect=(204, 404, 409, 500)
        )
        status = response.status_code
        if status == 204:
            return ActionResult(instance_id, "destroy", ActionOutcome.DONE, NormalState.GONE)
        if status == 404:
            return ActionResult(instance_id, "destroy", ActionOutcome.ALREADY, NormalState.GONE)
        # 409 with force = "removal already in progress" (moby); confirm what is left.
        current = await self._inspect(ref)
        if current is None:
            return ActionResult(instance_id, "destroy", ActionOutcome.ALREADY, NormalState.GONE)
        if current.raw_state == "removing":
            return ActionResult(
                instance_id, "destroy", ActionOutcome.ACCEPTED, current.state, detail="removal in progress"
            )
        cls = Conflict if status == 409 else Unavailable
        raise self._refusal(cls, "DELETE", path, response, f"container is {current.raw_state}")

    # -- events ---------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[ProviderEvent]:
        """Container lifecycle events from /events, forever; reconnects with backoff.

        After a reconnect it asks for events `since` the newest one delivered (both engines
        replay from their event log: moby's last 256 in memory, podman's events file) and drops
        the replayed ones already delivered. AuthFailed is not retried.
        """
        label_terms = self._label_terms(key_only=False)  # server side: k=v only (podman)
        key_only = [k for k, v in self.label_filter.items() if v in KEY_ONLY]
        filters: dict[str, list[str]] = {"type": ["container"]}
        if label_terms:
            filters["label"] = label_terms
        last_ns: int | None = None  # timeNano of the newest event delivered
        last_keys: set[tuple[str, str]] = set()  # (Action, Id) delivered at exactly last_ns
        low, high = self.events_backoff_s
        delay = low
        while True:
            params = {"filters": json.dumps(filters)}
            if last_ns is not None:
                params["since"] = f"{last_ns // 1_000_000_000}.{last_ns % 1_000_000_000:09d}"
            try:
                path = f"{await self._api()}/events"
                async with self.client.stream("GET", path, params=params, timeout=None) as resp:
                    delay = low
                    async for raw in _json_stream(resp, self):
                        event = self._event(raw)
                        if event is None or any(k not in event.attributes for k in key_only):
                            continue
                        nano = raw.get("timeNano")
                        ns = nano if isinstance(nano, int) else int(raw.get("time") or 0) * 1_000_000_000
                        key = (event.action, event.attributes["id"])
                        if last_ns is not None:
                            # The stream is ordered: anything older than the newest delivered
                            # event is a replay (or predates our first connection).
                            if ns < last_ns or (ns == last_ns and key in last_keys):
                                continue
                            if ns > last_ns:
                                last_keys.clear()
                        last_ns = ns
                        last_keys.add(key)
                        yield event
            except AuthFailed:
                raise
            except (Unavailable, ProtocolError, NotFound):
                pass  # reconnect below
            await asyncio.sleep(delay + random.uniform(0, delay / 2))
            delay = min(high, delay * 2)

    def _event(self, raw: Any) -> ProviderEvent | None:
        if not isinstance(raw, dict) or raw.get("Type", "container") != "container":
            return None
        actor = raw.get("Actor") or {}
        attrs = {str(k): v for k, v in (actor.get("Attributes") or {}).items()}
        action = str(raw.get("Action") or raw.get("status") or "")
        cid = str(actor.get("ID") or raw.get("id") or "")
        # "exec_start: sh -c ..." style actions carry their command after a colon.
        word = action.split(":", 1)[0].strip()
        instance_id = attrs.get(SESSION_LABEL) or attrs.get("name") or cid
        nano = raw.get("timeNano")
        at = (
            datetime.fromtimestamp(nano / 1e9, UTC)
            if isinstance(nano, int) and nano > 0
            else _unix(raw.get("time"))
        )
        attrs["id"] = cid
        if word in _EVENT_STATES:
            attrs["state"] = _EVENT_STATES[word].value
        lease = claimed_lease(attrs)
        if lease:
            attrs["claimed_lease_id"] = lease
        return ProviderEvent(
            provider=self.name, instance_id=instance_id, action=word, at=at, attributes=attrs
        )


def engine_message(response: httpx.Response) -> str:
    """The engine's own words: `message` of its JSON error body (both engines), else the text."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return response.text.strip() or response.reason_phrase


_STREAMS = {0: "stdin", 1: "stdout", 2: "stderr"}


async def demux_frames(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, bytes]]:
    """The Engine's stdout/stderr multiplexing: [stream, 0, 0, 0, size (4 bytes BE)] + payload,
    frames split anywhere across chunks. A header that cannot be one ends it as raw bytes."""
    buf = b""
    async for chunk in chunks:
        buf += chunk
        while len(buf) >= 8:
            kind, size = buf[0], int.from_bytes(buf[4:8], "big")
            if kind not in _STREAMS or buf[1:4] != b"\0\0\0":  # not a frame: a TTY after all
                yield "tty", buf
                buf = b""
                break
            if len(buf) < 8 + size:
                break
            yield _STREAMS[kind], buf[8 : 8 + size]
            buf = buf[8 + size :]
    if buf:
        yield "tty", buf


async def _raw_frames(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, bytes]]:
    async for chunk in chunks:
        yield "tty", chunk


async def split_lines(frames: AsyncIterator[tuple[str, bytes]]) -> AsyncIterator[LogLine]:
    """Frames -> lines per stream (a line may span frames; a last line without newline is kept)."""
    partial: dict[str, bytes] = {}
    async for stream, data in frames:
        data = partial.pop(stream, b"") + data
        *lines, rest = data.split(b"\n")
        for raw in lines:
            yield LogLine(stream, raw.rstrip(b"\r").decode("utf-8", "replace"))
        if rest:
            partial[stream] = rest
    for stream, rest in partial.items():
        yield LogLine(stream, rest.rstrip(b"\r").decode("utf-8", "replace"))


async def _json_stream(response: httpx.Response, adapter: DockerAdapter) -> AsyncIterator[Any]:
    """Decode a stream of JSON values as they arrive: NDJSON, json-seq, or back-to-back objects."""
    decoder = json.JSONDecoder()
    buf = ""
    try:
        async for chunk in response.aiter_text():
            buf += chunk
            pos = 0
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n\x1e":
                    pos += 1
                if pos >= len(buf):
                    break
                try:
                    value, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError:
                    if len(buf) - pos > 1_000_000:  # no event is this big: the stream is garbage
                        raise ProtocolError("events stream is not JSON", provider=adapter.name) from None
                    break  # incomplete value: wait for more bytes
                yield value
                pos = end
            buf = buf[pos:]
    except httpx.HTTPError as exc:
        raise Unavailable(f"events stream broke ({type(exc).__name__})", provider=adapter.name) from None


# --------------------------------------------------------------------------- the kind


def _defaults(fields: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    if env.get("DOCKER_HOST"):
        return {"host": (env["DOCKER_HOST"], "$DOCKER_HOST")}
    return {"host": (DEFAULT_HOST, "default")}


def _from_leon(block: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    host = block.get("host") or block.get("docker_host") or data.get("docker_host")
    return {"host": host} if isinstance(host, str) and host else {}


KIND = ProviderKind(
    name="docker",
    factory=DockerAdapter,
    # Listed in full every 30 s, not the default 15: /events and the GETs it triggers keep the
    # picture current in between (issue 10: a full listing at 50k leases is ~15k containers).
    capabilities=Capabilities(
        has_events=True, has_logs=True, workspace_root="/workspace", list_interval_s=30.0
    ),
    connect="host",
    defaults=_defaults,
    from_leon=_from_leon,
)
