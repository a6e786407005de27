"""A quiet refresh (issue 10, the idle tick): a picture in which no row changed applies no row to
either table, does not re-check the keys (refresh_bindings: a footer pass over every binding),
runs as a plain task (no Textual worker) and repaints neither table whole; a refresh that
changes a row does all of that again."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opcockpit.domain.models import ProviderStatus
from opcockpit.tui.app import CockpitApp
from opcockpit.wiring import build_collector
from tests.cli_support import build_leon_db
from tests.test_snapshot_collector import make_config
from tests.tui.conftest import SequenceSource, record_calls, wait_until
from tests.tui.factories import NOW, make_ground_truth, mutate
from tests.tui.screen_text import screen_text

LEASES = [(f"lease-{i:04d}", "local", f"i-{i}", "running", "running") for i in range(6)]


async def test_a_refresh_that_changes_no_row_applies_nothing_and_leaves_the_keys_alone() -> None:
    first = make_ground_truth(60)
    quiet = replace(first, generated_at=NOW + timedelta(seconds=2))  # the same rows, later
    changed = mutate(quiet, fraction=0.5)
    source = SequenceSource([first, quiet, quiet, changed])
    app = CockpitApp(source, auto_refresh=False, refresh_s=2.0)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: app.refreshes == 1 and not app.inflight)
        await pilot.pause()
        counts = {"bindings": 0, "whole": 0, "applied": 0}
        real_bindings = app.refresh_bindings

        def counting_bindings() -> None:
            counts["bindings"] += 1
            real_bindings()

        app.refresh_bindings = counting_bindings  # type: ignore[method-assign]
        tables = (app.gt_table, app.orphans_table)
        for table in tables:
            real_refresh, real_apply = table.refresh, table.model.apply

            def counting_refresh(*regions: Any, _real: Any = real_refresh, **kw: Any) -> Any:
                counts["whole"] += not regions
                return _real(*regions, **kw)

            def counting_apply(diff: Any, _real: Any = real_apply) -> Any:
                counts["applied"] += 1
                return _real(diff)

            table.refresh = counting_refresh  # type: ignore[method-assign]
            table.model.apply = counting_apply  # type: ignore[method-assign]
        before = screen_text(app)
        for n in (2, 3):  # two quiet refreshes
            app.start_refresh(manual=True)
            assert not list(app.workers)  # a plain task: no Worker and its messages per tick
            await wait_until(pilot, lambda n=n: app.refreshes == n and not app.inflight)
            await pilot.pause()
        assert counts == {"bindings": 0, "whole": 0, "applied": 0}
        assert app.ground_truth is quiet and screen_text(app).splitlines()[2:] == before.splitlines()[2:]
        app.start_refresh(manual=True)  # rows changed: applied, and the keys checked again
        await wait_until(pilot, lambda: app.refreshes == 4 and not app.inflight)
        await pilot.pause()
        assert counts["applied"] >= 1 and counts["bindings"] >= 1


async def test_a_tick_with_nothing_due_carries_the_picture_and_runs_no_refresh(tmp_path: Path) -> None:
    """The real paced collector on a sandbox.db nothing writes: a tick with nothing due carries
    the picture to the tick's time (no refresh, no statement at sandbox.db), and an alert round
    falling due is scheduled on it; a commit makes the tick refresh again."""
    db = build_leon_db(tmp_path / "sandbox.db", LEASES)
    collector = build_collector(make_config(db, None))
    collector.paced = True
    wall = [datetime.now(UTC)]
    mono = [0.0]
    app = CockpitApp(collector, refresh_s=3600.0, clock=lambda: wall[0])  # its timer never fires here
    app.alert_clock = lambda: mono[0]
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: app.refreshes == 1 and not app.inflight)
        statements: list[str] = []
        await collector._tracker.set_trace(statements.append)
        first = app.ground_truth
        assert first is not None
        wall[0] += timedelta(seconds=2)
        app._tick()
        assert app.quiet_ticks == 1 and not app.inflight and app.refreshes == 1
        assert statements == []  # no query, no thread hop: stat() said nothing was committed
        gt = app.ground_truth
        assert gt is not None and gt.generated_at == wall[0] and gt.rows is first.rows
        assert app.last_refresh == wall[0] and app.gt_table.model.now == wall[0]

        with sqlite3.connect(db) as conn:  # a LEON-way write: the next tick refreshes
            conn.execute("UPDATE sandbox_leases SET desired_state = 'paused' WHERE lease_id = 'lease-0001'")
        wall[0] += timedelta(seconds=2)
        app._tick()
        await wait_until(pilot, lambda: app.refreshes == 2 and not app.inflight)
        assert app.quiet_ticks == 1
        assert {r.lease_id: r.desired_state for r in app.ground_truth.rows}["lease-0001"] == "paused"

        wall[0] += timedelta(seconds=2)
        app._tick()
        assert app.quiet_ticks == 2 and app.refreshes == 2
        due = app._alerts_due
        mono[0] = due + 1.0  # a round falls due on a quiet tick: it waits for a busier one ...
        app._tick()
        assert app.quiet_ticks == 3 and app._alerts_due == due
        with sqlite3.connect(db) as conn:  # ... which this is: the round runs with its refresh
            conn.execute("UPDATE sandbox_leases SET desired_state = 'running' WHERE lease_id = 'lease-0001'")
        app._tick()
        await wait_until(pilot, lambda: app.refreshes == 3 and not app.inflight)
        assert app._alerts_due > due
        due = app._alerts_due
        mono[0] = due + 1.0  # due again, and every tick stays quiet: at most two ticks late
        for _ in range(2):
            app._tick()
            assert app._alerts_due == due
        mono[0] = due + 2 * app.refresh_s
        app._tick()
        assert app.quiet_ticks == 6 and app.refreshes == 3 and app._alerts_due > due


async def test_one_timer_runs_the_tick_on_every_nth_beat() -> None:
    """Issue 10, idle tick: the refresh tick rides on the heartbeat (a whole number of beats of at
    most a second per refresh interval), so a quiet second wakes the loop once, not twice, and
    for a callback, not a timer task."""
    for refresh_s, per_tick in ((2.0, 2), (2.5, 3), (0.5, 1), (5.0, 5)):
        app = CockpitApp(SequenceSource([make_ground_truth(5)]), refresh_s=refresh_s)
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_until(pilot, lambda app=app: app.refreshes == 1 and not app.inflight)
            assert not [t for t in app._timers if t._repeat is None]  # no Textual interval timer
            assert app._beat.interval == refresh_s / per_tick  # the one beat (tui/live.Beat)
            ticks: list[int] = []
            app._tick = lambda ticks=ticks: ticks.append(1)  # type: ignore[method-assign]
            app._beats = 0
            for _ in range(2 * per_tick):
                app._heartbeat()
            assert len(ticks) == 2
            app.auto_poll = False  # tests that step refreshes themselves: no tick from the beat
            for _ in range(per_tick):
                app._heartbeat()
            assert len(ticks) == 2


async def test_a_quiet_tick_moves_the_header_only_where_the_clock_enters_it(tmp_path: Path) -> None:
    """A carried picture has the same rows, orphans and providers' states: the header is built
    again (by the heartbeat that runs the tick, after it) only when what follows the clock moved,
    here its "refreshed" age after a paint that said an older one (issue 10, idle tick)."""
    db = build_leon_db(tmp_path / "sandbox.db", LEASES)
    collector = build_collector(make_config(db, None))
    collector.paced = True
    wall = [datetime.now(UTC)]
    app = CockpitApp(collector, refresh_s=3600.0, clock=lambda: wall[0])  # its timers never fire here
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: app.refreshes == 1 and not app.inflight)
        shown: list[datetime] = []
        record_calls(app._header_w, "show", lambda state: shown.append(state.now))
        app._show_header()  # the refresh's own paint: "refreshed 0s ago"
        shown.clear()
        wall[0] += timedelta(seconds=2)
        app._tick()
        app._heartbeat()
        assert app.quiet_ticks == 1 and shown == []  # nothing the clock moves changed
        wall[0] += timedelta(seconds=3)
        app._show_header()  # e.g. a stall's paint: "refreshed 3s ago"
        await pilot.pause()
        assert "refreshed 3s ago" in screen_text(app)
        wall[0] += timedelta(seconds=1)
        app._tick()
        assert app.quiet_ticks == 2 and len(shown) == 1  # not in the tick ...
        app._heartbeat()
        assert shown[1:] == [wall[0]]  # ... but by its heartbeat, once
        app._heartbeat()
        assert len(shown) == 2
        await pilot.pause()
        assert "refreshed 0s ago" in screen_text(app)


class _SettledSource(SequenceSource):
    def settled(self) -> bool:
        return True


async def test_a_failed_providers_age_moves_the_header_on_a_quiet_tick() -> None:
    first = make_ground_truth(20)
    failed = replace(
        first.providers[0],
        status=ProviderStatus.ERROR,
        error="HTTP 503",
        listed_at=NOW - timedelta(seconds=10),
    )
    first = replace(
        first, providers=(failed, *[p for p in first.providers[1:] if p.status is not ProviderStatus.STALE])
    )
    wall = [NOW]
    app = CockpitApp(_SettledSource([first]), refresh_s=3600.0, clock=lambda: wall[0], auto_refresh=False)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_until(pilot, lambda: app.refreshes == 1 and not app.inflight)
        app.auto_poll = True  # ticks carry (a test source: no timer steps it)
        wall[0] += timedelta(seconds=2)
        app._tick()
        app._heartbeat()
        await pilot.pause()
        assert app.quiet_ticks == 1 and "ERROR 12s" in screen_text(app).replace("✗", "")
