"""`opcockpit` entry point: the typer app (opcockpit.cli.app) run with the CLI contract on top.

The contract (README, "Exit codes"): errors are one line on stderr with nothing on stdout, never
a traceback unless --debug (then with known secrets redacted); click's multi-line usage errors
become one line with exit 2; 130 on SIGINT. The exit codes are opcockpit.domain.exit_codes.ExitCode.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from opcockpit.cli.common import err, say_interrupted
from opcockpit.domain.exit_codes import ExitCode


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point. Returns the exit code; no traceback escapes unless --debug."""
    as_program = argv is None  # the console script / `python -m`, not a caller in-process
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        from opcockpit.cli.plain import parse_plain, run_plain

        plain = parse_plain(argv)  # a well-formed `snapshot ...` never imports typer (start-up)
        code = run_plain(*plain) if plain is not None else _typer_main(argv)
        if code == ExitCode.INTERRUPTED:  # typer turns Ctrl-C into Exit(130): say it, once
            say_interrupted()
        if as_program and plain is not None:
            _exit_now(code)
        return code
    except KeyboardInterrupt:
        say_interrupted()
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return ExitCode.OK
    except SystemExit as exc:  # shell completion exits after printing
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else ExitCode.USAGE)
    except BaseException as exc:
        from opcockpit.cli.common import report_unexpected

        return report_unexpected(exc, debug=debug)


def _exit_now(code: int) -> None:
    """End the process now that the snapshot is written and flushed, without tearing the
    interpreter down: freeing every module and object costs ~6 % of a 100-lease snapshot's
    instructions and more at 10k (issue 9). atexit callbacks still run. Returns (the normal
    exit follows) when another non-daemon thread is alive or the streams cannot be flushed."""
    import atexit
    import os
    import threading

    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: the interpreter's own exit handles it
        return
    atexit._run_exitfuncs()
    os._exit(code)


def _typer_main(argv: list[str]) -> int:
    # typer (>= 0.29) carries its own click (typer._click): its exceptions are typer's. The
    # `click` package is not a dependency, and importing it cost ~10 ms of every start-up.
    import typer

    from opcockpit.cli.app import command_for

    command = command_for(argv)
    try:
        code = command.main(args=argv, prog_name="opcockpit", standalone_mode=False)
    except typer.Abort as exc:  # EOF at a prompt (Ctrl-C arrives as Exit(130), handled by main)
        if isinstance(exc.__cause__, KeyboardInterrupt):
            raise exc.__cause__ from None
        return _usage_error(exc)
    except typer.TyperException as exc:  # usage errors (typer's click's): one line
        return _usage_error(exc)
    return int(code) if isinstance(code, int) else ExitCode.OK


def _usage_error(exc: BaseException) -> int:
    ctx = getattr(exc, "ctx", None)
    prog = getattr(ctx, "command_path", None) or "opcockpit"
    formatter = getattr(exc, "format_message", None)
    message = formatter() if callable(formatter) else str(exc)
    if not message:  # click's Abort (EOF at a prompt) carries none
        err("opcockpit: aborted")
        return ExitCode.INTERNAL
    from opcockpit.domain.text import one_line

    err(f"{prog}: {one_line(message, 500)} (see {prog} --help)")
    return int(getattr(exc, "exit_code", ExitCode.USAGE) or ExitCode.USAGE)


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
