"""CockpitApp pilot tests: navigation, filter, sort, cursor across refreshes, refresh loop, detail."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import replace

from opcockpit.domain.models import Convergence
from opcockpit.tui.app import MIN_REFRESH_S, CockpitApp
from opcockpit.tui.data import DbDetails
from opcockpit.tui.screens.help import HelpScreen
from opcockpit.tui.screens.thread import ThreadDetailScreen
from opcockpit.wiring import build_cockpit, leon_access
from tests.tui.conftest import SequenceSource, wait_until, worked_example_app
from tests.tui.factories import NOW, make_ground_truth, mutate
from tests.tui.screen_text import screen_text


def make_app(snapshots: list, **kwargs: object) -> tuple[CockpitApp, SequenceSource]:
    src = SequenceSource(snapshots)
    app = CockpitApp(src, clock=lambda: NOW, auto_refresh=False, **kwargs)  # type: ignore[arg-type]
    return app, src


async def loaded(pilot: object, app: CockpitApp) -> None:
    await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
    await pilot.pause()  # type: ignore[attr-defined]


async def test_tabs_help_and_alerts_placeholder() -> None:
    app, _ = make_app([make_ground_truth(50)])
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        assert app.active_tab == "ground-truth"
        assert app.focused is app.gt_table
        await pilot.press("2")
        assert app.active_tab == "orphans" and app.focused is app.orphans_table
        assert app.orphans_table.row_count == 4
        await pilot.press("4")
        text = screen_text(app)
        assert "Alerts are off in this cockpit" in text  # no alert engine wired: says so, no fake alerts
        assert app.check_action("filter", ()) is None  # greyed out: nothing to filter here
        await pilot.press("1", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "field:value" in screen_text(app)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        assert "Ground truth 50" in screen_text(app)


async def test_filter_keys_live_enter_keeps_escape_clears() -> None:
    app, _ = make_app([make_ground_truth(200)])
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        table = app.gt_table
        await pilot.press("slash", *"state:diverged")
        assert table.filter_expr == "state:diverged"
        assert 0 < table.view_count < table.row_count
        assert all(table.get_row(k)[0] == Convergence.DIVERGED for k in table.view_keys())
        await pilot.press("enter")
        await pilot.pause()
        assert app.focused is table
        assert "filter: state:diverged" in screen_text(app)
        await pilot.press("slash", "ctrl+u", *"!provider:local")  # inverse + field
        await pilot.press("enter")
        assert table.view_count == 160 and "local" not in {table.get_row(k)[2] for k in table.view_keys()}
        await pilot.press("escape")
        assert table.filter_expr == "" and table.view_count == 200


async def test_sort_keys_and_cursor_stays_on_lease_when_refresh_moves_it() -> None:
    gt = make_ground_truth(200)
    target = next(r for r in gt.rows if r.convergence == Convergence.DIVERGED and r.lease_id > "lease-00050")
    # Next refresh: the target converges, so under a sort by State (trouble first) it moves from
    # the diverged block at the top down into the converged block.
    moved = replace(
        gt,
        rows=tuple(
            replace(
                r, convergence=Convergence.CONVERGED, reason="running as desired", provider_state="running"
            )
            if r.lease_id == target.lease_id
            else r
            for r in gt.rows
        ),
    )
    app, src = make_app([gt, moved])
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        table = app.gt_table
        assert table.sort_column == "convergence"
        await pilot.press("greater_than_sign")  # the next column on screen (Lease is pinned first)
        assert table.sort_column == "provider"
        await pilot.press("less_than_sign")
        assert table.sort_column == "convergence"
        await pilot.press("less_than_sign")  # the pinned key column is on screen: it is a step too
        assert table.sort_column == "lease_id"
        await pilot.press("greater_than_sign")
        assert table.sort_column == "convergence"
        assert table.move_cursor_to_key(target.lease_id)
        index_before = table.cursor_index
        line_before = index_before - table.scroll_offset.y
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: src.calls == 2 and not app.inflight)
        await pilot.pause()
        assert table.cursor_key == target.lease_id
        assert table.cursor_index != index_before  # the row moved ...
        assert table.cursor_index - table.scroll_offset.y == line_before  # ... and stayed under the eye
        await pilot.press("c")
        assert app.clipboard == target.lease_id


async def test_refresh_updates_by_key_and_reuses_unchanged_strips() -> None:
    gt = make_ground_truth(500)
    nxt = mutate(gt, 0.02)
    app, src = make_app([gt, nxt])
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        table = app.gt_table
        visible = table.view_keys()[: table.scrollable_content_region.height - 1]
        before = {k: table.cached_strip(k) for k in visible}
        versions = {k: table.row_version(k) for k in table.view_keys()}
        cursor = table.cursor_key
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: src.calls == 2 and not app.inflight)
        await pilot.pause()
        changed = {r.lease_id for r, o in zip(nxt.rows, gt.rows, strict=True) if r != o}
        assert table.row_count == 500 and table.cursor_key == cursor
        for k, v in versions.items():
            assert table.row_version(k) == (v + 1 if k in changed else v)
        still_visible = set(table.view_keys()[: len(visible)])
        reused = [k for k in visible if k not in changed and k in still_visible and k != cursor]
        assert reused
        assert all(table.cached_strip(k) is before[k] for k in reused)


async def test_slow_refresh_drops_ticks_freeze_and_failure_keep_the_picture() -> None:
    gt = make_ground_truth(30)
    app, src = make_app([gt, mutate(gt, 0.1)])
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        assert app.refresh_s == 2.0
        src.gate = asyncio.Event()
        assert app.start_refresh(manual=False)
        await wait_until(pilot, lambda: src.calls == 2)  # the refresh is now blocked in the source
        assert not app.start_refresh(manual=False)  # in flight: dropped, never overlapped
        assert not app.start_refresh(manual=False)
        await pilot.pause(0.05)
        assert app.dropped_ticks == 2 and src.calls == 2
        src.gate.set()
        await wait_until(pilot, lambda: not app.inflight)
        src.gate = None
        await pilot.press("z")
        assert app.frozen and "FROZEN" in screen_text(app)
        app._tick()
        assert src.calls == 2  # frozen: ticks do nothing
        await pilot.press("z")
        src.fail_next = RuntimeError("sandbox.db is locked")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: src.calls == 3 and not app.inflight)
        await pilot.pause()
        assert app.gt_table.row_count == 30  # a failed refresh never empties the fleet
        assert "sandbox.db is locked" in screen_text(app)
    assert src.closed


async def test_refresh_floor_and_sighup_exits_cleanly() -> None:
    app, src = make_app([make_ground_truth(5)], refresh_s=0.01)
    assert app.refresh_s == MIN_REFRESH_S
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        os.kill(os.getpid(), signal.SIGHUP)
        await pilot.pause(0.05)
    assert app.return_code == 0
    assert src.closed


async def test_usable_at_80x24() -> None:
    app, _ = make_app([make_ground_truth(100)], read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        text = screen_text(app).splitlines()
        assert " RO " in text[0] and "orphans 4" in text[0]  # counts still fit on one line
        assert "daytona" in text[1]  # provider health too
        assert app.gt_table.scrollable_content_region.height >= 15


# ----------------------------------------------------------------------- real pipeline


async def test_thread_detail_on_real_sandbox_and_events_db(worked_example) -> None:
    we = worked_example
    app = worked_example_app(we)
    async with app.run_test(size=(120, 50)) as pilot:
        await loaded(pilot, app)
        assert app.gt_table.row_count == len(we.leases)
        assert app.gt_table.move_cursor_to_key(we.leases[0])
        await pilot.press("enter")
        assert isinstance(app.screen, ThreadDetailScreen)
        screen = app.screen
        await wait_until(pilot, lambda: screen.detail is not None)
        await pilot.pause()
        d = screen.detail
        assert d.terminals and d.sessions and d.instances and d.lease_events
        text = screen_text(app)
        for t in d.terminals:
            assert t.terminal_id in text
        assert "lease_events" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, ThreadDetailScreen)
        assert app.gt_table.cursor_key == we.leases[0]


async def test_run_timeline_follows_new_events(worked_example) -> None:
    import sqlite3

    from tests.fixtures.leon_db import add_run_event

    we = worked_example
    app = worked_example_app(we)
    async with app.run_test(size=(120, 50)) as pilot:
        await loaded(pilot, app)
        thread_of = {r.lease_id: r.thread_id for r in app.ground_truth.rows}
        lease = next(k for k, t in thread_of.items() if t and t in we.threads)
        app.open_lease(lease)
        screen = app.screen
        assert isinstance(screen, ThreadDetailScreen)
        await wait_until(pilot, lambda: screen.detail is not None)
        if not screen.run_id:  # pick a thread that has runs in the worked example
            await pilot.press("escape")
            lease = next(k for k, t in thread_of.items() if t == we.threads[0])
            app.open_lease(lease)
            screen = app.screen
            await wait_until(pilot, lambda: screen.detail is not None)
        run_id = screen.run_id
        assert run_id is not None
        before = screen.after_seq
        conn = sqlite3.connect(we.events_db)
        add_run_event(conn, screen.row.thread_id, run_id, "text", data={"content": "live!"})
        conn.commit()
        conn.close()
        await pilot.press("f")
        await wait_until(pilot, lambda: screen.after_seq > before)
        assert screen.following
        # `f` says what it did (the timeline can be below the fold at 80x24)
        assert any("following run events live" in n.message for n in app._notifications)
        assert screen.run_events[-1].event_type == "text" and "live!" in screen.run_events[-1].data
        assert "following live" in screen_text(app)


async def test_demo_pipeline_provider_events_and_orphans(demo_env) -> None:
    env = demo_env
    cfg = env.config
    app = CockpitApp(
        build_cockpit(cfg, demo=True).collector,
        details=DbDetails(str(cfg.sources.sandbox_db), str(cfg.sources.events_db), leon=leon_access()),
        auto_refresh=False,
        demo_banner="DEMO",
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        gt = app.ground_truth
        assert app.gt_table.row_count == len(gt.rows) > 0
        assert app.orphans_table.row_count == len(gt.orphans)
        assert "DEMO" in screen_text(app)
        await pilot.press("3")
        view = app.events_view
        await wait_until(pilot, lambda: view.loaded)
        assert view.table.row_count == len(view.events) > 0
        times = [view.events[k].created_at for k in view.table.view_keys()]
        assert times == sorted(times, reverse=True)  # newest first
        matched = next((k for k, e in view.events.items() if e.matched_lease_id), None)
        if matched is not None:
            view.table.move_cursor_to_key(matched)
            await wait_until(pilot, lambda: matched in view.around or matched in view.around_errors)
            assert matched not in view.around_errors
            assert "lease_events of" in screen_text(app)
        # Drift: an instance paused behind the platform's back shows up as diverged, by key.
        ev = env.drift.step("pause_behind_back")
        assert ev is not None
        await pilot.press("1", "ctrl+r")
        await wait_until(pilot, lambda: app.refreshes == 2 and not app.inflight)
        assert app.gt_table.row_count == len(app.ground_truth.rows)


async def test_palette_jumps_to_a_lease_by_id() -> None:
    gt = make_ground_truth(80)
    target = gt.rows[42]
    app, _ = make_app([gt])
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        await pilot.press("ctrl+p")  # the fuzzy palette (`:` is the k9s jump prompt: test_ux_jumps)
        await pilot.press(*target.lease_id)
        await pilot.pause(0.3)  # the palette searches in a worker
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ThreadDetailScreen))
        assert app.screen.row.lease_id == target.lease_id


async def test_no_color_keeps_state_readable(monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app, _ = make_app([make_ground_truth(60)])
    assert app.no_color
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        app.gt_table.set_filter("state:diverged")
        await pilot.press("down")
        await pilot.pause()
        lines = screen_text(app).splitlines()
        rows = [ln for ln in lines if "lease-" in ln]
        assert rows and all("✗ diverged" in ln for ln in rows)  # a glyph and a word, not a colour
        assert sum(ln.startswith(">") for ln in rows) == 1  # the cursor is a glyph too
