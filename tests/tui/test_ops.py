"""Operator actions in the TUI, on the real pipeline: demo fleet in LEON's schema + provider doubles
on loopback + FleetCollector + Operations (LEON-way writes, audit ledger). No mocks of our code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Input

from opcockpit.domain.models import Convergence
from opcockpit.doubles.base import Response, Route
from opcockpit.tui.app import CockpitApp, build_app
from opcockpit.tui.rows import FAILED_GLYPH, GT_INDEX, PENDING_GLYPH, OpMark
from opcockpit.tui.screens.audit import AuditScreen
from opcockpit.tui.screens.confirm import AdoptScreen, ConfirmDestroyScreen
from tests.tui.conftest import wait_until
from tests.tui.screen_text import screen_text

SIZE = (140, 40)


@pytest.fixture
def env() -> Iterator[Any]:
    from opcockpit.demo.runtime import demo_environment

    with demo_environment(seed=7, leases=40, drift=False) as e:
        yield e


def make(env: Any, tmp_path: Path, **kwargs: Any) -> CockpitApp:
    return build_app(
        env.config, ledger_path=tmp_path / "ledger.db", auto_refresh=False, watch_events=False, **kwargs
    )


def mutations(double: Any) -> int:
    """Requests to the double that could change something (everything but GET)."""
    with double.lock:
        return sum(n for route, n in double.requests_by_route.items() if not route.startswith("GET "))


async def loaded(pilot: Any, app: CockpitApp, refreshes: int = 1) -> None:
    await wait_until(pilot, lambda: app.refreshes >= refreshes and not app.inflight, tries=500)
    await pilot.pause()


def pick(app: CockpitApp, provider: str, state: str) -> str:
    assert app.ground_truth is not None
    return next(
        r.lease_id
        for r in app.ground_truth.rows
        if r.provider == provider
        and r.convergence == Convergence.CONVERGED
        and r.provider_state == state
        and r.thread_id
    )


def cell(app: CockpitApp, key: str, column: str) -> Any:
    return app.gt_table.get_row(key)[GT_INDEX[column]]


async def settled(pilot: Any, app: CockpitApp) -> None:
    """Refresh until no operation is pending any more (what the refresh loop would do)."""
    for _ in range(40):
        if not app.overlay.pending_count() and not app.inflight and not app.workers._workers:
            return
        if not app.inflight:  # the action asked the paced collector to list its provider: one refresh
            app.request_refresh()
        await pilot.pause(0.1)
    raise AssertionError("operations did not settle")


async def test_pause_pending_at_once_then_converges_resume_converges(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    e2b = env.doubles["e2b"]
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        lease = pick(app, "e2b", "running")
        iid = app.ground_truth and next(r.instance_id for r in app.ground_truth.rows if r.lease_id == lease)
        assert app.gt_table.move_cursor_to_key(lease)
        await pilot.press("z")  # freeze: the pending state must show without any refresh
        assert app.check_action("pause", ()) is True
        assert app.check_action("resume", ()) is None  # already running: greyed, not hidden
        await pilot.press("p", "y")  # every action confirms (issue 15): one key for pause
        assert cell(app, lease, "convergence") == OpMark(f"{PENDING_GLYPH} pausing")  # at once
        await wait_until(pilot, lambda: (m := app.overlay.get(lease)) is not None and m.op is not None)
        assert cell(app, lease, "provider_state") == f"{PENDING_GLYPH} paused"
        assert e2b.instances[iid].state == "paused"  # the provider did it
        assert "⧗1 pending" in screen_text(app)
        assert app.check_action("pause", ()) is None  # a pending row takes no second action
        await pilot.press("z", "ctrl+r")
        await settled(pilot, app)
        assert lease not in app.overlay
        assert cell(app, lease, "convergence") == Convergence.CONVERGED
        assert cell(app, lease, "provider_state") == "paused"
        assert cell(app, lease, "desired") == "paused"  # the intent went to sandbox.db LEON's way
        await pilot.press("r", "y")
        await settled(pilot, app)
        assert e2b.instances[iid].state == "running"
        assert cell(app, lease, "provider_state") == "running" and cell(app, lease, "desired") == "running"
        # The audit view lists both actions, newest first, converged.
        app.action_audit()
        screen = app.screen
        assert isinstance(screen, AuditScreen)
        await wait_until(pilot, lambda: screen.loaded)
        assert [(e.action, e.convergence) for e in screen.entries[:2]] == [
            ("resume", "converged"),
            ("pause", "converged"),
        ]
        assert screen.table.row_count >= 2 and "resume" in screen_text(app)


async def test_destroy_dialog_names_the_target_and_starts_on_cancel(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    docker = env.doubles["docker"]
    async with app.run_test(size=(80, 24)) as pilot:  # ids must be whole even at 80x24 (not "lease-35…")
        await loaded(pilot, app)
        lease = pick(app, "docker", "running")
        row = next(r for r in app.ground_truth.rows if r.lease_id == lease)
        app.gt_table.move_cursor_to_key(lease)
        before = mutations(docker)
        await pilot.press("ctrl+d")
        dialog = app.screen
        assert isinstance(dialog, ConfirmDestroyScreen)
        assert dialog.focused is dialog.query_one("#cancel", Button)
        text = screen_text(app)
        for word in ("docker", row.instance_id, lease, row.thread_id):
            assert word in text
        await pilot.press("enter")  # a stray Enter cancels
        assert not isinstance(app.screen, ConfirmDestroyScreen)
        assert mutations(docker) == before and row.instance_id in docker.instances
        assert lease not in app.overlay
        await pilot.press("ctrl+d", "tab", "enter")  # deliberate: Tab to Destroy, Enter
        await settled(pilot, app)
        assert row.instance_id not in docker.instances
        assert mutations(docker) > before
        assert cell(app, lease, "desired") == "destroyed"


async def test_destroy_on_a_leaked_lease_destroys_its_live_instance(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        gt = app.ground_truth
        row = next(r for r in gt.rows if "leak" in r.reason)  # destroyed + detached, instance runs
        orphan = next(o for o in gt.orphans if o.claimed_lease_id == row.lease_id)
        double = env.doubles[row.provider]
        assert row.instance_id is None and orphan.instance_id in double.instances
        done = next(
            r
            for r in gt.rows
            if r.desired_state == "destroyed"
            and r.instance_id is None
            and r.provider != "local"
            and "leak" not in r.reason
        )
        app.gt_table.move_cursor_to_key(done.lease_id)
        await pilot.pause()
        assert app.check_action("destroy", ()) is None  # nothing left to destroy: greyed
        app.gt_table.move_cursor_to_key(row.lease_id)
        await pilot.pause()
        assert app.check_action("destroy", ()) is True  # a leak: the instance is still there
        await pilot.press("ctrl+d")
        dialog = app.screen
        assert isinstance(dialog, ConfirmDestroyScreen)
        text = screen_text(app)
        for word in (row.provider, orphan.instance_id, row.lease_id, row.thread_id):
            assert word in text
        assert "(none bound)" not in text and "leaked" in text
        await pilot.press("tab", "enter")
        await settled(pilot, app)
        assert orphan.instance_id not in double.instances
        assert not any(o.claimed_lease_id == row.lease_id for o in app.ground_truth.orphans)
        fixed = next(r for r in app.ground_truth.rows if r.lease_id == row.lease_id)
        assert fixed.convergence == Convergence.CONVERGED


async def test_bulk_destroy_requires_typing_the_number_of_targets(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    e2b = env.doubles["e2b"]
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        keys = [
            r.lease_id for r in app.ground_truth.rows if r.provider == "e2b" and r.provider_state == "running"
        ][:2]
        iids = [r.instance_id for r in app.ground_truth.rows if r.lease_id in keys]
        for k in keys:
            app.gt_table.toggle_mark(k)
        await pilot.pause()
        before = mutations(e2b)
        await pilot.press("ctrl+d")
        dialog = app.screen
        assert isinstance(dialog, ConfirmDestroyScreen) and dialog.bulk
        assert dialog.focused is dialog.query_one("#cancel", Button)
        confirm = dialog.query_one("#confirm", Button)
        assert confirm.disabled and "Type 2 to destroy all 2" in screen_text(app)
        dialog.query_one("#confirm-count", Input).focus()
        await pilot.press("3", "enter")  # wrong count: nothing happens
        assert app.screen is dialog and confirm.disabled
        await pilot.press("backspace", "2")
        assert not confirm.disabled
        await pilot.press("enter")
        assert app.screen is not dialog
        await settled(pilot, app)
        assert all(i not in e2b.instances for i in iids) and mutations(e2b) > before
        assert not app.gt_table.marked  # marks are consumed by the action


async def test_read_only_greys_every_write_key_and_nothing_reaches_the_provider(
    env: Any, tmp_path: Path
) -> None:
    from tests.operations_support import sha

    app = make(env, tmp_path, read_only=True)
    db_before = sha(env.config.sources.sandbox_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        assert " RO " in screen_text(app)
        before = {name: mutations(d) for name, d in env.doubles.items()}
        app.gt_table.move_cursor_to_key(pick(app, "docker", "running"))
        await pilot.pause()
        for action in ("pause", "resume", "destroy"):
            assert app.check_action(action, ()) is None  # greyed, not hidden
        shown = {key: b.enabled for key, b in app.active_bindings.items() if key in ("p", "r", "ctrl+d")}
        assert shown == {"p": False, "r": False, "ctrl+d": False}
        await pilot.press("p", "r", "ctrl+d")
        assert not isinstance(app.screen, ConfirmDestroyScreen)
        await pilot.press("2")
        await pilot.pause()
        assert app.check_action("adopt", ()) is None and app.active_bindings["a"].enabled is False
        await pilot.press("a", "p", "ctrl+d")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, AdoptScreen | ConfirmDestroyScreen)
        assert {name: mutations(d) for name, d in env.doubles.items()} == before
        assert len(app.overlay) == 0
    assert sha(env.config.sources.sandbox_db) == db_before


async def test_keys_grey_by_capability_and_row_state(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        local = next(r.lease_id for r in app.ground_truth.rows if r.provider == "local")
        app.gt_table.move_cursor_to_key(local)  # LEON's local provider has no API
        await pilot.pause()
        assert [app.check_action(a, ()) for a in ("pause", "resume", "destroy")] == [None] * 3
        paused = pick(app, "e2b", "paused")
        app.gt_table.move_cursor_to_key(paused)
        await pilot.pause()
        assert app.check_action("pause", ()) is None and app.check_action("resume", ()) is True
        assert app.check_action("adopt", ()) is False  # adopt belongs to the Orphans view
        assert app.active_bindings["p"].enabled is False


async def test_provider_5xx_rolls_back_with_the_error_on_the_row(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    e2b = env.doubles["e2b"]
    # The real server answers 500 to pause only (GETs keep working, so the re-check passes).
    e2b.router.routes.insert(
        0,
        Route(
            "POST",
            re.compile(r"^/sandboxes/[^/]+/pause$"),
            lambda request, **_: Response(500, {"message": "boom (injected)"}),
        ),
    )
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await loaded(pilot, app)
        lease = pick(app, "e2b", "running")
        iid = next(r.instance_id for r in app.ground_truth.rows if r.lease_id == lease)
        app.gt_table.move_cursor_to_key(lease)
        await pilot.press("p", "y")
        await wait_until(pilot, lambda: (m := app.overlay.get(lease)) is not None and m.status == "failed")
        assert cell(app, lease, "convergence") == OpMark(f"{FAILED_GLYPH} pause failed")
        assert cell(app, lease, "provider_state") == "running"  # rolled back: the real state
        assert "500" in (cell(app, lease, "last_error") or "")
        assert any("1 failed" in n.message for n in app._notifications)
        assert e2b.instances[iid].state == "running"
        await wait_until(pilot, lambda: not app.inflight)
        app.request_refresh()
        await wait_until(pilot, lambda: not app.inflight and app.refreshes >= 3, tries=300)
        row = next(r for r in app.ground_truth.rows if r.lease_id == lease)
        assert row.needs_refresh and "500" in (row.last_error or "")  # LEON's error fields, from the DB


async def test_adopt_an_orphan_becomes_a_lease(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        orphan = next(o for o in app.ground_truth.orphans if o.provider == "e2b")
        await pilot.press("2")
        app.orphans_table.move_cursor_to_key(orphan.key)
        await pilot.pause()
        assert app.check_action("adopt", ()) is True
        await pilot.press("a")
        assert isinstance(app.screen, AdoptScreen)
        assert orphan.instance_id in screen_text(app)
        await pilot.press("enter")  # no thread: a lease of its own
        await settled(pilot, app)
        gt = app.ground_truth
        assert orphan.key not in {o.key for o in gt.orphans}
        adopted = [r for r in gt.rows if r.instance_id == orphan.instance_id]
        assert len(adopted) == 1 and adopted[0].lease_id.startswith("lease-adopt-")
