"""Fixtures for the cockpit app tests.

Two data paths:
- `SequenceSource`: hands out prepared GroundTruth objects (deterministic; snapshots, refresh
  mechanics). It stands in for the collector only at the app's `refresh()` boundary.
- the real pipeline: LEON sandbox.db/events.db files (tests/fixtures/leon_db.py worked example, or
  the demo fleet with its provider doubles) -> FleetCollector -> reconcile -> app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from opcockpit.domain.models import GroundTruth
from opcockpit.settings.config import CockpitConfig, SourcesConfig
from opcockpit.tui.app import CockpitApp
from opcockpit.tui.data import DbDetails
from opcockpit.wiring import build_cockpit, leon_access
from tests.fixtures.leon_db import WorkedExample, write_worked_example


class SequenceSource:
    """Returns the given snapshots in order (the last one repeats); `gate` can hold a refresh."""

    def __init__(self, snapshots: list[GroundTruth]) -> None:
        self.snapshots = snapshots
        self.calls = 0
        self.closed = False
        self.gate: asyncio.Event | None = None
        self.fail_next: Exception | None = None

    async def refresh(self) -> GroundTruth:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        return self.snapshots[min(self.calls - 1, len(self.snapshots) - 1)]

    async def aclose(self) -> None:
        self.closed = True


async def wait_until(pilot: object, cond: Callable[[], bool], tries: int = 500) -> None:
    for _ in range(tries):
        if cond():
            return
        await pilot.pause(0.02)  # type: ignore[attr-defined]
    raise AssertionError("condition not reached")


def record_calls(obj: object, name: str, note: Callable[..., object]) -> None:
    """Wrap `obj.name` so each call first hands its arguments to `note`, then runs as before."""
    real = getattr(obj, name)

    def recorded(*args: object, **kwargs: object) -> object:
        note(*args, **kwargs)
        return real(*args, **kwargs)

    setattr(obj, name, recorded)


@pytest.fixture
def worked_example(tmp_path: Path) -> WorkedExample:
    return write_worked_example(tmp_path / "leon")


def worked_example_app(we: WorkedExample, **kwargs: object) -> CockpitApp:
    """The app on the real pipeline over the worked-example DBs, with a fixed clock."""
    cfg = CockpitConfig(sources=SourcesConfig(sandbox_db=we.sandbox_db, events_db=we.events_db))

    def now() -> datetime:
        return we.now

    return CockpitApp(
        build_cockpit(cfg, clock=now).collector,
        details=DbDetails(str(we.sandbox_db), str(we.events_db), leon=leon_access()),
        clock=now,
        auto_refresh=False,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def demo_env() -> Iterator[object]:
    from opcockpit.demo.runtime import demo_environment

    with demo_environment(seed=7, leases=40, drift=False) as env:
        yield env
