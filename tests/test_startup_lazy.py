"""Issue 9: `opcockpit snapshot` starts without the parts it never uses, and the deferrals do not
change what the other commands get.

- a real `snapshot --format json` in a fresh interpreter (real LEON-schema DB, isolated HOME)
  imports neither typer (cli/plain.py parses it), the operations service, lark, the
  OTLP/PostgreSQL adapters, the explore stack nor the `click` package (typer carries its own);
- `cli.app.command_for(argv)` parses exactly what the whole tree parses (same run, same args);
- `Cockpit.operations` is built on first read, once, from the cockpit's own collector and audit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.cli_support import build_leon_db, clean_env

NEVER_ON_SNAPSHOT = (
    "click",
    "typer",  # a well-formed snapshot line is parsed by cli/plain.py
    "importlib.metadata",  # pydantic's plugin lookup: cli/pydantic_plugins.py
    "lark",
    "opcockpit.services.operations",
    "opcockpit.services.explore",
    "opcockpit.services.export",
    "opcockpit.adapters.otlp",
    "opcockpit.adapters.pg_source",
    "opcockpit.adapters.ledger.queries",
    "opcockpit.adapters.leon.writer",
    "opcockpit.domain.query.grammar",
)

SCRIPT = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from opcockpit.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["snapshot", "--format", "json", "--db", sys.argv[1]])
    print(json.dumps({"code": code, "rows": len(json.loads(out.getvalue())["rows"]),
                      "modules": sorted(sys.modules)}))
    """
)


def test_snapshot_imports_only_what_it_uses(tmp_path: Path) -> None:
    db = build_leon_db(tmp_path / "sandbox.db")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(db)], capture_output=True, text=True, timeout=120,
        env=clean_env(tmp_path / "home"), cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    assert report["rows"] > 0
    loaded = set(report["modules"])
    assert "opcockpit.wiring" in loaded and "opcockpit.services.collect" in loaded
    assert sorted(loaded.intersection(NEVER_ON_SNAPSHOT)) == []


def _parsed(command: object, argv: list[str]) -> tuple[object, dict[str, object]]:
    """(run, vars(args)) that `command` would call for ARGV, without running it."""
    from opcockpit.cli.app import _CAPTURE

    captured: list[object] = []
    token = _CAPTURE.set(captured)
    try:
        command.main(args=argv, prog_name="opcockpit", standalone_mode=False)  # type: ignore[attr-defined]
    finally:
        _CAPTURE.reset(token)
    run, args = captured
    return run, vars(args)


def test_command_for_parses_like_the_whole_tree() -> None:
    import typer

    from opcockpit.cli.app import app, command_for

    full = typer.main.get_command(app)
    cases = (
        ("snapshot", ["snapshot", "--format", "csv", "--db", "x.db", "--provider", "e2b", "--read-only"]),
        ("config", ["config", "show", "--db", "x.db"]),
        ("audit", ["audit", "--limit", "5", "--debug"]),
        ("snapshot", ["--db", "x.db", "--read-only", "snapshot", "--db", "y.db"]),  # global flags first
        ("config", ["--config=c.toml", "--debug", "config", "show"]),
        ("audit", ["--db", "audit", "audit"]),  # a flag's value named like a command
    )
    for name, argv in cases:
        pruned = command_for(argv)
        assert set(pruned.commands) == {name}  # only the named command/group was built
        assert _parsed(pruned, argv) == _parsed(full, argv)
    # another option first, a typo, no command: the whole tree (its errors and help list every command)
    for argv in (["--format", "json", "snapshot"], ["snapshto"], [], ["--db", "x.db"], ["--db"]):
        assert set(command_for(argv).commands) == set(full.commands)


def test_operations_built_on_first_read(tmp_path: Path) -> None:
    from opcockpit.services.operations import Operations
    from opcockpit.settings.config import CockpitConfig
    from opcockpit.wiring import build_cockpit

    db = build_leon_db(tmp_path / "sandbox.db")
    cfg = CockpitConfig(sources={"sandbox_db": str(db)})
    cockpit = build_cockpit(cfg, read_only=True, ledger_path=tmp_path / "ledger.db")
    assert "_operations_value" in vars(cockpit)
    ops = cockpit.operations
    assert isinstance(ops, Operations)
    assert cockpit.operations is ops  # built once
    assert ops.collector is cockpit.collector and ops.audit is cockpit.audit
    assert ops.read_only is True and ops.operator == cockpit.operator
    assert ops.on_event is not None  # actions still reach the event ledger
