"""OpenTelemetry export: LEON runs as traces, cockpit ledger events as log records.

Mapping (GenAI semantic conventions, Development status, as of semconv v1.41.0):
- a run (events.db `run_events` sharing one run_id) is an `invoke_agent` INTERNAL span:
  gen_ai.operation.name=invoke_agent, gen_ai.provider.name (Required; "leon" unless configured),
  gen_ai.conversation.id=thread_id; leon.run.id / leon.run.status / leon.run.source custom.
  Start = run_start (else the first event), end = run_done (else the last event).
- each tool_call/tool_result pair (matched by id; a repeated tool_call id is one call) is an
  `execute_tool {name}` child: gen_ai.tool.name, gen_ai.tool.call.id, gen_ai.tool.type=function.
  Arguments and results are never exported (opt-in/sensitive in semconv).
- task_start/task_done/task_error are child spans too (`invoke_agent` for agent tasks,
  `execute_tool {task_type}` otherwise); task_error is an error.
- the run's final `error` (one a later `retry` did not supersede) sets status Error + error.type;
  a retried error is a WARN log record, never a span error (semconv: handled errors are not).
  error, retry and cancelled are also log records correlated with the run span.
- ids are derived from (thread_id, run_id), so pushing a run twice lands in the same trace.
- ledger events become LogRecords with EventName `opcockpit.<type>`, Timestamp = occurred_at
  (else observed_at), ObservedTimestamp = observed_at, subject keys as `opcockpit.*` attributes,
  before/after in the body, `log.record.uid` = the ledger's event id.

Nothing here blocks on the network: records go to a `TelemetrySink` (bounded queue, background
worker); this module only reads events.db / the ledger and never writes to either.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opcockpit.domain.models import RunEventRecord
from opcockpit.domain.runs import RunSummary
from opcockpit.domain.secrets import scrub
from opcockpit.domain.text import error_line, one_line
from opcockpit.ports.errors import SourceError
from opcockpit.ports.leon import EventsReader
from opcockpit.ports.telemetry import (
    SEVERITY_ERROR,
    SEVERITY_INFO,
    SEVERITY_WARN,
    ExportStats,
    LogOut,
    SpanOut,
    TelemetrySink,
)

__all__ = [
    "ContinuousExporter",
    "LedgerFeed",
    "PushReport",
    "ledger_log",
    "push_once",
    "run_telemetry",
]

# The ledger, until its port lands: feed(after_id, since, limit) -> events (dicts or models with
# id/seq, type, occurred_at, observed_at, source, subject keys, before/after), oldest first.
# Blocking or async; it must only read.
LedgerFeed = Callable[[int, datetime | None, int], Sequence[Any] | Awaitable[Sequence[Any]]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ERROR_CLASS = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Timeout|Exceeded|Exit))\b")
_WARN_WORDS = ("fail", "fired", "vanish", "error", "orphan_appeared", "diverg")
_SUBJECT_KEYS = ("lease_id", "instance_id", "thread_id", "provider")
FINISHED = ("completed", "error", "cancelled")


def _ns(dt: datetime | None) -> int | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(microseconds=1) * 1000


def _id(bits: int, *parts: str) -> int:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[: bits // 8], "big") or 1  # zero ids are invalid in OTLP


def _data(raw: str) -> dict[str, Any]:
    try:
        obj = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _clean(text: object) -> str:
    return scrub(one_line(text))


def error_type(text: str | None) -> str:
    """A low-cardinality error.type: the exception class a message starts with, else `_OTHER`."""
    m = _ERROR_CLASS.match(text or "")
    return m.group(1) if m else "_OTHER"


# --------------------------------------------------------------------------- runs -> spans


@dataclass
class _Child:
    key: str
    name: str
    start: int
    attrs: dict[str, Any]
    end: int | None = None
    error: str | None = None


def run_telemetry(
    events: Sequence[RunEventRecord], *, provider_name: str = "leon", agent_name: str | None = None
) -> tuple[list[SpanOut], list[LogOut]]:
    """One run's events (same run_id) -> its spans (root first) and its log records. Pure."""
    evs = sorted((e for e in events if e.created_at is not None), key=lambda e: e.seq)
    if not evs:
        return [], []
    thread_id, run_id = evs[0].thread_id, evs[0].run_id
    trace = _id(128, "leon-run", thread_id, run_id)
    root = _id(64, "leon-run", thread_id, run_id, "run")
    first = _ns(evs[0].created_at) or 0
    start = next((_ns(e.created_at) for e in evs if e.event_type == "run_start"), None) or first
    dones = [_ns(e.created_at) for e in evs if e.event_type == "run_done"]
    end = dones[-1] if dones else _ns(evs[-1].created_at) or start
    children: dict[str, _Child] = {}
    logs: list[LogOut] = []
    final_error: str | None = None
    cancelled_ids: set[str] | None = None
    source = None
    conv = {"gen_ai.conversation.id": thread_id}

    def log(e: RunEventRecord, name: str, sev: int, body: Any, **attrs: Any) -> None:
        logs.append(LogOut(
            event_name=name, timestamp_ns=_ns(e.created_at) or 0, observed_ns=None, severity_number=sev,
            severity_text={SEVERITY_INFO: "INFO", SEVERITY_WARN: "WARN"}.get(sev, "ERROR"), body=body,
            attributes={**conv, "leon.run.id": run_id, "log.record.uid": f"{thread_id}:{e.seq}", **attrs},
            trace_id=trace, span_id=root,
        ))  # fmt: skip

    for e in evs:
        d, t = _data(e.data), _ns(e.created_at) or start
        kind = e.event_type
        if kind == "run_start":
            source = d.get("source") if isinstance(d.get("source"), str) else source
        elif kind == "tool_call":
            call_id = str(d.get("id") or f"seq-{e.seq}")
            if f"tool:{call_id}" in children:
                continue  # LEON writes a call twice (empty args, then full): one call
            name = str(d.get("name") or "unknown")
            children[f"tool:{call_id}"] = _Child(call_id, f"execute_tool {name}", t, {
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                "gen_ai.tool.call.id": call_id, "gen_ai.tool.type": "function", **conv,
            })  # fmt: skip
        elif kind == "tool_result":
            call_id = str(d.get("tool_call_id") or d.get("id") or f"seq-{e.seq}")
            child = children.get(f"tool:{call_id}")
            if child is None:  # a result whose call is gone (retention, a cut stream): zero length
                name = str(d.get("name") or "unknown")
                child = children[f"tool:{call_id}"] = _Child(call_id, f"execute_tool {name}", t, {
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                    "gen_ai.tool.call.id": call_id, "gen_ai.tool.type": "function", **conv,
                })  # fmt: skip
            if child.end is None:
                child.end = t
                if d.get("is_error") or d.get("status") == "error" or d.get("error"):
                    err = d.get("error") if isinstance(d.get("error"), str) else "tool returned an error"
                    child.error = _clean(err)
        elif kind in ("task_start", "task_done", "task_error"):
            task_id = str(d.get("task_id") or f"seq-{e.seq}")
            child = children.get(f"task:{task_id}")
            if child is None:
                ttype = str(d.get("task_type") or "task")
                op = "invoke_agent" if ttype == "agent" else "execute_tool"
                attrs = {
                    "gen_ai.operation.name": op,
                    "leon.task.id": task_id,
                    "leon.task.type": ttype,
                    **conv,
                }
                if op == "execute_tool":
                    attrs["gen_ai.tool.name"] = ttype
                name = "invoke_agent" if op == "invoke_agent" else f"execute_tool {ttype}"
                child = children[f"task:{task_id}"] = _Child(task_id, name, t, attrs)
            if kind != "task_start" and child.end is None:
                child.end = t
                if kind == "task_error":
                    child.error = _clean(d.get("error") or d.get("message") or "task failed")
        elif kind == "error":
            text = d.get("error") if isinstance(d.get("error"), str) else (e.data or "error")
            final_error = _clean(text)
            log(e, "leon.run.error", SEVERITY_ERROR, final_error, **{"error.type": error_type(final_error)})
        elif kind == "retry":
            final_error = None  # LEON retried: the earlier error was handled, not the run's outcome
            log(e, "leon.run.retry", SEVERITY_WARN, {k: d[k] for k in ("attempt", "max_attempts") if k in d})
        elif kind == "cancelled":
            ids = d.get("cancelled_tool_call_ids")
            cancelled_ids = {str(i) for i in ids} if isinstance(ids, list) else set()
            log(e, "leon.run.cancelled", SEVERITY_INFO, _clean(d.get("message") or "cancelled"))

    finished = bool(dones) or final_error is not None or cancelled_ids is not None
    status = (
        "cancelled" if cancelled_ids is not None
        else "error" if final_error is not None
        else "completed" if dones else "running"
    )  # fmt: skip
    spans: list[SpanOut] = []
    for key, c in children.items():
        attrs = dict(c.attrs)
        err = c.error
        if c.end is None and finished:
            if cancelled_ids is not None and (not cancelled_ids or c.key in cancelled_ids):
                err = "cancelled"
            elif final_error is not None:
                err = "no result before the run failed"
            else:
                err = "no result before the run ended"
        elif c.end is None:
            attrs["leon.in_progress"] = True
        if err is not None:
            attrs["error.type"] = "cancelled" if err == "cancelled" else error_type(err)
        spans.append(SpanOut(
            trace_id=trace, span_id=_id(64, "leon-run", thread_id, run_id, key), parent_span_id=root,
            name=c.name, start_ns=c.start, end_ns=c.end if c.end is not None else end,
            attributes=attrs, error=err,
        ))  # fmt: skip
    root_attrs: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": provider_name, **conv,
        "leon.run.id": run_id, "leon.run.status": status, "leon.run.event_count": len(evs),
    }  # fmt: skip
    if agent_name:
        root_attrs["gen_ai.agent.name"] = agent_name
    if source:
        root_attrs["leon.run.source"] = source
    if final_error is not None:
        root_attrs["error.type"] = error_type(final_error)
    root_span = SpanOut(
        trace_id=trace, span_id=root, parent_span_id=None,
        name=f"invoke_agent {agent_name}" if agent_name else "invoke_agent",
        start_ns=start, end_ns=max(end, start), attributes=root_attrs, error=final_error,
    )  # fmt: skip
    return [root_span, *spans], logs


# --------------------------------------------------------------------------- ledger -> logs


def _get(ev: Any, name: str) -> Any:
    if isinstance(ev, Mapping):
        return ev.get(name)
    return getattr(ev, name, None)


def _plain(value: Any) -> Any:
    """An OTLP AnyValue: JSON-shaped data (datetimes, enums, models as text)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        from opcockpit.domain.timeutil import parse_ts

        return parse_ts(value)
    return None


def event_id(ev: Any) -> int | None:
    for key in ("id", "event_id", "seq"):
        value = _get(ev, key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def ledger_log(ev: Any) -> LogOut:
    """One ledger event -> a LogRecord (see the module doc). Tolerates dicts and models."""
    etype = str(_get(ev, "type") or _get(ev, "event_type") or "event")
    observed = _when(_get(ev, "observed_at"))
    occurred = _when(_get(ev, "occurred_at")) or observed
    attrs: dict[str, Any] = {}
    subject = _get(ev, "subject")
    subject = subject if isinstance(subject, Mapping) else {}
    for key in _SUBJECT_KEYS:
        value = _get(ev, key)
        if value is None:
            value = subject.get(key, subject.get(key.removesuffix("_id")))
        if value is not None:
            name = "provider.name" if key == "provider" else key.replace("_id", ".id")
            attrs[f"opcockpit.{name}"] = str(value)
    if _get(ev, "source") is not None:
        attrs["opcockpit.event.source"] = str(_plain(_get(ev, "source")))
    eid = event_id(ev)
    if eid is not None:
        attrs["log.record.uid"] = f"opcockpit-ledger:{eid}"
    body = {k: _plain(_get(ev, k)) for k in ("before", "after") if _get(ev, k) is not None}
    warn = any(w in etype for w in _WARN_WORDS)
    return LogOut(
        event_name=f"opcockpit.{etype}", timestamp_ns=_ns(occurred) or 0, observed_ns=_ns(observed),
        severity_number=SEVERITY_WARN if warn else SEVERITY_INFO, severity_text="WARN" if warn else "INFO",
        body=body or None, attributes=attrs,
    )  # fmt: skip


# --------------------------------------------------------------------------- reading


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _read_runs(
    reader: EventsReader, since: datetime | None, skip: Iterable[str] = ()
) -> tuple[list[tuple[RunSummary, list[RunEventRecord]]], int]:
    """Finished runs with activity since `since` (not in `skip`) with their events; and how many
    runs were skipped because they are still running."""
    skip = set(skip)
    out, running = [], 0
    for run in await reader.runs(since=since):
        if run.run_id in skip:
            continue
        if run.status not in FINISHED:
            running += 1
            continue
        out.append((run, await reader.run_events(run.run_id, limit=None)))
    return out, running


async def _read_ledger(feed: LedgerFeed, after: int, since: datetime | None, limit: int) -> list[Any]:
    result = feed(after, since, limit)
    if inspect.isawaitable(result):
        return list(await result)
    return list(await asyncio.to_thread(lambda: list(result)))  # type: ignore[arg-type]


@dataclass
class PushReport:
    runs: int = 0
    spans: int = 0
    logs: int = 0
    running_skipped: int = 0
    delivered: bool = False
    stats: ExportStats = field(default_factory=ExportStats)
    source_errors: list[str] = field(default_factory=list)


async def push_once(
    sink: TelemetrySink,
    *,
    since: datetime | None,
    events_db: str | None,
    events_reader: Callable[[str], EventsReader] | None,
    ledger_feed: LedgerFeed | None = None,
    timeout_s: float = 10.0,
    provider_name: str = "leon",
    ledger_limit: int = 100_000,
) -> PushReport:
    """Read what happened since `since`, submit it, wait at most `timeout_s` for delivery, close
    the sink. The CLI's `export otlp` (cron). Source read failures are reported, not raised."""
    rep = PushReport()
    if events_db and events_reader is not None:
        try:
            async with events_reader(str(events_db)) as reader:
                runs, rep.running_skipped = await _read_runs(reader, since)
        except SourceError as exc:
            rep.source_errors.append(str(exc))
            runs = []
        for _run, events in runs:
            spans, logs = run_telemetry(events, provider_name=provider_name)
            sink.submit(spans, logs)
            rep.runs, rep.spans, rep.logs = rep.runs + 1, rep.spans + len(spans), rep.logs + len(logs)
    if ledger_feed is not None:
        try:
            events = await _read_ledger(ledger_feed, 0, since, ledger_limit)
        except Exception as exc:  # the ledger port raises LedgerError; report, never crash the push
            rep.source_errors.append(error_line(exc))
            events = []
        sink.submit((), [ledger_log(e) for e in events])
        rep.logs += len(events)
    rep.delivered = await asyncio.to_thread(sink.flush, timeout_s)
    await asyncio.to_thread(sink.close, 0.0)
    rep.stats = sink.stats()
    rep.delivered = rep.delivered and rep.stats.dropped == 0
    return rep


# --------------------------------------------------------------------------- continuous


class ContinuousExporter:
    """Exports new ledger events and newly finished runs every `interval_s` while the TUI runs.

    `start()` (sync, inside a running loop) and `await stop()`; `drops` / `stats()` for the
    header. Each tick reads only what is new (events.db: skipped when MAX(seq) is unchanged;
    ledger: by id watermark); the network is the sink's worker thread, so a dead collector costs
    the screen nothing and only grows `drops`. Source errors land in `source_error`.
    """

    def __init__(
        self,
        sink: TelemetrySink,
        *,
        events_db: str | None,
        events_reader: Callable[[str], EventsReader] | None,
        ledger_feed: LedgerFeed | None = None,
        interval_s: float = 5.0,
        clock: Callable[[], datetime] | None = None,
        provider_name: str = "leon",
        batch_limit: int = 5000,
    ) -> None:
        self.sink = sink
        self.events_db = events_db
        self.events_reader = events_reader
        self.ledger_feed = ledger_feed
        self.interval_s = max(0.5, interval_s)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.provider_name = provider_name
        self.batch_limit = batch_limit
        self.source_error: str | None = None
        self._since = self.clock()  # only what happens from now on: no re-export on every launch
        self._ledger_after = 0
        self._last_seq: int | None = None
        self._done: dict[str, datetime] = {}  # run_id -> last activity: exported once
        self._task: asyncio.Task[None] | None = None

    @property
    def drops(self) -> int:
        return self.sink.stats().dropped

    def stats(self) -> ExportStats:
        return self.sink.stats()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="opcockpit-otlp-export")

    async def stop(self, timeout_s: float = 2.0) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(self.sink.close, timeout_s)

    async def _loop(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.interval_s)

    async def tick(self) -> int:
        """One pass; returns how many records were handed to the sink. Never raises."""
        n = 0
        errors: list[str] = []
        try:
            n += await self._tick_runs()
        except SourceError as exc:
            errors.append(str(exc))
        if self.ledger_feed is not None:
            try:
                events = await _read_ledger(self.ledger_feed, self._ledger_after, None, self.batch_limit)
            except Exception as exc:  # LedgerError: the ledger is unavailable; the screen goes on
                errors.append(error_line(exc))
                events = []
            fresh = [e for e in events if (event_id(e) or 0) > self._ledger_after or event_id(e) is None]
            if fresh:
                self._ledger_after = max([self._ledger_after, *(event_id(e) or 0 for e in fresh)])
                self.sink.submit((), [ledger_log(e) for e in fresh])
                n += len(fresh)
        self.source_error = "; ".join(errors) or None
        return n

    async def _tick_runs(self) -> int:
        if not self.events_db or self.events_reader is None:
            return 0
        n = 0
        async with self.events_reader(str(self.events_db)) as reader:
            latest = getattr(reader, "latest_seq", None)
            seq = await latest() if latest is not None else None
            if seq is not None and seq == self._last_seq:
                return 0  # nothing committed since the last look
            # runs() filters on last activity; a minute of slack covers second-resolution stamps
            since = self._since - timedelta(seconds=60)
            runs, _running = await _read_runs(reader, since, skip=self._done)
            self._last_seq = seq
        for run, events in runs:
            spans, logs = run_telemetry(events, provider_name=self.provider_name)
            self.sink.submit(spans, logs)
            n += len(spans) + len(logs)
            self._done[run.run_id] = run.last_event_at or self.clock()
        self._since = max(self._since, self.clock() - timedelta(seconds=self.interval_s))
        horizon = self._since - timedelta(seconds=120)  # older runs are outside runs(since) anyway
        self._done = {k: v for k, v in self._done.items() if v >= horizon}
        return n
