"""Issue 15: the provider's raw record (k9s `y`) for E2B, Daytona and AgentBay, not only Docker,
from the ground-truth row, the orphan row and thread detail, secrets masked. Real pipeline: the
demo fleet with its provider doubles on loopback, the app built by the wiring.
"""

from __future__ import annotations

from typing import Any

import pytest

from opcockpit.tui.screens.inspect import InspectScreen
from opcockpit.tui.screens.orphan import OrphanScreen
from opcockpit.tui.screens.thread import ThreadDetailScreen
from tests.tui.conftest import wait_until
from tests.tui.screen_text import screen_text
from tests.tui.test_ux_inspect import demo_app, listed_row, loaded

SECRET = "tok_DoNotShowMe0123456789abcdef"
# kind -> (FakeInstance.extra that makes the double send a credential, what identifies the record)
CREDENTIAL = {
    "e2b": ({"envd_access_token": SECRET}, "sandboxID: {iid}"),
    "daytona": ({"env": {"OPENAI_API_KEY": SECRET}}, "id: {iid}"),
    "agentbay": ({"token": SECRET}, "SessionId: {iid}"),
}


def provider_of(env: Any, kind: str) -> str:
    return next(name for name, d in env.doubles.items() if d.kind == kind)


async def shows_record(pilot: Any, app: Any, iid: str, marker: str) -> None:
    await pilot.press("y")
    screen = app.screen
    assert isinstance(screen, InspectScreen)
    await wait_until(pilot, lambda: screen.loaded)
    await pilot.pause()
    assert screen.error is None and marker.format(iid=iid) in screen.text
    assert SECRET not in screen.text and "***" in screen.text
    assert SECRET not in screen_text(app)
    await pilot.press("escape")
    assert app.screen is not screen


@pytest.mark.parametrize("kind", ["e2b", "daytona", "agentbay"])
async def test_y_from_the_row_and_thread_detail(demo_env: Any, kind: str) -> None:
    env = demo_env
    prov = provider_of(env, kind)
    extra, marker = CREDENTIAL[kind]
    app = demo_app(env)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        row = listed_row(app, env, prov)
        env.doubles[prov].instances[row.instance_id].extra.update(extra)
        app.gt_table.move_cursor_to_key(row.lease_id)
        await pilot.pause()
        await shows_record(pilot, app, row.instance_id, marker)  # from the ground-truth row

        app.open_lease(row.lease_id)
        detail = app.screen
        assert isinstance(detail, ThreadDetailScreen)
        await shows_record(pilot, app, row.instance_id, marker)  # from thread detail
        assert app.screen is detail


@pytest.mark.parametrize("kind", ["e2b", "daytona", "agentbay"])
async def test_y_from_the_orphan_row(demo_env: Any, kind: str) -> None:
    env = demo_env
    prov = provider_of(env, kind)
    extra, marker = CREDENTIAL[kind]
    labels = {"leon.lease_id": "lease-nowhere0001"}  # claims a lease sandbox.db does not have
    iid = env.doubles[prov].add(state="running", labels=labels, **extra).instance_id
    app = demo_app(env)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        await pilot.press("2")
        key = f"{prov}/{iid}"
        await wait_until(pilot, lambda: key in app.orphans_table.view_keys())
        app.orphans_table.move_cursor_to_key(key)
        await pilot.pause()
        await shows_record(pilot, app, iid, marker)
        await pilot.press("enter")  # the orphan's detail: its card names the image from the record
        detail = app.screen
        assert isinstance(detail, OrphanScreen)
        await wait_until(pilot, lambda: detail.loaded)
        await pilot.pause()
        image = next(ln for ln in screen_text(app).splitlines() if ln.strip().startswith("Image"))
        assert image.split()[-1] != "-" and SECRET not in detail.raw_text
