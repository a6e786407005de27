"""Global search in the command palette (ctrl+p): a thread id, run id, lease id, instance id or
any text finds matching items across the Explore datasets (the old console's search box).

Each dataset is searched with the query language's free text (a case-insensitive substring of
any text field), a few rows each, concurrently and under a short time budget; a dataset that
cannot be read is skipped (the palette is no place for source errors; Explore shows them).
A hit jumps: a lease in the current picture opens its detail, a thread opens its lease's detail,
an orphan is focused; anything else opens the Explore tab on that row (`dataset key=value`).
Searches are not written to the query history (one per keystroke would bury it).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import Hit, Hits, Provider

from opcockpit.domain.query import DATASETS
from opcockpit.domain.text import safe_text

__all__ = ["SEARCH_DATASETS", "SearchProvider", "search_items"]

SEARCH_DATASETS = ("leases", "orphans", "runs", "sessions", "commands", "events")
PER_DATASET = 4
BUDGET_S = 2.0
MIN_CHARS = 3


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    dataset: str
    key: str
    row: dict[str, Any]

    @property
    def label(self) -> str:
        r = self.row
        bits = [self.dataset.rstrip("s"), self.key]
        for f in ("thread_id", "lease_id", "provider", "status", "type", "command"):
            v = r.get(f)
            if v and str(v) != self.key:
                bits.append(str(v))
        return safe_text(" · ".join(bits))[:120]


async def search_items(service: Any, text: str, ground_truth: Any) -> list[Item]:
    """Up to PER_DATASET items per dataset whose text fields contain `text`."""
    quiet = dataclasses.replace(service, store=None)

    async def one(ds: str) -> list[Item]:
        try:
            res = await quiet.run(
                f"{ds} {_quote(text)} | limit {PER_DATASET}", ground_truth=ground_truth, timeout_s=BUDGET_S
            )
        except Exception:  # unreadable / not configured: skipped here, Explore says why
            return []
        key = DATASETS[ds].key
        out = []
        for r in res.rows:
            k = f"{r['provider']}/{r['instance_id']}" if ds == "orphans" else r.get(key)
            if k is not None:
                out.append(Item(ds, str(k), r))
        return out

    found = await asyncio.gather(*(one(ds) for ds in SEARCH_DATASETS if ds in DATASETS))
    return [item for items in found for item in items]


def jump(app: Any, item: Item) -> None:
    from opcockpit.tui.tabs.explore import ExploreView, open_thread

    r = item.row
    rows = getattr(app, "_rows_by_key", {}) or {}
    if item.dataset == "orphans":
        app.focus_orphan(item.key)
        return
    lease = r.get("lease_id")
    if lease and lease in rows:
        app.open_lease(lease)
        return
    thread = r.get("thread_id")
    gt = getattr(app, "ground_truth", None)
    if thread and gt is not None and any(thread in x.thread_ids or thread == x.thread_id for x in gt.rows):
        open_thread(app, thread)
        return
    key_field = DATASETS[item.dataset].key
    app.show_tab("explore")
    app.query_one(ExploreView).run_query(f"{item.dataset} {key_field}={_quote(item.key)}")


class SearchProvider(Provider):
    """ctrl+p: ids and text across leases, orphans, runs, sessions, commands and events."""

    def _service(self) -> Any:
        from opcockpit.tui.tabs.explore import ExploreView

        views = self.app.query(ExploreView)
        return views.first().service if views else getattr(self.app, "explore", None)

    async def search(self, query: str) -> Hits:
        text = query.strip()
        if len(text) < MIN_CHARS:
            return
        service = self._service()
        if service is None:
            return
        matcher = self.matcher(text)
        items = await search_items(service, text, getattr(self.app, "ground_truth", None))
        for item in items:
            label = item.label
            score = matcher.match(label)
            yield Hit(
                max(score, 0.5),
                matcher.highlight(label),
                _callback(self.app, item),
                help=f"search: {item.dataset}",
            )


def _callback(app: Any, item: Item) -> Callable[[], None]:
    return partial(jump, app, item)
