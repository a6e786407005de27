"""Command palette (`:` or ctrl+p): jump to tabs, to a lease/thread/instance by id, run commands."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from textual.command import DiscoveryHit, Hit, Hits, Provider

from opcockpit.domain.models import GroundTruth

MAX_ROW_HITS = 30


class Cockpit(Protocol):
    """What the palette needs from the app (a protocol, so this module does not import app.py)."""

    TABS: tuple[tuple[str, str], ...]
    ground_truth: GroundTruth | None

    def show_tab(self, tab: str) -> None: ...
    def open_lease(self, lease_id: str) -> None: ...
    def focus_orphan(self, key: str) -> None: ...
    def action_refresh_now(self) -> None: ...
    def action_toggle_freeze(self) -> None: ...
    def action_clear_filter(self) -> None: ...
    def action_help(self) -> None: ...
    def action_audit(self) -> None: ...


class JumpProvider(Provider):
    @property
    def cockpit(self) -> Cockpit:
        return self.app  # type: ignore[return-value]

    def _static(self) -> list[tuple[str, Callable[[], Any], str]]:
        app = self.cockpit
        out: list[tuple[str, Callable[[], Any], str]] = [
            (f"Go to {title}", partial(app.show_tab, tab), f"tab {n}")
            for n, (tab, title) in enumerate(app.TABS, start=1)
        ]
        out += [
            ("Refresh now", app.action_refresh_now, "ctrl+r"),
            ("Freeze / unfreeze updates", app.action_toggle_freeze, "z"),
            ("Clear filter", app.action_clear_filter, "Esc"),
            ("Help: keys and filter syntax", app.action_help, "?"),
            ("Audit log: operator actions (audit)", app.action_audit, ":audit"),
        ]
        return out

    async def discover(self) -> Hits:
        for title, callback, help_text in self._static():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._static():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
        gt = self.cockpit.ground_truth
        if gt is None or len(query) < 2:
            return
        q = query.casefold()
        shown = 0
        for row in gt.rows:
            ids = (row.lease_id, row.thread_id or "", row.instance_id or "")
            if any(q in i.casefold() for i in ids):
                label = f"Open lease {row.lease_id} · {row.thread_id or '-'} · {row.instance_id or '-'}"
                yield Hit(
                    0.9,
                    label,
                    partial(self.cockpit.open_lease, row.lease_id),
                    help=f"{row.provider} {row.convergence.value}",
                )
                shown += 1
                if shown >= MAX_ROW_HITS:
                    break
        for o in gt.orphans:
            if q in o.instance_id.casefold():
                yield Hit(
                    0.8,
                    f"Show orphan {o.key}",
                    partial(self.cockpit.focus_orphan, o.key),
                    help=o.provider_state,
                )
