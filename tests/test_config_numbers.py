"""Numbers in the config must be finite and sane: `inf`/`nan` (valid TOML) and absurd values are
config errors (one line, exit 2) from `config validate` and from any command that loads config.
And a `--db` flag must not hide an invalid config file."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from opcockpit.adapters.providers.registry import KINDS
from opcockpit.settings.config import ConfigError
from opcockpit.settings.config import load_config as _load_config
from tests.cli_support import clean_env, run_cli

# The loader gets the provider kinds from its caller; the product passes the registry's.
load_config = partial(_load_config, kinds=KINDS)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return clean_env(home, OPCOCKPIT_LEDGER=str(tmp_path / "ledger.db"))


def _problems(tmp_path: Path, text: str, env: dict[str, str], **kw: object) -> list[str]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path, env=env, **kw)  # type: ignore[arg-type]
    return exc.value.problems


BAD_NUMBERS = [
    ("list_timeout_s = inf", "list_timeout_s", "finite"),
    ("list_timeout_s = nan", "list_timeout_s", "finite"),
    ("list_timeout_s = 86401", "list_timeout_s", "86400"),
    ("refresh_s = inf", "refresh_s", "finite"),
    ("[providers.dock]\nkind = 'docker'\ntimeout_s = inf", "providers.dock.timeout_s", "finite"),
    ("[providers.dock]\nkind = 'docker'\ntimeout_s = nan", "providers.dock.timeout_s", "finite"),
    ("[providers.dock]\nkind = 'docker'\ntimeout_s = -1", "providers.dock.timeout_s", "greater than 0"),
    ("[providers.dock]\nkind = 'docker'\ntimeout_s = 1e9", "providers.dock.timeout_s", "86400"),
    ("[alerts]\nwindow_s = nan", "alerts.window_s", "finite"),
    ("[alerts]\ndiverged_for_s = inf", "alerts.diverged_for_s", "finite"),
    ("[alerts]\ndiverged_for_s = -5", "alerts.diverged_for_s", "greater than or equal to 0"),
    ("[alerts]\nmemory_pct = nan", "alerts.memory_pct", "finite"),
    ("[alerts]\nnotify_deadline_s = inf", "alerts.notify_deadline_s", "finite"),
    ("[alerts.webhook]\nurl = 'https://h.example/x'\ntimeout_s = inf", "alerts.webhook.timeout_s", "finite"),
    ("[alerts.webhook]\nurl = 'https://h.example/x'\nbackoff_s = nan", "alerts.webhook.backoff_s", "finite"),
    ("[alerts.webhook]\nurl = 'https://h.x'\nmax_backoff_s = 1e9", "alerts.webhook.max_backoff_s", "86400"),
    ("[alerts.command]\nargv = ['true']\ntimeout_s = inf", "alerts.command.timeout_s", "finite"),
]  # fmt: skip


@pytest.mark.parametrize(("toml", "loc", "why"), BAD_NUMBERS)
def test_non_finite_and_absurd_numbers_are_one_config_error(
    tmp_path: Path, env: dict[str, str], toml: str, loc: str, why: str
) -> None:
    problems = _problems(tmp_path, toml + "\n", env)
    assert len(problems) == 1, problems
    assert f": {loc}: " in problems[0] and why in problems[0]


def test_timeout_flag_inf_is_rejected(tmp_path: Path, env: dict[str, str]) -> None:
    problems = _problems(tmp_path, "", env, list_timeout_s=float("inf"))
    assert len(problems) == 1 and problems[0].startswith("--timeout flag: list_timeout_s: ")


@pytest.mark.parametrize("command", [["config", "validate"], ["snapshot"], ["alerts"]])
def test_inf_timeouts_stop_every_command_with_exit_2(
    tmp_path: Path, env: dict[str, str], command: list[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("list_timeout_s = inf\n[providers.dock]\nkind = 'docker'\ntimeout_s = inf\n")
    r = run_cli(*command, "--config", str(cfg), env=env)
    assert r.code == 2, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("opcockpit: config error: ") for line in lines)
    assert "list_timeout_s" in r.err and "providers.dock.timeout_s" in r.err and r.out == ""


def test_sane_numbers_still_load(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text("list_timeout_s = 86400\n[providers.dock]\nkind = 'docker'\ntimeout_s = 0.5\n")
    loaded = load_config(path, env=env)
    assert loaded.config.list_timeout_s == 86400 and loaded.config.providers["dock"].timeout_s == 0.5


# --------------------------------------------------------------------------- --db masks the file


def test_db_flag_does_not_hide_an_invalid_sandbox_db_in_the_file(tmp_path: Path, env: dict[str, str]) -> None:
    problems = _problems(tmp_path, "[sources]\nsandbox_db = 5\n", env, db=tmp_path / "sandbox.db")
    assert len(problems) == 1 and ": sources.sandbox_db: " in problems[0]
    # A sources value of the wrong shape entirely is one problem too, not a crash.
    problems = _problems(tmp_path, "sources = 5\n", env, db=tmp_path / "sandbox.db")
    assert problems == [f"{tmp_path / 'c.toml'}: sources: must be a table ([sources])"]


def test_timeout_flag_does_not_hide_an_invalid_list_timeout_in_the_file(
    tmp_path: Path, env: dict[str, str]
) -> None:
    problems = _problems(tmp_path, "list_timeout_s = inf\n", env, list_timeout_s=5.0)
    assert len(problems) == 1 and "c.toml: list_timeout_s: " in problems[0]


@pytest.mark.parametrize("command", [["config", "show"], ["snapshot"]])
def test_db_flag_with_invalid_config_exits_2(tmp_path: Path, env: dict[str, str], command: list[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sources]\nsandbox_db = 5\nevents_db = ['x']\n")
    r = run_cli(
        *command, "--config", str(cfg), "--db", str(tmp_path / "s.db"), "--events-db", "e.db", env=env
    )
    assert r.code == 2, r.err
    assert "sources.sandbox_db" in r.err and "sources.events_db" in r.err and r.out == ""
