"""Issue 12, k9s's contexts in the TUI: the header names the context in effect, `:ctx` lists the
contexts, `:ctx NAME` switches (the target's config loaded and validated first: a bad one is one
line in the prompt and the cockpit stays), and `run_tui` starts again on the chosen deployment.
Real config file, real LEON worked-example databases for two deployments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opcockpit.adapters.providers.registry import KINDS
from opcockpit.settings.config import load_config
from opcockpit.tui.app import CockpitApp, build_app
from opcockpit.tui.commands import JumpScreen
from opcockpit.tui.contexts import ContextPicker, SwitchContext
from tests.fixtures.leon_db import write_worked_example
from tests.tui.conftest import wait_until
from tests.tui.screen_text import screen_text


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPCOCKPIT_LEDGER", str(tmp_path / "ledger.db"))
    prod = write_worked_example(tmp_path / "prod")
    staging = write_worked_example(tmp_path / "staging")
    path = tmp_path / "config.toml"
    path.write_text(
        'context = "prod"\n'
        f'[contexts.prod]\nread_only = true\nsources = {{ sandbox_db = "{prod.sandbox_db}" }}\n'
        f'[contexts.staging]\nsources = {{ sandbox_db = "{staging.sandbox_db}" }}\n'
        '[contexts.broken]\nsources = { kind = "postgres" }\n'  # no url: invalid once selected
    )
    return path


def _load(path: Path, name: str | None = None) -> Any:
    return load_config(path, kinds=KINDS, context=name)


def _app(path: Path) -> CockpitApp:
    app = build_app(_load(path).config)
    app.reload_context = lambda name: _load(path, name)
    return app


async def _jump(pilot: Any, text: str) -> JumpScreen:
    await pilot.press("colon")
    screen = pilot.app.screen
    assert isinstance(screen, JumpScreen)
    await pilot.press(*text, "enter")
    await pilot.pause()
    return screen


async def test_header_names_the_context_and_ctx_name_switches(config_file: Path) -> None:
    app = _app(config_file)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: app.ground_truth is not None)
        assert "ctx:prod" in screen_text(app).splitlines()[0]
        prompt = await _jump(pilot, "ctx nope")
        assert prompt.error == "unknown context 'nope' (known: broken, prod, staging)"
        await pilot.press("escape")
        prompt = await _jump(pilot, "ctx prod")
        assert prompt.error == "already in context prod"
        await pilot.press("escape")
        prompt = await _jump(pilot, "ctx broken")  # validated before leaving: the cockpit stays
        assert prompt.error is not None and prompt.error.startswith("context broken: ")
        assert "url" in prompt.error
        await pilot.press("escape")
        assert app.is_running
        await _jump(pilot, "ctx staging")
        await wait_until(pilot, lambda: not app.is_running)
    result = app.return_value
    assert isinstance(result, SwitchContext) and result.name == "staging"
    assert result.loaded.config.context == "staging"
    assert result.loaded.config.read_only is False  # staging is not read-only; prod was
    assert str(result.loaded.config.sources.sandbox_db).endswith("staging/sandbox.db")


async def test_ctx_alone_opens_a_picker(config_file: Path) -> None:
    app = _app(config_file)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.ground_truth is not None)
        await _jump(pilot, "ctx")
        await wait_until(pilot, lambda: isinstance(app.screen, ContextPicker))
        text = screen_text(app)
        assert "● prod" in text and "staging" in text and "broken" in text
        await pilot.press("escape")  # Esc stays
        assert not isinstance(app.screen, ContextPicker) and app.is_running
        await _jump(pilot, "ctx")
        await wait_until(pilot, lambda: isinstance(app.screen, ContextPicker))
        await pilot.press("down", "enter")  # prod -> staging (sorted: broken, prod, staging)
        await wait_until(pilot, lambda: not app.is_running)
    assert isinstance(app.return_value, SwitchContext) and app.return_value.name == "staging"


async def test_without_contexts_ctx_says_how_to_define_them(worked_example: Any) -> None:
    from tests.tui.conftest import worked_example_app

    app = worked_example_app(worked_example)
    async with app.run_test(size=(100, 30)) as pilot:
        prompt = await _jump(pilot, "ctx")
        assert prompt.error is not None and prompt.error.startswith("no contexts defined")


def test_the_cli_starts_again_on_the_chosen_context(config_file: Path, tmp_path: Path) -> None:
    """Real process on a real pty: `opcockpit --config F` opens prod; `:ctx staging` brings the
    cockpit back on staging (header), and q then exits 0 without a traceback."""
    import os
    import subprocess
    import sys

    from tests.pty_support import read_pty
    from tests.test_tui_liveness import WRAPPER

    log = tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPCOCKPIT_")}
    env.update(
        TERM="xterm-256color", HOME=str(tmp_path), OPCOCKPIT_LEDGER=str(tmp_path / "ledger.db"),
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )  # fmt: skip
    primary, secondary = os.openpty()
    argv = [sys.executable, "-c", WRAPPER, str(log), "--config", str(config_file)]
    tty = {"stdin": secondary, "stdout": secondary, "stderr": secondary}
    proc = subprocess.Popen(argv, env=env, close_fds=True, **tty)
    os.close(secondary)
    try:
        out = read_pty(primary, 60, until=[b"ctx:prod"])
        assert b"ctx:prod" in out, out[-500:]
        read_pty(primary, 2)
        os.write(primary, b":")
        read_pty(primary, 2)
        os.write(primary, b"ctx staging\r")
        out = read_pty(primary, 60, until=[b"ctx:staging"])
        assert b"ctx:staging" in out, out[-800:]
        read_pty(primary, 2)
        os.write(primary, b"q")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    text = log.read_text()
    assert proc.returncode == 0 and "Traceback" not in text, text[-2000:]
