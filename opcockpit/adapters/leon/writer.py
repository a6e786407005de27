"""The ONLY place opcockpit writes to LEON's sandbox.db: for an operator action, and (opt-in,
`[serve] leon_provider_events`) LEON's webhook log for webhooks `opcockpit serve` accepted.

Writes the way LEON's `SQLiteLease.apply` / `LeaseStore.adopt_instance` do (leon-sandbox-db.md
§3.3, §4.4), so LEON keeps working on the file afterwards:
- a separate read-write connection per action (`mode=rw`: never creates the file, never runs DDL
  or journal pragmas), closed when the action's transaction ends;
- `BEGIN IMMEDIATE` with a busy timeout: another writer holding the DB gives a clear `locked`
  error and nothing is written (every write is one transaction: lease snapshot + one
  `lease_events` row, or nothing);
- timestamps as LEON writes them: naive local `datetime.now().isoformat()`;
- `version` +1 on every write, `instance_status` mirrors `observed_state` where the column exists
  (older schemas lack it), Mycel's extra lease columns are left NULL.

An action is two transactions: the intent (desired_state, before the provider call) and the
outcome (observed state on success; last_error/needs_refresh on failure). LEON does both in one
apply() after the provider call; writing the intent first means a crash between the two leaves
the operator's intent visible to LEON (desired != observed), never a silent provider change.
On failure desired_state is put back to what it was (LEON leaves desired unchanged when an
intent fails), unless someone else changed it meanwhile.

Sync sqlite3 (short transactions); async callers use `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from opcockpit.ports.leon import WriteError, WriteErrorKind  # re-exported: the port owns them

__all__ = [
    "ACTION_DESIRED",
    "AdoptRecord",
    "IntentRecord",
    "LeaseSnapshot",
    "LeonWriter",
    "ProviderEventRow",
    "WriteError",
    "WriteErrorKind",
    "check_invariants",
    "cockpit_source",
]

ACTION_DESIRED: dict[str, str] = {"pause": "paused", "resume": "running", "destroy": "destroyed"}
_SUCCESS_OBSERVED: dict[str, str] = {"pause": "paused", "resume": "running", "destroy": "detached"}
_ERROR_CHARS = 500  # LEON truncates last_error to 500 chars
DEFAULT_BUSY_TIMEOUT_S = 5.0

# The leonai DDL columns LEON's REQUIRED_LEASE_COLUMNS check relies on (instance_status is the one
# additive migration: older schemas lack it and LEON adds it on open).
REQUIRED_LEASE_COLUMNS = (
    "lease_id", "provider_name", "workspace_key", "current_instance_id", "instance_created_at",
    "desired_state", "observed_state", "version", "observed_at", "last_error", "needs_refresh",
    "refresh_hint_at", "status", "created_at", "updated_at",
)  # fmt: skip
REQUIRED_INSTANCE_COLUMNS = (
    "instance_id", "lease_id", "provider_session_id", "status", "created_at", "last_seen_at",
)  # fmt: skip
REQUIRED_EVENT_COLUMNS = (
    "event_id",
    "lease_id",
    "event_type",
    "source",
    "payload_json",
    "error",
    "created_at",
)


def cockpit_source(operator: str) -> str:
    """The `lease_events.source` naming the cockpit and the operator, e.g. 'opcockpit:alice@host'."""
    return f"opcockpit:{operator}"


def new_event_id() -> str:
    return f"evt-{uuid.uuid4().hex}"


def _local_now() -> datetime:
    return datetime.now()


@dataclass(frozen=True, slots=True)
class LeaseSnapshot:
    """The lease columns an action looks at, as stored (strings, no parsing)."""

    lease_id: str
    provider_name: str
    current_instance_id: str | None
    desired_state: str
    observed_state: str
    status: str | None
    version: int
    needs_refresh: int
    last_error: str | None
    instance_status: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "lease_id": self.lease_id,
            "provider": self.provider_name,
            "instance_id": self.current_instance_id,
            "desired_state": self.desired_state,
            "observed_state": self.observed_state,
            "status": self.status,
            "version": self.version,
            "needs_refresh": self.needs_refresh,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class IntentRecord:
    lease_id: str
    action: str
    instance_id: str | None
    event_id: str
    prior_desired: str
    before: LeaseSnapshot
    after: LeaseSnapshot


@dataclass(frozen=True, slots=True)
class AdoptRecord:
    lease_id: str
    provider_name: str
    instance_id: str
    desired_state: str
    observed_state: str
    event_id: str
    terminal_id: str | None
    pointer_created: bool
    after: LeaseSnapshot


@dataclass(frozen=True, slots=True)
class ProviderEventRow:
    """One webhook for LEON's `provider_events` table."""

    provider_name: str
    instance_id: str
    event_type: str | None
    payload: Mapping[str, Any]
    matched_lease_id: str | None


class LeonWriter:
    """Operator-action writes to one sandbox.db. Construct per action or keep one; it holds no
    connection between calls. `read_only=True` refuses every call (defence in depth)."""

    def __init__(
        self,
        path: str,
        *,
        operator: str,
        read_only: bool = False,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.path = str(path)
        self.operator = operator
        self.source = cockpit_source(operator)
        self.read_only = read_only
        self.busy_timeout_s = busy_timeout_s
        self._clock = clock or _local_now

    def __repr__(self) -> str:
        return f"LeonWriter(path={self.path!r}, read_only={self.read_only})"

    # ------------------------------------------------------------------ plumbing

    def _now(self) -> str:
        return self._clock().isoformat()

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """One connection, one BEGIN IMMEDIATE ... COMMIT; rollback (and a WriteError) otherwise."""
        if self.read_only:
            raise WriteError("read_only", f"read-only mode: refusing to {what} (no write to sandbox.db)")
        uri = "file:" + quote(self.path, safe="/") + "?mode=rw"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._map(exc, what) from None
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            conn.close()
            raise self._map(exc, what) from None
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._map(exc, what) from None
            raise
        finally:
            conn.close()

    def _map(self, exc: sqlite3.Error, what: str) -> WriteError:
        name = getattr(exc, "sqlite_errorname", "") or ""
        low = str(exc).lower()
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in low or "busy" in low:
            return WriteError(
                "locked",
                f"sandbox.db at {self.path} is locked by another writer (waited {self.busy_timeout_s:g}s); "
                f"could not {what}; nothing was written, retry when LEON (or the other writer) is done",
            )
        if isinstance(exc, sqlite3.IntegrityError):
            return WriteError("integrity", f"could not {what}: {exc}; nothing was written")
        if "unable to open" in low or name.startswith("SQLITE_CANTOPEN"):
            return WriteError("missing", f"sandbox.db at {self.path} cannot be opened for writing ({exc})")
        if "readonly" in low or name.startswith(("SQLITE_READONLY", "SQLITE_PERM")):
            return WriteError(
                "io", f"sandbox.db at {self.path} is not writable by this user ({exc}); nothing was written"
            )
        return WriteError("io", f"could not {what} in sandbox.db at {self.path}: {exc}; nothing was written")

    @staticmethod
    def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
        return {r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')}

    def _check_schema(self, conn: sqlite3.Connection, *, terminals: bool = False) -> set[str]:
        """Fail loudly like LEON's REQUIRED_*_COLUMNS; return the lease columns present."""
        needs: list[tuple[str, Sequence[str]]] = [
            ("sandbox_leases", REQUIRED_LEASE_COLUMNS),
            ("sandbox_instances", REQUIRED_INSTANCE_COLUMNS),
            ("lease_events", REQUIRED_EVENT_COLUMNS),
        ]
        if terminals:
            needs.append(("abstract_terminals", ("terminal_id", "thread_id", "lease_id", "cwd")))
            needs.append(
                ("thread_terminal_pointers", ("thread_id", "active_terminal_id", "default_terminal_id"))
            )
        lease_cols: set[str] = set()
        for table, required in needs:
            cols = self._columns(conn, table)
            if not cols:
                raise WriteError(
                    "schema", f"sandbox.db at {self.path} has no {table} table; refusing to write"
                )
            missing = [c for c in required if c not in cols]
            if missing:
                raise WriteError(
                    "schema",
                    f"{table} schema mismatch: missing {missing}; not a LEON schema opcockpit writes to",
                )
            if table == "sandbox_leases":
                lease_cols = cols
        return lease_cols

    @staticmethod
    def _read(conn: sqlite3.Connection, lease_id: str, cols: set[str]) -> LeaseSnapshot | None:
        inst_status = "instance_status" if "instance_status" in cols else "NULL"
        row = conn.execute(
            "SELECT lease_id, provider_name, current_instance_id, desired_state, observed_state, status, "
            f"version, needs_refresh, last_error, {inst_status} FROM sandbox_leases WHERE lease_id = ?",
            (lease_id,),
        ).fetchone()
        if row is None:
            return None
        return LeaseSnapshot(
            row[0], row[1], row[2], row[3], row[4], row[5], int(row[6] or 0), int(row[7] or 0), row[8], row[9]
        )

    def _event(
        self,
        conn: sqlite3.Connection,
        lease_id: str,
        event_type: str,
        payload: dict[str, Any],
        *,
        source: str | None = None,
        error: str | None = None,
        event_id: str | None = None,
    ) -> str:
        eid = event_id or new_event_id()
        conn.execute(
            "INSERT INTO lease_events (event_id, lease_id, event_type, source, payload_json, error,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (eid, lease_id, event_type, source or self.source, json.dumps(payload), error, self._now()),
        )
        return eid

    # ------------------------------------------------------------------ reads (inside our own tx)

    def lease(self, lease_id: str) -> LeaseSnapshot | None:
        """Read one lease through a read-only connection (no lock taken beyond a read)."""
        uri = "file:" + quote(self.path, safe="/") + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout_s)
        except sqlite3.Error as exc:
            raise self._map(exc, "read the lease") from None
        try:
            return self._read(conn, lease_id, self._columns(conn, "sandbox_leases"))
        except sqlite3.Error as exc:
            raise self._map(exc, "read the lease") from None
        finally:
            conn.close()

    # ------------------------------------------------------------------ LEON's webhook log

    def record_provider_events(self, rows: Sequence[ProviderEventRow]) -> int:
        """LEON's `provider_events` rows for webhooks the cockpit accepted, as LEON's own receiver
        writes them (leon-sandbox-db.md §5: event_type = payload.event or payload.type or
        "unknown", the payload as JSON, `matched_lease_id` NULL when nothing matched, naive local
        `created_at`), in one transaction. Returns the rows written: 0 when the table does not
        exist (LEON creates it on its first webhook; the cockpit runs no DDL on sandbox.db)."""
        if not rows:
            return 0
        with self._transaction("record provider events") as conn:
            if not self._columns(conn, "provider_events"):
                return 0
            now = self._now()
            conn.executemany(
                "INSERT INTO provider_events (provider_name, instance_id, event_type, payload_json,"
                " matched_lease_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(r.provider_name, r.instance_id, r.event_type or "unknown", json.dumps(dict(r.payload)),
                  r.matched_lease_id, now) for r in rows],
            )  # fmt: skip
        return len(rows)

    # ------------------------------------------------------------------ intent / outcome

    def write_intent(
        self,
        lease_id: str,
        action: str,
        *,
        expect_instance_id: str | None,
        payload: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> IntentRecord:
        """desired_state, version+1, observed_at/updated_at + `intent.<action>` event, atomically.

        Refuses (conflict) when the lease is gone or no longer bound to `expect_instance_id`:
        the check runs inside the write transaction, so LEON cannot rebind in between.
        """
        desired = ACTION_DESIRED[action]
        with self._transaction(f"write intent.{action} for {lease_id}") as conn:
            cols = self._check_schema(conn)
            before = self._read(conn, lease_id, cols)
            if before is None:
                raise WriteError("conflict", f"lease {lease_id} no longer exists; nothing was written")
            if before.current_instance_id != expect_instance_id:
                raise WriteError(
                    "conflict",
                    f"lease {lease_id} is now bound to {before.current_instance_id or 'no instance'}, "
                    f"not {expect_instance_id or 'no instance'}; nothing was written",
                )
            now = self._now()
            conn.execute(
                "UPDATE sandbox_leases SET desired_state = ?, version = version + 1, observed_at = ?,"
                " updated_at = ? WHERE lease_id = ?",
                (desired, now, now, lease_id),
            )
            eid = self._event(
                conn, lease_id, f"intent.{action}", _payload(payload, expect_instance_id), event_id=event_id
            )
            after = self._read(conn, lease_id, cols)
            assert after is not None
        return IntentRecord(lease_id, action, expect_instance_id, eid, before.desired_state, before, after)

    def record_success(
        self,
        intent: IntentRecord,
        *,
        outcome: str = "done",
        payload: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> LeaseSnapshot:
        """LEON's success effect (§3.3) + an `observe.status` event with the new observed state."""
        action, lease_id, iid = intent.action, intent.lease_id, intent.instance_id
        observed = _SUCCESS_OBSERVED[action]
        with self._transaction(f"record the {action} outcome for {lease_id}") as conn:
            cols = self._check_schema(conn)
            cur = self._read(conn, lease_id, cols)
            if cur is None:
                raise WriteError(
                    "conflict", f"lease {lease_id} vanished before its {action} outcome was recorded"
                )
            if cur.current_instance_id != iid:
                raise WriteError(
                    "conflict",
                    f"lease {lease_id} was rebound to {cur.current_instance_id or 'no instance'} during the "
                    f"{action}; outcome not recorded (LEON will observe the new instance)",
                )
            now = self._now()
            sets = ["observed_state = ?", "last_error = NULL", "needs_refresh = 0", "observed_at = ?",
                    "updated_at = ?", "version = version + 1"]  # fmt: skip
            params: list[Any] = [observed, now, now]
            if "instance_status" in cols:
                sets.append("instance_status = ?")
                params.append(observed)
            if action == "destroy":
                sets += ["current_instance_id = NULL", "status = 'expired'"]
            else:
                sets.append("status = 'active'")
            conn.execute(
                f"UPDATE sandbox_leases SET {', '.join(sets)} WHERE lease_id = ?", (*params, lease_id)
            )
            if iid is not None:
                if action == "destroy":
                    conn.execute(
                        "UPDATE sandbox_instances SET status = 'stopped', last_seen_at = ?"
                        " WHERE instance_id = ?",
                        (now, iid),
                    )
                else:
                    _upsert_instance(conn, iid, lease_id, observed, now)
            body = {"status": observed, "instance_id": iid, "after": f"intent.{action}", "outcome": outcome}
            body.update(payload or {})
            self._event(conn, lease_id, "observe.status", body, event_id=event_id)
            after = self._read(conn, lease_id, cols)
            assert after is not None
        return after

    def record_failure(
        self,
        intent: IntentRecord,
        message: str,
        *,
        payload: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> LeaseSnapshot:
        """LEON's failure effect: last_error[:500], needs_refresh=1, refresh_hint_at, observed_at,
        version+1 and an `intent.<action>` event with error=<message>; desired_state goes back to
        its value before our intent (unless changed meanwhile), observed_state is untouched."""
        return self._record_error(intent, message, rollback=True, payload=payload, event_id=event_id)

    def record_unknown(
        self,
        intent: IntentRecord,
        message: str,
        *,
        payload: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> LeaseSnapshot:
        """The provider call's outcome is unknown (its answer was lost and a read back failed):
        LEON's error fields (last_error, needs_refresh=1 so LEON probes before trusting the row,
        version+1, an `intent.<action>` event with the error), but desired_state is NOT rolled
        back: the provider may well have acted."""
        return self._record_error(intent, message, rollback=False, payload=payload, event_id=event_id)

    def _record_error(
        self,
        intent: IntentRecord,
        message: str,
        *,
        rollback: bool,
        payload: dict[str, Any] | None,
        event_id: str | None,
    ) -> LeaseSnapshot:
        action, lease_id = intent.action, intent.lease_id
        error = message[:_ERROR_CHARS]
        what = "failure" if rollback else "unknown outcome"
        # Without a rollback, desired_state is set to itself (the CASE never matches).
        undo = intent.prior_desired if rollback else ACTION_DESIRED[action]
        with self._transaction(f"record the {action} {what} for {lease_id}") as conn:
            cols = self._check_schema(conn)
            if self._read(conn, lease_id, cols) is None:
                raise WriteError(
                    "conflict", f"lease {lease_id} vanished before its {action} {what} was recorded"
                )
            now = self._now()
            conn.execute(
                "UPDATE sandbox_leases SET last_error = ?, needs_refresh = 1, refresh_hint_at = ?,"
                " observed_at = ?, updated_at = ?, version = version + 1,"
                " desired_state = CASE WHEN desired_state = ? THEN ? ELSE desired_state END"
                " WHERE lease_id = ?",
                (error, now, now, now, ACTION_DESIRED[action], undo, lease_id),
            )
            self._event(
                conn, lease_id, f"intent.{action}", _payload(payload, intent.instance_id), error=error,
                event_id=event_id,
            )  # fmt: skip
            after = self._read(conn, lease_id, cols)
            assert after is not None
        return after

    # ------------------------------------------------------------------ adopt

    def adopt(
        self,
        provider_name: str,
        instance_id: str,
        state: str,
        *,
        aliases: Iterable[str] = (),
        thread_id: str | None = None,
        cwd: str = "/workspace",
        lease_id: str | None = None,
        event_id: str | None = None,
    ) -> AdoptRecord:
        """LeaseStore.adopt_instance: a new `lease-adopt-<12hex>` bound to the instance.

        `state` is LEON's normalised observed state (running | paused | unknown). Refuses when a
        lease already binds the instance (adopted meanwhile) or when `thread_id` already has a
        lease; the checks run inside the write transaction.
        """
        if state not in ("running", "paused", "unknown"):
            raise WriteError("conflict", f"cannot adopt {instance_id}: provider state {state!r} is not live")
        desired = "paused" if state == "paused" else "running"
        lid = lease_id or f"lease-adopt-{uuid.uuid4().hex[:12]}"
        ids = list(dict.fromkeys([instance_id, *aliases]))
        with self._transaction(f"adopt {provider_name}/{instance_id}") as conn:
            cols = self._check_schema(conn, terminals=thread_id is not None)
            bound = conn.execute(
                f"SELECT lease_id FROM sandbox_leases WHERE provider_name = ? AND current_instance_id IN"
                f" ({','.join('?' * len(ids))}) ORDER BY lease_id",
                (provider_name, *ids),
            ).fetchall()
            if bound:
                raise WriteError(
                    "conflict",
                    f"{provider_name}/{instance_id} is already bound to lease {bound[0][0]} (adopted "
                    "meanwhile?); nothing was written",
                )
            if thread_id is not None:
                owner = conn.execute(
                    "SELECT DISTINCT lease_id FROM abstract_terminals WHERE thread_id = ?", (thread_id,)
                ).fetchall()
                if owner:
                    raise WriteError(
                        "conflict",
                        f"thread {thread_id} already has lease {owner[0][0]}; a thread has one lease. "
                        "Nothing was written",
                    )
            now = self._now()
            row: dict[str, Any] = {
                "lease_id": lid, "provider_name": provider_name, "workspace_key": None,
                "current_instance_id": instance_id, "instance_created_at": now, "desired_state": desired,
                "observed_state": state, "instance_status": state, "version": 1, "observed_at": now,
                "last_error": None, "needs_refresh": 1, "refresh_hint_at": now, "status": "active",
                "created_at": now, "updated_at": now,
            }  # fmt: skip
            keys = [k for k in row if k in cols]
            conn.execute(
                f"INSERT INTO sandbox_leases ({', '.join(keys)}) VALUES ({', '.join('?' * len(keys))})",
                [row[k] for k in keys],
            )
            _upsert_instance(conn, instance_id, lid, state, now)
            eid = self._event(
                conn, lid, "observe.status", {"status": state, "instance_id": instance_id},
                source="adopt", event_id=event_id,
            )  # fmt: skip
            terminal_id: str | None = None
            pointer = False
            if thread_id is not None:
                terminal_id = f"term-{uuid.uuid4().hex[:12]}"
                conn.execute(
                    "INSERT INTO abstract_terminals (terminal_id, thread_id, lease_id, cwd, env_delta_json,"
                    " state_version, created_at, updated_at) VALUES (?, ?, ?, ?, '{}', 0, ?, ?)",
                    (terminal_id, thread_id, lid, cwd, now, now),
                )
                has_pointer = conn.execute(
                    "SELECT 1 FROM thread_terminal_pointers WHERE thread_id = ?", (thread_id,)
                ).fetchone()
                if not has_pointer:
                    conn.execute(
                        "INSERT INTO thread_terminal_pointers (thread_id, active_terminal_id,"
                        " default_terminal_id, updated_at) VALUES (?, ?, ?, ?)",
                        (thread_id, terminal_id, terminal_id, now),
                    )
                    pointer = True
            after = self._read(conn, lid, cols)
            assert after is not None
        return AdoptRecord(lid, provider_name, instance_id, desired, state, eid, terminal_id, pointer, after)


def _payload(extra: dict[str, Any] | None, instance_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"instance_id": instance_id}
    body.update(extra or {})
    return body


def _upsert_instance(conn: sqlite3.Connection, iid: str, lease_id: str, status: str, now: str) -> None:
    """LEON's _persist_snapshot: upsert the current instance's row (provider_session_id = id)."""
    conn.execute(
        "INSERT INTO sandbox_instances (instance_id, lease_id, provider_session_id, status, created_at,"
        " last_seen_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(instance_id) DO UPDATE SET"
        " lease_id = excluded.lease_id, status = excluded.status, last_seen_at = excluded.last_seen_at",
        (iid, lease_id, iid, status, now, now),
    )


# --------------------------------------------------------------------------- invariants

_EVT_RE = re.compile(r"^evt-[0-9a-f]{32}$")
_LEASE_STATES = {"desired_state": {"running", "paused", "destroyed"},
                 "observed_state": {"running", "paused", "detached", "unknown"}}  # fmt: skip


def check_invariants(path: str, *, versions_before: dict[str, int] | None = None) -> list[str]:
    """What LEON relies on, checked on a sandbox.db (read-only). Returns the violations ([] = ok).

    REQUIRED columns; one lease per thread across its terminals; lease_events ids unique and
    `evt-<32hex>`; versions never went down (vs `versions_before`); instance_status mirrors
    observed_state; detached => no current_instance_id; enum values LEON's lifecycle parses.
    """
    problems: list[str] = []
    conn = sqlite3.connect("file:" + quote(str(path), safe="/") + "?mode=ro", uri=True)
    try:
        cols = {r[1] for r in conn.execute("PRAGMA table_info(sandbox_leases)")}
        for table, required in (
            ("sandbox_leases", REQUIRED_LEASE_COLUMNS),
            ("sandbox_instances", REQUIRED_INSTANCE_COLUMNS),
            ("lease_events", REQUIRED_EVENT_COLUMNS),
        ):
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            missing = [c for c in required if c not in have]
            if missing:
                problems.append(f"{table} schema mismatch: missing {missing}")
        for thread, n in conn.execute(
            "SELECT thread_id, COUNT(DISTINCT lease_id) FROM abstract_terminals GROUP BY thread_id"
            " HAVING COUNT(DISTINCT lease_id) > 1"
        ):
            problems.append(f"thread {thread} has {n} leases across its terminals (inconsistent lease_ids)")
        ids = [r[0] for r in conn.execute("SELECT event_id FROM lease_events")]
        if len(ids) != len(set(ids)):
            problems.append("duplicate lease_events.event_id")
        problems += [f"malformed event id {i!r}" for i in ids if not _EVT_RE.match(i)]
        inst = "instance_status" if "instance_status" in cols else "observed_state"
        for lid, cid, desired, observed, mirror, version in conn.execute(
            f"SELECT lease_id, current_instance_id, desired_state, observed_state, {inst}, version"
            " FROM sandbox_leases"
        ):
            if desired not in _LEASE_STATES["desired_state"]:
                problems.append(f"{lid}: desired_state {desired!r} is not one LEON writes")
            if observed not in _LEASE_STATES["observed_state"]:
                problems.append(f"{lid}: observed_state {observed!r} is not one LEON parses")
            if mirror != observed:
                problems.append(f"{lid}: instance_status {mirror!r} != observed_state {observed!r}")
            if observed == "detached" and cid is not None:
                problems.append(f"{lid}: detached but current_instance_id = {cid!r}")
            if versions_before and lid in versions_before and int(version) < versions_before[lid]:
                problems.append(f"{lid}: version went down ({versions_before[lid]} -> {version})")
    finally:
        conn.close()
    return problems


def lease_versions(path: str) -> dict[str, int]:
    """lease_id -> version (for `check_invariants(versions_before=...)`)."""
    conn = sqlite3.connect("file:" + quote(str(path), safe="/") + "?mode=ro", uri=True)
    try:
        return {r[0]: int(r[1]) for r in conn.execute("SELECT lease_id, version FROM sandbox_leases")}
    finally:
        conn.close()
