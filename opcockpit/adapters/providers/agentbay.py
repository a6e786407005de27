"""Alibaba AgentBay (Wuying) adapter over plain httpx (provider-apis.md §4).

Wire format (tea-openapi `do_rpcrequest`, anonymous auth): every call is
`POST /?Action=<A>&Format=json&Version=2025-05-06&Timestamp=..&SignatureNonce=..` with headers
`x-acs-action`/`x-acs-version` and a *form body* carrying `Authorization=Bearer <key>` plus the
action's PascalCase parameters. Because the key sits in the body, it is passed to ApiClient as a
secret (scrubbed from every message) and never kept anywhere a repr could show it.

Costs the operator should know about: ListSession items carry no labels, so a cold listing is
`ceil(N / page_size)` ListSession calls **plus one GetLabel per session** (bounded concurrency).
Labels are cached per SessionId for `label_ttl_s` (jittered over [TTL/2, TTL], so 50k entries
fetched in one cold listing do not expire in one burst): a warm refresh costs the pages plus one
GetLabel per *new* session, and about N / (0.75 * TTL) re-fetches a second. Each label is cached
the moment it arrives, so a cold listing that times out, is cancelled or fails on one session
keeps what it fetched: the next attempt fetches only the rest instead of starting over (at 50k
sessions a cold listing may need several listing intervals; before this, it never finished).
State always comes fresh from ListSession; only labels (and so orphan claims) may be up to
`label_ttl_s` old, which is fine because LEON sets a session's labels once, at create (hence the
one-hour default). `label_ttl_s=0` disables the cache; `fetch_labels=False` drops GetLabel
entirely at the price of orphan claims (claimed_lease_id).

Errors arrive two ways: HTTP 4xx/5xx with `Code`/`Message`, or HTTP 200 with `Success:false`.
Both are mapped by `Code` (see `_error_class`). Pause/resume/delete are asynchronous: the adapter
calls the *Async action and polls GetSession until the target state or a deadline, after which it
answers ActionOutcome.ACCEPTED ("still PAUSING") and lets the next refresh see the convergence.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from operator import is_, itemgetter
from sys import intern
from typing import Any

from opcockpit.adapters.providers.http import (
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MAX_PAGES,
    ApiClient,
    Page,
    parse_retry_after,
)
from opcockpit.adapters.providers.lean_httpx import httpx
from opcockpit.adapters.providers.wire import ReusedInstances, leon_api_fields
from opcockpit.ports.provider import (
    ActionOutcome,
    ActionResult,
    AuthFailed,
    Capabilities,
    Conflict,
    Instance,
    NormalState,
    NotFound,
    ProtocolError,
    ProviderError,
    ProviderEvent,
    ProviderKind,
    RateLimited,
    Unavailable,
)

__all__ = ["API_VERSION", "AgentBayAdapter", "NotSupported", "claimed_lease", "normal_state"]

API_VERSION = "2025-05-06"
# Labels are written once, at create (LEON): the TTL is only a safety net against edits by hand.
DEFAULT_LABEL_TTL_S = 3600.0
# Error statuses whose body we interpret ourselves (by Code) instead of by HTTP status alone;
# 429/5xx stay with ApiClient, which retries them.
_INTERPRET = (200, 400, 401, 403, 404, 409)
_FIRST = itemgetter(0)  # a listed session's id
# RPCs that only read: they go on the ApiClient's kept-alive connection without httpx (a listing
# is ~1 ListSession per 100 sessions every 15 s) and may be sent twice.
_READS = frozenset({"ListSession", "GetLabel", "GetSession", "GetSessionDetail"})

_STATES = {
    "RUNNING": NormalState.RUNNING,
    "PAUSED": NormalState.PAUSED,
    "PAUSING": NormalState.TRANSITIONING,
    "RESUMING": NormalState.TRANSITIONING,
    "DELETING": NormalState.TRANSITIONING,
    "DELETED": NormalState.GONE,
    "FINISH": NormalState.GONE,
}


class NotSupported(Conflict):
    """The account tier refuses the action (`BenefitLevel.NotSupport`: pause is whitelist-only)."""


def normal_state(raw: str | None) -> NormalState:
    return _STATES.get((raw or "").upper(), NormalState.UNKNOWN)


def claimed_lease(labels: Mapping[str, str]) -> str | None:
    """The lease a session says it belongs to: `lease_id`, `leon.lease_id`, or `leon.context_id`
    (LEON names contexts `leon-<lease_id>`)."""
    for key in ("lease_id", "leon.lease_id"):
        if labels.get(key):
            return labels[key]
    context = labels.get("leon.context_id") or ""
    if context.startswith("leon-") and len(context) > len("leon-"):
        # interned: the slice is a new str per session; sandbox.db's lease ids are interned
        return intern(context[len("leon-") :])
    return None


def _error_class(code: str, status: int) -> type[ProviderError]:
    """Map an AgentBay error `Code` (and the HTTP status it came with) to our typed errors."""
    c = code.lower()
    auth_codes = ("invalidapikey", "invalidaccesskey", "forbidden", "unauthorized")
    if status in (401, 403) or c.startswith(auth_codes):
        return AuthFailed
    if c.startswith("throttling") or "flowcontrol" in c or status == 429:
        return RateLimited
    if c.startswith("benefitlevel"):
        return NotSupported
    if c.endswith("notfound") and "session" in c:
        return NotFound
    if "status" in c or "conflict" in c or "operationdenied" in c or status == 409:
        return Conflict
    if c.startswith(("internalerror", "serviceunavailable", "systembusy", "unknownerror")) or status >= 500:
        return Unavailable
    # InvalidParameter, InvalidAction.NotFound, InvalidVersion, unknown codes: we asked wrong,
    # or they answer in a way we do not understand.
    return ProtocolError


def _acs_retry_after(response: httpx.Response) -> None:
    """tea-openapi's throttling hint is `x-acs-retry-after`; exposed as Retry-After (on every
    answer, the lean connection's too) so the shared ApiClient honours it like every other
    provider's."""
    hint = response.headers.get("x-acs-retry-after")
    if hint and "retry-after" not in response.headers:
        response.headers["Retry-After"] = hint


class AgentBayAdapter:
    kind = "agentbay"

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 10.0,
        max_concurrency: int = 8,
        retries: int = 3,
        label_filter: dict[str, str] | None = None,
        supports_pause: bool = True,
        supports_resume: bool = True,
        page_size: int = 100,
        fetch_labels: bool = True,
        label_ttl_s: float = DEFAULT_LABEL_TTL_S,
        poll_interval_s: float = 1.0,
        action_deadline_s: float = 30.0,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_instances: int = DEFAULT_MAX_INSTANCES,
    ) -> None:
        self.name = name
        self.max_pages = max_pages
        self.max_instances = max_instances
        # LEON's per-config override (`supports_pause`/`supports_resume`): pause is whitelist-only.
        self.capabilities = Capabilities(
            can_pause=supports_pause, can_resume=supports_resume, can_destroy=True, has_events=False
        )
        self.label_filter = dict(label_filter) if label_filter else None
        self.page_size = page_size
        self.max_concurrency = max(1, max_concurrency)
        self.fetch_labels = fetch_labels
        self.label_ttl_s = label_ttl_s
        # SessionId -> (labels, monotonic expiry). Pruned to the listed sessions on every listing.
        self._label_cache: dict[str, tuple[dict[str, str], float]] = {}
        self._reuse = ReusedInstances()
        # The last complete listing: the hash of its (SessionId, SessionStatus) pairs, its label
        # maps and its Instances.
        self._last: tuple[object, list[dict[str, str] | None], list[Instance]] = (object(), [], [])
        self.poll_interval_s = poll_interval_s
        self.action_deadline_s = action_deadline_s
        self.requests_by_action: dict[str, int] = {}
        self._bearer = f"Bearer {api_key}" if api_key else None
        self.api = ApiClient(
            name,
            base_url=base_url,
            secrets=(api_key, self._bearer),
            timeout=timeout,
            max_concurrency=max_concurrency,
            retries=retries,
            message_of=_message_of,
            on_response=_acs_retry_after,
        )

    def __repr__(self) -> str:  # never the key
        return f"AgentBayAdapter(name={self.name!r}, base_url={self.api.base_url!r})"

    @property
    def request_count(self) -> int:
        return self.api.request_count

    async def aclose(self) -> None:
        await self.api.aclose()

    def events(self) -> AsyncIterator[ProviderEvent]:
        raise NotImplementedError("AgentBay has no event stream; poll ListSession/GetSession")

    # -- RPC ----------------------------------------------------------------------------------

    async def call(self, action: str, form: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One RPC. Returns the decoded body of a successful call; raises a typed error otherwise
        (including HTTP 200 with `Success:false`)."""
        # The path carries only the action so error messages name it; `params` (which httpx uses
        # as the whole query) carries the full POP query.
        path = f"/?Action={action}"
        if self._bearer is None:
            raise self.api.error(AuthFailed, "POST", path, "no API key configured")
        params = {
            "Action": action,
            "Format": "json",
            "Version": API_VERSION,
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "SignatureNonce": uuid.uuid4().hex,
        }
        headers = {"x-acs-action": action, "x-acs-version": API_VERSION}
        data = {"Authorization": self._bearer, **(form or {})}
        self.requests_by_action[action] = self.requests_by_action.get(action, 0) + 1
        response = await self.api.request(
            "POST", path, params=params, data=data, headers=headers, expect=_INTERPRET,
            idempotent=action in _READS,
        )  # fmt: skip
        body = self.api.decode("POST", path, response)
        if not isinstance(body, dict):
            raise self.api.protocol_error("POST", path, f"expected a JSON object, got {type(body).__name__}")
        status = response.status_code
        if status == 200 and body.get("Success") is not False:
            return body
        code = str(body.get("Code") or "")
        detail = _describe(body, status)
        cls = _error_class(code, status)
        retry_after = parse_retry_after(response.headers) if cls is RateLimited else None
        raise self.api.error(cls, "POST", path, detail, status=status, retry_after=retry_after)

    # -- listing ------------------------------------------------------------------------------

    async def list_instances(self) -> list[Instance]:
        sessions = await self._list_sessions()
        if not self.fetch_labels:
            return [self._instance(sid, status, {}) for sid, status in sessions]
        labels = await self._cached_labels([sid for sid, _ in sessions])
        found_labels = [labels.get(sid) for sid, _ in sessions]
        # The pairs by their hash, not kept (their strs are this listing's, not the Instances'):
        # like ReusedInstances' signatures, a 64-bit collision would hide a change until the next.
        try:
            seen: object = hash(tuple(sessions))
        except TypeError:  # a status that is not plain text: never taken for the last listing
            seen = object()
        last_seen, last_labels, last_listing = self._last
        if (
            seen == last_seen
            and all(map(is_, found_labels, last_labels))
            and len(found_labels) == len(last_labels)
        ):
            # The same sessions in the same states with the very label maps (cached): the same
            # Instances, none looked at again (issue 10: ~800 a listing every 15 s at 10k leases).
            return list(last_listing)
        reuse = self._reuse
        reuse.start()
        listing: list[Instance] = []
        for sid, status in sessions:
            found = labels.get(sid)
            if found is None:
                continue  # released between ListSession and GetLabel: gone
            make = lambda: self._instance(sid, status, found)  # noqa: B023, E731 (called at once)
            listing.append(reuse.instance(sid, (status,), found, make))
        reuse.done()
        self._last = (seen, found_labels, listing)
        return list(listing)

    async def _list_sessions(self) -> list[tuple[str, Any]]:
        """(SessionId, SessionStatus) of every ListSession page. A page that fails fails the
        listing (never a short listing). Each page is cut down to those two as it arrives: the
        pages' session objects, kept whole until the labels were fetched, were ~5 MB at 12k
        sessions (issue 10, RSS at 50k leases)."""
        form: dict[str, str] = {"MaxResults": str(self.page_size)}
        if self.label_filter:
            form["Labels"] = json.dumps(self.label_filter, sort_keys=True)
        where = "/?Action=ListSession"

        async def fetch(cursor: str | None) -> Page[tuple[str, Any]]:
            if cursor:
                form["NextToken"] = cursor
            body = await self.call("ListSession", form)
            data = body.get("Data") or []
            if not isinstance(data, list) or not all(
                isinstance(s, dict) and isinstance(s.get("SessionId"), str) for s in data
            ):
                raise self.api.protocol_error("POST", where, "Data is not a session list")
            token = body.get("NextToken") or ""
            # TotalCount: every session the filters match (ListSession lists unreleased ones).
            total = body.get("TotalCount")
            if isinstance(total, bool) or not isinstance(total, int) or total < 0:
                total = None
            return Page([(d["SessionId"], d.get("SessionStatus")) for d in data], str(token), total)

        return await self.api.paginate(
            "POST",
            where,
            fetch,
            max_pages=self.max_pages,
            max_instances=self.max_instances,
            counted=_FIRST,
        )

    async def _cached_labels(self, session_ids: list[str]) -> dict[str, dict[str, str]]:
        now = time.monotonic()
        cache = self._label_cache
        out: dict[str, dict[str, str]] = {}
        missing: list[str] = []
        for sid in session_ids:
            entry = cache.get(sid)
            if entry is not None and entry[1] > now:
                out[sid] = entry[0]
            else:
                missing.append(sid)
        # `_labels_for` caches each label as it arrives (see there), so `out` gains them too.
        out.update(await self._labels_for(missing))
        # Only what is listed now stays cached: a released id never comes back. Pruned after a
        # complete listing only: a failed one says nothing about which sessions are gone.
        cache = self._label_cache
        if len(cache) > len(out):
            self._label_cache = {sid: entry for sid, entry in cache.items() if sid in out}
        return out

    def _remember(self, sid: str, labels: dict[str, str]) -> None:
        if self.label_ttl_s > 0:
            expiry = time.monotonic() + self.label_ttl_s * random.uniform(0.5, 1.0)
            self._label_cache[sid] = (labels, expiry)

    async def _labels_for(self, session_ids: list[str]) -> dict[str, dict[str, str]]:
        """GetLabel per session through `max_concurrency` workers (not one task per session: 10k
        tasks cost more than the requests). The first failure cancels the rest, so a broken
        listing stops hammering the API, and surfaces as itself, not as an ExceptionGroup.

        Every label is cached as soon as it arrives, not when all have: a listing cut short (the
        collector's timeout, a 503 on one session, cancellation) keeps its progress. Caching
        every label only at the end made a cold listing at 50k sessions, which outlasts the list
        timeout, start from zero every listing interval and never finish."""
        out: dict[str, dict[str, str]] = {}
        pending = iter(session_ids)

        async def worker() -> None:
            for sid in pending:  # shared iterator: each id is taken by exactly one worker
                # NotFound: released since ListSession, so it is gone and not listed.
                with contextlib.suppress(NotFound):
                    labels = await self.get_labels(sid)
                    out[sid] = labels
                    self._remember(sid, labels)

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(min(self.max_concurrency, len(session_ids))):
                    tg.create_task(worker())
        except BaseExceptionGroup as group:
            first = group.exceptions[0]
            if isinstance(first, ProviderError):
                raise first from None
            raise
        return out

    async def get_labels(self, session_id: str) -> dict[str, str]:
        body = await self.call("GetLabel", {"SessionId": session_id})
        raw = (body.get("Data") or {}).get("Labels") if isinstance(body.get("Data"), dict) else None
        if raw in (None, ""):
            return {}
        try:
            labels = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise self.api.protocol_error("POST", "/?Action=GetLabel", "Data.Labels is not JSON") from None
        if not isinstance(labels, dict):
            raise self.api.protocol_error("POST", "/?Action=GetLabel", "Data.Labels is not a JSON object")
        # Keys interned: each session's labels are a JSON document of their own (no key memo spans
        # them), and every listed Instance keeps its map (issue 10, RSS)
        return {intern(str(k)): "" if v is None else str(v) for k, v in labels.items()}

    def _instance(self, session_id: str, raw: str | None, labels: dict[str, str]) -> Instance:
        return Instance(
            provider=self.name,
            instance_id=session_id,
            raw_state=intern(raw) if raw.__class__ is str else raw or "",  # one object per state
            state=normal_state(raw),
            name=labels.get("name"),
            labels=labels,
            claimed_lease_id=claimed_lease(labels),
        )

    # -- one instance -------------------------------------------------------------------------

    async def _status(self, session_id: str) -> str:
        """GetSession's Status (raises NotFound for InvalidMcpSession.NotFound)."""
        body = await self.call("GetSession", {"SessionId": session_id})
        data = body.get("Data")
        if not isinstance(data, dict) or not isinstance(data.get("Status"), str):
            raise self.api.protocol_error("POST", "/?Action=GetSession", "Data.Status missing")
        return data["Status"].upper()

    async def get_instance(self, instance_id: str) -> Instance:
        raw = await self._status(instance_id)
        labels: dict[str, str] = {}
        if self.fetch_labels:
            labels = await self.get_labels(instance_id)
            self._remember(instance_id, labels)
        return self._instance(instance_id, raw, labels)

    async def raw_record(self, instance_id: str) -> dict[str, Any]:
        """What AgentBay says about one session, one key per call as sent: `GetSession.Data`
        (its `Token`/`LinkUrl` are credentials: the caller redacts), `GetSessionDetail.Data` (the
        image, end reason) and `GetLabel` (decoded). AgentBay has no single record. A detail call
        the account may not be allowed is left out rather than failing the whole record."""
        form = {"SessionId": instance_id}
        body = await self.call("GetSession", form)
        data = body.get("Data")
        if not isinstance(data, dict):
            raise self.api.protocol_error("POST", "/?Action=GetSession", "Data is not a JSON object")
        record: dict[str, Any] = {"GetSession": data}
        try:
            detail = (await self.call("GetSessionDetail", form)).get("Data")
        except (AuthFailed, Conflict, ProtocolError, NotSupported):
            detail = None  # not allowed or not understood: GetSession still says what it is
        if isinstance(detail, dict):
            record["GetSessionDetail"] = detail
        record["GetLabel"] = await self.get_labels(instance_id)
        return record

    # -- actions ------------------------------------------------------------------------------

    async def pause(self, instance_id: str) -> ActionResult:
        if not self.capabilities.can_pause:
            raise NotSupported("pause disabled for this provider (supports_pause=false)", provider=self.name)
        return await self._transition(
            instance_id, "pause", "PauseSessionAsync", source="RUNNING", via="PAUSING", target="PAUSED"
        )

    async def resume(self, instance_id: str) -> ActionResult:
        if not self.capabilities.can_resume:
            raise NotSupported("resume disabled (supports_resume=false)", provider=self.name)
        return await self._transition(
            instance_id, "resume", "ResumeSessionAsync", source="PAUSED", via="RESUMING", target="RUNNING"
        )

    async def _transition(
        self, sid: str, action: str, rpc: str, *, source: str, via: str, target: str
    ) -> ActionResult:
        state = await self._status(sid)
        if state == target:
            return ActionResult(sid, action, ActionOutcome.ALREADY, normal_state(state))
        if state != via:  # already on its way: just wait with it
            if state != source:
                raise Conflict(f"cannot {action} {sid}: session is {state}", provider=self.name)
            await self.call(rpc, {"SessionId": sid})
        return await self._await_state(sid, action, target)

    async def destroy(self, instance_id: str) -> ActionResult:
        try:
            state = await self._status(instance_id)
            if state in ("DELETED", "FINISH"):
                return ActionResult(instance_id, "destroy", ActionOutcome.ALREADY, NormalState.GONE)
            if state != "DELETING":
                await self.call("DeleteSessionAsync", {"SessionId": instance_id})
        except NotFound:
            # The SDK treats InvalidMcpSession.NotFound as "already gone"; so do we.
            return ActionResult(instance_id, "destroy", ActionOutcome.ALREADY, NormalState.GONE)
        return await self._await_state(instance_id, "destroy", None)

    async def _await_state(self, sid: str, action: str, target: str | None) -> ActionResult:
        """Poll GetSession until `target` (None = gone) or the deadline.

        Past the deadline, or when a poll itself fails, the action was still accepted: answer
        ACCEPTED with what we last saw rather than pretend it failed (or finished).
        """
        deadline = time.monotonic() + self.action_deadline_s
        last = "?"
        while True:
            try:
                last = await self._status(sid)
            except NotFound:
                if target is None:
                    return ActionResult(sid, action, ActionOutcome.DONE, NormalState.GONE)
                raise
            except (Unavailable, RateLimited, ProtocolError) as exc:
                detail = f"accepted; status poll failed: {exc}"
                return ActionResult(sid, action, ActionOutcome.ACCEPTED, None, detail)
            if target is None and last in ("DELETED", "FINISH"):
                return ActionResult(sid, action, ActionOutcome.DONE, NormalState.GONE)
            if last == target:
                return ActionResult(sid, action, ActionOutcome.DONE, normal_state(last))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ActionResult(sid, action, ActionOutcome.ACCEPTED, normal_state(last), f"still {last}")
            await asyncio.sleep(min(self.poll_interval_s, remaining))


def _message_of(response: httpx.Response) -> str:
    """`Code: Message` from an AgentBay error body (ApiClient redacts it)."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text
    return _describe(body, response.status_code) if isinstance(body, dict) else response.text


def _describe(body: Mapping[str, Any], status: int) -> str:
    code = body.get("Code") or ""
    message = body.get("Message") or ""
    # "Code (Message)", not "Code: Message": a colon after "...ApiKey" reads as a credential to
    # the shared redactor, which would eat the message's first word.
    text = f"{code} ({message})" if code and message else str(code or message or f"HTTP {status}")
    if status == 200:
        text = f"Success:false {text}"
    return text


# --------------------------------------------------------------------------- the kind

DEFAULT_REGION = "cn-hangzhou"


def _defaults(fields: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    out: dict[str, tuple[Any, str]] = {}
    if env.get("AGENTBAY_REGION_ID"):
        out["region"] = (env["AGENTBAY_REGION_ID"], "$AGENTBAY_REGION_ID")
    else:
        out["region"] = (DEFAULT_REGION, "default")
    region = fields.get("region") or out["region"][0]
    if env.get("AGENTBAY_ENDPOINT"):
        out["api_url"] = (env["AGENTBAY_ENDPOINT"], "$AGENTBAY_ENDPOINT")
    else:
        out["api_url"] = (f"https://agentbay.{region}.aliyuncs.com", "default (from region)")
    return out


KIND = ProviderKind(
    name="agentbay",
    factory=AgentBayAdapter,
    # Workspace root: not documented for AgentBay images, so adopt falls back to the caller's default.
    capabilities=Capabilities(has_events=False),
    key_env="AGENTBAY_API_KEY",
    defaults=_defaults,
    from_leon=leon_api_fields,
)
