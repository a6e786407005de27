"""LedgerWatch: webhook events written by `opcockpit serve` (another process) -> a running cockpit.

`opcockpit serve` appends each accepted webhook to the event ledger as a `provider.event` row.
A running cockpit follows the ledger's new rows by id (`EventLogPort.after(cursor)`: one query on
the primary key per tick, nothing read when nothing was appended; on SQLite not even that while
no other process committed, `EventLog.moved`), picks the `provider.event`
rows, asks the collector to look at the instances they name (`FleetCollector.look`: one GET each
instead of a full listing) and then calls `on_change` (the TUI's `request_refresh`), so an
accepted webhook is on screen within about a second.

The cursor starts after the newest row observed before the watch began: what was received
earlier is covered by the cockpit's first full listing. A catch-up after a long pause reads at
most `batch` rows per tick. The ledger never stops the fleet view: a failed read is kept in
`error` (one line) and retried on the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta

from opcockpit.domain.events import Event, EventQuery, ProviderEvent
from opcockpit.domain.text import error_line
from opcockpit.ports.ledger import EventLogPort

__all__ = ["LedgerWatch", "instances_named"]

Look = Callable[[str, Collection[str]], Awaitable[object]]
# Older than the watch's start (minus clock slack): the first full listing already covers it.
_SLACK = timedelta(seconds=5)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def instances_named(events: Sequence[Event], since: datetime | None = None) -> dict[str, set[str]]:
    """provider -> instance ids named by the `provider.event` rows (observed at/after `since`)."""
    found: dict[str, set[str]] = {}
    for e in events:
        if e.type != ProviderEvent.TYPE or not e.provider or not e.instance_id:
            continue
        if since is not None and e.observed_at < since:
            continue
        found.setdefault(e.provider, set()).add(e.instance_id)
    return found


class LedgerWatch:
    """Follow the ledger's new `provider.event` rows; look at their instances, then `on_change`."""

    def __init__(
        self,
        events: EventLogPort,
        *,
        look: Look | None,
        on_change: Callable[[frozenset[str]], object] | None = None,
        batch: int = 1000,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.events = events
        self.look = look
        self.on_change = on_change
        self.batch = max(1, batch)
        self.cursor: int | None = None  # last ledger row id read; None: not started yet
        self.error: str | None = None  # the last ledger failure, one line; None when fine
        self.seen = 0  # provider.event rows acted on (tests, diagnostics)
        self.looks = 0  # instances handed to `look`
        self._since = clock() - _SLACK
        self._lock = asyncio.Lock()
        self._caught_up = False  # the last read returned less than a batch
        self.skipped = 0  # polls answered by `moved()` alone: no thread, no query (tests)

    def quiet(self) -> bool:
        """Sure at once that a poll now would read nothing: caught up, and nothing committed by
        another process since the last look (SQLite's data_version, asked on this thread). Then
        no thread hop, no query, and the caller need not even start a task for `read` (issue 10:
        the poll runs every second). False when unsure, or when a read is running."""
        if self._lock.locked():
            return False
        moved = getattr(self.events, "moved", None)
        if moved is not None and moved() is False and self._caught_up:
            self.skipped += 1
            return True
        return False

    async def poll(self) -> int:
        """One tick: read the rows appended since the cursor; returns the instances looked at.
        Never raises (a ledger failure is `error`); ticks never overlap."""
        return 0 if self.quiet() else await self.read()

    async def read(self) -> int:
        """The poll's read, when `quiet()` was not sure (a data_version it moved is not asked
        again): the rows appended since the cursor; returns the instances looked at."""
        if self._lock.locked():
            return 0
        async with self._lock:
            self._caught_up = False  # until a read succeeds: a failed one is not skipped after
            try:
                fresh = await asyncio.to_thread(self._read)
            except Exception as exc:  # LedgerError: the ledger is unavailable; the screen goes on
                self.error = error_line(exc)
                return 0
            self.error = None
            named = instances_named(fresh, self._since)
            if not named:
                return 0
            self.seen += sum(1 for e in fresh if e.type == ProviderEvent.TYPE)
            n = 0
            for provider, ids in sorted(named.items()):
                if self.look is not None:
                    # a failed look only costs the shortcut: the refresh still runs
                    with contextlib.suppress(Exception):
                        await self.look(provider, frozenset(ids))
                n += len(ids)
            self.looks += n
            if self.on_change is not None:
                try:
                    result = self.on_change(frozenset(named))
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:  # a broken callback must not stop the watch
                    pass
            return n

    def _read(self) -> list[Event]:
        if self.cursor is None:
            # Start after the newest row observed before the watch began (one indexed query), so
            # a webhook received between the start and the first tick is not skipped.
            older = self.events.query(EventQuery(until=self._since, limit=1))
            self.cursor = max((e.id or 0 for e in older), default=0)
        rows = self.events.after(self.cursor, self.batch)
        self._caught_up = len(rows) < self.batch
        if rows:
            self.cursor = max(self.cursor, *(e.id or 0 for e in rows))
        return rows
