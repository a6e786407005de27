"""Logs (`l`) and the provider's raw record (`y`, k9s-style) of one instance, in a viewer screen.

`InspectScreen` is a scrollable (both ways), copyable text view fed by the inspect service
(`Cockpit.inspect`: the TUI never reaches an adapter itself). The record toggles YAML-ish/JSON
(`j`); logs follow new lines (`f`). `InspectKeys` is the app's part (a mixin): `l`/`y` on the
ground-truth row, the orphan row, and from the thread detail and orphan detail screens.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer
from textual.screen import Screen
from textual.widgets import Static

from opcockpit.domain.text import error_line, safe_text
from opcockpit.tui.widgets.footer import StableFooter

if TYPE_CHECKING:
    from textual.app import App

    from opcockpit.ports.provider import LogLine

    _AppBase = App[int]
else:
    _AppBase = object

__all__ = ["InspectKeys", "InspectScreen", "open_logs", "open_raw_record", "title_line"]

MAX_LOG_LINES = 5000  # a followed log keeps the newest lines; the provider keeps the rest
STDERR_GUTTER = "▌ "

RecordLoader = Callable[[str], Awaitable[str]]  # style ("yaml" | "json") -> text
LogStream = Callable[[bool], AsyncIterator["LogLine"]]  # follow -> lines


class InspectScreen(Screen[None]):
    """A text viewer: `record` (a loader) or `logs` (a stream factory); Esc back, `c` copies."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("c", "copy", "Copy"),
        Binding("j", "toggle_style", "JSON/YAML"),
        Binding("f", "toggle_follow", "Follow"),
        Binding("ctrl+r", "reload", "Reload"),
        Binding("home", "top", "Top", show=False),
        Binding("end", "bottom", "Bottom", show=False),
        Binding("q", "app.quit", "Quit"),
    ]
    DEFAULT_CSS = """
    InspectScreen #inspect-title { height: auto; background: $panel; padding: 0 1; }
    InspectScreen #inspect-body { height: 1fr; }
    InspectScreen #inspect-text { width: auto; padding: 0 1; }
    """

    def __init__(
        self, title: str, *, record: RecordLoader | None = None, logs: LogStream | None = None
    ) -> None:
        super().__init__()
        self.title_text = title
        self._record = record
        self._logs = logs
        self.style = "yaml"
        self.follow = False
        self.text = ""  # what is shown (and copied), plain
        self.error: str | None = None
        self.loaded = False  # the first load finished (tests wait on it)
        self._lines: list[tuple[str, str]] = []
        self._dirty = False

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="inspect-title")
        with ScrollableContainer(id="inspect-body"):
            yield Static("loading…", id="inspect-text")
        yield StableFooter()

    def _title(self) -> Text:
        if self._logs:
            note = ("  following", "cyan") if self.follow else ("  (f: follow)", "dim")
            return title_line(" logs ", self.title_text, note)
        return title_line(" raw record ", self.title_text, (f"  {self.style}", "dim"))

    def on_mount(self) -> None:
        if self._logs is not None:
            self.set_interval(0.25, self._flush)  # a followed log redraws at most 4x a second
        self.load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_style":
            return self._record is not None
        if action == "toggle_follow":
            return self._logs is not None
        return True

    # -- loading ----------------------------------------------------------------------------

    @work(exclusive=True, group="inspect")
    async def load(self) -> None:
        self.error = None
        if self._record is not None:
            try:
                self.text = await self._record(self.style)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # InspectError and anything else: one line, the screen stays
                self.error = error_line(exc)
            self._show()
            self.loaded = True
            return
        assert self._logs is not None
        self._lines = []
        try:
            async for line in self._logs(self.follow):
                self._lines.append((line.stream, line.text))
                if len(self._lines) > MAX_LOG_LINES:
                    del self._lines[: len(self._lines) - MAX_LOG_LINES]
                self._dirty = True  # drawn by _flush: one redraw per tick, not per line
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = error_line(exc)
        self._dirty = False
        self._show(scroll_end=True)
        self.loaded = True

    def _flush(self) -> None:
        if self._dirty:
            self._dirty = False
            self._show(scroll_end=True)
            self.loaded = True

    def _show(self, *, scroll_end: bool = False) -> None:
        body = self.query_one("#inspect-text", Static)
        self.query_one("#inspect-title", Static).update(self._title())
        if self._logs is not None:
            self.text = "\n".join(text for _, text in self._lines)
            out = Text(no_wrap=True, overflow="ignore")
            for n, (stream, text) in enumerate(self._lines):
                if n:
                    out.append("\n")
                err = stream == "stderr"
                out.append(STDERR_GUTTER if err else "  ", style="bold red" if err else "dim")
                out.append(safe_text(text), style="bold red" if err else "")
            if not self._lines and self.error is None:
                out.append("no log lines", style="italic dim")
        else:
            out = Text(self.text, no_wrap=True, overflow="ignore")
        if self.error is not None:
            out = Text.assemble(out, ("\n" if out.plain else "") + f"✗ {self.error}", no_wrap=True)
            out.stylize("bold red", len(out.plain) - len(self.error) - 2)
        body.update(out)
        if scroll_end:
            self.query_one("#inspect-body", ScrollableContainer).scroll_end(animate=False)

    # -- actions ----------------------------------------------------------------------------

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.text)
        self.notify(f"copied {len(self.text.splitlines())} lines", markup=False)

    def action_toggle_style(self) -> None:
        self.style = "json" if self.style == "yaml" else "yaml"
        self.load()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.loaded = False
        self.load()

    def action_reload(self) -> None:
        self.load()

    def action_top(self) -> None:
        self.query_one("#inspect-body", ScrollableContainer).scroll_home(animate=False)

    def action_bottom(self) -> None:
        self.query_one("#inspect-body", ScrollableContainer).scroll_end(animate=False)


def title_line(badge: str, title: str, *notes: tuple[str, str], badge_style: str = "bold reverse") -> Text:
    """A detail screen's one-line title: a reverse badge, the bold (sanitised) subject, dim notes;
    cut with an ellipsis, never wrapped."""
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(badge, style=badge_style)
    t.append(f" {safe_text(title)}", style="bold")
    for text, style in notes:
        t.append(text, style=style)
    return t


# --------------------------------------------------------------------------- opening it


def _service(app: Any) -> Any:
    cockpit = getattr(app, "cockpit", None)
    return cockpit.inspect if cockpit is not None else None


def open_raw_record(app: Any, provider: str, instance_id: str | None) -> bool:
    """Push the raw record viewer of `provider/instance_id`; False (and a toast saying why) if not."""
    service = _service(app)
    if instance_id is None:
        app.notify("no instance: nothing to inspect at the provider", markup=False)
        return False
    if service is None or not service.can_inspect(provider):
        app.notify(f"{provider}: no raw record (its adapter cannot show one)", markup=False)
        return False

    async def load(style: str) -> str:
        return await service.raw_text(provider, instance_id, style=style)  # type: ignore[no-any-return]

    app.push_screen(InspectScreen(f"{provider}/{instance_id}", record=load))
    return True


def open_logs(app: Any, provider: str, instance_id: str | None) -> bool:
    """Push the log viewer of `provider/instance_id`; False (and a toast saying why) if not."""
    service = _service(app)
    if instance_id is None:
        app.notify("no instance: no logs to show", markup=False)
        return False
    if service is None or not service.can_logs(provider):
        app.notify(f"{provider}: no logs (only Docker/podman serve them)", markup=False)
        return False

    def stream(follow: bool) -> AsyncIterator[LogLine]:
        return service.logs(provider, instance_id, follow=follow)  # type: ignore[no-any-return]

    app.push_screen(InspectScreen(f"{provider}/{instance_id}", logs=stream))
    return True


class InspectKeys(_AppBase):
    """`l` (logs) and `y` (raw record) on the row under the cursor (Ground truth or Orphans)."""

    def _instance_under_cursor(self) -> tuple[str, str | None] | None:
        table = self.active_table()  # type: ignore[attr-defined]
        key = table.cursor_key if table is not None else None
        if key is None:
            return None
        if table.id == "orphans-table":
            provider, _, instance_id = key.partition("/")
            return provider, instance_id
        row = getattr(self, "_rows_by_key", {}).get(key)
        if row is None:
            return None
        return row.provider, row.instance_id

    def action_logs(self) -> None:
        target = self._instance_under_cursor()
        if target is not None:
            open_logs(self, *target)

    def action_raw_record(self) -> None:
        target = self._instance_under_cursor()
        if target is not None:
            open_raw_record(self, *target)
