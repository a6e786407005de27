"""What the export service needs of a telemetry backend (OTLP today): hand over finished spans and
log records without ever blocking, learn what was sent and what was dropped.

The records are plain data with explicit ids and nanosecond timestamps, so the service decides
the trace shape (deterministic ids: re-exporting a run lands in the same trace) and the adapter
only encodes and ships. The OTLP implementation lives in `opcockpit.adapters.otlp`; `wiring`
builds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["AttrValue", "ExportStats", "LogOut", "SpanOut", "TelemetrySink"]

AttrValue = str | bool | int | float | Sequence[str]

# OTel SeverityNumber values the service uses (logs data model): INFO, WARN, ERROR.
SEVERITY_INFO = 9
SEVERITY_WARN = 13
SEVERITY_ERROR = 17


@dataclass(frozen=True, slots=True)
class SpanOut:
    """One finished span. `error` None leaves the status Unset (semconv: success is Unset)."""

    trace_id: int  # 128-bit, non-zero
    span_id: int  # 64-bit, non-zero
    parent_span_id: int | None
    name: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, AttrValue]
    error: str | None = None  # status Error with this description


@dataclass(frozen=True, slots=True)
class LogOut:
    """One event as an OTel LogRecord (EventName set; the `event.name` attribute is deprecated)."""

    event_name: str
    timestamp_ns: int  # when it happened
    observed_ns: int | None  # when the cockpit saw it
    severity_number: int
    severity_text: str
    body: Any  # AnyValue: str, number, bool, list, dict of those
    attributes: Mapping[str, AttrValue]
    trace_id: int | None = None  # correlate with a span (run events)
    span_id: int | None = None


@dataclass(frozen=True, slots=True)
class ExportStats:
    """What a sink did so far. `dropped` counts records that will never reach the collector (queue
    full, export failed, closed before sent); the source (ledger, events.db) still has them."""

    sent_spans: int = 0
    sent_logs: int = 0
    dropped: int = 0
    queued: int = 0
    failures: int = 0  # failed export requests
    last_error: str | None = None  # one line, secrets scrubbed
    endpoint: str = ""  # redacted


class TelemetrySink(Protocol):
    """Never blocks the caller: `submit` enqueues (what does not fit is dropped and counted) and a
    background worker exports with a per-request deadline."""

    def submit(self, spans: Sequence[SpanOut] = (), logs: Sequence[LogOut] = ()) -> int:
        """Enqueue; returns how many records were accepted (the rest are counted as dropped)."""
        ...

    def flush(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the queue to drain; True when everything queued was exported."""
        ...

    def stats(self) -> ExportStats: ...

    def close(self, timeout_s: float = 0.0) -> None:
        """Flush for at most `timeout_s`, then stop; whatever is still queued counts as dropped."""
        ...
