"""Daytona API double (provider-apis.md §7.2): loopback HTTP under `/api`, Daytona's wire format.

Transitions are asynchronous like the real server: stop/start/pause/delete answer 200 at once
with `state != desiredState` (stopping, starting, pausing, destroying) and settle
`transition_s` later (FakeInstance.pending + FakeProvider.settle, run on every request).
A destroyed sandbox answers 404 and leaves the list.

`list_lag_s` mimics daytonaio/daytona#5138: the list serves the fleet as it was `list_lag_s`
ago (stale states, absent new sandboxes, destroyed ones still present) while GET by id is exact;
`freeze_list()` / `thaw_list()` do the same deterministically for tests.

Point clients at `double.api_url` (`http://127.0.0.1:PORT/api`).
Deliberately hostile: a 401 echoes the bearer token it was given, to exercise secret scrubbing.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opcockpit.doubles.base import FakeInstance, FakeProvider, Faults, Request, Response, Router, iso

PAUSE_CAPABLE_CLASSES = frozenset({"linux-vm", "windows"})

_SETTLED_DESIRED = {
    "started": "started",
    "stopped": "stopped",
    "paused": "paused",
    "archived": "archived",
    "error": "started",
    "destroyed": "destroyed",
    "__gone__": "destroyed",
}


@dataclass
class DaytonaFaults(Faults):
    """Base faults plus broken listings (issue 16). `report_total` adds the `total` field of
    Daytona's (deprecated) paginated listing to every page, so clients can check completeness."""

    endless_cursors: bool = False  # every listing page: the first page again + a fresh nextCursor
    cursor_loop: bool = False  # every listing page: the first page again + the same nextCursor
    drop_every: int | None = None  # listing omits every Nth sandbox of its order; `total` stays true
    report_total: bool = False

    def clear(self) -> None:
        for name, value in DaytonaFaults().__dict__.items():
            setattr(self, name, value)


class DaytonaDouble(FakeProvider):
    kind = "daytona"

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        unix_path: str | None = None,
        sandbox_class: str = "container",
        transition_s: float = 0.2,
        list_lag_s: float = 0.0,
        organization_id: str = "org-0001",
        echo_key_on_401: bool = True,
    ) -> None:
        self.sandbox_class = sandbox_class
        self.transition_s = transition_s
        self.list_lag_s = list_lag_s
        self.organization_id = organization_id
        self.echo_key_on_401 = echo_key_on_401
        # (monotonic time, rendered fleet) snapshots for the lagging list; only kept when lagging.
        self._history: deque[tuple[float, list[dict[str, Any]]]] = deque()
        self._frozen: list[dict[str, Any]] | None = None
        self._listing_cache: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        super().__init__(api_key=api_key, unix_path=unix_path)
        self.faults: DaytonaFaults = DaytonaFaults()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    # -- hooks ---------------------------------------------------------------------------------

    def native_state(self, normal: str) -> str:
        if normal == "running":
            return "started"
        if normal == "paused":
            # LEON pauses Daytona sandboxes by stopping them; only VM classes know a real pause.
            return "paused" if self.sandbox_class in PAUSE_CAPABLE_CLASSES else "stopped"
        return "archived"  # "stopped" in the normalised sense: nothing left on the runner

    def new_id(self) -> str:
        return str(uuid.uuid4())

    def add(self, instance_id: str | None = None, **kwargs: Any) -> FakeInstance:
        kwargs.setdefault("sandbox_class", self.sandbox_class)
        return super().add(instance_id, **kwargs)

    def authorized(self, request: Request) -> bool:
        return self.api_key is None or request.header("authorization") == f"Bearer {self.api_key}"

    def unauthorized(self) -> Response:
        request: Request | None = self.current_request
        presented = request.header("authorization") if request else None
        message = "Unauthorized"
        if presented and self.echo_key_on_401:
            message = f"Invalid credentials: {presented}"
        return self._error(401, message, path=request.path if request else "/api")

    def rate_limited(self, retry_after: float) -> Response:
        return Response(
            429,
            {"statusCode": 429, "message": "Rate limit exceeded", "error": "Too Many Requests"},
            {
                "X-RateLimit-Limit-authenticated": "10000",
                "X-RateLimit-Remaining-authenticated": "0",
                "Retry-After-authenticated": f"{retry_after:g}",
            },
        )

    def server_error(self, status: int) -> Response:
        return self._error(status, "injected failure")

    def emit(self, instance: FakeInstance, action: str) -> None:
        super().emit(instance, action)
        if self.list_lag_s > 0:
            self._snapshot()

    def _complete(self, inst: FakeInstance, target: str) -> None:
        super()._complete(inst, target)  # "__gone__" drops it: destroyed answers 404, leaves the list
        inst.extra["updated_at"] = datetime.now(UTC)
        self.emit(inst, "destroyed" if target == "__gone__" else target)

    def _error(self, status: int, message: str, *, path: str | None = None) -> Response:
        request: Request | None = self.current_request
        errors = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 409: "Conflict"}
        errors |= {422: "Unprocessable Entity", 429: "Too Many Requests"}
        return Response(
            status,
            {
                "path": path or (request.path if request else "/api"),
                "timestamp": iso(datetime.now(UTC)),
                "statusCode": status,
                "error": errors.get(status, "Internal Server Error"),
                "message": message,
            },
        )

    # -- fleet helpers -------------------------------------------------------------------------

    def _begin(self, inst: FakeInstance, transitional: str, target: str) -> None:
        """Start an asynchronous transition: `transitional` now, `target` after transition_s."""
        inst.state = transitional
        inst.extra["desired"] = _SETTLED_DESIRED.get(target, target)
        inst.extra["updated_at"] = datetime.now(UTC)
        inst.pending = (target, time.monotonic() + self.transition_s)
        self.emit(inst, transitional)

    def _live(self, id_or_name: str) -> FakeInstance | None:
        inst = self.instances.get(id_or_name)
        if inst is None:
            inst = next((i for i in self.instances.values() if i.name == id_or_name), None)
        return inst

    def _not_found(self, id_or_name: str) -> Response:
        return self._error(404, f"Sandbox with ID or name {id_or_name} not found")

    def render(self, inst: FakeInstance) -> dict[str, Any]:
        desired = inst.extra.get("desired") if inst.pending else None
        desired = desired or _SETTLED_DESIRED.get(inst.state, inst.state)
        updated = inst.extra.get("updated_at") or inst.created_at
        item: dict[str, Any] = {
            "id": inst.instance_id,
            "organizationId": self.organization_id,
            "name": inst.name or inst.instance_id,
            "target": "us",
            "runnerId": "runner-1",
            "sandboxClass": inst.extra.get("sandbox_class", self.sandbox_class),
            "user": "daytona",
            "state": inst.state,
            "desiredState": desired,
            "snapshot": "daytonaio/sandbox:0.4.3",
            "labels": dict(inst.labels),
            # cpu, memory (GiB) and disk (GiB) are integers in Daytona's DTOs (the SDK's pydantic
            # models declare StrictInt); a fractional FakeInstance value is rounded, at least 1.
            "cpu": max(1, round(inst.cpu)),
            "gpu": 0,
            "memory": max(1, round(inst.memory_mb / 1024)),
            "disk": max(1, round(inst.disk_gb)),
            "public": False,
            "networkBlockAll": False,
            "autoStopInterval": 15,
            "autoArchiveInterval": 10080,
            "autoDeleteInterval": -1,
            "backupState": "None",
            "createdAt": iso(inst.created_at),
            "updatedAt": iso(updated),
            "lastActivityAt": iso(updated),
            "toolboxProxyUrl": f"{self.url}/toolbox" if self._server is not None else None,
        }
        if inst.state == "error":
            item["errorReason"] = inst.extra.get("error_reason", "runner unreachable")
            item["recoverable"] = True
        return item

    def render_detail(self, inst: FakeInstance) -> dict[str, Any]:
        """GET /api/sandbox/{id} and the action answers: the `Sandbox` DTO, which adds the
        required `env` and `kvm` (and `volumes`) to the list item's fields."""
        body = self.render(inst)
        body["env"] = dict(inst.extra.get("env", {}))
        body["kvm"] = bool(inst.extra.get("kvm", False))
        body["volumes"] = []
        return body

    def _render_fleet(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self.render(i) for i in self.instances.values()]

    def _snapshot(self) -> None:
        now = time.monotonic()
        with self.lock:
            self._history.append((now, self._render_fleet()))
            # Keep only what a lagging list can still need (plus the newest older snapshot).
            while len(self._history) > 1 and self._history[1][0] <= now - self.list_lag_s:
                self._history.popleft()

    def freeze_list(self) -> None:
        """Pin the list to the fleet as it is now (a deterministic #5138 for tests) until thawed."""
        self._frozen = self._render_fleet()

    def thaw_list(self) -> None:
        self._frozen = None

    def _listed_fleet(self) -> list[dict[str, Any]]:
        if self._frozen is not None:
            return list(self._frozen)
        if self.list_lag_s <= 0:
            return self._render_fleet()
        cutoff = time.monotonic() - self.list_lag_s
        with self.lock:
            visible = [fleet for t, fleet in self._history if t <= cutoff]
        return visible[-1] if visible else []

    # -- routes --------------------------------------------------------------------------------

    def _routes(self, router: Router) -> None:
        sid = r"(?P<id_or_name>[^/]+)"
        router.add("GET", "/api/sandbox", self._list, listing=True)
        router.add("GET", f"/api/sandbox/{sid}", self._get)
        router.add("POST", f"/api/sandbox/{sid}/stop", self._stop)
        router.add("POST", f"/api/sandbox/{sid}/start", self._start)
        router.add("POST", f"/api/sandbox/{sid}/pause", self._pause)
        router.add("DELETE", f"/api/sandbox/{sid}", self._delete)
        router.add("PUT", f"/api/sandbox/{sid}/labels", self._replace_labels)

    def _list(self, request: Request) -> Response:
        try:
            limit = int(request.q("limit") or 100)
        except ValueError:
            return self._error(400, "limit must be an integer")
        if not 1 <= limit <= 200:
            return self._error(400, "limit must not be greater than 200")
        wanted: dict[str, Any] = {}
        if request.q("labels"):
            try:
                wanted = json.loads(request.q("labels") or "{}")
            except ValueError:
                return self._error(400, "labels must be a valid JSON object")
            if not isinstance(wanted, dict):
                return self._error(400, "labels must be a valid JSON object")
        states = {s for raw in request.query.get("states", []) for s in raw.split(",") if s}
        if "destroyed" in states:
            return self._error(400, "each value in states must be one of the following values: ...")
        try:
            match = _ListFilter.from_request(request, wanted, states)
        except ValueError as exc:
            return self._error(400, str(exc))
        f = self.faults
        if f.endless_cursors or f.cursor_loop:
            return self._looping_page(limit, match, fresh=f.endless_cursors)
        page, after, listing_id = 1, None, None
        cursor = request.q("cursor")
        if cursor:
            try:
                decoded = json.loads(base64.b64decode(cursor.encode(), validate=True))
                page, after = int(decoded["p"]), (decoded["k"], str(decoded["i"]))
                listing_id = decoded.get("l")
            except (ValueError, KeyError, TypeError, AttributeError):
                return self._error(400, "Invalid cursor")
        fault = self.page_fault(page)
        if fault is not None:
            return fault
        # One listing (page 1 .. last) is filtered and ordered once and kept under a listing id
        # carried in the cursor, so a 10k listing costs O(n) in total rather than O(n) per page.
        # Pages of one listing therefore show the fleet as of page 1 (the real list is eventually
        # consistent too; clients confirm by GET before acting).
        cache_key = (listing_id, match)
        with self.lock:
            items = self._listing_cache.get(cache_key) if listing_id else None
        if items is None:
            listing_id = uuid.uuid4().hex[:12]
            cache_key = (listing_id, match)
            items = [item for item in self._listed_fleet() if match(item)]
            # (sort field, id) in the requested direction: a total order, so the cursor (the last
            # key served) neither skips nor repeats.
            items.sort(key=match.sort_key, reverse=match.descending)
            with self.lock:
                self._listing_cache[cache_key] = items
                while len(self._listing_cache) > 16:
                    self._listing_cache.pop(next(iter(self._listing_cache)))
        start = 0
        if after is not None:
            # Skip every item at or before the cursor in the listing's order (binary search).
            lo, hi = 0, len(items)
            while lo < hi:
                mid = (lo + hi) // 2
                key = match.sort_key(items[mid])
                if (key >= after) if match.descending else (key <= after):
                    lo = mid + 1
                else:
                    hi = mid
            start = lo
        window = items[start : start + limit]
        next_cursor = None
        if start + limit < len(items):
            value, ident = match.sort_key(window[-1])
            raw = json.dumps({"p": page + 1, "k": value, "i": ident, "l": listing_id})
            next_cursor = base64.b64encode(raw.encode()).decode()
        drop = f.drop_every if f.drop_every and f.drop_every > 0 else None
        chunk = [it for pos, it in enumerate(window, start) if drop is None or pos % drop != drop - 1]
        body: dict[str, Any] = {"items": chunk, "nextCursor": next_cursor}
        if f.report_total or drop is not None:
            body["total"] = len(items)
        return Response(200, body)

    def _looping_page(self, limit: int, match: _ListFilter, *, fresh: bool) -> Response:
        """Faults `endless_cursors` / `cursor_loop`: the first page again, and a next cursor that
        is new every time (endless) or always the same (loop)."""
        items = [item for item in self._listed_fleet() if match(item)]
        cursor = base64.b64encode(f"endless-{uuid.uuid4().hex}".encode()).decode() if fresh else "bG9vcA=="
        body: dict[str, Any] = {"items": items[:limit], "nextCursor": cursor}
        if self.faults.report_total:
            body["total"] = len(items)
        return Response(200, body)

    def _get(self, request: Request, id_or_name: str) -> Response:
        with self.lock:
            inst = self._live(id_or_name)
            if inst is None:
                return self._not_found(id_or_name)
            return Response(200, self.render_detail(inst))

    def _replace_labels(self, request: Request, id_or_name: str) -> Response:
        """PUT /api/sandbox/{id}/labels {"labels": {...}}: full replace, answers {"labels": ...}."""
        try:
            body = request.json()
        except ValueError:
            return self._error(400, "Invalid JSON body")
        labels = body.get("labels") if isinstance(body, dict) else None
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            return self._error(400, "labels must be an object of strings")
        with self.lock:
            inst = self._live(id_or_name)
            if inst is None:
                return self._not_found(id_or_name)
            inst.labels = dict(labels)
            inst.extra["updated_at"] = datetime.now(UTC)
        if self.list_lag_s > 0:
            self._snapshot()
        return Response(200, {"labels": dict(labels)})

    def _idle(self, id_or_name: str) -> FakeInstance | Response:
        """The instance a state change may start on, or the 404 / 409 the real API answers instead.
        Call with the lock held."""
        inst = self._live(id_or_name)
        if inst is None:
            return self._not_found(id_or_name)
        if inst.pending:
            return self._error(409, "Sandbox state change in progress")
        return inst

    def _stop(self, request: Request, id_or_name: str) -> Response:
        with self.lock:
            inst = self._idle(id_or_name)
            if isinstance(inst, Response):
                return inst
            if inst.state not in ("started", "paused"):
                return self._error(400, "Sandbox is not in a stoppable state")
            self._begin(inst, "stopping", "stopped")
            return Response(200, self.render_detail(inst))

    def _start(self, request: Request, id_or_name: str) -> Response:
        with self.lock:
            inst = self._idle(id_or_name)
            if isinstance(inst, Response):
                return inst
            if inst.state == "started":
                return Response(200, self.render_detail(inst))
            if inst.state == "paused":
                cls = inst.extra.get("sandbox_class", self.sandbox_class)
                if cls not in PAUSE_CAPABLE_CLASSES:
                    return self._error(422, "Resuming is not supported for this sandbox")
                self._begin(inst, "resuming", "started")
            elif inst.state in ("stopped", "archived", "archiving"):
                self._begin(inst, "restoring" if inst.state != "stopped" else "starting", "started")
            else:
                return self._error(400, f"Sandbox is in an invalid state: {inst.state}")
            inst.started_at = datetime.now(UTC)
            return Response(200, self.render_detail(inst))

    def _pause(self, request: Request, id_or_name: str) -> Response:
        with self.lock:
            inst = self._idle(id_or_name)
            if isinstance(inst, Response):
                return inst
            if inst.extra.get("sandbox_class", self.sandbox_class) not in PAUSE_CAPABLE_CLASSES:
                return self._error(422, "Pausing is not supported for this sandbox")
            if inst.state != "started":
                return self._error(400, "Sandbox must be in started state to be paused")
            self._begin(inst, "pausing", "paused")
            return Response(200, self.render_detail(inst))

    def _delete(self, request: Request, id_or_name: str) -> Response:
        with self.lock:
            inst = self._idle(id_or_name)
            if isinstance(inst, Response):
                return inst
            self._begin(inst, "destroying", "__gone__")
            return Response(200, self.render_detail(inst))


# GET /api/sandbox `sort` values -> the rendered field they order by
_SORT_FIELDS = {
    "name": "name",
    "cpu": "cpu",
    "memoryGib": "memory",
    "diskGib": "disk",
    "lastActivityAt": "lastActivityAt",
    "createdAt": "createdAt",
}
# numeric range params -> rendered field (GiB for memory/disk, as the DTO reports them)
_RANGES = {"Cpu": "cpu", "MemoryGiB": "memory", "DiskGiB": "disk", "Gpu": "gpu"}
# date range params -> rendered field. "lastEvent*" is taken as lastActivityAt (a guess: the
# public server source has no lastEvent column; the SDK maps its last_activity_* onto it).
_DATES = {"createdAt": "createdAt", "lastEvent": "lastActivityAt", "autoDestroyAt": "autoDestroyAt"}


@dataclass(frozen=True)
class _ListFilter:
    """Every GET /api/sandbox filter the double honours, over rendered list items.

    `id` / `name` are case-insensitive prefixes; `labels` is containment; ranges are inclusive
    (a guess: the API docs say only "minimum"/"maximum"); date bounds are exclusive "after" /
    "before" (also a guess). Default order: lastActivityAt desc, as documented."""

    states: frozenset[str]
    labels: tuple[tuple[str, Any], ...]
    id_prefix: str | None
    name_prefix: str | None
    ranges: tuple[tuple[str, float | None, float | None], ...]
    dates: tuple[tuple[str, str | None, str | None], ...]
    snapshots: frozenset[str]
    regions: frozenset[str]
    classes: frozenset[str]
    is_public: bool | None
    is_recoverable: bool | None
    sort: str
    descending: bool

    @classmethod
    def from_request(cls, request: Request, wanted: dict[str, Any], states: set[str]) -> _ListFilter:
        sort = request.q("sort") or "lastActivityAt"
        if sort not in _SORT_FIELDS:
            raise ValueError(f"sort must be one of the following values: {', '.join(_SORT_FIELDS)}")
        order = request.q("order") or "desc"
        if order not in ("asc", "desc"):
            raise ValueError("order must be one of the following values: asc, desc")
        ranges = []
        for suffix, fieldname in _RANGES.items():
            low, high = (_number(request.q(f"{end}{suffix}"), f"{end}{suffix}") for end in ("min", "max"))
            if low is not None or high is not None:
                ranges.append((fieldname, low, high))
        dates = []
        for prefix, fieldname in _DATES.items():
            after, before = (
                _date(request.q(f"{prefix}{end}"), f"{prefix}{end}") for end in ("After", "Before")
            )
            if after is not None or before is not None:
                dates.append((fieldname, after, before))
        if not all(isinstance(v, str) for v in wanted.values()):
            # Labels are string -> string; a non-string value is refused (a guess at the status).
            raise ValueError("labels must be a JSON object of strings")
        return cls(
            states=frozenset(states),
            labels=tuple(sorted((str(k), v) for k, v in wanted.items())),
            id_prefix=(request.q("id") or "").lower() or None,
            name_prefix=(request.q("name") or "").lower() or None,
            ranges=tuple(ranges),
            dates=tuple(dates),
            snapshots=frozenset(request.query.get("snapshots", [])),
            regions=frozenset(request.query.get("regionIds", [])),
            classes=frozenset(request.query.get("sandboxClasses", [])),
            is_public=_flag(request.q("isPublic"), "isPublic"),
            is_recoverable=_flag(request.q("isRecoverable"), "isRecoverable"),
            sort=_SORT_FIELDS[sort],
            descending=order == "desc",
        )

    def sort_key(self, item: dict[str, Any]) -> tuple[Any, str]:
        value = item.get(self.sort)  # only the optional timestamps can be None
        return (value if value is not None else ""), item["id"]

    def __call__(self, item: dict[str, Any]) -> bool:
        if self.states and item["state"] not in self.states:
            return False
        if self.labels and any(item["labels"].get(k) != v for k, v in self.labels):
            return False
        if self.id_prefix and not item["id"].lower().startswith(self.id_prefix):
            return False
        if self.name_prefix and not item["name"].lower().startswith(self.name_prefix):
            return False
        for fieldname, low, high in self.ranges:
            value = item.get(fieldname)
            if value is None or (low is not None and value < low) or (high is not None and value > high):
                return False
        for fieldname, after, before in self.dates:
            value = item.get(fieldname)
            if (
                value is None
                or (after is not None and value <= after)
                or (before is not None and value >= before)
            ):
                return False
        if self.snapshots and item.get("snapshot") not in self.snapshots:
            return False
        if self.regions and item.get("target") not in self.regions:
            return False
        if self.classes and item.get("sandboxClass") not in self.classes:
            return False
        if self.is_public is not None and item.get("public") is not self.is_public:
            return False
        return self.is_recoverable is None or bool(item.get("recoverable")) is self.is_recoverable


def _number(raw: str | None, name: str) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number conforming to the specified constraints") from None


def _date(raw: str | None, name: str) -> str | None:
    """An ISO 8601 bound, normalised to iso() form so it compares with the rendered strings."""
    if raw is None or raw == "":
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be a valid ISO 8601 date string") from None
    return iso(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def _flag(raw: str | None, name: str) -> bool | None:
    if raw is None or raw == "":
        return None
    if raw.lower() not in ("true", "false"):
        raise ValueError(f"{name} must be a boolean value")
    return raw.lower() == "true"
