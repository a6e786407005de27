"""Settings -> the cockpit's object graph. The only module that names concrete adapters.

The TUI, every CLI command, the demo, the tests and the benchmarks get their collector,
operations, audit log, alert store/engine and notifier from :func:`build_cockpit`, so there is one
answer to "which ledger", "who is the operator" and "which adapter serves provider X". Tests pass
fakes of *ports* (``adapters=``, ``clock=``); nothing patches modules.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import socket
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from opcockpit.adapters.ledger.alerts import AlertEngine, AlertStore
from opcockpit.adapters.ledger.audit import AuditLog
from opcockpit.adapters.ledger.sqlite import default_ledger_path
from opcockpit.domain.alerts import AlertsConfig
from opcockpit.ports.provider import ProviderAdapter
from opcockpit.services.collect import FleetCollector
from opcockpit.services.operations import Operations
from opcockpit.settings.config import CockpitConfig

T = TypeVar("T")

DEMO_LEDGER = "ledger.db"  # the demo keeps audit and alerts beside its fleet, never in the operator's


def operator_name() -> str:
    """`$USER@host`: who acted, acked or muted (getpass falls back to the uid's passwd name)."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if not user:
        try:
            user = getpass.getuser()
        except Exception:  # no passwd entry in a container: still record something honest
            user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def run_main(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run(factory()), but the main task returns None.

    asyncio.Runner's SIGINT bookkeeping makes signal.getsignal() build a ValueError whose message
    is the repr of a functools.partial holding the main task, and a finished task's repr includes
    its result: for a 10k-row GroundTruth that repr alone cost ~0.4 s (CPython 3.11).
    """
    box: list[T] = []

    async def _main() -> None:
        box.append(await factory())

    asyncio.run(_main())
    return box[0]


@dataclass
class Cockpit:
    """Everything one cockpit process (TUI, CLI command, demo, test, benchmark) works with."""

    settings: CockpitConfig
    read_only: bool
    operator: str
    ledger_path: Path
    collector: FleetCollector
    operations: Operations
    audit: AuditLog
    clock: Callable[[], datetime] | None = None
    _stores: list[AlertStore] = field(default_factory=list, repr=False)

    @property
    def alerts_config(self) -> AlertsConfig:
        cfg = getattr(self.settings, "alerts", None)
        return cfg if isinstance(cfg, AlertsConfig) else AlertsConfig()

    def open_alert_store(self) -> AlertStore:
        """The alert tables of this cockpit's ledger (blocking: call from a thread in async code)."""
        return AlertStore.open(self.ledger_path)

    def alert_engine(self, store: AlertStore, *, clock: Callable[[], datetime] | None = None) -> AlertEngine:
        return AlertEngine(store, self.alerts_config, clock=clock or self.clock)

    async def aclose(self) -> None:
        await self.collector.aclose()
        self.audit.close()


def build_cockpit(
    settings: CockpitConfig,
    *,
    read_only: bool = False,
    providers: Collection[str] | None = None,
    ledger_path: str | os.PathLike[str] | None = None,
    demo: bool = False,
    adapters: Mapping[str, ProviderAdapter] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Cockpit:
    """Build the graph for `settings`. `demo` keeps the ledger beside the demo fleet; `adapters`
    replace the registry's for their provider names (tests); `providers` limits the collection."""
    if ledger_path is not None:
        ledger = Path(ledger_path)
    elif demo:
        ledger = Path(settings.sources.sandbox_db).parent / DEMO_LEDGER
    else:
        ledger = default_ledger_path()
    read_only = read_only or bool(getattr(settings, "read_only", False))
    operator = operator_name()
    collector = FleetCollector(settings, adapters=adapters, clock=clock, providers=providers)
    audit = AuditLog(ledger)
    operations = Operations(
        settings, collector=collector, read_only=read_only, operator=operator, audit=audit
    )
    return Cockpit(
        settings=settings,
        read_only=read_only,
        operator=operator,
        ledger_path=ledger,
        collector=collector,
        operations=operations,
        audit=audit,
        clock=clock,
    )
