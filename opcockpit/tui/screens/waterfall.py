"""One run as a span waterfall (`w` in thread detail; Esc back): the run and each tool call or
task on the run's time axis with start offset, duration and errors, the same spans the OTLP
export sends (`services.export.run_telemetry`), so the screen and the trace backend agree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from opcockpit.domain.models import RunEventRecord
from opcockpit.formats.waterfall import MARK_COLUMN, render_waterfall
from opcockpit.services.export import run_telemetry
from opcockpit.tui.widgets.chart import ascii_terminal
from opcockpit.tui.widgets.footer import StableFooter

__all__ = ["WaterfallScreen"]


class WaterfallScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, run_id: str, events: Sequence[RunEventRecord]) -> None:
        super().__init__()
        self.run_id = run_id
        self.spans, _ = run_telemetry(events)
        self.ascii = ascii_terminal()

    def compose(self) -> ComposeResult:
        calls = max(len(self.spans) - 1, 0)
        yield Static(
            Text(f" Run {self.run_id} · {calls} tool calls/tasks", no_wrap=True, overflow="ellipsis"),
            id="waterfall-title",
        )
        with VerticalScroll(id="waterfall-body"):
            yield Static(id="waterfall-text")
        yield StableFooter()

    def on_mount(self) -> None:
        self.draw()

    def on_resize(self, event: events.Resize) -> None:
        self.draw()

    def draw(self) -> None:
        if not self.spans:
            body = Text(" this run has no timestamped events", style="italic dim")
        else:
            lines = render_waterfall(self.spans, width=max(self.size.width - 1, 40), ascii_only=self.ascii)
            body = Text(no_wrap=True, overflow="ignore")
            err = "x" if self.ascii else "✗"
            for n, line in enumerate(lines):
                if n:
                    body.append("\n")
                if n == 0:
                    body.append(line, style="bold")
                elif line[MARK_COLUMN : MARK_COLUMN + 1] == err:
                    body.append(line[:MARK_COLUMN])
                    body.append(err, style="bold red")
                    body.append(line[MARK_COLUMN + 1 :])
                elif not line[:MARK_COLUMN].strip():  # the error text under a failed span
                    body.append(line, style="red")
                else:
                    body.append(line)
        self.query_one("#waterfall-text", Static).update(body)
