"""AgentBay adapter against the AgentBay double: the shared contract plus AgentBay's own traps
(GetLabel per session, Success:false inside HTTP 200, asynchronous actions, whitelist-only pause,
an API key that travels in the form body)."""

from __future__ import annotations

import json
import logging
import math
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from opcockpit.adapters.providers.agentbay import (
    API_VERSION,
    AgentBayAdapter,
    NotSupported,
    _error_class,
    claimed_lease,
    normal_state,
)
from opcockpit.adapters.providers.wire import ReusedInstances
from opcockpit.domain.models import NormalState
from opcockpit.doubles.agentbay import AgentBayDouble
from opcockpit.doubles.base import Request, Response
from opcockpit.ports.provider import (
    ActionOutcome,
    AuthFailed,
    Conflict,
    NotFound,
    ProtocolError,
    ProviderError,
    RateLimited,
    Unavailable,
)
from tests.providers.contract import AdapterContract, error_texts

# Deliberately not shaped like a real key ("akm-…"): the redactor's pattern would hide a leak.
SECRET = "ab-Zq7xSECRETvalue-0042"
PAGE = 3


@pytest.fixture
def secret() -> str:
    return SECRET


@pytest.fixture
def double(secret: str) -> Iterator[AgentBayDouble]:
    with AgentBayDouble(api_key=secret, transition_s=0.05) as d:
        yield d


@pytest.fixture
async def make_adapter(double: AgentBayDouble, secret: str) -> AsyncIterator[Callable[..., AgentBayAdapter]]:
    made: list[AgentBayAdapter] = []

    def _make(**kw: Any) -> AgentBayAdapter:
        kw.setdefault("api_key", secret)
        kw.setdefault("page_size", PAGE)
        kw.setdefault("poll_interval_s", 0.01)
        kw.setdefault("action_deadline_s", 5.0)
        a = AgentBayAdapter("agentbay", base_url=double.url, **kw)
        made.append(a)
        return a

    yield _make
    for a in made:
        await a.aclose()


@pytest.fixture
def seed(double: AgentBayDouble) -> Callable[..., str]:
    """AgentBay sessions as LEON makes them: ids `session-…`, an AppInstanceId, labels (if any)."""

    def _seed(state: str = "running", labels: dict[str, str] | None = None) -> str:
        return double.add(state=state, labels=labels).instance_id

    return _seed


class TestAgentBayContract(AdapterContract):
    page_size = PAGE
    labels_from_listing = False  # labels come from the GetLabel cache (steady50k_reuse.py)
    pages_reused = False  # ListSession pages of session ids, then labels per session

    async def test_request_count_is_o_pages(self, adapter: Any, seed: Any) -> None:
        """AgentBay's cost is O(pages) ListSession *plus one GetLabel per session* (list items
        carry no labels); the contract's O(pages) holds for ListSession alone."""
        n = self._n_for_pages(3)
        for _ in range(n):
            seed("running", None)
        before = adapter.request_count
        listing = await adapter.list_instances()
        used = adapter.request_count - before
        pages = math.ceil(len(listing) / PAGE)
        assert len(listing) == n
        assert used == pages + n
        assert adapter.requests_by_action == {"ListSession": pages, "GetLabel": n}


# --------------------------------------------------------------------------- request cost


async def test_listing_cost_is_pages_plus_one_getlabel_per_session(
    make_adapter: Any, double: AgentBayDouble
) -> None:
    for i in range(10):
        double.add(labels={"lease_id": f"L{i}"})
    adapter = make_adapter()
    listing = await adapter.list_instances()
    assert len(listing) == 10
    assert adapter.requests_by_action == {"ListSession": 4, "GetLabel": 10}
    assert adapter.request_count == 14
    # The double saw exactly what the adapter says it sent.
    assert double.requests_by_action == {"ListSession": 4, "GetLabel": 10}


async def test_warm_refresh_reuses_cached_labels(make_adapter: Any, double: AgentBayDouble) -> None:
    first = [double.add(labels={"lease_id": f"L{i}"}).instance_id for i in range(5)]
    adapter = make_adapter()
    await adapter.list_instances()
    assert adapter.requests_by_action == {"ListSession": 2, "GetLabel": 5}

    # Warm: pages only. One new session costs exactly one GetLabel; a vanished one is pruned.
    newcomer = double.add(labels={"lease_id": "L-new"}).instance_id
    double.remove(first[0])
    listing = await adapter.list_instances()
    assert adapter.requests_by_action == {"ListSession": 4, "GetLabel": 6}
    by_id = {i.instance_id: i for i in listing}
    assert set(by_id) == {*first[1:], newcomer}
    assert by_id[newcomer].claimed_lease_id == "L-new"
    assert by_id[first[1]].claimed_lease_id == "L1"  # served from the cache, still decoded
    assert first[0] not in adapter._label_cache


async def test_label_cache_disabled_refetches_every_time(make_adapter: Any, double: AgentBayDouble) -> None:
    for i in range(4):
        double.add(labels={"lease_id": f"L{i}"})
    adapter = make_adapter(label_ttl_s=0)
    await adapter.list_instances()
    await adapter.list_instances()
    assert adapter.requests_by_action["GetLabel"] == 8


async def test_get_instance_refreshes_cached_labels(make_adapter: Any, double: AgentBayDouble) -> None:
    iid = double.add(labels={"lease_id": "old"}).instance_id
    adapter = make_adapter()
    await adapter.list_instances()
    double.instances[iid].labels = {"lease_id": "new"}  # SetLabel behind our back
    assert (await adapter.get_instance(iid)).claimed_lease_id == "new"
    (listed,) = await adapter.list_instances()
    assert listed.claimed_lease_id == "new"


async def test_fetch_labels_false_costs_pages_only(make_adapter: Any, double: AgentBayDouble) -> None:
    for i in range(7):
        double.add(labels={"lease_id": f"L{i}"})
    adapter = make_adapter(fetch_labels=False)
    listing = await adapter.list_instances()
    assert len(listing) == 7
    assert adapter.request_count == 3
    assert all(i.labels == {} and i.claimed_lease_id is None for i in listing)


async def test_label_filter_is_sent_as_labels_json(make_adapter: Any, double: AgentBayDouble) -> None:
    mine = double.add(labels={"owner": "leon", "lease_id": "L1"}).instance_id
    double.add(labels={"owner": "someone-else"})
    adapter = make_adapter(label_filter={"owner": "leon"})
    listing = await adapter.list_instances()
    assert [i.instance_id for i in listing] == [mine]
    assert adapter.requests_by_action == {"ListSession": 1, "GetLabel": 1}
    listed = [r for r in double.recent if r.q("Action") == "ListSession"]
    assert json.loads(listed[-1].form()["Labels"]) == {"owner": "leon"}


async def test_session_released_between_list_and_getlabel_is_not_listed(
    secret: str, make_adapter: Any
) -> None:
    class RacyDouble(AgentBayDouble):
        victim: str | None = None

        def _get_label(self, request: Request, form: dict[str, str]) -> Response:
            if form.get("SessionId") == self.victim:
                self.remove(self.victim)
            return super()._get_label(request, form)

    with RacyDouble(api_key=secret) as d:
        keep = d.add().instance_id
        d.victim = d.add().instance_id
        adapter = AgentBayAdapter("agentbay", base_url=d.url, api_key=secret)
        try:
            listing = await adapter.list_instances()
        finally:
            await adapter.aclose()
    assert [i.instance_id for i in listing] == [keep]


async def test_wire_format(make_adapter: Any, double: AgentBayDouble, secret: str) -> None:
    double.add()
    await make_adapter().list_instances()
    req = next(r for r in double.recent if r.q("Action") == "ListSession")
    assert req.method == "POST" and req.path == "/"
    assert req.q("Format") == "json" and req.q("Version") == API_VERSION
    assert req.q("Timestamp") and req.q("SignatureNonce")
    assert req.header("x-acs-action") == "ListSession"
    assert req.header("x-acs-version") == API_VERSION
    assert req.header("content-type", "").startswith("application/x-www-form-urlencoded")
    form = req.form()
    assert form["Authorization"] == f"Bearer {secret}"
    assert form["MaxResults"] == str(PAGE)
    # The key travels only in the body: never in the URL or a header.
    assert secret not in str(req.query) and secret not in str(req.headers)
    nonces = {r.q("SignatureNonce") for r in double.recent}
    assert len(nonces) == len(double.recent)


# --------------------------------------------------------------------------- states and labels


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("RUNNING", NormalState.RUNNING),
        ("PAUSED", NormalState.PAUSED),
        ("PAUSING", NormalState.TRANSITIONING),
        ("RESUMING", NormalState.TRANSITIONING),
        ("DELETING", NormalState.TRANSITIONING),
    ],
)
async def test_listed_states_are_normalised(
    make_adapter: Any, double: AgentBayDouble, raw: str, state: NormalState
) -> None:
    iid = double.add(state=raw).instance_id
    (inst,) = await make_adapter().list_instances()
    assert (inst.instance_id, inst.raw_state, inst.state) == (iid, raw, state)


def test_state_mapping_of_gone_and_unknown_words() -> None:
    assert normal_state("DELETED") is NormalState.GONE
    assert normal_state("FINISH") is NormalState.GONE
    assert normal_state("HIBERNATING") is NormalState.UNKNOWN
    assert normal_state(None) is NormalState.UNKNOWN


async def test_unknown_native_state_lists_as_unknown(make_adapter: Any, double: AgentBayDouble) -> None:
    iid = double.add().instance_id
    double.instances[iid].state = "MIGRATING"
    (inst,) = await make_adapter().list_instances()
    assert (inst.raw_state, inst.state) == ("MIGRATING", NormalState.UNKNOWN)


def test_claimed_lease_from_leon_labels() -> None:
    assert claimed_lease({"lease_id": "L1"}) == "L1"
    assert claimed_lease({"leon.lease_id": "L2"}) == "L2"
    assert claimed_lease({"leon.context_id": "leon-L3"}) == "L3"
    assert claimed_lease({"leon.context_id": "other-ctx"}) is None
    assert claimed_lease({"leon.context_id": "leon-"}) is None
    assert claimed_lease({}) is None


def test_a_claimed_lease_cut_from_the_context_is_the_interned_text() -> None:
    """sandbox.db's lease ids are interned: the id cut from leon-<lease_id> is that object, not
    a new str per session."""
    import sys

    assert claimed_lease({"leon.context_id": "leon-lease-abc-1"}) is sys.intern("lease-abc-1")


async def test_labels_decoded_and_lease_claimed(make_adapter: Any, double: AgentBayDouble) -> None:
    double.add(labels={"leon.context_id": "leon-lease-9", "team": "sre"})
    (inst,) = await make_adapter().list_instances()
    assert dict(inst.labels) == {"leon.context_id": "leon-lease-9", "team": "sre"}
    assert inst.claimed_lease_id == "lease-9"


async def test_labels_that_are_not_json_are_protocol_error(make_adapter: Any, secret: str) -> None:
    class BadLabels(AgentBayDouble):
        def _get_label(self, request: Request, form: dict[str, str]) -> Response:
            return Response(200, {"Success": True, "Data": {"Labels": "{not json"}})

    with BadLabels(api_key=secret) as d:
        d.add()
        adapter = AgentBayAdapter("agentbay", base_url=d.url, api_key=secret)
        try:
            with pytest.raises(ProtocolError, match="GetLabel"):
                await adapter.list_instances()
        finally:
            await adapter.aclose()


# --------------------------------------------------------------------------- Success:false


async def test_success_false_in_http_200_fails_the_listing(make_adapter: Any, double: AgentBayDouble) -> None:
    double.add()
    double.faults.success_false = True
    with pytest.raises(Unavailable) as info:
        await make_adapter(retries=0).list_instances()
    assert "Success:false" in str(info.value)
    assert "InternalError" in str(info.value)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("InvalidMcpSession.NotFound", NotFound),
        ("Throttling.User", RateLimited),
        ("InvalidApiKey", AuthFailed),
        ("BenefitLevel.NotSupport", NotSupported),
        ("InvalidMcpSession.StatusNotSupport", Conflict),
        ("InvalidParameter", ProtocolError),
    ],
)
async def test_success_false_codes_are_mapped(
    make_adapter: Any, double: AgentBayDouble, code: str, cls: type[ProviderError]
) -> None:
    iid = double.add().instance_id
    double.faults.success_false = True
    double.faults.success_false_code = code
    with pytest.raises(cls) as info:
        await make_adapter().get_instance(iid)
    assert type(info.value) is cls
    assert code in str(info.value)


async def test_success_false_is_not_success_for_actions(make_adapter: Any, double: AgentBayDouble) -> None:
    """A pause whose *Async call says Success:false must not be reported as done."""
    iid = double.add().instance_id
    adapter = make_adapter()

    class Once:
        calls = 0

    orig = double._pause

    def failing_pause(request: Request, form: dict[str, str]) -> Response:
        Once.calls += 1
        body = {"Success": False, "Code": "InternalError", "Message": "boom", "HttpStatusCode": 200}
        return Response(200, body)

    double._pause = failing_pause  # type: ignore[method-assign]
    try:
        with pytest.raises(Unavailable):
            await adapter.pause(iid)
    finally:
        double._pause = orig  # type: ignore[method-assign]
    assert Once.calls == 1
    assert double.instances[iid].state == "RUNNING"


def test_error_class_table() -> None:
    assert _error_class("", 401) is AuthFailed
    assert _error_class("Forbidden.RAM", 403) is AuthFailed
    assert _error_class("", 429) is RateLimited
    assert _error_class("InvalidAction.NotFound", 404) is ProtocolError  # our mistake, not a session
    assert _error_class("ServiceUnavailable", 503) is Unavailable
    assert _error_class("Whatever", 409) is Conflict


async def test_throttling_honours_x_acs_retry_after(make_adapter: Any, double: AgentBayDouble) -> None:
    """The real service says `x-acs-retry-after` only; the adapter must honour it."""

    def throttled(retry_after: float) -> Response:
        body = {"Code": "Throttling.User", "Message": "flow control", "Success": False, "HttpStatusCode": 429}
        return Response(429, body, {"x-acs-retry-after": f"{retry_after:g}"})

    double.rate_limited = throttled  # type: ignore[method-assign]
    double.faults.rate_limit_retry_after = 0.07
    with pytest.raises(RateLimited) as info:
        await make_adapter(retries=1).list_instances()
    assert info.value.retry_after == pytest.approx(0.07)


# --------------------------------------------------------------------------- async actions


async def test_pause_polls_until_paused(make_adapter: Any, double: AgentBayDouble) -> None:
    iid = double.add().instance_id
    adapter = make_adapter()
    result = await adapter.pause(iid)
    assert (result.outcome, result.state) == (ActionOutcome.DONE, NormalState.PAUSED)
    assert double.instances[iid].state == "PAUSED"
    assert adapter.requests_by_action["PauseSessionAsync"] == 1
    # one GetSession before the call, then at least one that saw PAUSING and one that saw PAUSED
    assert adapter.requests_by_action["GetSession"] >= 3


async def test_resume_and_destroy_poll_to_completion(make_adapter: Any, double: AgentBayDouble) -> None:
    iid = double.add(state="paused").instance_id
    adapter = make_adapter()
    resumed = await adapter.resume(iid)
    assert (resumed.outcome, resumed.state) == (ActionOutcome.DONE, NormalState.RUNNING)
    destroyed = await adapter.destroy(iid)
    assert (destroyed.outcome, destroyed.state) == (ActionOutcome.DONE, NormalState.GONE)
    assert iid not in double.instances
    assert iid in double.finished  # GetSessionDetail now answers FINISH


async def test_action_past_deadline_is_accepted_still_transitioning(
    make_adapter: Any, double: AgentBayDouble
) -> None:
    double.transition_s = 60.0
    iid = double.add().instance_id
    adapter = make_adapter(action_deadline_s=0.05)
    result = await adapter.pause(iid)
    assert result.outcome is ActionOutcome.ACCEPTED
    assert result.detail == "still PAUSING"
    assert result.state is NormalState.TRANSITIONING
    # Asking again while PAUSING waits with it instead of pausing twice.
    again = await adapter.pause(iid)
    assert again.outcome is ActionOutcome.ACCEPTED
    assert adapter.requests_by_action["PauseSessionAsync"] == 1

    gone_later = await adapter.destroy(iid)
    assert (gone_later.outcome, gone_later.detail) == (ActionOutcome.ACCEPTED, "still DELETING")


async def test_already_in_state_makes_no_action_call(make_adapter: Any, double: AgentBayDouble) -> None:
    paused = double.add(state="paused").instance_id
    running = double.add().instance_id
    adapter = make_adapter()
    assert (await adapter.pause(paused)).outcome is ActionOutcome.ALREADY
    assert (await adapter.resume(running)).outcome is ActionOutcome.ALREADY
    assert "PauseSessionAsync" not in adapter.requests_by_action
    assert "ResumeSessionAsync" not in adapter.requests_by_action


async def test_pause_while_deleting_is_conflict(make_adapter: Any, double: AgentBayDouble) -> None:
    iid = double.add(state="DELETING").instance_id
    with pytest.raises(Conflict, match="DELETING"):
        await make_adapter().pause(iid)


async def test_poll_failure_after_accept_is_accepted_not_error(
    make_adapter: Any, double: AgentBayDouble
) -> None:
    double.transition_s = 60.0
    iid = double.add().instance_id
    adapter = make_adapter(retries=0)

    orig = double._pause

    def pause_then_break(request: Request, form: dict[str, str]) -> Response:
        response = orig(request, form)
        double.faults.error_status = 503  # every poll after the accepted call fails
        return response

    double._pause = pause_then_break  # type: ignore[method-assign]
    result = await adapter.pause(iid)
    assert result.outcome is ActionOutcome.ACCEPTED
    assert result.detail and result.detail.startswith("accepted; status poll failed")


# --------------------------------------------------------------------------- pause not supported


async def test_pause_not_supported_by_account(make_adapter: Any, double: AgentBayDouble) -> None:
    double.pause_not_supported = True
    iid = double.add().instance_id
    with pytest.raises(NotSupported, match=r"BenefitLevel\.NotSupport") as info:
        await make_adapter().pause(iid)
    assert isinstance(info.value, Conflict)  # callers that only know the base errors see a refusal
    assert double.instances[iid].state == "RUNNING"


async def test_capability_override_refuses_without_calling(make_adapter: Any, double: AgentBayDouble) -> None:
    iid = double.add().instance_id
    adapter = make_adapter(supports_pause=False, supports_resume=False)
    assert not adapter.capabilities.can_pause and not adapter.capabilities.can_resume
    assert adapter.capabilities.can_destroy and not adapter.capabilities.has_events
    with pytest.raises(NotSupported):
        await adapter.pause(iid)
    with pytest.raises(NotSupported):
        await adapter.resume(iid)
    assert adapter.request_count == 0


async def test_no_event_stream(make_adapter: Any) -> None:
    with pytest.raises(NotImplementedError):
        make_adapter().events()


# --------------------------------------------------------------------------- secret scrubbing


def _assert_clean(err: BaseException, secret: str) -> None:
    for text in error_texts(err):
        assert secret not in text, f"secret leaked in {type(err).__name__}: {text!r}"
    # httpx exceptions keep the request (with its form body) around; none may hang off ours.
    seen: BaseException | None = err
    while seen is not None:
        assert not type(seen).__module__.startswith(("httpx", "httpcore")), type(seen)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)


async def test_secret_not_in_connection_errors_after_retries(secret: str) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    adapter = AgentBayAdapter("agentbay", base_url=f"http://127.0.0.1:{port}", api_key=secret, retries=2)
    try:
        with pytest.raises(Unavailable) as info:
            await adapter.list_instances()
    finally:
        await adapter.aclose()
    assert adapter.request_count == 3
    _assert_clean(info.value, secret)


async def test_secret_not_leaked_when_the_server_echoes_it(secret: str) -> None:
    """Some gateways echo the offending parameter; the key must still not reach our messages."""

    class Echo(AgentBayDouble):
        def _get_session(self, request: Request, form: dict[str, str]) -> Response:
            auth = form.get("Authorization", "")
            echo = f"bad request {auth} / {auth[7:]}"
            body = {"Code": "InvalidParameter", "Message": echo, "Success": False}
            return Response(400, body)

    with Echo(api_key=secret) as d:
        iid = d.add().instance_id
        adapter = AgentBayAdapter("agentbay", base_url=d.url, api_key=secret, retries=0)
        try:
            with pytest.raises(ProtocolError) as info:
                await adapter.get_instance(iid)
        finally:
            await adapter.aclose()
    _assert_clean(info.value, secret)
    assert "InvalidParameter" in str(info.value)


async def test_secret_not_in_timeouts_retries_or_logs(
    make_adapter: Any, double: AgentBayDouble, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    double.add()
    caplog.set_level(logging.DEBUG)  # httpx/httpcore debug logs included
    adapter = make_adapter(timeout=0.1, retries=1)
    errors: list[ProviderError] = []
    for attr, value in (("list_delay_s", 0.4), ("error_status", 502), ("rate_limit_retry_after", 0.01)):
        double.faults.clear()
        setattr(double.faults, attr, value)
        with pytest.raises(ProviderError) as info:
            await adapter.list_instances()
        errors.append(info.value)
    double.faults.clear()
    double.faults.success_false = True
    with pytest.raises(ProviderError) as info:
        await adapter.destroy(f"session-{uuid.uuid4().hex[:8]}")
    errors.append(info.value)
    for err in errors:
        _assert_clean(err, secret)
    assert caplog.records, "expected httpx to log something at DEBUG"
    for record in caplog.records:
        assert secret not in record.getMessage()
    assert secret not in repr(adapter) and secret not in repr(adapter.api)


async def test_missing_key_fails_without_sending(double: AgentBayDouble) -> None:
    adapter = AgentBayAdapter("agentbay", base_url=double.url, api_key=None)
    try:
        with pytest.raises(AuthFailed, match="no API key"):
            await adapter.list_instances()
    finally:
        await adapter.aclose()
    assert double.request_count == 0


async def test_listing_rpcs_go_on_the_lean_connection_and_actions_through_httpx(
    make_adapter: Any, double: AgentBayDouble, secret: str
) -> None:
    """Issue 10: the RPCs that only read are sent without httpx (which asks gzip), with their
    form body (the key) and action headers; an action is never sent twice, so it stays on httpx."""
    iid = double.add(labels={"lease_id": "L1"}).instance_id
    seen: list[tuple[str, bool, str | None, str | None]] = []

    def record(r: Request) -> None:
        gzip = "gzip" in (r.header("accept-encoding") or "")
        seen.append((r.q("Action") or "", gzip, r.header("x-acs-action"), r.form().get("Authorization")))

    double.faults.on_request = record
    adapter = make_adapter()
    listing = await adapter.list_instances()
    await adapter.pause(iid)
    assert [i.labels for i in listing] == [{"lease_id": "L1"}]
    reads = [s for s in seen if s[0] in ("ListSession", "GetLabel", "GetSession")]
    assert reads and all(not gzip and header == action for action, gzip, header, _ in reads)
    assert [gzip for action, gzip, _, _ in seen if action == "PauseSessionAsync"] == [True]
    assert all(key == f"Bearer {secret}" for *_, key in seen)
    assert adapter.request_count == len(seen)


async def test_a_quiet_relisting_hands_back_its_instances_without_looking_at_each(
    make_adapter: Any, double: AgentBayDouble
) -> None:
    ids = [double.add(labels={"lease_id": f"L{i}"}).instance_id for i in range(3)]
    adapter = make_adapter()
    first = await adapter.list_instances()
    looked: list[str] = []

    class Looking(ReusedInstances):  # the adapter's own, counting the sessions it is asked about
        __slots__ = ()

        def instance(self, key: Any, *rest: Any) -> Any:
            looked.append(key)
            return super().instance(key, *rest)

    adapter._reuse.__class__ = Looking
    second = await adapter.list_instances()
    assert looked == [] and all(a is b for a, b in zip(first, second, strict=True))
    double.set_state(ids[1], "paused")
    third = await adapter.list_instances()
    assert sorted(looked) == sorted(ids)  # a state moved: every session looked at, one rebuilt
    before = {i.instance_id: i for i in second}
    after = {i.instance_id: i for i in third}
    assert after[ids[1]].state is NormalState.PAUSED and after[ids[0]] is before[ids[0]]
