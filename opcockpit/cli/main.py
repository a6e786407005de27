"""`opcockpit` command line: TUI (no subcommand), snapshot, demo, config, operator actions
(pause/resume/destroy/adopt/audit, opcockpit.cli.ops) and alerts (alerts/ack/mute/unmute,
opcockpit.cli.alerts_cli).

argparse rather than typer: importing typer (click + rich) costs ~100 ms, a third of the 0.3 s
budget for `opcockpit snapshot` on a small fleet. Everything beyond argparse is imported inside
the command that needs it, so `snapshot --format json` never imports rich, httpx or textual.

Exit codes (an API, like harlequin's hsql): 0 picture produced (provider failures are in the
output); 1 internal error, or `snapshot --check` / `alerts` found an unmuted firing alert; 2 usage
or config error; 3 a source could not be read; 4 an operator action did not converge; 5 the
operator declined a confirmation; 130 interrupted.
No traceback ever reaches users unless --debug, and then with known secrets redacted.

The action and alert modules import asyncio and more at module level, so they are registered
lazily: only the module owning the command being run is imported and registers its real
subparsers; the others appear as help-only stubs (`opcockpit --help` lists them all).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import IO, NoReturn

from opcockpit import __version__

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_SOURCE = 3
EXIT_INTERRUPTED = 130

FORMATS = ("table", "json", "ndjson", "csv")
SNAPSHOT_FORMATS = (*FORMATS, "prometheus")
MIN_REFRESH_S = 0.5

# command -> (module registering it with `add_subparsers(sub)`, help for the stub)
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "pause": ("opcockpit.cli.ops", "pause sandboxes (lease/thread/instance id, prefix, provider/instance)"),
    "resume": ("opcockpit.cli.ops", "resume paused sandboxes"),
    "destroy": ("opcockpit.cli.ops", "destroy sandboxes (asks on a terminal; --yes to skip)"),
    "adopt": ("opcockpit.cli.ops", "turn orphan instances into LEON leases"),
    "audit": ("opcockpit.cli.ops", "list the operator actions log"),
    "alerts": ("opcockpit.cli.alerts_cli", "evaluate and list alerts (exit 1 when an unmuted alert fires)"),
    "ack": ("opcockpit.cli.alerts_cli", "acknowledge an alert"),
    "mute": ("opcockpit.cli.alerts_cli", "silence an alert for a while or until it resolves"),
    "unmute": ("opcockpit.cli.alerts_cli", "lift a mute"),
}


class UsageError(Exception):
    """Bad command line: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (plus a hint), never the usage block."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _global_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # Accepted before or after the subcommand; SUPPRESS keeps a later default from erasing an
    # earlier value (`opcockpit --config X snapshot`).
    d = {"default": argparse.SUPPRESS} if suppress else {}
    parser.add_argument(
        "--config", metavar="PATH", help="config TOML (default: $OPCOCKPIT_CONFIG, XDG path)", **d
    )
    parser.add_argument("--read-only", action="store_true", help="never change a sandbox", **d)
    parser.add_argument("--debug", action="store_true", help="show tracebacks (secrets redacted)", **d)


def _refresh_seconds(text: str) -> float:
    """--refresh: positive seconds; below the 0.5 s floor it is raised to the floor."""
    return max(_positive_float(text), MIN_REFRESH_S)


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand word in argv (skipping root options and their values), or None."""
    takes_value = {"--config", "--refresh"}
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token == "--":
            return None
        if token.startswith("-"):
            skip = token in takes_value
            continue
        return token
    return None


def build_parser(command: str | None = None, *, lazy: bool = False) -> argparse.ArgumentParser:
    """The parser. With `lazy` (what `main` uses) the action and alert commands are added too:
    `command` (the subcommand about to run) decides which lazy module is imported to register its
    real subparsers; every other lazy command is a help-only stub. Without `lazy`: the core
    commands only (modules can then `add_subparsers` onto it themselves)."""
    p = _Parser(
        prog="opcockpit",
        description="Terminal cockpit for LEON-family sandbox fleets. No subcommand: the live cockpit (TUI).",
    )
    p.add_argument("--version", action="version", version=f"opcockpit {__version__}")
    _global_flags(p, suppress=False)
    p.add_argument(
        "--refresh",
        type=_refresh_seconds,
        metavar="SECONDS",
        default=None,
        help=f"TUI refresh interval (default: config refresh_s, 2; floor {MIN_REFRESH_S:g})",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    snap = sub.add_parser("snapshot", help="print the ground truth once (no TUI)")
    _global_flags(snap, suppress=True)
    snap.add_argument("--db", metavar="PATH", help="sandbox.db (overrides config and LEON defaults)")
    snap.add_argument("--events-db", metavar="PATH", help="events.db")
    snap.add_argument(
        "--format", choices=SNAPSHOT_FORMATS, default="table", help="output format (default: table)"
    )
    snap.add_argument(
        "--check",
        action="store_true",
        help="also evaluate the alert rules; exit 1 when an unmuted alert fires (for cron/CI)",
    )
    snap.add_argument("--provider", action="append", metavar="NAME", help="only this provider (repeatable)")
    snap.add_argument("--timeout", type=_positive_float, metavar="S", help="per-provider listing timeout")
    snap.add_argument("--width", type=int, metavar="COLS", help=argparse.SUPPRESS)

    demo = sub.add_parser("demo", help="run the cockpit on a generated fleet with provider doubles")
    _global_flags(demo, suppress=True)
    demo.add_argument("--snapshot", action="store_true", help="print one snapshot instead of the TUI")
    demo.add_argument("--format", choices=FORMATS, default="table")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--leases", type=int, default=60)
    demo.add_argument(
        "--refresh",
        type=_refresh_seconds,
        metavar="SECONDS",
        default=argparse.SUPPRESS,
        help=f"TUI refresh interval (default 2; floor {MIN_REFRESH_S:g})",
    )

    cfg = sub.add_parser("config", help="show, validate or create the configuration")
    _global_flags(cfg, suppress=True)
    csub = cfg.add_subparsers(dest="config_command", metavar="ACTION", parser_class=_Parser)
    show = csub.add_parser("show", help="effective config, where each value came from (secrets redacted)")
    _global_flags(show, suppress=True)
    show.add_argument("--db", metavar="PATH")
    show.add_argument("--events-db", metavar="PATH")
    show.add_argument("--format", choices=("text", "json"), default="text")
    val = csub.add_parser("validate", help="exit 0 when the config is valid, 2 otherwise")
    _global_flags(val, suppress=True)
    init = csub.add_parser("init", help="write a commented starter config")
    _global_flags(init, suppress=True)
    init.add_argument("--path", metavar="PATH", help="where to write (default: the XDG config path)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    paths = csub.add_parser("paths", help="every path opcockpit reads")
    _global_flags(paths, suppress=True)
    if lazy:
        _add_lazy(sub, command)
    return p


def _add_lazy(sub: argparse._SubParsersAction, command: str | None) -> None:
    import importlib

    wanted = LAZY_COMMANDS.get(command or "", (None, ""))[0]
    done: set[str] = set()
    for name, (module, help_text) in LAZY_COMMANDS.items():
        if module == wanted:
            if module not in done:
                importlib.import_module(module).add_subparsers(sub)
                done.add(module)
            continue
        sub.add_parser(name, help=help_text, add_help=False)  # help-only stub, never parsed


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    # nan made the TUI's refresh timer spin at 100 % CPU; inf made it never fire
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, not {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def err(line: str, stream: IO[str] | None = None) -> None:
    """One line on stderr, scrubbed of every secret value the config loader has seen."""
    from opcockpit.settings.config import scrub

    (stream or sys.stderr).write(scrub(line.rstrip("\n")) + "\n")


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command == "snapshot":
        from opcockpit.cli.snapshot import run_snapshot

        return run_snapshot(args)
    if command == "config":
        from opcockpit.cli.config_cmd import run_config

        return run_config(args)
    if command == "demo":
        return _run_demo(args)
    if command in LAZY_COMMANDS:
        func = getattr(args, "func", None)
        if func is not None:  # opcockpit.cli.ops sets func= on its subparsers
            return int(func(args))
        from opcockpit.cli.alerts_cli import run as run_alerts

        return int(run_alerts(args))
    return _run_tui(args)


def _run_demo(args: argparse.Namespace) -> int:
    try:
        from opcockpit.demo.runtime import run_demo
    except ImportError as exc:
        if exc.name and exc.name.startswith("opcockpit.demo"):
            err("opcockpit: the demo is not available in this build yet (opcockpit.demo.runtime missing)")
            return EXIT_INTERNAL
        raise
    code = run_demo(
        snapshot=args.snapshot,
        format=args.format,
        seed=args.seed,
        leases=args.leases,
        refresh_s=getattr(args, "refresh", None),
        read_only=bool(getattr(args, "read_only", False)),
    )
    return int(code or 0)


def _run_tui(args: argparse.Namespace) -> int:
    from opcockpit.cli.common import load_or_exit

    loaded = load_or_exit(args)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        err("opcockpit: the live cockpit needs a terminal; for pipes and scripts use `opcockpit snapshot`")
        return EXIT_USAGE
    try:
        import opcockpit.tui.app as tui_app
    except ImportError as exc:
        if exc.name and exc.name.startswith("opcockpit.tui"):
            err(
                "opcockpit: the live cockpit (TUI) is not available in this build yet; "
                "try `opcockpit snapshot` or `opcockpit demo --snapshot`"
            )
            return EXIT_INTERNAL
        raise
    refresh = getattr(args, "refresh", None)
    return int(
        tui_app.run_tui(loaded, read_only=loaded.config.read_only, debug=args.debug, refresh_s=refresh) or 0
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point. Returns the exit code; no traceback escapes unless --debug."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser(command_of(argv), lazy=True).parse_args(argv)
        if not hasattr(args, "debug"):
            args.debug = debug
        for name, default in (("config", None), ("read_only", False)):
            if not hasattr(args, name):
                setattr(args, name, default)
        return _dispatch(args)
    except UsageError as exc:
        err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        err("opcockpit: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except SystemExit as exc:  # argparse --help / --version
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    except BaseException as exc:
        from opcockpit.cli.common import report_unexpected

        return report_unexpected(exc, debug=debug)


def _silence_stdout() -> None:
    # The reader went away (`| head`): point stdout at devnull so the interpreter's final flush
    # does not print a BrokenPipeError of its own.
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
