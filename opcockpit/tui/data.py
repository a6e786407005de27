"""What the TUI reads besides GroundTruth: thread detail, provider events, run events.

`DetailSource` is the TUI's port; `DbDetails` implements it on the LEON readers the wiring Cockpit
carries (`Cockpit.leon`: the sandbox.db and events.db reader factories), so the TUI names no
adapter. Every section is fetched independently so one failing query shows up as that section's
error, not a blank screen.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from opcockpit.domain.models import (
    ChatSessionRecord,
    CommandOutput,
    InstanceHistoryRecord,
    LeaseEventRecord,
    LeaseRecord,
    ProviderEventRecord,
    RunEventRecord,
    TerminalCommandRecord,
    TerminalRecord,
    ThreadPointerRecord,
    VolumeRecord,
)
from opcockpit.domain.runs import RunSummary
from opcockpit.domain.text import error_line, safe_text

if TYPE_CHECKING:
    from opcockpit.ports.leon import LeonAccess
    from opcockpit.wiring import Cockpit

T = TypeVar("T")
OUTPUT_TAIL_BYTES = 256 * 1024  # a command's output view: enough scrollback, bounded for chatty builds


@dataclass(slots=True)
class ThreadDetail:
    thread_id: str | None
    lease_id: str
    lease: LeaseRecord | None = None
    terminals: list[TerminalRecord] = field(default_factory=list)
    pointer: ThreadPointerRecord | None = None  # the thread's active/default terminal
    volume: VolumeRecord | None = None  # Mycel: the lease's sandbox_volumes row
    sessions: list[ChatSessionRecord] = field(default_factory=list)
    instances: list[InstanceHistoryRecord] = field(default_factory=list)
    lease_events: list[LeaseEventRecord] = field(default_factory=list)
    commands: list[TerminalCommandRecord] = field(default_factory=list)
    runs: list[RunSummary] = field(default_factory=list)  # newest activity first
    run_id: str | None = None  # the run whose events are in `run_events` (the newest)
    run_events: list[RunEventRecord] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # section -> one-line error
    notes: dict[str, str] = field(default_factory=dict)  # section -> why it is empty (not an error)


class DetailSource(Protocol):
    async def thread_detail(self, thread_id: str | None, lease_id: str) -> ThreadDetail: ...

    async def runs(self, thread_id: str, limit: int = 20) -> list[RunSummary]: ...

    async def run_events(self, run_id: str, after_seq: int) -> list[RunEventRecord]: ...

    async def command_output(self, command_id: str) -> CommandOutput: ...

    async def provider_events(
        self, *, provider: str | None = None, since: datetime | None = None, limit: int = 500
    ) -> list[ProviderEventRecord]: ...

    async def lease_events_around(
        self, lease_id: str, at: datetime | None, window: timedelta = timedelta(minutes=10)
    ) -> list[LeaseEventRecord]: ...

    async def aclose(self) -> None: ...


# Per dataclass type: its init field names and a getter of their values as one tuple (None: not
# a dataclass). `dataclasses.fields()` per value was most of `clean`'s cost on an alert round
# (~2,700 firing alerts, each with evidence and deliveries).
_FIELDS: dict[type, tuple[tuple[str, ...], Callable[[Any], Any]] | None] = {}
# Types whose values hold no foreign text; enum classes join on first sight (their values are
# constants of our code, not DB or provider text).
_SCALARS: set[type] = {int, float, bool, type(None), datetime, timedelta}


def _fields_of(cls: type) -> tuple[tuple[str, ...], Callable[[Any], Any]] | None:
    try:
        return _FIELDS[cls]
    except KeyError:
        pass
    plan = None
    if dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls) if f.init)
        if len(names) > 1:  # attrgetter of one name returns the value, not a 1-tuple
            plan = (names, attrgetter(*names))
        elif names:
            plan = (names, lambda v, name=names[0]: (getattr(v, name),))
    _FIELDS[cls] = plan
    return plan


def clean(value: T) -> T:
    """`value` with every string in it (records, lists, dicts, nested) made terminal-safe.

    DB rows and provider text are written by other programs; an ESC in them would reach the
    operator's terminal as a control sequence (retitle, OSC 52 clipboard write). Newlines are kept
    (command output, payloads); screens that need one line clip/replace them. Unchanged values
    are returned as-is (no copies on the common, clean path). Printable strings and scalars inside
    records and tuples are checked inline, without a call of their own: most fields are plain
    text, and a call each was most of an alert round's clean."""
    kind = type(value)
    if kind is str:
        return value if value.isprintable() else safe_text(value, single_line=False)  # type: ignore
    if kind in _SCALARS:
        return value
    if isinstance(value, Enum):
        _SCALARS.add(kind)
        return value
    if isinstance(value, str):  # a str subclass
        return value if value.isprintable() else safe_text(value, single_line=False)  # type: ignore
    if isinstance(value, list):
        return [clean(v) for v in value]  # type: ignore[return-value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        out: list[Any] | None = None
        for i, v in enumerate(value):
            k = type(v)
            if (k is str and v.isprintable()) or k in _SCALARS:
                continue
            new = clean(v)
            if new is not v:
                if out is None:
                    out = list(value)
                out[i] = new
        return value if out is None else tuple(out)  # type: ignore[return-value]
    if isinstance(value, dict):
        for v in value.values():
            k = type(v)
            if not ((k is str and v.isprintable()) or k in _SCALARS):
                return {k: clean(v) for k, v in value.items()}  # type: ignore[return-value]
        return value
    plan = _FIELDS[kind] if kind in _FIELDS else _fields_of(kind)
    if plan is not None:
        names, getter = plan
        changed = {}
        for name, old in zip(names, getter(value), strict=True):
            k = type(old)
            if (k is str and old.isprintable()) or k in _SCALARS:
                continue
            new = clean(old)
            if new is not old and new != old:
                changed[name] = new
        return dataclasses.replace(value, **changed) if changed else value  # type: ignore[return-value]
    return value


class DbDetails:
    """DetailSource on sandbox.db (+ events.db when configured), through `leon`'s reader factories.

    The readers stay open for the app's lifetime (`aclose` closes them). They are typed `Any`: the
    detail queries (terminals, sessions, command output, ...) are the TUI's, wider than the
    services' `SandboxReader`/`EventsReader` ports."""

    def __init__(self, sandbox_db: str, events_db: str | None = None, *, leon: LeonAccess) -> None:
        self.sandbox_db = sandbox_db
        self.events_db = events_db
        self._leon = leon
        self._sandbox: Any = None
        self._events: Any = None
        self._events_unavailable: str | None = None if events_db else "no events.db configured"

    @classmethod
    def of(cls, cockpit: Cockpit) -> DbDetails:
        """The detail source of `cockpit`'s settings, on its LEON readers."""
        sources = cockpit.settings.sources
        events = str(sources.events_db) if sources.events_db else None
        return cls(str(sources.sandbox_db), events, leon=cockpit.leon)

    async def _db(self) -> Any:
        if self._sandbox is None:
            self._sandbox = await self._leon.sandbox_reader(self.sandbox_db).__aenter__()
        return self._sandbox

    async def _ev(self) -> Any:
        if self._events is None and self._events_unavailable is None:
            self._events = await self._leon.events_reader(str(self.events_db)).__aenter__()
        return self._events

    async def _section(
        self, detail: ThreadDetail, name: str, fn: Callable[[], Awaitable[T]], default: T
    ) -> T:
        try:
            return await fn()
        except Exception as exc:  # one broken section must not hide the others
            detail.errors[name] = error_line(exc)
            return default

    async def thread_detail(self, thread_id: str | None, lease_id: str) -> ThreadDetail:
        d = ThreadDetail(thread_id=thread_id, lease_id=lease_id)
        try:
            db = await self._db()
        except Exception as exc:
            d.errors["sandbox.db"] = error_line(exc)
            return d
        d.lease = await self._section(d, "lease", lambda: db.lease(lease_id), None)
        volume_id = d.lease.volume_id if d.lease is not None else None
        if volume_id:
            vols = await self._section(d, "instances", lambda: db.volumes([volume_id]), [])
            d.volume = vols[0] if vols else None
        d.instances = await self._section(d, "instances", lambda: db.instance_history(lease_id), [])
        d.lease_events = await self._section(
            d, "lease_events", lambda: db.lease_events(lease_id, limit=200), []
        )
        if getattr(db, "lease_history_source", "lease_events") == "provider_events":  # Mycel on PostgreSQL
            d.notes["lease_events"] = "from provider_events by matched_lease_id (no lease_events table)"
        if thread_id:
            d.terminals = await self._section(d, "terminals", lambda: db.thread_terminals(thread_id), [])
            d.pointer = await self._section(d, "terminals", lambda: db.thread_pointer(thread_id), None)
            d.sessions = await self._section(d, "sessions", lambda: db.thread_sessions(thread_id), [])
            ids = [t.terminal_id for t in d.terminals]
            d.commands = await self._section(d, "commands", lambda: db.terminal_commands(ids, limit=50), [])
            d.runs = await self._section(d, "runs", lambda: self.runs(thread_id), [])
            if d.runs:
                run_id = d.run_id = d.runs[0].run_id
                d.run_events = await self._section(d, "runs", lambda: self.run_events(run_id, 0), [])
            if self._events_unavailable and "runs" not in d.errors:
                d.notes["runs"] = self._events_unavailable
        else:
            d.notes["terminals"] = "no thread is bound to this lease"
        return clean(d)

    async def runs(self, thread_id: str, limit: int = 20) -> list[RunSummary]:
        ev = await self._ev()
        return [] if ev is None else clean(list(await ev.runs(thread_id, limit=limit)))

    async def run_events(self, run_id: str, after_seq: int) -> list[RunEventRecord]:
        ev = await self._ev()
        return [] if ev is None else clean(list(await ev.run_events(run_id, after_seq=after_seq, limit=500)))

    async def command_output(self, command_id: str) -> CommandOutput:
        db = await self._db()
        return clean(await db.command_output(command_id, tail_bytes=OUTPUT_TAIL_BYTES))

    async def provider_events(
        self, *, provider: str | None = None, since: datetime | None = None, limit: int = 500
    ) -> list[ProviderEventRecord]:
        db = await self._db()
        return clean(list(await db.provider_events(provider=provider, since=since, limit=limit)))

    async def lease_events_around(
        self, lease_id: str, at: datetime | None, window: timedelta = timedelta(minutes=10)
    ) -> list[LeaseEventRecord]:
        db = await self._db()
        if at is None:
            return clean(list(await db.lease_events(lease_id, limit=20)))
        return clean(list(await db.lease_events(lease_id, since=at - window, until=at + window, limit=50)))

    async def aclose(self) -> None:
        for reader in (self._sandbox, self._events):
            if reader is not None:
                with contextlib.suppress(Exception):  # closing a read-only reader is best effort
                    await reader.__aexit__(None, None, None)
        self._sandbox = self._events = None
