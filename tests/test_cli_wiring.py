"""The typer app (cli/app.py) behind cli.main: lazy subcommands, global flags anywhere, --refresh,
snapshot --check / prometheus."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from opcockpit.cli.app import MIN_REFRESH_S, parse
from opcockpit.cli.main import main
from opcockpit.domain.exit_codes import ExitCode
from tests.fixtures.leon_db import write_worked_example


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for var in list(os.environ):
        if var.startswith(("OPCOCKPIT_", "LEON_")):
            monkeypatch.delenv(var)
    env = {
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "OPCOCKPIT_LEDGER": str(tmp_path / "ledger.db"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return {k: v for k, v in os.environ.items()}


def test_global_flags_before_or_after_the_command() -> None:
    _, args = parse(["--config", "x.toml", "--read-only", "pause", "lease-1"])
    assert (args.command, args.config, args.read_only, args.targets) == ("pause", "x.toml", True, ["lease-1"])
    _, args = parse(["alerts", "--history", "--config=y", "--db", "s.db", "--debug"])
    assert (args.command, args.config, args.db, args.debug, args.history) == (
        "alerts",
        "y",
        "s.db",
        True,
        True,
    )
    _, args = parse(["--db", "a.db", "snapshot", "--db", "b.db", "--events-db", "e.db"])
    assert (args.db, args.events_db) == ("b.db", "e.db")  # the later one wins
    _, args = parse(["--refresh", "3", "config", "show", "--format", "json", "--read-only"])
    assert (args.command, args.config_command, args.format, args.refresh, args.read_only) == (
        "show",
        "show",
        "json",
        3.0,
        True,
    )


def test_snapshot_help_imports_no_action_or_alert_module() -> None:
    code = (
        "import sys; from opcockpit.cli.main import main; rc = main(['snapshot', '--help']); "
        "bad = [m for m in ('asyncio', 'opcockpit.cli.ops', 'opcockpit.cli.alerts_cli', 'textual') "
        "if m in sys.modules]; print(rc, bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 []"


def test_help_lists_every_command_and_real_parsers_load_on_demand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    for cmd in ("snapshot", "demo", "pause", "resume", "destroy", "adopt", "audit", "alerts", "ack", "mute"):
        assert f"\n  {cmd} " in listed
    assert main(["destroy", "--help"]) == 0
    assert "--dry-run" in capsys.readouterr().out  # the ops module's real parser, not the stub
    assert main(["mute", "--help"]) == 0
    assert "--until-resolved" in capsys.readouterr().out
    run, args = parse(["--read-only", "pause", "a", "--dry-run"])
    assert args.read_only and args.dry_run and args.targets == ["a"] and callable(run)


def test_refresh_flag_floor_and_validation(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse(["snapshot"])[1].refresh is None  # the config's refresh_s (default 2) applies
    assert parse(["--refresh", "5", "snapshot"])[1].refresh == 5.0
    assert parse(["demo", "--refresh", "0.1"])[1].refresh == MIN_REFRESH_S
    assert main(["--refresh", "0"]) == ExitCode.USAGE
    assert "must be > 0" in capsys.readouterr().err


def test_actions_and_audit_dispatch_through_main(
    tmp_path: Path, clean_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    we = write_worked_example(tmp_path / "leon")
    rc = main(["--read-only", "pause", "no-such-lease", "--db", str(we.sandbox_db)])
    assert rc == ExitCode.USAGE and "matches no lease" in capsys.readouterr().err
    assert main(["audit", "--format", "json"]) == 0
    assert capsys.readouterr().out.strip() in ("[]", "")


def test_snapshot_check_and_prometheus(tmp_path: Path, clean_env: dict[str, str]) -> None:
    we = write_worked_example(tmp_path / "leon")
    base = [
        sys.executable,
        "-m",
        "opcockpit.cli",
        "snapshot",
        "--db",
        str(we.sandbox_db),
        "--events-db",
        str(we.events_db),
    ]
    prom = subprocess.run([*base, "--format", "prometheus"], capture_output=True, text=True, env=clean_env)
    assert prom.returncode == 0, prom.stderr
    assert "# TYPE opcockpit_sandboxes gauge" in prom.stdout
    check = subprocess.run(
        [*base, "--check", "--format", "json"], capture_output=True, text=True, env=clean_env
    )
    assert check.returncode in (0, 1), check.stderr
    import json

    doc = json.loads(check.stdout)
    assert doc["check"]["exit_code"] == check.returncode
    assert (check.returncode == 1) == (doc["check"]["unmuted"] > 0)
