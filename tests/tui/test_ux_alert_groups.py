"""Issue 15, alerts at scale: one alert per diverged lease is grouped by rule and provider
(Alertmanager-style) with a count; Enter unfolds a group to its members; A/M/U on a group ack /
mute / unmute every member, each recorded in the ledger as its own ack or mute. And the same alert
reads the same in the CLI and the TUI (the "Firing" column, THE age format).

The real pipeline: the worked-example LEON DBs plus N more e2b leases that want `running` while
the E2B double on loopback says `paused` (diverged), the real alert engine on a tmp ledger.
On main before this change every one of them was its own row (576 rows at 10k leases).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.cli.alerts_cli import FIRING_LABEL, format_alerts
from opcockpit.domain.alerts import AlertsConfig
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.tui.screens.alert_detail import AckPrompt, MutePrompt
from opcockpit.tui.table.model import TableModel
from opcockpit.tui.widgets.alert_rows import FIRING_LABEL as TUI_FIRING_LABEL
from opcockpit.tui.widgets.alert_rows import active_cells, active_columns
from tests.fixtures.leon_db import I2, RUN_T3, WorkedExample, add_instance, add_lease, lt
from tests.tui.conftest import wait_until
from tests.tui.screen_text import screen_text
from tests.tui.test_alerts_tab import E2B_KEY, evaluated, make_app, view
from tests.tui.test_alerts_tab import ledger as ledger
from tests.tui.test_alerts_tab import we as we

N = 24  # extra diverged e2b leases; with the example's L2: a group of 25
GROUP = "group:lease_diverged:e2b"


def _lease(i: int) -> tuple[str, str]:
    return f"lease-9{i:011x}", f"grp{i:017d}"


@pytest.fixture
def e2b(we: WorkedExample) -> Iterator[E2BDouble]:
    conn = sqlite3.connect(we.sandbox_db)
    try:
        for i in range(N):
            lease, inst = _lease(i)
            add_lease(
                conn,
                lease,
                "e2b",
                current_instance_id=inst,
                desired_state="running",
                observed_state="paused",
                version=2,
                instance_created_at=lt("10:05:30"),
                observed_at=lt("10:15:05"),
                created_at=lt("10:02:11"),
                updated_at=lt("10:15:05"),
            )
            add_instance(
                conn, inst, lease, status="paused", created_at=lt("10:05:30"), last_seen_at=lt("10:15:05")
            )
        conn.commit()
    finally:
        conn.close()
    with E2BDouble(api_key=E2B_KEY) as double:
        double.add(I2, state="paused")
        for i in range(N):
            double.add(_lease(i)[1], state="paused")
        yield double


def _stored(ledger: Path) -> dict[str, Any]:
    store = AlertStore.open(ledger)
    try:
        return {a.key: a for a in store.active()}
    finally:
        store.close()


async def test_alerts_of_one_rule_and_provider_are_one_group_row(
    ledger: Path,
    we: WorkedExample,
    e2b: E2BDouble,
) -> None:
    app = make_app(we, AlertsConfig(diverged_for_s=0), e2b=e2b)
    async with app.run_test(size=(100, 30)) as pilot:
        await evaluated(pilot, app)
        assert app.alerting is not None
        members = {str(a.id) for a in app.alerting.active if a.rule == "lease_diverged"}
        assert len(members) == N + 1
        stuck = next(str(a.id) for a in app.alerting.active if a.key == f"stuck_run:{RUN_T3}")
        table = view(app).active_table
        assert set(table.view_keys()) == {GROUP, stuck}  # 26 alerts, 2 rows
        await pilot.press("4")
        await pilot.pause()
        text = screen_text(app)
        assert f"▸{N + 1}" in text and f"{N + 1} alerts at e2b · newest: e2b lease" in text
        assert "Active 26" in text  # the count is of alerts, not rows

        assert table.move_cursor_to_key(GROUP)
        await pilot.press("enter")  # unfold: the members, right under their group row
        await pilot.pause()
        keys = table.view_keys()
        at = keys.index(GROUP)
        assert set(keys[at + 1 : at + 1 + N + 1]) == members
        assert table.cursor_key == GROUP
        assert f"▾{N + 1}" in screen_text(app)
        member = keys[at + 1]
        assert table.get_texts(member)[3].startswith("└ e2b lease")
        assert table.move_cursor_to_key(member)
        await pilot.press("enter")  # a member opens its alert detail, as before
        await pilot.pause()
        assert type(app.screen).__name__ == "AlertDetailScreen"
        await pilot.press("escape")
        assert table.move_cursor_to_key(GROUP)
        await pilot.press("enter")  # fold again
        await pilot.pause()
        assert set(table.view_keys()) == {GROUP, stuck}


async def test_ack_mute_unmute_a_group_acts_on_each_member_in_the_ledger(
    ledger: Path,
    we: WorkedExample,
    e2b: E2BDouble,
) -> None:
    app = make_app(we, AlertsConfig(diverged_for_s=0), e2b=e2b)
    async with app.run_test(size=(100, 30)) as pilot:
        await evaluated(pilot, app)
        await pilot.press("4")
        table = view(app).active_table
        assert table.move_cursor_to_key(GROUP)
        assert app.check_action("ack", ()) is not False

        await pilot.press("A")
        assert isinstance(app.screen, AckPrompt)
        assert f"Ack all {N + 1} lease_diverged alerts at e2b" in screen_text(app)  # names the group
        await pilot.press(*"known outage", "enter")
        await wait_until(pilot, lambda: table.get_texts(GROUP)[5] == f"✓ack {N + 1}/{N + 1}")
        stored = _stored(ledger)
        diverged = [a for k, a in stored.items() if k.startswith("lease_diverged:")]
        assert len(diverged) == N + 1
        assert all(a.acked_by and a.acked_by.startswith("tester") for a in diverged)
        assert all(a.ack_comment == "known outage" for a in diverged)  # each its own ack record
        assert not stored[f"stuck_run:{RUN_T3}"].acked  # not in the group: untouched

        await pilot.press("M")
        assert isinstance(app.screen, MutePrompt)
        await pilot.press("ctrl+a", *"30m", "enter")
        await wait_until(pilot, lambda: table.get_texts(GROUP)[5].startswith(f"⊘ {N + 1}/{N + 1}"))
        assert app.alerting is not None
        assert app.alerting.counts(we.now) == {"critical": 0, "warning": 1, "info": 0}  # stuck_run only
        stored = _stored(ledger)
        until = {a.muted_until for k, a in stored.items() if k.startswith("lease_diverged:")}
        assert len(until) == 1 and None not in until

        await pilot.press("U")
        await wait_until(pilot, lambda: "⊘" not in table.get_texts(GROUP)[5])
        stored = _stored(ledger)
        assert all(a.muted_until is None for k, a in stored.items() if k.startswith("lease_diverged:"))


async def test_firing_reads_the_same_in_the_cli_and_the_tui(
    ledger: Path,
    we: WorkedExample,
) -> None:
    """`SINCE 12m` (CLI, since first seen) vs `Age 45s` (TUI, since fired) was one alert read two
    ways; now both say Firing, measured from when it started firing, in THE age format."""
    app = make_app(we)
    async with app.run_test(size=(100, 30)) as pilot:
        await evaluated(pilot, app)
        assert app.alerting is not None
        alert = next(a for a in app.alerting.active if a.key == f"stuck_run:{RUN_T3}")
    assert FIRING_LABEL == TUI_FIRING_LABEL == "Firing"
    assert [c.label for c in active_columns()][4] == "Firing"
    later = alert.fired_at + timedelta(minutes=12, seconds=30)
    cli = format_alerts([alert], "table", now=later).splitlines()
    header = cli[0].split()
    assert "FIRING" in header and "SINCE" not in header
    row = cli[1].split()
    assert row[header.index("FIRING")] == "12m"
    table = TableModel(active_columns())  # the cell holds when it fired; painted at `later`
    table.set_now(later)
    table.replace({"a": active_cells(alert, alert.fired_at)})
    assert table.get_texts("a")[4] == "12m"


def test_snapshot_alerts_grouped_80x24(
    snap_compare: Any, ledger: Path, we: WorkedExample, e2b: E2BDouble
) -> None:
    app = make_app(we, AlertsConfig(diverged_for_s=0), e2b=e2b)

    async def run_before(pilot: Any) -> None:
        await evaluated(pilot, app)
        await pilot.press("4")
        table = view(app).active_table
        table.move_cursor_to_key(GROUP)
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
