"""The `opcockpit` typer app, assembled: the root and its global flags (app_base), then the
commands in `--help` order (app_fleet, app_alerts, app_more); `parse` and `command_for`.

A well-formed `snapshot` command line does not come here at all (cli/plain.py parses it without
typer); everything else does.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import typer

from opcockpit.cli import app_alerts, app_fleet, app_more  # each imports the one before it: --help order
from opcockpit.cli.app_base import CAPTURE, DEFAULT_WAIT_S, GLOBALS, MIN_REFRESH_S, ListFormat, app
from opcockpit.cli.app_fleet import SnapshotFormat
from opcockpit.cli.plain import GLOBAL_OPTIONS

__all__ = [
    "DEFAULT_WAIT_S",
    "GLOBALS",
    "MIN_REFRESH_S",
    "ListFormat",
    "SnapshotFormat",
    "app",
    "command_for",
    "parse",
]

# The names tests and tooling have always imported from here.
_CAPTURE = CAPTURE
_run_snapshot = app_fleet.run_snapshot_command
_run_demo = app_fleet.run_demo_command
_run_action = app_fleet.run_action_command
_run_audit = app_fleet.run_audit_command
_run_events = app_fleet.run_events_command
_run_alerts = app_alerts.run_alerts_command
_run_config = app_alerts.run_config_command
_run_serve = app_more.run_serve_command
_run_webhooks = app_more.run_webhooks_command
_run_export = app_more.run_export_command
_run_query = app_more.run_query_command
_run_queries = app_more.run_queries_command
_run_ledger = app_more.run_ledger_command


def parse(argv: list[str]) -> tuple[Callable[[Any], int], SimpleNamespace]:
    """(run, args) that `opcockpit ARGV` would call, without running it (tests, tooling)."""
    captured: list[Any] = []
    token = CAPTURE.set(captured)
    try:
        typer.main.get_command(app).main(args=argv, prog_name="opcockpit", standalone_mode=False)
    finally:
        CAPTURE.reset(token)
    run, args = captured
    return run, args


def command_for(argv: list[str]) -> Any:
    """The click command that runs `opcockpit ARGV`. Building typer's whole tree costs ~15 ms of
    every start-up (issue 9: most of a snapshot's wall time is start-up), so when ARGV names a
    command or group (after global flags, if any) only that one is built under the same root
    (callback, global flags, help and error texts unchanged). Anything else (another option
    first, a typo, no command, shell completion) builds the whole tree."""
    target = app
    name = _command_name(argv)
    completing = any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)
    if name and not completing:
        commands = [c for c in app.registered_commands if c.name == name]
        groups = [g for g in app.registered_groups if g.name == name]
        if commands or groups:
            target = copy.copy(app)  # shallow: shares every registration, only the lists differ
            target.registered_commands = commands
            target.registered_groups = groups
    return typer.main.get_command(target)


def _command_name(argv: list[str]) -> str | None:
    """The first token after the global flags (and their values), if it names nothing else."""
    tokens = iter(argv)
    for token in tokens:
        option, eq, _ = token.partition("=")
        spec = GLOBAL_OPTIONS.get(option)
        if spec is None:
            return None if token.startswith("-") else token
        if spec[1] is not None and not eq:
            next(tokens, None)  # its value, whatever it reads like: typer decides
    return None
