"""OTLP/HTTP (protobuf) export of spans and log records: the `TelemetrySink` port over
opentelemetry-sdk's data types and opentelemetry-exporter-otlp-proto-http's exporters.

Why not the SDK's Batch*Processor: the cockpit needs (1) spans with ids the service chose (a
re-export of a run lands in the same trace) and (2) an exact, visible drop count. So this module
keeps its own bounded queue and one daemon worker thread that calls the exporters directly;
`submit` never blocks (a full queue drops and counts), each export request has a deadline
(`timeout_s`, retries included, enforced by the exporter), and `close` aborts pending retries.

Where the collector is (documented in docs/export.md; config wins because it is the explicit
choice for this tool, env is the machine-wide default):
  1. `[export.otlp] endpoint` (a base URL: /v1/traces and /v1/logs are appended)
  2. OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_LOGS_ENDPOINT (used as-is)
  3. OTEL_EXPORTER_OTLP_ENDPOINT (base URL), else http://localhost:4318
Headers: OTEL_EXPORTER_OTLP_HEADERS (`k=v,k2=v2`), then the variable named by
`[export.otlp] headers_env` (same format) on top, key by key. Header values are registered with
the redactor and never printed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from opcockpit.domain.secrets import redact_url, remember, remember_url, scrub
from opcockpit.domain.text import one_line
from opcockpit.ports.telemetry import ExportStats, LogOut, SpanOut

__all__ = ["DEFAULT_ENDPOINT", "OtlpExporter", "OtlpTarget", "parse_headers", "resolve_target"]

DEFAULT_ENDPOINT = "http://localhost:4318"
_EXPORTER_LOGGERS = ("opentelemetry.exporter", "opentelemetry.sdk")


@dataclass(frozen=True)
class OtlpTarget:
    """Where to send and with which headers. `repr` never shows header values."""

    traces_url: str
    logs_url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    origin: str = "default"  # where the endpoint came from (for messages)

    @property
    def shown(self) -> str:
        """The endpoint for humans: credentials in the URL redacted."""
        return redact_url(self.traces_url.removesuffix("/v1/traces"))


def parse_headers(text: str | None) -> dict[str, str]:
    """`k1=v1,k2=v2` (OTEL_EXPORTER_OTLP_HEADERS format, values percent-decoded); malformed
    items are skipped, never echoed (they may be credentials)."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        key, sep, value = item.partition("=")
        key = unquote(key.strip())
        if sep and key:
            out[key.lower()] = unquote(value.strip())
    return out


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + path


def resolve_target(
    endpoint: str | None, headers_env: str | None, env: Mapping[str, str] | None = None
) -> OtlpTarget:
    """The collector and headers from the config table and the OTEL_* variables (see module doc)."""
    env = os.environ if env is None else env
    if endpoint:
        traces, logs, origin = (
            _join(endpoint, "/v1/traces"),
            _join(endpoint, "/v1/logs"),
            "[export.otlp] endpoint",
        )
    else:
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT
        origin = "$OTEL_EXPORTER_OTLP_ENDPOINT" if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "default"
        traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or _join(base, "/v1/traces")
        logs = env.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT") or _join(base, "/v1/logs")
    headers = parse_headers(env.get("OTEL_EXPORTER_OTLP_HEADERS"))
    if headers_env:
        headers.update(parse_headers(env.get(headers_env)))
    for value in headers.values():
        remember(value)  # scrub() now hides it wherever it might surface
    remember_url(traces)
    remember_url(logs)
    return OtlpTarget(traces, logs, headers, origin)


class _LastError(logging.Handler):
    """Keeps the exporters' last warning (why an export failed) as one scrubbed line, and stops
    them reaching stderr (Python's last-resort handler would paint over the TUI)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.last = one_line(scrub(record.getMessage()))
        except Exception:  # a logging handler must never raise
            self.last = "export failed"


_HANDLER = _LastError()
for _name in _EXPORTER_LOGGERS:
    logging.getLogger(_name).addHandler(_HANDLER)
    logging.getLogger(_name).propagate = False


class OtlpExporter:
    """`TelemetrySink` over OTLP/HTTP. Thread-safe; the worker starts on the first `submit`."""

    def __init__(
        self,
        target: OtlpTarget,
        *,
        timeout_s: float = 10.0,
        queue_size: int = 2048,
        batch_size: int = 512,
        service_name: str = "opcockpit",
        service_version: str | None = None,
    ) -> None:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.target = target
        self.timeout_s = timeout_s
        self.queue_size = max(1, queue_size)
        self.batch_size = max(1, batch_size)
        attrs = {"service.name": service_name}
        if service_version:
            attrs["service.version"] = service_version
        # Resource.create merges OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME (the env wins there).
        self._resource = Resource.create(attrs)
        self._scope = InstrumentationScope("opcockpit", service_version)
        headers = dict(target.headers)
        self._spans_exp = OTLPSpanExporter(endpoint=target.traces_url, headers=headers, timeout=timeout_s)
        self._logs_exp = OTLPLogExporter(endpoint=target.logs_url, headers=headers, timeout=timeout_s)
        self._q: deque[SpanOut | LogOut] = deque()
        self._cv = threading.Condition()
        self._inflight = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._sent_spans = self._sent_logs = self._dropped = self._failures = 0
        self._last_error: str | None = None

    # ------------------------------------------------------------------ the port

    def submit(self, spans: Sequence[SpanOut] = (), logs: Sequence[LogOut] = ()) -> int:
        items: list[SpanOut | LogOut] = [*spans, *logs]
        with self._cv:
            if self._closed:
                self._dropped += len(items)
                return 0
            room = max(0, self.queue_size - len(self._q))
            accepted = items[:room]
            self._dropped += len(items) - len(accepted)
            self._q.extend(accepted)
            if accepted:
                self._ensure_worker()
                self._cv.notify_all()
            return len(accepted)

    def flush(self, timeout_s: float) -> bool:
        with self._cv:
            failures = self._failures
            self._cv.wait_for(lambda: not self._q and not self._inflight, timeout=max(0.0, timeout_s))
            return not self._q and not self._inflight and self._failures == failures

    def stats(self) -> ExportStats:
        with self._cv:
            return ExportStats(
                sent_spans=self._sent_spans,
                sent_logs=self._sent_logs,
                dropped=self._dropped,
                queued=len(self._q) + self._inflight,
                failures=self._failures,
                last_error=self._last_error,
                endpoint=self.target.shown,
            )

    @property
    def drops(self) -> int:
        with self._cv:
            return self._dropped

    def close(self, timeout_s: float = 0.0) -> None:
        if timeout_s > 0:
            self.flush(timeout_s)
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._dropped += len(self._q)
            self._q.clear()
            self._cv.notify_all()
        # shutdown() sets the exporters' shutdown event: a retry loop in flight gives up now.
        self._spans_exp.shutdown()
        self._logs_exp.shutdown()

    # ------------------------------------------------------------------ worker

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="opcockpit-otlp", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._q or self._closed)
                if self._closed:
                    return
                batch = [self._q.popleft() for _ in range(min(self.batch_size, len(self._q)))]
                self._inflight = len(batch)
            spans = [s for s in batch if isinstance(s, SpanOut)]
            logs = [r for r in batch if isinstance(r, LogOut)]
            ok_spans = self._export(self._spans_exp, [self._span(s) for s in spans]) if spans else True
            ok_logs = self._export(self._logs_exp, [self._log(r) for r in logs]) if logs else True
            with self._cv:
                self._inflight = 0
                self._sent_spans += len(spans) if ok_spans else 0
                self._sent_logs += len(logs) if ok_logs else 0
                lost = (0 if ok_spans else len(spans)) + (0 if ok_logs else len(logs))
                if lost:
                    self._dropped += lost
                    self._failures += 1
                    self._last_error = _HANDLER.last or f"export to {self.target.shown} failed"
                    _HANDLER.last = None
                self._cv.notify_all()

    def _export(self, exporter: object, records: list[object]) -> bool:
        try:
            result = exporter.export(records)  # type: ignore[attr-defined]
        except Exception as exc:  # the exporter should not raise; a bug there must not kill the worker
            _HANDLER.last = one_line(scrub(f"{type(exc).__name__}: {exc}"))
            return False
        return getattr(result, "name", "") == "SUCCESS"

    # ------------------------------------------------------------------ encoding

    def _span(self, s: SpanOut) -> object:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        flags = TraceFlags(TraceFlags.SAMPLED)
        ctx = SpanContext(s.trace_id, s.span_id, is_remote=False, trace_flags=flags)
        parent = (
            SpanContext(s.trace_id, s.parent_span_id, is_remote=False, trace_flags=flags)
            if s.parent_span_id
            else None
        )
        status = Status(StatusCode.ERROR, s.error) if s.error is not None else Status(StatusCode.UNSET)
        return ReadableSpan(
            name=s.name, context=ctx, parent=parent, resource=self._resource,
            attributes=dict(s.attributes), kind=SpanKind.INTERNAL, status=status,
            start_time=s.start_ns, end_time=max(s.end_ns, s.start_ns), instrumentation_scope=self._scope,
        )  # fmt: skip

    def _log(self, r: LogOut) -> object:
        from opentelemetry._logs import LogRecord, SeverityNumber
        from opentelemetry.sdk._logs import ReadableLogRecord
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

        context = None
        if r.trace_id and r.span_id:
            sc = SpanContext(
                r.trace_id, r.span_id, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)
            )
            context = set_span_in_context(NonRecordingSpan(sc))
        record = LogRecord(
            timestamp=r.timestamp_ns, observed_timestamp=r.observed_ns, context=context,
            severity_text=r.severity_text, severity_number=SeverityNumber(r.severity_number),
            body=r.body, attributes=dict(r.attributes), event_name=r.event_name,
        )  # fmt: skip
        return ReadableLogRecord(record, resource=self._resource, instrumentation_scope=self._scope)
