"""Saved queries in the Explore tab: save (ctrl+s) with a hotkey pin, a palette pin and an optional
alert rule; the saved list (ctrl+o: Enter runs, d deletes); `g<digit>` runs the query pinned to
that slot; palette-pinned queries are commands in ctrl+p (tui/commands.py reads `pins`).

Saved queries live in the ledger (adapters/ledger/queries.py through ExploreService); pins and
TUI-made alert rules in adapters/ledger/rule_overrides.py. Every ledger access runs in a thread;
a failure is one line in a notification and changes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from opcockpit.domain.alerts_rules import QueryRuleConfig
from opcockpit.domain.text import error_line, safe_text
from opcockpit.tui.widgets.in_order_input import InOrderInput

__all__ = ["SaveQueryScreen", "SavedListScreen", "SavedQueries", "rule_store_for"]


def rule_store_for(app: Any) -> Any:
    """A factory opening the pins/rules store of the app's ledger (None: no ledger known).
    `app.rule_store` (tests, embedders) wins over the cockpit's ledger."""
    factory = getattr(app, "rule_store", None)
    if factory is not None:
        return factory
    cockpit = getattr(app, "cockpit", None)
    return None if cockpit is None else cockpit.open_rule_store


class SaveQueryScreen(ModalScreen[dict[str, str] | None]):
    """Name, description, hotkey slot (1-9), palette (y/n), alert at ≥ N rows for T (optional)."""

    DEFAULT_CSS = """
    SaveQueryScreen { align: center middle; }
    #save-query { width: 76; height: auto; max-height: 95%; background: $panel; padding: 0 2; }
    #save-query Input { height: 3; }
    #save-error { color: $error; height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    FIELDS = (
        ("name", "name (letters, digits, _ . -)"),
        ("description", "description"),
        ("slot", "hotkey: g<1-9> in Explore (blank: none)"),
        ("palette", "in the command palette? (y/n)"),
        ("alert_min_rows", "alert rule: fire at >= N rows (blank: no rule)"),
        ("alert_for", "alert rule: for (e.g. 5m)"),
    )

    def __init__(self, query: str, values: dict[str, str] | None = None) -> None:
        super().__init__()
        self.query_text = query
        self.values = values or {}

    def compose(self) -> ComposeResult:
        with Vertical(id="save-query"):
            yield Static(Text(f"Save: {safe_text(self.query_text)}", style="bold"))
            for key, label in self.FIELDS:
                yield Label(label)
                yield InOrderInput(self.values.get(key, ""), id=f"save-{key}")
            yield Static("Enter saves · Esc cancels", id="save-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss({k: self.query_one(f"#save-{k}", Input).value.strip() for k, _ in self.FIELDS})

    def action_cancel(self) -> None:
        self.dismiss(None)


class SavedListScreen(ModalScreen[tuple[str, str] | None]):
    """The saved queries: Enter -> ("run", name), d -> ("delete", name)."""

    DEFAULT_CSS = """
    SavedListScreen { align: center middle; }
    #saved-box { width: 90%; height: 80%; background: $panel; }
    #saved-list { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Close"),
        Binding("d", "delete", "Delete"),
    ]

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = rows  # (name, label)

    def compose(self) -> ComposeResult:
        with Vertical(id="saved-box"):
            yield Static(Text("Saved queries · Enter runs · d deletes · Esc closes", style="bold"))
            options = [Option(safe_text(label), id=name) for name, label in self.rows]
            yield OptionList(*options, id="saved-list")

    def _current(self) -> str | None:
        ol = self.query_one("#saved-list", OptionList)
        if ol.highlighted is None:
            return None
        return ol.get_option_at_index(ol.highlighted).id

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.dismiss(("run", event.option.id))

    def action_delete(self) -> None:
        name = self._current()
        if name:
            self.dismiss(("delete", name))

    def action_cancel(self) -> None:
        self.dismiss(None)


class SavedQueries:
    """The Explore view's saved-query actions (a mixin of ExploreView: it uses `service`,
    `run_query`, the input and the app)."""

    pins: dict[int, str]  # slot -> saved query name
    palette_pins: list[tuple[str, str]]  # (name, query text) shown in ctrl+p
    _g_armed: bool

    def _init_saved(self) -> None:
        self.pins, self.palette_pins, self._g_armed = {}, [], False

    # ------------------------------------------------------------------ pins

    @work(thread=True, exit_on_error=False, group="explore-pins")
    def load_pins(self) -> None:
        me: Any = self
        factory, svc = rule_store_for(me.app), me.service
        if factory is None or svc is None or getattr(svc, "store", None) is None:
            return
        try:
            with factory() as st:
                pins = st.pins()
            saved = {q.name: q for q in svc.saved_all()}
        except Exception:  # pins are a convenience: an unusable ledger only loses them
            return
        slots = {p.slot: p.name for p in pins if p.slot is not None and p.name in saved}
        palette = [(p.name, saved[p.name].query) for p in pins if p.palette and p.name in saved]
        me.app.call_from_thread(self._set_pins, slots, palette)

    def _set_pins(self, slots: dict[int, str], palette: list[tuple[str, str]]) -> None:
        self.pins, self.palette_pins = slots, palette

    def on_key(self, event: Any) -> None:
        """`g` then a digit runs the pinned query (the digit does not switch tabs then)."""
        me: Any = self
        if self._g_armed and event.key.isdigit() and event.key != "0":
            event.stop()
            event.prevent_default()
            self._g_armed = False
            self.run_pinned(int(event.key))
            return
        self._g_armed = event.key == "g" and not isinstance(me.app.focused, Input)

    def run_pinned(self, slot: int) -> None:
        me: Any = self
        name = self.pins.get(slot)
        if name is None:
            me.app.notify(f"nothing pinned to g{slot} (ctrl+s saves a query with a hotkey)", markup=False)
            return
        self.run_saved(name)

    @work(exit_on_error=False, group="explore-saved")
    async def run_saved(self, name: str) -> None:
        me: Any = self
        try:
            q = await asyncio.to_thread(me.service.saved, name)
        except Exception as exc:
            me.app.notify(f"saved query {name}: {error_line(exc)}", severity="error", markup=False)
            return
        if q is None:
            me.app.notify(f"no saved query {name!r}", severity="warning", markup=False)
            return
        if q.params:
            # parameters are filled in the input (`:thread` -> a value), not guessed
            me.query_one("#explore-input", Input).value = q.query
            me.app.notify(f"{name} needs {', '.join(':' + p for p in q.params)}: edit and press Enter",
                          markup=False)  # fmt: skip
            return
        me.run_query(q.query)

    # ------------------------------------------------------------------ save / list

    def action_save_query(self) -> None:
        me: Any = self
        text = me.query_one("#explore-input", Input).value.strip()
        if not text:
            me.app.notify("type a query first; ctrl+s saves it", markup=False)
            return
        me.app.push_screen(SaveQueryScreen(text), lambda form: form and self.save_form(text, form))

    @work(exit_on_error=False, group="explore-saved")
    async def save_form(self, text: str, form: dict[str, str]) -> None:
        me: Any = self
        problem = await asyncio.to_thread(self._save_blocking, text, form)
        if problem is not None:
            me.app.notify(problem, severity="error", markup=False)
            return
        me.app.notify(f"saved {form['name']}", markup=False)
        self.load_pins()

    def _save_blocking(self, text: str, form: dict[str, str]) -> str | None:
        """Save, pin, add the alert rule; the first problem as one line (checked before writing)."""
        me: Any = self
        name = form.get("name", "")
        slot_text, pal = form.get("slot", ""), form.get("palette", "").lower() in ("y", "yes", "true", "1")
        if slot_text and not (slot_text.isdigit() and 1 <= int(slot_text) <= 9):
            return f"hotkey slot must be 1..9, not {slot_text!r}"
        rule: dict[str, Any] | None = None
        if form.get("alert_min_rows"):
            rule = {"saved": name, "min_rows": form["alert_min_rows"], "for": form.get("alert_for") or "5m"}
            try:
                rule = QueryRuleConfig.model_validate(rule).model_dump(by_alias=True, exclude_defaults=True)
            except Exception as exc:
                return f"alert rule: {error_line(exc)}"
        factory = rule_store_for(me.app)
        if (slot_text or pal or rule) and factory is None:
            return "no ledger for pins and rules"
        who = me.service.operator
        try:
            me.service.save(name, text, description=form.get("description", ""))
            if factory is not None and (slot_text or pal or rule):
                with factory() as st:
                    if slot_text or pal:
                        st.pin(name, slot=int(slot_text) if slot_text else None, palette=pal, who=who)
                    if rule is not None:
                        st.save_query_rule(name, rule, who)
        except Exception as exc:
            return f"not saved: {error_line(exc)}"
        return None

    def action_saved_list(self) -> None:
        self._open_list()

    @work(exit_on_error=False, group="explore-saved")
    async def _open_list(self) -> None:
        me: Any = self
        try:
            saved = await asyncio.to_thread(me.service.saved_all)
        except Exception as exc:
            me.app.notify(f"saved queries: {error_line(exc)}", severity="error", markup=False)
            return
        slot_of = {n: s for s, n in self.pins.items()}
        rows = [
            (q.name, f"{q.name}{f' [g{slot_of[q.name]}]' if q.name in slot_of else ''}  {q.query}"
                     f"{'  — ' + q.description if q.description else ''}")
            for q in saved
        ]  # fmt: skip
        if not rows:
            me.app.notify("no saved queries yet (ctrl+s saves the one in the input)", markup=False)
            return
        me.app.push_screen(SavedListScreen(rows), self._list_done)

    def _list_done(self, choice: tuple[str, str] | None) -> None:
        if choice is None:
            return
        verb, name = choice
        if verb == "run":
            self.run_saved(name)
        else:
            self._delete(name)

    @work(exit_on_error=False, group="explore-saved")
    async def _delete(self, name: str) -> None:
        me: Any = self
        try:
            gone = await asyncio.to_thread(me.service.remove, name)
            factory = rule_store_for(me.app)
            if factory is not None:
                await asyncio.to_thread(_unpin, factory, name, me.service.operator)
        except Exception as exc:
            me.app.notify(f"not deleted: {error_line(exc)}", severity="error", markup=False)
            return
        me.app.notify(f"deleted {name}" if gone else f"no saved query {name!r}", markup=False)
        self.load_pins()


def _unpin(factory: Any, name: str, who: str) -> None:
    with factory() as st:
        st.pin(name, slot=None, palette=False, who=who)
