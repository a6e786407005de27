"""`opcockpit snapshot ...` parsed without typer: the headless path's start-up budget.

Importing typer and building even one command costs ~10 % of a 100-lease snapshot's wall time
(issue 9: <= 0.3 s including interpreter start-up). A snapshot command line that is plainly
well formed (the global flags, `snapshot`, then only this command's options and the global
flags, each value valid) is parsed here into exactly the namespace the typer app would hand the
same runner; any other command line, and every doubtful token (help, a typo, `--`, a missing or
invalid value, a value that looks like an option, shell completion), returns None and typer
parses it, so errors and help texts stay typer's. tests/test_cli_plain.py holds this table equal to the typer
declaration (cli/app_fleet.py) and the two parsers equal on generated command lines.

Also the typer-free value parsers both parsers share, so a value means the same on either path.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from opcockpit.domain.exit_codes import ExitCode

MIN_REFRESH_S = 0.5
SNAPSHOT_FORMATS = ("table", "json", "ndjson", "csv", "prometheus")


def finite_positive(text: str) -> float:
    """Seconds > 0; ValueError with the one-line reason otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    # nan made the TUI's refresh timer spin at 100 % CPU; inf made it never fire
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"must be a finite number of seconds, not {text!r}")
    if value <= 0:
        raise ValueError("must be > 0")
    return value


def refresh_seconds(text: str) -> float:
    """--refresh: positive seconds; below the 0.5 s floor it is raised to the floor."""
    return max(finite_positive(text), MIN_REFRESH_S)


def _count(text: str) -> int:
    # click's INT is int(text); only plain ASCII digits are taken here, the rest goes to typer
    if not (text.isascii() and text.isdigit()):
        raise ValueError(text)
    return int(text)


def _choice(choices: Sequence[str]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in choices:
            raise ValueError(text)
        return text

    return convert


# option -> (dest, how its value is read; None: a flag without a value)
GLOBAL_OPTIONS: dict[str, tuple[str, Callable[[str], Any] | None]] = {
    "--config": ("config", str),
    "--db": ("db", str),
    "--context": ("context", str),
    "--events-db": ("events_db", str),
    "--read-only": ("read_only", None),
    "--refresh": ("refresh", refresh_seconds),
    "--debug": ("debug", None),
}
SNAPSHOT_OPTIONS: dict[str, tuple[str, Callable[[str], Any] | None]] = {
    "--format": ("format", _choice(SNAPSHOT_FORMATS)),
    "--check": ("check", None),
    "--provider": ("provider", str),
    "--timeout": ("timeout", finite_positive),
    "--width": ("width", _count),
}
REPEATABLE = frozenset({"provider"})  # every value kept, in order; otherwise the last one wins
DEFAULTS: dict[str, Any] = {
    "config": None, "db": None, "context": None, "events_db": None, "read_only": False,
    "refresh": None, "debug": False,
    "format": "table", "check": False, "provider": None, "timeout": None, "width": None,
}  # fmt: skip


def run_snapshot_command(args: Any) -> int:
    """The snapshot runner, the same object on both paths.

    The cyclic GC is off from here on, the heavy imports included (restored on return): the
    classes, schemas and records a snapshot makes are not garbage cycles, and the collector's
    passes over them were ~5 % of a 10k-lease PostgreSQL snapshot's instructions (issue 12;
    on the sandbox.db path, whose records were already built with the collector off, ~0)."""
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        from opcockpit.cli.snapshot import run_snapshot

        return run_snapshot(args)
    finally:
        if was_enabled:
            gc.enable()


def parse_plain(argv: Sequence[str]) -> tuple[Callable[[Any], int], SimpleNamespace] | None:
    """(runner, args) for a plainly well-formed `snapshot` command line, else None (typer's).
    Global flags may come before `snapshot` too (`opcockpit --config c.toml snapshot`), as typer
    takes them; given twice, the last one wins there as well."""
    if any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ):
        return None  # shell completion is typer's
    options = GLOBAL_OPTIONS  # until the command's name: only the root's options
    values = dict(DEFAULTS)
    tokens = iter(argv)
    for token in tokens:
        if token == "snapshot" and options is GLOBAL_OPTIONS:
            options = {**GLOBAL_OPTIONS, **SNAPSHOT_OPTIONS}
            continue
        name, eq, inline = token.partition("=")
        spec = options.get(name)
        if spec is None:
            return None
        dest, convert = spec
        if convert is None:
            if eq:
                return None  # `--check=x`: typer's error
            values[dest] = True
            continue
        text = inline if eq else next(tokens, None)
        if text is None or (not eq and text.startswith("-")):
            return None  # missing value, or one that reads like an option: typer decides
        try:
            value = convert(text)
        except ValueError:
            return None
        if dest in REPEATABLE:
            values[dest] = [*(values[dest] or ()), value]
        else:
            values[dest] = value
    if options is GLOBAL_OPTIONS:
        return None  # no command: the TUI, typer's
    return run_snapshot_command, SimpleNamespace(**values, command="snapshot")


def run_plain(run: Callable[[Any], int], args: Any) -> int:
    """run(args) with the outcomes typer's Command.main gives a command (standalone_mode=False):
    Ctrl-C is exit 130, EOF an abort, a broken pipe exit 1 with stdout/stderr pacified."""
    from opcockpit.cli.common import err

    try:
        return int(run(args))
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except EOFError:
        sys.stderr.write("\n")
        err("opcockpit: aborted")
        return ExitCode.INTERNAL
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        from typer._click.utils import PacifyFlushWrapper

        sys.stdout = PacifyFlushWrapper(sys.stdout)  # type: ignore[assignment]
        sys.stderr = PacifyFlushWrapper(sys.stderr)  # type: ignore[assignment]
        return 1
