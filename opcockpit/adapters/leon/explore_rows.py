"""Explore's dataset rows, read straight from sandbox.db, events.db and the cockpit ledger.

Read-only like every LEON reader (`mode=ro` URI + `PRAGMA query_only`, see sqlite_ro). Plain
sqlite3 (not aiosqlite): the rows stream into the evaluator in one worker thread, and a cursor
per dataset is the cheapest way to walk 460k run_events. Timestamps are parsed with the one
`parse_ts` (naive sandbox times are local, CURRENT_TIMESTAMP text is UTC).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from opcockpit.adapters.leon.explore_sql import (
    SOURCES,
    Source,
    commands_source,
    count_sql,
    from_us,
    register_functions,
    select_sql,
)
from opcockpit.adapters.leon.sqlite_ro import map_sqlite_error, precheck
from opcockpit.domain.query import Filter, QueryTimeout
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
    def _query(
        self, which: str, sql: str, params: list[Any], *, deadline: float | None = None
    ) -> Iterator[tuple]:
        path = {_SB: self.sandbox_db, _EV: self.events_db, _LEDGER: self.ledger}[which]
        if path is None:
            from opcockpit.ports.errors import SourceError

            raise SourceError(
                "missing", f"no {which} configured; pass --db/--events-db or set it in the config"
            )
        if which == _LEDGER and not os.path.exists(path):
            return  # no ledger yet: nothing was audited or alerted
        conn = connect_ro_sync(path, which)
        register_functions(conn, self._parse)
        if deadline is not None:
            # a filter that rejects most rows keeps SQLite busy between yields: stop it there too
            conn.set_progress_handler(lambda: time.monotonic() > deadline, 20_000)
        try:
            yield from conn.execute(sql, params)
        except sqlite3.OperationalError as exc:
            if deadline is not None and "interrupt" in str(exc):
                raise QueryTimeout("the query ran past its time budget and was stopped; narrow it") from None
            raise map_sqlite_error(exc, os.path.abspath(path), which, 2000) from None
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
        self,
        dataset: str,
        *,
        since: datetime | None,
        until: datetime | None,
        where: Filter | None = None,
        deadline: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The dataset's rows; `where` (the typed filter) runs in SQLite where it can: the rows
        are those it matches or a superset of them (the evaluator applies it exactly)."""
        if dataset in SOURCES or dataset == "commands":
            return self._sql_rows(dataset, since, until, where, deadline)
        fn = getattr(self, f"_ds_{dataset}", None)
        if fn is None:
            raise KeyError(dataset)
        return fn(since, until)

    # The SQL-backed datasets: one Source each (columns as SQL expressions). Filters, the time
    # window and a leading count run in SQLite (explore_sql), the rest in the evaluator.
    def _source(self, dataset: str) -> Source | None:
        if dataset == "commands":
            has_chunks = "terminal_command_chunks" in self._tables(_SB)
            return commands_source(has_chunks)
        src = SOURCES.get(dataset)
        if src is None or (src.table is not None and src.table not in self._tables(src.db)):
            return None
        return src

    def _sql_rows(
        self, dataset: str, since: datetime | None, until: datetime | None, where: Filter | None,
        deadline: float | None,
    ) -> Iterator[dict[str, Any]]:  # fmt: skip
        src = self._source(dataset)
        if src is None:
            return
        sql, params = self._select(src, since, until, where)
        fill = self.thread_leases() if src.py_fields else None
        p = self._parse
        names = [c.field for c in src.sql_cols]
        kinds = [c.kind for c in src.sql_cols]
        conv = [(i, p if k == "ts" else from_us) for i, k in enumerate(kinds) if k in ("ts", "us")]
        none = (None, None)
        for r in self._query(src.db, sql, params, deadline=deadline):
            vals = list(r)
            for i, fn in conv:
                vals[i] = fn(vals[i])
            row = dict(zip(names, vals, strict=True))
            if fill is not None:
                row["lease_id"], row["provider"] = fill.get(row["thread_id"], none)
            yield row

    def _select(
        self, src: Source, since: datetime | None, until: datetime | None, where: Filter | None
    ) -> tuple[str, list[Any]]:
        """The dataset's SELECT; here with the filter and time window pushed into SQLite."""
        return select_sql(src, since, until, where)

    def _countable(self, src: Source) -> bool:
        """Whether `aggregate` may count `src` in its database (SQLite: always)."""
        return True

    def aggregate(
        self,
        dataset: str,
        *,
        since: datetime | None,
        until: datetime | None,
        where: Filter | None,
        by: tuple[str, ...],
        deadline: float | None = None,
    ) -> list[tuple[tuple[Any, ...], int]] | None:
        """Counts per `by` values of the rows matching `where`, computed in SQLite; None when the
        filter or a `by` field cannot be evaluated there exactly (the caller counts in Python)."""
        if dataset not in SOURCES and dataset != "commands":
            return None
        src = self._source(dataset)
        if src is None:
            return [] if by else [((), 0)]
        if not self._countable(src):
            return None
        sql = count_sql(src, since, until, where, by)
        if sql is None:
            return None
        text, params = sql
        return [(tuple(r[:-1]), int(r[-1])) for r in self._query(src.db, text, params, deadline=deadline)]

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
