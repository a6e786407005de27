"""What the services need of LEON's databases: the sandbox.db reader, the events.db reader and the
LEON-way writer. The implementations live in `opcockpit.adapters.leon`; `wiring` passes them in as
a `LeonAccess` (factories, so each use opens and closes its own short-lived connection).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol

from opcockpit.domain.models import DbState, LeaseRecord

if TYPE_CHECKING:  # annotations only: the snapshot path loads this port but never these records
    from opcockpit.domain.models import LeaseEventRecord, ProviderEventRecord, RunEventRecord
    from opcockpit.domain.runs import RunSummary

__all__ = [
    "EventsReader",
    "LeonAccess",
    "LeonWriterPort",
    "SandboxReader",
    "WriteError",
    "WriteErrorKind",
]

WriteErrorKind = Literal["read_only", "locked", "missing", "schema", "conflict", "integrity", "io"]


class WriteError(Exception):
    """A write to sandbox.db was refused or failed; nothing of it was written (one line)."""

    def __init__(self, kind: WriteErrorKind, message: str) -> None:
        message = " ".join(message.split())
        super().__init__(message)
        self.kind: WriteErrorKind = kind
        self.message = message

    def __str__(self) -> str:
        return self.message


class SandboxReader(Protocol):
    """A read-only sandbox.db connection (`async with factory(path) as r:`). Raises SourceError."""

    async def __aenter__(self) -> SandboxReader: ...

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def lease(self, lease_id: str) -> LeaseRecord | None: ...

    async def find_leases(self, prefix: str) -> list[LeaseRecord]: ...

    async def threads_for_lease(self, lease_id: str) -> list[str]: ...

    async def lease_events(
        self, *, since: datetime | None = None, limit: int | None = None
    ) -> list[LeaseEventRecord]: ...

    async def provider_events(
        self, *, since: datetime | None = None, limit: int | None = None
    ) -> list[ProviderEventRecord]: ...

    @property
    def lease_history_source(self) -> str:
        """The table `lease_events()` reads: "lease_events", or "provider_events" (matched by
        `matched_lease_id`) where the source has no lease_events table (Mycel on PostgreSQL)."""
        ...


class EventsReader(Protocol):
    """A read-only events.db connection. Raises SourceError."""

    async def __aenter__(self) -> EventsReader: ...

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def runs(
        self, thread_id: str | None = None, *, since: datetime | None = None, limit: int | None = None
    ) -> list[RunSummary]: ...

    async def run_events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = 500
    ) -> list[RunEventRecord]: ...

    async def latest_seq(self) -> int: ...


class LeonWriterPort(Protocol):
    """Operator-action writes to sandbox.db the way LEON writes them (blocking; raise WriteError).
    Records (intent, snapshots) are the adapter's; services only pass them back and read
    `.as_dict()` / `.lease_id` / `.terminal_id` / `.after` from them."""

    def write_intent(
        self,
        lease_id: str,
        action: str,
        *,
        expect_instance_id: str | None,
        payload: dict[str, Any] | None = None,
    ) -> Any: ...

    def record_success(self, intent: Any, *, outcome: str, payload: dict[str, Any] | None = None) -> Any: ...

    def record_failure(self, intent: Any, message: str, *, payload: dict[str, Any] | None = None) -> Any: ...

    def record_unknown(self, intent: Any, message: str, *, payload: dict[str, Any] | None = None) -> Any: ...

    def adopt(
        self,
        provider: str,
        instance_id: str,
        state: str,
        *,
        aliases: Sequence[str] = (),
        thread_id: str | None = None,
        cwd: str = "/workspace",
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class LeonAccess:
    """The LEON adapters, as factories the services call (built once by `wiring`)."""

    # read_db_state(path) -> DbState (sync or async): the reconcile input, one read
    read_db_state: Callable[[str], DbState | Awaitable[DbState]]
    # sandbox_reader(path, *, local_tz=None) -> SandboxReader
    sandbox_reader: Callable[..., SandboxReader]
    # events_reader(path) -> EventsReader
    events_reader: Callable[[str], EventsReader]
    # writer(path, *, operator, read_only, busy_timeout_s, clock) -> LeonWriterPort
    writer: Callable[..., LeonWriterPort]
    # db_tracker(path, *, resync_s) -> a long-lived change-detecting reader with
    # `async read_state(*, now) -> DbState` (same result as read_db_state), `invalidate(reason)`
    # and `async aclose()`; None: every refresh reads the whole DB.
    db_tracker: Callable[..., Any] | None = None
