"""Plain data that flows between sources, providers, reconcile and the surfaces.

Dataclasses (not pydantic) because reconcile handles tens of thousands of these per refresh.
All datetimes are timezone-aware UTC; the sources normalise LEON's mixed conventions.
No Textual, no I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from opcockpit.domain.lazy import lazy_exports

if TYPE_CHECKING:  # re-exported, created on first use (see __getattr__ at the end)
    from opcockpit.domain.detail_records import (  # noqa: F401
        CommandChunk,
        CommandOutput,
        InstanceHistoryRecord,
        SyncFileRecord,
        TerminalCommandRecord,
        ThreadPointerRecord,
        VolumeRecord,
    )

# --------------------------------------------------------------------------- sandbox.db records


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """One `sandbox_leases` row."""

    lease_id: str
    provider_name: str
    current_instance_id: str | None
    desired_state: str  # running | paused | destroyed
    observed_state: str  # running | paused | detached | unknown
    status: str | None  # active | expired | recovering
    version: int
    needs_refresh: bool
    last_error: str | None
    instance_created_at: datetime | None
    observed_at: datetime | None
    refresh_hint_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    instance_status: str | None = None  # legacy mirror; absent on older schemas
    workspace_key: str | None = None
    recipe_id: str | None = None  # Mycel only
    volume_id: str | None = None  # Mycel only


# sandbox_leases columns without which a lease's convergence cannot be judged.
LEASE_KEY_COLUMNS = frozenset(
    ("lease_id", "provider_name", "current_instance_id", "desired_state", "observed_state")
)


def problems_unjudgeable(problems: tuple[str, ...]) -> bool:
    """A column convergence depends on was unusable (DbState.lease_problems): verdict `unknown`."""
    return any(p.split(" ", 1)[0] in LEASE_KEY_COLUMNS for p in problems)


def problems_provider_unknown(problems: tuple[str, ...]) -> bool:
    """provider_name was unusable: the lease cannot be matched to any provider."""
    return any(p.startswith("provider_name ") for p in problems)


@dataclass(frozen=True, slots=True)
class TerminalRecord:
    """One `abstract_terminals` row: binds a thread to a lease."""

    terminal_id: str
    thread_id: str
    lease_id: str
    cwd: str
    state_version: int
    created_at: datetime | None
    updated_at: datetime | None
    env_delta_json: str | None = None


@dataclass(frozen=True, slots=True)
class ChatSessionRecord:
    """One `chat_sessions` row."""

    chat_session_id: str
    thread_id: str
    terminal_id: str
    lease_id: str
    status: str  # active | idle | paused | closed | failed
    started_at: datetime | None
    last_active_at: datetime | None
    ended_at: datetime | None
    close_reason: str | None
    runtime_id: str | None = None
    idle_ttl_sec: int | None = None
    max_duration_sec: int | None = None

    @property
    def is_live(self) -> bool:
        return self.status in ("active", "idle", "paused")


@dataclass(frozen=True, slots=True)
class LeaseEventRecord:
    """One `lease_events` row."""

    event_id: str
    lease_id: str
    event_type: str
    source: str
    payload_json: str | None
    error: str | None
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class ProviderEventRecord:
    """One `provider_events` row (webhook log)."""

    event_id: int
    provider_name: str
    instance_id: str
    event_type: str
    payload_json: str | None
    matched_lease_id: str | None
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class ResourceSnapshotRecord:
    """One `lease_resource_snapshots` row: latest metrics per lease."""

    lease_id: str
    provider_name: str
    observed_state: str
    probe_mode: str
    cpu_used: float | None
    cpu_limit: float | None
    memory_used_mb: float | None
    memory_total_mb: float | None
    disk_used_gb: float | None
    disk_total_gb: float | None
    network_rx_kbps: float | None
    network_tx_kbps: float | None
    probe_error: str | None
    collected_at: datetime | None


@dataclass(frozen=True, slots=True)
class RunEventRecord:
    """One events.db `run_events` row."""

    seq: int
    thread_id: str
    run_id: str
    event_type: str
    data: str
    message_id: str | None
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class DbState:
    """What sandbox.db says should exist: the input of reconcile.

    Only the tables reconcile needs are loaded eagerly; histories (lease_events, provider_events,
    sandbox_instances, commands) are read on demand by the sources' detail queries.
    """

    path: str
    schema_variant: str  # "leonai" | "mycel" | "older"
    read_at: datetime
    # repr=False: a 10k-row repr costs ~0.5 s (asyncio.run builds one for its result in 3.11).
    leases: tuple[LeaseRecord, ...] = field(repr=False)
    terminals: tuple[TerminalRecord, ...] = field(repr=False)
    chat_sessions: tuple[ChatSessionRecord, ...] = field(repr=False)
    resource_snapshots: Mapping[str, ResourceSnapshotRecord] = field(default_factory=dict, repr=False)
    missing_tables: tuple[str, ...] = ()
    # Oddities the reader found in a lease's rows (its own, its terminals', its sessions'), by
    # lease_id, one short "<column> <what>" text each; the reader substituted safe values.
    lease_problems: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    # Rows the reader could not tie to any lease (e.g. a terminal with a NULL lease_id), one line
    # per table: shown as warnings, never as rows.
    problems: tuple[str, ...] = ()


# --------------------------------------------------------------------------- provider side


class NormalState(StrEnum):
    """Provider states normalised across providers."""

    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    TRANSITIONING = "transitioning"
    GONE = "gone"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class InstanceResources:
    cpu_count: float | None = None
    memory_mb: float | None = None
    disk_gb: float | None = None


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance as a provider lists it.

    `instance_id` is the id LEON stores in `sandbox_leases.current_instance_id` for this provider
    (for Docker: the `leon.session_id` label / container name, not the 64-hex Id). Other ids the
    same instance answers to (Docker's full and short Id) go in `aliases` so matching still works.
    """

    provider: str
    instance_id: str
    raw_state: str
    state: NormalState
    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    started_at: datetime | None = None
    resources: InstanceResources | None = None
    aliases: tuple[str, ...] = ()
    # The lease this instance says it belongs to (decoded from LEON's docker labels or cockpit
    # metadata/labels), whether or not that lease still points at it.
    claimed_lease_id: str | None = None


class ProviderStatus(StrEnum):
    OK = "ok"
    ERROR = "error"  # this listing failed and there is no earlier good listing
    STALE = "stale"  # this listing failed; an earlier good listing is being shown
    DB_ONLY = "db_only"  # provider has no API (LEON's `local`): rows come from the DB alone


@dataclass(frozen=True, slots=True)
class ProviderListing:
    """Result of listing one configured provider (one refresh).

    A failed listing is never a short listing: `ok=False` and `instances` holds the last good
    listing (if any) taken at `listed_at`, so reconcile marks rows stale instead of gone.
    """

    provider: str
    kind: str
    ok: bool
    instances: tuple[Instance, ...] = ()
    listed_at: datetime | None = None  # time of the listing `instances` came from
    error: str | None = None
    has_api: bool = True  # False for `local`
    eventually_consistent: bool = False  # Daytona: orphans need a GET by id to be confirmed
    requests: int = 0
    duration_s: float | None = None
    confirmed_orphans: frozenset[str] | None = None  # ids confirmed by GET (eventually consistent lists)
    # The adapter's Capabilities, copied by the collector (None: not given; reconcile then falls
    # back to what it knew about the kind, until every collector fills them).
    pause_is_stop: bool | None = None  # Daytona: a stopped instance is what "paused" looks like
    paused_hint: str | None = None  # likely cause of an unexpected pause ("E2B auto-pause?")

    @property
    def status(self) -> ProviderStatus:
        if not self.has_api:
            return ProviderStatus.DB_ONLY
        if self.ok:
            return ProviderStatus.OK
        return ProviderStatus.STALE if self.listed_at is not None else ProviderStatus.ERROR


# --------------------------------------------------------------------------- ground truth


class Convergence(StrEnum):
    CONVERGED = "converged"  # the provider (or, for db-only providers, the DB) matches desired_state
    DIVERGED = "diverged"  # reality contradicts desired_state
    UNBOUND = "unbound"  # a remote lease never bound an instance yet (LEON binds lazily): not drift
    TRANSITIONING = "transitioning"  # provider reports a state change in flight
    STALE = "stale"  # provider could not be listed; last known picture shown with its age
    UNKNOWN = "unknown"  # provider reports an unknown state, or the lease's sandbox.db row is unusable


@dataclass(frozen=True, slots=True)
class Resources:
    """Occupancy from `lease_resource_snapshots` plus the allocation the provider reports."""

    cpu_used: float | None = None
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    disk_used_gb: float | None = None
    disk_total_gb: float | None = None
    probe_error: str | None = None
    collected_at: datetime | None = None
    cpu_count: float | None = None
    memory_mb: float | None = None


@dataclass(frozen=True, slots=True)
class GroundTruthRow:
    """One lease as the cockpit sees it. Keyed by `lease_id`."""

    lease_id: str
    provider: str
    thread_id: str | None  # primary thread (newest terminal)
    thread_ids: tuple[str, ...]  # every thread bound through abstract_terminals
    chat_session_id: str | None  # the live session, else the latest
    instance_id: str | None
    desired_state: str
    observed_state: str
    provider_state: str | None  # NormalState value, or None when not listed
    convergence: Convergence
    reason: str  # one line: why this convergence
    last_active: datetime | None
    source: str  # "lease+provider" | "lease" (db only: local or provider unlisted)
    lease_status: str | None
    version: int
    needs_refresh: bool
    last_error: str | None
    resources: Resources | None
    updated_at: datetime | None
    stale_age_s: float | None = None  # age of the provider listing behind a stale row

    @property
    def key(self) -> str:
        return self.lease_id


@dataclass(frozen=True, slots=True)
class OrphanRow:
    """An instance at a provider that no lease's current_instance_id accounts for."""

    provider: str
    instance_id: str
    name: str | None
    provider_state: str
    raw_state: str
    labels: Mapping[str, str]
    created_at: datetime | None
    claimed_lease_id: str | None  # lease named by its labels (LEON docker labels / metadata)
    claim: str | None  # "lease_exists" | "lease_points_elsewhere" | "lease_missing" | None
    confirmed: bool | None  # None: provider list is authoritative; False: awaiting GET confirmation
    resources: InstanceResources | None = None

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.instance_id}"


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    name: str
    kind: str
    status: ProviderStatus
    error: str | None
    listed_at: datetime | None
    instance_count: int | None
    age_s: float | None = None  # age of `listed_at` at reconcile time


@dataclass(frozen=True, slots=True)
class GroundTruth:
    generated_at: datetime
    providers: tuple[ProviderHealth, ...]
    rows: tuple[GroundTruthRow, ...] = field(repr=False)
    orphans: tuple[OrphanRow, ...] = field(repr=False)
    db_path: str | None = None
    schema_variant: str | None = None
    # sandbox.db rows that belong to no lease row and were ignored (DbState.problems): warnings.
    db_problems: tuple[str, ...] = ()


# Detail records (domain/detail_records.py), created on first use: see that module.
_DETAIL = frozenset((
    "CommandChunk", "CommandOutput", "InstanceHistoryRecord", "SyncFileRecord",
    "TerminalCommandRecord", "ThreadPointerRecord", "VolumeRecord",
))  # fmt: skip


__getattr__ = lazy_exports(globals(), _DETAIL, "opcockpit.domain.detail_records")
