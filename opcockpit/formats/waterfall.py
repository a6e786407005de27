"""A run's spans as a text waterfall (issue 10: "a run can be shown as a span waterfall").

Pure: the spans `services.export.run_telemetry` builds for OTLP (root first, then one per tool
call or task) become aligned lines of name, start offset, duration, status and a bar placed on
the run's time axis, so the TUI and any text surface draw the same picture the trace backend
would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from opcockpit.domain.text import safe_text
from opcockpit.domain.timeutil import fmt_duration
from opcockpit.ports.telemetry import SpanOut

__all__ = ["MARK_COLUMN", "WaterfallRow", "render_waterfall", "waterfall_rows"]

_NS = 1_000_000_000
NAME_WIDTH = 28
MARK_COLUMN = NAME_WIDTH + 1 + 7 + 1 + 7 + 1  # where a span line's status mark sits
_FIXED = MARK_COLUMN + 1 + 2  # name, offset, duration, status mark, bar fences


@dataclass(frozen=True, slots=True)
class WaterfallRow:
    name: str
    offset_s: float  # from the run's start
    duration_s: float
    status: str  # "ok" | "error" | "running"
    error: str | None
    start_cell: int  # bar cells [start_cell, end_cell) on an axis of `cells`
    end_cell: int


def _status(span: SpanOut) -> str:
    if span.error is not None:
        return "error"
    return "running" if span.attributes.get("leon.in_progress") else "ok"


def waterfall_rows(spans: Sequence[SpanOut], *, cells: int) -> list[WaterfallRow]:
    """Root first, then children by start time, each with its bar on an axis `cells` wide."""
    if not spans:
        return []
    root, children = spans[0], sorted(spans[1:], key=lambda s: (s.start_ns, s.end_ns, s.name))
    origin = min(s.start_ns for s in spans)
    total = max(max(s.end_ns for s in spans) - origin, 1)
    cells = max(cells, 1)
    rows = []
    for span in (root, *children):
        start = (span.start_ns - origin) / total * cells
        end = (max(span.end_ns, span.start_ns) - origin) / total * cells
        first = min(int(start), cells - 1)
        last = max(min(math.ceil(end), cells), first + 1)  # a zero-length call still shows
        rows.append(WaterfallRow(
            name=span.name, offset_s=(span.start_ns - origin) / _NS,
            duration_s=max(span.end_ns - span.start_ns, 0) / _NS, status=_status(span),
            error=span.error, start_cell=first, end_cell=last,
        ))  # fmt: skip
    return rows


def render_waterfall(spans: Sequence[SpanOut], *, width: int, ascii_only: bool = False) -> list[str]:
    """Lines fitting `width` columns (at least a 10-cell bar): a header, then one line a span,
    errors named under their span."""
    cells = max(width - _FIXED, 10)
    full, mark_err, mark_run = ("#", "x", "~") if ascii_only else ("█", "✗", "…")
    lines = [f"{'SPAN':<{NAME_WIDTH}} {'START':>7} {'DUR':>7}   {'timeline':<{cells}}"]
    for i, row in enumerate(waterfall_rows(spans, cells=cells)):
        name = safe_text(("" if i == 0 else "  ") + row.name)
        if len(name) > NAME_WIDTH:
            name = name[: NAME_WIDTH - 1] + ("~" if ascii_only else "…")
        mark = {"error": mark_err, "running": mark_run}.get(row.status, " ")
        bar = " " * row.start_cell + full * (row.end_cell - row.start_cell)
        lines.append(
            f"{name:<{NAME_WIDTH}} {'+' + fmt_duration(row.offset_s):>7} {fmt_duration(row.duration_s):>7} "
            f"{mark}|{bar:<{cells}}|"
        )
        if row.error:
            lines.append(f"{'':<{NAME_WIDTH}}   {safe_text(row.error)[: max(width - NAME_WIDTH - 3, 10)]}")
    return lines
