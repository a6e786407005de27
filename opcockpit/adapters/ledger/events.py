"""The append-only `events` table in the cockpit's ledger (component "events"), on either ledger
backend (a SQLite file by default, a team's PostgreSQL: `backend.LedgerDb`, same SQL).

One row per `domain.events.Event`. Subject keys and times are columns (indexed for the queries
`opcockpit events` makes); before/after/data are one JSON body. Times are integer microseconds
since the epoch (UTC): compact, and ordering/range scans are integer compares.

Indexes: (observed_us, type) serves `--since` (newest first: the index is walked backwards and
the LIMIT stops it early, so `--since 1h` over a million rows reads only the last hour's rows)
and the type filters (the type is tested in the index, no table reads). The lease and thread indexes lead with
the event's day, (day, lease_id|thread_id, observed_us): an append then writes only into today's
part of them instead of one page per subject all over the index (at 1M events a 10k append
wrote 35 MB of WAL, now 5 MB), and a subject's history is read one day at a time, newest day
first, one index seek per day that holds events. `--provider` walks the time index (a provider is
a large share of the rows, its own index cost every append more).

Durability: the event log's SQLite connection commits with synchronous=NORMAL under WAL (no fsync
per commit): an application crash loses nothing committed; a power loss or OS crash may undo the
transactions committed since the last checkpoint, and never corrupts the file.

Exactly once: an append may give each event an idempotency key (`idem_key`, UNIQUE where set; a
webhook's is `webhook:<provider>:<delivery id>`, see `adapters.webhooks.store`). A key already
stored is skipped inside the same transaction, so a writer that crashed after its commit and
before its caller heard of it cannot store the retried event twice.

`event_picture` holds the last picture the diff compared against (subject key -> JSON tuple), so
a cron `snapshot` diffs against the previous run. Pictures and events are written in the same
transaction: the stored picture never runs ahead of the events that explain it.

Retention (`EventsConfig`: days, max rows) runs every `compact_every` appended rows and on
`compact()`; deleted pages are reused by later appends (no VACUUM on the shared ledger file).
Every failure is `LedgerError`; a failed append is rolled back whole.

The rows themselves (events -> tuples, integer times, the day bucket, the multi-row insert)
are built in `event_rows.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from opcockpit.adapters.ledger.backend import LedgerDb, LedgerTarget, Statement, connect, migrate
from opcockpit.adapters.ledger.event_rows import (
    DAY_SQL,
    day_of,
    day_range,
    from_us,
    insert_rows,
    rows_of,
    to_us,
)
from opcockpit.adapters.ledger.sqlite import guarded
from opcockpit.domain.events import Event, EventQuery, EventsConfig, Picture, event_from_dict

__all__ = ["COMPONENT", "EventLog"]

COMPONENT = "events"
MIGRATIONS: list[list[Statement]] = [
    [
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            type TEXT NOT NULL,
            observed_us INTEGER NOT NULL,
            occurred_us INTEGER,
            source TEXT NOT NULL,
            lease_id TEXT,
            instance_id TEXT,
            thread_id TEXT,
            provider TEXT,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX idx_events_observed ON events(observed_us)",
        "CREATE INDEX idx_events_lease ON events(lease_id, observed_us) WHERE lease_id IS NOT NULL",
        "CREATE INDEX idx_events_thread ON events(thread_id, observed_us) WHERE thread_id IS NOT NULL",
        "CREATE INDEX idx_events_provider ON events(provider, observed_us) WHERE provider IS NOT NULL",
        "CREATE INDEX idx_events_type ON events(type, observed_us)",
        "CREATE TABLE event_picture (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        "CREATE TABLE event_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ],
    [
        # Exactly-once appends (issue 13): an event may carry an idempotency key (a webhook's
        # delivery id); a second append of the same key is skipped by the UNIQUE index, in the same
        # transaction as the insert, so no crash window can store it twice. Partial: the rows
        # without a key (almost all) write no index entry.
        "ALTER TABLE events ADD COLUMN idem_key TEXT",
        # Webhooks stored before this version get their key from their body (the first copy
        # only: the old delivery index could, after a crash, have let a retry in twice).
        (
            "UPDATE events SET idem_key = 'webhook:' || provider || ':'"
            " || json_extract(body, '$.data.delivery_key') WHERE id IN (SELECT MIN(id) FROM events"
            " WHERE type = 'provider.event' AND json_extract(body, '$.data.delivery_key') IS NOT NULL"
            " GROUP BY provider, json_extract(body, '$.data.delivery_key'))",
            "SELECT 1",  # PostgreSQL ledgers start at this version: nothing to backfill
        ),
        "CREATE UNIQUE INDEX idx_events_key ON events(idem_key) WHERE idem_key IS NOT NULL",
        # One index fewer written per row: a provider is a quarter of the rows, so `--provider`
        # walks the time index and filters as fast as its own index would.
        "DROP INDEX idx_events_provider",
    ],
    [
        # Issue 10: the lease and thread indexes lead with the event's day. Keyed by subject
        # alone, a 10k-event append touched a leaf page per lease all over the index (35 MB of
        # WAL at 1M events); by (day, subject) it touches only today's part (5 MB). A subject's
        # history is read day by day, newest first (`EventLog._select_by_day`).
        "CREATE INDEX idx_events_lease_day ON events((observed_us / 86400000000), lease_id, observed_us)"
        " WHERE lease_id IS NOT NULL",
        "CREATE INDEX idx_events_thread_day ON events((observed_us / 86400000000), thread_id, observed_us)"
        " WHERE thread_id IS NOT NULL",
        "DROP INDEX idx_events_lease",
        "DROP INDEX idx_events_thread",
    ],
    [
        # Issue 10: one time index carrying the type, (observed_us, type), instead of two. A type
        # filter walks it newest first and tests the type in the index (no table reads): with a
        # time window as fast as the (type, observed_us) index was; a rare type over a whole 1M
        # ledger reads the index (~0.1 s) instead of 9 ms. Every append writes one index fewer:
        # the type index took ~15 % of a 10k append's CPU (three insertion points, text keys).
        "CREATE INDEX idx_events_observed_type ON events(observed_us, type)",
        "DROP INDEX idx_events_type",
        "DROP INDEX idx_events_observed",
    ],
]
CACHE_KIB = 16 * 1024  # SQLite page cache of the event log's connection (filled only as used)
_COLS = "id, type, observed_us, occurred_us, source, lease_id, instance_id, thread_id, provider, body"


def _event(r: Sequence[Any]) -> Event:
    body = json.loads(r[9])
    return event_from_dict(
        {
            "id": r[0], "type": r[1], "observed_at": from_us(r[2]), "occurred_at": from_us(r[3]),
            "source": r[4], "lease_id": r[5], "instance_id": r[6], "thread_id": r[7],
            "provider": r[8], "before": body.get("before"), "after": body.get("after"),
            "data": body.get("data") or {},
        }
    )  # fmt: skip


class EventLog:
    """`ports.ledger.EventLogPort` on the ledger's backend (a SQLite file, or a team's PostgreSQL:
    `backend.LedgerDb`). Thread-safe (one connection behind a lock), opened lazily so building the
    cockpit never touches the ledger."""

    def __init__(
        self,
        path: str | os.PathLike[str] | LedgerTarget | None = None,
        config: EventsConfig | None = None,
    ) -> None:
        self._target = LedgerTarget.parse(path)  # resolved once: $OPCOCKPIT_LEDGER at build time
        self.config = config or EventsConfig()
        self._conn: LedgerDb | None = None
        self._lock = threading.Lock()
        self._since_compact = 0
        self._version: int | None = None  # data_version at the last moved() (SQLite)

    @property
    def path(self) -> str:
        """The ledger file or URL, password masked (for messages that must name it)."""
        return self._target.shown

    @property
    def target(self) -> LedgerTarget:
        return self._target

    def moved(self) -> bool | None:
        """Did another connection commit to the ledger since the last call? Answered at once, with
        no query and no thread (SQLite's data_version on this log's open connection, when its lock
        is free): True/False; None when it cannot say (PostgreSQL, not open yet, busy, an error,
        the first call), and the caller reads. A poll every second (LedgerWatch) then costs no
        thread hop and no query while nothing was written (issue 10, idle tick)."""
        conn = self._conn
        if conn is None or conn.kind != "sqlite" or not self._lock.acquire(blocking=False):
            return None
        try:
            version = conn.data_version()  # type: ignore[attr-defined]
        except Exception:
            return None
        finally:
            self._lock.release()
        before, self._version = self._version, version
        return None if before is None else version != before

    def _db(self) -> LedgerDb:
        if self._conn is None:
            conn = connect(self._target)
            try:
                if conn.kind == "sqlite":
                    # A 10k-row append dirties index pages all over a big ledger; with SQLite's 2 MB
                    # default they spill to the WAL mid-transaction and are written again at commit.
                    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
                    # WAL + NORMAL: a commit does not wait for fsync (the WAL is synced at each
                    # checkpoint). Durability: an application crash loses nothing committed; a
                    # power loss or OS crash may lose the last transactions since the last
                    # checkpoint, and never corrupts the file. This connection only: the audit
                    # log keeps FULL (no action without its audit row on disk).
                    conn.execute("PRAGMA synchronous = NORMAL")
                migrate(conn, COMPONENT, MIGRATIONS)
            except BaseException:
                conn.close()  # a ledger it cannot migrate: do not leak the connection
                raise
            self._conn = conn
        return self._conn

    # ------------------------------------------------------------------ writing

    @guarded
    def append(
        self,
        events: Sequence[Event],
        *,
        picture: Mapping[str, Any] | None = None,
        keys: Sequence[str | None] | None = None,
    ) -> int:
        """`keys` (parallel to `events`; None: no key): an event whose key is already in the
        ledger is skipped, and not counted in the return value (the number stored)."""
        if not events and not picture:
            return 0
        rows = rows_of(events, keys)
        return self._write(rows, events, picture, held=None)

    @guarded
    def append_new(self, events: Sequence[Event], keys: Sequence[str]) -> dict[str, Event]:
        """Append the events whose key the ledger does not hold yet, and return the stored event
        of every key it already held (one transaction: the check and the insert cannot be split
        by a crash or by another writer). A key repeated within `events` is stored once."""
        if not events:
            return {}
        held: dict[str, Event] = {}
        self._write(rows_of(events, keys), events, None, held=held)
        return held

    def _write(
        self,
        rows: list[tuple[Any, ...]],
        events: Sequence[Event],
        picture: Mapping[str, Any] | None,
        *,
        held: dict[str, Event] | None,
    ) -> int:
        with self._lock:
            conn = self._db()
            # One transaction: events and the picture they explain, or nothing. The lock (PostgreSQL;
            # SQLite's BEGIN IMMEDIATE is one already) makes ids commit in order across cockpits, so
            # a reader following `after(id)` never steps over a row that commits late.
            with conn.transaction(lock="events"):
                if held is not None:
                    held.update(self._held(conn, [r[9] for r in rows]))
                    rows = [r for r in rows if r[9] not in held]
                stored = insert_rows(conn, rows)
                if picture is not None:
                    self._store_picture(conn, picture)
            self._since_compact += stored
            due = self._since_compact >= self.config.compact_every
        if due:
            # The log's own time (its newest event), not the wall clock: a demo or a test with its
            # own clock keeps what it just wrote.
            self.compact(now=max(e.observed_at for e in events) if events else None)
        return stored

    @staticmethod
    def _held(conn: LedgerDb, keys: Sequence[str | None]) -> dict[str, Event]:
        wanted = sorted({k for k in keys if k is not None})
        out: dict[str, Event] = {}
        for i in range(0, len(wanted), 500):  # bounded IN lists (SQLite's variable limit)
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for r in conn.execute(f"SELECT {_COLS}, idem_key FROM events WHERE idem_key IN ({marks})", chunk):
                out[r[10]] = _event(r)
        return out

    @staticmethod
    def _store_picture(conn: LedgerDb, picture: Mapping[str, Any]) -> None:
        gone = [(k,) for k, v in picture.items() if v is None]
        put = [(k, json.dumps(list(v), default=str)) for k, v in picture.items() if v is not None]
        if gone:
            conn.executemany("DELETE FROM event_picture WHERE key = ?", gone)
        if put:
            conn.executemany(
                "INSERT INTO event_picture(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                put,
            )
        # A stored (even empty) picture means the next diff is not a baseline.
        conn.execute(
            "INSERT INTO event_meta(name, value) VALUES ('picture', '1')"
            " ON CONFLICT(name) DO UPDATE SET value = '1'"
        )

    @guarded
    def last_picture(self) -> Picture | None:
        with self._lock:
            conn = self._db()
            if conn.execute("SELECT 1 FROM event_meta WHERE name = 'picture'").fetchone() is None:
                return None
            rows = conn.execute("SELECT key, value FROM event_picture").fetchall()
        return {k: tuple(json.loads(v)) for k, v in rows}

    @guarded
    def compact(self, *, now: datetime | None = None) -> int:
        """Retention: rows older than `retention_days`, then the oldest beyond `max_rows`."""
        now = now or datetime.now(UTC)
        cutoff = to_us(now - timedelta(days=self.config.retention_days))
        with self._lock:
            conn = self._db()
            with conn.transaction():
                removed = conn.execute("DELETE FROM events WHERE observed_us < ?", (cutoff,)).rowcount
                if self._may_exceed(conn, self.config.max_rows):
                    # The count reads the smallest index (20 ms at 1M rows); the cut is found
                    # from the oldest end, walking only the rows that go (walking max_rows rows
                    # from the newest end read the table: 0.12 s).
                    excess = (
                        int(conn.execute("SELECT count(*) FROM events").fetchone()[0]) - self.config.max_rows
                    )
                    if excess > 0:
                        cut = conn.execute(
                            "SELECT id FROM events ORDER BY id LIMIT 1 OFFSET ?", (excess - 1,)
                        )
                        removed += conn.execute(
                            "DELETE FROM events WHERE id <= ?", (cut.fetchone()[0],)
                        ).rowcount
            self._since_compact = 0
        return int(removed)

    @staticmethod
    def _may_exceed(conn: LedgerDb, max_rows: int) -> bool:
        """False when the ledger surely holds at most `max_rows` rows: ids are distinct integers,
        so an id range no wider than `max_rows` cannot hold more. Two index seeks instead of a
        count (retention runs every 10k appended rows by default). Separate queries: SQLite
        seeks for a lone min() or max() only."""
        lo = conn.execute("SELECT min(id) FROM events").fetchone()[0]
        hi = conn.execute("SELECT max(id) FROM events").fetchone()[0]
        return lo is not None and int(hi) - int(lo) + 1 > max_rows

    # ------------------------------------------------------------------ reading

    @guarded
    def query(self, q: EventQuery) -> list[Event]:
        where, args = [], []
        for col, val in (
            ("lease_id", q.lease_id), ("thread_id", q.thread_id), ("provider", q.provider),
            ("instance_id", q.instance_id),
        ):  # fmt: skip
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if q.types:
            where.append(f"type IN ({','.join('?' * len(q.types))})")
            args.extend(q.types)
        lo = None if q.since is None else to_us(q.since)
        hi = None if q.until is None else to_us(q.until)
        limit = None if q.limit is None else max(0, int(q.limit))
        if q.min_per_lease is not None:  # the leases with that many matching events, in SQL
            inner, inner_args = _within([*where, "lease_id IS NOT NULL"], args, lo, hi)
            where.append(
                f"lease_id IN (SELECT lease_id FROM events WHERE {' AND '.join(inner)}"
                " GROUP BY lease_id HAVING count(*) >= ?)"
            )
            args = [*args, *inner_args, max(1, int(q.min_per_lease))]
        with self._lock:
            conn = self._db()
            if q.lease_id is None and q.thread_id is None:
                rows = self._select(conn, where, args, lo, hi, q.oldest_first, limit)
            else:
                rows = self._select_by_day(conn, where, args, lo, hi, q.oldest_first, limit)
        return [_event(r) for r in rows]

    @staticmethod
    def _select(
        conn: LedgerDb, where: list[str], args: list[Any], lo: int | None, hi: int | None,
        oldest_first: bool, limit: int | None,
    ) -> list[Any]:  # fmt: skip
        """One SELECT; `observed_us` bounds [lo, hi], ordered by time (ties by id)."""
        where, args = _within(where, args, lo, hi)
        order = "ASC" if oldest_first else "DESC"
        sql = f"SELECT {_COLS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY observed_us {order}, id {order}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return list(conn.execute(sql, args).fetchall())

    def _select_by_day(
        self, conn: LedgerDb, where: list[str], args: list[Any], lo: int | None, hi: int | None,
        oldest_first: bool, limit: int | None,
    ) -> list[Any]:  # fmt: skip
        """A lease's or thread's events through the day-bucketed subject indexes: one SELECT
        per day that holds any event, from the newest day (the oldest with `oldest_first`) until
        `limit` rows. Days partition time, so the days' rows in order are the rows in order."""
        out: list[Any] = []
        day_where = [*where, f"{DAY_SQL} = ?"]
        while limit is None or len(out) < limit:
            day = self._next_day(conn, lo, hi, oldest_first)
            if day is None:
                break
            first, last = day_range(day)
            rest = None if limit is None else limit - len(out)
            day_lo = first if lo is None else max(first, lo)
            day_hi = last if hi is None else min(last, hi)
            out += self._select(conn, day_where, [*args, day], day_lo, day_hi, oldest_first, rest)
            if oldest_first:
                lo = last + 1
            else:
                hi = first - 1
        return out

    @staticmethod
    def _next_day(conn: LedgerDb, lo: int | None, hi: int | None, oldest_first: bool) -> int | None:
        """The day of the newest (oldest) event in [lo, hi], by one seek in the time index."""
        where, args = _within([], [], lo, hi)
        sql = "SELECT observed_us FROM events" + (" WHERE " + " AND ".join(where) if where else "")
        sql += f" ORDER BY observed_us {'ASC' if oldest_first else 'DESC'} LIMIT 1"
        row = conn.execute(sql, args).fetchone()
        return None if row is None else day_of(int(row[0]))

    @guarded
    def after(self, last_id: int, limit: int = 1000) -> list[Event]:
        with self._lock:
            rows = (
                self._db()
                .execute(f"SELECT {_COLS} FROM events WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit))
                .fetchall()
            )
        return [_event(r) for r in rows]

    @guarded
    def by_key(self, key: str) -> Event | None:
        """The event stored under idempotency key `key` (None: none is)."""
        with self._lock:
            row = self._db().execute(f"SELECT {_COLS} FROM events WHERE idem_key = ?", (key,)).fetchone()
        return _event(row) if row else None

    @guarded
    def count(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT count(*) FROM events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                with contextlib.suppress(Exception):
                    conn.close()


def _within(where: list[str], args: list[Any], lo: int | None, hi: int | None) -> tuple[list[str], list[Any]]:
    """Copies of `where`/`args` with the `observed_us` bounds [lo, hi] (None: unbounded) added."""
    where, args = list(where), list(args)
    if lo is not None:
        where.append("observed_us >= ?")
        args.append(lo)
    if hi is not None:
        where.append("observed_us <= ?")
        args.append(hi)
    return where, args
