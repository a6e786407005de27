"""Docker-specific scenarios shared by the double suites (both flavors) and the real-podman suite.

Not a conftest pytest loads by itself (the name only says what it is): test modules import
`DockerScenarios` and subclass it as `TestX(DockerScenarios)`, supplying a `backend` fixture
(see `Backend`) and the `make_adapter(**overrides)` fixture the contract suite uses too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from opcockpit.adapters.providers.docker import DockerAdapter
from opcockpit.domain.models import NormalState
from opcockpit.ports.provider import ActionOutcome, Conflict, NotFound, ProviderEvent

HEX64 = re.compile(r"^[0-9a-f]{64}$")
EVENT_DEADLINE_S = 15.0  # generous: a deadline for a hang, not a speed assertion


@dataclass(frozen=True)
class Made:
    instance_id: str  # LEON's id: leon.session_id = container name
    docker_id: str  # 64-hex engine Id
    name: str


class Backend(Protocol):
    flavor: str  # docker | podman (what the engine behaves like)
    host: str

    def make(
        self,
        state: str = "running",
        *,
        lease_id: str | None = None,
        labels: dict[str, str] | None = None,
        leon: bool = True,
    ) -> Made: ...

    def set_state(self, instance_id: str, state: str) -> None: ...

    def vanish(self, instance_id: str) -> None: ...


class EventTap:
    """Consumes `adapter.events()` in one background task (the generator is only ever driven by
    that task) and lets the test wait for a condition on what arrived."""

    def __init__(self, adapter: DockerAdapter) -> None:
        self.stream = adapter.events()
        self.got: list[ProviderEvent] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for event in self.stream:
            self.got.append(event)
            self._changed.set()

    async def start(self, probe: Callable[[int], Any]) -> None:
        """Connect, and make sure the stream is live: call `probe(n)` (which must cause an event)
        until an event arrives, so later actions cannot race the connection."""
        self._task = asyncio.create_task(self._run())
        ticks = itertools.count(1)
        await self.wait(lambda evs: bool(evs), on_tick=lambda: probe(next(ticks)), what="probe event")

    async def wait(
        self,
        pred: Callable[[list[ProviderEvent]], bool],
        *,
        on_tick: Callable[[], Any] | None = None,
        what: str = "events",
    ) -> list[ProviderEvent]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + EVENT_DEADLINE_S
        while not pred(self.got):
            if self._task is not None and self._task.done():
                self._task.result()  # surface the stream's exception
                pytest.fail("event stream ended")
            if loop.time() > deadline:
                seen = [(e.instance_id, e.action) for e in self.got]
                pytest.fail(f"{what} not seen within {EVENT_DEADLINE_S}s; got {seen}")
            if on_tick is not None:
                on_tick()
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.3)
        return self.got

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.stream.aclose()  # type: ignore[attr-defined]


class DockerScenarios:
    """Docker semantics every backend must show through the adapter."""

    async def test_leon_identity_labels_and_aliases(self, backend: Backend, make_adapter: Any) -> None:
        made = backend.make("running", lease_id="lease-abc", labels={"owner": "t"})
        adapter = make_adapter()
        inst = {i.instance_id: i for i in await adapter.list_instances()}[made.instance_id]
        assert inst.instance_id == made.instance_id == inst.labels["leon.session_id"]
        assert re.fullmatch(r"leon-[0-9a-f]{12}", inst.instance_id)
        assert not HEX64.match(inst.instance_id)
        assert inst.name == made.name
        assert made.docker_id in inst.aliases and made.docker_id[:12] in inst.aliases
        assert inst.claimed_lease_id == "lease-abc"
        assert inst.labels["leon.context_id"] == "leon-lease-abc"
        assert inst.raw_state == "running" and inst.state is NormalState.RUNNING
        assert inst.created_at is not None

    async def test_no_64hex_instance_id_anywhere_when_labelled(
        self, backend: Backend, make_adapter: Any
    ) -> None:
        for state in ("running", "paused", "stopped"):
            backend.make(state)
        listing = await make_adapter().list_instances()
        assert listing
        for inst in listing:
            assert inst.labels.get("leon.session_id") == inst.instance_id
            assert not HEX64.match(inst.instance_id)

    async def test_get_instance_by_any_alias(self, backend: Backend, make_adapter: Any) -> None:
        made = backend.make("paused", lease_id="lease-alias")
        adapter = make_adapter()
        for ref in (made.instance_id, made.docker_id, made.docker_id[:12]):
            inst = await adapter.get_instance(ref)
            assert inst.instance_id == made.instance_id
            assert inst.state is NormalState.PAUSED and inst.raw_state == "paused"
            assert inst.claimed_lease_id == "lease-alias"
            assert inst.started_at is not None

    async def test_default_filter_lists_leon_containers_only(
        self, backend: Backend, make_adapter: Any
    ) -> None:
        leon = backend.make("running")
        foreign = backend.make("running", leon=False, labels={"app": "other"})
        ids = {i.instance_id for i in await make_adapter().list_instances()}
        assert leon.instance_id in ids
        assert foreign.instance_id not in ids and foreign.name not in ids

    async def test_configured_label_filter_all_must_match(self, backend: Backend, make_adapter: Any) -> None:
        both = backend.make("running", labels={"team": "a", "tier": "x"})
        one = backend.make("paused", labels={"team": "a", "tier": "y"})
        backend.make("running", labels={"team": "b"})
        adapter = make_adapter(label_filter={"team": "a", "tier": "x"})
        assert {i.instance_id for i in await adapter.list_instances()} == {both.instance_id}
        adapter = make_adapter(label_filter={"team": "a"})
        assert {i.instance_id for i in await adapter.list_instances()} == {both.instance_id, one.instance_id}

    async def test_list_includes_paused_and_exited(self, backend: Backend, make_adapter: Any) -> None:
        # podman hides paused containers without all=1; exited ones are orphans too.
        made = {s: backend.make(s) for s in ("running", "paused", "stopped")}
        by_id = {i.instance_id: i for i in await make_adapter().list_instances()}
        assert by_id[made["running"].instance_id].state is NormalState.RUNNING
        assert by_id[made["paused"].instance_id].state is NormalState.PAUSED
        stopped = by_id[made["stopped"].instance_id]
        assert stopped.state is NormalState.STOPPED and stopped.raw_state in ("exited", "stopped")

    async def test_pause_resume_destroy_repeats_report_already(
        self, backend: Backend, make_adapter: Any
    ) -> None:
        made = backend.make("running")
        adapter = make_adapter()
        iid = made.instance_id
        steps = [
            (adapter.pause, ActionOutcome.DONE, NormalState.PAUSED),
            (adapter.pause, ActionOutcome.ALREADY, NormalState.PAUSED),
            (adapter.pause, ActionOutcome.ALREADY, NormalState.PAUSED),
            (adapter.resume, ActionOutcome.DONE, NormalState.RUNNING),
            (adapter.resume, ActionOutcome.ALREADY, NormalState.RUNNING),
            (adapter.destroy, ActionOutcome.DONE, NormalState.GONE),
            (adapter.destroy, ActionOutcome.ALREADY, NormalState.GONE),
        ]
        for call, outcome, state in steps:
            result = await call(iid)
            assert (result.outcome, result.state) == (outcome, state), call.__name__
            if state is not NormalState.GONE:
                assert (await adapter.get_instance(iid)).state is state
        with pytest.raises(NotFound):
            await adapter.get_instance(iid)

    async def test_actions_by_engine_id_work_too(self, backend: Backend, make_adapter: Any) -> None:
        made = backend.make("running")
        adapter = make_adapter()
        assert (await adapter.pause(made.docker_id[:12])).outcome is ActionOutcome.DONE
        assert (await adapter.resume(made.docker_id)).outcome is ActionOutcome.DONE
        assert (await adapter.destroy(made.docker_id)).outcome is ActionOutcome.DONE
        assert (await adapter.destroy(made.instance_id)).outcome is ActionOutcome.ALREADY

    async def test_pause_or_resume_of_exited_is_conflict(self, backend: Backend, make_adapter: Any) -> None:
        made = backend.make("stopped")
        adapter = make_adapter()
        with pytest.raises(Conflict) as info:
            await adapter.pause(made.instance_id)
        assert adapter.name in str(info.value)
        with pytest.raises(Conflict):
            await adapter.resume(made.instance_id)
        assert (await adapter.destroy(made.instance_id)).outcome is ActionOutcome.DONE

    async def test_actions_on_missing_container(self, backend: Backend, make_adapter: Any) -> None:
        made = backend.make("running")
        backend.vanish(made.instance_id)
        adapter = make_adapter()
        with pytest.raises(NotFound):
            await adapter.pause(made.instance_id)
        with pytest.raises(NotFound):
            await adapter.resume(made.instance_id)
        assert (await adapter.destroy(made.instance_id)).outcome is ActionOutcome.ALREADY

    async def test_events_pause_unpause_removal(self, backend: Backend, make_adapter: Any) -> None:
        made = backend.make("running", lease_id="lease-ev")
        probe = backend.make("running")
        adapter = make_adapter()
        tap = EventTap(adapter)
        try:
            await tap.start(lambda n: backend.set_state(probe.instance_id, "paused" if n % 2 else "running"))
            await adapter.pause(made.instance_id)
            await adapter.resume(made.instance_id)
            await adapter.destroy(made.instance_id)
            removal = "remove" if backend.flavor == "podman" else "destroy"
            await tap.wait(
                lambda evs: any(e.instance_id == made.instance_id and e.action == removal for e in evs)
            )
        finally:
            await tap.close()
        events = [e for e in tap.got if e.instance_id == made.instance_id]
        actions = [e.action for e in events]
        assert actions.index("pause") < actions.index("unpause") < actions.index(removal), actions
        gone = events[actions.index(removal)]
        assert gone.attributes["state"] == NormalState.GONE.value
        assert gone.attributes["id"] == made.docker_id
        assert gone.attributes["claimed_lease_id"] == "lease-ev"
        assert gone.provider == adapter.name and gone.at is not None
        assert events[actions.index("pause")].attributes["state"] == NormalState.PAUSED.value

    async def test_events_respect_label_filter(self, backend: Backend, make_adapter: Any) -> None:
        mine = backend.make("running", labels={"team": "ev-a"})
        other = backend.make("running", labels={"team": "ev-b"})
        foreign = backend.make("running", leon=False, labels={"team": "ev-a"})
        # k=v filter (sent to the engine) plus the key-only LEON label (applied client-side,
        # because podman's /events matches nothing for a key-only label).
        adapter = make_adapter(label_filter={"team": "ev-a", "leon.session_id": ""})
        tap = EventTap(adapter)
        try:
            await tap.start(lambda n: backend.set_state(mine.instance_id, "paused" if n % 2 else "running"))
            backend.set_state(other.instance_id, "paused")
            backend.set_state(foreign.instance_id, "paused")
            backend.set_state(mine.instance_id, "stopped")
            await tap.wait(
                lambda evs: any(e.instance_id == mine.instance_id and e.action == "die" for e in evs)
            )
        finally:
            await tap.close()
        assert {e.instance_id for e in tap.got} == {mine.instance_id}
