"""EventWatcher: provider event streams -> one coalesced "something changed" callback.

The cockpit polls on a timer; providers that push lifecycle events (Docker /events stream, E2B's
polled event feed) let it refresh at once instead of up to `refresh_s` later (lazydocker's model).
The watcher runs `adapter.events()` for every adapter whose `capabilities.has_events`, and turns a
burst of events (a bulk pause emits one event per container) into one callback after a quiet
`coalesce_s` window, or at the latest `max_delay_s` after the first event of a burst, so a steady
trickle cannot postpone the refresh forever.

A stream that ends or raises (AuthFailed, ProtocolError, a dropped connection the adapter gave up
on) is restarted with exponential backoff; the error is kept per provider for the UI. After a
reconnect the callback fires once, because events may have been missed while the stream was down.

`on_instances({provider: instance ids})`, when given, runs first with the instances the burst named
(wire it to `FleetCollector.look`: one GET each instead of a full listing), so the refresh that
`on_change` asks for already shows them.

No Textual: the TUI wires `on_change` to `App.request_refresh`; anything else can use it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opcockpit.services.collect import one_line_error

if TYPE_CHECKING:
    from opcockpit.ports.provider import ProviderAdapter, ProviderEvent

__all__ = ["EventWatcher", "StreamState"]


@dataclass(slots=True)
class StreamState:
    """What one provider's event stream is doing (for a header or diagnostics)."""

    provider: str
    events: int = 0
    restarts: int = 0
    error: str | None = None  # why the stream last stopped (one line, no secrets)
    connected: bool = False


def _one_line(exc: BaseException) -> str:
    return one_line_error(exc)


class EventWatcher:
    """Watch event streams; call `on_change(providers)` once per burst of events."""

    def __init__(
        self,
        on_change: Callable[[frozenset[str]], object],
        *,
        coalesce_s: float = 0.2,
        max_delay_s: float = 1.0,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        on_instances: Callable[[str, frozenset[str]], object] | None = None,
    ) -> None:
        self.on_change = on_change
        self.on_instances = on_instances
        self._ids: dict[str, set[str]] = {}
        self.coalesce_s = coalesce_s
        self.max_delay_s = max(max_delay_s, coalesce_s)
        self.backoff_s = backoff_s
        self.streams: dict[str, StreamState] = {}
        self.callbacks = 0  # how many times on_change ran (tests, diagnostics)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._adapters: dict[str, ProviderAdapter] = {}
        self._dirty: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def watching(self) -> list[str]:
        return sorted(name for name, t in self._tasks.items() if not t.done())

    def sync(self, adapters: Mapping[str, ProviderAdapter] | Iterable[ProviderAdapter]) -> list[str]:
        """Start watching every adapter with events not watched yet; returns the names started.

        Idempotent: call it after every refresh (the collector builds adapters lazily). An adapter
        object replaced under the same name is watched afresh.
        """
        if self._closed:
            return []
        items = adapters.items() if isinstance(adapters, Mapping) else ((a.name, a) for a in adapters)
        started: list[str] = []
        for name, adapter in items:
            caps = getattr(adapter, "capabilities", None)
            if caps is None or not getattr(caps, "has_events", False):
                continue
            if self._adapters.get(name) is adapter and name in self._tasks:
                continue
            old = self._tasks.pop(name, None)
            if old is not None:
                old.cancel()
            self._adapters[name] = adapter
            self.streams.setdefault(name, StreamState(name))
            self._tasks[name] = asyncio.get_running_loop().create_task(
                self._watch(name, adapter), name=f"opcockpit-events-{name}"
            )
            started.append(name)
        if started and self._flusher is None:
            self._wake = asyncio.Event()
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        return started

    async def aclose(self) -> None:
        """Cancel every stream and the flusher; waits for them to end. Never raises."""
        self._closed = True
        tasks = list(self._tasks.values()) + ([self._flusher] if self._flusher else [])
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks.clear()
        self._flusher = None

    # ------------------------------------------------------------------ streams

    async def _watch(self, name: str, adapter: ProviderAdapter) -> None:
        state = self.streams[name]
        low, high = self.backoff_s
        delay = low
        first = True
        while True:
            try:
                state.connected = True
                if not first:
                    self._mark(name)  # events may have been missed while we were away
                first = False
                stream = adapter.events()
                try:
                    async for event in stream:
                        self._seen(name, event)
                        delay = low
                finally:
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        with contextlib.suppress(BaseException):
                            await aclose()
                state.error = "event stream ended"
            except asyncio.CancelledError:
                state.connected = False
                raise
            except NotImplementedError:
                state.connected = False
                state.error = "provider has no event stream"
                return
            except Exception as exc:
                state.error = _one_line(exc)
            state.connected = False
            state.restarts += 1
            await asyncio.sleep(delay + random.uniform(0, delay / 4))
            delay = min(high, delay * 2)

    def _seen(self, name: str, event: ProviderEvent) -> None:
        state = self.streams[name]
        state.events += 1
        state.error = None
        if event.instance_id:
            self._ids.setdefault(name, set()).add(event.instance_id)
        self._mark(name)

    def _mark(self, name: str) -> None:
        self._dirty.add(name)
        if self._wake is not None:
            self._wake.set()

    async def _flush_loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Quiet window: wait until no event for coalesce_s, but never past max_delay_s.
            deadline = loop.time() + self.max_delay_s
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(self._wake.wait(), min(self.coalesce_s, remaining))
                except TimeoutError:
                    break
                self._wake.clear()
            dirty, self._dirty = frozenset(self._dirty), set()
            ids, self._ids = self._ids, {}
            if not dirty:
                continue
            self.callbacks += 1
            if self.on_instances is not None:
                for name, found in ids.items():
                    try:  # a failed look only costs the shortcut: the refresh still runs
                        result = self.on_instances(name, frozenset(found))
                        if asyncio.iscoroutine(result):
                            await result
                    except Exception:
                        pass
            try:
                result = self.on_change(dirty)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # a broken callback must not stop the watcher
                pass
