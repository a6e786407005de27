"""The Explore tab (tui/tabs/explore.py) on a generated LEON fleet (real sandbox.db/events.db) and
the real ExploreService: results in the keyed table, a syntax error with its caret, a facet
refining the query, Esc cancelling a running query, completion, history; an SVG snapshot."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, OptionList, Static

from opcockpit.demo.fleet import generate_fleet
from opcockpit.settings.config import CockpitConfig
from opcockpit.tui.app import CockpitApp
from opcockpit.tui.table.widget import KeyedTable
from opcockpit.tui.tabs.explore import ExploreView, QuerySuggester, refine
from opcockpit.wiring import build_explore
from tests.tui.conftest import SequenceSource, wait_until
from tests.tui.factories import NOW, make_ground_truth

FLEET_NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SIZE = (100, 30)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    return generate_fleet(tmp_path_factory.mktemp("fleet"), leases=30, seed=3, now=FLEET_NOW)


def _service(fleet, ledger: Path):
    cfg = CockpitConfig.model_validate(
        {"sources": {"sandbox_db": str(fleet.sandbox_db), "events_db": str(fleet.events_db)}}
    )
    svc = build_explore(cfg, ledger_path=ledger)
    svc.clock = lambda: FLEET_NOW
    return svc


def explore_app(svc: Any) -> CockpitApp:
    app = CockpitApp(
        SequenceSource([make_ground_truth(20)]),
        clock=lambda: NOW,
        auto_refresh=False,
        flash_clock=lambda: 0.0,
    )
    app.explore = svc  # type: ignore[attr-defined]
    return app


async def _open(pilot: Any) -> ExploreView:
    app = pilot.app
    await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
    await pilot.press("6")
    await wait_until(pilot, lambda: app.query_one("#main-tabs").active == "explore")
    view = app.query_one(ExploreView)
    inp = view.query_one("#explore-input", Input)
    inp.cursor_blink = False
    inp.focus()
    await pilot.pause()
    return view


async def _run(pilot: Any, view: ExploreView, text: str) -> None:
    inp = view.query_one("#explore-input", Input)
    inp.value = text
    await pilot.press("enter")
    await wait_until(pilot, lambda: not view.running and (view.result is not None or view.error is not None))


def _status(view: ExploreView) -> str:
    return str(view.query_one("#explore-status", Static).render())


async def test_a_query_shows_rows(fleet, tmp_path: Path) -> None:
    svc = _service(fleet, tmp_path / "ledger.db")
    async with explore_app(svc).run_test(size=SIZE) as pilot:
        view = await _open(pilot)
        await _run(pilot, view, "commands exit_code!=0 | sort command_id | limit 7")
        table = view.query_one("#explore-table", KeyedTable)
        assert view.error is None and len(view.result.rows) == 7
        assert table.row_count == 7 and [c.key for c in table.columns] == list(view.result.columns)
        assert table.view_keys() == [r["command_id"] for r in view.result.rows]
        assert "7 rows" in _status(view)
        await _run(pilot, view, "run_events | count by event_type")
        counts = {r["event_type"]: r["count"] for r in view.result.rows}
        assert sum(counts.values()) == fleet.counts["run_events"] and table.row_count == len(counts)
        # recorded once the result is drawn (not on its way): both runs reach the ledger
        await wait_until(pilot, lambda: len(svc.history()) >= 2)
    # the run went into the ledger's history; a new tab recalls it with ↑
    async with explore_app(_service(fleet, tmp_path / "ledger.db")).run_test(size=SIZE) as pilot:
        view = await _open(pilot)
        await wait_until(pilot, lambda: len(view.history) >= 2)
        await pilot.press("up")
        assert view.query_one("#explore-input", Input).value == "run_events | count by event_type"
        await pilot.press("up")
        assert view.query_one("#explore-input", Input).value.startswith("commands exit_code!=0")
        await pilot.press("down", "down")
        assert view.query_one("#explore-input", Input).value == ""


async def test_a_syntax_error_shows_the_caret(fleet, tmp_path: Path) -> None:
    async with explore_app(_service(fleet, tmp_path / "l.db")).run_test(size=SIZE) as pilot:
        view = await _open(pilot)
        await _run(pilot, view, "commands exit_code!=0")
        await _run(pilot, view, "runs status: | count")
        lines = _status(view).splitlines()
        assert lines[0].startswith("✗ syntax error at column 14")
        assert lines[1:] == ["runs status: | count", " " * 13 + "^"]
        assert view.query_one("#explore-status", Static).has_class("error")
        # the last good result stays on screen
        assert view.query_one("#explore-table", KeyedTable).row_count == len(view.result.rows) > 0
        await _run(pilot, view, "commands nosuchfield:1")
        assert "unknown field 'nosuchfield'" in _status(view) and "exit_code" in _status(view)


async def test_a_facet_refines_the_query(fleet, tmp_path: Path) -> None:
    async with explore_app(_service(fleet, tmp_path / "l.db")).run_test(size=SIZE) as pilot:
        view = await _open(pilot)
        await _run(pilot, view, "commands | sort command_id")
        before = len(view.result.rows)
        facets = view.query_one("#explore-facets", OptionList)
        assert facets.display and view.result.facets["provider"]
        index = next(i for i in range(facets.option_count) if facets.get_option_at_index(i).id == "facet-0")
        field, value = view._facet_choices[0]
        facets.focus()
        facets.highlighted = index
        first = view.result
        await pilot.press("enter")
        await wait_until(pilot, lambda: view.result is not first and not view.running)
        text = view.query_one("#explore-input", Input).value
        assert text == refine("commands | sort command_id", field, value)
        assert text.startswith(f"commands {field}:") and text.endswith("| sort command_id")
        rows = view.result.rows
        assert 0 < len(rows) < before and all(r[field] == value for r in rows)


class GatedRows:
    """The real rows port, held at a gate (so a query is still running when Esc arrives)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Event()

    def rows(self, *args: Any, **kw: Any) -> Any:
        def gen() -> Any:  # iterated in the service's worker thread, like the real cursor
            self.entered.set()
            self.gate.wait(10)
            yield from self.inner.rows(*args, **kw)

        return gen()

    def aggregate(self, *args: Any, **kw: Any) -> Any:
        return None  # count in Python, through rows()

    def thread_leases(self) -> Any:
        return self.inner.thread_leases()


async def test_esc_cancels_a_running_query(fleet, tmp_path: Path) -> None:
    svc = _service(fleet, tmp_path / "l.db")
    gated = GatedRows(svc.rows)
    async with explore_app(svc).run_test(size=SIZE) as pilot:
        view = await _open(pilot)
        await _run(pilot, view, "commands | limit 3")
        first = view.result
        svc.rows = gated
        view.query_one("#explore-input", Input).value = "run_events | limit 5"
        await pilot.press("enter")
        await wait_until(pilot, lambda: gated.entered.is_set())
        assert view.running and _status(view) == "running…"
        await pilot.press("escape")
        await pilot.pause()
        assert not view.running and view.cancelled and "cancelled" in _status(view)
        gated.gate.set()
        await pilot.pause(0.2)
        assert view.result is first  # the cancelled query never replaced the result
        assert view.query_one("#explore-table", KeyedTable).row_count == 3


async def test_completion_of_datasets_fields_and_values(fleet, tmp_path: Path) -> None:
    async with explore_app(_service(fleet, tmp_path / "l.db")).run_test(size=SIZE) as pilot:
        view = await _open(pilot)
        s = QuerySuggester(view)
        assert await s.get_suggestion("run_ev") == "run_events"
        assert await s.get_suggestion("commands exit_c") == "commands exit_code"
        assert await s.get_suggestion("commands sin") == "commands since"
        assert await s.get_suggestion("nosuch exit_c") is None
        await _run(pilot, view, "commands")
        provider = view.result.facets["provider"][0][0]
        assert await s.get_suggestion(f"commands provider:{provider[:2]}") == f"commands provider:{provider}"


def test_explore_snapshot(snap_compare: Any, fleet, tmp_path: Path) -> None:
    svc = _service(fleet, tmp_path / "l.db")
    svc.store = None  # no history recall: the snapshot does not depend on earlier runs

    async def run_before(pilot: Any) -> None:
        view = await _open(pilot)
        await _run(pilot, view, "commands exit_code!=0 | sort command_id | limit 12")
        view.query_one("#explore-input", Input).cursor_position = 0
        await pilot.pause()

    assert snap_compare(explore_app(svc), terminal_size=SIZE, run_before=run_before)


# ----------------------------------------------------------------------- global search (ctrl+p)


async def _hits(app: Any, text: str) -> list[Any]:
    from opcockpit.tui.search import SearchProvider

    provider = SearchProvider(app.screen)
    return [hit async for hit in provider.search(text)]


async def test_global_search_jumps_to_a_lease_in_the_picture(fleet, tmp_path: Path) -> None:
    from opcockpit.tui.screens.thread import ThreadDetailScreen

    app = explore_app(_service(fleet, tmp_path / "l.db"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
        lease = app.ground_truth.rows[3].lease_id
        hits = await _hits(app, lease)
        assert [h.help for h in hits] == ["search: leases"] and lease in str(hits[0].text)
        hits[0].command()
        await wait_until(pilot, lambda: isinstance(app.screen, ThreadDetailScreen))
        assert app.screen.row.lease_id == lease
        assert await _hits(app, "no-such-thing-anywhere") == []
        assert await _hits(app, "le") == []  # too short to search


async def test_global_search_finds_a_command_and_opens_it_in_explore(fleet, tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(fleet.sandbox_db) as conn:
        command_id, run_thread = conn.execute(
            "SELECT c.command_id, t.thread_id FROM terminal_commands c"
            " JOIN abstract_terminals t ON t.terminal_id = c.terminal_id LIMIT 1"
        ).fetchone()
    with sqlite3.connect(fleet.events_db) as conn:
        run_id = conn.execute("SELECT run_id FROM run_events WHERE run_id IS NOT NULL LIMIT 1").fetchone()[0]
    svc = _service(fleet, tmp_path / "l.db")
    app = explore_app(svc)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
        hits = await _hits(app, command_id)
        assert [h.help for h in hits] == ["search: commands"]
        hits[0].command()  # its lease is not in this (synthetic) picture: Explore shows the row
        view = app.query_one(ExploreView)
        await wait_until(pilot, lambda: view.result is not None and not view.running)
        assert app.query_one("#main-tabs").active == "explore"
        assert [r["command_id"] for r in view.result.rows] == [command_id]
        run_hits = await _hits(app, run_id)
        assert "search: runs" in {h.help for h in run_hits}
        thread_hits = {h.help for h in await _hits(app, run_thread)}
        assert {"search: sessions", "search: commands"} <= thread_hits
    assert svc.history() == [] or all("| limit" not in h["query"] for h in svc.history())


async def test_enter_on_a_result_row_opens_the_lease(fleet, tmp_path: Path) -> None:
    from opcockpit.tui.screens.thread import ThreadDetailScreen

    app = explore_app(_service(fleet, tmp_path / "l.db"))
    async with app.run_test(size=SIZE) as pilot:
        view = await _open(pilot)
        await _run(pilot, view, "leases convergence:diverged | sort lease_id")
        table = view.query_one("#explore-table", KeyedTable)
        first = view.result.rows[0]["lease_id"]
        assert table.cursor_key == first
        table.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ThreadDetailScreen))
        assert app.screen.row.lease_id == first


async def test_opening_the_tab_puts_typed_keys_in_the_query_box(fleet, tmp_path: Path) -> None:
    """`6` then typing: the keys reach the query box, not the app (where `q` quits, `r` resumes)."""
    app = explore_app(_service(fleet, tmp_path / "ledger.db"))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
        await pilot.press("6")
        await wait_until(pilot, lambda: app.query_one("#main-tabs").active == "explore")
        await pilot.press(*'runs "quorum"')
        inp = app.query_one(ExploreView).query_one("#explore-input", Input)
        assert inp.value == 'runs "quorum"' and app.focused is inp
        assert app.is_running  # the `q` typed did not quit


async def test_a_key_typed_right_after_enter_is_not_in_the_submitted_query(fleet, tmp_path: Path) -> None:
    """Enter and the next key reach the app together (one read of the terminal, or two while the
    loop was busy): the query run is the one on screen at Enter, and the key stays in the box.
    Textual's Enter is a binding, run only once the key bubbled up to the app: the next key was
    typed into the box first and the query ran with it (bench_explore_input's `count§`)."""
    from textual import events

    async with explore_app(_service(fleet, tmp_path / "l.db")).run_test(size=SIZE) as pilot:
        view = await _open(pilot)
        inp = view.query_one("#explore-input", Input)
        inp.value = query = "commands | sort command_id"
        inp.cursor_position = len(query)
        await pilot.pause()
        driver = pilot.app._driver
        assert driver is not None
        for key, char in (("enter", "\r"), ("x", "x"), ("y", "y")):  # queued back to back, as the driver does
            driver.send_message(events.Key(key, char))
        await wait_until(pilot, lambda: inp.value == query + "xy")
        await wait_until(
            pilot, lambda: not view.running and (view.result is not None or view.error is not None)
        )
        assert view.error is None and view.ran_text == query and view.history[-1] == query
        assert inp.value == query + "xy"  # the keys typed after Enter are kept for the next query


async def test_the_query_box_takes_editing_keys_in_typing_order(fleet, tmp_path: Path) -> None:
    """ctrl+u, backspace and the arrows are Input bindings too: queued with the keys typed after
    them, they edit the box in typing order (the bench's ctrl+u lost the text typed after it)."""
    from textual import events

    async with explore_app(_service(fleet, tmp_path / "l.db")).run_test(size=SIZE) as pilot:
        view = await _open(pilot)
        inp = view.query_one("#explore-input", Input)
        inp.value = "old query"
        inp.cursor_position = len(inp.value)
        await pilot.pause()
        driver = pilot.app._driver
        assert driver is not None
        typed = [("ctrl+u", None), *((c, c) for c in "runz"), ("backspace", "\x7f"), ("s", "s"),
                 ("home", None), ("x", "x")]  # fmt: skip
        for key, char in typed:  # queued back to back, as the driver hands over one terminal read
            driver.send_message(events.Key(key, char))
        await wait_until(pilot, lambda: "x" in inp.value)
        await pilot.pause()
        assert inp.value == "xruns" and inp.cursor_position == 1


def test_table_rows_keys_values_and_widths() -> None:
    """What the query worker prepares off the event loop: rows keyed by the dataset's key (a
    repeated or missing key by position), the values as cells with the column's terminal-safe
    texts, widths of the widest text capped (known without making every text)."""
    from opcockpit.domain.query import Result
    from opcockpit.tui.tabs.explore import MAX_WIDTH, table_rows

    cols = ("command_id", "command", "exit_code", "created")
    when = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)
    rows = [
        {"command_id": "c-1", "command": "npm test", "exit_code": 1, "created": when},
        {"command_id": "c-1", "command": "x" * 80, "exit_code": None, "created": None},
        {"command_id": None, "command": "ls\x1b]0;pwned\x07", "exit_code": 0.5, "created": None},
    ]
    shown = table_rows(Result("commands", cols, rows, 3, 3, False, 10))
    assert list(shown.rows) == ["c-1", "#1", "#2"] and shown.rows["#1"] is rows[1]
    assert shown.cells["#2"] == tuple(rows[2][c] for c in cols)
    texts = {
        k: tuple(c.format(v) for c, v in zip(shown.columns, cells, strict=True))
        for k, cells in shown.cells.items()
    }
    assert texts["c-1"] == ("c-1", "npm test", "1", "12-06 11:00:00") and texts["#1"][2:] == ("", "")
    assert texts["#2"][2] == "0.5" and "\x1b" not in texts["#2"][1]
    assert [c.key for c in shown.columns] == list(cols)
    widths = [max(len(c), 4, *(len(t[i]) for t in texts.values())) for i, c in enumerate(cols)]
    assert [c.width for c in shown.columns] == [min(MAX_WIDTH, w) for w in widths] == [10, MAX_WIDTH, 9, 14]
    empty = table_rows(Result("commands", cols, [], 0, 0, False, 10))
    assert empty.cells == {} and [c.width for c in empty.columns] == [10, 7, 9, 7]


async def test_a_query_run_again_keeps_its_rows_and_new_columns_replace_them(fleet, tmp_path: Path) -> None:
    async with explore_app(_service(fleet, tmp_path / "l.db")).run_test(size=SIZE) as pilot:
        view = await _open(pilot)
        table = view.query_one("#explore-table", KeyedTable)
        await _run(pilot, view, "commands | sort command_id")
        await pilot.pause()
        keys = table.view_keys()
        painted = table.cached_strip(keys[0])
        assert painted is not None
        first = view.result
        await _run(pilot, view, "commands | sort command_id")
        await pilot.pause()
        assert view.result is not first and table.view_keys() == keys
        assert table.cached_strip(keys[0]) is painted  # the same rows and columns: nothing rebuilt
        await _run(pilot, view, "run_events | count by event_type")
        assert [c.key for c in table.columns] == ["event_type", "count"]
        assert table.row_count == len(view.result.rows) and not set(keys) & set(table.view_keys())
        top = view.result.rows[0]
        assert table.get_texts("#0") == (top["event_type"], str(top["count"]))
        table.sort_by("count", reverse=True)  # the cells are the values: counts sort as numbers
        counts = [int(table.get_row(k)[1]) for k in table.view_keys()]
        assert counts == sorted(counts, reverse=True) and len({len(str(n)) for n in counts}) > 1
