"""Explore's dataset rows, read straight from sandbox.db, events.db and the cockpit ledger.

Read-only like every LEON reader (`mode=ro` URI + `PRAGMA query_only`, see sqlite_ro). Plain
sqlite3 (not aiosqlite): the rows stream into the evaluator in one worker thread, and a cursor
per dataset is the cheapest way to walk 460k run_events. Timestamps are parsed with the one
`parse_ts` (naive sandbox times are local, CURRENT_TIMESTAMP text is UTC).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from opcockpit.adapters.leon.sqlite_ro import map_sqlite_error, precheck
from opcockpit.domain.timeutil import make_parser

__all__ = ["ExploreRows", "connect_ro_sync"]

_SB, _EV, _LEDGER = "sandbox.db", "events.db", "ledger"
# Activity streams are not runs (events_db.ACTIVITY_PREFIX); run_events keeps them.
_DAY = timedelta(days=1)


def connect_ro_sync(path: str, label: str, *, busy_timeout_ms: int = 2000) -> sqlite3.Connection:
    """A read-only sqlite3 connection to `path` (SourceError when it cannot be read)."""
    apath = precheck(path, label, "check --db/--events-db or the config")
    try:
        conn = sqlite3.connect(
            "file:" + quote(apath, safe="/") + "?mode=ro", uri=True, timeout=busy_timeout_ms / 1000,
            check_same_thread=False,
        )  # fmt: skip
        conn.execute("PRAGMA query_only=1")
    except sqlite3.Error as exc:
        raise map_sqlite_error(exc, apath, label, busy_timeout_ms) from None
    conn.text_factory = lambda b: b.decode("utf-8", "replace")
    return conn


def _loose_since(col: str, since: datetime | None) -> tuple[str, list[Any]]:
    """A pre-filter any ISO-ish text time in `col` passes when it may be >= since: compare the date
    one day early (zones and 'T' vs ' ' cannot matter); non-text values always pass."""
    if since is None:
        return "", []
    return f" AND ({col} >= ? OR typeof({col}) <> 'text')", [(since - _DAY).date().isoformat()]


def _loose_until(col: str, until: datetime | None) -> tuple[str, list[Any]]:
    if until is None:
        return "", []
    return f" AND ({col} < ? OR typeof({col}) <> 'text')", [(until + 2 * _DAY).date().isoformat()]


class ExploreRows:
    """`rows(dataset, since=, until=)` for the table-backed datasets (ports.explore.ExploreRowsPort)."""

    def __init__(
        self, sandbox_db: str | None, events_db: str | None, ledger: str | os.PathLike[str] | None = None
    ) -> None:
        self.sandbox_db = None if sandbox_db is None else str(sandbox_db)
        self.events_db = None if events_db is None else str(events_db)
        self.ledger = None if ledger is None else str(ledger)
        self._parse = make_parser()
        self._threads: dict[str, tuple[str, str]] | None = None

    # ------------------------------------------------------------------ plumbing
    def _query(self, which: str, sql: str, params: list[Any]) -> Iterator[tuple]:
        path = {_SB: self.sandbox_db, _EV: self.events_db, _LEDGER: self.ledger}[which]
        if path is None:
            from opcockpit.ports.errors import SourceError

            raise SourceError(
                "missing", f"no {which} configured; pass --db/--events-db or set it in the config"
            )
        if which == _LEDGER and not os.path.exists(path):
            return  # no ledger yet: nothing was audited or alerted
        conn = connect_ro_sync(path, which)
        try:
            yield from conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise map_sqlite_error(exc, os.path.abspath(path), which, 2000) from None
        finally:
            conn.close()

    def _tables(self, which: str) -> set[str]:
        return {r[0] for r in self._query(which, "SELECT name FROM sqlite_master WHERE type='table'", [])}

    def thread_leases(self) -> Mapping[str, tuple[str, str]]:
        if self._threads is None:
            self._threads = {
                t: (lease, prov)
                for t, lease, prov in self._query(
                    _SB,
                    "SELECT t.thread_id, t.lease_id, l.provider_name FROM abstract_terminals t"
                    " JOIN sandbox_leases l ON l.lease_id = t.lease_id ORDER BY t.created_at",
                    [],
                )
            }
        return self._threads

    def _lease_providers(self) -> dict[str, str]:
        return dict(self._query(_SB, "SELECT lease_id, provider_name FROM sandbox_leases", []))

    # ------------------------------------------------------------------ datasets
    def rows(
        self, dataset: str, *, since: datetime | None, until: datetime | None
    ) -> Iterator[dict[str, Any]]:
        fn = getattr(self, f"_ds_{dataset}", None)
        if fn is None:
            raise KeyError(dataset)
        return fn(since, until)

    def _ds_run_events(self, since: datetime | None, until: datetime | None) -> Iterator[dict[str, Any]]:
        w1, p1 = _loose_since("created_at", since)
        w2, p2 = _loose_until("created_at", until)
        threads = self.thread_leases()
        p = self._parse
        none = (None, None)
        sql = (
            "SELECT seq, thread_id, run_id, event_type, data, message_id, created_at FROM run_events"
            f" WHERE 1=1{w1}{w2} ORDER BY seq"
        )
        for seq, tid, rid, et, data, mid, created in self._query(_EV, sql, p1 + p2):
            lease, prov = threads.get(tid, none)
            yield {
                "seq": seq, "thread_id": tid, "run_id": rid, "event_type": et, "data": data,
                "message_id": mid, "created": p(created), "lease_id": lease, "provider": prov,
            }  # fmt: skip

    def _ds_commands(self, since: datetime | None, until: datetime | None) -> Iterator[dict[str, Any]]:
        w1, p1 = _loose_since("c.created_at", since)
        w2, p2 = _loose_until("c.created_at", until)
        has_chunks = "terminal_command_chunks" in self._tables(_SB)
        chunks = (
            "(SELECT group_concat(content, '') FROM (SELECT content FROM terminal_command_chunks k"
            " WHERE k.command_id = c.command_id ORDER BY chunk_id))"
            if has_chunks
            else "NULL"
        )
        sql = (
            "SELECT c.command_id, c.terminal_id, c.chat_session_id, t.thread_id, t.lease_id, l.provider_name,"
            " c.command_line, c.cwd, c.status, c.exit_code, c.stdout, c.stderr, "
            f"{chunks}, c.created_at, c.finished_at FROM terminal_commands c"
            " LEFT JOIN abstract_terminals t ON t.terminal_id = c.terminal_id"
            " LEFT JOIN sandbox_leases l ON l.lease_id = t.lease_id"
            f" WHERE 1=1{w1}{w2}"
        )
        p = self._parse
        for r in self._query(_SB, sql, p1 + p2):
            yield {
                "command_id": r[0], "terminal_id": r[1], "session_id": r[2], "thread_id": r[3],
                "lease_id": r[4], "provider": r[5], "command": r[6], "cwd": r[7], "status": r[8],
                "exit_code": r[9], "stdout": r[10], "stderr": r[11], "output": r[12],
                "created": p(r[13]), "finished": p(r[14]),
            }  # fmt: skip

    def _ds_sessions(self, since: datetime | None, until: datetime | None) -> Iterator[dict[str, Any]]:
        w1, p1 = _loose_since("s.started_at", since)
        w2, p2 = _loose_until("s.started_at", until)
        sql = (
            "SELECT s.chat_session_id, s.thread_id, s.terminal_id, s.lease_id, l.provider_name, s.runtime_id,"
            " s.status, s.idle_ttl_sec, s.max_duration_sec, s.started_at, s.last_active_at, s.ended_at,"
            " s.close_reason FROM chat_sessions s LEFT JOIN sandbox_leases l ON l.lease_id = s.lease_id"
            f" WHERE 1=1{w1}{w2}"
        )
        p = self._parse
        for r in self._query(_SB, sql, p1 + p2):
            yield {
                "session_id": r[0], "thread_id": r[1], "terminal_id": r[2], "lease_id": r[3],
                "provider": r[4], "runtime_id": r[5], "status": r[6], "idle_ttl": r[7],
                "max_duration": r[8], "started": p(r[9]), "last_active": p(r[10]), "ended": p(r[11]),
                "close_reason": r[12],
            }  # fmt: skip

    def _ds_lease_events(self, since: datetime | None, until: datetime | None) -> Iterator[dict[str, Any]]:
        if "lease_events" not in self._tables(_SB):
            return
        w1, p1 = _loose_since("e.created_at", since)
        w2, p2 = _loose_until("e.created_at", until)
        sql = (
            "SELECT e.event_id, e.lease_id, l.provider_name, e.event_type, e.source, e.payload_json, e.error,"
            " e.created_at FROM lease_events e LEFT JOIN sandbox_leases l ON l.lease_id = e.lease_id"
            f" WHERE 1=1{w1}{w2}"
        )
        p = self._parse
        for r in self._query(_SB, sql, p1 + p2):
            yield {
                "event_id": r[0], "lease_id": r[1], "provider": r[2], "event_type": r[3], "source": r[4],
                "payload": r[5], "error": r[6], "created": p(r[7]),
            }  # fmt: skip

    def _ds_provider_events(self, since: datetime | None, until: datetime | None) -> Iterator[dict[str, Any]]:
        if "provider_events" not in self._tables(_SB):
            return
        w1, p1 = _loose_since("created_at", since)
        w2, p2 = _loose_until("created_at", until)
        sql = (
            "SELECT event_id, provider_name, instance_id, event_type, payload_json, matched_lease_id,"
            f" created_at FROM provider_events WHERE 1=1{w1}{w2}"
        )
        p = self._parse
        for r in self._query(_SB, sql, p1 + p2):
            yield {
                "event_id": r[0], "provider": r[1], "instance_id": r[2], "event_type": r[3],
                "payload": r[4], "lease_id": r[5], "created": p(r[6]),
            }  # fmt: skip

    def _ds_audit(self, since: datetime | None, until: datetime | None) -> Iterator[dict[str, Any]]:
        if "audit_log" not in self._tables(_LEDGER):
            return
        sql = (
            "SELECT id, op_id, at, operator, action, provider, lease_id, instance_id, thread_id, result,"
            " outcome, error, duration_ms, dry_run, read_only, convergence, settled_at"
            " FROM audit_log ORDER BY id"
        )
        p = self._parse
        for r in self._query(_LEDGER, sql, []):
            yield {
                "id": r[0], "op_id": r[1], "at": p(r[2]), "operator": r[3], "action": r[4], "provider": r[5],
                "lease_id": r[6], "instance_id": r[7], "thread_id": r[8], "result": r[9], "outcome": r[10],
                "error": r[11], "duration_ms": r[12], "dry_run": bool(r[13]), "read_only": bool(r[14]),
                "convergence": r[15], "settled": p(r[16]),
            }  # fmt: skip

    def _ds_alerts(self, since: datetime | None, until: datetime | None) -> Iterator[dict[str, Any]]:
        if "alerts" not in self._tables(_LEDGER):
            return
        sql = (
            "SELECT id, rule, severity, state, key, summary, scope, fired_at, last_seen, resolved_at,"
            " acked_by, muted_until, mute_until_resolved FROM alerts ORDER BY id"
        )
        p = self._parse
        now = datetime.now().astimezone()
        for r in self._query(_LEDGER, sql, []):
            until_t = p(r[11])
            yield {
                "id": r[0], "rule": r[1], "severity": r[2], "state": r[3], "key": r[4], "summary": r[5],
                "scope": r[6], "fired": p(r[7]), "last_seen": p(r[8]), "resolved": p(r[9]),
                "acked_by": r[10], "muted": bool(r[12]) or (until_t is not None and until_t > now),
            }  # fmt: skip
