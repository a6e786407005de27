"""The ledger's backend seam: one small SQL surface over SQLite (the default) and PostgreSQL.

The stores (audit, alerts) write their SQL once, in SQLite's spelling with `?` placeholders and
TEXT timestamps (ISO-8601 UTC, so text order is time order in both). `LedgerDb` runs it on either
backend: PostgreSQL gets `%s` placeholders, `RETURNING id` for new ids, DDL translated by
`pg_ddl` (identity keys, BIGINT, TEXT COLLATE "C" so comparisons and LIKE prefixes behave as in
SQLite), `pg_advisory_xact_lock` where SQLite takes `BEGIN IMMEDIATE`, and NOTIFY on commit.

Targets: a path or `sqlite:PATH` -> SQLite; `postgresql://…` / `postgres://…` -> PostgreSQL.
`$OPCOCKPIT_LEDGER` may hold either. A URL is only ever shown through `redact_url`; every error
becomes `LedgerError(<redacted target>, <one line, scrubbed>)`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opcockpit.adapters.ledger.sqlite import LEDGER_ENV, default_ledger_path, is_db_error, open_ledger, reason
from opcockpit.domain.secrets import redact_url, remember_url
from opcockpit.ports.ledger import LedgerError

__all__ = [
    "LedgerDb",
    "LedgerTarget",
    "PgDb",
    "SqliteDb",
    "connect",
    "is_db_error",
    "is_pg_url",
    "migrate",
    "pg_ddl",
    "schema_status",
]

PG_SCHEMES = ("postgresql://", "postgres://")
NOTIFY_CHANNEL = "opcockpit_ledger"  # payload: "<component>:<what>", e.g. "alerts:ack:12"
CONNECT_TIMEOUT_S = 5


def is_pg_url(value: object) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(PG_SCHEMES)


@dataclass(frozen=True)
class LedgerTarget:
    """Where the ledger lives. `shown` is safe to print (a URL's password is masked)."""

    kind: str  # "sqlite" | "postgres"
    path: Path | None = None
    url: str | None = None

    @classmethod
    def parse(cls, value: str | os.PathLike[str] | LedgerTarget | None) -> LedgerTarget:
        if isinstance(value, LedgerTarget):
            return value
        if value is None:
            env = os.environ.get(LEDGER_ENV, "").strip()
            value = env if is_pg_url(env) else default_ledger_path()
        if is_pg_url(value):
            url = str(value).strip()
            remember_url(url)
            return cls("postgres", url=url)
        text = os.fspath(value)
        if text.startswith("sqlite:"):
            text = text[len("sqlite:") :].removeprefix("//")
        return cls("sqlite", path=Path(text).expanduser())

    @property
    def shown(self) -> str:
        return redact_url(self.url) if self.url is not None else str(self.path)

    def __str__(self) -> str:
        return self.shown

    def __repr__(self) -> str:  # never the password, even in a traceback's locals
        return f"LedgerTarget({self.kind}, {self.shown!r})"


# --------------------------------------------------------------------------- the SQL surface


class LedgerDb:
    """One connection to the ledger. Not thread-safe by itself: the stores hold a lock around it."""

    kind = "?"
    target: LedgerTarget

    @property
    def where(self) -> str:
        return self.target.shown

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run `sql` once per row; returns the rows changed in all (ON CONFLICT DO NOTHING: the
        ones actually inserted)."""
        raise NotImplementedError

    def insert_id(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT into a table with an `id` key and return the new id."""
        raise NotImplementedError

    def transaction(self, lock: str | None = None) -> contextlib.AbstractContextManager[None]:
        """All-or-nothing. `lock`: one writer at a time across processes for that name."""
        raise NotImplementedError

    def notify(self, payload: str) -> None:
        """Tell other cockpits on this ledger something changed (PostgreSQL: after commit)."""

    def check_writable(self, table: str) -> None:
        """Raise unless a row could be written to `table` now. Writes nothing."""
        raise NotImplementedError

    def tables(self) -> set[str]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SqliteDb(LedgerDb):
    kind = "sqlite"

    def __init__(self, conn: sqlite3.Connection, target: LedgerTarget) -> None:
        self.conn = conn
        self.target = target

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        return int(self.conn.executemany(sql, rows).rowcount) if rows else 0

    def insert_id(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self.conn.execute(sql, tuple(params)).lastrowid or 0)

    @contextlib.contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[None]:
        conn = self.conn
        if conn.in_transaction:  # nested: the outer one commits
            yield
            return
        conn.execute("BEGIN IMMEDIATE")  # the file's write lock up front: no upgrade deadlocks
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    def check_writable(self, table: str) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.rollback()

    def tables(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def data_version(self) -> int:
        """Changes when another connection commits to the file (PRAGMA data_version)."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        self.conn.close()


_TOKEN = re.compile(r"'(?:[^']|'')*'|\?|%")


@functools.lru_cache(maxsize=1024)
def to_pg(sql: str) -> str:
    """`?` -> `%s` and `%` -> `%%` outside SQL string literals (`'?'` stays a question mark).
    Cached: the stores' statements are a few hundred constant strings, run every refresh; a
    regex pass per call was redone for the same text each time."""

    def sub(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "?":
            return "%s"
        return tok.replace("%", "%%")  # psycopg reads % everywhere, literals included

    return _TOKEN.sub(sub, sql)


def pg_ddl(stmt: str) -> str:
    """SQLite DDL in the stores' spelling -> PostgreSQL with the same semantics."""
    out = stmt.replace(
        "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    )
    out = re.sub(r"\bINTEGER\b", "BIGINT", out)
    out = re.sub(r"\)\s*WITHOUT ROWID\s*$", ")", out)  # SQLite's storage hint; PostgreSQL has no rowid
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', out)


class PgDb(LedgerDb):
    """psycopg 3, autocommit outside explicit transactions (no idle-in-transaction sessions);
    a broken connection is replaced on the next call (reconnection is automatic)."""

    kind = "postgres"

    def __init__(self, target: LedgerTarget) -> None:
        self.target = target
        self._conn: Any = None
        self._connect()

    def _connect(self) -> Any:
        from opcockpit.adapters.lean_psycopg import psycopg

        assert self.target.url is not None
        self._conn = psycopg.connect(
            self.target.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
            application_name="opcockpit",
        )  # fmt: skip
        return self._conn

    @property
    def conn(self) -> Any:
        c = self._conn
        if c is None or c.closed or c.broken:
            if c is not None:
                with contextlib.suppress(Exception):
                    c.close()
            c = self._connect()
        return c

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(to_pg(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        with self.conn.cursor() as cur:
            cur.executemany(to_pg(sql), rows)  # pipelined: one round trip per batch, not per row
            return max(0, int(cur.rowcount))

    def insert_id(self, sql: str, params: Sequence[Any] = ()) -> int:
        row = self.execute(sql + " RETURNING id", params).fetchone()
        return int(row[0])

    @contextlib.contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[None]:
        conn = self.conn
        with conn.transaction():
            if lock is not None:
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"opcockpit:{lock}",))
            yield

    def notify(self, payload: str) -> None:
        self.conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, payload[:7000]))

    def check_writable(self, table: str) -> None:
        row = self.conn.execute(
            "SELECT pg_is_in_recovery(), has_table_privilege(%s, 'INSERT')", (table,)
        ).fetchone()
        if row[0]:
            raise LedgerError(self.where, "the PostgreSQL server is a read-only standby")
        if not row[1]:
            raise LedgerError(self.where, f"this role may not write to {table}")

    def tables(self) -> set[str]:
        return {
            r[0]
            for r in self.conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        }

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def connect(target: str | os.PathLike[str] | LedgerTarget | None) -> LedgerDb:
    """Open the ledger `target` (SQLite: created if missing). Raises LedgerError (one line)."""
    t = LedgerTarget.parse(target)
    if t.kind == "sqlite":
        return SqliteDb(open_ledger(t.path), t)
    try:
        return PgDb(t)
    except ImportError as exc:
        raise LedgerError(
            t.shown, "PostgreSQL ledger needs psycopg 3 (pip install 'psycopg[binary]')"
        ) from exc
    except Exception as exc:
        if is_db_error(exc):
            raise LedgerError(t.shown, f"cannot connect: {reason(exc)}") from None
        raise


# --------------------------------------------------------------------------- migrations

# A migration statement: one text (SQLite's spelling, translated by `pg_ddl`), or a pair
# (SQLite, PostgreSQL) where the two dialects differ beyond that (JSON functions, backfills).
Statement = str | tuple[str, str]

SCHEMA_TABLE = (
    "CREATE TABLE IF NOT EXISTS ledger_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)


def migrate(db: LedgerDb, component: str, migrations: Sequence[Sequence[Statement]]) -> int:
    """Apply `migrations[i]` for every version i+1 not yet applied, each version in one
    transaction (never half-applied), under the ledger's migration lock (two cockpits starting at
    once on PostgreSQL do not race). Returns the version now applied. Raises LedgerError."""
    try:
        return _migrate(db, component, migrations)
    except LedgerError:
        raise
    except Exception as exc:
        if is_db_error(exc):
            raise LedgerError(db.where, reason(exc)) from None
        raise


def spelled(stmt: Statement, pg: bool) -> str:
    """`stmt` in the backend's dialect."""
    if isinstance(stmt, tuple):
        return stmt[1] if pg else stmt[0]
    return pg_ddl(stmt) if pg else stmt


def _migrate(db: LedgerDb, component: str, migrations: Sequence[Sequence[Statement]]) -> int:
    pg = db.kind == "postgres"
    if "ledger_schema" in db.tables():  # the common case: nothing to apply, take no lock
        row = db.execute("SELECT version FROM ledger_schema WHERE component = ?", (component,)).fetchone()
        if row and row[0] >= len(migrations):
            return int(row[0])
    with db.transaction(lock="migrate"):
        db.execute(pg_ddl(SCHEMA_TABLE) if pg else SCHEMA_TABLE)
    current = 0
    for version, statements in enumerate(migrations, start=1):
        with db.transaction(lock="migrate"):
            row = db.execute("SELECT version FROM ledger_schema WHERE component = ?", (component,)).fetchone()
            current = row[0] if row else 0
            if version <= current:
                continue
            for stmt in statements:
                db.execute(spelled(stmt, pg))
            db.execute(
                "INSERT INTO ledger_schema(component, version) VALUES (?, ?) "
                "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                (component, version),
            )
            current = version
    return int(current)


def schema_status(db: LedgerDb) -> dict[str, int]:
    """component -> applied version ({} for a ledger nothing was applied to yet)."""
    if "ledger_schema" not in db.tables():
        return {}
    return {str(c): int(v) for c, v in db.execute("SELECT component, version FROM ledger_schema")}


# --------------------------------------------------------------------------- copy (sqlite -> postgres)

# (table, identity column or None) in an order that never breaks a reference: audit, alerts, the
# event ledger (with its idempotency keys and the stored picture), saved queries and their history.
COPY_TABLES: tuple[tuple[str, str | None], ...] = (
    ("audit_log", "id"),
    ("alerts", "id"),
    ("alert_acks", "seq"),
    ("alert_deliveries", None),
    ("alert_pending", None),
    ("alert_meta", None),
    ("events", "id"),
    ("event_picture", None),
    ("event_meta", None),
    ("saved_queries", None),
    ("query_history", "id"),
)


COPY_CHUNK = 5000


def _columns(db: LedgerDb, table: str) -> list[str]:
    cur = db.execute(f"SELECT * FROM {table} LIMIT 0")
    return [d[0] for d in cur.description]


def copy_ledger(
    src: LedgerDb, dst: LedgerDb, components: Sequence[tuple[str, Sequence[Sequence[Statement]]]]
) -> dict[str, int]:
    """Copy the ledger's tables (COPY_TABLES) from `src` into an empty `dst`, ids kept, in one destination
    transaction (all or nothing); both are migrated to the current versions first. Returns rows
    per table, checked by counting the destination. Raises LedgerError (one line)."""
    for name, migrations in components:
        migrate(src, name, migrations)
        migrate(dst, name, migrations)
    try:
        counts: dict[str, int] = {}
        with dst.transaction(lock="migrate"):
            for table, _ in COPY_TABLES:
                if dst.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]:
                    raise LedgerError(dst.where, f"{table} is not empty: copy only into a new ledger")
            for table, ident in COPY_TABLES:
                cols = _columns(src, table)
                insert = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                cur = src.execute(f"SELECT {', '.join(cols)} FROM {table}")
                counts[table] = 0
                # In chunks: an event ledger of a million rows is never all in memory at once.
                while chunk := [tuple(r) for r in cur.fetchmany(COPY_CHUNK)]:
                    dst.executemany(insert, chunk)
                    counts[table] += len(chunk)
                if ident is not None and dst.kind == "postgres" and counts[table]:
                    dst.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', '{ident}'),"
                        f" (SELECT MAX({ident}) FROM {table}))"
                    )
            for table, n in counts.items():
                got = dst.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                if got != n:
                    raise LedgerError(dst.where, f"{table}: copied {n} rows but found {got}")
        return counts
    except LedgerError:
        raise
    except Exception as exc:
        if is_db_error(exc):
            raise LedgerError(dst.where, reason(exc)) from None
        raise
