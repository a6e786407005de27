"""Jumps: the fuzzy command palette (ctrl+p: tabs, a lease/thread/instance by id, commands, the
saved queries pinned to the palette) and k9s-style `:` jumps (`:orphans`, `:alerts`, `:events`,
`:thread ID`, `:lease ID`, `:orphan ID`, `:ctx [NAME]` to switch deployment: tui/contexts.py)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, Protocol

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from opcockpit.domain.models import GroundTruth
from opcockpit.tui.widgets.in_order_input import InOrderInput

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
        return out + self._pinned_queries()

    def _pinned_queries(self) -> list[tuple[str, Callable[[], Any], str]]:
        """The saved queries pinned to the palette (the Explore tab keeps them loaded)."""
        from opcockpit.tui.tabs.explore import ExploreView

        app: Any = self.app
        try:
            view = app.screen_stack[0].query_one(ExploreView)
        except Exception:  # an app without the Explore tab (tests, embedders)
            return []
        return [
            (f"Run saved query {name}", partial(_run_saved, app, view, name), query[:60])
            for name, query in view.palette_pins
        ]

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


def _run_saved(app: Any, view: Any, name: str) -> None:
    app.show_tab("explore")
    view.run_saved(name)


# ---------------------------------------------------------------------- `:` jumps (k9s)

JUMP_HINT = ":orphans :alerts :events :gt :audit :ctx :help :thread ID :lease ID :orphan ID (Esc closes)"

_TABS = {
    "gt": "ground-truth",
    "ground-truth": "ground-truth",
    "groundtruth": "ground-truth",
    "leases": "ground-truth",
    "lease": "ground-truth",
    "orphans": "orphans",
    "orphan": "orphans",
    "or": "orphans",
    "events": "events",
    "event": "events",
    "ev": "events",
    "alerts": "alerts",
    "alert": "alerts",
    "al": "alerts",
}


def _one(kind: str, ref: str, found: list[str]) -> str | None:
    """None when `found` is exactly one id; else the one line saying why not."""
    if len(found) == 1:
        return None
    if not found:
        return f"no {kind} matches {ref!r}"
    shown = ", ".join(found[:3]) + (f" +{len(found) - 3} more" if len(found) > 3 else "")
    return f"{len(found)} {kind}s match {ref!r}: {shown}; type more of the id"


def _matches(ref: str, ids: list[str]) -> list[str]:
    """Exact id first, else every id containing `ref` (case-insensitive)."""
    if ref in ids:
        return [ref]
    q = ref.casefold()
    return sorted({i for i in ids if q in i.casefold()})


class JumpCockpit(Cockpit, Protocol):
    gt_table: Any

    def push_screen(self, screen: Any, callback: Any = None) -> Any: ...
    def notify(self, message: str, **kwargs: Any) -> None: ...


def resolve_jump(app: JumpCockpit, text: str) -> Callable[[], None] | str:
    """`text` (without the colon) -> what to do, or the one line saying why it cannot."""
    verb, _, ref = text.strip().lstrip(":").strip().partition(" ")
    verb, ref = verb.casefold(), ref.strip()
    if not verb:
        return f"type a jump: {JUMP_HINT}"
    if verb in ("ctx", "context"):
        from opcockpit.tui.contexts import context_jump

        return context_jump(app, ref)
    gt = app.ground_truth
    if ref and verb in ("lease", "thread", "orphan"):
        if gt is None:
            return "no fleet picture yet: nothing to jump to"
        if verb == "lease":
            found = _matches(ref, [r.lease_id for r in gt.rows])
            return _one("lease", ref, found) or partial(_focus_lease, app, found[0])
        if verb == "thread":
            threads = [r.thread_id for r in gt.rows if r.thread_id]
            found = _matches(ref, threads)
            if err := _one("thread", ref, found):
                return err
            lease = next(r.lease_id for r in gt.rows if r.thread_id == found[0])
            return partial(app.open_lease, lease)
        keys = [o.key for o in gt.orphans]
        found = _matches(ref, keys)
        return _one("orphan", ref, found) or partial(app.focus_orphan, found[0])
    if ref:
        return f"{verb!r} takes no id: {JUMP_HINT}"
    if verb in _TABS:
        return partial(app.show_tab, _TABS[verb])
    if verb == "audit":
        return app.action_audit
    if verb in ("help", "?"):
        return app.action_help
    if verb in ("thread",):
        return f":thread needs an id: {JUMP_HINT}"
    return f"unknown jump {verb!r}: {JUMP_HINT}"


def _focus_lease(app: JumpCockpit, lease_id: str) -> None:
    app.show_tab("ground-truth")
    table = app.gt_table
    if table.view_index(lease_id) is None and table.filter_expr:
        app.action_clear_filter()
        app.notify(f"filter cleared to show {lease_id}", markup=False)
    table.move_cursor_to_key(lease_id, center=True)
    table.focus()


class JumpScreen(ModalScreen[None]):
    """The `:` prompt at the bottom (k9s): Enter jumps, a bad jump says why and stays open."""

    DEFAULT_CSS = """
    JumpScreen { align: left bottom; background: $background 30%; }
    #jump-box { height: auto; width: 100%; background: $panel; }
    #jump-error { color: $error; height: auto; }
    #jump-input { border: none; height: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, resolve: Callable[[str], Callable[[], None] | str]) -> None:
        super().__init__()
        self.resolve = resolve
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="jump-box"):
            yield Static(JUMP_HINT, id="jump-error")
            yield InOrderInput(id="jump-input", placeholder="jump: orphans, thread ID, …")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        found = self.resolve(event.value)
        if isinstance(found, str):
            self.error = found
            self.query_one("#jump-error", Static).update(Text(f"✗ {found}"))
            return
        self.dismiss(None)  # first: what the jump opens goes on top of the main view, not of this
        found()

    def action_close(self) -> None:
        self.dismiss(None)


class JumpMixin:
    """CockpitApp's `:` key (a mixin; the fuzzy palette stays on ctrl+p)."""

    def action_jump(self) -> None:
        app: Any = self
        app.push_screen(JumpScreen(partial(resolve_jump, app)))
