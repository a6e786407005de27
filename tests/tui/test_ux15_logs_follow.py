"""Issue 15, Missing "Logs and inspect": container logs *follow*. `l` on a Docker/podman lease row
shows the log (test_ux_inspect pins that); `f` on the logs screen follows the stream, so a line the
container writes afterwards appears without a reload, and `f` again stops following.

Real pipeline: the demo fleet's DockerDouble serves the Engine API's multiplexed log stream
(follow=1 keeps the response open and streams new lines) on loopback.
"""

from __future__ import annotations

from typing import Any

from opcockpit.tui.screens.inspect import InspectScreen
from tests.tui.conftest import wait_until
from tests.tui.screen_text import screen_text
from tests.tui.test_ux_inspect import demo_app, docker_provider, listed_row, loaded


async def test_f_follows_the_log_and_new_lines_appear(demo_env: Any) -> None:
    env = demo_env
    prov = docker_provider(env)
    double = env.doubles[prov]
    app = demo_app(env)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        row = listed_row(app, env, prov)
        double.write_log(row.instance_id, "agent started\n")
        app.gt_table.move_cursor_to_key(row.lease_id)
        await pilot.pause()
        await pilot.press("l")
        logs = app.screen
        assert isinstance(logs, InspectScreen)
        await wait_until(pilot, lambda: logs.loaded)
        assert "(f: follow)" in screen_text(app) and not logs.follow

        await pilot.press("f")
        await wait_until(pilot, lambda: logs.loaded and "agent started" in logs.text)
        assert logs.follow and "following" in screen_text(app)
        double.write_log(row.instance_id, "tool failed: exit 2\n", "stderr")  # after the screen opened
        await wait_until(pilot, lambda: logs.text.endswith("tool failed: exit 2"))
        assert "▌ tool failed: exit 2" in screen_text(app)  # streamed in, stderr's gutter, at the bottom

        await pilot.press("f")  # stop following: the stream ends, the lines stay
        await wait_until(pilot, lambda: logs.loaded and not logs.follow)
        assert "tool failed: exit 2" in logs.text and "(f: follow)" in screen_text(app)
        await pilot.press("escape")
        assert app.screen is not logs
