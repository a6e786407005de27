"""Refresh on provider events, the one-more-refresh rule, 16-colour rendering, SIGHUP under a pty."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rich.color import ColorType

from opcockpit.tui.app import CockpitApp
from opcockpit.wiring import build_cockpit
from tests.pty_support import read_pty
from tests.tui.conftest import SequenceSource, wait_until
from tests.tui.factories import NOW, make_ground_truth


async def test_request_during_a_refresh_gets_exactly_one_follow_up() -> None:
    src = SequenceSource([make_ground_truth(20)])
    app = CockpitApp(src, clock=lambda: NOW, auto_refresh=False, watch_events=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.refreshes == 1 and not app.inflight)
        src.gate = asyncio.Event()
        app.request_refresh()  # starts refresh #2, held by the gate
        await wait_until(pilot, lambda: src.calls == 2)
        for _ in range(5):  # a burst of change notifications while it runs
            app.request_refresh()
        assert src.calls == 2 and app.inflight  # never two at once
        src.gate.set()
        await wait_until(pilot, lambda: src.calls == 3 and not app.inflight)
        await pilot.pause(0.2)
        assert src.calls == 3 and app.refreshes == 3  # one follow-up, not five


async def test_docker_event_triggers_a_refresh_without_polling(demo_env: Any) -> None:
    env = demo_env
    # no timer: only events refresh
    app = CockpitApp(build_cockpit(env.config, demo=True).collector, auto_refresh=False)
    docker = env.doubles["docker"]
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: app.refreshes >= 1 and not app.inflight, tries=500)
        watcher = app.watcher
        assert watcher is not None
        await wait_until(pilot, lambda: "docker" in watcher.watching and watcher.streams["docker"].connected)
        await pilot.pause(0.5)  # the /events request is on the wire
        row = next(
            r for r in app.ground_truth.rows if r.provider == "docker" and r.provider_state == "running"
        )
        before = app.refreshes
        docker.set_state(row.instance_id, "paused")  # behind the platform's back
        await wait_until(pilot, lambda: app.refreshes > before and not app.inflight, tries=400)
        fresh = next(r for r in app.ground_truth.rows if r.lease_id == row.lease_id)
        assert fresh.provider_state == "paused"
        assert app.gt_table.get_row(row.lease_id)[6] == "paused"
    assert watcher.watching == []  # streams closed on exit


async def test_sixteen_colour_theme_renders_only_ansi_colours() -> None:
    app = CockpitApp(SequenceSource([make_ground_truth(40)]), clock=lambda: NOW, auto_refresh=False)
    async with app.run_test(size=(100, 30)) as pilot:
        app.theme = "ansi-dark"
        await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
        await pilot.pause()
        table = app.gt_table
        kinds = set()
        for y in range(0, 12):
            for seg in table.render_line(y):
                for color in (seg.style.color, seg.style.bgcolor) if seg.style else ():
                    if color is not None:
                        kinds.add(color.type)
        assert kinds and kinds <= {ColorType.DEFAULT, ColorType.STANDARD}


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX only")
def test_sighup_under_a_pty_exits_and_stops_the_doubles(tmp_path: Path) -> None:
    """`opcockpit demo` in a real terminal; the terminal goes away (SIGHUP): the process exits
    within seconds, and the demo's temp dir (unix sockets of the doubles, DBs) is gone."""
    import pty

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPCOCKPIT_")}
    env.update(
        TMPDIR=str(tmp),
        TERM="xterm-256color",
        HOME=str(tmp_path / "home"),
        OPCOCKPIT_LEDGER=str(tmp_path / "ledger.db"),
        XDG_CONFIG_HOME=str(tmp_path / "cfg"),
        COLUMNS="100",
        LINES="30",
    )
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "opcockpit.cli", "demo", "--leases", "20"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    os.close(secondary)
    try:
        out = read_pty(primary, 30, until=[b"leases"])
        assert b"leases" in out, out[-500:]
        assert any(p.name.startswith("opcockpit-demo-") for p in tmp.iterdir())  # doubles are up
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            read_pty(primary, 0.2)  # keep draining the terminal
        assert proc.poll() is not None, "still running 10 s after SIGHUP"
        assert not any(p.name.startswith("opcockpit-demo-") for p in tmp.iterdir())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
