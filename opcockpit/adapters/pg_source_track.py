"""Change detection on the PostgreSQL source: read the reconcile input again only when it changed.

The polling form of `SandboxDbTracker` (sandbox.db's `PRAGMA data_version` has no PostgreSQL
twin a read-only role can use without a trigger). Each call runs ONE small query first, in a
read-only snapshot, whose answer is the tables' signature:

- per reconcile table (leases, terminals, chat sessions, resource snapshots): `count(*)` and the
  greatest of its LEON timestamp columns (`updated_at`, `observed_at`, `last_active_at`,
  `ended_at`, ...), so inserts, deletes and every LEON write (LEON stamps the row) are seen;
- plus `pg_stat_user_tables` n_tup_ins + n_tup_upd + n_tup_del of those tables, which also move
  on a write that forgets the timestamp (the server publishes them within about a second).

Same signature -> the previous DbState object is returned (no table read, the incremental
reconciler sees nothing changed). Different -> one full read in one snapshot. And a full read at
least every `resync_s` (safety net), and after any error or `invalidate()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from opcockpit.adapters.leon.dialect import Q
from opcockpit.adapters.leon.sandbox_rows import _LEASE_COLS, _SESSION_COLS, _SNAPSHOT_COLS, _TERMINAL_COLS
from opcockpit.adapters.pg_source import PgSandboxReader, PgSourceSpec
from opcockpit.domain.gcpause import gc_paused
from opcockpit.domain.models import DbState

__all__ = ["PgSourceTracker", "PgTrackerStats"]

DEFAULT_RESYNC_S = 300.0
_TABLES = (
    ("sandbox_leases", _LEASE_COLS, ("updated_at", "observed_at", "created_at")),
    ("abstract_terminals", _TERMINAL_COLS, ("updated_at", "created_at")),
    ("chat_sessions", _SESSION_COLS, ("last_active_at", "ended_at", "started_at")),
    ("lease_resource_snapshots", _SNAPSHOT_COLS, ("updated_at", "collected_at")),
)


@dataclass(slots=True)
class PgTrackerStats:
    full_reads: int = 0
    unchanged: int = 0  # calls answered by the signature alone
    last_resync_reason: str | None = None
    resync_reasons: list[str] = field(default_factory=list)


class PgSourceTracker:
    """A long-lived, change-detecting reader of the PostgreSQL source's reconcile input."""

    def __init__(
        self,
        spec: PgSourceSpec,
        *,
        resync_s: float = DEFAULT_RESYNC_S,
        local_tz: tzinfo | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.resync_s = resync_s
        self._tz = local_tz
        self._mono = monotonic
        self._reader: PgSandboxReader | None = None
        self._sig: Any = None
        self._state: DbState | None = None
        self._full_at = 0.0
        self._doubt: str | None = "first read"
        self.stats = PgTrackerStats()

    def invalidate(self, reason: str = "asked") -> None:
        self._doubt = reason

    async def aclose(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.close()

    async def read_state(self, *, now: datetime | None = None) -> DbState:
        if self._reader is None:
            self._reader = await PgSandboxReader(self.spec, local_tz=self._tz).open()
        try:
            return await self._read(self._reader, now)
        except BaseException:
            self._doubt = "error"  # the next call reads everything again
            raise

    async def _read(self, reader: PgSandboxReader, now: datetime | None) -> DbState:
        reason = self._doubt
        if reason is None and self._mono() - self._full_at >= self.resync_s:
            reason = "resync"
        schema_name = self.spec.schema
        with gc_paused():

            def build(s: Any) -> list[Any]:
                present = [(t, cols, ts) for t, cols, ts in _TABLES if s.has(t)]
                parts = []
                for t, _, ts in present:
                    stamps = ", ".join(f"{s.col(t, c)}::text" for c in ts)
                    # one scan per table for both its row count and its newest LEON timestamp
                    newest = f"coalesce(max(GREATEST({stamps})), '')"
                    parts.append(f"(SELECT count(*) || ' ' || {newest} FROM {t})")
                qs = [
                    Q("SELECT " + ", ".join(parts)),
                    Q(
                        "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
                        " WHERE schemaname = %s AND relname = ANY(%s) ORDER BY relname",
                        (schema_name, [t for t, _, _ in present]),
                    ),
                ]
                if reason is not None or self._state is None:
                    return qs + reader._state_queries(s)
                return qs

            schema, results = await reader._snapshot(build)
            sig = (tuple(results[0][0]), tuple(results[1]))
            if len(results) > 2:  # read in the same snapshot as its signature
                return await self._full(reader, schema, results[2:], sig, reason or "first read", now)
            if sig == self._sig and self._state is not None:
                self.stats.unchanged += 1
                return self._state
            schema, rows = await reader._snapshot(
                lambda s: [*build(s), *reader._state_queries(s)]  # signature again, same snapshot
            )
            sig = (tuple(rows[0][0]), tuple(rows[1]))
            return await self._full(reader, schema, rows[2:], sig, "changed", now)

    async def _full(
        self,
        reader: PgSandboxReader,
        schema: Any,
        rows: list[list[tuple]],
        sig: Any,
        reason: str,
        now: datetime | None,
    ) -> DbState:
        state = await reader._state(schema, *rows, now)
        self._sig, self._state, self._doubt = sig, state, None
        self._full_at = self._mono()
        self.stats.full_reads += 1
        self.stats.last_resync_reason = reason
        self.stats.resync_reasons.append(reason)
        del self.stats.resync_reasons[:-20]
        return state
