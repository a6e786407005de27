"""Helpers for the alert tests: real LEON-schema DBs -> real reader -> real reconcile -> engine.

Sandbox timestamps are written naive and read back with local_tz=UTC, so "naive" here means UTC.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opcockpit.adapters.ledger.alerts import AlertSnapshot, AlertStore
from opcockpit.adapters.leon.events_db import EventsDbReader
from opcockpit.adapters.leon.sandbox_db import SandboxDbReader, read_db_state
from opcockpit.adapters.leon.schema import create_events_db, create_sandbox_db
from opcockpit.domain.alerts import AlertsConfig
from opcockpit.domain.models import GroundTruth, Instance, NormalState, ProviderListing
from opcockpit.domain.reconcile import reconcile
from opcockpit.domain.runs import RunHealth, run_health
from opcockpit.services.alert_engine import AlertEngine
from opcockpit.wiring import build_alert_engine

T0 = datetime(2026, 3, 20, 12, 0, 0, tzinfo=UTC)


def naive(dt: datetime) -> datetime:
    """An aware UTC time as the naive value LEON would write (read back with local_tz=UTC)."""
    return dt.astimezone(UTC).replace(tzinfo=None)


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def sandbox_db(path: Path, build: Callable[[sqlite3.Connection], None]) -> Path:
    conn = create_sandbox_db(str(path))
    try:
        build(conn)
        conn.commit()
    finally:
        conn.close()
    return path


def edit_db(path: Path, edit: Callable[[sqlite3.Connection], None]) -> None:
    conn = sqlite3.connect(path)
    try:
        edit(conn)
        conn.commit()
    finally:
        conn.close()


def events_db(path: Path, build: Callable[[sqlite3.Connection], None]) -> Path:
    conn = create_events_db(str(path))
    try:
        build(conn)
        conn.commit()
    finally:
        conn.close()
    return path


def inst(
    provider: str,
    iid: str,
    state: str = "running",
    *,
    created_at: datetime | None = None,
    claimed: str | None = None,
) -> Instance:
    return Instance(
        provider=provider,
        instance_id=iid,
        raw_state=state,
        state=NormalState(state),
        created_at=created_at,
        claimed_lease_id=claimed,
    )


def listing(
    provider: str,
    kind: str,
    instances: Iterable[Instance] = (),
    *,
    ok: bool = True,
    listed_at: datetime | None = None,
    error: str | None = None,
    eventually_consistent: bool = False,
    confirmed: frozenset[str] | None = None,
) -> ProviderListing:
    return ProviderListing(
        provider=provider,
        kind=kind,
        ok=ok,
        instances=tuple(instances),
        listed_at=listed_at,
        error=error,
        has_api=kind != "local",
        eventually_consistent=eventually_consistent,
        confirmed_orphans=confirmed,
    )


def ground_truth(db: Path, listings: Iterable[ProviderListing], now: datetime) -> GroundTruth:
    state = asyncio.run(read_db_state(str(db), now=now, local_tz=UTC))
    return reconcile(state, list(listings), now)


def lease_events(db: Path, since: datetime) -> tuple[list, list]:
    async def read() -> tuple[list, list]:
        async with SandboxDbReader(str(db), local_tz=UTC) as r:
            return await r.lease_events(since=since, limit=None), await r.provider_events(since=since)

    return asyncio.run(read())


def health(events: Path, now: datetime, **kw: float) -> RunHealth:
    async def read() -> list:
        async with EventsDbReader(str(events)) as r:
            return await r.runs()

    return run_health(asyncio.run(read()), now, **kw)


def engine(tmp_path: Path, clock: Clock, cfg: AlertsConfig | None = None, **kw: object) -> AlertEngine:
    store = AlertStore.open(tmp_path / "ledger.db")
    return build_alert_engine(store, cfg or AlertsConfig(), clock, **kw)  # type: ignore[arg-type]


def keys(snap: AlertSnapshot) -> list[str]:
    return sorted(a.key for a in snap.active)
