"""Saved queries and query history in the cockpit ledger (SQLite file or a team's PostgreSQL, one
SQL through `backend.LedgerDb`); TOML import/export (a file a team keeps in git). Every error is a
LedgerError (one line naming the ledger, password masked)."""

from __future__ import annotations

import json
import os
import re
import threading
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from opcockpit.adapters.ledger.backend import LedgerDb, LedgerTarget, Statement, connect, migrate
from opcockpit.adapters.ledger.sqlite import guarded
from opcockpit.ports.explore import SavedQuery

__all__ = ["QueryStore", "dump_toml", "load_toml", "pins_from_toml"]

COMPONENT = "queries"
MIGRATIONS: list[list[Statement]] = [
    [
        """CREATE TABLE saved_queries (
            name TEXT PRIMARY KEY,
            query TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            is_sql INTEGER NOT NULL DEFAULT 0,
            params_json TEXT NOT NULL DEFAULT '[]',
            owner TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE query_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            query TEXT NOT NULL,
            is_sql INTEGER NOT NULL DEFAULT 0,
            rows INTEGER,
            error TEXT
        )""",
    ],
]
HISTORY_KEEP = 1000
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _row(r: tuple) -> SavedQuery:
    return SavedQuery(
        name=r[0], query=r[1], description=r[2], sql=bool(r[3]), params=tuple(json.loads(r[4] or "[]")),
        owner=r[5], created_at=_ts(r[6]), updated_at=_ts(r[7]),
    )  # fmt: skip


class QueryStore:
    """Saved queries + history (ports.explore.SavedQueryStorePort). Thread-safe (a lock around the
    one connection)."""

    def __init__(self, path: str | os.PathLike[str] | LedgerTarget | None = None) -> None:
        self._target = LedgerTarget.parse(path)
        self.path = self._target.shown
        self._lock = threading.Lock()
        self._db: LedgerDb = connect(self._target)
        try:
            migrate(self._db, COMPONENT, MIGRATIONS)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> QueryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @guarded
    def list(self) -> list[SavedQuery]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLS} FROM saved_queries ORDER BY name").fetchall()
        return [_row(r) for r in rows]

    @guarded
    def get(self, name: str) -> SavedQuery | None:
        with self._lock:
            r = self._db.execute(f"SELECT {_COLS} FROM saved_queries WHERE name = ?", (name,)).fetchone()
        return _row(r) if r else None

    @guarded
    def save(self, q: SavedQuery) -> SavedQuery:
        """Create or replace `q.name` (created_at kept on replace)."""
        if not NAME_RE.match(q.name):
            raise ValueError(f"bad query name {q.name!r}: letters, digits, '_', '.', '-' (max 64)")
        now = datetime.now(UTC).isoformat()
        with self._lock, self._db.transaction():
            self._db.execute(
                "INSERT INTO saved_queries (name, query, description, is_sql, params_json, owner, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                " query = excluded.query, description = excluded.description, is_sql = excluded.is_sql,"
                " params_json = excluded.params_json, owner = excluded.owner,"
                " updated_at = excluded.updated_at",
                (q.name, q.query, q.description, int(q.sql), json.dumps(list(q.params)), q.owner,
                 q.created_at.isoformat() if q.created_at else now, now),
            )  # fmt: skip
        saved = self.get(q.name)
        assert saved is not None
        return saved

    @guarded
    def remove(self, name: str) -> bool:
        with self._lock, self._db.transaction():
            return int(self._db.execute("DELETE FROM saved_queries WHERE name = ?", (name,)).rowcount) > 0

    @guarded
    def record_history(
        self, query: str, *, sql: bool, rows: int | None, error: str | None, at: datetime
    ) -> None:
        with self._lock, self._db.transaction():
            self._db.execute(
                "INSERT INTO query_history (at, query, is_sql, rows, error) VALUES (?, ?, ?, ?, ?)",
                (at.isoformat(), query, int(sql), rows, error),
            )
            self._db.execute(
                "DELETE FROM query_history WHERE id <= (SELECT MAX(id) FROM query_history) - ?",
                (HISTORY_KEEP,),
            )

    @guarded
    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT at, query, is_sql, rows, error FROM query_history ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [{"at": a, "query": q, "sql": bool(s), "rows": n, "error": e} for a, q, s, n, e in rows]


_COLS = "name, query, description, is_sql, params_json, owner, created_at, updated_at"


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def dump_toml(queries: list[SavedQuery], pins: Mapping[str, tuple[int | None, bool]] | None = None) -> str:
    """`[queries.NAME]` tables, sorted by name (stable diffs in git); `pins` (name -> (hotkey
    slot, palette)) adds `hotkey = N` / `palette = true`, so a team's pins travel with the file."""
    out = ["# opcockpit saved queries (opcockpit queries import FILE)", ""]
    pins = pins or {}
    for q in sorted(queries, key=lambda q: q.name):
        out.append(f"[queries.{_toml_str(q.name)}]")
        out.append(f"query = {_toml_str(q.query)}")
        if q.description:
            out.append(f"description = {_toml_str(q.description)}")
        if q.sql:
            out.append("sql = true")
        if q.params:
            out.append(f"params = [{', '.join(_toml_str(p) for p in q.params)}]")
        if q.owner:
            out.append(f"owner = {_toml_str(q.owner)}")
        slot, palette = pins.get(q.name, (None, False))
        if slot is not None:
            out.append(f"hotkey = {slot}")
        if palette:
            out.append("palette = true")
        out.append("")
    return "\n".join(out)


def pins_from_toml(text: str) -> dict[str, tuple[int | None, bool]]:
    """name -> (hotkey slot 1..9 or None, palette) for the pinned queries of a dump_toml file;
    ValueError (one line) for a bad pin. Call after load_toml accepted the file."""
    out: dict[str, tuple[int | None, bool]] = {}
    for name, body in tomllib.loads(text).get("queries", {}).items():
        slot, palette = body.get("hotkey"), body.get("palette", False)
        if slot is not None and (isinstance(slot, bool) or not isinstance(slot, int) or not 1 <= slot <= 9):
            raise ValueError(f"queries.{name}: hotkey must be a number 1..9")
        if not isinstance(palette, bool):
            raise ValueError(f"queries.{name}: palette must be true or false")
        if slot is not None or palette:
            out[name] = (slot, palette)
    return out


def load_toml(text: str) -> list[SavedQuery]:
    """Parse a dump_toml file; ValueError (one line) for anything malformed."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None
    table = data.get("queries")
    if not isinstance(table, dict):
        raise ValueError("no [queries.NAME] tables in the file")
    out = []
    for name, body in table.items():
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise ValueError(f'queries.{name}: needs query = "..."')
        params = body.get("params", [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise ValueError(f"queries.{name}: params must be a list of names")
        out.append(
            SavedQuery(
                name=name,
                query=body["query"],
                description=str(body.get("description", "")),
                sql=bool(body.get("sql", False)),
                params=tuple(params),
                owner=str(body.get("owner", "")),
            )
        )
    return out
