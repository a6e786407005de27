"""One command's output (Enter or `o` on the thread detail's recent commands; Esc back).

The text comes from `terminal_command_chunks` in chunk order (the full streams), or from the
stdout/stderr tails on the `terminal_commands` row when a command has no chunks. stderr is red and
bold with a `▌` gutter, so it stays distinguishable in a NO_COLOR terminal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from opcockpit.domain.models import CommandChunk, CommandOutput, TerminalCommandRecord
from opcockpit.domain.text import error_line
from opcockpit.tui.data import DetailSource
from opcockpit.tui.rows import ts  # one timestamp format across the detail screens
from opcockpit.tui.widgets.footer import StableFooter

STDERR_STYLE = "bold red"
STDOUT_GUTTER, STDERR_GUTTER = "  ", "▌ "


def render_chunks(chunks: Iterable[CommandChunk]) -> Text:
    """Chunks joined in order, a gutter at each line start; chunks may split lines anywhere."""
    out = Text(no_wrap=True, overflow="ignore")
    at_line_start = True
    for c in chunks:
        err = c.stream == "stderr"
        for piece in c.content.splitlines(keepends=True):
            if at_line_start:
                out.append(STDERR_GUTTER if err else STDOUT_GUTTER, style=STDERR_STYLE if err else "dim")
            out.append(piece.rstrip("\r\n"), style=STDERR_STYLE if err else "")
            at_line_start = piece.endswith(("\n", "\r"))
            if at_line_start:
                out.append("\n")
    return out


def describe(cmd: TerminalCommandRecord, out: CommandOutput | None) -> Text:
    """The command's status line and where its text comes from."""
    t = Text()
    bad = cmd.exit_code not in (None, 0) or cmd.status in ("failed", "error")
    t.append(cmd.status, style="bold red" if bad else "bold")
    t.append(
        f"  exit {'-' if cmd.exit_code is None else cmd.exit_code}  cwd {cmd.cwd}  "
        f"terminal {cmd.terminal_id}  session {cmd.chat_session_id or '-'}\n"
    )
    t.append(f"started {ts(cmd.created_at)}  updated {ts(cmd.updated_at)}  finished {ts(cmd.finished_at)}")
    if out is None:
        return t
    n_err = sum(1 for c in out.chunks if c.stream == "stderr")
    if out.source == "chunks":
        n = len(out.chunks)
        t.append(f"\n{n} chunks: {n - n_err} stdout, {n_err} stderr (", style="dim")
        t.append("▌ red", style=STDERR_STYLE)
        t.append(")", style="dim")
    elif out.source == "tails":
        t.append(
            "\nno chunks recorded: showing the stdout/stderr tails stored on the command row",
            style="italic dim",
        )
    if out.truncated:
        t.append("\nearlier output omitted: showing the tail", style="italic yellow")
    return t


class CommandOutputScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+r", "reload", "Reload"),
        Binding("c", "copy", "Copy command id"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, command: TerminalCommandRecord, details: DetailSource | None) -> None:
        super().__init__()
        self.command = command
        self.details = details
        self.output: CommandOutput | None = None
        self.body: Text | None = None  # what #output-text shows (rich spans: stderr style)

    def compose(self) -> ComposeResult:
        c = self.command
        yield Static(
            Text(f" Output of {c.command_id} · $ {c.command_line}", no_wrap=True, overflow="ellipsis"),
            id="output-title",
        )
        yield Static(describe(c, None), id="output-meta")
        with VerticalScroll(id="output-body"):
            yield Static(Text(" loading…", style="italic dim"), id="output-text")
        yield StableFooter()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, group="command-output", exit_on_error=False)
    async def load(self) -> None:
        text = self.query_one("#output-text", Static)
        if self.details is None:
            text.update(Text(" ✗ no detail source configured", style="bold red"))
            return
        try:
            out = await self.details.command_output(self.command.command_id)
        except Exception as exc:
            text.update(Text(f" ✗ {error_line(exc)}", style="bold red"))
            return
        self.show(out)

    def show(self, out: CommandOutput) -> None:
        self.output = out
        if out.command is not None:  # fresher than the row the detail listed (a running command moves on)
            self.command = out.command
        self.query_one("#output-meta", Static).update(describe(self.command, out))
        body = self.body = (
            render_chunks(out.chunks) if out.chunks else Text(" no output recorded", style="italic dim")
        )
        self.query_one("#output-text", Static).update(body)
        # The end is what matters in an incident (the error, the last line of a running build).
        self.query_one("#output-body", VerticalScroll).scroll_end(animate=False)

    def action_reload(self) -> None:
        self.load()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.command.command_id)
        self.notify(f"copied {self.command.command_id}", markup=False)
