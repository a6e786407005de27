"""Shared CLI plumbing: one-line stderr, config loading with exit codes, the last-resort error
handler. Every command module imports from here (never from cli.main or cli.app), so the command
modules form no cycle with the entry point."""

from __future__ import annotations

import os
import sys
import traceback
from typing import IO, TYPE_CHECKING, Any

from opcockpit.domain.exit_codes import ExitCode
from opcockpit.domain.secrets import scrub
from opcockpit.domain.text import safe_text

if TYPE_CHECKING:
    from opcockpit.ports.ledger import LedgerError
    from opcockpit.settings.config import LoadedConfig


EXIT_OK = ExitCode.OK
EXIT_INTERNAL = ExitCode.INTERNAL
EXIT_USAGE = ExitCode.USAGE
EXIT_SOURCE = ExitCode.SOURCE


def err(line: str, stream: IO[str] | None = None) -> None:
    """One line on stderr, scrubbed of every secret value the config loader has seen."""
    (stream or sys.stderr).write(scrub(line.rstrip("\n")) + "\n")


_interrupt_said: list[str] = []


def say_interrupted(line: str = "opcockpit: interrupted") -> None:
    """The one line an interrupted command prints (once per process, whoever notices first)."""
    if not _interrupt_said:
        _interrupt_said.append(line)
        err(line)


class UsageError(Exception):
    """Bad command line found by a command itself (e.g. `--since`): one line on stderr, exit 2."""


class CliExit(Exception):
    """Stop with this exit code; the message lines were already printed."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def load_from_args(args: Any, **overrides: object) -> LoadedConfig:
    """load_config from the parsed flags (`overrides` win); raises ConfigError."""
    from opcockpit.adapters.providers.registry import KINDS
    from opcockpit.settings.config import load_config

    flags: dict[str, Any] = {
        "db": getattr(args, "db", None),
        "events_db": getattr(args, "events_db", None),
        "read_only": bool(getattr(args, "read_only", False)) or None,
        "list_timeout_s": getattr(args, "timeout", None),
        "context": getattr(args, "context", None),
    }
    return load_config(getattr(args, "config", None), kinds=KINDS, **{**flags, **overrides})  # type: ignore[arg-type]


def load_or_exit(args: Any, **overrides: object) -> LoadedConfig:
    """load_from_args; every problem -> one stderr line, then exit 2."""
    from opcockpit.settings.config import ConfigError

    try:
        return load_from_args(args, **overrides)
    except ConfigError as exc:
        for problem in exc.problems:
            err(f"opcockpit: config error: {problem}")
        raise CliExit(EXIT_USAGE) from None


def _source_error_type() -> type[BaseException] | None:
    try:
        from opcockpit.ports.errors import SourceError
    except ImportError:
        return None
    return SourceError


def report_unexpected(exc: BaseException, *, debug: bool) -> int:
    """Turn any exception into one stderr line (or a redacted traceback with --debug) + exit code."""
    if isinstance(exc, CliExit):
        return exc.code
    if isinstance(exc, UsageError):
        err(str(exc))
        return EXIT_USAGE
    config = sys.modules.get("opcockpit.settings.config")  # not loaded: not a config error
    if config is not None and isinstance(exc, config.ConfigError):
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
    ledger = ledger_fault(exc)
    if ledger is not None:
        # The cockpit's own ledger (alerts, audit), named as such: never blamed on sandbox.db.
        err(f"opcockpit: {_one_line(str(ledger))}")
        return EXIT_SOURCE
    import sqlite3

    if isinstance(exc, sqlite3.Error):
        # The sources wrap their errors in SourceError (naming the file); a raw one names the
        # database file it came from when a frame still holds the connection.
        where = _db_path_in_traceback(exc)
        on = f" on {where}" if where else " (database file unknown; run with --debug)"
        err(f"opcockpit: SQLite error{on}: {_one_line(str(exc))}")
        return EXIT_SOURCE
    hint = "" if debug else " (run with --debug for details)"
    err(f"opcockpit: internal error: {type(exc).__name__}: {_one_line(str(exc))}{hint}")
    return EXIT_INTERNAL


def ledger_fault(exc: BaseException, path: str | os.PathLike[str] | None = None) -> LedgerError | None:
    """`exc` when it is a fault of the cockpit's own ledger (every ledger operation raises
    LedgerError naming its file), else None. `path` names the file when the error could not."""
    from opcockpit.ports.ledger import LedgerError

    if not isinstance(exc, LedgerError):
        return None
    if exc.path is None and path is not None:
        return LedgerError(str(path), exc.message)
    return exc


def _frame_db_path(frame: object) -> str | None:
    import sqlite3

    local = getattr(frame, "f_locals", {})
    target = local.get("target")
    if isinstance(target, str | os.PathLike):
        return str(target)
    owner = local.get("self")
    for conn in (local.get("conn"), getattr(owner, "conn", None), getattr(owner, "_conn", None)):
        if isinstance(conn, sqlite3.Connection):
            try:
                rows = conn.execute("PRAGMA database_list").fetchall()
            except sqlite3.Error:
                continue
            main = [r[2] for r in rows if r[1] == "main" and r[2]]
            if main:
                return str(main[0])
    return None


def _db_path_in_traceback(exc: BaseException) -> str | None:
    tb = exc.__traceback__
    where = None
    while tb is not None:
        where = _frame_db_path(tb.tb_frame) or where  # the innermost frame that knows wins
        tb = tb.tb_next
    return where


def _one_line(text: str) -> str:
    """One line for stderr. The text may quote sandbox.db contents (table names, values) or a
    provider's error body: control characters are made visible so they cannot drive the terminal."""
    text = safe_text(" ".join(text.split()))
    return text if len(text) <= 300 else text[:299] + "…"
