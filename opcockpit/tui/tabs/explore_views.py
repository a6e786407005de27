"""What the Explore tab's timeline and chart views draw for a result (pure: text lines).

The tab cycles table -> timeline -> chart (`v` or ctrl+t). Which picture fits depends on the
result's shape, decided here so it is tested without a terminal:

- a `| count by time B` result: the chart is its buckets (vertical bars, empty buckets as zero);
- a group count (`| count by f`, `| group by f | count`): the chart is one bar per group;
- plain rows with the dataset's time field: the timeline puts each row on a track (a span when
  the row has an end: runs, sessions), and the chart counts the rows per automatic time bucket;
- anything else says, in one line, why there is nothing to draw and what would give a picture.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from opcockpit.domain.query import DATASETS, QueryError, parse
from opcockpit.domain.query.ast import CountByTime
from opcockpit.tui.widgets.chart import bar_chart, time_chart, timeline

__all__ = ["MODES", "auto_bucket_s", "render_mode"]

MODES = ("table", "timeline", "chart")
HOUR, DAY = 3600, 86_400
NICE_BUCKETS_S = (1, 5, 10, 30, 60, 300, 600, 900, 1800, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 7 * DAY)
MAX_AUTO_BUCKETS = 60


def auto_bucket_s(first: datetime, last: datetime, max_buckets: int = MAX_AUTO_BUCKETS) -> float:
    """The smallest round bucket size that puts first..last into at most `max_buckets` buckets."""
    span = (last - first).total_seconds()
    for size in NICE_BUCKETS_S:
        if span / size < max_buckets:
            return float(size)
    return float(NICE_BUCKETS_S[-1])


def _bucket_of(text: str) -> float | None:
    try:
        stages = parse(text).stages
    except QueryError:
        return None
    return next((st.bucket_s for st in stages if isinstance(st, CountByTime)), None)


def _auto_counts(rows: list[dict[str, Any]], tf: str) -> tuple[list[dict[str, Any]], float]:
    times = [r[tf] for r in rows if isinstance(r.get(tf), datetime)]
    if not times:
        return [], 60.0
    size = auto_bucket_s(min(times), max(times))
    cnt = Counter(datetime.fromtimestamp(t.timestamp() - t.timestamp() % size, tz=UTC) for t in times)
    return [{"time": t, "count": n} for t, n in sorted(cnt.items())], size


def render_mode(mode: str, result: Any, query_text: str, *, width: int, ascii: bool) -> list[str]:
    """The lines the timeline or chart view shows for `result` (an Explore Result)."""
    if result is None:
        return ["run a query first; then v (or ctrl+t) cycles table / timeline / chart"]
    cols = tuple(result.columns)
    rows = result.rows
    spec = DATASETS.get(result.dataset)
    tf = spec.time_field if spec is not None else ""
    counted = bool(cols) and cols[-1] == "count"
    if mode == "chart":
        if "time" in cols and counted:
            bucket = _bucket_of(query_text) or 60.0
            return time_chart(rows, bucket_s=bucket, width=width, ascii=ascii)
        if counted:
            return bar_chart(rows, cols[:-1], width=width, ascii=ascii)
        if tf in cols:
            counts, size = _auto_counts(rows, tf)
            lines = time_chart(counts, bucket_s=size, width=width, ascii=ascii)
            return [*lines, f"(rows counted by {tf}; `| count by time 5m` picks the bucket)"]
        return [f"nothing to chart: add `| count by FIELD` or `| count by time 5m` (no {tf} column)"]
    if mode == "timeline":
        if counted:
            return ["the timeline shows rows, not counts: press v for the chart, or drop the count stage"]
        # a row's start reads better than its latest change (runs: started, not last_event)
        tf = "started" if "started" in cols else tf
        if tf not in cols:
            return [f"no {tf or 'time'} column in the result to put on a timeline"]
        wanted = (*spec.facets, spec.key) if spec is not None else ()  # the long id last: it is clipped
        labels = [c for c in wanted if c in cols and c != tf]
        return timeline(rows, time_field=tf, label_fields=labels[-4:], width=width, ascii=ascii)
    return []
