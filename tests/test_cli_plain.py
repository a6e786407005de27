"""Issue 9: a well-formed `opcockpit snapshot ...` is parsed without typer (cli/plain.py), and that
parser never disagrees with typer's.

- its option table is the typer declaration of `snapshot` plus the global flags (names, option
  strings, flag or value, repeatable, defaults, choices);
- on thousands of generated command lines (valid and invalid values, repeats, `=` forms, help,
  typos, values that look like options) it either declines or returns exactly what the typer app
  parses: the same runner and the same namespace;
- typer's outcomes for Ctrl-C, EOF and a broken pipe are kept (that a real snapshot run imports
  no typer at all is tests/test_startup_lazy.py's).
"""

from __future__ import annotations

import errno
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from opcockpit.cli import plain
from opcockpit.domain.exit_codes import ExitCode
from tests.cli_support import build_leon_db, clean_env

_TYPER: list[Any] = []


def _typer_parse(argv: list[str]) -> tuple[Any, dict[str, Any]] | None:
    """(run, vars(args)) the typer app parses from ARGV (the tree is built once; command_for's
    tree parses like the whole one, tests/test_startup_lazy.py), None for a usage error."""
    from opcockpit.cli.app import _CAPTURE, command_for

    if not _TYPER:
        _TYPER.append(command_for(["snapshot"]))
    captured: list[Any] = []
    token = _CAPTURE.set(captured)
    try:
        _TYPER[0].main(args=argv, prog_name="opcockpit", standalone_mode=False)
    except Exception:  # a usage error: typer's to report
        return None
    finally:
        _CAPTURE.reset(token)
    run, args = captured
    return run, vars(args)


def test_option_table_is_the_typer_declaration() -> None:
    import typer

    from opcockpit.cli.app import SnapshotFormat, command_for

    root = command_for(["snapshot"])
    command = root.commands["snapshot"]
    params = {p.name: p for p in command.params if p.name != "help"}
    table = {**plain.GLOBAL_OPTIONS, **plain.SNAPSHOT_OPTIONS}
    assert set(params) == {dest for dest, _ in table.values()} == set(plain.DEFAULTS)
    for option, (dest, convert) in table.items():
        param = params[dest]
        assert param.opts == [option], dest
        assert bool(param.is_flag) == (convert is None), dest
        assert bool(param.multiple) == (dest in plain.REPEATABLE), dest
        default = param.default.value if hasattr(param.default, "value") else param.default
        assert default == plain.DEFAULTS[dest], dest
        assert not param.secondary_opts, dest  # no --no-X spelling plain would not know
    assert [f.value for f in SnapshotFormat] == list(plain.SNAPSHOT_FORMATS)
    assert isinstance(root, typer.core.TyperGroup)


VALUES: dict[str, list[str]] = {
    "--format": ["json", "csv", "table", "ndjson", "prometheus", "JSON", "xml", ""],
    "--provider": ["e2b", "docker", "a b", "", "-x"],
    "--timeout": ["2", "0.5", "0", "-1", "nan", "inf", "abc", "1e3", " 3"],
    "--width": ["80", "0", "080", "-5", "8.0", "x", "٣"],
    "--refresh": ["0.1", "2", "0", "nan", "x"],
    "--config": ["c.toml", ""],
    "--db": ["a.db", "b.db", "-"],
    "--context": ["prod"],
    "--events-db": ["e.db"],
}
FLAGS = ["--check", "--read-only", "--debug"]
ODD = ["--help", "-h", "--", "--bogus", "snapshot", "extra", "--version", "-y", "--check=1", "--format"]


GLOBAL_VALUES = [o for o in VALUES if o in plain.GLOBAL_OPTIONS]
GLOBAL_FLAGS = [f for f in FLAGS if f in plain.GLOBAL_OPTIONS]


def _tokens(rng: random.Random, n: int, options: list[str], flags: list[str], p_value: float) -> list[str]:
    """`n` random tokens: an option with a value (`p_value`), a flag, or an odd token."""
    out: list[str] = []
    for _ in range(n):
        roll = rng.random()
        if roll < p_value:
            option = rng.choice(options)
            value = rng.choice(VALUES[option])
            out += [f"{option}={value}"] if rng.random() < 0.25 else [option, value]
        elif roll < 0.9:
            out.append(rng.choice(flags))
        else:
            out.append(rng.choice(ODD))
    return out


def _argv(rng: random.Random) -> list[str]:
    # global flags before the command (typer's root takes them), then the command's and global ones
    before = _tokens(rng, rng.choice((0, 0, 1, 2, 3)), GLOBAL_VALUES, GLOBAL_FLAGS, 0.6)
    return [*before, "snapshot", *_tokens(rng, rng.randint(0, 6), list(VALUES), FLAGS, 0.55)]


def test_plain_parser_agrees_with_typer_or_declines() -> None:
    rng = random.Random(9)
    taken = 0
    for _ in range(1500):
        argv = _argv(rng)
        mine = plain.parse_plain(argv)
        if mine is None:
            continue
        taken += 1
        theirs = _typer_parse(argv)
        assert theirs is not None, argv  # plain never accepts what typer refuses
        assert (mine[0], vars(mine[1])) == theirs, argv
    assert taken > 500  # most well-formed lines take the typer-free path


@pytest.mark.parametrize(
    "argv",
    [
        ["snapshot"],
        ["snapshot", "--format", "json", "--db", "x.db"],
        ["snapshot", "--provider", "a", "--provider=b", "--db", "1", "--db", "2", "--read-only", "--check"],
        ["snapshot", "--timeout", "2.5", "--refresh", "0.1", "--width", "100", "--format=csv"],
        ["--config", "c.toml", "snapshot", "--format", "json"],  # the root's flags first
        ["--db", "1", "--read-only", "snapshot", "--db", "2"],  # the last one wins
        ["--db", "snapshot", "snapshot"],  # a value named like the command
    ],
)
def test_plain_takes_well_formed_lines(argv: list[str]) -> None:
    mine = plain.parse_plain(argv)
    assert mine is not None
    assert (mine[0], vars(mine[1])) == _typer_parse(argv)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--db", "x"],  # no command: the TUI
        ["--format", "json", "snapshot"],  # the command's own option before it
        ["--db", "x", "snapshot", "snapshot"],
        ["--version", "snapshot"],
        ["demo", "--snapshot"],
        ["snapshot", "--help"],
        ["snapshot", "--format", "xml"],
        ["snapshot", "--timeout", "0"],
        ["snapshot", "--db"],
        ["snapshot", "--db", "--check"],
        ["snapshot", "--check=yes"],
        ["snapshot", "stray"],
    ],
)
def test_plain_declines_the_rest(argv: list[str]) -> None:
    assert plain.parse_plain(argv) is None


def test_plain_declines_during_shell_completion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_OPCOCKPIT_COMPLETE", "bash_complete")
    assert plain.parse_plain(["snapshot"]) is None


def _raising(exc: BaseException) -> Any:
    def run(args: Any) -> int:
        raise exc

    return run


def test_run_plain_keeps_typers_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    assert plain.run_plain(lambda args: 3, None) == 3
    assert plain.run_plain(_raising(KeyboardInterrupt()), None) == ExitCode.INTERRUPTED
    assert plain.run_plain(_raising(EOFError()), None) == ExitCode.INTERNAL
    assert capsys.readouterr().err == "\nopcockpit: aborted\n"
    with pytest.raises(PermissionError):
        plain.run_plain(_raising(PermissionError(errno.EACCES, "denied")), None)
    stdout, stderr = sys.stdout, sys.stderr
    try:
        assert plain.run_plain(_raising(BrokenPipeError(errno.EPIPE, "pipe")), None) == 1
        assert type(sys.stdout).__name__ == "PacifyFlushWrapper"
    finally:
        sys.stdout, sys.stderr = stdout, stderr


EXIT_SCRIPT = """
import atexit, json, sys, threading, time
from opcockpit.cli.main import main
atexit.register(lambda: print("atexit ran", file=sys.stderr))
if sys.argv[2] == "thread":
    def late():
        time.sleep(0.3)
        print("thread finished", file=sys.stderr)
    threading.Thread(target=late).start()
sys.argv = ["opcockpit", "snapshot", "--format", "json", "--db", sys.argv[1]]
sys.exit(main())
"""


@pytest.mark.parametrize("mode", ["alone", "thread"])
def test_snapshot_process_exit_keeps_atexit_and_threads(tmp_path: Path, mode: str) -> None:
    """As a program, a snapshot leaves without interpreter teardown (main._exit_now): the output is
    whole, atexit callbacks run, and a live non-daemon thread still gets its normal exit."""
    db = build_leon_db(tmp_path / "sandbox.db")
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(db), mode], capture_output=True, text=True, timeout=120,
        env=clean_env(tmp_path / "home"), cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows"]
    assert "atexit ran" in proc.stderr
    assert ("thread finished" in proc.stderr) == (mode == "thread")


def test_snapshot_runner_pauses_the_collector_and_restores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    import opcockpit.cli.snapshot as snapshot

    seen: list[bool] = []
    monkeypatch.setattr(snapshot, "run_snapshot", lambda args: seen.append(gc.isenabled()) or 0)
    assert gc.isenabled()
    assert plain.run_snapshot_command(None) == 0
    assert seen == [False] and gc.isenabled()
    monkeypatch.setattr(snapshot, "run_snapshot", _raising(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        plain.run_snapshot_command(None)
    assert gc.isenabled()
