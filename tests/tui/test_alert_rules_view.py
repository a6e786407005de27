"""The Alerts tab's rules view (`R`, widgets/alert_rules.py) on the real pipeline: the worked
example's LEON DBs -> collector -> the real AlertEngine on a tmp ledger, with a query-backed rule
over the same sandbox.db. Every rule listed with thresholds/hold/severity/enabled/last
evaluation; `e`, `s` and the editor store overrides in the ledger (reopened to check) that the
next evaluation uses; a bad value is refused with one line; `x` goes back to the TOML; 80x24 SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Input

from opcockpit.adapters.ledger.rule_overrides import RuleOverrideStore
from opcockpit.domain.alerts import AlertsConfig
from opcockpit.domain.alerts_config import RULE_NAMES
from opcockpit.tui.widgets.alert_rules import RuleEditScreen, RulesPanel
from tests.fixtures.leon_db import WorkedExample
from tests.tui.conftest import wait_until
from tests.tui.screen_text import screen_text
from tests.tui.test_alerts_tab import evaluated, ledger, make_app, view, we  # noqa: F401

SMALL = (80, 24)
CFG = {
    "query": {"cmds": {"query": "commands", "min_rows": 1, "for": 0, "severity": "info"}},
    "orphans_min": 2,
}


async def _rules(pilot: Any, app: Any) -> RulesPanel:
    await evaluated(pilot, app)
    await pilot.press("4")
    await pilot.press("R")
    panel = app.query_one(RulesPanel)
    await wait_until(pilot, lambda: panel.loads >= 1)
    await pilot.pause()
    return panel


def _overrides(ledger_path: Path) -> dict[tuple[str, str], Any]:
    with RuleOverrideStore.open(ledger_path) as st:
        return {(o.rule, o.field): o.value for o in st.overrides()}


async def test_every_rule_is_listed_with_its_last_evaluation(ledger: Path, we: WorkedExample) -> None:  # noqa: F811
    app = make_app(we, AlertsConfig.model_validate(CFG))
    async with app.run_test(size=(120, 30)) as pilot:
        panel = await _rules(pilot, app)
        assert sorted(panel.table.view_keys()) == sorted([*RULE_NAMES, "query:cmds"])
        orphans = panel.rules["orphans_present"]
        assert orphans.thresholds == {"orphans_min": 2} and orphans.hold_s == 300 and orphans.enabled
        q = panel.rules["query:cmds"]
        assert q.kind == "query" and q.severity == "info" and q.source == "commands"
        ev = app.alerting.engine.query_rules.evals["query:cmds"]
        assert ev.error is None and ev.rows and q.last_eval.startswith(f"{ev.rows} rows 0s ago")
        assert panel.rules["leak"].last_eval.startswith("0s ago, ")
        # the query rule fired like any alert
        assert any(a.key == "query:cmds" for a in app.alerting.active)
        assert "orphans_min=2" in screen_text(app) and "query:cmds" in screen_text(app)


async def test_toggle_severity_edit_and_back_to_toml(ledger: Path, we: WorkedExample) -> None:  # noqa: F811
    app = make_app(we, AlertsConfig.model_validate(CFG))
    async with app.run_test(size=(120, 30)) as pilot:
        panel = await _rules(pilot, app)
        table = panel.table
        table.focus()
        assert table.move_cursor_to_key("orphans_present")
        await pilot.press("e")
        await wait_until(pilot, lambda: panel.loads >= 2 and not panel.rules["orphans_present"].enabled)
        assert _overrides(ledger) == {("orphans_present", "enabled"): False}
        assert "orphans_present" in app.alerting.engine.config.disabled_rules  # the next round uses it
        assert panel.rules["orphans_present"].overridden == {"enabled"}
        await pilot.press("s")
        await wait_until(pilot, lambda: panel.rules["orphans_present"].severity == "info")
        # the editor: a bad value is refused (one line), nothing stored; a good one is stored
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RuleEditScreen))
        inp = app.screen.query_one("#edit-orphans_min", Input)
        assert inp.value == "2" and app.screen.query_one("#edit-orphans_for_s", Input).value == "5m"
        inp.value = "0"
        inp.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: panel.last_error is not None)
        assert "orphans_min" in panel.last_error and "\n" not in panel.last_error
        assert ("orphans_present", "orphans_min") not in _overrides(ledger)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RuleEditScreen))
        app.screen.query_one("#edit-orphans_for_s", Input).value = "90s"
        app.screen.query_one("#edit-orphans_for_s", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: panel.rules["orphans_present"].hold_s == 90)
        assert _overrides(ledger)[("orphans_present", "orphans_for_s")] == 90
        assert app.alerting.engine.config.orphans_for_s == 90
        # a query rule's threshold
        assert table.move_cursor_to_key("query:cmds")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RuleEditScreen))
        app.screen.query_one("#edit-min_rows", Input).value = "100000"
        app.screen.query_one("#edit-min_rows", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: panel.rules["query:cmds"].thresholds["min_rows"] == 100000)
        # x: back to the TOML
        assert table.move_cursor_to_key("orphans_present")
        await pilot.press("x")
        await wait_until(pilot, lambda: not panel.rules["orphans_present"].overridden)
        assert panel.rules["orphans_present"].enabled
        assert set(_overrides(ledger)) == {("query:cmds", "min_rows")}


def test_rules_view_snapshot_80x24(snap_compare: Any, ledger: Path, we: WorkedExample) -> None:  # noqa: F811
    app = make_app(we, AlertsConfig.model_validate(CFG))

    async def run_before(pilot: Any) -> None:
        panel = await _rules(pilot, app)
        panel.table.focus()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)


async def test_d_deletes_a_tui_made_rule_not_a_toml_one(ledger: Path, we: WorkedExample) -> None:  # noqa: F811
    with RuleOverrideStore.open(ledger) as st:
        st.save_query_rule("mine", {"query": "commands", "for": 0}, "tester")
        st.set_override("query:mine", "min_rows", 2, "tester")
    app = make_app(we, AlertsConfig.model_validate(CFG))
    async with app.run_test(size=(120, 30)) as pilot:
        panel = await _rules(pilot, app)
        assert {"query:mine", "query:cmds"} <= set(panel.rules)
        panel.table.focus()
        assert panel.table.move_cursor_to_key("query:cmds")
        await pilot.press("d")
        await wait_until(pilot, lambda: panel.last_error is not None)
        assert "defined in the TOML" in panel.last_error and "query:cmds" in panel.rules
        assert panel.table.move_cursor_to_key("query:mine")
        await pilot.press("d")
        await wait_until(pilot, lambda: "query:mine" not in panel.rules)
        assert panel.last_error is None
    with RuleOverrideStore.open(ledger) as st:
        assert st.query_rules() == {} and st.overrides() == []
