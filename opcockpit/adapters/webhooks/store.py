"""Where accepted webhooks go: a durable delivery index (dedup by provider + delivery key) in
front of the cockpit's event ledger.

`DeliveryStore` is a small SQLite table (`webhook_deliveries`), one row per accepted delivery,
PRIMARY KEY (provider, key): `INSERT OR IGNORE` in one transaction makes "stored once" hold across
restarts and retries. `LedgerSink` composes it with the event ledger (`EventLogPort.append`):
claim the new keys, append their events, release the claims if the append fails (so the
sender's retry is stored, never lost). A crash between the ledger commit and the claim's commit
would store a retried delivery twice in the event ledger; an idempotency key on
`EventLogPort.append` would close that window (see docs/webhooks.md).

Blocking: the receiver calls these from one worker thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

__all__ = ["DeliveryStore", "EventAppender", "LedgerSink", "StoreError"]

_DDL = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    provider     TEXT NOT NULL,
    key          TEXT NOT NULL,
    body_sha256  TEXT NOT NULL,
    event_type   TEXT,
    instance_id  TEXT,
    lease_id     TEXT,
    event_json   TEXT NOT NULL,
    stored_at    TEXT NOT NULL,
    PRIMARY KEY (provider, key)
) WITHOUT ROWID;
"""


class StoreError(Exception):
    """The delivery store cannot be written (one line, names the file, never the body)."""


class EventAppender(Protocol):
    """The part of the event ledger the sink needs (`ports.ledger.EventLogPort` satisfies it)."""

    def append(self, events: Sequence[Any]) -> int | None: ...


class DeliveryStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_DDL)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"webhook store {self.path} is unusable: {exc}") from None

    def claim(self, events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Insert the events' deliveries that are new (one transaction); returns those events."""
        now = datetime.now(UTC).isoformat()
        fresh: list[Mapping[str, Any]] = []
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for ev in events:
                    d = ev["data"]
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO webhook_deliveries VALUES (?,?,?,?,?,?,?,?)",
                        (ev["provider"], d["delivery_key"], d["body_sha256"], d.get("event_type"),
                         ev.get("instance_id"), ev.get("lease_id"), json.dumps(ev, default=str), now),
                    )  # fmt: skip
                    if cur.rowcount == 1:
                        fresh.append(ev)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreError(f"webhook store {self.path}: {exc}") from None
        return fresh

    def release(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Forget claims whose events could not be appended (the sender's retry stores them)."""
        with self._lock:
            try:
                self._db.executemany(
                    "DELETE FROM webhook_deliveries WHERE provider = ? AND key = ?",
                    [(ev["provider"], ev["data"]["delivery_key"]) for ev in events],
                )
            except sqlite3.Error as exc:
                raise StoreError(f"webhook store {self.path}: {exc}") from None

    def body_sha(self, provider: str, key: str) -> str | None:
        """The stored body hash of a delivery (None: never stored)."""
        with self._lock:
            row = self._db.execute(
                "SELECT body_sha256 FROM webhook_deliveries WHERE provider = ? AND key = ?", (provider, key)
            ).fetchone()
        return row[0] if row else None

    def count(self, provider: str | None = None) -> int:
        sql, args = "SELECT count(*) FROM webhook_deliveries", ()
        if provider is not None:
            sql, args = sql + " WHERE provider = ?", (provider,)
        with self._lock:
            return int(self._db.execute(sql, args).fetchone()[0])

    def events(self, provider: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT event_json FROM webhook_deliveries", ()
        if provider is not None:
            sql, args = sql + " WHERE provider = ?", (provider,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY stored_at", args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock:
            self._db.close()


class LedgerSink:
    """`append(events) -> int`: dedup in the delivery store, then the event ledger (if any).

    `convert` turns the receiver's event dicts into the ledger's event objects (wiring passes
    `domain.events.event_from_dict`)."""

    def __init__(
        self,
        store: DeliveryStore,
        ledger: EventAppender | None = None,
        convert: Callable[[Mapping[str, Any]], Any] | None = None,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.convert = convert or (lambda ev: ev)

    def append(self, events: Sequence[Mapping[str, Any]]) -> int:
        fresh = self.store.claim(events)
        if fresh and self.ledger is not None:
            try:
                self.ledger.append([self.convert(ev) for ev in fresh])
            except Exception:
                self.store.release(fresh)
                raise
        return len(fresh)

    def known(self, provider: str, key: str) -> str | None:
        return self.store.body_sha(provider, key)

    def close(self) -> None:
        self.store.close()
        close = getattr(self.ledger, "close", None)
        if callable(close):
            close()
