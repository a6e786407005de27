"""Shared CLI plumbing: config loading with exit codes, and the last-resort error handler."""

from __future__ import annotations

import argparse
import sys
import traceback

from opcockpit.cli.main import EXIT_INTERNAL, EXIT_SOURCE, EXIT_USAGE, err
from opcockpit.config import ConfigError, LoadedConfig, load_config, scrub
from opcockpit.textsafe import safe_text


class CliExit(Exception):
    """Stop with this exit code; the message lines were already printed."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def load_or_exit(args: argparse.Namespace, **overrides: object) -> LoadedConfig:
    """load_config from the parsed flags; every problem -> one stderr line, then exit 2."""
    try:
        loaded = load_config(
            getattr(args, "config", None),
            db=getattr(args, "db", None),
            events_db=getattr(args, "events_db", None),
            read_only=bool(getattr(args, "read_only", False)) or None,
            list_timeout_s=getattr(args, "timeout", None),
            **overrides,  # type: ignore[arg-type]
        )
    except ConfigError as exc:
        for problem in exc.problems:
            err(f"opcockpit: config error: {problem}")
        raise CliExit(EXIT_USAGE) from None
    return loaded


def _source_error_type() -> type[BaseException] | None:
    try:
        from opcockpit.sources.errors import SourceError
    except ImportError:
        return None
    return SourceError


def report_unexpected(exc: BaseException, *, debug: bool) -> int:
    """Turn any exception into one stderr line (or a redacted traceback with --debug) + exit code."""
    if isinstance(exc, CliExit):
        return exc.code
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            err(f"opcockpit: config error: {_one_line(str(problem))}")
        return EXIT_USAGE
    if debug:
        text = "".join(traceback.format_exception(exc))
        sys.stderr.write(safe_text(scrub(text), single_line=False))
    source_error = _source_error_type()
    if source_error is not None and isinstance(exc, source_error):
        err(f"opcockpit: {_one_line(str(exc))}")
        return EXIT_SOURCE
    import sqlite3

    if isinstance(exc, sqlite3.Error):
        # A reader let a raw sqlite error through; still a source problem, still one line.
        err(f"opcockpit: cannot read sandbox.db: {_one_line(str(exc))}")
        return EXIT_SOURCE
    hint = "" if debug else " (run with --debug for details)"
    err(f"opcockpit: internal error: {type(exc).__name__}: {_one_line(str(exc))}{hint}")
    return EXIT_INTERNAL


def _one_line(text: str) -> str:
    """One line for stderr. The text may quote sandbox.db contents (table names, values) or a
    provider's error body: control characters are made visible so they cannot drive the terminal."""
    text = safe_text(" ".join(text.split()))
    return text if len(text) <= 300 else text[:299] + "…"
