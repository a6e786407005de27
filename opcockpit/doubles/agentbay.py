"""Loopback double of Alibaba AgentBay's session API (provider-apis.md §4, contract §7.4).

Alibaba "POP" RPC style: a single `POST /` route; the action comes in the query (`Action=`) or the
`x-acs-action` header, the API key in the *form body* (`Authorization=Bearer <key>`). Errors come
either as HTTP 4xx/5xx with `Code`/`Message`/`Success:false`, or (fault `success_false`) as HTTP 200
with `Success:false` — the trap the real SDK had to learn to check.

Pause/resume/delete are asynchronous like the real service: the call returns `Success:true` at
once, the session passes through PAUSING/RESUMING/DELETING and settles `transition_s` later
(`FakeInstance.pending`, settled lazily on every request by `FakeProvider.dispatch`).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import operator
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opcockpit.doubles.base import FakeInstance, FakeProvider, Faults, Request, Response, Router

API_VERSION = "2025-05-06"
MAX_PAGE = 100  # the real maximum is undocumented; the SDK defaults to 10

# Normalised words the base class passes to `add`/`set_state` -> native SessionStatus.
# AgentBay has no "stopped": a stopped session is a released one (DELETED), which ListSession
# never returns (it lists unreleased sessions only).
_NATIVE = {"running": "RUNNING", "paused": "PAUSED", "stopped": "DELETED"}
NATIVE_STATES = frozenset({"RUNNING", "PAUSING", "PAUSED", "RESUMING", "DELETING", "DELETED", "FINISH"})
_RELEASED = frozenset({"DELETED", "FINISH"})
_GONE = "__gone__"
_STATE = operator.attrgetter("state")


@dataclass
class AgentBayFaults(Faults):
    """Base faults plus AgentBay's own: HTTP 200 carrying `Success:false`."""

    success_false: bool = False  # every action answers 200 {"Success": false, "Code": ...}
    success_false_times: int | None = None  # ... only for the next N requests
    success_false_code: str = "InternalError"
    # Broken listings (issue 16): NextTokens that never end or loop; sessions silently dropped
    # while TotalCount still counts them.
    endless_cursors: bool = False  # every ListSession: the first page again + a fresh NextToken
    cursor_loop: bool = False  # every ListSession: the first page again + the same NextToken
    drop_every: int | None = None  # ListSession omits every Nth session of its order

    def clear(self) -> None:
        for name, value in AgentBayFaults().__dict__.items():
            setattr(self, name, value)


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def error_body(code: str, message: str, status: int) -> dict[str, Any]:
    return {
        "RequestId": _request_id(),
        "Code": code,
        "Message": message,
        "HttpStatusCode": status,
        "Success": False,
    }


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, error_body(code, message, status), headers or {})


def _ok(data: Any = None, **extra: Any) -> Response:
    body: dict[str, Any] = {
        "RequestId": _request_id(),
        "Success": True,
        "Code": "",
        "Message": "",
        "HttpStatusCode": 200,
    }
    if data is not None:
        body["Data"] = data
    body.update(extra)
    return Response(200, body)


class AgentBayDouble(FakeProvider):
    kind = "agentbay"

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        transition_s: float = 0.2,
        pause_not_supported: bool = False,
        image_id: str = "linux_latest",
    ) -> None:
        super().__init__(api_key=api_key)
        self.faults: AgentBayFaults = AgentBayFaults()
        self.transition_s = transition_s
        # Account tier without the (whitelist-only) pause feature: Pause/Resume answer
        # BenefitLevel.NotSupport, as LEON's capability override comment describes.
        self.pause_not_supported = pause_not_supported
        self.image_id = image_id
        self.finished: set[str] = set()  # deleted sessions: GetSessionDetail says FINISH
        self.requests_by_action: dict[str, int] = {}
        self._order: list[str] | None = None  # sorted ids, the pagination order (cached)
        self.recent: deque[Request] = deque(maxlen=64)  # last requests routed (wire-format tests)

    # -- base hooks --------------------------------------------------------------------------

    def _routes(self, router: Router) -> None:
        router.add("POST", "/", self._rpc)

    def native_state(self, normal: str) -> str:
        if normal in NATIVE_STATES:  # tests may seed transitional states directly
            return normal
        return _NATIVE[normal]

    def new_id(self) -> str:
        return f"session-{uuid.uuid4().hex[:17]}"

    def authorized(self, request: Request) -> bool:
        if self.api_key is None:
            return True
        return _form(request).get("Authorization") == f"Bearer {self.api_key}"

    def unauthorized(self) -> Response:
        return _error(401, "InvalidApiKey", "The specified API key is invalid or has been revoked.")

    def rate_limited(self, retry_after: float) -> Response:
        # tea-openapi reads `x-acs-retry-after`; Retry-After is sent too for generic clients.
        headers = {"x-acs-retry-after": f"{retry_after:g}", "Retry-After": f"{retry_after:g}"}
        return _error(429, "Throttling.User", "Request was denied due to user flow control.", headers)

    def server_error(self, status: int) -> Response:
        return _error(status, "ServiceUnavailable", "The request has failed due to a temporary failure.", {})

    # -- fleet bookkeeping -------------------------------------------------------------------

    def add(self, instance_id: str | None = None, **kwargs: Any) -> FakeInstance:
        inst = super().add(instance_id, **kwargs)
        inst.extra.setdefault("app_instance_id", f"ai-{uuid.uuid4().hex[:12]}")
        inst.extra.setdefault("image_id", self.image_id)
        with self.lock:
            self._order = None
            self.finished.discard(inst.instance_id)
        return inst

    def remove(self, instance_id: str) -> None:
        with self.lock:
            if instance_id in self.instances:
                self.finished.add(instance_id)
            self._order = None
        super().remove(instance_id)

    def _complete(self, inst: FakeInstance, target: str) -> None:
        if target == _GONE:
            self.finished.add(inst.instance_id)
            self._order = None
            self.emit(inst, "destroy")
        else:
            self.emit(inst, target.lower())
        super()._complete(inst, target)

    def _sorted_ids(self) -> list[str]:
        with self.lock:
            if self._order is None or len(self._order) != len(self.instances):
                self._order = sorted(self.instances)
            return self._order

    # -- dispatch ----------------------------------------------------------------------------

    def _rpc(self, request: Request) -> Response:
        action = request.q("Action") or request.header("x-acs-action")
        with self.lock:
            self.requests_by_action[action or ""] = self.requests_by_action.get(action or "", 0) + 1
            self.recent.append(request)
        version = request.q("Version") or request.header("x-acs-version")
        if version != API_VERSION:
            return _error(400, "InvalidVersion", f"Specified parameter Version is not valid: {version}")
        method = _ACTIONS.get(action or "")
        if method is None:
            msg = "Specified api is not found, please check your url and method."
            return _error(404, "InvalidAction.NotFound", msg)
        injected = self._success_false()
        if injected is not None:
            return injected
        handler: Callable[[Request, dict[str, str]], Response] = getattr(self, method)
        return handler(request, _form(request))

    def _success_false(self) -> Response | None:
        f = self.faults
        if not f.success_false:
            return None
        if f.success_false_times is not None:
            f.success_false_times -= 1
            if f.success_false_times <= 0:
                f.success_false, f.success_false_times = False, None
        return Response(200, error_body(f.success_false_code, "An internal error occurred.", 200))

    def _find(self, form: dict[str, str]) -> FakeInstance | None:
        return self.instances.get(form.get("SessionId", ""))

    @staticmethod
    def _not_found() -> Response:
        return _error(400, "InvalidMcpSession.NotFound", "session not found")

    # -- actions -----------------------------------------------------------------------------

    def _list_session(self, request: Request, form: dict[str, str]) -> Response:
        f = self.faults
        if f.list_delay_s:
            time.sleep(f.list_delay_s)
        try:
            want_labels = json.loads(form["Labels"]) if form.get("Labels") else {}
            max_results = min(int(form.get("MaxResults") or 10), MAX_PAGE)
        except (ValueError, TypeError):
            return _error(400, "InvalidParameter", "Labels must be a JSON object; MaxResults an integer")
        if not isinstance(want_labels, dict) or max_results < 1:
            return _error(400, "InvalidParameter", "Labels must be a JSON object; MaxResults >= 1")
        status = form.get("Status") or None
        image = form.get("ImageId") or None
        if f.endless_cursors or f.cursor_loop:
            with self.lock:
                matching = [self._item(i) for i in self._matching(status, want_labels, image)]
            token = f"endless-{uuid.uuid4().hex}" if f.endless_cursors else "loop"
            page_items = matching[:max_results]
            return _ok(page_items, NextToken=token, MaxResults=max_results, TotalCount=len(matching))
        token = form.get("NextToken") or ""
        page = _decode_token(token)
        if page is None:
            return _error(400, "InvalidParameter.NextToken", "The NextToken is invalid.")
        page_no, after = page
        fault = self.page_fault(page_no)
        if fault is not None:
            return fault
        ids = self._sorted_ids()
        items: list[dict[str, Any]] = []
        more = False
        last = ""
        drop = f.drop_every if f.drop_every and f.drop_every > 0 else None
        with self.lock:
            start = bisect.bisect_right(ids, after) if after else 0
            for pos, iid in enumerate(ids[start:], start):
                inst = self.instances.get(iid)
                if inst is None or not self._listable(inst, status, want_labels, image):
                    continue
                if len(items) == max_results:
                    more = True
                    break
                last = iid
                if drop is not None and pos % drop == drop - 1:
                    continue  # silently dropped (fault), yet still in TotalCount
                items.append(self._item(inst))
            total = self._total(status, want_labels, image)
        next_token = _encode_token(page_no + 1, last) if more and last else ""
        if f.malformed_json:
            return Response(200, b'{"RequestId":"x","Success":true,"Data":[{"SessionId":"trunc')
        return _ok(items, NextToken=next_token, MaxResults=max_results, TotalCount=total)

    @staticmethod
    def _listable(
        inst: FakeInstance, status: str | None, want_labels: dict[str, Any], image: str | None = None
    ) -> bool:
        """ListSession lists unreleased sessions matching Status, ImageId and every wanted label."""
        if inst.state in _RELEASED or (status and inst.state != status):
            return False
        if image and inst.extra.get("image_id") != image:
            return False
        return all(inst.labels.get(k) == str(v) for k, v in want_labels.items())

    def _total(self, status: str | None, want_labels: dict[str, Any], image: str | None = None) -> int:
        """TotalCount: every session the filters match (not the whole fleet), as of this request.
        Call with the lock held. Unfiltered (the usual case) it counts in C: a 10k listing asks
        for it on each of its 100 pages."""
        values = self.instances.values()
        if not status and not want_labels and not image:
            states = list(map(_STATE, values))
            return len(states) - sum(operator.countOf(states, released) for released in _RELEASED)
        return sum(1 for inst in values if self._listable(inst, status, want_labels, image))

    def _matching(
        self, status: str | None, want_labels: dict[str, Any], image: str | None = None
    ) -> list[FakeInstance]:
        """Sessions ListSession would list, in its order. Call with the lock held."""
        return [
            inst
            for iid in self._sorted_ids()
            if (inst := self.instances.get(iid)) is not None
            and self._listable(inst, status, want_labels, image)
        ]

    def _item(self, inst: FakeInstance) -> dict[str, Any]:
        return {
            "SessionId": inst.instance_id,
            "SessionStatus": inst.state,
            "AppInstanceId": inst.extra.get("app_instance_id", ""),
            "ImageId": inst.extra.get("image_id", self.image_id),
        }

    def _get_label(self, request: Request, form: dict[str, str]) -> Response:
        inst = self._find(form)
        if inst is None:
            return self._not_found()
        return _ok({"Labels": json.dumps(inst.labels)}, NextToken="", MaxResults=len(inst.labels))

    def _set_label(self, request: Request, form: dict[str, str]) -> Response:
        """SetLabel: replaces the session's labels with the JSON map in `Labels`."""
        try:
            labels = json.loads(form.get("Labels") or "")
        except ValueError:
            labels = None
        if not isinstance(labels, dict) or not labels or not all(isinstance(v, str) for v in labels.values()):
            return _error(400, "InvalidParameter.Labels", "Labels must be a non-empty JSON object of strings")
        with self.lock:
            inst = self._find(form)
            if inst is None or inst.state in _RELEASED:
                return self._not_found()
            inst.labels = dict(labels)
        return _ok()

    def _get_session(self, request: Request, form: dict[str, str]) -> Response:
        inst = self._find(form)
        if inst is None or inst.state in _RELEASED:
            return self._not_found()
        app = inst.extra.get("app_instance_id", "")
        return _ok(
            {
                "SessionId": inst.instance_id,
                "Status": inst.state,
                "AppInstanceId": app,
                "ResourceId": f"p-{app}",
                "ResourceUrl": "",
                "HttpPort": "",
                "NetworkInterfaceIp": "",
                "Token": inst.extra.get("token", ""),  # a session credential (raw-record redaction tests)
                "LinkUrl": inst.extra.get("link_url", ""),
                "WsUrl": "",
                "ToolList": "[]",
                "VpcResource": False,
            }
        )

    def _get_session_detail(self, request: Request, form: dict[str, str]) -> Response:
        sid = form.get("SessionId", "")
        inst = self.instances.get(sid)
        if inst is None:
            if sid in self.finished:
                data = {"Id": sid, "Status": "FINISH", "IsDeleted": True, "EndReason": "Released"}
                return _ok(data)
            return self._not_found()
        return _ok(
            {
                "Id": sid,
                "Status": inst.state,
                "IsDeleted": False,
                "ImageId": inst.extra.get("image_id", self.image_id),
                "AppInstanceId": inst.extra.get("app_instance_id", ""),
                "RegionId": "cn-hangzhou",
            }
        )

    def _transition(self, form: dict[str, str], *, source: str, via: str, target: str) -> Response:
        """Start an async transition `source -> via -> target`; same-direction repeats are no-ops."""
        with self.lock:
            inst = self._find(form)
            if inst is None or inst.state in _RELEASED:
                return self._not_found()
            if inst.state in (via, target):
                return _ok()
            if inst.state != source:
                return _error(
                    400,
                    "InvalidMcpSession.StatusNotSupport",
                    f"The session status {inst.state} does not support this operation.",
                )
            inst.state = via
            inst.pending = (target, time.monotonic() + self.transition_s)
        self.emit(inst, via.lower())
        return _ok()

    def _pause(self, request: Request, form: dict[str, str]) -> Response:
        if self.pause_not_supported:
            return _benefit_error()
        return self._transition(form, source="RUNNING", via="PAUSING", target="PAUSED")

    def _resume(self, request: Request, form: dict[str, str]) -> Response:
        if self.pause_not_supported:
            return _benefit_error()
        return self._transition(form, source="PAUSED", via="RESUMING", target="RUNNING")

    def _delete(self, request: Request, form: dict[str, str]) -> Response:
        with self.lock:
            inst = self._find(form)
            if inst is None or inst.state in _RELEASED:
                return self._not_found()
            if inst.state == "DELETING":
                return _ok()
            # Any live state may be deleted; an in-flight pause/resume is overridden.
            inst.state = "DELETING"
            inst.pending = (_GONE, time.monotonic() + self.transition_s)
        self.emit(inst, "deleting")
        return _ok()


def _benefit_error() -> Response:
    msg = "The current benefit level does not support this operation."
    return _error(400, "BenefitLevel.NotSupport", msg)


# Query parameters that belong to the RPC envelope, not to the action.
_ENVELOPE = frozenset({"Action", "Version", "Format", "Timestamp", "SignatureNonce", "RegionId"})


def _form(request: Request) -> dict[str, str]:
    """The action's parameters. The POP gateway takes them from the query string as well as the
    form body: the SDK sends e.g. GetSessionDetail's SessionId in the query (tea-openapi
    `query=...`) and only Authorization in the body; the cockpit sends everything in the body.
    Where both carry a name the body wins (a guess; never seen in practice)."""
    params = {k: v[0] for k, v in request.query.items() if v and k not in _ENVELOPE}
    with contextlib.suppress(UnicodeDecodeError):
        params.update(request.form())
    return params


def _encode_token(page_no: int, last_id: str) -> str:
    return f"{page_no}:{last_id}"


def _decode_token(token: str) -> tuple[int, str] | None:
    """Opaque to clients; carries the page number (for `fail_page`) and the last id served."""
    if not token:
        return 1, ""
    page, sep, last = token.partition(":")
    if not sep or not page.isdigit():
        return None
    return int(page), last


# Action -> method name (looked up on the instance so test subclasses can override one action).
_ACTIONS = {
    "ListSession": "_list_session",
    "GetLabel": "_get_label",
    "SetLabel": "_set_label",
    "GetSession": "_get_session",
    "GetSessionDetail": "_get_session_detail",
    "PauseSessionAsync": "_pause",
    "ResumeSessionAsync": "_resume",
    "DeleteSessionAsync": "_delete",
}
