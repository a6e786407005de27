"""Alert detail (Enter on an alert; Esc back) and the ack / mute prompts.

The detail shows the rule, threshold, the times (first seen, fired, last seen, resolved), ack and
mute records, notification deliveries with their errors, and the evidence as a table: Enter on an
evidence row jumps to that row (lease -> Ground truth cursor, orphan -> Orphans cursor,
run/thread -> thread detail, provider event -> Provider events).

Ack and mute write the cockpit's own ledger (not the platform): allowed in read-only mode.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Static

from opcockpit.domain.alerts import Severity
from opcockpit.domain.timeutil import fmt_age, parse_duration
from opcockpit.tui.table.widget import Column, KeyedTable
from opcockpit.tui.widgets.alert_rows import SEV_LABEL, jump_target
from opcockpit.tui.widgets.footer import StableFooter
from opcockpit.tui.widgets.in_order_input import InOrderInput
from opcockpit.tui.widgets.overview import flex_columns

if TYPE_CHECKING:
    from opcockpit.domain.alerts import Evidence
    from opcockpit.ports.alert_records import Alert


class AlertActions(Protocol):
    """What the detail screen asks of the Alerts tab (tabs/alerts.py), without importing it."""

    def prompt_ack(self, alert: Alert, after: Callable[[Alert], None] | None = None) -> None: ...
    def prompt_mute(self, alert: Alert, after: Callable[[Alert], None] | None = None) -> None: ...
    def unmute(self, alert: Alert, after: Callable[[Alert], None] | None = None) -> None: ...
    def jump(self, alert: Alert, ev: Evidence) -> None: ...


__all__ = ["AckPrompt", "AlertDetailScreen", "MutePrompt", "alert_info", "parse_mute"]

LEDGER_NOTE = "Writes the cockpit's own ledger, not the platform: allowed in read-only mode."
SEV_STYLE = {Severity.CRITICAL: "bold red", Severity.WARNING: "bold yellow", Severity.INFO: "cyan"}

EVIDENCE_COLUMNS = [
    Column("n", "#", 3, "right"),
    Column("kind", "Kind", 17),
    Column("id", "Id", 38),
    Column("jump", "Enter", 20),
    Column("note", "Note", 80),
]


def _when(ts: datetime | None, now: datetime) -> str:
    if ts is None:
        return "-"
    ago = (now - ts).total_seconds()
    rel = f"{fmt_age(ago)} ago" if ago >= 0 else f"in {fmt_age(-ago)}"
    return f"{ts.astimezone(UTC).strftime('%m-%d %H:%M:%S')} UTC ({rel})"


def alert_info(a: Alert, now: datetime) -> Text:
    """Everything about one alert except the evidence (that is the table below)."""
    t = Text()
    t.append(f" {SEV_LABEL.get(a.severity, a.severity)} ", style=f"reverse {SEV_STYLE.get(a.severity, '')}")
    state = "● firing" if a.firing else "○ resolved"
    t.append(f" {a.severity.value} · {a.rule} · {state}", style="bold")
    t.append(f"   #{a.id} · fingerprint {a.fingerprint}\n", style="dim")
    t.append("summary    ", style="bold dim")
    t.append(f"{a.summary}\n")
    t.append("threshold  ", style="bold dim")
    t.append(f"{a.threshold}\n")
    t.append("key        ", style="bold dim")
    t.append(f"{a.key}\n")
    t.append("first seen ", style="bold dim")
    t.append(f"{_when(a.first_seen, now)}   fired {_when(a.fired_at, now)}\n")
    t.append("last seen  ", style="bold dim")
    t.append(_when(a.last_seen, now))
    if a.resolved_at is not None:
        t.append(f"   resolved {_when(a.resolved_at, now)}")
    t.append("\nack        ", style="bold dim")
    if a.acked:
        t.append(f"✓ {a.acked_by} {_when(a.acked_at, now)}")
        if a.ack_comment:
            t.append(f" — {a.ack_comment}", style="italic")
    else:
        t.append("not acked (A)", style="dim")
    t.append("\nmute       ", style="bold dim")
    if a.mute_until_resolved:
        t.append("⊘ until resolved" + (" (ended)" if not a.firing else ""))
    elif a.muted_until is not None:
        t.append(f"⊘ until {_when(a.muted_until, now)}" + ("" if a.is_muted(now) else " (expired)"))
    else:
        t.append("not muted (M)", style="dim")
    if (a.muted_until is not None or a.mute_until_resolved) and a.muted_by:
        t.append(f" by {a.muted_by}")
        if a.mute_comment:
            t.append(f" — {a.mute_comment}", style="italic")
    t.append("\nnotified   ", style="bold dim")
    if not a.deliveries:
        t.append("no deliveries (none configured, muted, or not due yet)", style="dim")
    for i, d in enumerate(a.deliveries):
        if i:
            t.append("\n           ")
        ok = d.status == "ok"
        t.append(
            f"{'✓' if ok else '✗'} {d.channel} {d.target}: {d.status}, {d.attempts} attempt(s)",
            style="green" if ok else "bold red",
        )
        if d.last_error and not ok:
            t.append(f" — {d.last_error}", style="red")
        if d.last_attempt_at is not None:
            t.append(f"  last {_when(d.last_attempt_at, now)}", style="dim")
    if a.details:
        t.append("\ndetails    ", style="bold dim")
        t.append(json.dumps(a.details, ensure_ascii=False, default=str, sort_keys=True), style="dim")
    return t


def evidence_rows(a: Alert) -> dict[str, tuple[Any, ...]]:
    return {str(i): (i + 1, e.kind, e.id, jump_target(e), e.note) for i, e in enumerate(a.evidence)}


class AlertDetailScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("A", "ack", "Ack"),
        Binding("M", "mute", "Mute"),
        Binding("U", "unmute", "Unmute"),
        Binding("c", "copy", "Copy id"),
        Binding("q", "app.quit", "Quit"),
    ]

    DEFAULT_CSS = """
    AlertDetailScreen > #alert-title { height: 1; background: $panel; text-style: bold; }
    AlertDetailScreen > #alert-info-box { height: auto; max-height: 60%; padding: 0 1; }
    AlertDetailScreen > .ov-label { height: 1; background: $panel; color: $text-muted; text-style: bold; }
    AlertDetailScreen > #alert-evidence { height: 1fr; min-height: 3; }
    """

    def __init__(self, alert: Alert, view: AlertActions) -> None:
        super().__init__()
        self.alert = alert
        self.view = view

    def compose(self) -> ComposeResult:
        yield Static(id="alert-title")
        with VerticalScroll(id="alert-info-box"):
            yield Static(id="alert-info")
        yield Static(" Evidence — Enter jumps to the row", classes="ov-label")
        yield KeyedTable(
            EVIDENCE_COLUMNS,
            markable=False,
            id="alert-evidence",
            empty_text="no evidence recorded",
            flash_seconds=0,
        )
        yield StableFooter()

    def on_mount(self) -> None:
        self.show(self.alert)
        self.query_one("#alert-evidence", KeyedTable).focus()

    def on_resize(self) -> None:
        table = self.query_one("#alert-evidence", KeyedTable)
        table.set_columns(flex_columns(EVIDENCE_COLUMNS, self.size.width, minimum=20))

    def _now(self) -> datetime:
        clock = getattr(self.app, "clock", None)
        return clock() if clock else datetime.now(UTC)

    def show(self, alert: Alert) -> None:
        self.alert = alert
        self.query_one("#alert-title", Static).update(
            Text(f" Alert #{alert.id} · {alert.rule} · {alert.subject}", no_wrap=True, overflow="ellipsis")
        )
        self.query_one("#alert-info", Static).update(alert_info(alert, self._now()))
        self.query_one("#alert-evidence", KeyedTable).replace(evidence_rows(alert))
        self.app.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "unmute":
            return True if (self.alert.muted_until is not None or self.alert.mute_until_resolved) else None
        return True

    def action_ack(self) -> None:
        self.view.prompt_ack(self.alert, self._after)

    def action_mute(self) -> None:
        self.view.prompt_mute(self.alert, self._after)

    def action_unmute(self) -> None:
        self.view.unmute(self.alert, self._after)

    def _after(self, alert: Alert) -> None:
        if self.is_attached:
            self.show(alert)

    def action_copy(self) -> None:
        value = str(self.alert.id)
        self.app.copy_to_clipboard(value)
        self.notify(f"copied {value}", markup=False)

    def on_keyed_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        event.stop()
        i = int(event.key)
        if 0 <= i < len(self.alert.evidence):
            self.view.jump(self.alert, self.alert.evidence[i])


# ---------------------------------------------------------------------- prompts


def parse_mute(text: str) -> timedelta | None:
    """'30m', '2h', '1h30m', '1d' -> a duration; 'until resolved' / 'resolved' / 'r' -> None.
    Raises ValueError with the accepted forms."""
    t = text.strip().lower()
    if t in ("r", "res", "resolved", "until resolved", "until-resolved"):
        return None
    try:
        return parse_duration(t)
    except ValueError as exc:  # say it in the dialog
        raise ValueError(str(exc).replace("not a duration", "not a duration or 'until resolved'")) from exc


class AlertPrompt(ModalScreen[Any]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = """
    AlertPrompt { align: center middle; }
    AlertPrompt .dialog { max-width: 90; max-height: 100%; }
    AlertPrompt Input { margin-bottom: 1; background: $boost; }
    AlertPrompt #prompt-error { color: $error; height: auto; }
    """

    def __init__(self, alert: Alert, who: str, *, title: str | None = None) -> None:
        super().__init__()
        self.alert = alert
        self.who = who
        # A group ack/mute (Alerts tab) names the group and its size instead of one alert.
        self.title_text = title

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "prompt-cancel":
            self.dismiss(None)
        else:
            self.submit()

    def submit(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _buttons(self, ok: str) -> ComposeResult:
        # Compact (one-row) inputs and buttons: the mute dialog, with its note wrapped at 80
        # columns, did not fit 24 rows with three-row widgets (its bottom border was cut off).
        with Horizontal(classes="dialog-buttons"):
            yield Button("Cancel", id="prompt-cancel", compact=True)
            yield Button(ok, id="prompt-ok", variant="primary", compact=True)


class AckPrompt(AlertPrompt):
    """Returns the comment ('' allowed) or None when cancelled."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(
                self.title_text or f"Ack #{self.alert.id} {self.alert.rule}: {self.alert.summary}",
                id="prompt-title",
            )
            yield Static(f"as {self.who}. {LEDGER_NOTE}", classes="dialog-note")
            yield InOrderInput(id="ack-comment", placeholder="comment (optional), Enter to ack", compact=True)
            yield from self._buttons("Ack")

    def on_mount(self) -> None:
        self.query_one("#ack-comment", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def submit(self) -> None:
        self.dismiss(self.query_one("#ack-comment", Input).value.strip())


class MutePrompt(AlertPrompt):
    """Returns (duration or None for 'until resolved', comment), or None when cancelled."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(
                self.title_text or f"Mute #{self.alert.id} {self.alert.rule}: {self.alert.summary}",
                id="prompt-title",
            )
            yield Static(
                f"For how long: 30m, 2h, 1h30m, 1d — or 'r' for until resolved; Enter mutes. "
                f"Muted alerts are not notified and do not fail `snapshot --check`. "
                f"As {self.who}. {LEDGER_NOTE}",
                classes="dialog-note",
            )
            yield InOrderInput(
                id="mute-duration", placeholder="30m | 2h | until resolved", value="1h", compact=True
            )
            yield InOrderInput(
                id="mute-comment", placeholder="comment (optional; Tab here from the duration)", compact=True
            )
            yield Static(id="prompt-error")
            yield from self._buttons("Mute")

    def on_mount(self) -> None:
        box = self.query_one("#mute-duration", Input)
        box.focus()
        box.action_select_all()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # Enter mutes from either field: the comment is optional, so Enter in the duration must
        # not leave the operator in a second field wondering whether it worked (Tab goes there).
        event.stop()
        self.submit()

    def submit(self) -> None:
        text = self.query_one("#mute-duration", Input).value
        try:
            duration = parse_mute(text)
        except ValueError as exc:
            self.query_one("#prompt-error", Static).update(str(exc))
            self.query_one("#mute-duration", Input).focus()
            return
        self.dismiss((duration, self.query_one("#mute-comment", Input).value.strip()))
