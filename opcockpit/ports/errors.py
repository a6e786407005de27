"""Typed, user-facing errors of the read-only sources.

Callers print `str(err)`: one line that names the path and says what to do. No traceback, no
SQLite jargon beyond what helps an operator.
"""

from __future__ import annotations

from typing import Literal, get_args

SourceErrorKind = Literal["missing", "not_sqlite", "not_leon", "locked", "corrupt", "permission", "schema"]
KINDS: tuple[str, ...] = get_args(SourceErrorKind)


class SourceError(Exception):
    """A source (sandbox.db, events.db) cannot be read.

    kind:
      missing     the file does not exist (it is never created)
      not_sqlite  not a SQLite database (random bytes, text, a directory)
      not_leon    a SQLite database, but not LEON's (no sandbox_leases / run_events table)
      locked      another process holds a lock longer than the busy timeout
      corrupt     SQLite reports a malformed/truncated file or an I/O error
      permission  the OS denies the read, or SQLite's WAL reader needs files it may not create
      schema      LEON tables exist but required columns/tables are missing
    """

    def __init__(self, kind: SourceErrorKind, message: str, *, path: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown SourceError kind {kind!r}")
        # Keep it to one line whatever SQLite put in the message.
        message = " ".join(message.split())
        super().__init__(message)
        self.kind: SourceErrorKind = kind
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"SourceError(kind={self.kind!r}, message={self.message!r})"
