"""The SQL side of the sandbox.db tracker (`sandbox_changes`): which columns mark a LEON-way
write, the watermark and explainer reads, the row signature (hashed inside SQLite) and the glibc
trim after a full read. Split from sandbox_changes.py to keep both modules short."""

from __future__ import annotations

import ctypes
import sqlite3
import sys
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import aiosqlite

from opcockpit.adapters.leon.rowmap import RowMap
from opcockpit.adapters.leon.sandbox_rows import _LEASE_COLS, _chunks, _placeholders, _Schema

# The columns a LEON-way write moves, per table: rows at or past their high-water mark are the ones
# a delta read looks at (see the module docstring). Absent columns are skipped; a table with none
# of them is scanned in full on every commit.
_MARKS: dict[str, tuple[str, ...]] = {
    "sandbox_leases": ("updated_at", "observed_at"),
    "abstract_terminals": ("updated_at", "created_at"),
    "chat_sessions": ("last_active_at", "ended_at", "started_at"),
    "lease_resource_snapshots": ("updated_at", "collected_at"),
}
# Append-mostly tables whose new rows explain a commit that touched none of the reconcile tables.
_EXPLAINERS = ("lease_events", "provider_events", "terminal_commands", "terminal_command_chunks")


async def _parent_leases(
    conn: aiosqlite.Connection, s: _Schema, ap: str, delta: dict[str, tuple[list[tuple], list[int]]]
) -> list[tuple]:
    """The lease rows (rowid, signature, columns) of the changed terminal and session rows: the
    patch path vets them together, so problems a child row gives its lease show (read in the
    delta's transaction: the tracker keeps no raw rows)."""
    lids = {r[4] for r in delta.get("abstract_terminals", ((), ()))[0]}
    lids |= {r[5] for r in delta.get("chat_sessions", ((), ()))[0]}
    lids = {x for x in lids if isinstance(x, str)}
    if not lids or not s.has("sandbox_leases"):
        return []
    sql = _with_key(s.select("sandbox_leases", _LEASE_COLS, ap), s, "sandbox_leases", _LEASE_COLS)
    out: list[tuple] = []
    for chunk in _chunks(sorted(lids)):
        out.extend(
            await conn.execute_fetchall(
                f"{sql} WHERE lease_id IN ({_placeholders(len(chunk))})", tuple(chunk)
            )
        )
    return out


def _marks(s: _Schema, table: str) -> tuple[str, ...]:
    present = s.tables.get(table, frozenset())
    return tuple(c for c in _MARKS.get(table, ()) if c in present)


def _high(current: str | None, values: tuple[Any, ...]) -> str | None:
    """The highest text among `current` and `values` (non-text marks are not LEON's: ignored)."""
    for v in values:
        if isinstance(v, str) and (current is None or v > current):
            current = v
    return current


async def _mark_high(conn: aiosqlite.Connection, s: _Schema, table: str) -> str | None:
    marks = _marks(s, table)
    sql = "SELECT " + ", ".join(f'max("{c}")' for c in marks) + f' FROM "{table}"'
    rows = await conn.execute_fetchall(sql)
    return _high(None, next(iter(rows)))


async def _tops(conn: aiosqlite.Connection, s: _Schema) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for table in _EXPLAINERS:
        if table in s.all_tables:
            rows = await conn.execute_fetchall(f'SELECT max(rowid) FROM "{table}"')
            out[table] = next(iter(rows))[0]
    return out


async def _touched_leases(
    conn: aiosqlite.Connection, s: _Schema, before: int | None, now: int | None
) -> set[str]:
    """Lease ids of the lease_events rows appended since `before` (LEON writes one per apply())."""
    if now is None or now <= (before or 0) or "lease_events" not in s.all_tables:
        return set()  # (an empty table's max(rowid) is NULL: every row is new)
    rows = await conn.execute_fetchall("SELECT lease_id FROM lease_events WHERE rowid > ?", (before or 0,))
    return {r[0] for r in rows if isinstance(r[0], str)}


_SIG_FN = "opcockpit_sig"


def _libc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


_MALLOC_TRIM = _libc_trim()


def _trim() -> None:
    """Hand the heap pages a full read freed back to the OS (glibc keeps them otherwise): ~6 MB
    of RSS at 10k leases, a few ms once per full read."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _sig_hash(text: object) -> int:
    return hash(text)  # Py_hash_t fits SQLite's 64-bit integer


def _signature(s: _Schema, table: str, cols: tuple[str, ...]) -> str:
    """The row's signature: every selected column quoted and concatenated, hashed by `_sig_hash`
    (registered on the tracker's connection) so a row's signature is one int. The transient text
    of a full read (tens of MB at 10k leases) left pymalloc arenas pinned by the records built
    between them: RSS stayed ~40 MB above what the tracker holds."""
    present = [c for c in cols if c in s.tables[table]]
    return f"{_SIG_FN}(" + ("||','||".join(f'quote("{c}")' for c in present) or "''") + ")"


def _with_key(select_sql: str, s: _Schema, table: str, cols: tuple[str, ...]) -> str:
    """`SELECT a, b FROM t` -> `SELECT rowid, <signature>, a, b FROM t`."""
    assert select_sql.startswith("SELECT ")
    return f"SELECT rowid, {_signature(s, table, cols)}, {select_sql[len('SELECT ') :]}"


# Columns whose text the live row builders intern (sandbox_rows: `_i`), per table. A full read
# shares them as it fetches (`_fetch_rows`), chunk by chunk: sqlite3 makes a new str per value,
# so 55k raw rows at 10k leases held ~15 MB of copies of "running", provider names and ids until
# the builders ran, a transient peak whose pymalloc arenas stayed pinned by records built meanwhile.
_SHARED_TEXT: dict[str, frozenset[str]] = {
    "sandbox_leases": frozenset(
        (
            "lease_id",
            "provider_name",
            "desired_state",
            "observed_state",
            "status",
            "instance_status",
            "workspace_key",
            "recipe_id",
            "volume_id",
        )
    ),
    "abstract_terminals": frozenset(("terminal_id", "thread_id", "lease_id", "cwd", "env_delta_json")),
    "chat_sessions": frozenset(("thread_id", "terminal_id", "lease_id", "status", "close_reason")),
    "lease_resource_snapshots": frozenset(("lease_id", "provider_name", "observed_state", "probe_mode")),
}
_FETCH_CHUNK = 2000
_TEXT_OR_NULL = frozenset((str, type(None)))


def _shared_rows(cursor: sqlite3.Cursor, share: list[int]) -> list[tuple]:
    """All rows of `cursor`, the values of the `share` columns one object per distinct text.

    Runs in the connection's thread. Column-wise per chunk (zip and dict.setdefault run in C); a
    column holding anything but text and NULL in a chunk is left as fetched (a bad row keeps its
    own value for the vetting to report, and 1 == 1.0 must never swap a value's type)."""
    memos: dict[int, dict[Any, Any]] = {j: {} for j in share}
    out: list[tuple] = []
    while chunk := cursor.fetchmany(_FETCH_CHUNK):
        cols = list(zip(*chunk, strict=True))
        for j, memo in memos.items():
            if set(map(type, cols[j])) <= _TEXT_OR_NULL:
                cols[j] = tuple(map(memo.setdefault, cols[j], cols[j]))
        del chunk
        out.extend(zip(*cols, strict=True))
    return out


def _rowid_hashes(cursor: sqlite3.Cursor) -> RowMap:
    """{rowid: hash(signature)} of `SELECT rowid, <signature> ... ORDER BY rowid` as a compact
    RowMap; built in the connection's thread without a list of (rowid, signature) tuples first."""
    return RowMap.hashes((rid, hash(sig)) for rid, sig in cursor)


async def _fetch_rows(conn: aiosqlite.Connection, sql: str, table: str, cols: tuple[str, ...]) -> list[tuple]:
    """The rows of `sql` (a select of `cols` from `table`), shared as `_SHARED_TEXT` says."""
    share = [j for j, c in enumerate(cols) if c in _SHARED_TEXT.get(table, ())]
    raw = conn._conn  # aiosqlite's sqlite3 connection: used only in its thread
    return await conn._execute(lambda: _shared_rows(raw.execute(sql), share))


def _is_time(col: str) -> bool:
    return col.endswith("_at")  # LEON's timestamp columns (created_at, last_active_at, ...)


async def _fetch_table(
    conn: aiosqlite.Connection, s: _Schema, table: str, cols: tuple[str, ...], ap: str
) -> list[tuple]:
    """Every row of `table` (`cols`, in rowid order) for a full read, in two scans of one
    transaction: the timestamp columns apart from the rest, then put back in column order.

    Timestamp text (~26 characters: pymalloc's 80-byte class, like many ids) is only parsed and
    dropped, while the ids the records keep live on. Fetched in one scan they alternated in the
    same pools, and the dropped text left ~14 MB of free 80-byte blocks pinned between the kept
    ids at 10k leases (issue 10, RSS); fetched apart, each set fills pools of its own."""
    times = [j for j, c in enumerate(cols) if _is_time(c)]
    if not times:
        return await _fetch_rows(conn, f"{s.select(table, cols, ap)} ORDER BY rowid", table, cols)
    rest = [j for j in range(len(cols)) if j not in times]
    rest_cols = tuple(cols[j] for j in rest)
    rest_sql = f"{s.select(table, rest_cols, ap)} ORDER BY rowid"
    time_sql = f"{s.select(table, tuple(cols[j] for j in times), ap)} ORDER BY rowid"
    share = [k for k, c in enumerate(rest_cols) if c in _SHARED_TEXT.get(table, ())]
    order = [0] * len(cols)  # column j of a row = (rest + times)[order[j]]
    for k, j in enumerate(rest + times):
        order[j] = k
    pick = itemgetter(*order)
    raw = conn._conn  # aiosqlite's sqlite3 connection: used only in its thread

    def run() -> list[tuple]:
        kept = _shared_rows(raw.execute(rest_sql), share)
        stamps = raw.execute(time_sql).fetchall()
        if len(kept) != len(stamps):
            raise sqlite3.DatabaseError(f"{table} changed between two scans of one read")
        return [pick(a + b) for a, b in zip(kept, stamps, strict=True)]

    return await conn._execute(run)


async def _fetch_hashes(conn: aiosqlite.Connection, sql: str) -> RowMap:
    raw = conn._conn
    return await conn._execute(lambda: _rowid_hashes(raw.execute(sql)))
