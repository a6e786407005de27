"""Reads the alert rules need beyond the GroundTruth: run health (events.db) and the recent
lease_events / provider_events (sandbox.db). Each read failure degrades to "unknown" (None or
RunHealth.error) so the engine keeps the dependent alerts as they are instead of resolving them.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from opcockpit.domain.alerts import AlertsConfig
from opcockpit.domain.models import GroundTruth, LeaseEventRecord, ProviderEventRecord
from opcockpit.domain.runs import RunHealth
from opcockpit.ports.alert_records import AlertSnapshot
from opcockpit.ports.errors import SourceError
from opcockpit.ports.leon import LeonAccess
from opcockpit.services.alert_engine import AlertEngine
from opcockpit.services.runs import RunReads, load_run_health

__all__ = ["AlertSources", "evaluate_refresh", "gather_alert_sources"]

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
) -> AlertSources:
    rh = await load_run_health(
        events_db, now, events_reader=leon.events_reader, window_s=cfg.window_s,
        stuck_after_s=cfg.stuck_after_s, ground_truth=ground_truth, reads=reads,
    )  # fmt: skip
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
    src = await gather_alert_sources(
        ground_truth, engine.config, sandbox_db=sandbox_db, events_db=events_db, now=now, leon=leon,
        local_tz=local_tz, reads=engine.run_reads,
    )  # fmt: skip
    work = asyncio.ensure_future(
        asyncio.to_thread(
            engine.evaluate, ground_truth, src.run_health, src.lease_events, src.provider_events, now=now
        )
    )
    try:
        snap = await asyncio.shield(work)
    except asyncio.CancelledError:
        # Ctrl-C (asyncio.run cancels us) or the TUI quitting: a thread cannot be cancelled, so end
        # its delivery round now, and let it finish before our caller closes the ledger under it
        # (closing a sqlite connection another thread is using crashes the interpreter).
        if engine.notifier is not None:
            engine.notifier.cancel()
        with contextlib.suppress(BaseException):
            await work
        raise
    return snap, src.run_health
