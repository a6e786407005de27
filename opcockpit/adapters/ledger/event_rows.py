"""The event ledger's rows: events -> the tuples `EventLog` inserts, integer times, the subject
indexes' day bucket, and the insert itself (multi-row on SQLite). Split from `events.py` so that
module keeps the schema, the store and its queries.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import to_json

from opcockpit.adapters.ledger.backend import LedgerDb, SqliteDb
from opcockpit.domain.events import Event
from opcockpit.domain.secrets import scrub

__all__ = [
    "DAY_SQL", "DAY_US", "EPOCH", "INSERT", "day_of", "day_range", "from_us", "insert_rows", "rows_of",
    "to_us",
]  # fmt: skip

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
DAY_US = 86_400_000_000
# The subject indexes' day bucket, spelled exactly as in events.MIGRATIONS[2] (an expression index is
# used only for the same expression).
DAY_SQL = f"observed_us / {DAY_US}"
INSERT = (
    "INSERT INTO events(type, observed_us, occurred_us, source, lease_id, instance_id, thread_id,"
    " provider, body, idem_key) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"
)


INSERT_CHUNK = 500  # rows per multi-row INSERT on SQLite (5000 variables; the limit is checked)


@functools.lru_cache(maxsize=8)
def multi_insert(n: int) -> str:
    """One INSERT of `n` rows (the full chunks share one text: SQLite's statement cache hits)."""
    head, tail = INSERT.split(" VALUES ")
    marks = tail.removesuffix(" ON CONFLICT DO NOTHING")
    return f"{head} VALUES {','.join([marks] * n)} ON CONFLICT DO NOTHING"


def insert_rows(conn: LedgerDb, rows: list[tuple[Any, ...]]) -> int:
    """Insert `rows`; the number stored (a key already held is skipped). SQLite: multi-row
    INSERTs of up to 500 rows, ~30 % less CPU than one statement run per row (binding and the
    AUTOINCREMENT bookkeeping happen per statement). PostgreSQL: psycopg's pipelined executemany."""
    if not isinstance(conn, SqliteDb) or len(rows) < 2:
        return conn.executemany(INSERT, rows)
    per = max(1, min(INSERT_CHUNK, conn.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 10))
    stored = 0
    for i in range(0, len(rows), per):
        chunk = rows[i : i + per]
        stored += int(conn.conn.execute(multi_insert(len(chunk)), [v for r in chunk for v in r]).rowcount)
    return stored


def to_us(dt: datetime) -> int:
    """Microseconds since the epoch (naive = UTC). Exact: a timedelta floor-divided by one
    microsecond is an int computed in C (a true division would go through a float)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - EPOCH) // ONE_US


def from_us(us: int | None) -> datetime | None:
    return None if us is None else EPOCH + timedelta(microseconds=us)


def day_of(us: int) -> int:
    """The subject indexes' day bucket of a time: SQL's integer division, which truncates toward
    zero on both backends (Python's // floors)."""
    return us // DAY_US if us >= 0 else -(-us // DAY_US)


def day_range(day: int) -> tuple[int, int]:
    """The first and last microsecond whose `_day` is `day` (day 0 spans both sides of 0)."""
    first = day * DAY_US if day > 0 else (day - 1) * DAY_US + 1
    last = (day + 1) * DAY_US - 1 if day >= 0 else day * DAY_US
    return first, last


def rows_of(events: Sequence[Event], keys: Sequence[str | None] | None) -> list[tuple[Any, ...]]:
    """The rows to insert, from already-typed events (no validation: they were validated when
    built). Bodies are serialised by pydantic's Rust serializer (the same JSON as before) and
    scrubbed of secrets in one pass over the batch: JSON escapes newlines, so the bodies joined by
    newlines split back exactly. Fields are read from the instance dict in one loop: an append
    of 10k events spent a third of its CPU building rows."""
    if keys is None:
        keys = (None,) * len(events)
    elif len(keys) != len(events):
        raise ValueError(f"{len(keys)} idempotency keys for {len(events)} events")
    if not events:
        return []
    heads: list[tuple[Any, ...]] = []
    bodies: list[str] = []
    epoch, one_us = EPOCH, ONE_US
    for e in events:
        f = e.__dict__  # pydantic keeps the field values here; attribute access costs more
        obs, occ = f["observed_at"], f["occurred_at"]
        heads.append((
            f["type"],
            (obs - epoch) // one_us if obs.tzinfo is UTC else to_us(obs),
            None if occ is None else (occ - epoch) // one_us if occ.tzinfo is UTC else to_us(occ),
            f["source"].value, f["lease_id"], f["instance_id"], f["thread_id"], f["provider"],
        ))  # fmt: skip
        body = {"before": f["before"], "after": f["after"], "data": f["data"]}
        bodies.append(to_json(body, fallback=str).decode())
    scrubbed = scrub("\n".join(bodies)).split("\n")
    return [(*h, b, k) for h, b, k in zip(heads, scrubbed, keys, strict=True)]
