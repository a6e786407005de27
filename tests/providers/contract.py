"""The adapter contract: one test-suite every provider adapter must pass against its double.

Use it from a provider's test module::

    from tests.providers.contract import AdapterContract

    @pytest.fixture
    def double(secret):
        with E2BDouble(api_key=secret) as d:
            yield d

    @pytest.fixture
    async def make_adapter(double, secret):
        made = []
        def _make(**kw):
            kw.setdefault("api_key", secret)
            a = E2BAdapter("e2b", base_url=double.url, page_size=3, **kw)
            made.append(a)
            return a
        yield _make
        for a in made:
            await a.aclose()

    class TestE2BContract(AdapterContract):
        page_size = 3

Fixtures the module must supply: `double`, `make_adapter(**overrides)` (accepting at least
`timeout`, `retries`, `api_key`; built with the `secret` fixture as key). Defaults for `secret`,
`adapter`, `faults`, `seed`, `vanish`, `set_state` live in tests/providers/conftest.py; override
any of them with a fixture of the same name (class-level fixtures beat module-level ones).

`LifecycleContract` needs only list/get/pause/resume/destroy (usable against a real engine);
`FaultContract` needs a double with `Faults`; `AdapterContract` is both.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from opcockpit.domain.models import Instance, NormalState
from opcockpit.ports.provider import (
    ActionOutcome,
    ActionResult,
    AuthFailed,
    Capabilities,
    NotFound,
    ProtocolError,
    ProviderAdapter,
    ProviderError,
    RateLimited,
    Unavailable,
)
from tests.providers.steady50k_reuse import ReuseContract

Seed = Callable[..., str]

__all__ = ["AdapterContract", "FaultContract", "LifecycleContract", "error_texts", "wait_for_state"]


async def wait_for_state(
    adapter: Any, instance_id: str, wanted: set[NormalState], *, timeout_s: float = 5.0
) -> NormalState:
    """Poll get_instance until its state is in `wanted` (NotFound counts as GONE).

    Asynchronous providers (Daytona, AgentBay) converge after the call returns; this is a wait
    with a generous deadline, not a timing assertion.
    """
    deadline = time.monotonic() + timeout_s
    state: NormalState | None = None
    while True:
        try:
            state = (await adapter.get_instance(instance_id)).state
        except NotFound:
            state = NormalState.GONE
        if state in wanted:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"{instance_id} stayed {state}, wanted one of {sorted(wanted)}")
        await asyncio.sleep(0.05)


def error_texts(exc: BaseException) -> Iterator[str]:
    """str/repr/args of an exception and everything chained to it (as a traceback would show)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield from (str(a) for a in current.args)
        nxt = current.__cause__
        if nxt is None and not current.__suppress_context__:
            nxt = current.__context__
        current = nxt


async def _raised(awaitable: Awaitable[Any]) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await awaitable
    return info.value


class LifecycleContract:
    """List, get, pause, resume, destroy, and the idempotency users expect."""

    # Page size the module's make_adapter builds the adapter with; None = no pagination.
    page_size: int | None = 3
    # Extra requests a listing may make besides one per page (e.g. a version probe).
    list_overhead_requests: int = 1
    # Normalised state a paused instance shows (LEON's Daytona "pause" is a stop -> PAUSED too).
    paused_state: NormalState = NormalState.PAUSED
    settle_timeout_s: float = 5.0

    def _n_for_pages(self, pages: int) -> int:
        return self.page_size * pages + 1 if self.page_size else 5

    async def test_identity_and_capabilities(self, adapter: Any, secret: str | None) -> None:
        assert isinstance(adapter, ProviderAdapter)
        assert isinstance(adapter.name, str) and adapter.name
        assert isinstance(adapter.kind, str) and adapter.kind
        assert isinstance(adapter.capabilities, Capabilities)
        assert isinstance(adapter.request_count, int)
        if secret:
            assert secret not in repr(adapter)
            assert secret not in str(adapter)

    async def test_list_returns_every_instance_across_pages(self, adapter: Any, seed: Seed) -> None:
        n = self._n_for_pages(2)
        expected: dict[str, tuple[NormalState, str]] = {}
        for i in range(n):
            state = "running" if i % 2 == 0 else "paused"
            lease = f"lease-{i}-{uuid.uuid4().hex[:6]}"
            iid = seed(state, {"lease_id": lease, "owner": "contract"})
            want = NormalState.RUNNING if state == "running" else self.paused_state
            expected[iid] = (want, lease)

        listing = await adapter.list_instances()

        assert all(isinstance(i, Instance) for i in listing)
        by_id = {i.instance_id: i for i in listing}
        assert len(by_id) == len(listing), "an instance was listed twice (pagination overlap)"
        missing = set(expected) - set(by_id)
        assert not missing, f"listing lost {len(missing)} of {n} instances"
        for iid, (state, lease) in expected.items():
            inst = by_id[iid]
            assert inst.provider == adapter.name
            assert inst.state is state, (iid, inst.raw_state)
            assert inst.raw_state
            assert inst.labels.get("owner") == "contract"
            assert inst.claimed_lease_id == lease

    async def test_request_count_is_o_pages(self, adapter: Any, seed: Seed) -> None:
        for _ in range(self._n_for_pages(3)):
            seed("running", None)
        before = adapter.request_count
        listing = await adapter.list_instances()
        used = adapter.request_count - before
        pages = math.ceil(len(listing) / self.page_size) if self.page_size else 1
        assert 1 <= used <= pages + self.list_overhead_requests, (used, pages)

    async def test_get_instance_returns_fresh_state(
        self, adapter: Any, seed: Seed, set_state: Callable[[str, str], None]
    ) -> None:
        iid = seed("running", {"lease_id": "lease-get"})
        inst = await adapter.get_instance(iid)
        assert inst.instance_id == iid
        assert inst.state is NormalState.RUNNING
        assert inst.claimed_lease_id == "lease-get"
        set_state(iid, "paused")
        assert (await adapter.get_instance(iid)).state is self.paused_state

    async def test_get_unknown_raises_not_found(self, adapter: Any, seed: Seed, vanish: Any) -> None:
        with pytest.raises(NotFound):
            await adapter.get_instance(f"no-such-{uuid.uuid4().hex[:12]}")
        iid = seed("running", None)
        vanish(iid)
        with pytest.raises(NotFound):
            await adapter.get_instance(iid)

    async def test_pause_resume_destroy_and_repeats(self, adapter: Any, seed: Seed) -> None:
        iid = seed("running", None)
        caps: Capabilities = adapter.capabilities
        progressed = (ActionOutcome.DONE, ActionOutcome.ACCEPTED)
        if caps.can_pause:
            first = await adapter.pause(iid)
            assert isinstance(first, ActionResult)
            assert (first.instance_id, first.action, first.outcome in progressed) == (iid, "pause", True)
            await wait_for_state(adapter, iid, {self.paused_state}, timeout_s=self.settle_timeout_s)
            again = await adapter.pause(iid)
            assert again.outcome is ActionOutcome.ALREADY
        if caps.can_resume and caps.can_pause:
            first = await adapter.resume(iid)
            assert (first.action, first.outcome in progressed) == ("resume", True)
            await wait_for_state(adapter, iid, {NormalState.RUNNING}, timeout_s=self.settle_timeout_s)
            again = await adapter.resume(iid)
            assert again.outcome is ActionOutcome.ALREADY
        if caps.can_destroy:
            first = await adapter.destroy(iid)
            assert (first.action, first.outcome in progressed) == ("destroy", True)
            await wait_for_state(adapter, iid, {NormalState.GONE}, timeout_s=self.settle_timeout_s)
            again = await adapter.destroy(iid)
            assert again.outcome is ActionOutcome.ALREADY

    async def test_destroy_of_vanished_instance_is_already(
        self, adapter: Any, seed: Seed, vanish: Any
    ) -> None:
        iid = seed("running", None)
        vanish(iid)
        result = await adapter.destroy(iid)
        assert result.outcome is ActionOutcome.ALREADY

    async def test_pause_of_unknown_raises_not_found(self, adapter: Any) -> None:
        if not adapter.capabilities.can_pause:
            pytest.skip("provider cannot pause")
        with pytest.raises(NotFound):
            await adapter.pause(f"no-such-{uuid.uuid4().hex[:12]}")


class FaultContract:
    """Faults injected into the double surface as the right typed errors, never as short lists."""

    page_size: int | None = 3

    async def test_persistent_5xx_is_unavailable(self, make_adapter: Any, faults: Any, seed: Seed) -> None:
        seed("running", None)
        adapter = make_adapter(retries=1)
        for status in (503, 500):
            faults.error_status = status
            err = await _raised(adapter.list_instances())
            assert isinstance(err, Unavailable)
            assert str(status) in str(err)
            assert adapter.name in str(err)

    async def test_transient_5xx_is_retried(self, make_adapter: Any, faults: Any, seed: Seed) -> None:
        iid = seed("running", None)
        adapter = make_adapter(retries=2)
        faults.error_status, faults.error_times = 503, 1
        listing = await adapter.list_instances()
        assert iid in {i.instance_id for i in listing}

    async def test_429_with_retry_after_is_retried_then_succeeds(
        self, make_adapter: Any, faults: Any, seed: Seed
    ) -> None:
        iid = seed("running", None)
        adapter = make_adapter(retries=3)
        faults.rate_limit_retry_after, faults.rate_limit_times = 0.05, 1
        before = adapter.request_count
        listing = await adapter.list_instances()
        assert iid in {i.instance_id for i in listing}
        assert adapter.request_count - before >= 2  # the 429 and the retry

    async def test_persistent_429_is_rate_limited(self, make_adapter: Any, faults: Any) -> None:
        adapter = make_adapter(retries=2)
        faults.rate_limit_retry_after = 0.05
        err = await _raised(adapter.list_instances())
        assert isinstance(err, RateLimited)
        assert err.retry_after == pytest.approx(0.05)

    async def test_malformed_json_is_protocol_error(self, adapter: Any, faults: Any, seed: Seed) -> None:
        seed("running", None)
        faults.malformed_json = True
        err = await _raised(adapter.list_instances())
        assert isinstance(err, ProtocolError)

    async def test_failing_page_fails_the_whole_listing(self, adapter: Any, faults: Any, seed: Seed) -> None:
        if not self.page_size:
            pytest.skip("provider does not paginate")
        for _ in range(self.page_size * 2 + 1):
            seed("running", None)
        faults.fail_page = 2
        before = adapter.request_count
        await _raised(adapter.list_instances())  # any typed error; never a short list
        assert adapter.request_count - before >= 2, "page 2 was never requested"
        faults.clear()
        assert len(await adapter.list_instances()) >= self.page_size * 2 + 1

    async def test_auth_failure_is_auth_failed(self, adapter: Any, faults: Any) -> None:
        faults.auth_fail = True
        err = await _raised(adapter.list_instances())
        assert isinstance(err, AuthFailed)

    async def test_wrong_key_is_auth_failed(self, make_adapter: Any, secret: str | None) -> None:
        if secret is None:
            pytest.skip("keyless provider")
        adapter = make_adapter(api_key="wrong-" + uuid.uuid4().hex)
        err = await _raised(adapter.list_instances())
        assert isinstance(err, AuthFailed)

    async def test_slow_listing_beyond_timeout_is_unavailable(self, make_adapter: Any, faults: Any) -> None:
        adapter = make_adapter(timeout=0.2, retries=0)
        faults.list_delay_s = 0.8
        err = await _raised(adapter.list_instances())
        assert isinstance(err, Unavailable)

    async def test_secret_never_in_any_error(
        self, make_adapter: Any, faults: Any, seed: Seed, secret: str | None
    ) -> None:
        if secret is None:
            pytest.skip("keyless provider")
        adapter = make_adapter(timeout=0.2, retries=0)
        iid = seed("running", None)
        unknown = f"no-such-{uuid.uuid4().hex[:8]}"
        errors: list[ProviderError] = []
        scenarios: list[tuple[str, Any, Callable[[], Awaitable[Any]]]] = [
            ("auth_fail", True, adapter.list_instances),
            ("error_status", 503, adapter.list_instances),
            ("rate_limit_retry_after", 0.05, adapter.list_instances),
            ("malformed_json", True, adapter.list_instances),
            ("list_delay_s", 0.6, adapter.list_instances),
            ("auth_fail", True, lambda: adapter.get_instance(iid)),
            ("error_status", 500, lambda: adapter.pause(iid)),
            ("error_status", 503, lambda: adapter.destroy(iid)),
        ]
        for attr, value, call in scenarios:
            faults.clear()
            setattr(faults, attr, value)
            errors.append(await _raised(call()))
        faults.clear()
        errors.append(await _raised(adapter.get_instance(unknown)))
        if adapter.capabilities.can_pause:
            errors.append(await _raised(adapter.pause(unknown)))
        for err in errors:
            for text in error_texts(err):
                assert secret not in text, f"secret leaked in {type(err).__name__}"
        assert secret not in repr(adapter)


class AdapterContract(LifecycleContract, FaultContract, ReuseContract):
    """Everything: lifecycle + faults. Subclass as `class TestXContract(AdapterContract)`."""

    page_size: int | None = 3
