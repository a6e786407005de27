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
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

# Only what `build_cockpit` needs for a snapshot is imported here (collector, LEON readers, the
# provider registry, the ledger's audit/event logs, history); every other adapter and service is
# imported by the builder that uses it, so `opcockpit snapshot` starts without them (issue 9:
# start-up is most of a 100-lease snapshot's wall time).
from opcockpit.adapters.ledger.audit import AuditLog
from opcockpit.adapters.ledger.backend import LedgerTarget
from opcockpit.adapters.ledger.sqlite import default_ledger_path
from opcockpit.adapters.leon.sandbox_db import SandboxDbReader, read_db_state
from opcockpit.adapters.providers.registry import build_adapter
from opcockpit.domain.alerts_config import AlertsConfig
from opcockpit.domain.events_config import EventsConfig
from opcockpit.ports.leon import LeonAccess
from opcockpit.services.collect import FleetCollector
from opcockpit.services.history import RecordingCollector, record_events

if TYPE_CHECKING:  # annotations only; the builders import what they construct
    from opcockpit.adapters.ledger.alerts import AlertStore
    from opcockpit.adapters.ledger.events import EventLog
    from opcockpit.adapters.ledger.rule_overrides import RuleOverrideStore
    from opcockpit.adapters.leon.events_db import EventsDbReader
    from opcockpit.adapters.leon.sandbox_changes import SandboxDbTracker
    from opcockpit.adapters.leon.writer import LeonWriter
    from opcockpit.adapters.memory import HeapTrimmer
    from opcockpit.adapters.notify import Notifier
    from opcockpit.adapters.otlp import OtlpExporter
    from opcockpit.domain.models import GroundTruth
    from opcockpit.domain.runs import RunHealth
    from opcockpit.ports.provider import ProviderAdapter
    from opcockpit.services.alert_engine import AlertEngine
    from opcockpit.services.explore import ExploreService
    from opcockpit.services.export import ContinuousExporter, LedgerFeed
    from opcockpit.services.inspect import InspectService
    from opcockpit.services.ledger_watch import LedgerWatch
    from opcockpit.services.operations import Operations
    from opcockpit.services.webhooks import WebhookReceiver  # starlette loads only when `serve` runs
    from opcockpit.settings.config import CockpitConfig
    from opcockpit.settings.export import OtlpExportConfig

# Names the CLI and tests import from here, resolved on first use (module __getattr__ below).
_LAZY = {
    "load_queries_toml": ("opcockpit.adapters.ledger.queries", "load_toml"),
    "dump_queries_toml": ("opcockpit.adapters.ledger.queries", "dump_toml"),
    "query_pins_toml": ("opcockpit.adapters.ledger.queries", "pins_from_toml"),
}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(where[0]), where[1])
    globals()[name] = value
    return value


def _leon_writer(*args: Any, **kwargs: Any) -> LeonWriter:
    """LeonWriter(...), imported when an action first writes (never on the snapshot path)."""
    from opcockpit.adapters.leon.writer import LeonWriter

    return LeonWriter(*args, **kwargs)


def _events_reader(*args: Any, **kwargs: Any) -> EventsDbReader:
    """EventsDbReader(...), imported when events.db is first read."""
    from opcockpit.adapters.leon.events_db import EventsDbReader

    return EventsDbReader(*args, **kwargs)


def _db_tracker(*args: Any, **kwargs: Any) -> SandboxDbTracker:
    """SandboxDbTracker(...), imported when the live cockpit first tracks sandbox.db (a one-shot
    snapshot reads it in full and never does)."""
    from opcockpit.adapters.leon.sandbox_changes import SandboxDbTracker

    return SandboxDbTracker(*args, **kwargs)


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


def tune_for_long_run() -> HeapTrimmer | None:
    """The live cockpit stays up all day: cap glibc's malloc arenas, fix its mmap threshold and
    trim the heap every half minute (adapters/memory.py; issue 10, memory). Call it before the
    TUI starts its worker threads; one-shot commands do not need it. None where the heap is not
    glibc's (nothing to tune, no thread started)."""
    from opcockpit.adapters.memory import HeapTrimmer, tune_heap

    if not tune_heap():
        return None
    return HeapTrimmer().start()


def leon_access(local_tz: tzinfo | None = None, *, sources: Any = None) -> LeonAccess:
    """The LEON adapters (sandbox.db / events.db readers, the LEON-way writer) as the services' port.
    `local_tz`: the zone of sandbox.db's naive timestamps (`[sources] timezone`; None: the host's).
    `sources` (`[sources]`): with `kind = "postgres"` the readers are the PostgreSQL source's (the
    path argument the services pass is ignored: the URL and schema are bound here) and the writer
    refuses every write (`writer.refusal` says why; the action gate shows it)."""
    if getattr(sources, "kind", "sqlite") == "postgres":
        return pg_leon_access(sources, local_tz)
    if local_tz is None:
        return LeonAccess(
            read_db_state=read_db_state,
            sandbox_reader=SandboxDbReader,
            events_reader=_events_reader,
            writer=_leon_writer,
            db_tracker=_db_tracker,
        )
    return LeonAccess(
        read_db_state=partial(read_db_state, local_tz=local_tz),
        sandbox_reader=partial(SandboxDbReader, local_tz=local_tz),
        events_reader=_events_reader,  # events.db stores UTC text: no zone to apply
        writer=_leon_writer,
        db_tracker=partial(_db_tracker, local_tz=local_tz),
    )


def _picture_mark_reader(target: LedgerTarget) -> Callable[[], str | None] | None:
    """The stored picture's fingerprint, read alone (~0.15 s less at 10k leases than loading the
    picture to learn that nothing changed), on either ledger backend."""
    if target.kind == "postgres" and target.url is not None:
        from opcockpit.adapters.ledger.pg_picture_mark import PrefetchedMarkReader

        return PrefetchedMarkReader(target.url)  # connects while the source is read
    if target.kind != "sqlite" or target.path is None:
        return None
    from opcockpit.adapters.ledger.picture_mark import read_mark

    path = target.path
    return lambda: read_mark(path)


def pg_leon_access(sources: Any, local_tz: tzinfo | None = None) -> LeonAccess:
    """LeonAccess over LEON's tables in PostgreSQL (`[sources] kind = "postgres"`)."""
    from opcockpit.adapters.pg_source import PgSandboxReader, PgSourceSpec, read_pg_state, refused_writer
    from opcockpit.adapters.pg_source_track import PgSourceTracker

    spec = PgSourceSpec(sources.resolve_url() or "", getattr(sources, "db_schema", "public"))

    def reader(_path: str = "", *, local_tz: tzinfo | None = local_tz, **_: Any) -> PgSandboxReader:
        return PgSandboxReader(spec, local_tz=local_tz)

    def read_state(_path: str = "", **kw: Any) -> Any:
        return read_pg_state(spec, local_tz=local_tz, now=kw.get("now"), one_shot=kw.get("one_shot", False))

    def tracker(_path: str = "", *, resync_s: float = 300.0, **_: Any) -> PgSourceTracker:
        return PgSourceTracker(spec, resync_s=resync_s, local_tz=local_tz)

    return LeonAccess(
        read_db_state=read_state,
        sandbox_reader=reader,
        events_reader=_events_reader,  # events.db stays a file (run_events on PostgreSQL: not yet)
        writer=refused_writer,
        db_tracker=tracker,
    )


def source_tz(settings: CockpitConfig) -> tzinfo | None:
    """`[sources] timezone` as a tzinfo (None: the host's zone)."""
    zone = getattr(settings.sources, "local_tz", None)
    return zone() if callable(zone) else None


def build_collector(
    settings: CockpitConfig,
    *,
    adapters: Mapping[str, ProviderAdapter] | None = None,
    clock: Callable[[], datetime] | None = None,
    providers: Collection[str] | None = None,
) -> FleetCollector:
    """A FleetCollector on the real LEON readers and the provider registry (`adapters` win for
    their provider names: tests, the demo)."""
    return FleetCollector(
        settings, adapters=adapters, clock=clock, providers=providers, build_adapter=build_adapter,
        leon=leon_access(source_tz(settings), sources=settings.sources),
    )  # fmt: skip


def build_operations(
    settings: CockpitConfig,
    *,
    collector: FleetCollector | None = None,
    adapters: Mapping[str, ProviderAdapter] | None = None,
    operator: str | None = None,
    **kw: Any,
) -> Operations:
    """Operations sharing `collector`'s adapters (or its own `adapters`), with the real writer."""
    from opcockpit.services.operations import Operations

    return Operations(
        settings, collector=collector, adapters=dict(adapters) if adapters is not None else None,
        operator=operator or operator_name(), leon=leon_access(source_tz(settings), sources=settings.sources),
        build_adapter=build_adapter, **kw,
    )  # fmt: skip


def build_notifier(config: AlertsConfig) -> Notifier | None:
    """The notifier for `config`'s channels; None when no channel is configured."""
    if config.webhook is None and config.command is None:
        return None
    from opcockpit.adapters.notify import Notifier

    return Notifier(config)


def build_alert_engine(
    store: AlertStore,
    config: AlertsConfig | None = None,
    clock: Callable[[], datetime] | None = None,
    *,
    notifier: Notifier | None = None,
    events: EventLog | None = None,
    leon: LeonAccess | None = None,
) -> AlertEngine:
    """An AlertEngine over `store`, notifying through `config`'s channels unless `notifier` is given;
    with `events`, alert.* events are appended and the flapping rule reads them."""
    from opcockpit.services.alert_engine import AlertEngine

    config = config or AlertsConfig()
    return AlertEngine(
        store, config, clock, notifier=notifier or build_notifier(config), leon=leon or leon_access(),
        events=events, on_event=record_events(events) if events is not None else None,
    )  # fmt: skip


def events_config(settings: CockpitConfig) -> EventsConfig:
    """The `[events]` table (retention), defaults when the settings have none."""
    cfg = getattr(settings, "events", None)
    return cfg if isinstance(cfg, EventsConfig) else EventsConfig()


def build_event_log(
    settings: CockpitConfig, ledger: str | os.PathLike[str] | LedgerTarget | None
) -> EventLog | None:
    """The event ledger in `ledger` (opened lazily: building never touches the file)."""
    from opcockpit.adapters.ledger.events import EventLog

    cfg = events_config(settings)
    return EventLog(ledger, cfg) if cfg.enabled else None


def build_explore(
    settings: CockpitConfig,
    *,
    ledger_path: str | os.PathLike[str] | LedgerTarget | None = None,
    clock: Callable[[], datetime] | None = None,
    operator: str | None = None,
    live: bool = False,
) -> ExploreService:
    """Explore over `settings`' sandbox.db/events.db and the ledger (read-only everywhere except
    the saved queries and history it keeps in the ledger). The ledger datasets (events, audit,
    alerts) read the configured ledger, a SQLite file or PostgreSQL (`ledger_target`). `live`
    (the TUI's Explore tab): the runs dataset keeps its own watermark cache of events.db between
    queries (not the alert engine's: that one is used from the alert loop)."""
    from opcockpit.adapters.ledger.explore_ledger import LedgerExploreRows, LedgerSqlNote
    from opcockpit.adapters.ledger.queries import QueryStore
    from opcockpit.adapters.leon.explore_rows import ExploreRows
    from opcockpit.adapters.leon.sql_readonly import ReadOnlySql
    from opcockpit.services.explore import ExploreService
    from opcockpit.services.runs import RunReads

    sources = settings.sources
    sandbox = str(sources.sandbox_db) if sources.sandbox_db else None
    events = str(sources.events_db) if sources.events_db else None
    target = ledger_target(settings, ledger_path)
    ledger = LedgerExploreRows(target)
    rows: Any = ExploreRows(sandbox, events, ledger)
    # The SQL mode attaches a SQLite ledger file; a PostgreSQL one cannot be (LedgerSqlNote says so).
    sql: Any = ReadOnlySql(sandbox, events, target.path) if sandbox else None
    if getattr(sources, "kind", "sqlite") == "postgres":  # LEON's tables in PostgreSQL (issue 12)
        from opcockpit.adapters.pg_source_explore import pg_explore

        rows, sql = pg_explore(sources, events, ledger)
    attached = target.kind == "sqlite" and isinstance(sql, ReadOnlySql)
    if sql is not None and not attached:
        sql = LedgerSqlNote(sql, target)
    return ExploreService(
        rows=rows,
        events_db=events,
        events_reader=_events_reader,
        sql=sql,
        store=lambda: QueryStore(target),  # on the team's ledger too
        clock=clock,
        operator=operator or operator_name(),
        run_reads=RunReads() if live else None,
    )


class _Deferred:
    """A value `Cockpit` builds on first read (`_OnFirstRead`): the factory is called once."""

    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory


class _OnFirstRead:
    """A dataclass field (descriptor-typed: still a required constructor argument) whose value
    may be a `_Deferred`: built on first read. `build_cockpit` defers Operations this way, so a
    snapshot, which never acts, does not import or build it (issue 9: start-up)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_{name}_value"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:  # no class-level default: the field stays required
            raise AttributeError(self._slot)
        value = obj.__dict__[self._slot]
        if isinstance(value, _Deferred):
            value = obj.__dict__[self._slot] = value.factory()
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self._slot] = value


@dataclass
class Cockpit:
    """Everything one cockpit process (TUI, CLI command, demo, test, benchmark) works with."""

    settings: CockpitConfig
    read_only: bool
    operator: str
    ledger_path: Path
    collector: FleetCollector | RecordingCollector
    operations: Operations = _OnFirstRead()  # type: ignore[assignment]  # required; see _OnFirstRead
    audit: AuditLog
    clock: Callable[[], datetime] | None = None
    events: EventLog | None = None  # the event ledger (None: `[events] enabled = false`)
    leon: LeonAccess = field(default_factory=leon_access)
    _stores: list[AlertStore] = field(default_factory=list, repr=False)
    # Where audit and alerts live (issue 12): the SQLite file at ledger_path, or a PostgreSQL
    # URL shared by a team. ledger_path stays the local file the SQLite-only parts use.
    ledger: LedgerTarget | None = None
    # The `[contexts.<name>]` in effect (issue 12; None: no context): the TUI header shows it.
    context: str | None = None
    # events.db's runs, reused while the file is unchanged (services.runs.RunReads: per cockpit).
    run_reads: Any = field(default=None, repr=False)

    @property
    def alerts_config(self) -> AlertsConfig:
        cfg = getattr(self.settings, "alerts", None)
        return cfg if isinstance(cfg, AlertsConfig) else AlertsConfig()

    @property
    def inspect(self) -> InspectService:
        """Logs and raw provider records through the collector's adapters (the TUI's `l`/`y`)."""
        from opcockpit.services.inspect import InspectService

        return InspectService(lambda name: self.collector.adapters.get(name))

    @property
    def ledger_at(self) -> LedgerTarget | Path:
        """Where this cockpit's ledger is: the configured target (PostgreSQL or a file), else the
        ledger file."""
        return self.ledger if self.ledger is not None else self.ledger_path

    def open_alert_store(self) -> AlertStore:
        """The alert tables of this cockpit's ledger (blocking: call from a thread in async code)."""
        from opcockpit.adapters.ledger.alerts import AlertStore

        return AlertStore.open(self.ledger_at)

    def open_rule_store(self) -> RuleOverrideStore:
        """The rule overrides, TUI-made query rules and saved-query pins of this cockpit's ledger."""
        from opcockpit.adapters.ledger.rule_overrides import RuleOverrideStore

        return RuleOverrideStore.open(self.ledger_at)

    def alert_engine(self, store: AlertStore, *, clock: Callable[[], datetime] | None = None) -> AlertEngine:
        engine = build_alert_engine(
            store, self.alerts_config, clock or self.clock, events=self.events, leon=self.leon
        )
        # issue 11: the ledger's rule overrides and the query-backed rules (services/query_alerts.py)
        from opcockpit.services.query_alerts import OverrideSource, QueryRules

        explore = partial(build_explore, self.settings, ledger_path=self.ledger_at, clock=self.clock)
        overrides = OverrideSource(self.open_rule_store)
        engine.query_rules = QueryRules(engine.config, explore, overrides)
        return engine

    async def load_run_health(
        self, now: datetime, *, ground_truth: GroundTruth | None = None, events_db: Any = None
    ) -> RunHealth:
        """Run health from this cockpit's events.db (`events_db` overrides it), windows from the
        alerts config. A read failure is `RunHealth.error`, never an exception."""
        from opcockpit.services.runs import RunReads, load_run_health

        if self.run_reads is None:
            self.run_reads = RunReads()
        cfg = self.alerts_config
        path = events_db if events_db is not None else self.settings.sources.events_db
        return await load_run_health(
            path, now, events_reader=self.leon.events_reader, window_s=cfg.window_s,
            stuck_after_s=cfg.stuck_after_s, ground_truth=ground_truth, reads=self.run_reads,
        )  # fmt: skip

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
    live: bool = False,
    one_shot: bool = False,
) -> Cockpit:
    """Build the graph for `settings`. `demo` keeps the ledger beside the demo fleet; `adapters`
    replace the registry's for their provider names (tests); `providers` limits the collection.
    `live` (the TUI): providers are listed in full once per their `list_interval_s`, between
    listings provider events and finished actions look at the instances concerned (one GET).
    `one_shot` (snapshot): one read whose records die with the process (sandbox.db text not
    interned), and an unchanged fleet recognised by the stored picture's fingerprint alone."""
    target = ledger_target(settings, ledger_path, demo=demo)
    ledger = target.path if target.path is not None else default_ledger_path()
    read_only = read_only or bool(getattr(settings, "read_only", False))
    operator = operator_name()
    fleet = build_collector(settings, adapters=adapters, clock=clock, providers=providers)
    fleet.paced = live
    if one_shot:
        fleet.leon = replace(fleet.leon, read_db_state=partial(fleet.leon.read_db_state, one_shot=True))
    events = build_event_log(settings, target)  # the event ledger follows audit/alerts (PostgreSQL too)
    # Every refresh (TUI, snapshot, demo, action waits) records what changed into the ledger.
    mark = _picture_mark_reader(target) if one_shot else None
    collector = RecordingCollector(fleet, events, mark_reader=mark) if events is not None else fleet
    audit = AuditLog(target)
    operations = _Deferred(partial(
        build_operations, settings, collector=collector, read_only=read_only, operator=operator,
        audit=audit, on_event=record_events(events) if events is not None else None,
    ))  # fmt: skip
    return Cockpit(
        settings=settings,
        read_only=read_only,
        operator=operator,
        ledger_path=ledger,
        collector=collector,
        operations=operations,
        audit=audit,
        clock=clock,
        events=events,
        leon=leon_access(source_tz(settings), sources=settings.sources),
        ledger=target,
        context=getattr(settings, "context", None),
    )


def open_query_pins(settings: Any, ledger_path: str | os.PathLike[str] | None = None) -> Any:
    """The ledger's saved-query pins (and rule overrides): `queries import|export` carry pins."""
    from opcockpit.adapters.ledger.rule_overrides import RuleOverrideStore

    return RuleOverrideStore.open(ledger_target(settings, ledger_path))


def ledger_target(
    settings: Any, ledger_path: str | os.PathLike[str] | None = None, *, demo: bool = False
) -> LedgerTarget:
    """Which ledger: `--ledger` (a path, sqlite:PATH or postgresql://…), the demo's file,
    `[ledger] url_env`/`url`, then $OPCOCKPIT_LEDGER / the XDG file."""
    if ledger_path is not None:
        return LedgerTarget.parse(ledger_path)
    if demo:
        return LedgerTarget.parse(Path(settings.sources.sandbox_db).parent / DEMO_LEDGER)
    cfg = getattr(settings, "ledger", None)
    configured = cfg.resolve() if cfg is not None and hasattr(cfg, "resolve") else None
    return LedgerTarget.parse(configured)


# --------------------------------------------------------------------------- webhooks (issue 13)


def build_webhook_receiver(
    settings: CockpitConfig,
    *,
    ledger_path: str | os.PathLike[str] | None = None,
    event_log: Any = None,
    convert: Callable[[Any], Any] | None = None,
) -> WebhookReceiver:
    """The `opcockpit serve` receiver: one verifier per `[webhooks.<provider>]`, deliveries stored
    exactly once in the ledger's event log (its idempotency keys; `event_log` replaces it: tests),
    leases matched from the platform source (sandbox.db or PostgreSQL). ValueError (one line, no
    secret) on a sender whose secret cannot be a key."""
    from opcockpit.adapters.webhooks.store import LedgerSink
    from opcockpit.adapters.webhooks.verify import build_verifier
    from opcockpit.domain.secrets import remember
    from opcockpit.services.webhooks import LeaseIndex, Sender, WebhookReceiver

    senders: dict[str, Sender] = {}
    for name, cfg in getattr(settings, "webhooks", {}).items():
        if not cfg.enabled:
            continue
        secret = cfg.resolve_secret()
        remember(secret)
        verifier = None
        if secret:
            try:
                verifier = build_verifier(name, cfg.kind, secret, tolerance_s=cfg.tolerance_s)
            except ValueError as exc:
                raise ValueError(f"webhooks.{name}: {exc}") from None
        senders[name] = Sender(
            name, cfg.kind, verifier, rate_per_s=cfg.rate_per_s, burst=cfg.burst,
            max_body_bytes=cfg.max_body_bytes,
        )  # fmt: skip
    if event_log is None:
        from opcockpit.adapters.ledger.events import EventLog
        from opcockpit.domain.events import event_from_dict

        event_log = EventLog(ledger_target(settings, ledger_path), events_config(settings))
        convert = convert or event_from_dict
    sink = LedgerSink(event_log, convert)
    sources = settings.sources
    pg = getattr(sources, "kind", "sqlite") == "postgres"  # the PostgreSQL source ignores the path
    where = "postgres" if pg else (str(sources.sandbox_db) if sources.sandbox_db else None)
    leases = LeaseIndex(leon_access(source_tz(settings), sources=sources).read_db_state, where)
    serve = settings.serve
    leon_log = None
    read_only = bool(getattr(settings, "read_only", False))
    if getattr(serve, "leon_provider_events", False) and not (pg or read_only) and where:  # opt-in
        from opcockpit.adapters.webhooks.store import LeonProviderEvents

        leon_log = LeonProviderEvents(_leon_writer(where, operator=operator_name()))
    return WebhookReceiver(
        senders, sink, leases=leases, queue_max=serve.queue_max, ack_timeout_s=serve.ack_timeout_s,
        retry_after_s=serve.retry_after_s, leon_log=leon_log,
    )  # fmt: skip


# --------------------------------------------------------------------------- OpenTelemetry export


def otlp_config(settings: Any) -> OtlpExportConfig:
    """The `[export.otlp]` table (defaults when the settings carry none)."""
    from opcockpit.settings.export import OtlpExportConfig

    export = getattr(settings, "export", None)
    cfg = getattr(export, "otlp", None)
    return cfg if isinstance(cfg, OtlpExportConfig) else OtlpExportConfig()


def build_otlp_sink(settings: Any, *, env: Mapping[str, str] | None = None) -> OtlpExporter:
    """The OTLP/HTTP sink for `settings` (endpoint/headers: config, then OTEL_* env)."""
    from opcockpit import __version__
    from opcockpit.adapters.otlp import OtlpExporter, resolve_target

    cfg = otlp_config(settings)
    return OtlpExporter(
        resolve_target(cfg.endpoint, cfg.headers_env, env), timeout_s=cfg.timeout_s,
        queue_size=cfg.queue_size, service_name=cfg.service_name, service_version=__version__,
    )  # fmt: skip


def ledger_feed(cockpit: Cockpit) -> LedgerFeed | None:
    """The event ledger as the exporter's feed: by id cursor (continuous) or by time (`--since`)."""
    from opcockpit.domain.events import EventQuery

    if hasattr(cockpit, "events"):
        log = cockpit.events
    else:  # a Cockpit without the events field: the ledger file's events table
        from opcockpit.adapters.ledger.events import EventLog

        log = EventLog(cockpit.ledger_path)
    if log is None:
        return None

    def feed(after: int, since: datetime | None, limit: int) -> Any:
        if since is None or after:
            return log.after(after, limit)
        return log.query(EventQuery(since=since, limit=limit, oldest_first=True))

    return feed


def build_exporter(cockpit: Cockpit, *, force: bool = False) -> ContinuousExporter | None:
    """The TUI's continuous export (`start()` / `await stop()`); None when `[export.otlp]` is
    off (`force`: build it anyway)."""
    from opcockpit.services.export import ContinuousExporter

    cfg = otlp_config(cockpit.settings)
    if not (force or cfg.is_enabled()):
        return None
    events_db = cockpit.settings.sources.events_db
    return ContinuousExporter(
        build_otlp_sink(cockpit.settings), events_db=str(events_db) if events_db else None,
        events_reader=cockpit.leon.events_reader, ledger_feed=ledger_feed(cockpit),
        interval_s=cfg.interval_s, provider_name=cfg.provider_name,
    )  # fmt: skip


def build_ledger_watch(
    cockpit: Cockpit, *, on_change: Callable[[frozenset[str]], object] | None = None
) -> LedgerWatch | None:
    """The TUI's follower of the ledger's `provider.event` rows (webhooks stored by `opcockpit
    serve`): looks at the instances they name through the collector, then `on_change`. None when
    the event ledger is off."""
    from opcockpit.services.ledger_watch import LedgerWatch

    if cockpit.events is None:
        return None
    return LedgerWatch(cockpit.events, look=getattr(cockpit.collector, "look", None), on_change=on_change)
