"""Change detection on the PostgreSQL source: read the reconcile input again only when it changed,
and then only the rows that changed.

The polling form of `SandboxDbTracker` (sandbox.db's `PRAGMA data_version` has no PostgreSQL
twin a read-only role can use without a trigger). Each call runs ONE small query first, in a
read-only snapshot, whose answer is the tables' signature:

- per reconcile table (leases, terminals, chat sessions, resource snapshots): `count(*)` and the
  greatest of its LEON timestamp columns (`updated_at`, `observed_at`, `last_active_at`,
  `ended_at`, ...), so inserts, deletes and every LEON write (LEON stamps the row) are seen. The
  greatest is taken on the columns' own type (one index-free scan, no text made per row: ~7x less
  server time than comparing their text at 10k leases); only a table whose stamp columns differ in
  type compares them as text;
- plus `pg_stat_user_tables` n_tup_ins + n_tup_upd + n_tup_del of those tables, which also move
  on a write that forgets the timestamp (the server publishes them within seconds).

Same signature -> the previous DbState object is returned (no table read, the incremental
reconciler sees nothing changed). Different -> the changed rows only (the `updated_at`
watermark): per table, the rows stamped at or after the previous read's newest stamp minus
WINDOW (late commits with an older stamp), or with no stamp at all, in one snapshot with the
signature again. They replace their keys' rows in the kept copy (new keys appended); the records
of the rows that did not change are handed to the row builders as known, so only changed rows are
built and parsed. When the merged copy's row count is not the server's (a delete), a table's
stamps are not timestamps, or the previous read found bad rows: one full read instead. And a full
read at least every `resync_s` (safety net: it also catches a write that changed a row without
stamping it and without moving the row count), and after any error or `invalidate()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from typing import Any

from opcockpit.adapters.leon.dialect import Q
from opcockpit.adapters.leon.sandbox_rows import (
    _LEASE_COLS,
    _SESSION_COLS,
    _SNAPSHOT_COLS,
    _TERMINAL_COLS,
    _snapshots,
)
from opcockpit.adapters.pg_source import PgSandboxReader, PgSourceSpec
from opcockpit.adapters.pg_source_values import PgSchema
from opcockpit.domain.gcpause import gc_paused
from opcockpit.domain.models import DbState

__all__ = ["PgSourceTracker", "PgTrackerStats"]

DEFAULT_RESYNC_S = 300.0
# Rows stamped this long before the previous read's newest stamp are read again: a LEON write
# that committed after that read with an older stamp (a longer transaction) is still seen.
WINDOW = timedelta(seconds=60)
# (table, its columns: the first is its primary key, LEON's timestamp columns); the order is
# reader_base._state's (leases, terminals, sessions, resource snapshots).
_TABLES = (
    ("sandbox_leases", _LEASE_COLS, ("updated_at", "observed_at", "created_at")),
    ("abstract_terminals", _TERMINAL_COLS, ("updated_at", "created_at")),
    ("chat_sessions", _SESSION_COLS, ("last_active_at", "ended_at", "started_at")),
    ("lease_resource_snapshots", _SNAPSHOT_COLS, ("updated_at", "collected_at")),
)
_LEASE_AT = (0, _TERMINAL_COLS.index("lease_id"), _SESSION_COLS.index("lease_id"))  # per table's row


@dataclass(slots=True)
class PgTrackerStats:
    full_reads: int = 0
    unchanged: int = 0  # calls answered by the signature alone
    incremental: int = 0  # calls answered by reading the changed rows only
    rows_reread: int = 0  # rows those calls fetched
    last_resync_reason: str | None = None
    resync_reasons: list[str] = field(default_factory=list)


def _stamp(s: PgSchema, table: str, stamps: tuple[str, ...]) -> tuple[str, bool]:
    """(the row's newest stamp as SQL, comparable on its own type?): GREATEST needs one type."""
    present = [c for c in stamps if c in s.tables.get(table, ())]
    if not present:
        return "NULL::text", False
    types = {s.types.get(table, {}).get(c, "") for c in present}
    native = len(types) == 1 and next(iter(types)).startswith("timestamp")
    cols = [s.col(table, c) if native else f"{s.col(table, c)}::text" for c in present]
    return f"GREATEST({', '.join(cols)})", native


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
        self._rows: list[list[tuple]] = []  # the kept copy, per table, as the last read returned it
        self._present: list[str] = []  # the tables the signature covers, in its order
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

    def _sig_queries(self, s: PgSchema) -> list[Q]:
        present = [(t, ts) for t, _, ts in _TABLES if s.has(t)]
        self._present = [t for t, _ in present]
        # one scan per table for both its row count and its newest stamp; one row back
        parts = [
            f"(SELECT count(*), max({_stamp(s, t, ts)[0]}) FROM {t}) AS s{i}"
            for i, (t, ts) in enumerate(present)
        ]
        return [
            Q("SELECT * FROM " + ", ".join(parts)),
            Q(
                "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
                " WHERE schemaname = %s AND relname = ANY(%s) ORDER BY relname",
                (self.spec.schema, [t for t, _ in present]),
            ),
        ]

    async def _read(self, reader: PgSandboxReader, now: datetime | None) -> DbState:
        reason = self._doubt
        if reason is None and self._mono() - self._full_at >= self.resync_s:
            reason = "resync"
        with gc_paused():
            if reason is not None or self._state is None:
                schema, rows = await reader._snapshot(
                    lambda s: [*self._sig_queries(s), *reader._state_queries(s)]
                )
                return await self._full(
                    reader, schema, rows[2:], self._sig_of(rows), reason or "first read", now
                )
            schema, results = await reader._snapshot(self._sig_queries)
            sig = self._sig_of(results)
            if sig == self._sig:
                self.stats.unchanged += 1
                return self._state
            delta = await self._delta(reader, sig, now)
            if delta is not None:
                return delta
            schema, rows = await reader._snapshot(
                lambda s: [*self._sig_queries(s), *reader._state_queries(s)]  # signature again, same snapshot
            )
            return await self._full(reader, schema, rows[2:], self._sig_of(rows), "changed", now)

    def _sig_of(self, results: list[list[tuple]]) -> dict[str, tuple[Any, ...]]:
        """Per table: (row count, newest stamp, pg_stat's write counter)."""
        first, counters = results[0][0], dict(results[1])
        return {t: (first[2 * i], first[2 * i + 1], counters.get(t)) for i, t in enumerate(self._present)}

    async def _delta(
        self, reader: PgSandboxReader, seen: dict[str, tuple[Any, ...]], now: datetime | None
    ) -> DbState | None:
        """The changed rows of the tables whose signature moved (`seen` against the kept one),
        merged into the kept copy; None when only a full read can tell."""
        state, kept_sig = self._state, self._sig
        if state is None or state.problems or state.lease_problems or seen.keys() != kept_sig.keys():
            return None  # vetting replaced records (they no longer line up), or a table came or went
        moved = {t for t in seen if seen[t] != kept_sig[t]}

        def build(s: PgSchema) -> list[Q]:
            qs = self._sig_queries(s)
            for (t, cols, ts), q in zip(_TABLES, reader._state_queries(s), strict=True):
                if t not in moved:
                    qs.append(Q(reader.dialect.nothing, (), t, cols))  # kept as it is (or absent)
                    continue
                expr, native = _stamp(s, t, ts)
                since = kept_sig[t][1]
                if not native or not isinstance(since, datetime):
                    raise _NeedsFull
                qs.append(Q(f"{q.sql} WHERE {expr} >= %s OR {expr} IS NULL", (since - WINDOW,), t, cols))
            return qs

        try:
            schema, results = await reader._snapshot(build)
        except _NeedsFull:
            return None
        fresh_sig = self._sig_of(results)
        if fresh_sig.keys() != kept_sig.keys():
            return None
        merged: list[list[tuple]] = []
        changed: list[list[tuple[int, tuple]]] = []  # per table: (position in the copy, new row)
        fetched = 0
        for (table, _, _), rows, fresh in zip(_TABLES, self._rows, results[2:], strict=True):
            fetched += len(fresh)
            out, news = _merge(rows, fresh)
            if table in moved and len(out) != fresh_sig[table][0]:
                return None  # rows went away: only a full read knows which
            merged.append(out)
            changed.append(news)
        self.stats.rows_reread += fetched
        # A table not read keeps its old signature, so a write it took meanwhile shows next call.
        self._sig = {t: fresh_sig[t] if t in moved else kept_sig[t] for t in kept_sig}
        if not any(changed):
            self._rows = merged
            self.stats.unchanged += 1
            return state
        new = await self._patch(reader, schema, state, merged, changed, now)
        if new is None:
            return None
        self._state, self._rows = new, merged
        self.stats.incremental += 1
        return new

    async def _patch(
        self,
        reader: PgSandboxReader,
        schema: PgSchema,
        state: DbState,
        merged: list[list[tuple]],
        changed: list[list[tuple[int, tuple]]],
        now: datetime | None,
    ) -> DbState | None:
        """The new DbState with only the changed rows built (the others' records kept, tuples of
        an unchanged table the same object: the reconciler skips them), as the sandbox.db tracker's
        `_patch`; None when vetting found a problem (then the whole picture is vetted again)."""
        lease_rows = [r for _, r in changed[0]]
        # The leases of changed child rows go along, so their inherited problems would show.
        lids = {r[0] for r in lease_rows}
        wanted = {r[_LEASE_AT[i]] for i in (1, 2) for _, r in changed[i]} - lids
        extra = [r for r in merged[0] if r[0] in wanted] if wanted else []
        sub = await reader._state(
            schema, lease_rows + extra, [r for _, r in changed[1]], [r for _, r in changed[2]], [], now
        )
        made = (sub.leases[: len(lease_rows)], sub.terminals, sub.chat_sessions)
        if (
            sub.lease_problems
            or sub.problems
            or any(len(m) != len(c) for m, c in zip(made, changed, strict=False))
        ):
            return None
        tables: list[tuple[Any, ...]] = []
        for kept, recs, news, rows in zip(
            (state.leases, state.terminals, state.chat_sessions), made, changed, merged, strict=False
        ):
            if not news:
                tables.append(kept)
                continue
            if len(kept) > len(rows):
                return None  # not one record per row (cannot happen without problems; be sure)
            out = list(kept) + [None] * (len(rows) - len(kept))
            for (j, _), rec in zip(news, recs, strict=True):
                out[j] = rec
            tables.append(tuple(out))
        snapshots = state.resource_snapshots
        if changed[3]:
            snapshots = {**snapshots, **_snapshots([r for _, r in changed[3]], reader._parse)}
        return replace(
            state, read_at=sub.read_at, leases=tables[0], terminals=tables[1], chat_sessions=tables[2],
            resource_snapshots=snapshots,
        )  # fmt: skip

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
        self._sig, self._state, self._doubt, self._rows = sig, state, None, rows
        self._full_at = self._mono()
        self.stats.full_reads += 1
        self.stats.last_resync_reason = reason
        self.stats.resync_reasons.append(reason)
        del self.stats.resync_reasons[:-20]
        return state


class _NeedsFull(Exception):
    """A table whose stamps cannot bound a changed-rows read: read everything."""


def _merge(rows: list[tuple], fresh: list[tuple]) -> tuple[list[tuple], list[tuple[int, tuple]]]:
    """`fresh` rows replace their keys' rows (new keys appended); returns the copy and what moved."""
    if not fresh:
        return rows, []
    index = {r[0]: j for j, r in enumerate(rows)}
    out = list(rows)
    news: list[tuple[int, tuple]] = []
    for r in fresh:
        j = index.get(r[0])
        if j is None:
            index[r[0]] = j = len(out)
            out.append(r)
        elif out[j] == r:
            continue
        else:
            out[j] = r
        news.append((j, r))
    return out, news
