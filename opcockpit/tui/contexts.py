"""`:ctx` (k9s's contexts, issue 12): switch the cockpit to another `[contexts.<name>]`.

A context is a whole deployment (its sources, providers, ledger, read-only flag), so switching
builds a new object graph: the target's config is loaded and validated *before* the cockpit
leaves (a bad context is one line in the `:` prompt and the current one stays), then the app
exits with a `SwitchContext` and `run_tui` starts the cockpit again on it. The operator never
looks at a half-switched screen mixing two deployments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from opcockpit.domain.text import error_line, safe_text

__all__ = ["ContextPicker", "SwitchContext", "context_jump", "context_names"]

# What run_tui hands the app: context name -> its loaded config (raises on a bad config).
Reload = Callable[[str], Any]


@dataclass(frozen=True)
class SwitchContext:
    """The app's exit result asking run_tui to start again on `loaded` (a LoadedConfig)."""

    name: str
    loaded: Any


def context_names(app: Any) -> tuple[list[str], str | None]:
    """(the contexts the config defines, the one in effect)."""
    settings = getattr(getattr(app, "cockpit", None), "settings", None)
    contexts = getattr(settings, "contexts", None) or {}
    return sorted(contexts), getattr(settings, "context", None)


def context_jump(app: Any, ref: str) -> Callable[[], None] | str:
    """`:ctx` -> a picker; `:ctx NAME` -> switch; else the one line saying why not."""
    names, current = context_names(app)
    if not names:
        return "no contexts defined: add [contexts.<name>] tables to the config (README, Contexts)"
    if not ref:
        return partial(app.push_screen, ContextPicker(names, current, partial(_picked, app)))
    if ref not in names:
        return f"unknown context {ref!r} (known: {', '.join(names)})"
    if ref == current:
        return f"already in context {ref}"
    return _switcher(app, ref)


def _switcher(app: Any, name: str) -> Callable[[], None] | str:
    reload: Reload | None = getattr(app, "reload_context", None)
    if reload is None:
        return "this cockpit cannot switch contexts (started without a config file)"
    try:
        loaded = reload(name)
    except Exception as exc:  # ConfigError, a context whose URL is missing, ...: stay here
        problems: Sequence[str] = getattr(exc, "problems", None) or [error_line(exc)]
        return f"context {name}: {safe_text(problems[0])}"
    return partial(app.exit, SwitchContext(name, loaded))


def _picked(app: Any, name: str) -> None:
    if name == context_names(app)[1]:
        return
    found = _switcher(app, name)
    if isinstance(found, str):
        app.notify(found, severity="error", markup=False)
    else:
        found()


class ContextPicker(ModalScreen[None]):
    """The contexts of the config, the current one marked; Enter switches, Esc stays. The pick
    is handled here (`on_pick`), not by a dismiss callback: the `:` prompt that opened this is
    gone by then, and a callback would be registered on it."""

    DEFAULT_CSS = """
    ContextPicker { align: center middle; }
    #ctx-box { width: 60; max-width: 100%; height: auto; max-height: 80%;
               background: $panel; border: round $accent; padding: 0 1; }
    #ctx-list { height: auto; max-height: 20; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, names: Sequence[str], current: str | None, on_pick: Callable[[str], None]) -> None:
        super().__init__()
        self.names, self.current, self.on_pick = list(names), current, on_pick

    def compose(self) -> ComposeResult:
        with Vertical(id="ctx-box"):
            yield Static(Text("Switch context (Enter; Esc stays)", style="bold"))
            yield OptionList(
                *(Option(("● " if n == self.current else "  ") + n, id=n) for n in self.names),
                id="ctx-list",
            )

    def on_mount(self) -> None:
        picker = self.query_one(OptionList)
        if self.current in self.names:
            picker.highlighted = self.names.index(self.current)
        picker.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(None)
        if event.option.id is not None:
            self.on_pick(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
