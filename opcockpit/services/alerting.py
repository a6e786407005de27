"""Reads the alert rules need beyond the GroundTruth: run health (events.db) and the recent
lease_events / provider_events (sandbox.db). Each read failure degrades to "unknown" (None or
RunHealth.error) so the engine keeps the dependent alerts as they are instead of resolving them.
A live round whose inputs did not change and that has nothing due is not run
(services/alert_quiet.py): it reads neither sandbox.db's events nor the alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TypeVar

from opcockpit.domain.alerts import AlertsConfig
from opcockpit.domain.models import GroundTruth, LeaseEventRecord, ProviderEventRecord
from opcockpit.domain.runs import RunHealth
from opcockpit.ports.alert_records import AlertSnapshot
from opcockpit.ports.errors import SourceError
from opcockpit.ports.leon import LeonAccess
from opcockpit.services.alert_engine import AlertEngine
from opcockpit.services.alert_quiet import RoundInputs
from opcockpit.services.runs import RunReads, load_run_health, signature

__all__ = ["AlertSources", "evaluate_refresh", "gather_alert_sources"]

T = TypeVar("T")

_MAX_EVENTS = 5000  # a burst bigger than this is a burst either way


@dataclass(frozen=True, slots=True)
class AlertSources:
    run_health: RunHealth
    lease_events: list[LeaseEventRecord] | None
    provider_events: list[ProviderEventRecord] | None
    error: str | None = None  # why the sandbox.db event reads failed


async def gather_alert_sources(
    ground_truth: GroundTruth,
    cfg: AlertsConfig,
    *,
    sandbox_db: str | Path | None,
    events_db: str | Path | None,
    now: datetime,
    leon: LeonAccess,
    local_tz: tzinfo | None = None,
    reads: RunReads | None = None,
    run_health: RunHealth | None = None,
) -> AlertSources:
    """`run_health`: already loaded for this round (`_run_health`)."""
    rh = run_health or await _run_health(
        ground_truth, cfg, events_db=events_db, now=now, leon=leon, reads=reads
    )
    lease_events: list[LeaseEventRecord] | None = None
    provider_events: list[ProviderEventRecord] | None = None
    error = None
    if sandbox_db is not None:
        since = now - timedelta(seconds=cfg.intent_window_s)
        try:
            async with leon.sandbox_reader(str(sandbox_db), local_tz=local_tz) as reader:
                lease_events = await reader.lease_events(since=since, limit=_MAX_EVENTS)
                provider_events = await reader.provider_events(since=since, limit=_MAX_EVENTS)
        except SourceError as exc:
            error = str(exc)
            lease_events = provider_events = None
    return AlertSources(rh, lease_events, provider_events, error)


async def _run_health(
    ground_truth: GroundTruth,
    cfg: AlertsConfig,
    *,
    events_db: str | Path | None,
    now: datetime,
    leon: LeonAccess,
    reads: RunReads | None,
) -> RunHealth:
    return await load_run_health(
        events_db, now, events_reader=leon.events_reader, window_s=cfg.window_s,
        stuck_after_s=cfg.stuck_after_s, ground_truth=ground_truth, reads=reads,
    )  # fmt: skip


async def evaluate_refresh(
    engine: AlertEngine,
    ground_truth: GroundTruth,
    *,
    sandbox_db: str | Path | None,
    events_db: str | Path | None,
    now: datetime | None = None,
    local_tz: tzinfo | None = None,
    leon: LeonAccess | None = None,
) -> tuple[AlertSnapshot, RunHealth]:
    """One alert round for a live surface (TUI): gather run health and recent events, then run
    `engine.evaluate` (sqlite + notifications, which may sleep on retries) in a worker thread."""
    now = now or ground_truth.generated_at
    leon = leon or engine.leon
    if leon is None:
        raise RuntimeError(
            "evaluate_refresh needs LEON readers: get the engine from wiring (Cockpit.alert_engine)"
        )
    reads = engine.run_reads
    hits = reads.health_hits
    rh = await _run_health(ground_truth, engine.config, events_db=events_db, now=now, leon=leon, reads=reads)
    # The run health carried from the last read: events.db unchanged, no run crossed a threshold
    # (without events.db it is "unavailable" every round alike).
    carried = reads.health_hits > hits or events_db is None
    sandbox_sig = signature(str(sandbox_db)) if sandbox_db is not None else None
    inputs = RoundInputs.of(ground_truth, sandbox_sig, carried)
    if engine.last is not None and engine.quiet.quiet(inputs, engine.config, now):
        # Nothing to judge (the config is checked again in the thread, after its reload).
        snap = await _shielded(engine, asyncio.to_thread(engine.quiet_round, inputs, now))
        if snap is not None:
            return snap, rh
    src = await gather_alert_sources(
        ground_truth, engine.config, sandbox_db=sandbox_db, events_db=events_db, now=now, leon=leon,
        local_tz=local_tz, reads=reads, run_health=rh,
    )  # fmt: skip
    snap = await _shielded(
        engine,
        asyncio.to_thread(
            engine.evaluate, ground_truth, rh, src.lease_events, src.provider_events, now=now, inputs=inputs
        ),
    )
    return snap, rh


async def _shielded(engine: AlertEngine, step: Awaitable[T]) -> T:
    """`step` (the engine's work in a thread) to its end, also when the caller is cancelled."""
    work = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        # Ctrl-C (asyncio.run cancels us) or the TUI quitting: a thread cannot be cancelled, so end
        # its delivery round now, and let it finish before our caller closes the ledger under it
        # (closing a sqlite connection another thread is using crashes the interpreter).
        if engine.notifier is not None:
            engine.notifier.cancel()
        with contextlib.suppress(BaseException):
            await work
        raise
