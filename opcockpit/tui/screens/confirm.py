"""Modal dialogs for operator actions: confirmation of pause/resume and destroy, adopt.

Every dialog names its targets (provider, instance, lease, thread) and what was skipped and why.
Marked rows the filter hides are never acted on silently: the dialog says how many and which, and
`h` includes them (issue 15).

- pause/resume (reversible): one key confirms (y or Enter; n or Esc cancels).
- destroy follows k9s's delete dialog: focus starts on Cancel, so a stray Enter cancels. Destroying
  more than one target also requires typing how many (nobody types "37" by accident); digits go to
  the count wherever the focus is, the right count arms Destroy (focus moves there), and a cancel
  says why nothing happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from opcockpit.domain.targets import Target
from opcockpit.tui.data import clean
from opcockpit.tui.widgets.in_order_input import InOrderInput

MAX_LISTED = 50  # beyond this the dialog says how many more (the count is what must be typed)


def targets_table(targets: Sequence[Target], refused: Sequence[tuple[Target, str]] = ()) -> Table:
    # Display copies only (ids/states are provider text): the operation uses the originals.
    targets, refused = clean(list(targets)), clean(list(refused))
    if len(targets) == 1 and not refused:
        return _one_target(targets[0])
    t = Table(box=None, expand=False, show_edge=False, pad_edge=False, header_style="bold")
    # Ids wrap, never end in "…": the operator must be able to read exactly what is destroyed.
    for col in ("provider", "instance", "lease", "thread", "state"):
        t.add_column(col, overflow="fold", max_width=36)
    for tg in targets[:MAX_LISTED]:
        t.add_row(
            tg.provider,
            tg.instance_id or "(none bound)",
            _lease_text(tg),
            tg.thread_id or "-",
            tg.seen_provider_state or "-",
        )
    if len(targets) > MAX_LISTED:
        t.add_row(Text(f"… and {len(targets) - MAX_LISTED} more", style="italic"), "", "", "", "")
    for tg, why in refused[:10]:
        t.add_row(
            Text(tg.provider, style="dim"),
            Text(tg.instance_id or "-", style="dim"),
            Text(tg.lease_id or "-", style="dim"),
            Text(tg.thread_id or "-", style="dim"),
            Text(f"skipped: {why}", style="dim italic"),
        )
    return t


def _lease_text(tg: Target) -> str:
    if tg.is_leak:  # the lease is destroyed already; this instance outlived it
        return f"{tg.lease_id} (destroyed; instance leaked)"
    return tg.lease_id or "(orphan: no lease)"


def _one_target(tg: Target) -> Table:
    """One target: one line per field, so no id is cut short in an 80-column dialog."""
    t = Table(box=None, show_header=False, show_edge=False, pad_edge=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    t.add_row("provider", tg.provider)
    t.add_row("instance", tg.instance_id or "(none bound)")
    t.add_row("lease", _lease_text(tg))
    t.add_row("thread", tg.thread_id or "-")
    t.add_row("state", tg.seen_provider_state or "-")
    return t


def hidden_note(hidden: Sequence[Target], included: bool) -> str:
    """'2 marked rows are hidden by the filter: a, b; h includes them' (or: are included)."""
    k = len(hidden)
    ids = ", ".join(t.key for t in clean(list(hidden))[:10]) + (f" +{k - 10} more" if k > 10 else "")
    rows, verb = ("row", "is") if k == 1 else ("rows", "are")
    them = "it" if k == 1 else "them"
    if included:
        return f"{k} marked {rows} hidden by the filter {verb} included: {ids} (h leaves {them} out)"
    return f"{k} marked {rows} {verb} hidden by the filter: {ids}; h includes {them}"


def _plural(n: int) -> str:
    return f"{n} sandbox{'es' if n != 1 else ''}"


class _TargetsDialog(ModalScreen[bool]):
    """Shared part: the targets shown (visible ones, plus the hidden marked ones when included)."""

    def __init__(
        self,
        targets: Sequence[Target],
        refused: Sequence[tuple[Target, str]] = (),
        hidden: Sequence[Target] = (),
    ) -> None:
        super().__init__()
        self.targets = list(targets)
        self.refused = list(refused)
        self.hidden = list(hidden)
        self.include_hidden = False

    @property
    def chosen(self) -> list[Target]:
        """What the action applies to if confirmed now."""
        return self.targets + self.hidden if self.include_hidden else list(self.targets)

    def _hidden_widget(self) -> ComposeResult:
        if self.hidden:
            yield Static(Text(hidden_note(self.hidden, False)), id="confirm-hidden", classes="dialog-note")

    def action_toggle_hidden(self) -> None:
        if not self.hidden:
            return
        self.include_hidden = not self.include_hidden
        self.query_one("#confirm-hidden", Static).update(Text(hidden_note(self.hidden, self.include_hidden)))
        self.query_one("#confirm-table", Static).update(targets_table(self.chosen, self.refused))
        self._retitle()

    def _retitle(self) -> None:  # pragma: no cover - overridden
        pass


class ConfirmActionScreen(_TargetsDialog):
    """Pause/resume: returns True when confirmed (y/Enter); `chosen` is what to act on."""

    DEFAULT_CSS = "ConfirmActionScreen { align: center middle; }"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Yes"),
        Binding("n,escape", "cancel", "No"),
        Binding("h", "toggle_hidden", "Hidden marked rows", show=False),
    ]

    def __init__(
        self,
        verb: str,
        targets: Sequence[Target],
        refused: Sequence[tuple[Target, str]] = (),
        hidden: Sequence[Target] = (),
    ) -> None:
        super().__init__(targets, refused, hidden)
        self.verb = verb

    def _title(self) -> str:
        n = len(self.chosen)
        return f"{self.verb.capitalize()} {_plural(n)}?" if n else f"Nothing to {self.verb}"

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="dialog"):
            yield Static(self._title(), id="confirm-title")
            yield Static(
                f"y or Enter: {self.verb} · n or Esc: cancel (reversible: "
                f"{'resume' if self.verb == 'pause' else 'pause'} undoes it)",
                classes="dialog-note",
            )
            with VerticalScroll(id="confirm-targets"):
                yield Static(targets_table(self.chosen, self.refused), id="confirm-table")
            yield from self._hidden_widget()
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel (n)", id="cancel")
                yield Button(
                    f"{self.verb.capitalize()} (y)",
                    id="confirm",
                    variant="warning",
                    disabled=not self.chosen,
                )

    def on_mount(self) -> None:
        button = self.query_one("#confirm", Button)
        (self.query_one("#cancel", Button) if button.disabled else button).focus()

    def _retitle(self) -> None:
        self.query_one("#confirm-title", Static).update(self._title())
        self.query_one("#confirm", Button).disabled = not self.chosen

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm" and bool(self.chosen))

    def action_confirm(self) -> None:
        if self.chosen:
            self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class ConfirmDestroyScreen(_TargetsDialog):
    """Returns True only when the operator confirmed (typed the count for a bulk destroy);
    `chosen` is what to destroy."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("n", "cancel", "No", show=False),
        Binding("h", "toggle_hidden", "Hidden marked rows", show=False),
    ]

    @property
    def bulk(self) -> bool:
        return len(self.chosen) > 1

    def _title(self) -> str:
        n = len(self.chosen)
        return f"Destroy {_plural(n)}?" if n else "Nothing to destroy"

    def compose(self) -> ComposeResult:
        n = len(self.chosen)
        with Vertical(id="confirm-box", classes="dialog danger"):
            yield Static(self._title(), id="confirm-title")
            leaks = self.targets and all(t.is_leak for t in self.targets)
            yield Static(
                "This deletes the leaked instance at the provider (its files are lost); its lease is "
                "already destroyed in sandbox.db."
                if leaks
                else "This deletes the instance at the provider (its files are lost) and marks the lease "
                "destroyed in sandbox.db.",
                classes="dialog-note",
            )
            with VerticalScroll(id="confirm-targets"):
                yield Static(targets_table(self.chosen, self.refused), id="confirm-table")
            yield from self._hidden_widget()
            yield Static(self._prompt(), id="confirm-prompt")
            yield InOrderInput(
                id="confirm-count", placeholder="the number of targets", restrict=r"[0-9]*", max_length=7
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button(self._verb(), id="confirm", variant="error", disabled=self.bulk or not n)

    def _prompt(self) -> str:
        n = len(self.chosen)
        return f"Type {n} to destroy all {n} (the digits go here; Enter on Cancel cancels):"

    def _verb(self) -> str:
        return f"Destroy {len(self.chosen)}" if self.bulk else "Destroy"

    def on_mount(self) -> None:
        self._show_count()
        self.query_one("#cancel", Button).focus()  # k9s: a stray Enter must cancel

    def _show_count(self) -> None:
        self.query_one("#confirm-prompt", Static).display = self.bulk
        self.query_one("#confirm-count", Input).display = self.bulk

    def _retitle(self) -> None:
        self.query_one("#confirm-title", Static).update(self._title())
        self.query_one("#confirm-prompt", Static).update(self._prompt())
        button = self.query_one("#confirm", Button)
        button.label = self._verb()
        self._show_count()
        self._arm()

    @property
    def typed(self) -> str:
        return self.query_one("#confirm-count", Input).value.strip()

    @property
    def typed_ok(self) -> bool:
        return not self.bulk or self.typed == str(len(self.chosen))

    def on_key(self, event: events.Key) -> None:
        # Bug: the prompt said "Type 2" but the digits went to the Cancel button and were dropped.
        box = self.query_one("#confirm-count", Input)
        if not self.bulk or self.focused is box:
            return
        if event.character is not None and event.character.isdigit():
            box.value = (box.value + event.character)[:7]
            event.stop()
        elif event.key == "backspace" and box.value:
            box.value = box.value[:-1]
            event.stop()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "confirm-count":
            self._arm()

    def _arm(self) -> None:
        """The right count enables Destroy and (from Cancel) moves the focus there, so Enter
        destroys; a wrong count disarms it and Enter is Cancel's again."""
        button = self.query_one("#confirm", Button)
        ok = self.typed_ok and bool(self.chosen)
        button.disabled = not ok
        if ok and self.bulk and self.focused is self.query_one("#cancel", Button):
            button.focus()
        elif not ok and self.focused is None:
            self.query_one("#cancel", Button).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "confirm-count" and self.typed_ok and self.chosen:
            self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm" and self.typed_ok and self.chosen:
            self.dismiss(True)
        elif event.button.id == "cancel":
            self.action_cancel()

    def action_cancel(self) -> None:
        self.app.notify(f"destroy cancelled: nothing destroyed{self._why()}", markup=False)
        self.dismiss(False)

    def _why(self) -> str:
        if not self.bulk:
            return ""
        n = len(self.chosen)
        if not self.typed:
            return f" (to destroy, type {n} and Enter)"
        if self.typed != str(n):
            return f" (typed {self.typed}, not {n})"
        return ""


class AdoptScreen(ModalScreen[str | None]):
    """Adopt orphans. Returns None (cancelled), "" (no thread) or the thread id to attach to."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, targets: Sequence[Target], refused: Sequence[tuple[Target, str]] = ()) -> None:
        super().__init__()
        self.targets = list(targets)
        self.refused = list(refused)

    def compose(self) -> ComposeResult:
        n = len(self.targets)
        with Vertical(id="adopt-box", classes="dialog"):
            yield Static(
                f"Adopt {n} orphan{'s' if n != 1 else ''} as LEON lease{'s' if n != 1 else ''}",
                id="adopt-title",
            )
            with VerticalScroll(id="confirm-targets"):
                yield Static(targets_table(self.targets, self.refused))
            if n == 1:
                yield Static(
                    "Attach to thread (optional; it must have no lease). Enter adopts:", classes="dialog-note"
                )
                yield InOrderInput(id="adopt-thread", placeholder="thread id, or empty")
            else:
                yield Static(
                    "Several orphans: each becomes its own lease, attached to no thread.",
                    classes="dialog-note",
                )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Adopt", id="confirm", variant="warning", disabled=not n)

    def on_mount(self) -> None:
        inputs = self.query("#adopt-thread")
        (inputs.first() if inputs else self.query_one("#confirm", Button)).focus()

    def _thread(self) -> str:
        inputs = self.query("#adopt-thread").results(Input)
        box = next(inputs, None)
        return box.value.strip() if box is not None else ""

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.targets:
            self.dismiss(self._thread())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm" and self.targets:
            self.dismiss(self._thread())
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
