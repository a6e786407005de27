"""Issue 12: an ack or mute made by a team mate (another cockpit, `opcockpit ack`, cron) on the
shared ledger shows in a running cockpit within a feed poll, without waiting for the fleet to
change (the ledger's change feed: SQLite data_version, PostgreSQL LISTEN/NOTIFY)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.domain.alerts import AlertsConfig
from tests.fixtures.leon_db import RUN_T3, WorkedExample, write_worked_example
from tests.fixtures.postgres import pg_server, pg_url  # noqa: F401
from tests.tui.conftest import wait_until
from tests.tui.test_alerts_tab import SIZE, evaluated, keys_of, make_app, view


@pytest.fixture(params=["sqlite", "postgres"])
def shared_ledger(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    target = str(tmp_path / "ledger.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    monkeypatch.setenv("OPCOCKPIT_LEDGER", target)
    monkeypatch.setenv("USER", "tester")
    return target


@pytest.fixture
def we(tmp_path: Path) -> WorkedExample:
    return write_worked_example(tmp_path / "leon")


def file_ledger_app(tmp_path: Path, we: WorkedExample, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any]:
    """The cockpit on a ledger file of its own (another connection plays the team mate)."""
    ledger = tmp_path / "ledger.db"
    monkeypatch.setenv("OPCOCKPIT_LEDGER", str(ledger))
    return ledger, make_app(we, AlertsConfig())


async def test_a_team_mates_ack_and_mute_show_without_a_refresh(
    shared_ledger: str, we: WorkedExample
) -> None:
    app = make_app(we, AlertsConfig())  # auto_refresh off: only the change feed can show it
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        await pilot.press("4")
        alert_id = keys_of(app)[f"stuck_run:{RUN_T3}"]
        table = view(app).active_table
        assert not table.get_texts(alert_id)[5].startswith("✓ack")
        rounds = view(app).rounds
        mate = AlertStore.open(shared_ledger)  # another cockpit's connection
        try:
            mate.ack(alert_id, "alice@bastion-2", "looking", now=we.now)
            await wait_until(pilot, lambda: table.get_texts(alert_id)[5].startswith("✓ack"))
            assert table.get_texts(alert_id)[5] == "✓ack alice"
            mate.mute(alert_id, until_resolved=True, who="alice@bastion-2")
            await wait_until(pilot, lambda: "⟂res" in table.get_texts(alert_id)[5])
        finally:
            mate.close()
        assert view(app).rounds == rounds  # no evaluation ran: the feed brought it
        assert app.alerting is not None
        assert app.alerting.counts(we.now)["warning"] == 0  # type: ignore[index]
        # this cockpit's own ack is not echoed back as someone else's change
        assert not app.alerting.poll_changes()


async def test_other_ledger_writes_do_not_reread_the_alerts(
    tmp_path: Path, we: WorkedExample, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event ledger shares the file and moves its data_version every refresh: only a change
    of the firing alerts (their fingerprint) makes the cockpit re-read them."""
    import sqlite3

    ledger, app = file_ledger_app(tmp_path, we, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        al = app.alerting
        assert al is not None
        al.poll_changes()  # opens the feed
        other = sqlite3.connect(ledger)
        try:
            other.execute("CREATE TABLE IF NOT EXISTS unrelated (x)")
            other.execute("INSERT INTO unrelated VALUES (1)")
            other.commit()
            assert not al.poll_changes()  # the file moved, the alerts did not
            alert_id = keys_of(app)[f"stuck_run:{RUN_T3}"]
            acked = "UPDATE alerts SET acked_by = 'x', acked_at = '2026-01-01T00:00:00+00:00' WHERE id = ?"
            other.execute(acked, (int(alert_id),))
            other.commit()
            assert al.poll_changes()
        finally:
            other.close()


async def test_an_ack_made_before_the_feed_opens_still_shows(shared_ledger: str, we: WorkedExample) -> None:
    """The feed opens at the first poll, after the alerts on screen were read: an ack made in
    between (CI stop 18 saw it on PostgreSQL) must not be taken as the baseline and lost."""
    app = make_app(we, AlertsConfig())
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        al = app.alerting
        assert al is not None
        alert_id = keys_of(app)[f"stuck_run:{RUN_T3}"]
        mate = AlertStore.open(shared_ledger)
        try:
            mate.ack(alert_id, "alice@bastion-2", "looking", now=we.now)
        finally:
            mate.close()
        await pilot.press("4")
        table = view(app).active_table
        await wait_until(pilot, lambda: table.get_texts(alert_id)[5] == "✓ack alice")


async def test_the_feed_is_asked_on_the_loop_and_only_a_move_goes_to_a_thread(
    tmp_path: Path, we: WorkedExample, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10, idle tick: on SQLite the feed answers at once (data_version), so a quiet second
    needs no thread; a team mate's ack moves it, and the thread's poll then reads the alerts'
    mark without asking the feed again (the move was consumed on the loop)."""
    import sqlite3

    ledger, app = file_ledger_app(tmp_path, we, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        al = app.alerting
        assert al is not None
        app._alerts_w._feed_polling = True  # the heartbeat's own poll stays off: this test asks
        al.poll_changes()  # opens the feed (unless the heartbeat already did)
        al.feed_moved()  # what moved so far (this cockpit's event appends share the file)
        assert al.feed_moved() is False  # nothing committed elsewhere since
        other = sqlite3.connect(ledger)
        try:
            alert_id = keys_of(app)[f"stuck_run:{RUN_T3}"]
            acked = "UPDATE alerts SET acked_by = 'x', acked_at = '2026-01-01T00:00:00+00:00' WHERE id = ?"
            other.execute(acked, (int(alert_id),))
            other.commit()
            assert al.feed_moved() is True
            assert al.feed_moved() is False  # consumed
            assert al.poll_changes(moved=True)  # the mark moved: re-read
        finally:
            other.close()
