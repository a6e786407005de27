"""Issue 15: logs (`l`) and the raw provider record (`y`) from the ground-truth row, the orphan row
and the orphan detail; Enter on an orphan opens its detail (not a toast); the header warns when
sandbox.db's times are in the future. Real pipeline: the demo fleet with its provider doubles
(Docker among them) on loopback, the app built by the wiring.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from opcockpit.domain.models import GroundTruth
from opcockpit.doubles.docker import IMAGE
from opcockpit.tui.app import CockpitApp, build_app
from opcockpit.tui.screens.inspect import InspectScreen
from opcockpit.tui.screens.orphan import OrphanScreen
from opcockpit.wiring import build_cockpit
from tests.tui.conftest import wait_until
from tests.tui.screen_text import screen_text

SECRET = "sk_live_DoNotShowMe0123456789"


def demo_app(env: Any) -> CockpitApp:
    cockpit = build_cockpit(env.config, demo=True)
    return build_app(env.config, cockpit=cockpit, auto_refresh=False, watch_events=False, alerting=None)


async def loaded(pilot: Any, app: CockpitApp) -> None:
    await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
    await pilot.pause()


def listed_row(app: CockpitApp, env: Any, prov: str) -> Any:
    """A ground-truth row of `prov` whose instance its double lists (the first one)."""
    gt = app.ground_truth
    assert gt is not None
    return next(r for r in gt.rows if r.provider == prov and r.instance_id in env.doubles[prov].instances)


def docker_provider(env: Any) -> str:
    return next(name for name, d in env.doubles.items() if d.kind == "docker")


async def test_l_and_y_on_a_docker_lease_row(demo_env: Any) -> None:
    env = demo_env
    prov = docker_provider(env)
    app = demo_app(env)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        row = listed_row(app, env, prov)
        inst = env.doubles[prov].instances[row.instance_id]
        inst.extra["env"] = ["HOME=/root", f"OPENAI_API_KEY={SECRET}"]
        env.doubles[prov].write_log(row.instance_id, "agent started\n")
        env.doubles[prov].write_log(row.instance_id, "tool failed: exit 2\n", "stderr")
        app.gt_table.move_cursor_to_key(row.lease_id)
        await pilot.pause()

        await pilot.press("y")
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        await wait_until(pilot, lambda: screen.loaded)
        await pilot.pause()
        assert "OPENAI_API_KEY=***" in screen.text and SECRET not in screen.text
        shown = screen_text(app)
        assert "raw record" in shown and SECRET not in shown
        await pilot.press("j")  # JSON view of the same record
        await wait_until(pilot, lambda: screen.text.lstrip().startswith("{"))
        await pilot.press("escape")

        await pilot.press("l")
        logs = app.screen
        assert isinstance(logs, InspectScreen)
        await wait_until(pilot, lambda: logs.loaded)
        await pilot.pause()
        assert logs.text.splitlines()[-2:] == ["agent started", "tool failed: exit 2"]
        assert "▌ tool failed: exit 2" in screen_text(app)  # stderr keeps its gutter without colour
        await pilot.press("escape")
        assert app.screen is not logs


async def test_enter_on_an_orphan_opens_its_detail(demo_env: Any) -> None:
    env = demo_env
    prov = docker_provider(env)
    double = env.doubles[prov]
    double.add(
        "leon-0rphan00aa11", state="running",
        labels={"leon.session_id": "leon-0rphan00aa11", "leon.context_id": "leon-lease-nowhere0001"},
    )  # fmt: skip
    app = demo_app(env)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        await pilot.press("2")
        key = f"{prov}/leon-0rphan00aa11"
        app.orphans_table.move_cursor_to_key(key)
        await pilot.pause()
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, OrphanScreen)
        await wait_until(pilot, lambda: screen.loaded)
        await pilot.pause()
        text = screen_text(app)
        assert "ORPHAN" in text and "leon-0rphan00aa11" in text
        assert "lease-nowhere0001" in text and "does not have" in text  # the claim, in words
        assert f"Image         {IMAGE}" in text  # from the raw record, aligned in the card
        assert screen.record is not None and screen.record["Name"] == "/leon-0rphan00aa11"
        await pilot.press("y")
        assert isinstance(app.screen, InspectScreen)
        await pilot.press("escape", "escape")
        assert app.screen is not screen

        await pilot.press("y")  # from the orphan row itself
        assert isinstance(app.screen, InspectScreen)


async def test_no_logs_for_a_provider_without_them_says_why(demo_env: Any) -> None:
    env = demo_env
    app = demo_app(env)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        gt = app.ground_truth
        assert gt is not None
        row = next(
            r
            for r in gt.rows
            if env.doubles.get(r.provider) is not None and r.provider != docker_provider(env)
        )
        app.gt_table.move_cursor_to_key(row.lease_id)
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        assert not isinstance(app.screen, InspectScreen)
        assert any("no logs" in str(n.message) for n in app._notifications)


async def test_header_warns_when_db_times_are_in_the_future(demo_env: Any) -> None:
    """The header's warning comes from domain.clock_skew over the read rows (here: shifted 8 h)."""
    import dataclasses

    from tests.tui.conftest import SequenceSource

    env = demo_env
    gt: GroundTruth = await _one_refresh(env)
    ahead = timedelta(hours=8)
    shifted = dataclasses.replace(
        gt,
        rows=tuple(
            dataclasses.replace(r, last_active=(r.last_active or gt.generated_at) + ahead) for r in gt.rows
        ),
    )
    for snapshot, warned in ((gt, False), (shifted, True)):
        app = CockpitApp(SequenceSource([snapshot]), auto_refresh=False, clock=lambda: datetime.now(UTC))
        async with app.run_test(size=(160, 30)) as pilot:
            await loaded(pilot, app)
            assert ("DB times in the future" in screen_text(app)) is warned


async def _one_refresh(env: Any) -> GroundTruth:
    cockpit = build_cockpit(env.config, demo=True)
    try:
        return await cockpit.collector.refresh()
    finally:
        await cockpit.aclose()
