"""The Alerts tab's rules view (`R`): every rule, built-in and query-backed, with its thresholds,
hold time, severity, enabled state and last evaluation; edits are ledger overrides of the TOML.

- `e` enables/disables the rule under the cursor, `s` cycles its severity, Enter opens the
  editor (one input per editable field; a value the config would reject is refused with one
  line and nothing is stored), `x` drops the rule's overrides (back to the TOML), `d` deletes a
  query rule made in the TUI (a TOML rule is only disabled: the file is the operator's).
- An overridden value is marked `*` (glyph, so it survives NO_COLOR); `config show` lists them.
- Ledger reads and writes run in worker threads (Alerting.rules / set_rule_override).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from opcockpit.domain.alerts import fmt_duration
from opcockpit.domain.alerts_rules_apply import RuleInfo, editable_fields
from opcockpit.domain.text import error_line, safe_text
from opcockpit.tui.table.widget import Column, KeyedTable
from opcockpit.tui.widgets.in_order_input import InOrderInput

__all__ = ["RuleEditScreen", "RulesPanel", "rule_cells", "rules_columns"]

SEVERITIES = ("critical", "warning", "info")


def _val(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _thr(field: str, v: Any) -> str:
    name = field.removesuffix("_s")
    return f"{name}={fmt_duration(v) if field.endswith('_s') else _val(v)}"


def rule_cells(r: RuleInfo) -> tuple[str, ...]:
    star = "*"
    thr = " ".join(_thr(f, v) + (star if f in r.overridden else "") for f, v in r.thresholds.items())
    hold = "-" if r.hold_s is None else fmt_duration(r.hold_s)
    hold_field = next((f for f in r.overridden if f.endswith("_for_s") or f == "for_s"), None)
    return (
        ("✓ on" if r.enabled else "✗ off") + (star if "enabled" in r.overridden else ""),
        r.rule,
        r.severity.replace("warning/critical", "warn→crit") + (star if "severity" in r.overridden else ""),
        hold + (star if hold_field else ""),
        r.last_eval,
        thr or "-",
    )


def rules_columns() -> list[Column]:
    # 80 columns: the last evaluation before the thresholds, which may run off the edge (the
    # editor shows them all)
    return [
        Column("on", "ON", 5),
        Column("rule", "RULE", 20),
        Column("sev", "SEVERITY", 9),
        Column("hold", "HOLD", 5),
        Column("last", "LAST EVALUATION", 17),
        Column("thr", "THRESHOLDS", 60),
    ]


class RuleEditScreen(ModalScreen[dict[str, str] | None]):
    """One input per editable field, prefilled; Enter on any input saves the changed ones."""

    DEFAULT_CSS = """
    RuleEditScreen { align: center middle; }
    #rule-edit { width: 70; height: auto; max-height: 90%; background: $panel; padding: 1 2; }
    #rule-edit Input { height: 3; }
    #rule-edit-error { color: $error; height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, rule: RuleInfo, values: dict[str, str]) -> None:
        super().__init__()
        self.rule = rule
        self.values = values

    def compose(self) -> ComposeResult:
        with Vertical(id="rule-edit"):
            title = f"Edit {self.rule.rule} (stored in the ledger as overrides of the TOML)"
            yield Static(Text(title, style="bold"))
            for field, value in self.values.items():
                yield Label(field)
                yield InOrderInput(value, id=f"edit-{field}")
            yield Static("Enter saves · Esc cancels · durations: 90s, 5m, 1h", id="rule-edit-error")

    def show_error(self, message: str) -> None:
        self.query_one("#rule-edit-error", Static).update(Text(f"✗ {message}"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        changed = {}
        for field, old in self.values.items():
            new = self.query_one(f"#edit-{field}", Input).value.strip()
            if new != old:
                changed[field] = new
        self.dismiss(changed)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RulesPanel(Vertical):
    DEFAULT_CSS = """
    RulesPanel { height: 1fr; }
    RulesPanel > #rules-status { height: auto; max-height: 3; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "toggle_enabled", "Enable/disable"),
        Binding("s", "cycle_severity", "Severity"),
        Binding("x", "clear_overrides", "Back to TOML"),
        Binding("d", "delete_rule", "Delete rule", show=False),
    ]

    def __init__(self, alerting: Callable[[], Any], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._alerting = alerting
        self.rules: dict[str, RuleInfo] = {}
        self.loads = 0  # tests wait on this
        self.last_error: str | None = None

    def compose(self) -> ComposeResult:
        yield KeyedTable(rules_columns(), markable=False, id="rules-table", empty_text="loading rules…")
        yield Static("", id="rules-status")

    @property
    def table(self) -> KeyedTable:
        return self.query_one("#rules-table", KeyedTable)

    @work(exclusive=True, group="alert-rules", exit_on_error=False)
    async def load(self) -> None:
        al = self._alerting()
        if al is None:
            return
        try:
            rules, problems = await asyncio.to_thread(al.rules)
        except Exception as exc:
            self._status(f"✗ rules not read: {error_line(exc)}", error=True)
            return
        self.rules = {r.rule: r for r in rules}
        self.table.replace({r.rule: tuple(safe_text(c) for c in rule_cells(r)) for r in rules})
        note = "* = ledger override of the TOML (config show lists them) · e on/off · s severity · Enter edit"
        self._status("\n".join([note, *(f"! {p}" for p in problems)]), error=bool(problems))
        self.loads += 1

    def _status(self, text: str, *, error: bool) -> None:
        w = self.query_one("#rules-status", Static)
        w.set_class(error, "error")
        w.update(Text(safe_text(text, single_line=False)))

    def current(self) -> RuleInfo | None:
        key = self.table.cursor_key
        return self.rules.get(key) if key else None

    # ------------------------------------------------------------------ edits

    def action_toggle_enabled(self) -> None:
        r = self.current()
        if r is not None:
            self.apply(r.rule, {"enabled": "false" if r.enabled else "true"})

    def action_cycle_severity(self) -> None:
        r = self.current()
        if r is not None:
            now = r.severity if r.severity in SEVERITIES else "warning"
            self.apply(r.rule, {"severity": SEVERITIES[(SEVERITIES.index(now) + 1) % len(SEVERITIES)]})

    def action_clear_overrides(self) -> None:
        r = self.current()
        if r is not None:
            self._clear(r.rule)

    def action_delete_rule(self) -> None:
        r = self.current()
        if r is not None:
            self._delete(r.rule)

    @work(group="alert-rules-write", exit_on_error=False)
    async def _delete(self, rule: str) -> None:
        al = self._alerting()
        if al is None:
            return
        try:
            problem = await asyncio.to_thread(al.remove_query_rule, rule)
        except Exception as exc:
            problem = f"not deleted: {error_line(exc)}"
        self.last_error = problem
        self.app.notify(problem or f"{rule} deleted", severity="error" if problem else "information",
                        markup=False)  # fmt: skip
        self.load()

    def on_keyed_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        if event.table.id != "rules-table":
            return
        event.stop()
        r = self.rules.get(event.key)
        if r is None:
            return
        fields = [f for f in editable_fields(r.rule) if f not in ("enabled", "severity")]
        values = {f: _edit_value(r, f) for f in fields}
        if not values:
            self.app.notify(f"{r.rule} has no thresholds; e enables/disables, s sets its severity",
                            markup=False)  # fmt: skip
            return

        def done(changed: dict[str, str] | None) -> None:
            if changed:
                self.apply(r.rule, changed)

        self.app.push_screen(RuleEditScreen(r, values), done)

    @work(group="alert-rules-write", exit_on_error=False)
    async def apply(self, rule: str, changed: dict[str, str]) -> None:
        al = self._alerting()
        if al is None:
            return
        for field, raw in changed.items():
            try:
                problem = await asyncio.to_thread(al.set_rule_override, rule, field, raw)
            except Exception as exc:
                problem = f"not stored: {error_line(exc)}"
            if problem is not None:
                self.last_error = problem
                self.app.notify(problem, severity="error", markup=False)
                break
        else:
            self.last_error = None
            self.app.notify(f"{rule}: {', '.join(f'{f}={v}' for f, v in changed.items())} (override stored)",
                            markup=False)  # fmt: skip
        self.load()

    @work(group="alert-rules-write", exit_on_error=False)
    async def _clear(self, rule: str) -> None:
        al = self._alerting()
        if al is None:
            return
        try:
            n = await asyncio.to_thread(al.clear_rule_overrides, rule)
        except Exception as exc:
            self.app.notify(f"overrides not cleared: {error_line(exc)}", severity="error", markup=False)
            return
        plural = "s" if n != 1 else ""
        self.app.notify(f"{rule}: {n} override{plural} dropped (back to the TOML)", markup=False)
        self.load()


def _edit_value(r: RuleInfo, field: str) -> str:
    if field in r.thresholds:
        v = r.thresholds[field]
    elif field in ("for_s",) or field.endswith("_for_s"):
        v = r.hold_s
    else:
        return ""
    if field.endswith("_s") and isinstance(v, int | float):
        return _exact_duration(float(v))
    return _val(v)


def _exact_duration(s: float) -> str:
    """A duration the editor can show and read back unchanged (fmt_age rounds 90s to 1m)."""
    if s and s % 3600 == 0:
        return f"{s / 3600:g}h"
    if s and s % 60 == 0:
        return f"{s / 60:g}m"
    return f"{s:g}s"
