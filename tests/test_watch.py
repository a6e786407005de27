"""EventWatcher against the real Docker and E2B doubles (HTTP servers on a unix socket / 127.0.0.1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from opcockpit.adapters.providers.docker import DockerAdapter
from opcockpit.adapters.providers.e2b import E2BAdapter
from opcockpit.doubles.docker import DockerDouble
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.ports.provider import Capabilities, ProviderEvent, Unavailable
from opcockpit.services.watch import EventWatcher


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[frozenset[str]] = []

    def __call__(self, providers: frozenset[str]) -> None:
        self.calls.append(providers)


async def test_docker_stream_burst_is_coalesced_into_one_callback(tmp_path: Path) -> None:
    with DockerDouble(unix_path=str(tmp_path / "d.sock")) as double:
        ids = [double.add(state="running").instance_id for _ in range(5)]
        adapter = DockerAdapter("docker", host=f"unix://{tmp_path / 'd.sock'}", retries=0)
        rec = Recorder()
        watcher = EventWatcher(rec, coalesce_s=0.3, max_delay_s=5.0)
        try:
            assert watcher.sync({"docker": adapter}) == ["docker"]
            assert watcher.sync({"docker": adapter}) == []  # idempotent
            await until(lambda: watcher.streams["docker"].connected)
            await asyncio.sleep(0.3)  # the stream request is on the wire
            rec.calls.clear()
            before = watcher.streams["docker"].events
            for iid in ids:  # a bulk pause: five events in a burst
                double.set_state(iid, "paused")
            await until(lambda: watcher.streams["docker"].events >= before + 5)
            await until(lambda: len(rec.calls) >= 1)
            await asyncio.sleep(0.5)
            assert rec.calls == [frozenset({"docker"})]
        finally:
            await watcher.aclose()
            await adapter.aclose()
        assert watcher.watching == []


async def test_e2b_polled_events_trigger_the_callback() -> None:
    with E2BDouble(api_key="k-test-000000000000") as double:
        iid = double.add(state="running").instance_id
        adapter = E2BAdapter(
            "e2b", base_url=double.url, api_key="k-test-000000000000", events_poll_s=0.1, retries=0
        )
        rec = Recorder()
        watcher = EventWatcher(rec, coalesce_s=0.05)
        try:
            watcher.sync([adapter])
            await asyncio.sleep(0.4)  # first poll skips history
            rec.calls.clear()
            double.set_state(iid, "paused")
            await until(lambda: bool(rec.calls))
            assert rec.calls[0] == frozenset({"e2b"})
            assert watcher.streams["e2b"].events >= 1
        finally:
            await watcher.aclose()
            await adapter.aclose()


class FlakyAdapter:
    """A stream that breaks after one event, twice, then works: the watcher must come back."""

    name = "flaky"
    kind = "docker"
    capabilities = Capabilities(has_events=True)

    def __init__(self) -> None:
        self.opened = 0

    async def events(self) -> AsyncIterator[ProviderEvent]:
        self.opened += 1
        yield ProviderEvent("flaky", "i1", "pause", None)
        if self.opened <= 2:
            raise Unavailable("events stream broke (ReadError)", provider="flaky")
        await asyncio.Event().wait()


async def test_broken_stream_reconnects_with_backoff_and_refreshes_after_reconnect() -> None:
    rec = Recorder()
    adapter = FlakyAdapter()
    watcher = EventWatcher(rec, coalesce_s=0.01, backoff_s=(0.02, 0.05))
    try:
        watcher.sync({"flaky": adapter})  # type: ignore[dict-item]
        await until(lambda: adapter.opened >= 3 and watcher.streams["flaky"].connected)
        state = watcher.streams["flaky"]
        assert state.restarts == 2 and state.events >= 3
        await until(lambda: bool(rec.calls))
        assert watcher.watching == ["flaky"]
    finally:
        await watcher.aclose()


async def test_adapters_without_events_are_not_watched() -> None:
    class NoEvents:
        name = "daytona"
        capabilities = Capabilities(has_events=False)

    watcher = EventWatcher(Recorder())
    assert watcher.sync({"daytona": NoEvents()}) == []  # type: ignore[dict-item]
    assert watcher.watching == []
    await watcher.aclose()


async def test_event_names_the_instance_to_look_at_before_the_refresh(tmp_path: Path) -> None:
    """Issue 10: the watcher hands the instances a burst named to `on_instances` (the collector's
    targeted GET) before it asks for the refresh."""
    with DockerDouble(unix_path=str(tmp_path / "d.sock")) as double:
        iid = double.add(state="running").instance_id
        adapter = DockerAdapter("docker", host=f"unix://{tmp_path / 'd.sock'}", retries=0)
        order: list[object] = []

        async def look(provider: str, ids: frozenset[str]) -> None:
            order.append((provider, ids))

        watcher = EventWatcher(lambda p: order.append(p), coalesce_s=0.2, on_instances=look)
        try:
            watcher.sync({"docker": adapter})
            await until(lambda: watcher.streams["docker"].connected)
            await asyncio.sleep(0.3)
            order.clear()
            double.set_state(iid, "paused")
            await until(lambda: len(order) >= 2)
            (provider, ids), refresh = order[0], order[1]
            assert provider == "docker" and refresh == frozenset({"docker"})
            # Docker events carry the container id; the adapter maps it to LEON's instance id or
            # passes the id the instance answers to (an alias of the listed instance)
            assert len(ids) == 1
            named = next(iter(ids))
            inst = await adapter.get_instance(named)
            assert inst.instance_id == iid or named in inst.aliases
        finally:
            await watcher.aclose()
            await adapter.aclose()
