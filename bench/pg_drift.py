"""Drift on the PostgreSQL source (issue 12 benches): the demo's sandbox.db drift, mirrored.

The demo's DriftSimulator writes LEON's way into sandbox.db only. Rather than a second drift
written for PostgreSQL (which could drift differently from what the SQLite benches see), this
mirrors sandbox.db's reconcile tables into the PostgreSQL copy made by
tests.test_pg_source.copy_fleet: each tick, when SQLite's `PRAGMA data_version` moved, every row
of those tables is compared with the previous tick's by primary key, and the rows that changed,
appeared or vanished are replaced in PostgreSQL in one transaction (DELETE by key + COPY, as
LEON's UPDATE would stamp them: the copied rows carry sandbox.db's own `updated_at`). So the PG
source sees the same writes, at most one tick later, and the cockpit's change detection on PG is
exercised by real LEON-shaped writes.

Whole-table comparison costs the mirror ~50 ms a changed tick at 10k leases; it runs in the fleet
server's process, whose CPU the steady bench reports apart from the cockpit's.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

# table -> its primary key (LEON's schema): the tables the PG source's reconcile input reads
MIRRORED = {
    "sandbox_leases": "lease_id",
    "sandbox_instances": "instance_id",
    "abstract_terminals": "terminal_id",
    "chat_sessions": "chat_session_id",
    "lease_resource_snapshots": "lease_id",
}

Rows = dict[str, tuple[Any, ...]]


class PgMirror:
    """sandbox.db -> PostgreSQL, by whole-row comparison per primary key; `start()` a thread."""

    def __init__(
        self, sqlite_path: Path, url: str, *, interval_s: float = 0.5, schema: str = "public"
    ) -> None:
        self.sqlite_path, self.url, self.interval_s, self.schema = sqlite_path, url, interval_s, schema
        self._src = sqlite3.connect(sqlite_path, check_same_thread=False)
        self._src.execute("PRAGMA busy_timeout = 5000")
        self._cols: dict[str, list[str]] = {}
        self._version: int | None = None
        self._prev: dict[str, Rows] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = self.rows_written = 0
        self.error: str | None = None

    def baseline(self) -> None:
        """The picture the PG copy starts from; call BEFORE copying (a write between the two is
        then seen by the first tick and re-applied: DELETE + COPY by key is idempotent)."""
        self._version = self._data_version()
        self._prev = self._read_all()

    def _data_version(self) -> int:
        return int(self._src.execute("PRAGMA data_version").fetchone()[0])

    def _read_all(self) -> dict[str, Rows]:
        out: dict[str, Rows] = {}
        with self._src:  # one read transaction: the tables agree with each other
            for table, key in MIRRORED.items():
                if table not in self._cols:
                    info = self._src.execute(f'PRAGMA table_info("{table}")').fetchall()
                    self._cols[table] = [r[1] for r in info]
                cols = self._cols[table]
                if not cols:
                    continue
                k = cols.index(key)
                collist = ", ".join(f'"{c}"' for c in cols)
                out[table] = {row[k]: row for row in self._src.execute(f'SELECT {collist} FROM "{table}"')}
        return out

    def tick(self, pg: Any) -> int:
        """Mirror what changed since the last tick; returns the number of rows written."""
        version = self._data_version()
        if version == self._version:
            return 0
        self._version = version
        now = self._read_all()
        written = 0
        with pg.transaction():
            for table, key in MIRRORED.items():
                old, new = self._prev.get(table, {}), now.get(table, {})
                changed = [k for k, row in new.items() if old.get(k) != row]
                gone = [k for k in old if k not in new]
                if not changed and not gone:
                    continue
                qualified = f'"{self.schema}"."{table}"'
                pg.execute(f'DELETE FROM {qualified} WHERE "{key}" = ANY(%s)', (changed + gone,))
                collist = ", ".join(f'"{c}"' for c in self._cols[table])
                with pg.cursor() as cur, cur.copy(f"COPY {qualified} ({collist}) FROM STDIN") as cp:
                    for k in changed:
                        cp.write_row(new[k])
                written += len(changed) + len(gone)
        self._prev = now
        self.ticks += 1
        self.rows_written += written
        return written

    def _loop(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True, application_name="bench-pg-drift") as pg:
                while not self._stop.wait(self.interval_s):
                    self.tick(pg)
        except Exception as exc:  # the bench reports it; the cockpit under test keeps running
            self.error = f"{type(exc).__name__}: {exc}"

    def start(self) -> PgMirror:
        self._thread = threading.Thread(target=self._loop, name="pg-drift", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._src.close()
