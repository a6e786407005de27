"""Audit log of operator actions, in the cockpit's own ledger (component "audit").

One row per attempted action on one target, refused and dry-run ones included: who (`$USER@host`),
when, what, on which target (provider, lease, instance, thread), the state before and after, the
result, the error and how long it took. The convergence that an action reaches later (converged /
failed / timed_out) is filled into the same row by `settle`.

An action that changes anything is written *before* it acts (`begin`: result "started", with
who/what/target/before) and completed once (`finish`: result, outcome, after, error, duration).
A row still "started" is an action that was interrupted or crashed mid-way: `opcockpit audit`
shows it as such. An action whose row cannot be begun does not run.

The log runs on either ledger backend (`backend.LedgerDb`): a SQLite file, or a team's
PostgreSQL where every operator's rows (who = `$USER@host`) land in one table.

Secrets never get here: the stored texts pass through `config.scrub` (every key the config loader
saw) and the adapters already redact their own messages; states are plain state words.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opcockpit.adapters.ledger.backend import LedgerDb, LedgerTarget, connect, migrate
from opcockpit.adapters.ledger.sqlite import guarded
from opcockpit.domain.secrets import scrub

__all__ = ["AuditEntry", "AuditLog", "list_audit"]  # the operator: wiring.operator_name

COMPONENT = "audit"
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            op_id TEXT NOT NULL,
            at TEXT NOT NULL,
            operator TEXT NOT NULL,
            action TEXT NOT NULL,
            provider TEXT,
            lease_id TEXT,
            instance_id TEXT,
            thread_id TEXT,
            before_json TEXT,
            after_json TEXT,
            result TEXT NOT NULL,
            outcome TEXT,
            error TEXT,
            duration_ms INTEGER,
            dry_run INTEGER NOT NULL DEFAULT 0,
            read_only INTEGER NOT NULL DEFAULT 0,
            convergence TEXT,
            settled_at TEXT
        )""",
        "CREATE INDEX idx_audit_at ON audit_log(at DESC)",
        "CREATE INDEX idx_audit_op ON audit_log(op_id)",
    ],
]
_TEXT_CHARS = 1000
STARTED = "started"  # result of a row written before its action; `finish` replaces it


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = scrub(" ".join(str(text).split()))
    return text if len(text) <= _TEXT_CHARS else text[: _TEXT_CHARS - 1] + "…"


def _dumps(value: Mapping[str, Any] | None) -> str | None:
    if value is None:
        return None
    return _clean(json.dumps(dict(value), default=str, sort_keys=True))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    op_id: str
    at: datetime
    operator: str
    action: str
    provider: str | None
    lease_id: str | None
    instance_id: str | None
    thread_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    result: str
    outcome: str | None
    error: str | None
    duration_ms: int | None
    dry_run: bool
    read_only: bool
    convergence: str | None
    settled_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "op_id": self.op_id,
            "at": self.at.isoformat(),
            "operator": self.operator,
            "action": self.action,
            "provider": self.provider,
            "lease_id": self.lease_id,
            "instance_id": self.instance_id,
            "thread_id": self.thread_id,
            "before": self.before,
            "after": self.after,
            "result": self.result,
            "outcome": self.outcome,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "dry_run": self.dry_run,
            "read_only": self.read_only,
            "convergence": self.convergence,
            "settled_at": self.settled_at.isoformat() if self.settled_at else None,
        }


_COLS = (
    "id, op_id, at, operator, action, provider, lease_id, instance_id, thread_id, before_json,"
    " after_json, result, outcome, error, duration_ms, dry_run, read_only, convergence, settled_at"
)


def _entry(r: tuple) -> AuditEntry:
    return AuditEntry(
        r[0], r[1], datetime.fromisoformat(r[2]), r[3], r[4], r[5], r[6], r[7], r[8],
        json.loads(r[9]) if r[9] else None, json.loads(r[10]) if r[10] else None,
        r[11], r[12], r[13], r[14], bool(r[15]), bool(r[16]), r[17],
        datetime.fromisoformat(r[18]) if r[18] else None,
    )  # fmt: skip


class AuditLog:
    """Append-only audit table in the ledger. Thread-safe (the connection is shared by a lock)."""

    def __init__(self, path: str | os.PathLike[str] | LedgerTarget | None = None) -> None:
        self._conn: LedgerDb | None = None
        self._path = path
        self._target = LedgerTarget.parse(path)  # resolved once: $OPCOCKPIT_LEDGER at build time
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        """The ledger file or URL, password masked (for messages that must name it)."""
        return self._target.shown

    @property
    def target(self) -> LedgerTarget:
        return self._target

    @guarded
    def check(self) -> None:
        """Raise unless an audit row could be written now (ledger opens, schema applies, and a
        write transaction can start). Nothing is written."""
        with self._lock:
            self._db().check_writable("audit_log")

    def _db(self) -> LedgerDb:
        if self._conn is None:
            conn = connect(self._target)
            try:
                migrate(conn, COMPONENT, MIGRATIONS)
            except BaseException:
                conn.close()  # a ledger it cannot migrate: do not leak the connection
                raise
            self._conn = conn
        return self._conn

    @guarded
    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @guarded
    def record(
        self,
        *,
        op_id: str,
        operator: str,
        action: str,
        result: str,
        provider: str | None = None,
        lease_id: str | None = None,
        instance_id: str | None = None,
        thread_id: str | None = None,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
        outcome: str | None = None,
        error: str | None = None,
        duration_ms: int | None = None,
        dry_run: bool = False,
        read_only: bool = False,
        at: datetime | None = None,
    ) -> int:
        when = (at or datetime.now(UTC)).astimezone(UTC).isoformat()
        with self._lock:
            conn = self._db()
            with conn.transaction():
                new_id = conn.insert_id(
                    "INSERT INTO audit_log (op_id, at, operator, action, provider, lease_id, instance_id,"
                    " thread_id, before_json, after_json, result, outcome, error, duration_ms, dry_run,"
                    " read_only) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        op_id, when, operator, action, provider, lease_id, instance_id, thread_id,
                        _dumps(before), _dumps(after), result, outcome, _clean(error), duration_ms,
                        int(dry_run), int(read_only),
                    ),
                )  # fmt: skip
            return new_id

    @guarded
    def begin(
        self,
        *,
        op_id: str,
        operator: str,
        action: str,
        provider: str | None = None,
        lease_id: str | None = None,
        instance_id: str | None = None,
        thread_id: str | None = None,
        before: Mapping[str, Any] | None = None,
        read_only: bool = False,
        at: datetime | None = None,
    ) -> int:
        """The row of an action about to change something: result "started" until `finish`."""
        return self.record(
            op_id=op_id, operator=operator, action=action, result=STARTED, provider=provider,
            lease_id=lease_id, instance_id=instance_id, thread_id=thread_id, before=before,
            read_only=read_only, at=at,
        )  # fmt: skip

    @guarded
    def finish(
        self,
        op_id: str,
        *,
        result: str,
        lease_id: str | None = None,
        thread_id: str | None = None,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
        outcome: str | None = None,
        error: str | None = None,
        duration_ms: int | None = None,
    ) -> bool:
        """Complete a row `begin` wrote (once: only a "started" row changes). False: no such row."""
        with self._lock:
            conn = self._db()
            with conn.transaction():
                cur = conn.execute(
                    "UPDATE audit_log SET result = ?, lease_id = COALESCE(?, lease_id),"
                    " thread_id = COALESCE(?, thread_id), before_json = COALESCE(?, before_json),"
                    " after_json = ?, outcome = ?, error = ?, duration_ms = ?"
                    " WHERE op_id = ? AND result = ?",
                    (
                        result, lease_id, thread_id, _dumps(before), _dumps(after), outcome,
                        _clean(error), duration_ms, op_id, STARTED,
                    ),
                )  # fmt: skip
            return cur.rowcount > 0

    @guarded
    def settle(self, op_id: str, convergence: str, *, at: datetime | None = None) -> None:
        """Record the convergence an action reached (once: a settled row is never changed)."""
        when = (at or datetime.now(UTC)).astimezone(UTC).isoformat()
        with self._lock:
            conn = self._db()
            with conn.transaction():
                conn.execute(
                    "UPDATE audit_log SET convergence = ?, settled_at = ?"
                    " WHERE op_id = ? AND convergence IS NULL",
                    (convergence, when, op_id),
                )

    @guarded
    def list(
        self, limit: int = 50, since: datetime | None = None, target: str | None = None
    ) -> list[AuditEntry]:
        """Newest first. `target` matches provider/instance, lease, instance or thread id (or a prefix)."""
        where: list[str] = []
        params: list[Any] = []
        if since is not None:
            if since.tzinfo is None:
                since = since.astimezone()
            where.append("at >= ?")
            params.append(since.astimezone(UTC).isoformat())
        if target:
            like = target.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append(
                "(lease_id LIKE ? ESCAPE '\\' OR instance_id LIKE ? ESCAPE '\\'"
                " OR thread_id LIKE ? ESCAPE '\\'"
                " OR (provider || '/' || instance_id) LIKE ? ESCAPE '\\')"
            )
            params += [like] * 4
        sql = f"SELECT {_COLS} FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit and limit > 0:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            rows = self._db().execute(sql, params).fetchall()
        return [_entry(r) for r in rows]


def list_audit(
    limit: int = 50,
    since: datetime | None = None,
    target: str | None = None,
    *,
    path: str | os.PathLike[str] | LedgerTarget | None = None,
) -> list[AuditEntry]:
    log = AuditLog(path)
    try:
        return log.list(limit, since, target)
    finally:
        log.close()
