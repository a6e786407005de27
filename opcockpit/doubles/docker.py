"""Loopback Docker Engine API double (provider-apis.md §7.3), over a unix socket or 127.0.0.1.

Two flavors, so the adapter is tested against both engines it meets in the wild:
- ``docker``: moby semantics (409 for pause-on-paused / kill-on-exited / delete-without-force,
  removal event ``destroy``, paused containers listed without ``all``).
- ``podman``: podman 4.3 compat semantics as probed (§5): 500 with ``{"cause","message","response"}``
  bodies, removal event ``remove``, paused hidden without ``all``, legacy ``status/id/from`` event
  fields, key-only label filter on /events matching nothing.

Fleet key (``FakeInstance.instance_id``) is what LEON stores as the instance id: the
``leon.session_id`` label, which is also the container name ``leon-<12hex>``. The 64-hex Docker Id
lives in ``extra["docker_id"]``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from opcockpit.doubles.base import (
    FakeInstance,
    FakeProvider,
    Request,
    Response,
    Router,
    iso,
)

__all__ = ["DockerDouble"]

API_VERSION = "1.41"  # podman 4.3.1's compat API version (probed, §5)
# (max, min) API version each flavor serves. moby: max 1.56, default min 1.40 (§3.1); podman
# 4.3.1 reports 1.41 / 1.24 but was not probed for refusing other versions, so it accepts any
# (a guess).
_VERSIONS = {"docker": ("1.56", "1.40"), "podman": (API_VERSION, "1.24")}
LEGACY_EVENT_FIELDS_BEFORE = (1, 52)  # moby dropped the top-level status/id/from in API v1.52
_V = r"(?:/v\d+\.\d+)?"  # versioned and unversioned paths
_VERSION_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(?=/)")
ZERO_TIME = "0001-01-01T00:00:00Z"
_CID = r"(?P<cid>[^/]+)"
IMAGE = "localhost/bb:latest"
IMAGE_ID = "sha256:" + "b" * 64
_NORMAL_TO_NATIVE = {"running": "running", "paused": "paused", "stopped": "exited"}
_NATIVE = {"created", "running", "paused", "restarting", "removing", "exited", "dead", "stopped"}

Flavor = Literal["docker", "podman"]


class DockerDouble(FakeProvider):
    kind = "docker"

    def __init__(
        self,
        *,
        unix_path: str | None = None,
        flavor: Flavor = "docker",
        api_key: str | None = None,
        api_versions: tuple[str, str] | None = None,
    ) -> None:
        if flavor not in ("docker", "podman"):
            raise ValueError(f"unknown flavor {flavor!r}")
        self.flavor: Flavor = flavor
        # (max, min) served; e.g. ("1.52", "1.44") is Docker Engine 29, which refuses /v1.41.
        self.api_versions = api_versions or _VERSIONS[flavor]
        super().__init__(api_key=api_key, unix_path=unix_path)

    # -- FakeProvider hooks ---------------------------------------------------------------------

    @property
    def host(self) -> str:
        """What DockerAdapter(host=...) wants: unix:///path or tcp://127.0.0.1:port."""
        url = self.url
        return url if url.startswith("unix://") else "tcp://" + url.removeprefix("http://")

    def native_state(self, normal: str) -> str:
        if normal in _NORMAL_TO_NATIVE:
            return _NORMAL_TO_NATIVE[normal]
        if normal in _NATIVE:  # tests may set Docker's own words (created, dead, ...) directly
            return normal
        raise ValueError(f"unknown state {normal!r}")

    def new_id(self) -> str:
        return "leon-" + secrets.token_hex(6)

    def add(
        self,
        instance_id: str | None = None,
        *,
        state: str = "running",
        name: str | None = None,
        labels: dict[str, str] | None = None,
        created_at: datetime | None = None,
        leon: bool = True,
        **extra: Any,
    ) -> FakeInstance:
        """Add a container. LEON labels every container ``leon.session_id=<name>``; pass
        ``leon=False`` for a foreign container without it."""
        iid = instance_id or self.new_id()
        labels = dict(labels or {})
        if leon:
            labels.setdefault("leon.session_id", iid)
        extra.setdefault("docker_id", secrets.token_hex(32))
        extra.setdefault("exit_code", 0 if state != "stopped" else 137)
        if state == "stopped":
            # An exited container has finished at some point; "when it was added" is a guess.
            extra.setdefault("finished_at", created_at or datetime.now(UTC))
        inst = super().add(iid, state=state, name=name or iid, labels=labels, created_at=created_at, **extra)
        if inst.state == "paused":
            inst.started_at = inst.created_at
        if inst.state in ("running", "paused"):
            self.emit(inst, "start")
            if inst.state == "paused":
                self.emit(inst, "pause")
        return inst

    def set_state(self, instance_id: str, state: str) -> None:
        """Change state out of band, emitting the events the engine would."""
        with self.lock:
            inst = self.instances[instance_id]
            old, new = inst.state, self.native_state(state)
            inst.state, inst.pending = new, None
            if new == "running" and old != "running":
                inst.started_at = datetime.now(UTC)
        for action in _transition_actions(old, new):
            if action == "die":
                inst.extra["exit_code"] = 137
                inst.extra["finished_at"] = datetime.now(UTC)
            self.emit(inst, action)

    def remove(self, instance_id: str) -> None:
        with self.lock:
            inst = self.instances.pop(instance_id, None)
        if inst is not None:
            self._emit_removal(inst)

    def event_fields(self, instance: FakeInstance) -> dict[str, Any]:
        # In the record as it is appended: enriched afterwards, an /events stream woken in between
        # rendered it without them (KeyError 'docker_id' in the fleet server's stream).
        return {
            "docker_id": instance.extra.get("docker_id", ""),
            "exit_code": instance.extra.get("exit_code", 0),
        }

    def _emit_removal(self, inst: FakeInstance) -> None:
        if inst.state in ("running", "paused"):
            # a forced removal SIGKILLs it first: the die event carries exitCode 137
            inst.extra["exit_code"] = 137
            inst.extra["finished_at"] = datetime.now(UTC)
            if self.flavor == "docker":
                self.emit(inst, "kill")
            self.emit(inst, "die")
        self.emit(inst, "remove" if self.flavor == "podman" else "destroy")

    def dispatch(self, request: Request) -> Response:
        refused = self._version_refused(request)
        response = refused or super().dispatch(request)
        response.headers.setdefault("Api-Version", self.api_versions[0])
        if self.flavor == "podman":
            response.headers.setdefault("Libpod-Api-Version", "4.3.1")
        return response

    def server_error(self, status: int) -> Response:
        return self._error(status, "injected failure")

    def _version_refused(self, request: Request) -> Response | None:
        """moby answers 400 to a /vX.Y outside [min, max] before routing (podman: see _VERSIONS)."""
        version = _request_version(request.path)
        if version is None or self.flavor == "podman":
            return None
        maximum, minimum = self.api_versions
        high, low = _version_tuple(maximum), _version_tuple(minimum)
        shown = f"{version[0]}.{version[1]}"
        if version > high:
            return self._error(
                400, f"client version {shown} is too new. Maximum supported API version is {maximum}"
            )
        if version < low:
            msg = (
                f"client version {shown} is too old. Minimum supported API version is "
                f"{minimum}, please upgrade your client to a newer version"
            )
            return self._error(400, msg)
        return None

    # -- routes -------------------------------------------------------------------------------

    def _routes(self, router: Router) -> None:
        router.add("GET", f"{_V}/_ping", self._ping)
        router.add("HEAD", f"{_V}/_ping", self._ping)
        router.add("GET", f"{_V}/version", self._version)
        router.add("GET", f"{_V}/containers/json", self._list, listing=True)
        router.add("GET", f"{_V}/containers/{_CID}/json", self._inspect)
        router.add("POST", f"{_V}/containers/{_CID}/pause", self._pause)
        router.add("POST", f"{_V}/containers/{_CID}/unpause", self._unpause)
        router.add("POST", f"{_V}/containers/{_CID}/kill", self._kill)
        router.add("DELETE", f"{_V}/containers/{_CID}", self._delete)
        router.add("GET", f"{_V}/events", self._events)
        router.add("GET", f"{_V}/containers/{_CID}/logs", self._logs)

    def _ping(self, request: Request) -> Response:
        return Response(200, b"OK", {"Content-Type": "text/plain; charset=utf-8"})

    def _version(self, request: Request) -> Response:
        version = "4.3.1" if self.flavor == "podman" else "29.0.0-double"
        high, low = self.api_versions
        return Response(200, {"ApiVersion": high, "MinAPIVersion": low, "Version": version})

    # -- errors in each engine's shape ----------------------------------------------------------

    def _error(self, status: int, message: str, cause: str = "container state improper") -> Response:
        if self.flavor == "podman":
            return Response(status, {"cause": cause, "message": f"{message}: {cause}", "response": status})
        return Response(status, {"message": message})

    def _not_found(self, ref: str) -> Response:
        if self.flavor == "podman":
            return self._error(404, f'no container with name or ID "{ref}" found', "no such container")
        return self._error(404, f"No such container: {ref}")

    def _state_error(self, docker_status: int, docker_msg: str, podman_msg: str) -> Response:
        # podman's compat layer answers every "state improper" refusal with 500 (§5)
        if self.flavor == "podman":
            return self._error(500, podman_msg)
        return self._error(docker_status, docker_msg)

    # -- lookup ---------------------------------------------------------------------------------

    def _find(self, ref: str) -> FakeInstance | None:
        """Docker resolution order: full Id, name, then unique Id prefix."""
        ref = ref.removeprefix("/")
        with self.lock:
            for inst in self.instances.values():
                if inst.extra["docker_id"] == ref:
                    return inst
            for inst in self.instances.values():
                if inst.name == ref:
                    return inst
            if re.fullmatch(r"[0-9a-f]{1,64}", ref):
                hits = [i for i in self.instances.values() if i.extra["docker_id"].startswith(ref)]
                if len(hits) == 1:
                    return hits[0]
        return None

    # -- list / inspect -------------------------------------------------------------------------

    def _list(self, request: Request) -> Response:
        fault = self.page_fault(1)
        if fault is not None:
            return fault
        try:
            filters = _parse_filters(request.q("filters"))
        except ValueError as exc:
            return self._error(400, str(exc), "bad parameter")
        show_all = (request.q("all") or "").lower() in ("1", "true")
        shown = {"running", "paused", "restarting"} if self.flavor == "docker" else {"running"}
        with self.lock:
            instances = sorted(self.instances.values(), key=lambda i: i.created_at, reverse=True)
            items = [
                self._summary(inst)
                for inst in instances
                if (show_all or "status" in filters or inst.state in shown) and _list_match(inst, filters)
            ]
        return Response(200, items)

    def _summary(self, inst: FakeInstance) -> dict[str, Any]:
        item: dict[str, Any] = {
            "Id": inst.extra["docker_id"],
            "Names": [f"/{inst.name}"],
            "Image": IMAGE,
            "ImageID": IMAGE_ID,
            "Command": "sleep infinity",
            "Created": int(inst.created_at.timestamp()),
            "Ports": [],
            "Labels": dict(inst.labels),
            "State": inst.state,
            "Status": _status_text(inst),
            "Mounts": [],
        }
        if self.flavor == "docker":
            item["HostConfig"] = {"NetworkMode": "default"}
        return item

    def _inspect(self, request: Request, cid: str) -> Response:
        inst = self._find(cid)
        if inst is None:
            return self._not_found(cid)
        with self.lock:
            running = inst.state in ("running", "paused", "restarting")
            body = {
                "Id": inst.extra["docker_id"],
                "Name": f"/{inst.name}",
                "Created": iso(inst.created_at),
                "Image": IMAGE_ID,
                "State": {
                    "Status": inst.state,
                    "Running": running,
                    "Paused": inst.state == "paused",
                    "Restarting": inst.state == "restarting",
                    "OOMKilled": False,
                    "Dead": inst.state == "dead",
                    "Pid": 4242 if running else 0,
                    "ExitCode": 0 if running else inst.extra.get("exit_code", 0),
                    "Error": "",
                    "StartedAt": iso(inst.started_at) or ZERO_TIME,
                    # zero until the container first stops; kept while it runs again (as moby)
                    "FinishedAt": iso(inst.extra.get("finished_at")) or ZERO_TIME,
                },
                "Config": {
                    "Labels": dict(inst.labels),
                    "Image": IMAGE,
                    "Cmd": ["sleep", "infinity"],
                    "Env": list(inst.extra.get("env", ())),
                    "Tty": bool(inst.extra.get("tty")),
                },
                "HostConfig": {"NanoCpus": int(inst.cpu * 1e9), "Memory": inst.memory_mb * 1024 * 1024},
            }
        return Response(200, body)

    # -- actions --------------------------------------------------------------------------------

    def _pause(self, request: Request, cid: str) -> Response:
        inst = self._find(cid)
        if inst is None:
            return self._not_found(cid)
        with self.lock:
            state = inst.state
            if state == "paused":
                return self._state_error(
                    409,
                    f"Container {inst.extra['docker_id']} is already paused",
                    f'"{inst.extra["docker_id"]}" is already paused',
                )
            if state != "running":
                return self._state_error(
                    409,
                    f"Container {inst.extra['docker_id']} is not running",
                    f'"{state}" is not running, can\'t pause',
                )
            inst.state = "paused"
        self.emit(inst, "pause")
        return Response(204)

    def _unpause(self, request: Request, cid: str) -> Response:
        inst = self._find(cid)
        if inst is None:
            return self._not_found(cid)
        with self.lock:
            if inst.state != "paused":
                # moby answers a plain 500 here too (no 409), §3.4
                return self._state_error(
                    500,
                    f"Container {inst.extra['docker_id']} is not paused",
                    f'"{inst.extra["docker_id"]}" is not paused, can\'t unpause',
                )
            inst.state = "running"
        self.emit(inst, "unpause")
        return Response(204)

    def _kill(self, request: Request, cid: str) -> Response:
        inst = self._find(cid)
        if inst is None:
            return self._not_found(cid)
        with self.lock:
            if inst.state not in ("running", "paused"):
                return self._state_error(
                    409,
                    f"Cannot kill container: {cid}: Container {inst.extra['docker_id']} is not running",
                    f"can only kill running containers. {inst.extra['docker_id']} is in state {inst.state}",
                )
            inst.state = "exited"
            inst.extra["exit_code"] = 137
            inst.extra["finished_at"] = datetime.now(UTC)
        self.emit(inst, "kill")
        self.emit(inst, "die")
        return Response(204)

    def _delete(self, request: Request, cid: str) -> Response:
        inst = self._find(cid)
        if inst is None:
            return self._not_found(cid)
        force = (request.q("force") or "").lower() in ("1", "true")
        with self.lock:
            if inst.state in ("running", "paused", "restarting") and not force:
                return self._state_error(
                    409,
                    f"You cannot remove a {inst.state} container {inst.extra['docker_id']}. "
                    "Stop the container before attempting removal or force remove",
                    f"{inst.extra['docker_id']}: running or paused containers cannot be removed "
                    "without force",
                )
            self.instances.pop(inst.instance_id, None)
        self._emit_removal(inst)
        return Response(204)

    # -- events ---------------------------------------------------------------------------------

    # -- logs -----------------------------------------------------------------------------------

    def write_log(self, instance_id: str, text: str, stream: str = "stdout") -> None:
        """The container writes `text` (bytes as given, newlines included) to stdout or stderr;
        `add(..., tty=True)` makes it a TTY container (no multiplexing)."""
        with self.lock:
            self.instances[instance_id].extra.setdefault("logs", []).append((stream, text.encode()))

    def _logs(self, request: Request, cid: str) -> Response:
        inst = self._find(cid)
        if inst is None:
            return self._not_found(cid)
        tty = bool(inst.extra.get("tty"))
        want = {s for s in ("stdout", "stderr") if request.q(s) in ("1", "true")}
        follow = request.q("follow") in ("1", "true")
        tail = request.q("tail", "all")
        with self.lock:
            records = list(inst.extra.get("logs", ()))
        seen = len(records)  # follow from here: a line written while these are sent is not lost
        if tail not in (None, "all"):
            records = _tail_lines(records, int(tail))
        kind = "raw-stream" if tty else "multiplexed-stream"
        # The base server closes the connection after any streamed body: say so, or the client
        # would reuse a dead connection for its next request.
        headers = {"Content-Type": f"application/vnd.docker.{kind}", "Connection": "close"}
        stream = self._log_stream(inst, records, seen, want, tty, follow)
        return Response(200, headers=headers, stream=stream)

    def _log_stream(
        self,
        inst: FakeInstance,
        first: list[tuple[str, bytes]],
        seen: int,
        want: set[str],
        tty: bool,
        follow: bool,
    ) -> Iterator[bytes]:
        def frame(stream: str, data: bytes) -> bytes:
            if tty:
                return data
            return bytes([1 if stream == "stdout" else 2, 0, 0, 0]) + len(data).to_bytes(4, "big") + data

        for stream, data in first:
            if stream in want and data:
                yield frame(stream, data)
        while follow and not self.stopping and inst.instance_id in self.instances:
            with self.lock:
                new = list(inst.extra.get("logs", ()))[seen:]
            seen += len(new)
            for stream, data in new:
                if stream in want and data:
                    yield frame(stream, data)
            time.sleep(0.02)

    def _events(self, request: Request) -> Response:
        try:
            filters = _parse_filters(request.q("filters"))
            since = _parse_time(request.q("since"))
            until = _parse_time(request.q("until"))
        except ValueError as exc:
            return self._error(400, str(exc), "bad parameter")
        if self.flavor == "podman" and until is not None and until <= time.time_ns():
            # podman 4.3: an `until` already in the past gives an empty response (§5)
            return Response(200, stream=iter(()))
        with self.lock:
            start = 0 if since is not None else len(self.events_log)
        headers = {"Content-Type": "application/json" if self.flavor == "podman" else "application/x-ndjson"}
        # podman always adds the legacy fields; moby only for clients below API 1.52 (an
        # unversioned path is served as the daemon's own, current version).
        version = _request_version(request.path)
        legacy = self.flavor == "podman" or (version is not None and version < LEGACY_EVENT_FIELDS_BEFORE)
        stream = self._event_stream(start, since, until, filters, legacy=legacy)
        return Response(200, headers=headers, stream=stream)

    def _event_stream(
        self,
        index: int,
        since: float | None,
        until: float | None,
        filters: dict[str, list[str]],
        *,
        legacy: bool = False,
    ) -> Iterator[bytes]:
        # An empty first chunk would end the chunked body; a heartbeat-free stream is what both
        # engines do, so the client sees nothing until the first event.
        while not self.stopping:
            with self.lock:
                batch = self.events_log[index:]
            index += len(batch)
            for rec in batch:
                ns = int(rec["time"] * 1e9)  # the timeNano the client sees
                if since is not None and ns < since:
                    continue
                if until is not None and ns > until:
                    return
                if _event_match(rec, filters, self.flavor):
                    yield (json.dumps(self._render_event(rec, legacy=legacy)) + "\n").encode()
            if until is not None and time.time_ns() >= until:
                return
            wait = 0.5 if until is None else max(0.0, min(0.5, (until - time.time_ns()) / 1e9))
            self.wait_events(index, wait)

    def _render_event(self, rec: dict[str, Any], *, legacy: bool = False) -> dict[str, Any]:
        attrs = {**rec["labels"], "name": rec["name"], "image": IMAGE}
        if rec["action"] == "die":
            attrs["exitCode"] = str(rec["exit_code"])
        if self.flavor == "podman":
            attrs["containerExitCode"] = str(rec["exit_code"])
            attrs["podId"] = ""
        t = rec["time"]
        ev: dict[str, Any] = {}
        if legacy:
            ev.update({"status": rec["action"], "id": rec["docker_id"], "from": IMAGE})
        ev.update(
            {
                "Type": "container",
                "Action": rec["action"],
                "Actor": {"ID": rec["docker_id"], "Attributes": attrs},
                "scope": "local",
                "time": int(t),
                "timeNano": int(t * 1e9),
            }
        )
        return ev


# --------------------------------------------------------------------------- helpers


def _tail_lines(records: list[tuple[str, bytes]], n: int) -> list[tuple[str, bytes]]:
    """The records holding the last `n` lines (as the engine's tail: counted over both streams)."""
    lines = [(stream, line) for stream, data in records for line in data.splitlines(keepends=True)]
    return lines[-n:] if n > 0 else []


def _version_tuple(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def _request_version(path: str) -> tuple[int, int] | None:
    m = _VERSION_PREFIX.match(path)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _transition_actions(old: str, new: str) -> list[str]:
    """Events the engine emits for an out-of-band state change."""
    if old == new:
        return []
    if new == "paused":
        return ["pause"] if old == "running" else ["start", "pause"]
    if new == "running":
        return ["unpause"] if old == "paused" else ["start"]
    if new in ("exited", "dead", "stopped"):
        return ["kill", "die"] if old in ("running", "paused") else []
    return []


def _status_text(inst: FakeInstance) -> str:
    if inst.state == "running":
        return "Up 5 minutes"
    if inst.state == "paused":
        return "Up 5 minutes (Paused)"
    if inst.state in ("exited", "stopped"):
        return f"Exited ({inst.extra.get('exit_code', 0)}) 2 minutes ago"
    return inst.state.capitalize()


def _parse_filters(raw: str | None) -> dict[str, list[str]]:
    """Docker's `filters` JSON: map[string][]string (the legacy map[string]map[string]bool too)."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid filter: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("invalid filter: not an object")
    out: dict[str, list[str]] = {}
    for key, values in data.items():
        if isinstance(values, dict):
            values = [k for k, v in values.items() if v]
        if not isinstance(values, list):
            raise ValueError(f"invalid filter {key!r}")
        out[key] = [str(v) for v in values]
    return out


def _parse_time(raw: str | None) -> int | None:
    """`since`/`until` as unix nanoseconds: `<sec>`, `<sec>.<frac>` (exact) or RFC3339."""
    if raw is None or raw == "":
        return None
    m = re.fullmatch(r"(\d+)(?:\.(\d{1,9}))?", raw)
    if m:
        return int(m.group(1)) * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))
    try:
        return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        raise ValueError(f"invalid time {raw!r}") from None


def _labels_match(labels: dict[str, str], wanted: list[str], *, key_only_ok: bool = True) -> bool:
    """All of `wanted` must match (moby MatchKVList); `k` alone = label present."""
    for item in wanted:
        key, sep, value = item.partition("=")
        if not sep:
            if not key_only_ok or key not in labels:
                return False
        elif labels.get(key) != value:
            return False
    return True


def _list_match(inst: FakeInstance, filters: dict[str, list[str]]) -> bool:
    if "label" in filters and not _labels_match(inst.labels, filters["label"]):
        return False
    if "status" in filters and inst.state not in filters["status"]:
        return False
    if "name" in filters and not any(re.search(p, f"/{inst.name}") for p in filters["name"]):
        return False
    return not ("id" in filters and not any(inst.extra["docker_id"].startswith(p) for p in filters["id"]))


def _event_match(rec: dict[str, Any], filters: dict[str, list[str]], flavor: str) -> bool:
    if "type" in filters and "container" not in filters["type"]:
        return False
    if "event" in filters and rec["action"] not in filters["event"]:
        return False
    if "container" in filters and not any(
        v in (rec["name"], rec["docker_id"]) or rec["docker_id"].startswith(v) for v in filters["container"]
    ):
        return False
    if "label" in filters:
        attrs = {**rec["labels"], "name": rec["name"], "image": IMAGE}
        # podman 4.3: a key-only label filter on /events matches nothing (§5)
        if not _labels_match(attrs, filters["label"], key_only_ok=flavor == "docker"):
            return False
    return True
