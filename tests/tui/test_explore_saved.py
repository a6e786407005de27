"""Saved queries in the Explore tab (tabs/explore_saved.py) on a generated LEON fleet with the real
ExploreService and a real ledger file: ctrl+s saves with a hotkey + palette pin + alert rule
(all read back from the ledger), `g<digit>` runs the pinned query (the digit does not switch
tabs), the palette lists and runs it, ctrl+o lists and deletes; a bad slot is one line and
nothing is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Input

from opcockpit.adapters.ledger.rule_overrides import Pin, RuleOverrideStore
from opcockpit.tui.commands import JumpProvider
from opcockpit.tui.tabs.explore_saved import SavedListScreen, SaveQueryScreen
from tests.tui.conftest import wait_until
from tests.tui.test_explore_tab import SIZE, _open, _run, _service, explore_app, fleet  # noqa: F401


def _app(fleet: Any, ledger: Path) -> Any:  # noqa: F811
    app = explore_app(_service(fleet, ledger))
    app.rule_store = lambda: RuleOverrideStore.open(ledger)  # type: ignore[attr-defined]
    return app


async def _save(pilot: Any, app: Any, view: Any, text: str, **form: str) -> None:
    inp = view.query_one("#explore-input", Input)
    inp.value = text
    inp.focus()
    await pilot.press("ctrl+s")
    await wait_until(pilot, lambda: isinstance(app.screen, SaveQueryScreen))
    for key, value in form.items():
        app.screen.query_one(f"#save-{key}", Input).value = value
    app.screen.query_one("#save-name", Input).focus()
    await pilot.press("enter")
    await wait_until(pilot, lambda: not isinstance(app.screen, SaveQueryScreen))


async def test_save_pin_run_by_hotkey_and_palette(fleet, tmp_path: Path) -> None:  # noqa: F811
    ledger = tmp_path / "l.db"
    app = _app(fleet, ledger)
    async with app.run_test(size=SIZE) as pilot:
        view = await _open(pilot)
        text = "commands exit_code!=0 | sort command_id"
        await _save(pilot, app, view, text, name="failed", description="non-zero exits", slot="3",
                    palette="y", alert_min_rows="2", alert_for="10m")  # fmt: skip
        await wait_until(pilot, lambda: view.pins == {3: "failed"})
        assert view.palette_pins == [("failed", text)]
        with RuleOverrideStore.open(ledger) as st:
            assert st.pins() == [Pin("failed", 3, True)]
            assert st.query_rules() == {"failed": {"saved": "failed", "min_rows": 2, "for": 600.0}}
        assert view.service.saved("failed").description == "non-zero exits"
        # g3 from the results table runs it; the 3 does not switch to tab 3
        view.query_one("#explore-input", Input).value = ""
        view.query_one("#explore-table").focus()
        await pilot.press("g", "3")
        await wait_until(pilot, lambda: view.result is not None and not view.running)
        assert app.query_one("#main-tabs").active == "explore"
        assert view.query_one("#explore-input", Input).value == text and view.result.rows
        assert all(r["exit_code"] != 0 for r in view.result.rows)
        # an unpinned slot says so
        await pilot.press("g", "7")
        await pilot.pause()
        assert app.query_one("#main-tabs").active == "explore"
        # the palette lists it and running it opens Explore on it
        await _run(pilot, view, "runs | limit 1")
        provider = JumpProvider(app.screen)
        hits = [h for h in provider._static() if h[0] == "Run saved query failed"]
        assert len(hits) == 1 and hits[0][2] == text[:60]
        app.show_tab("ground-truth")
        hits[0][1]()
        inp = view.query_one("#explore-input", Input)
        await wait_until(pilot, lambda: inp.value == text and not view.running)
        assert app.query_one("#main-tabs").active == "explore"


async def test_bad_slot_is_refused_and_the_list_deletes(fleet, tmp_path: Path) -> None:  # noqa: F811
    ledger = tmp_path / "l.db"
    app = _app(fleet, ledger)
    async with app.run_test(size=SIZE) as pilot:
        view = await _open(pilot)
        await _save(pilot, app, view, "runs status:error", name="errs", slot="12")
        await pilot.pause(0.2)
        assert view.service.saved("errs") is None  # nothing stored
        await _save(pilot, app, view, "runs status:error", name="errs", slot="1")
        await wait_until(pilot, lambda: view.pins == {1: "errs"})
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, SavedListScreen))
        assert [n for n, _ in app.screen.rows] == ["errs"] and "[g1]" in app.screen.rows[0][1]
        app.screen.query_one("#saved-list").focus()
        await pilot.press("d")
        await wait_until(pilot, lambda: view.pins == {})
        assert view.service.saved("errs") is None
        with RuleOverrideStore.open(ledger) as st:
            assert st.pins() == []
