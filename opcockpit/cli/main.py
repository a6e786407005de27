"""`opcockpit` command line: TUI (no subcommand), snapshot, demo, config.

argparse rather than typer: importing typer (click + rich) costs ~100 ms, a third of the 0.3 s
budget for `opcockpit snapshot` on a small fleet. Everything beyond argparse is imported inside
the command that needs it, so `snapshot --format json` never imports rich, httpx or textual.

Exit codes (an API, like harlequin's hsql): 0 picture produced (provider failures are in the
output); 1 internal error; 2 usage or config error; 3 a source could not be read; 130 interrupted.
No traceback ever reaches users unless --debug, and then with known secrets redacted.
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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="opcockpit",
        description="Terminal cockpit for LEON-family sandbox fleets. No subcommand: the live cockpit (TUI).",
    )
    p.add_argument("--version", action="version", version=f"opcockpit {__version__}")
    _global_flags(p, suppress=False)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    snap = sub.add_parser("snapshot", help="print the ground truth once (no TUI)")
    _global_flags(snap, suppress=True)
    snap.add_argument("--db", metavar="PATH", help="sandbox.db (overrides config and LEON defaults)")
    snap.add_argument("--events-db", metavar="PATH", help="events.db")
    snap.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    snap.add_argument(
        "--provider", action="append", metavar="NAME", help="only this provider (repeatable)"
    )
    snap.add_argument("--timeout", type=_positive_float, metavar="S", help="per-provider listing timeout")
    snap.add_argument("--width", type=int, metavar="COLS", help=argparse.SUPPRESS)

    demo = sub.add_parser("demo", help="run the cockpit on a generated fleet with provider doubles")
    _global_flags(demo, suppress=True)
    demo.add_argument("--snapshot", action="store_true", help="print one snapshot instead of the TUI")
    demo.add_argument("--format", choices=FORMATS, default="table")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--leases", type=int, default=60)

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
    return p


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def err(line: str, stream: IO[str] | None = None) -> None:
    """One line on stderr, scrubbed of every secret value the config loader has seen."""
    from opcockpit.config import scrub

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
    return _run_tui(args)


def _run_demo(args: argparse.Namespace) -> int:
    try:
        from opcockpit.demo.runtime import run_demo
    except ImportError as exc:
        if exc.name and exc.name.startswith("opcockpit.demo"):
            err("opcockpit: the demo is not available in this build yet (opcockpit.demo.runtime missing)")
            return EXIT_INTERNAL
        raise
    return int(run_demo(snapshot=args.snapshot, format=args.format, seed=args.seed, leases=args.leases) or 0)


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
            err("opcockpit: the live cockpit (TUI) is not available in this build yet; "
                "try `opcockpit snapshot` or `opcockpit demo --snapshot`")
            return EXIT_INTERNAL
        raise
    return int(tui_app.run_tui(loaded, read_only=loaded.config.read_only, debug=args.debug) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point. Returns the exit code; no traceback escapes unless --debug."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
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
