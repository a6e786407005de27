"""Modal dialogs for operator actions: destroy confirmation and adopt (optional thread id).

Destroy follows k9s's delete dialog: it names every target (provider, instance, lease, thread) and
focus starts on Cancel, so a stray Enter cancels. Destroying more than one target also requires
typing how many (the number is the confirmation: nobody types "37" by accident).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from opcockpit.domain.targets import Target
from opcockpit.tui.data import clean

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


class ConfirmDestroyScreen(ModalScreen[bool]):
    """Returns True only when the operator confirmed (typed the count for a bulk destroy)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("n", "cancel", "No", show=False),
    ]

    def __init__(self, targets: Sequence[Target], refused: Sequence[tuple[Target, str]] = ()) -> None:
        super().__init__()
        self.targets = list(targets)
        self.refused = list(refused)
        self.bulk = len(self.targets) > 1

    def compose(self) -> ComposeResult:
        n = len(self.targets)
        with Vertical(id="confirm-box", classes="dialog danger"):
            title = f"Destroy {n} sandbox{'es' if n != 1 else ''}?" if n else "Nothing to destroy"
            yield Static(title, id="confirm-title")
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
                yield Static(targets_table(self.targets, self.refused))
            if self.bulk:
                yield Static(f"Type {n} to destroy all {n}:", id="confirm-prompt")
                yield Input(
                    id="confirm-count", placeholder="the number of targets", restrict=r"[0-9]*", max_length=7
                )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button(
                    f"Destroy {n}" if self.bulk else "Destroy",
                    id="confirm",
                    variant="error",
                    disabled=self.bulk or not n,
                )

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()  # k9s: a stray Enter must cancel

    @property
    def typed_ok(self) -> bool:
        if not self.bulk:
            return True
        return self.query_one("#confirm-count", Input).value.strip() == str(len(self.targets))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "confirm-count":
            self.query_one("#confirm", Button).disabled = not self.typed_ok

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "confirm-count" and self.typed_ok:
            self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm" and self.typed_ok and self.targets:
            self.dismiss(True)
        elif event.button.id == "cancel":
            self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)


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
                yield Input(id="adopt-thread", placeholder="thread id, or empty")
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
