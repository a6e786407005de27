"""The PostgreSQL source's reader driven over a *blocking* psycopg connection, in one worker thread.

`read_pg_state(one_shot=True)` (the `snapshot` command) runs the very `PgSandboxReader` code, but
its awaits complete at once: `SyncSession` gives a blocking `psycopg.Connection` the few awaitable
methods the reader calls, and `sync_drive.drive` runs such a coroutine to its result. Why: psycopg's async
connection wakes the event loop for every chunk the socket delivers (~1,500 wake-ups, each a
Python-level generator step, for a 10k-lease snapshot: ~45 ms CPU of a ~130 ms read), while the
blocking connection waits for the whole result in C. The sandbox.db one-shot read does the same
(`sandbox_db.read_state_now`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

__all__ = ["SyncSession"]


@contextlib.asynccontextmanager
async def _at_once(cm: contextlib.AbstractContextManager[Any]) -> AsyncIterator[Any]:
    with cm as value:
        yield value


class _Cursor:
    __slots__ = ("_cur",)

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    async def fetchall(self) -> list[Any]:
        return self._cur.fetchall()  # type: ignore[no-any-return]

    async def fetchone(self) -> Any:
        return self._cur.fetchone()


class SyncSession:
    """The part of `psycopg.AsyncConnection` the PostgreSQL reader awaits, over a blocking
    `psycopg.Connection`: each call completes at once, in the calling thread."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    @property
    def closed(self) -> bool:
        return bool(self._conn.closed)

    @property
    def broken(self) -> bool:
        return bool(self._conn.broken)

    async def set_isolation_level(self, level: Any) -> None:
        self._conn.isolation_level = level

    async def set_read_only(self, value: bool) -> None:
        self._conn.read_only = value

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        return _Cursor(self._conn.execute(sql, params))

    def pipeline(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return _at_once(self._conn.pipeline())

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return _at_once(self._conn.transaction())

    async def close(self) -> None:
        self._conn.close()
