"""E2B API double (provider-apis.md §7.1): a loopback HTTP server speaking E2B's REST wire format.

Native states are `running` and `paused` only (E2B's public enum). The real API lists an
internal `pausing` sandbox as `paused`, so pause here takes effect at once. E2B has no stopped
state; `add(state="stopped")` yields a paused sandbox.

`add(..., internal_state="snapshotting")` makes a running sandbox that refuses pause with 409
(the "409 but not already paused" case).

Deliberately hostile: a 401 echoes the credential it was given (some APIs do), so the adapters'
secret scrubbing is exercised for real.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import operator
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from opcockpit.doubles.base import FakeInstance, FakeProvider, Faults, Request, Response, Router, iso

_TEAM_ID = "00000000-0000-4000-8000-00000000e2b0"
_STATE = operator.attrgetter("state")

# base event-log actions -> E2B lifecycle event types
_EVENT_TYPES = {
    "create": "sandbox.lifecycle.created",
    "pause": "sandbox.lifecycle.paused",
    "paused": "sandbox.lifecycle.paused",
    "stopped": "sandbox.lifecycle.paused",
    "resume": "sandbox.lifecycle.resumed",
    "running": "sandbox.lifecycle.resumed",
    "destroy": "sandbox.lifecycle.killed",
    "kill": "sandbox.lifecycle.killed",
}


def _error(status: int, message: str) -> Response:
    return Response(status, {"code": status, "message": message})


@dataclass
class E2BFaults(Faults):
    """Base faults plus broken listings (issue 16): cursors that never end or loop, and a listing
    that silently drops sandboxes while `X-Total-Running` still counts them."""

    endless_cursors: bool = False  # every listing page: the first page again + a fresh X-Next-Token
    cursor_loop: bool = False  # every listing page: the first page again + the same X-Next-Token
    drop_every: int | None = None  # listing omits every Nth sandbox of its order; totals stay true

    def clear(self) -> None:
        for name, value in E2BFaults().__dict__.items():
            setattr(self, name, value)


class E2BDouble(FakeProvider):
    kind = "e2b"

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        unix_path: str | None = None,
        template_id: str = "base",
        echo_key_on_401: bool = True,
    ) -> None:
        self.template_id = template_id
        self.echo_key_on_401 = echo_key_on_401
        self._listing_cache: dict[tuple[Any, ...], list[tuple[str, str]]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}  # id -> config incl. signatureSecret
        super().__init__(api_key=api_key, unix_path=unix_path)
        self.faults: E2BFaults = E2BFaults()

    # -- hooks ---------------------------------------------------------------------------------

    def native_state(self, normal: str) -> str:
        return "running" if normal == "running" else "paused"

    def new_id(self) -> str:
        return "i" + uuid.uuid4().hex[:19]

    def authorized(self, request: Request) -> bool:
        return self.api_key is None or request.header("x-api-key") == self.api_key

    def unauthorized(self) -> Response:
        request: Request | None = self.current_request
        presented = request.header("x-api-key") if request else None
        if presented and self.echo_key_on_401:
            return _error(401, f"Invalid API key, key '{presented}' was rejected")
        return _error(401, "Invalid API key")

    def rate_limited(self, retry_after: float) -> Response:
        return Response(
            429, {"code": 429, "message": "Rate limit exceeded"}, {"Retry-After": f"{retry_after:g}"}
        )

    def server_error(self, status: int) -> Response:
        return _error(status, "injected failure")

    # -- routes --------------------------------------------------------------------------------

    def _routes(self, router: Router) -> None:
        sid = r"(?P<sandbox_id>[^/]+)"
        router.add("GET", "/v2/sandboxes", self._list, listing=True)
        router.add("GET", f"/sandboxes/{sid}", self._get)
        router.add("POST", f"/sandboxes/{sid}/pause", self._pause)
        router.add("POST", f"/sandboxes/{sid}/connect", self._connect_v1)
        router.add("POST", f"/v2/sandboxes/{sid}/connect", self._connect_v2)
        router.add("POST", f"/sandboxes/{sid}/resume", self._resume_deprecated)
        router.add("DELETE", f"/sandboxes/{sid}", self._delete)
        router.add("POST", f"/sandboxes/{sid}/timeout", self._set_timeout)
        router.add("GET", "/events/sandboxes", self._events)
        router.add("GET", f"/events/sandboxes/{sid}", self._events)
        wid = r"(?P<webhook_id>[^/]+)"
        router.add("POST", "/events/webhooks", self._webhook_create)
        router.add("GET", "/events/webhooks", self._webhook_list)
        router.add("GET", f"/events/webhooks/{wid}", self._webhook_get)
        router.add("PATCH", f"/events/webhooks/{wid}", self._webhook_patch)
        router.add("DELETE", f"/events/webhooks/{wid}", self._webhook_delete)

    # -- rendering -----------------------------------------------------------------------------

    def _started(self, inst: FakeInstance) -> datetime:
        return inst.started_at or inst.created_at

    def render(self, inst: FakeInstance) -> dict[str, Any]:
        started = self._started(inst)
        template_id, alias = self._template_names(inst)
        return {
            "templateID": template_id,
            "alias": alias,
            "sandboxID": inst.instance_id,
            "clientID": "c",
            "startedAt": iso(started),
            "endAt": iso(inst.extra.get("end_at") or started + timedelta(hours=1)),
            "cpuCount": int(inst.cpu) if float(inst.cpu).is_integer() else inst.cpu,
            "memoryMB": inst.memory_mb,
            "diskSizeMB": int(inst.disk_gb * 1024),
            "state": inst.state,
            "envdVersion": "0.2.0",
            "metadata": dict(inst.labels),
        }

    def _sandbox(self, inst: FakeInstance) -> dict[str, Any]:
        return {
            "sandboxID": inst.instance_id,
            "templateID": self._template_names(inst)[0],
            "clientID": "c",
            "envdVersion": "0.2.0",
        }

    def _find(self, sandbox_id: str) -> FakeInstance | None:
        # The API also accepts the legacy composite "<sandboxID>-<clientID>".
        inst = self.instances.get(sandbox_id)
        if inst is None and "-" in sandbox_id:
            inst = self.instances.get(sandbox_id.rsplit("-", 1)[0])
        return inst

    @staticmethod
    def _not_found(sandbox_id: str) -> Response:
        return _error(404, f'sandbox "{sandbox_id}" not found')

    # -- listing -------------------------------------------------------------------------------

    def _list(self, request: Request) -> Response:
        states = {s for raw in request.query.get("state", []) for s in raw.split(",") if s}
        if not states:
            states = {"running", "paused"}
        if states - {"running", "paused"}:
            return _error(400, f"invalid state filter: {sorted(states)}")
        wanted = _parse_metadata(request.q("metadata"))
        if wanted is None:
            return _error(400, "invalid metadata filter")
        try:
            limit = int(request.q("limit") or 100)
        except ValueError:
            return _error(400, "limit must be an integer")
        if not 1 <= limit <= 100:
            return _error(400, "limit must be between 1 and 100")
        order = request.q("order") or "desc"
        if order not in ("asc", "desc"):
            return _error(400, f"invalid order: {order}")
        ascending = order == "asc"
        template = request.q("template") or None
        started_after: str | None = None
        if request.q("startedAfter"):
            try:
                parsed = datetime.fromisoformat((request.q("startedAfter") or "").replace("Z", "+00:00"))
            except ValueError:
                return _error(400, "startedAfter must be an RFC3339 date-time")
            if parsed.tzinfo is None:
                return _error(400, "startedAfter must be an RFC3339 date-time with an offset")
            started_after = iso(parsed)
        f = self.faults
        if f.endless_cursors or f.cursor_loop:
            return self._looping_page(limit, states, wanted, fresh=f.endless_cursors)
        drop = f.drop_every if f.drop_every and f.drop_every > 0 else None
        token = request.q("nextToken")
        page, after, listing_id = 1, None, None
        if token:
            try:
                page, started, sbx, *rest = json.loads(base64.urlsafe_b64decode(token.encode()))
                after = (str(started), str(sbx))
                listing_id = rest[0] if rest else None
            except (ValueError, TypeError):
                return _error(400, "invalid nextToken")
        fault = self.page_fault(page)
        if fault is not None:
            return fault
        # The order of one listing (page 1 .. last) is computed once and kept under a listing id
        # carried in the token, so a 10k listing costs O(n) in total rather than O(n) per page.
        # Each page still renders live state and skips sandboxes killed since page 1.
        cache_key = (
            listing_id,
            tuple(sorted(states)),
            tuple(sorted(wanted.items())),
            ascending,
            template,
            started_after,
        )
        with self.lock:
            keys = self._listing_cache.get(cache_key) if listing_id else None
            if keys is None:
                listing_id = uuid.uuid4().hex[:12]
                cache_key = (listing_id, *cache_key[1:])
                keys = sorted(
                    (iso(self._started(i)) or "", i.instance_id)
                    for i in self.instances.values()
                    if self._listed(i, states, wanted, template, started_after)
                )
                self._listing_cache[cache_key] = keys
                while len(self._listing_cache) > 16:
                    self._listing_cache.pop(next(iter(self._listing_cache)))
            # `keys` is ascending; a descending listing walks it backwards from the cursor.
            if ascending:
                order = range(bisect.bisect_right(keys, after) if after else 0, len(keys))
            else:
                order = range((bisect.bisect_left(keys, after) if after else len(keys)) - 1, -1, -1)
            chunk: list[dict[str, Any]] = []
            last: tuple[str, str] | None = None
            more = False
            for pos in order:
                if len(chunk) >= limit:
                    more = True
                    break
                inst = self.instances.get(keys[pos][1])
                if inst is not None and inst.state in states:
                    last = keys[pos]
                    if drop is not None and pos % drop == drop - 1:
                        continue  # silently dropped (fault), yet still counted below
                    chunk.append(self.render(inst))
            running = self._running_total(wanted, template, started_after) if "running" in states else 0
        headers: dict[str, str] = {}
        if "running" in states:
            headers["X-Total-Running"] = str(running)
        if more and last is not None:
            headers["X-Next-Token"] = base64.urlsafe_b64encode(
                json.dumps([page + 1, last[0], last[1], listing_id]).encode()
            ).decode()
        return Response(200, chunk, headers)

    def _listed(
        self,
        inst: FakeInstance,
        states: set[str],
        wanted: dict[str, str],
        template: str | None,
        started_after: str | None,
    ) -> bool:
        """Every filter of GET /v2/sandboxes. `template` matches the template ID or its alias.
        startedAfter is taken as strictly after (a guess: the spec says only "started after");
        both sides are iso() strings (UTC, ms, Z), so comparing the strings compares the times."""
        if inst.state not in states or (wanted and not _labels_match(inst.labels, wanted)):
            return False
        if template is not None and template not in self._template_names(inst):
            return False
        return started_after is None or (iso(self._started(inst)) or "") > started_after

    def _template_names(self, inst: FakeInstance) -> tuple[str, str]:
        """(templateID, alias) of the sandbox; `add(..., template_id=, alias=)` sets them."""
        template_id = inst.extra.get("template_id", self.template_id)
        return template_id, inst.extra.get("alias", template_id)

    def _running_total(
        self, wanted: dict[str, str], template: str | None = None, started_after: str | None = None
    ) -> int:
        """X-Total-Running: running sandboxes after filters, before paging, as of *this* request
        (the real server counts afresh on every page). Call with the lock held."""
        if not wanted and template is None and started_after is None:
            # the common case stays in C: a 10k listing asks for this 100 times
            return operator.countOf(map(_STATE, self.instances.values()), "running")
        running = {"running"}
        return sum(
            1 for i in self.instances.values() if self._listed(i, running, wanted, template, started_after)
        )

    def _looping_page(self, limit: int, states: set[str], wanted: dict[str, str], *, fresh: bool) -> Response:
        """Faults `endless_cursors` / `cursor_loop`: the first page again, and a next token that is
        new every time (endless) or always the same (loop)."""
        with self.lock:
            chunk = [
                self.render(i)
                for i in self.instances.values()
                if i.state in states and (not wanted or _labels_match(i.labels, wanted))
            ][:limit]
            running = self._running_total(wanted)
        token = f"endless-{uuid.uuid4().hex}" if fresh else "loop"
        return Response(200, chunk, {"X-Total-Running": str(running), "X-Next-Token": token})

    # -- one sandbox ---------------------------------------------------------------------------

    def _get(self, request: Request, sandbox_id: str) -> Response:
        with self.lock:
            inst = self._find(sandbox_id)
            if inst is None:
                return self._not_found(sandbox_id)
            body = self.render(inst)
        body["lifecycle"] = {"autoResume": False, "onTimeout": "kill"}
        if inst.extra.get("envd_access_token"):  # a secure sandbox: GET returns its envd token
            body["envdAccessToken"] = inst.extra["envd_access_token"]
        if inst.state == "paused":
            body["pauseMode"] = inst.extra.get("pause_mode", "full")
        return Response(200, body)

    def _pause(self, request: Request, sandbox_id: str) -> Response:
        # The body is optional (the cockpit sends none; the SDK sends `{}` or `{"memory": bool}`);
        # `memory: false` keeps only the filesystem (pauseMode "filesystem").
        try:
            options = request.json() if request.body.strip() else {}
        except ValueError:
            return _error(400, "invalid JSON body")
        if not isinstance(options, dict) or not isinstance(options.get("memory", True), bool):
            return _error(400, "request body has an error: doesn't match schema")
        with self.lock:
            inst = self._find(sandbox_id)
            if inst is None:
                return self._not_found(sandbox_id)
            if inst.state == "paused":
                return _error(409, f"Sandbox {inst.instance_id} is already paused")
            if inst.extra.get("internal_state") == "snapshotting":  # listed as running, cannot pause
                return _error(409, f"Sandbox {inst.instance_id} cannot be paused while snapshotting")
            inst.state = "paused"
            inst.extra["pause_mode"] = "full" if options.get("memory", True) else "filesystem"
        self.emit(inst, "pause")
        return Response(204)

    def _resume(self, sandbox_id: str) -> tuple[FakeInstance | None, bool]:
        """(instance, resumed?) — resumed False when it was already running."""
        with self.lock:
            inst = self._find(sandbox_id)
            if inst is None:
                return None, False
            if inst.state == "running":
                return inst, False
            inst.state = "running"
            inst.started_at = datetime.now(UTC)
        self.emit(inst, "resume")
        return inst, True

    def _connect_v1(self, request: Request, sandbox_id: str) -> Response:
        try:
            body = request.json()
        except ValueError:
            return _error(400, "invalid JSON body")
        if not isinstance(body, dict) or not isinstance(body.get("timeout"), int | float):
            return _error(
                400, "request body has an error: doesn't match schema: property 'timeout' is missing"
            )
        return self._connect(sandbox_id)

    def _connect_v2(self, request: Request, sandbox_id: str) -> Response:
        return self._connect(sandbox_id)

    def _connect(self, sandbox_id: str) -> Response:
        inst, resumed = self._resume(sandbox_id)
        if inst is None:
            return self._not_found(sandbox_id)
        return Response(201 if resumed else 200, self._sandbox(inst))

    def _resume_deprecated(self, request: Request, sandbox_id: str) -> Response:
        with self.lock:
            inst = self._find(sandbox_id)
            if inst is not None and inst.state == "running":
                return _error(409, f"Sandbox {inst.instance_id} is already running")
        inst, _ = self._resume(sandbox_id)
        if inst is None:
            return self._not_found(sandbox_id)
        return Response(201, self._sandbox(inst))

    def _delete(self, request: Request, sandbox_id: str) -> Response:
        with self.lock:
            inst = self._find(sandbox_id)
            if inst is None:
                return self._not_found(sandbox_id)
            self.instances.pop(inst.instance_id, None)
        self.emit(inst, "kill")
        return Response(204)

    def _set_timeout(self, request: Request, sandbox_id: str) -> Response:
        """POST /sandboxes/{id}/timeout {"timeout": s}: the sandbox now ends `timeout` s from now."""
        try:
            body = request.json()
        except ValueError:
            return _error(400, "invalid JSON body")
        if not isinstance(body, dict) or not isinstance(body.get("timeout"), int) or body["timeout"] < 0:
            return _error(400, "request body has an error: property 'timeout' is missing")
        with self.lock:
            inst = self._find(sandbox_id)
            if inst is None:
                return self._not_found(sandbox_id)
            inst.extra["end_at"] = datetime.now(UTC) + timedelta(seconds=body["timeout"])
        return Response(204)

    def no_route(self, request: Request) -> Response:
        # E2B's error model requires `code` on every error body, unknown routes included.
        return _error(404, f"no route {request.method} {request.path}")

    # -- events --------------------------------------------------------------------------------

    def _events(self, request: Request, sandbox_id: str | None = None) -> Response:
        try:
            offset = int(request.q("offset") or 0)
            limit = int(request.q("limit") or 10)
        except ValueError:
            return _error(400, "offset and limit must be integers")
        if offset < 0 or not 1 <= limit <= 100:
            return _error(400, "offset must be >= 0 and limit between 1 and 100")
        ascending = (request.q("orderAsc") or "false").lower() == "true"
        types = {t for raw in request.query.get("types", []) for t in raw.split(",") if t}
        with self.lock:
            log = list(self.events_log)
        items = [self.render_event(e) for e in log]
        if sandbox_id is not None:
            items = [e for e in items if e["sandboxId"] == sandbox_id]
        if types:
            items = [e for e in items if e["type"] in types]
        if not ascending:
            items.reverse()
        return Response(200, items[offset : offset + limit])

    def render_event(self, entry: dict[str, Any]) -> dict[str, Any]:
        event_type = _EVENT_TYPES.get(entry["action"], "sandbox.lifecycle.updated")
        execution = uuid.uuid5(uuid.NAMESPACE_OID, f"{entry['instance_id']}")
        return {
            "version": "v1",
            "id": entry["id"],
            "type": event_type,
            "eventData": {"sandbox_metadata": entry["labels"]} if entry["labels"] else None,
            "sandboxId": entry["instance_id"],
            "sandboxExecutionId": str(execution),
            "sandboxTemplateId": self.template_id,
            "sandboxBuildId": str(uuid.uuid5(uuid.NAMESPACE_OID, self.template_id)),
            "sandboxTeamId": _TEAM_ID,
            "timestamp": iso(datetime.fromtimestamp(entry["time"], UTC)),
        }

    # -- webhooks: registration API and signed delivery (lifecycle-events-webhooks.mdx) --------

    def _public(self, hook: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in hook.items() if k != "signatureSecret"}

    def _webhook_create(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError:
            return _error(400, "body is not JSON")
        if not isinstance(body, dict) or not body.get("url") or not body.get("signatureSecret"):
            return _error(400, "url and signatureSecret are required")
        hook = {
            "id": str(uuid.uuid4()),
            "teamID": _TEAM_ID,
            "name": str(body.get("name") or ""),
            "createdAt": iso(datetime.now(UTC)),
            "enabled": bool(body.get("enabled", True)),
            "url": str(body["url"]),
            "events": list(body.get("events") or []),
            "signatureSecret": str(body["signatureSecret"]),
        }
        with self.lock:
            self.webhooks[hook["id"]] = hook
        return Response(201, self._public(hook))

    def _webhook_list(self, request: Request) -> Response:
        with self.lock:
            return Response(200, [self._public(h) for h in self.webhooks.values()])

    def _webhook_get(self, request: Request, webhook_id: str) -> Response:
        with self.lock:
            hook = self.webhooks.get(webhook_id)
        return Response(200, self._public(hook)) if hook else _error(404, "webhook not found")

    def _webhook_patch(self, request: Request, webhook_id: str) -> Response:
        body = request.json()
        with self.lock:
            hook = self.webhooks.get(webhook_id)
            if hook is None:
                return _error(404, "webhook not found")
            for key in ("name", "url", "enabled", "events", "signatureSecret"):
                if isinstance(body, dict) and key in body:
                    hook[key] = body[key]
        return Response(200, self._public(hook))

    def _webhook_delete(self, request: Request, webhook_id: str) -> Response:
        with self.lock:
            hook = self.webhooks.pop(webhook_id, None)
        return Response(200, self._public(hook)) if hook else _error(404, "webhook not found")

    @staticmethod
    def sign(secret: str, body: bytes) -> str:
        """E2B v1: base64(SHA-256(secret + body)), standard alphabet, padding stripped."""
        return base64.b64encode(hashlib.sha256(secret.encode() + body).digest()).decode().rstrip("=")

    def webhook_request(
        self, secret: str, entry: dict[str, Any], *, webhook_id: str = "wh-double"
    ) -> tuple[bytes, dict[str, str]]:
        """(body, headers) of one signed delivery of the event-log `entry` (a fresh delivery id)."""
        body = json.dumps(self.render_event(entry), separators=(",", ":")).encode()
        return body, {
            "content-type": "application/json",
            "e2b-webhook-id": webhook_id,
            "e2b-delivery-id": str(uuid.uuid4()),
            "e2b-signature-version": "v1",
            "e2b-signature": self.sign(secret, body),
        }

    def send_webhook(
        self,
        url: str,
        secret: str,
        entry: dict[str, Any],
        *,
        webhook_id: str = "wh-double",
        retries: int = 3,
        retry_delay_s: float = 0.05,
        timeout: float = 5.0,
    ) -> int:
        """POST one signed lifecycle event to `url` the way E2B does; a failed attempt (no answer
        or not 2xx) is retried up to `retries` times with a fresh e2b-delivery-id. Returns the
        last status (0: no answer)."""
        status = 0
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(retry_delay_s)
            body, headers = self.webhook_request(secret, entry, webhook_id=webhook_id)
            req = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    status = resp.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0
            if 200 <= status < 300:
                return status
        return status

    def deliver(self, entries: list[dict[str, Any]] | None = None, **kw: Any) -> list[int]:
        """Send `entries` (default: the whole event log) to every enabled registered webhook whose
        `events` include the entry's type (empty list: all). Returns the statuses."""
        with self.lock:
            hooks = [dict(h) for h in self.webhooks.values() if h["enabled"]]
            log = list(self.events_log if entries is None else entries)
        out = []
        for entry in log:
            kind = self.render_event(entry)["type"]
            for hook in hooks:
                if not hook["events"] or kind in hook["events"]:
                    out.append(
                        self.send_webhook(
                            hook["url"], hook["signatureSecret"], entry, webhook_id=hook["id"], **kw
                        )
                    )
        return out

    # -- conveniences for tests / the demo -----------------------------------------------------

    def route_hits(self, method: str, fragment: str) -> int:
        """Requests served by routes whose pattern contains `fragment` (e.g. "connect")."""
        with self.lock:
            return sum(n for k, n in self.requests_by_route.items() if k.startswith(method) and fragment in k)


def _labels_match(labels: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


def _parse_metadata(raw: str | None) -> dict[str, str] | None:
    """E2B's server: unescape the whole value, split on & and =, unescape each part."""
    if not raw:
        return {}
    out: dict[str, str] = {}
    for pair in unquote(raw).split("&"):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep:
            return None
        out[unquote(key)] = unquote(value)
    return out
