"""Run a coroutine that never suspends to its result: the one-shot readers (sandbox.db and
PostgreSQL, `snapshot`) run the very async reader code over a blocking connection whose awaits all
complete at once, in one worker thread (issue 9)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["drive"]

_T = TypeVar("_T")


def drive(coro: Coroutine[Any, Any, _T], what: str = "a blocking reader") -> _T:
    """`coro`'s result; RuntimeError (and the coroutine closed) if it awaited something that suspends."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError(f"{what} awaited something that suspends")
