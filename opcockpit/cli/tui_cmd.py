"""`opcockpit` with no command: the live cockpit (Textual), on the same flags as every command."""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

from opcockpit.cli.common import EXIT_USAGE, err, load_from_args, load_or_exit


def run_tui(args: Any) -> int:
    loaded = load_or_exit(args)  # --config/--db/--events-db/--read-only, like any command
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        err("opcockpit: the live cockpit needs a terminal; for pipes and scripts use `opcockpit snapshot`")
        return EXIT_USAGE
    from opcockpit.wiring import tune_for_long_run

    # Before the TUI's worker threads exist: the malloc arena cap only applies to new arenas.
    trimmer = tune_for_long_run()
    import opcockpit.tui.app as tui_app

    read_only = bool(loaded.config.read_only)
    try:
        # `:ctx NAME`: the same flags with another context (a bad one raises, shown in the TUI)
        code = tui_app.run_tui(
            loaded,
            read_only=read_only,
            debug=args.debug,
            refresh_s=args.refresh,
            reload_context=partial(_load_context, args),
        )
    finally:
        if trimmer is not None:
            trimmer.stop()
    return int(code or 0)


def _load_context(args: Any, name: str) -> Any:
    return load_from_args(args, context=name)
