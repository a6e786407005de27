"""The Explore tab: ad-hoc queries (docs/explore.md) with completion, facets and history.

- The input completes datasets, fields (and `since:`/`until:`) and values (the values seen in the
  last result's facets) through Textual's suggester (→ accepts).
- Enter runs the query on screen at that moment (QueryInput takes its keys in typing order) in
  an exclusive worker ("running…" shown); Esc cancels it. The service's own deadline bounds the
  evaluation thread a cancelled worker leaves behind. The result's cell texts are made in a
  thread too (table_rows); the event loop only hands them to the table (the rows that changed,
  when the columns did not), and the run goes into the history once drawn.
- Errors are one line plus the query with a caret under the offending token.
- Results go into the keyed table (sortable, filterable); facets (value counts computed with the
  results) sit beside it, and selecting one adds `field:value` to the query and runs it.
- ↑/↓ in the input recall earlier queries (this session's, then the ledger's history).
- Enter on a result row opens the lease / thread detail (or focuses the orphan).
- `v` (or ctrl+t, also from the input) cycles table -> timeline -> chart (tabs/explore_views.py);
  the chart degrades to ASCII on NO_COLOR / limited terminals (widgets/chart.ascii_terminal).
- ctrl+s saves the query (hotkey pin g1..g9, palette pin, optional alert rule); ctrl+o lists the
  saved queries; `g<digit>` runs a pinned one (tabs/explore_saved.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.suggester import Suggester
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from opcockpit.domain.query import DATASETS, QueryError
from opcockpit.domain.query.evaluate import PSEUDO
from opcockpit.domain.text import error_line, safe_text
from opcockpit.tui.rows import fmt_ts
from opcockpit.tui.table.widget import Column, KeyedTable
from opcockpit.tui.tabs.explore_saved import SavedQueries
from opcockpit.tui.tabs.explore_views import MODES, render_mode
from opcockpit.tui.widgets.chart import ascii_terminal
from opcockpit.tui.widgets.in_order_input import InOrderInput

__all__ = ["ExploreView", "QuerySuggester", "TableRows", "refine", "table_rows"]

PLACEHOLDER = "runs status:error since:-6h | group by provider | count   (Enter runs, Esc cancels)"
MAX_WIDTH = 36
_BARE = re.compile(r"^[^\s()|,:\"'=!<>~]+$")


def _literal(value: Any) -> str:
    if value is None or value == "":
        return "null"
    text = str(value)
    if _BARE.match(text) and text.lower() not in ("and", "or", "not", "in", "null"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def refine(query: str, field: str, value: Any) -> str:
    """`query` with `field:value` added to its filter (before the first `|` stage)."""
    head, bar, stages = query.partition("|")
    term = f"{field}:{_literal(value)}" if value not in (None, "") else f"{field}:null"
    return f"{head.rstrip()} {term}" + (f" {bar}{stages}" if bar else "")


class QuerySuggester(Suggester):
    """Completes the last word: a dataset, a field of the query's dataset, or a value seen."""

    def __init__(self, view: ExploreView) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.view = view

    async def get_suggestion(self, value: str) -> str | None:
        if not value or value.endswith((" ", "(", ",")):
            return None
        words = value.split(" ")
        last = words[-1]
        if len(words) == 1:
            return next((value + d[len(last) :] for d in DATASETS if d.startswith(last) and d != last), None)
        spec = DATASETS.get(words[0])
        if spec is None or ("|" in value and last in ("group", "count", "sort", "by")):
            return None
        if ":" in last:
            field, _, typed = last.partition(":")
            for v in self.view.known_values(spec.name, field):
                lit = _literal(v)
                if lit.startswith(typed) and lit != typed:
                    return value + lit[len(typed) :]
            return None
        for name in (*spec.names, *PSEUDO):
            if name.startswith(last) and name != last:
                return value + name[len(last) :]
        return None


class QueryInput(InOrderInput):
    """The query box: Enter submits the text on screen at that moment (keys run in typing order,
    widgets/in_order_input.py); what is typed after it stays in the box for the next query."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "history(-1)", "Previous query", show=False),
        Binding("down", "history(1)", "Next query", show=False),
    ]

    def __init__(self, submit: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._submit = submit

    async def action_submit(self) -> None:  # the binding's action, called directly: the same path
        self._submit(self.value)

    def action_history(self, step: int) -> None:
        view = next((a for a in self.ancestors if isinstance(a, ExploreView)), None)
        if view is not None:
            view.recall(step)


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return fmt_ts(value)
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else safe_text(value)


TS_WIDTH = len(fmt_ts(datetime(2026, 12, 31, 23, 59, 59)))  # every time cell is this wide


def _width(value: Any) -> int:
    """len(_cell(value)) without making the text where it is known (times, printable text)."""
    if value is None:
        return 0
    if isinstance(value, datetime):
        return TS_WIDTH
    if isinstance(value, str) and value.isprintable():
        return len(value)
    return len(_cell(value))


@dataclass(frozen=True, slots=True)
class TableRows:
    """A result as the table takes it: the rows by table key, their cells (the raw values: the
    table makes a row's texts with _cell when it paints it) and the columns."""

    rows: dict[str, dict[str, Any]]
    cells: dict[str, tuple[Any, ...]]
    columns: tuple[Column, ...]


def table_rows(result: Any) -> TableRows:
    """Every row's key and cells, and each column's width (the widest text, capped). Pure; the
    query worker runs it in a thread. The texts themselves are made only for the rows painted
    (the table's model formats lazily), and the table sorts by the values (numbers as numbers,
    times as times, empty last)."""
    cols = result.columns
    rows: dict[str, dict[str, Any]] = {}
    cells: dict[str, tuple[Any, ...]] = {}
    key_field = DATASETS[result.dataset].key
    keyed = key_field in cols
    for i, r in enumerate(result.rows):
        k = r.get(key_field) if keyed else None
        key = str(k) if k is not None and str(k) not in rows else f"#{i}"
        rows[key] = r
        cells[key] = tuple([r.get(c) for c in cols])
    values = zip(*cells.values(), strict=True) if cells else [()] * len(cols)
    columns = tuple(
        Column(
            c, c, min(MAX_WIDTH, max(len(c), 4, *map(_width, col))), "right" if c == "count" else "left",
            format=_cell,
        )
        for c, col in zip(cols, values, strict=True)
    )  # fmt: skip
    return TableRows(rows, cells, columns)


class ExploreView(SavedQueries, Vertical):
    DEFAULT_CSS = """
    ExploreView { height: 1fr; }
    #explore-input { height: 3; }
    #explore-status { height: auto; max-height: 4; padding: 0 1; }
    #explore-status.error { color: $error; }
    #explore-body { height: 1fr; }
    #explore-table { width: 1fr; }
    #explore-facets { width: 30; height: 1fr; border-left: solid $panel-lighten-2; }
    #explore-chart { width: 1fr; height: 1fr; }
    #explore-chart-text { width: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel query", show=False),
        Binding("v,ctrl+t", "cycle_view", "Table/timeline/chart", key_display="v"),
        Binding("ctrl+s", "save_query", "Save query"),
        Binding("ctrl+o", "saved_list", "Saved queries"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.history: list[str] = []
        self._hist_pos: int | None = None
        self._rows: dict[str, dict[str, Any]] = {}
        self._values: dict[tuple[str, str], list[Any]] = {}
        self._facet_choices: list[tuple[str, Any]] = []
        self.result: Any = None
        self.error: QueryError | str | None = None
        self.running = False
        self.cancelled = False
        self._worker: Worker[Any] | None = None
        self._service: Any = None
        self.mode = "table"  # table | timeline | chart
        self.ran_text = ""  # the query the shown result came from (the chart reads its bucket)
        self.ascii = ascii_terminal()
        self._init_saved()

    def compose(self) -> ComposeResult:
        yield QueryInput(
            self.run_query, placeholder=PLACEHOLDER, id="explore-input", suggester=QuerySuggester(self)
        )
        yield Static("type a query; datasets: " + " ".join(DATASETS), id="explore-status")
        with Horizontal(id="explore-body"):
            yield KeyedTable(  # a new result is not a change to flash: no flash timers per row
                [Column("-", "", 10)], markable=False, empty_text="no results yet", flash_seconds=0,
                id="explore-table",
            )  # fmt: skip
            with VerticalScroll(id="explore-chart"):
                yield Static("", id="explore-chart-text")
            yield OptionList(id="explore-facets")

    def on_mount(self) -> None:
        self.query_one("#explore-facets", OptionList).display = False
        self.query_one("#explore-chart").display = False
        self._load_history()
        self.load_pins()

    def focus_query(self) -> None:
        """The query box takes the keys (the tab was opened: a query is what comes next)."""
        self.query_one("#explore-input", Input).focus()

    # ------------------------------------------------------------------ the service

    @property
    def service(self) -> Any:
        """The app's ExploreService (`app.explore`), else one built from its wiring graph."""
        svc = getattr(self.app, "explore", None) or self._service
        if svc is None:
            cockpit = getattr(self.app, "cockpit", None)
            if cockpit is not None:
                from opcockpit.wiring import build_explore

                ledger = getattr(cockpit, "ledger", None) or cockpit.ledger_path  # the team's ledger too
                svc = self._service = build_explore(cockpit.settings, ledger_path=ledger, live=True)
        return svc

    @work(thread=True, exit_on_error=False, group="explore-history")
    def _load_history(self) -> None:
        svc = self.service
        if svc is None or getattr(svc, "store", None) is None:
            return
        try:
            past = [h["query"] for h in svc.history(100) if not h.get("sql")]
        except Exception:  # a convenience: an unusable ledger only loses the recall
            return
        self.app.call_from_thread(self._merge_history, past)

    def _merge_history(self, past: list[str]) -> None:
        seen = set(self.history)
        older = [q for q in reversed(past) if q not in seen]  # history() is newest first
        self.history = list(dict.fromkeys(older)) + self.history

    def recall(self, step: int) -> None:
        if not self.history:
            return
        pos = len(self.history) if self._hist_pos is None else self._hist_pos
        pos = max(0, min(len(self.history), pos + step))
        self._hist_pos = pos
        inp = self.query_one("#explore-input", Input)
        inp.value = self.history[pos] if pos < len(self.history) else ""
        inp.cursor_position = len(inp.value)

    def known_values(self, dataset: str, field: str) -> list[Any]:
        return self._values.get((dataset, field), [])

    # ------------------------------------------------------------------ running

    def run_query(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        self.query_one("#explore-input", Input).value = text
        if text in self.history:
            self.history.remove(text)
        self.history.append(text)
        self._hist_pos = None
        svc = self.service
        if svc is None:
            self._show_error("Explore needs the cockpit's sources (no wiring graph and no service)")
            return
        self.running, self.cancelled = True, False
        self._status(Text("running…"), error=False)
        self._worker = self._query_worker(svc, text)

    @work(exclusive=True, group="explore", exit_on_error=False)
    async def _query_worker(self, svc: Any, text: str) -> None:
        gt = getattr(self.app, "ground_truth", None)
        try:
            # recorded below, once the result is on screen: the ledger write is not on its way
            result = await svc.run(text, facets=True, ground_truth=gt, record=False)
            shown = await asyncio.to_thread(table_rows, result)  # the cell texts, off the event loop
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # QueryError, or a source unreadable: one line, the last result stays
            self.running = False
            self._show_error(exc if isinstance(exc, QueryError) else error_line(exc))
            await svc.remember(text, rows=None, error=exc)
            return
        self.running = False
        self.ran_text = text
        self._show_result(result, shown)
        await svc.remember(text, rows=result.total)

    def action_cancel(self) -> None:
        if self.running and self._worker is not None:
            self._worker.cancel()
            self.running, self.cancelled = False, True
            self._status(Text("query cancelled (the last result stays)"), error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self._worker and event.state == WorkerState.CANCELLED and self.running:
            self.running = False

    # ------------------------------------------------------------------ showing

    def _status(self, text: Text, *, error: bool) -> None:
        w = self.query_one("#explore-status", Static)
        w.set_class(error, "error")
        w.update(text)

    def _show_error(self, exc: QueryError | str) -> None:
        self.error = exc
        lines = [f"✗ {exc.message}", *exc.caret()] if isinstance(exc, QueryError) else [f"✗ {exc}"]
        self._status(Text("\n".join(safe_text(line, single_line=True) for line in lines)), error=True)

    def _show_result(self, result: Any, shown: TableRows | None = None) -> None:
        self.result, self.error = result, None
        shown = shown or table_rows(result)
        self._rows = shown.rows
        table = self.query_one("#explore-table", KeyedTable)
        if shown.columns != table.columns:
            # emptied first: new columns re-derive every row held, and the old ones would go anyway
            table.replace({})
            table.set_columns(shown.columns)
        table.empty_text = "no rows match"
        table.replace(shown.cells)  # the same query again: only the rows that changed
        self._show_facets(result)
        parts = [f"{len(result.rows)} row{'s' if len(result.rows) != 1 else ''}"]
        if result.matched != result.total:
            parts.append(f"from {result.matched} matching")
        if result.elapsed_s >= 1.0:
            parts.append(f"in {result.elapsed_s:.1f} s")
        lines = [" ".join(parts)]
        if result.notice:
            lines.append(result.notice)
        lines += [f"! {w}" for w in result.warnings]
        self._status(Text("\n".join(safe_text(x) for x in lines)), error=False)
        self._render_mode()

    # ------------------------------------------------------------------ table / timeline / chart

    def action_cycle_view(self) -> None:
        self.set_mode(MODES[(MODES.index(self.mode) + 1) % len(MODES)])

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        table = mode == "table"
        self.query_one("#explore-table").display = table
        self.query_one("#explore-chart").display = not table
        facets = self.query_one("#explore-facets", OptionList)
        facets.display = table and bool(self._facet_choices)  # the chart gets the full width
        self._render_mode()

    def chart_lines(self) -> list[str]:
        width = max(min(self.size.width - 2, 118), 20)
        return render_mode(self.mode, self.result, self.ran_text, width=width, ascii=self.ascii)

    def _render_mode(self) -> None:
        if self.mode == "table":
            return
        lines = self.chart_lines()
        # DB and provider text reaches the timeline labels: terminal-safe, line by line
        self.query_one("#explore-chart-text", Static).update(
            Text("\n".join(safe_text(x, single_line=True) for x in lines))
        )

    def on_resize(self) -> None:
        self._render_mode()

    def _show_facets(self, result: Any) -> None:
        facets = self.query_one("#explore-facets", OptionList)
        facets.clear_options()
        self._facet_choices = []
        options: list[Option | None] = []
        for field, counts in result.facets.items():
            if not counts:
                continue
            self._values[(result.dataset, field)] = [v for v, _ in counts if v not in (None, "")]
            if options:
                options.append(None)
            options.append(Option(Text(field, style="bold"), disabled=True))
            for value, n in counts:
                self._facet_choices.append((field, value))
                label = "∅" if value in (None, "") else safe_text(value)
                options.append(Option(f" {label[:20]} {n}", id=f"facet-{len(self._facet_choices) - 1}"))
        facets.add_options(options)
        facets.display = self.mode == "table" and bool(self._facet_choices)

    # ------------------------------------------------------------------ selecting

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id != "explore-facets" or not event.option.id:
            return
        event.stop()
        field, value = self._facet_choices[int(event.option.id.removeprefix("facet-"))]
        self.run_query(refine(self.query_one("#explore-input", Input).value, field, value))

    def on_keyed_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        if event.table.id != "explore-table":
            return
        event.stop()
        row = self._rows.get(event.key) or {}
        app: Any = self.app
        dataset = self.result.dataset if self.result is not None else ""
        if dataset == "orphans" and row.get("provider") and row.get("instance_id"):
            app.focus_orphan(f"{row['provider']}/{row['instance_id']}")
        elif row.get("lease_id"):
            app.open_lease(row["lease_id"])
        elif row.get("thread_id"):
            open_thread(app, row["thread_id"])
        else:
            app.notify("this row names no lease or thread to open", markup=False)


def open_thread(app: Any, thread_id: str) -> None:
    """The detail of the lease `thread_id` is bound to (primary binding first)."""
    gt = app.ground_truth
    rows = gt.rows if gt is not None else ()
    row = next((r for r in rows if r.thread_id == thread_id), None) or next(
        (r for r in rows if thread_id in r.thread_ids), None
    )
    if row is None:
        app.notify(f"thread {thread_id} is bound to no lease in the current picture", severity="warning",
                   markup=False)  # fmt: skip
        return
    app.open_lease(row.lease_id)
