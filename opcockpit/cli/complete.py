"""Shell completion of lease, thread and instance ids for pause/resume/destroy/adopt.

Read from sandbox.db read-only (`file:...?mode=ro`, `query_only`) with a short busy timeout:
completion runs on every <TAB>, must never write and must never hang on a locked database. Any
problem (no database, not LEON's, locked) completes nothing rather than printing an error into
the operator's shell.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

BUSY_TIMEOUT_S = 0.2
LIMIT = 500

_TARGETS = (
    "SELECT lease_id FROM sandbox_leases",
    "SELECT DISTINCT thread_id FROM abstract_terminals WHERE thread_id IS NOT NULL",
    "SELECT current_instance_id FROM sandbox_leases WHERE current_instance_id IS NOT NULL",
)
_THREADS = ("SELECT DISTINCT thread_id FROM abstract_terminals WHERE thread_id IS NOT NULL",)


def _db_path(ctx: Any) -> str | None:
    """--db from the command or the root (the last given wins), else the configured one."""
    db = None
    while ctx is not None:
        db = db or (getattr(ctx, "params", None) or {}).get("db")
        ctx = getattr(ctx, "parent", None)
    if db:
        return str(db)
    try:
        from opcockpit.settings.config import load_config

        return str(load_config(None).config.sources.sandbox_db)
    except Exception:  # completion never fails loudly
        return None


def ids(path: str | Path, queries: tuple[str, ...], prefix: str = "") -> list[str]:
    """Distinct values of `queries` starting with `prefix`, in query order; [] on any error."""
    uri = f"file:{quote(str(path))}?mode=ro"
    found: dict[str, None] = {}
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error:
        return []
    try:
        conn.execute("PRAGMA query_only = ON")
        for sql in queries:
            try:
                rows = conn.execute(f"{sql} LIMIT {LIMIT}").fetchall()
            except sqlite3.Error:
                continue  # an older schema without this column: the others still complete
            found.update((str(r[0]), None) for r in rows if r[0] and str(r[0]).startswith(prefix))
    except sqlite3.Error:
        return []
    finally:
        conn.close()
    return list(found)


def complete_targets(ctx: Any, incomplete: str) -> list[str]:
    path = _db_path(ctx)
    return ids(path, _TARGETS, incomplete) if path else []


def complete_threads(ctx: Any, incomplete: str) -> list[str]:
    path = _db_path(ctx)
    return ids(path, _THREADS, incomplete) if path else []
