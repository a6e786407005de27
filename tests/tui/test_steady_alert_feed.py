"""Issue 10 (steady-state CPU): an alert round reads the firing alerts itself, so the ledger feed's
next poll does not read them all again (~2,700 at 10k leases) for what the round already saw; a
team mate's change made after the round still shows at the next poll."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from textual.widgets import Static, TabbedContent

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.domain.alerts import AlertsConfig
from opcockpit.domain.timeutil import fmt_age
from opcockpit.tui.table.ages import bucket_age
from opcockpit.tui.tabs.alerts import AlertsView
from tests.fixtures.leon_db import RUN_T3, WorkedExample, write_worked_example
from tests.tui.screen_text import screen_text
from tests.tui.test_alerts_tab import SIZE, evaluated, keys_of, make_app
from tests.tui.test_alerts_tab import ledger as ledger  # the fixture: this test's own ledger


@pytest.fixture
def we(tmp_path: Path) -> WorkedExample:
    return write_worked_example(tmp_path / "leon")


async def test_a_round_that_saw_a_change_does_not_make_the_feed_reread(
    ledger: Path, we: WorkedExample
) -> None:
    app = make_app(we, AlertsConfig())
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        al = app.alerting
        assert al is not None and app.ground_truth is not None
        al.poll_changes()  # opens the feed
        alert_id = keys_of(app)[f"stuck_run:{RUN_T3}"]
        mate = AlertStore.open(ledger)
        other = sqlite3.connect(ledger)
        try:
            mate.ack(alert_id, "alice@bastion-2", "looking", now=we.now)
            # A round runs before the next poll: it reads the firing alerts, the ack included.
            rnd = await al.evaluate(app.ground_truth)
            assert rnd.error is None
            assert {a.acked_by for a in al.active if str(a.id) == alert_id} == {"alice@bastion-2"}
            other.execute("CREATE TABLE IF NOT EXISTS unrelated (x)")
            other.execute("INSERT INTO unrelated VALUES (1)")  # the file moves (event appends do)
            other.commit()
            assert not al.poll_changes()  # nothing the round did not already read
            # A change after the round is the team's: it shows at the next poll.
            mate.mute(alert_id, until_resolved=True, who="alice@bastion-2")
            assert al.poll_changes()
            assert {a.mute_until_resolved for a in al.active if str(a.id) == alert_id} == {True}
        finally:
            other.close()
            mate.close()


async def test_an_idle_round_reuses_the_alerts_and_rebuilds_no_row(ledger: Path, we: WorkedExample) -> None:
    """Issue 10 (idle tick): a round in which nothing changed hands the same alerts to the tab:
    nothing is cleaned or rebuilt again, the ledger's alerts are not rewritten, and an open alert
    detail still says it was seen by this round."""
    app = make_app(we, AlertsConfig())
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        al, tab = app.alerting, app.query_one(AlertsView)
        assert al is not None and app.ground_truth is not None and al.active
        before, built = al.active, tab.rebuilds
        probe = sqlite3.connect(ledger)
        try:
            rows = probe.execute("SELECT id, last_seen FROM alerts WHERE state = 'firing'").fetchall()
            gt = app.ground_truth
            rnd = await al.evaluate(gt)  # the same ground truth: nothing changed
            assert rnd.error is None and al.active is before
            tab.show_alerts()
            assert tab.rebuilds == built
            assert probe.execute("SELECT id, last_seen FROM alerts WHERE state = 'firing'").fetchall() == rows
            seen = al.current(before[0])
            assert al.snapshot is not None and seen.last_seen == al.snapshot.now
        finally:
            probe.close()


async def test_time_passing_rebuilds_no_alert_row_and_the_firing_ages_still_move(
    ledger: Path, we: WorkedExample
) -> None:
    """Issue 10 (idle tick): the Firing column holds when each alert fired and is painted at the
    table's now, so minutes passing rebuild no row (2,700 firing alerts at 10k leases were
    regrouped and re-diffed every round because some age moved), yet the screen shows the ages."""
    app = make_app(we, AlertsConfig())
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        al, tab = app.alerting, app.query_one(AlertsView)
        assert al is not None and al.active and not any(a.muted_until for a in al.active)
        await pilot.press("4")  # shown: the summary takes the width (a rebuild, once)
        await pilot.pause()
        tab.show_alerts()
        built = tab.rebuilds
        later = we.now + timedelta(minutes=37)
        app.clock = lambda: later
        checks = 0
        real_bindings = app.refresh_bindings

        def counting_bindings() -> None:
            nonlocal checks
            checks += 1
            real_bindings()

        app.refresh_bindings = counting_bindings  # type: ignore[method-assign]
        tab.show_alerts()
        await pilot.pause()
        assert tab.rebuilds == built and checks == 0  # the same rows: the same keys
        table = tab.active_table
        shown = [a for a in al.active if str(a.id) in table]  # alerts with a row of their own
        assert shown
        for a in shown:
            assert table.get_texts(str(a.id))[4] == fmt_age(bucket_age((later - a.fired_at).total_seconds()))
        ages = {fmt_age(bucket_age((later - a.fired_at).total_seconds())) for a in shown}
        assert any(age in screen_text(app) for age in ages)


async def test_the_overview_is_drawn_when_shown_not_every_round(ledger: Path, we: WorkedExample) -> None:
    """Issue 10 (idle tick): run health (stuck runs' idle times move every round) is drawn into
    the overview when it is the view on screen, the latest then, not behind the alerts table."""
    app = make_app(we, AlertsConfig())
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        al, tab = app.alerting, app.query_one(AlertsView)
        assert al is not None and al.run_health is not None and app.ground_truth is not None
        assert tab.view == "alerts-table" and tab.overview.run_health is None  # not drawn
        tab._apply_round(await al.evaluate(app.ground_truth))
        assert tab.overview.run_health is None
        tab.action_toggle_view("alerts-overview")
        assert tab.overview.run_health is al.run_health  # the latest, drawn on showing
        tab._apply_round(await al.evaluate(app.ground_truth))
        assert tab.overview.run_health is al.run_health  # on screen: every round


async def test_an_idle_round_sets_no_text_that_did_not_change(ledger: Path, we: WorkedExample) -> None:
    """Issue 10 (idle tick): a Static update or a tab label set is a layout pass of the whole
    screen even with the same text; an idle round (same alerts) makes neither."""
    app = make_app(we, AlertsConfig())
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        al, tab = app.alerting, app.query_one(AlertsView)
        assert al is not None and app.ground_truth is not None
        await pilot.pause()
        bar = tab.query_one("#alerts-bar", Static)
        label = app.query_one(TabbedContent).get_tab("alerts")
        bar_text, label_text = bar.content, label.label
        tab._apply_round(await al.evaluate(app.ground_truth))  # the same ground truth
        await pilot.pause()
        assert bar.content is bar_text and label.label is label_text
