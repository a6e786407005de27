"""Audit view (`:audit` in the palette): the cockpit's ledger of operator actions, newest first.

The rows are the ledger's audit entries (the same rows `opcockpit audit` prints), read through the
loader the app was wired with; `AuditRow` is what this screen reads of one. The ledger is SQLite
(sync), so it is read in a thread worker; `r` reloads, `/` filters, Esc goes back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Input, Static

from opcockpit.domain.text import error_line
from opcockpit.tui.table.widget import Column, KeyedTable
from opcockpit.tui.widgets.footer import StableFooter
from opcockpit.tui.widgets.in_order_input import InOrderInput

AUDIT_LIMIT = 500


class AuditRow(Protocol):
    """One audit entry as this screen reads it (the ledger's AuditEntry satisfies it)."""

    id: int
    at: datetime
    operator: str
    action: str
    result: str
    dry_run: bool
    convergence: str | None
    provider: str | None
    lease_id: str | None
    instance_id: str | None
    thread_id: str | None
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    duration_ms: int | None
    error: str | None


AuditLoader = Callable[[int], Sequence[AuditRow]]


def _ts(value: Any) -> str:
    if not isinstance(value, datetime):
        return ""
    return value.astimezone(UTC).strftime("%m-%d %H:%M:%S")


def _target(e: AuditRow) -> str:
    return e.lease_id or (f"{e.provider}/{e.instance_id}" if e.instance_id else "-")


def _change(e: AuditRow) -> str:
    before = (e.before or {}).get("provider_state")
    after = (e.after or {}).get("provider_state") or (e.after or {}).get("observed_state")
    if before is None and after is None:
        return ""
    return f"{before or '?'} → {after or '?'}"


AUDIT_COLUMNS = [
    Column("at", "When (UTC)", 14, format=_ts),
    Column("operator", "Operator", 18),
    Column("action", "Action", 7),
    Column("result", "Result", 11),
    Column("target", "Target", 22),
    Column("provider", "Provider", 9),
    Column("instance_id", "Instance", 16),
    Column("thread_id", "Thread", 16),
    Column("change", "Before → after", 22),
    Column("duration", "ms", 6, align="right"),
    Column("error", "Error", 60),
]


_SETTLED = {"converged": "converged", "timed_out": "timed out", "failed": "failed"}


def settled_result(e: AuditRow) -> str:
    """One word for where the action ended: the convergence once it settled, else the result.
    (Two columns said `pending` beside `converged`: the result is written when the action ran and
    the convergence later, so the later word wins.)"""
    word = _SETTLED.get(e.convergence or "", e.convergence) if e.convergence else e.result
    return word + (" (dry)" if e.dry_run else "")


def audit_cells(e: AuditRow) -> tuple[Any, ...]:
    return (
        e.at,
        e.operator,
        e.action,
        settled_result(e),
        _target(e),
        e.provider,
        e.instance_id,
        e.thread_id,
        _change(e),
        e.duration_ms,
        e.error,
    )


def audit_row_tag(cells: tuple[Any, ...]) -> str | None:
    if str(cells[3]).startswith(("failed", "refused", "timed out")):
        return "diverged"
    if str(cells[3]).startswith(("pending", "started")):
        return "pending"
    return None


class AuditScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Back"),
        Binding("r", "reload", "Reload"),
        Binding("slash", "filter", "Filter", key_display="/"),
    ]

    def __init__(self, loader: AuditLoader) -> None:
        super().__init__()
        self.loader = loader
        self.entries: list[AuditRow] = []
        self.loaded = False
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("Audit log: operator actions, newest first", id="detail-title")
        yield Static(id="audit-status")
        table = KeyedTable(
            AUDIT_COLUMNS,
            markable=False,
            row_tag=audit_row_tag,
            empty_text="no actions recorded yet",
            id="audit-table",
        )
        table.sort_by("at", reverse=True)
        yield table
        yield InOrderInput(id="audit-filter", placeholder="filter: text · regex · !inverse · field:value")
        yield StableFooter(compact=True, show_command_palette=False)

    @property
    def table(self) -> KeyedTable:
        return self.query_one("#audit-table", KeyedTable)

    def on_mount(self) -> None:
        self.query_one("#audit-filter", Input).display = False
        self.table.focus()
        self.action_reload()

    @work(exclusive=True, group="audit", thread=True, exit_on_error=False)
    def action_reload(self) -> None:
        try:
            entries = list(self.loader(AUDIT_LIMIT))
            error = None
        except Exception as exc:  # a missing/locked ledger is shown, not raised
            from opcockpit.tui.alerting import LedgerUnavailable

            entries, error = [], str(exc) if isinstance(exc, LedgerUnavailable) else error_line(exc)
        self.app.call_from_thread(self._show, entries, error)

    def _show(self, entries: list[AuditRow], error: str | None) -> None:
        self.entries, self.error, self.loaded = entries, error, True
        self.table.replace({str(e.id): audit_cells(e) for e in entries})
        status = f" {len(entries)} action{'s' if len(entries) != 1 else ''}"
        if len(entries) >= AUDIT_LIMIT:
            status += f" (newest {AUDIT_LIMIT}; `opcockpit audit --limit N` for more)"
        if error:
            status += f"  ✗ {error}"
        self.query_one("#audit-status", Static).update(status)

    def action_filter(self) -> None:
        box = self.query_one("#audit-filter", Input)
        box.display = True
        box.value = self.table.filter_expr
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.table.set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.table.focus()

    def action_close(self) -> None:
        box = self.query_one("#audit-filter", Input)
        if box.display:
            box.display = False
            self.table.set_filter("")
            self.table.focus()
            return
        self.app.pop_screen()
