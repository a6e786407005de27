"""A run as a span waterfall: the spans the OTLP export builds, drawn on the run's time axis."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from opcockpit.domain.models import RunEventRecord
from opcockpit.formats.waterfall import render_waterfall, waterfall_rows
from opcockpit.services.export import run_telemetry

T0 = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)


def _ev(seq: int, at_s: float, kind: str, **data: object) -> RunEventRecord:
    return RunEventRecord(
        seq=seq, thread_id="thread-1", run_id="run-1", event_type=kind, data=json.dumps(data),
        message_id=None, created_at=T0 + timedelta(seconds=at_s),
    )  # fmt: skip


def _run() -> list[RunEventRecord]:
    """10 s run: `bash` 1-5 s ok, `read` 6-6.2 s failed, `write` called at 9 s, never answered."""
    return [
        _ev(1, 0, "run_start", source="owner"),
        _ev(2, 1, "tool_call", id="c1", name="bash", args={}),
        _ev(3, 5, "tool_result", tool_call_id="c1", content="ok"),
        _ev(4, 6, "tool_call", id="c2", name="read"),
        _ev(5, 6.2, "tool_result", tool_call_id="c2", is_error=True, error="ENOENT: no such file"),
        _ev(6, 9, "tool_call", id="c3", name="write"),
        _ev(7, 10, "run_done"),
    ]


def test_rows_place_each_call_on_the_runs_axis() -> None:
    spans, _ = run_telemetry(_run())
    rows = waterfall_rows(spans, cells=100)
    assert [r.name for r in rows] == [
        "invoke_agent", "execute_tool bash", "execute_tool read", "execute_tool write",
    ]  # fmt: skip
    root, bash, read, write = rows
    assert (root.start_cell, root.end_cell, root.duration_s) == (0, 100, 10.0)
    assert (bash.start_cell, bash.end_cell, bash.offset_s, bash.duration_s) == (10, 50, 1.0, 4.0)
    assert (read.start_cell, read.end_cell, read.status) == (60, 62, "error")
    assert read.error == "ENOENT: no such file"
    # the run ended without a result for `write`: an error span up to the run's end
    assert (write.start_cell, write.end_cell, write.status) == (90, 100, "error")
    assert write.error == "no result before the run ended"


def test_render_fits_the_width_and_names_errors() -> None:
    spans, _ = run_telemetry(_run())
    for width in (80, 120):
        lines = render_waterfall(spans, width=width)
        assert all(len(line) <= width for line in lines), [len(x) for x in lines]
    lines = render_waterfall(spans, width=80)
    bash = next(x for x in lines if "execute_tool bash" in x)
    assert "+1.0s" in bash and "4.0s" in bash and "█" in bash
    read = lines.index(next(x for x in lines if "execute_tool read" in x))
    assert "✗" in lines[read] and "ENOENT: no such file" in lines[read + 1]
    assert "200ms" in lines[read]


def test_ascii_and_a_running_call() -> None:
    events = _run()[:6]  # no run_done: `write` is still running
    spans, _ = run_telemetry(events)
    lines = render_waterfall(spans, width=80, ascii_only=True)
    assert all(ch.isascii() for line in lines for ch in line)
    write = next(x for x in lines if "execute_tool write" in x)
    assert "~|" in write and "#" in write
    assert render_waterfall([], width=80) == [lines[0]]
