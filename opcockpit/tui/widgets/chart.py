"""Terminal charts for Explore results: counts over time, counts by group, and a timeline.

Pure text rendering (lists of lines), so the same output is tested without a terminal and shown
in the Explore tab's chart pane. Every function fits its `width` (the tab passes the pane's
width, ≤ 80 columns on an 80x24 terminal). `ascii=True` draws with `#`, `-`, `|`, `*` only: a
NO_COLOR or limited terminal (TERM=dumb/linux/vt*, a non-UTF-8 locale) still reads it.

- `time_chart`: rows of `| count by time B` -> vertical bars per bucket (empty buckets between the
  first and the last are drawn as zero: a gap in the data is visible, not squeezed out), plus a
  sparkline summary line. More buckets than columns -> adjacent buckets are summed.
- `bar_chart`: rows of `| count by f` / `| group by f | count` -> one horizontal bar per group.
- `timeline`: time-stamped rows -> one line per row in time order, a track across the rows' time
  span with the row's instant (`●`) or its span start..end (`━`) drawn where it falls.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from opcockpit.domain.text import safe_text

__all__ = ["ascii_terminal", "bar_chart", "sparkline", "time_chart", "timeline"]

BLOCKS = " ▁▂▃▄▅▆▇█"  # vertical eighths (time bars, sparkline)
HBLOCKS = " ▏▎▍▌▋▊▉█"  # horizontal eighths (group bars)
ASCII_LEVELS = " .:-=+*#"
END_FIELDS = ("ended", "finished", "resolved", "settled")  # a row's span end, when it has one


def ascii_terminal(environ: Mapping[str, str] | None = None, encoding: str | None = None) -> bool:
    """Draw charts in ASCII? NO_COLOR set (non-empty), a limited TERM, or a non-UTF-8 output."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("OPCOCKPIT_ASCII"):
        return True
    term = env.get("TERM", "")
    if term in ("dumb", "linux") or term.startswith("vt"):
        return True
    enc = encoding if encoding is not None else _locale_encoding(env)
    return "utf" not in enc.lower().replace("-", "")


def _locale_encoding(env: Mapping[str, str]) -> str:
    for var in ("LC_ALL", "LC_CTYPE", "LANG"):
        if env.get(var):
            return env[var]
    return "UTF-8"  # no locale said: Textual itself assumes UTF-8


def _fmt_n(n: float) -> str:
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    return f"{n:g}"


def sparkline(values: Sequence[float], *, ascii: bool = False) -> str:
    """One character per value, scaled to the maximum (0 -> blank, any non-zero -> visible)."""
    levels = ASCII_LEVELS if ascii else BLOCKS
    top = max(values, default=0) or 1
    out = []
    for v in values:
        i = 0 if v <= 0 else max(1, math.ceil(v / top * (len(levels) - 1)))
        out.append(levels[i])
    return "".join(out)


def _fill_buckets(rows: Sequence[Mapping[str, Any]], bucket_s: float) -> tuple[list[datetime], list[int]]:
    """Sum counts per bucket (over any group fields) with the empty buckets in between as zero."""
    sums: dict[datetime, int] = {}
    for r in rows:
        t = r.get("time")
        if isinstance(t, datetime):
            sums[t] = sums.get(t, 0) + int(r.get("count") or 0)
    if not sums:
        return [], []
    first, last = min(sums), max(sums)
    step = timedelta(seconds=bucket_s)
    n = min(int((last - first) / step) + 1, 100_000) if bucket_s > 0 else len(sums)
    times = [first + i * step for i in range(n)] if bucket_s > 0 else sorted(sums)
    return times, [sums.get(t, 0) for t in times]


def _hhmm(t: datetime, bucket_s: float) -> str:
    t = t.astimezone(UTC)
    if bucket_s >= 86_400:
        return t.strftime("%m-%d")
    return t.strftime("%m-%d %H:%M") if bucket_s >= 60 else t.strftime("%H:%M:%S")


def time_chart(
    rows: Sequence[Mapping[str, Any]],
    *,
    bucket_s: float,
    width: int = 78,
    height: int = 8,
    ascii: bool = False,
) -> list[str]:
    """Vertical bars of counts per time bucket, a y axis with the maximum, an x axis with the
    first and last bucket's time, and a one-line total."""
    times, counts = _fill_buckets(rows, bucket_s)
    if not times:
        return ["no time buckets to chart (the query returned no rows)"]
    axis_w = len(_fmt_n(sum(counts))) + 1  # room for the maximum after buckets are merged
    plot_w = max(width - axis_w - 1, 4)
    merge = math.ceil(len(counts) / plot_w)
    if merge > 1:  # more buckets than columns: each column sums `merge` adjacent buckets
        counts = [sum(counts[i : i + merge]) for i in range(0, len(counts), merge)]
        times = times[::merge]
    top = max(counts) or 1
    full, eighths = ("#", " ") if ascii else ("█", BLOCKS)
    # few buckets: each gets several columns (a 1-column gap between bars from 3 up) so the bars
    # read as bars and the axis has room for both times
    cw = max(1, min(plot_w // len(counts), 6))
    lines = []
    for level in range(height, 0, -1):
        cells = []
        for c in counts:
            units = c / top * height  # bar height in rows (fractional)
            if units >= level:
                cells.append(full)
            elif not ascii and units > level - 1:
                cells.append(eighths[max(1, round((units - level + 1) * 8))])
            elif ascii and c > 0 and level == 1:
                cells.append(".")  # a non-zero count never draws as nothing
            else:
                cells.append(" ")
        if cw > 1:
            gap = " " if cw >= 3 else ""
            cells = [c * (cw - len(gap)) + gap for c in cells]
        label = _fmt_n(top) if level == height else ("0" if level == 1 else "")
        lines.append(f"{label:>{axis_w - 1}} {'|' if ascii else '│'}{''.join(cells)}")
    cols = len(counts) * cw
    rule = "+" + "-" * cols if ascii else "└" + "─" * cols
    lines.append(" " * axis_w + rule)
    left, right = _hhmm(times[0], bucket_s), _hhmm(times[-1], bucket_s)
    gap = max(cols + 1 - len(left) - len(right), 1)
    fits = cols > len(left) + len(right)
    lines.append(" " * axis_w + (left + " " * gap + right if fits else left))
    per = _dur(bucket_s * merge)
    lines.append(f"{sum(counts)} rows in {len(counts)} buckets of {per} (UTC), max {top} per bucket")
    return [line[:width] for line in lines]


def _dur(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def bar_chart(
    rows: Sequence[Mapping[str, Any]],
    group: Sequence[str],
    *,
    width: int = 78,
    limit: int = 40,
    ascii: bool = False,
) -> list[str]:
    """One horizontal bar per group (the rows' order: biggest first), labels cut to fit."""
    if not rows:
        return ["no groups to chart (the query returned no rows)"]
    shown = list(rows[:limit])
    none = "(none)" if ascii else "∅"
    labels = [" ".join(none if r.get(f) in (None, "") else str(r.get(f)) for f in group) for r in shown]
    labels = [safe_text(s) or "all" for s in labels]  # DB/provider text: never a control sequence
    counts = [int(r.get("count") or 0) for r in shown]
    label_w = min(max(len(s) for s in labels), max(width // 3, 8))
    num_w = max(len(str(c)) for c in counts)
    bar_w = max(width - label_w - num_w - 3, 4)
    top = max(counts) or 1
    out = []
    for label, c in zip(labels, counts, strict=True):
        units = c / top * bar_w
        if ascii:
            bar = "#" * int(units) or ("." if c else "")
        else:
            bar = "█" * int(units) + (HBLOCKS[round((units % 1) * 8)].strip() if units % 1 else "")
            bar = bar or ("▏" if c else "")
        if ascii:
            label = label.encode("ascii", "replace").decode()
        out.append(f"{_clip(label, label_w, ascii):<{label_w}} {c:>{num_w}} {bar}")
    if len(rows) > limit:
        more = "..." if ascii else "…"
        out.append(f"{more} {len(rows) - limit} more groups (narrow the query or add | limit N)")
    return [line[:width] for line in out]


def _clip(text: str, n: int, ascii: bool = False) -> str:
    return text if len(text) <= n else text[: max(n - 1, 0)] + ("~" if ascii else "…")


def timeline(
    rows: Sequence[Mapping[str, Any]],
    *,
    time_field: str,
    label_fields: Sequence[str],
    width: int = 78,
    limit: int = 200,
    ascii: bool = False,
) -> list[str]:
    """Rows in time order, each with its place on a track spanning the first..last time."""
    stamped = [r for r in rows if isinstance(r.get(time_field), datetime)]
    if not stamped:
        return [f"no rows with a {time_field} time to put on a timeline"]
    stamped.sort(key=lambda r: r[time_field])
    end_field = next((f for f in END_FIELDS if any(isinstance(r.get(f), datetime) for r in stamped)), None)
    start = stamped[0][time_field]
    ends = [r[end_field] for r in stamped if end_field and isinstance(r.get(end_field), datetime)]
    stop = max([stamped[-1][time_field], *ends])
    span = (stop - start).total_seconds() or 1.0
    track_w = max(min(width // 3, 30), 8)
    label_w = max(width - 15 - track_w - 3, 8)
    dot, bar, empty, edge = ("*", "=", "-", "|") if ascii else ("●", "━", "·", "│")
    arrow = "->" if ascii else "→"
    out = [f"{len(stamped)} rows, {_hhmm(start, 60)} {arrow} {_hhmm(stop, 60)} UTC (track: that span)"]
    for r in stamped[:limit]:
        t0 = r[time_field]
        a = min(int((t0 - start).total_seconds() / span * (track_w - 1)), track_w - 1)
        t1 = r.get(end_field) if end_field else None
        cells = [empty] * track_w
        if isinstance(t1, datetime) and t1 > t0:
            b = min(int((t1 - start).total_seconds() / span * (track_w - 1)), track_w - 1)
            for i in range(a, b + 1):
                cells[i] = bar
        cells[a] = dot
        what = safe_text(" ".join(str(r.get(f)) for f in label_fields if r.get(f) not in (None, "")))
        if ascii:
            what = what.encode("ascii", "replace").decode()
        stamp = t0.astimezone(UTC).strftime("%m-%d %H:%M:%S")
        out.append(f"{stamp:<14} {edge}{''.join(cells)}{edge} {_clip(what, label_w, ascii)}")
    if len(stamped) > limit:
        more = "..." if ascii else "…"
        out.append(f"{more} {len(stamped) - limit} more rows (narrow the query or add | limit N)")
    if len(stamped) < len(rows):
        out.append(f"{len(rows) - len(stamped)} rows have no {time_field} and are not shown")
    return [line[:width] for line in out]
