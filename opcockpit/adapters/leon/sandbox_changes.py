"""Change detection at sandbox.db: read the reconcile input again only when something changed.

`SandboxDbTracker(path).read_state(now=...)` returns the same DbState `read_db_state(path)` would,
at a cost that follows the change:

- a long-lived read-only connection (same discipline as every reader: mode=ro, query_only);
- each call first stat()s the file and asks `PRAGMA data_version` (changes when another connection
  committed). Nothing committed -> the previous DbState object is returned: no table is read;
- something committed -> per table only the rows a LEON-way write touched: those whose timestamp
  column(s) reached the table's watermark (`updated_at`, `last_active_at`, ...), and the leases
  named by `lease_events` rows past the lease_events rowid watermark (LEON's apply() writes one per
  lease change, also on its error path, which may not bump `updated_at`). Their signatures (every
  selected column quoted and concatenated in SQL) are compared, and only changed rows fetched.
  A table whose row count, rowid sum or highest row does not add up after that (an insert or delete
  the watermark did not explain) gets the full signature scan `SELECT rowid, <signature>`, and so
  does every table when a commit is explained by nothing (a writer that bumps no timestamp and
  appends no event). The full scan was ~280 ms of CPU per commit at 10k leases; the watermark
  reads cost a few narrow scans. Record objects of unchanged rows are kept (by rowid, with the
  row's signature hash), so the incremental reconciler sees them unchanged. The raw rows are not
  kept once converted: at 10k leases they were ~45 MB (issue 10's memory budget); a change the
  patch path cannot apply (a bad row, a resource snapshot) reads the tables again instead;
- a full read (resync) every `resync_s`, and on any doubt: first call, schema_version moved, the
  file replaced (new inode/device) or shrunk, a data_version going backwards, a table without
  rowids. A replaced database is read afresh in one transaction: never a mixed picture.

Reading never writes: see `sqlite_ro`. Raises SourceError like the one-shot reader.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from typing import Any

import aiosqlite

from opcockpit.adapters.leon.rowmap import RowMap
from opcockpit.adapters.leon.sandbox_db import SandboxDbReader
from opcockpit.adapters.leon.sandbox_rows import (
    _LEASE_COLS,
    _SESSION_COLS,
    _SNAPSHOT_COLS,
    _TERMINAL_COLS,
    DEFAULT_BUSY_TIMEOUT_MS,
    HINT,
    LABEL,
    _chunks,
    _placeholders,
    _Schema,
)
from opcockpit.adapters.leon.sandbox_scan import (
    _SIG_FN,
    _fetch_hashes,
    _fetch_table,
    _high,
    _mark_high,
    _marks,
    _parent_leases,
    _sig_hash,
    _signature,
    _tops,
    _touched_leases,
    _trim,
    _with_key,
)
from opcockpit.adapters.leon.sqlite_ro import precheck
from opcockpit.domain.gcpause import gc_paused
from opcockpit.domain.models import DbState
from opcockpit.ports.errors import SourceError

__all__ = ["SandboxDbTracker", "TrackerStats"]

DEFAULT_RESYNC_S = 300.0

# The tables of the reconcile input, in `read_state` order, with their select lists.
_TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sandbox_leases", _LEASE_COLS),
    ("abstract_terminals", _TERMINAL_COLS),
    ("chat_sessions", _SESSION_COLS),
    ("lease_resource_snapshots", _SNAPSHOT_COLS),
)


_Delta = tuple[dict[str, tuple[list[tuple], list[int]]], list[tuple]]
_EMPTY = RowMap()  # a table not read yet (never changed: read-only stand-in)


class _Resync(Exception):
    """The delta read found a reason to read everything again."""


@dataclass(slots=True)
class TrackerStats:
    full_reads: int = 0
    delta_reads: int = 0
    unchanged: int = 0  # calls answered from data_version alone (no table read)
    rows_fetched: int = 0  # full rows fetched by delta reads
    last_resync_reason: str | None = None
    resync_reasons: list[str] = field(default_factory=list)


class SandboxDbTracker:
    """A long-lived, change-detecting reader of sandbox.db's reconcile input."""

    def __init__(
        self,
        path: str,
        *,
        resync_s: float = DEFAULT_RESYNC_S,
        local_tz: tzinfo | None = None,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = str(path)
        self.resync_s = resync_s
        self._tz = local_tz
        self._busy = busy_timeout_ms
        self._monotonic = monotonic
        self.stats = TrackerStats()
        self._reader: SandboxDbReader | None = None
        self._ident: tuple[int, int] | None = None
        self._size = 0
        self._dv: int | None = None
        self._schema_version: int | None = None
        self._full_at = 0.0
        self._state: DbState | None = None
        # table -> rowid -> hash of the row's signature (the 64-bit hash, not the text: ~10 MB
        # less at 10k leases; a collision would hide one change until the next resync_s), as a
        # RowMap (sorted rowid and hash arrays: ~16 bytes a row instead of ~100 in a dict).
        self._sigs: dict[str, RowMap] = {}
        self._doubt: str | None = None
        self._wm: dict[str, str | None] = {}  # table -> highest mark value seen (text compare)
        self._tops: dict[str, int | None] = {}  # explainer table -> its max(rowid) at the last read
        self._recs: dict[str, RowMap] = {}  # table -> rowid -> record of the last state
        self._files: tuple[Any, ...] | None = None  # _files_key() when the last read began

    # ------------------------------------------------------------------ public

    def invalidate(self, reason: str = "asked") -> None:
        """Read everything on the next call (e.g. the operator asked for a full refresh)."""
        self._doubt = reason

    def unchanged(self) -> bool:
        """Sure, from stat() alone (no query, no thread hop), that a read now would return the
        last state: the file and its -wal are as they were when the last read began (a commit
        writes one of them), and no resync or doubt is due. False when unsure: the caller then
        reads, which asks data_version. Lets a live cockpit skip a quiet tick (issue 10)."""
        if self._state is None or self._doubt is not None or self._files is None:
            return False
        if self._monotonic() - self._full_at >= self.resync_s:
            return False
        try:
            return _files_key(self._files[0]) == self._files
        except OSError:
            return False

    async def aclose(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.close()

    async def set_trace(self, callback: Callable[[str], object] | None) -> None:
        """sqlite3 trace callback on the live connection (tests count statements with it)."""
        reader = await self._open_reader()
        conn = reader._conn
        assert conn is not None
        await conn._execute(conn._conn.set_trace_callback, callback)  # runs in aiosqlite's thread

    async def read_state(self, *, now: datetime | None = None) -> DbState:
        """The reconcile input, read only as far as it changed (see the module docstring)."""
        try:
            files = _files_key_or_none(self.path)  # before the read: a commit in it shows next time
            state = await self._read(now)
            self._files = files
            return state
        except BaseException:
            # After an error nothing is known for sure: the next call reopens and reads it all.
            await self.aclose()
            self._state = None
            raise

    # ------------------------------------------------------------------ internals

    async def _open_reader(self) -> SandboxDbReader:
        if self._reader is None:
            reader = SandboxDbReader(self.path, local_tz=self._tz, busy_timeout_ms=self._busy)
            self._reader = await reader.open()
            conn = self._reader._conn
            assert conn is not None
            # Row signatures are hashed in SQLite's call (see `_signature`): the text never
            # reaches Python as a row value (~17 MB of transient strings per full read at 10k).
            await conn.create_function(_SIG_FN, 1, _sig_hash, deterministic=True)
        return self._reader

    async def _read(self, now: datetime | None) -> DbState:
        apath = precheck(self.path, LABEL, HINT)  # stat() only; classifies a vanished file
        self._files = None
        st = os.stat(apath)
        ident = (st.st_dev, st.st_ino)
        reason = self._doubt
        if self._state is None:
            reason = reason or "first read"
        elif ident != self._ident:
            reason = "file replaced (new inode)"
        elif st.st_size < self._size:
            reason = "file shrank"
        elif self._monotonic() - self._full_at >= self.resync_s:
            reason = reason or "periodic resync"
        if reason is not None and (self._state is None or ident != self._ident or st.st_size < self._size):
            await self.aclose()  # a replaced file needs a new connection (the old one reads the old inode)
        self._ident, self._size = ident, st.st_size
        reader = await self._open_reader()
        if reason is None:
            dv = await self._data_version(reader)
            if dv == self._dv and self._state is not None:
                self.stats.unchanged += 1
                return self._state
            try:
                return await self._delta(reader, dv, now)
            except _Resync as exc:
                reason = str(exc)
        elif reason == "periodic resync" and self._state is not None:
            # Every row's signature against the known ones, and only the rows that differ read
            # and converted (a full read when the patch cannot apply them): a resync of an
            # unchanged fleet no longer fetches every row (at 50k leases ~275k rows of transient
            # text and tuples every resync_s, a peak whose pymalloc arenas stayed; issue 10, RSS).
            self._doubt = None
            self._full_at = self._monotonic()
            self._note(reason)
            try:
                return await self._delta(reader, await self._data_version(reader), now, rescan=True)
            except _Resync as exc:
                reason = str(exc)
        return await self._full(reader, reason, now)

    async def _data_version(self, reader: SandboxDbReader) -> int:
        conn = reader._conn
        assert conn is not None
        try:
            rows = await conn.execute_fetchall("PRAGMA data_version")
        except sqlite3.Error as exc:
            raise reader._err(exc) from None
        return int(next(iter(rows))[0])

    def _note(self, reason: str) -> None:
        self.stats.full_reads += 1
        self.stats.last_resync_reason = reason
        self.stats.resync_reasons.append(reason)
        del self.stats.resync_reasons[:-20]

    async def _full(
        self,
        reader: SandboxDbReader,
        reason: str | None,
        now: datetime | None,
        *,
        changed: set[str] | None = None,
    ) -> DbState:
        """Read every table; `reason` None: not a resync but a delta the patch path could not
        apply (`changed`: its tables), so it is not counted as a full read."""
        self._doubt = None
        dv = await self._data_version(reader)
        ap = reader._apath

        async def run(conn: aiosqlite.Connection, s: _Schema) -> list[tuple[RowMap, list[tuple]]]:
            out: list[tuple[RowMap, list[tuple]]] = []
            for table, cols in _TABLES:
                if not s.has(table):
                    out.append((RowMap(), []))
                    continue
                # Keys and values in two scans in rowid order (aligned, one transaction): the
                # value rows go to the builders as fetched, no (rowid, signature, ...) copies;
                # the keys straight into a RowMap of hashes, the values' repeated text shared.
                keys = await _fetch_hashes(
                    conn, f'SELECT rowid, {_signature(s, table, cols)} FROM "{table}" ORDER BY rowid'
                )
                rows = await _fetch_table(conn, s, table, cols, ap)
                if len(keys) != len(rows):
                    raise SourceError("read", f"sandbox.db at {ap}: {table} changed within one read", path=ap)
                out.append((keys, rows))
            self._wm = {t: await _mark_high(conn, s, t) for t, _ in _TABLES if _marks(s, t)}
            self._tops = await _tops(conn, s)
            return out

        try:
            schema, results = await reader._transaction(run)
        except Exception as exc:
            if "rowid" not in str(exc):
                raise
            # A table without rowids (not LEON's): no change detection, the one-shot read each time.
            self._note("no rowids: full reads")
            state = await reader.read_state(now=now)
            self._state, self._dv = None, None
            return state
        old_sigs, old_recs = self._sigs, self._recs
        self._sigs = {}
        lists: list[list[tuple]] = []
        known: list[list[Any] | None] = []
        rowids: list[Any] = []
        for (table, _), (keys, rows) in zip(_TABLES, results, strict=True):
            sigs = self._sigs[table] = keys
            prev_sigs, prev_recs = old_sigs.get(table), old_recs.get(table)
            if prev_recs is not None and prev_sigs is not None:
                # unchanged rows (same rowid, same signature) keep their record
                known.append(
                    [prev_recs.get(rid) if prev_sigs.get(rid) == h else None for rid, h in sigs.items()]
                )
            else:
                known.append(None)
            rowids.append(sigs.ids)
            lists.append(rows)
        del results, keys, rows, old_sigs, old_recs
        self._schema_version = schema.version
        self._dv = dv
        if reason is not None:
            self._full_at = self._monotonic()
            self._note(reason)
        state = await self._build(reader, schema, now, lists, known, rowids, changed=changed)
        _trim()
        return state

    async def _delta(
        self, reader: SandboxDbReader, dv: int, now: datetime | None, *, rescan: bool = False
    ) -> DbState:
        """The rows a commit changed, converted into the last state. `rescan` (the periodic
        resync of a picture already read): every table's signatures are compared, none trusted
        to the watermarks."""
        ap = reader._apath
        prev_schema = self._schema_version

        async def run(conn: aiosqlite.Connection, s: _Schema) -> _Delta:
            if s.version != prev_schema:
                raise _Resync("schema changed")
            tops = await _tops(conn, s)
            explained = tops != self._tops
            touched = await _touched_leases(conn, s, self._tops.get("lease_events"), tops.get("lease_events"))
            out: dict[str, tuple[list[tuple], list[int]]] = {}
            plans: list[tuple[str, tuple[str, ...], list[tuple] | None]] = []
            for table, cols in _TABLES:
                if not s.has(table):
                    continue
                hot = (
                    None
                    if rescan
                    else await self._hot(conn, s, table, cols, touched if table == "sandbox_leases" else ())
                )
                if hot and not explained:  # a table scanned in full explains nothing
                    old = self._sigs.get(table, _EMPTY)
                    explained = any(old.get(rid) != sig for rid, sig in hot)
                plans.append((table, cols, hot))
            for table, cols, hot in plans:
                old = self._sigs.get(table, _EMPTY)
                sig_rows = hot
                if sig_rows is None or not explained:  # full signature scan of this table
                    # into a RowMap (built in the connection's thread), not a list of tuples
                    present = await _fetch_hashes(
                        conn, f'SELECT rowid, {_signature(s, table, cols)} FROM "{table}" ORDER BY rowid'
                    )
                    changed = [rid for rid, h in present.items() if old.get(rid) != h]
                    seen = len(present) - len(changed)  # unchanged rows, all of them known
                    gone: list[int] = []
                    if seen != len(old):  # some known row is no longer there
                        gone = [rid for rid in old.ids if rid not in present]
                else:
                    changed, gone = [rid for rid, sig in sig_rows if old.get(rid) != sig], []
                if not changed and not gone:
                    continue
                if hot is None and _marks(s, table):  # the marks' high water, for the next commit
                    self._wm[table] = await _mark_high(conn, s, table)
                sql = _with_key(s.select(table, cols, ap), s, table, cols)
                fetched: list[tuple] = []
                for chunk in _chunks(changed):
                    fetched.extend(
                        await conn.execute_fetchall(
                            f"{sql} WHERE rowid IN ({_placeholders(len(chunk))})", tuple(chunk)
                        )
                    )
                out[table] = (fetched, gone)
            self._tops = tops
            return out, await _parent_leases(conn, s, ap, out)

        schema, (delta, parents) = await reader._transaction(run)
        for table, (fetched, gone) in delta.items():
            self._sigs.setdefault(table, RowMap()).apply(gone, [(r[0], hash(r[1])) for r in fetched])
            self.stats.rows_fetched += len(fetched)
        self._dv = dv
        if not rescan:
            self.stats.delta_reads += 1
        if not delta and self._state is not None:
            return self._state  # a commit that touched none of the reconcile tables
        patched = await self._patch(reader, schema, now, delta, parents)
        if patched is not None:
            return patched
        for table, (fetched, gone) in delta.items():  # their records are stale: built again
            recs = self._recs.get(table)
            if recs is not None:
                recs.apply((*gone, *(r[0] for r in fetched)), ())
        return await self._full(reader, None, now, changed=set(delta))

    async def _patch(
        self,
        reader: SandboxDbReader,
        schema: _Schema,
        now: datetime | None,
        delta: dict[str, tuple[list[tuple], list[int]]],
        parents: list[tuple],
    ) -> DbState | None:
        """The new DbState with only the changed rows converted (records of the others kept),
        or None when the full conversion is needed. Converting every row again was ~170 ms of
        CPU per commit at 10k leases, for one changed row.

        Only for a clean picture: no problems before (a lease's problems can come from its
        terminals' and sessions' rows, which this does not re-vet) and none in the changed rows,
        and resource snapshots unchanged (one mapping by lease)."""
        prev = self._state
        if prev is None or prev.lease_problems or prev.problems or "lease_resource_snapshots" in delta:
            return None
        if set(self._recs) != {t for t, _ in _TABLES[:3]}:
            return None
        rows = {t: [r[2:] for r in delta.get(t, ((), ()))[0]] for t, _ in _TABLES[:3]}
        # The leases of changed child rows go along, so their inherited problems would show.
        changed_lids = {r[0] for r in rows["sandbox_leases"]}
        extra = [r[2:] for r in parents if r[2] not in changed_lids]
        sub = await reader._state(
            schema, rows["sandbox_leases"] + extra, rows["abstract_terminals"], rows["chat_sessions"], [],
            now if now is not None else datetime.now(UTC),
        )  # fmt: skip
        if sub.lease_problems or sub.problems:
            return None
        made = {
            "sandbox_leases": sub.leases[: len(rows["sandbox_leases"])],
            "abstract_terminals": sub.terminals,
            "chat_sessions": sub.chat_sessions,
        }
        out: dict[str, tuple[Any, ...]] = {}
        for table, recs in made.items():
            fetched, gone = delta.get(table, ((), ()))
            if len(recs) != len(fetched):
                return None
            if table not in delta:  # the same tuple: the reconciler skips regrouping it
                continue
            known = self._recs[table]
            known.apply(gone, [(r[0], rec) for r, rec in zip(fetched, recs, strict=True)])
            out[table] = tuple(known.values)
        state = replace(
            prev, read_at=sub.read_at, leases=out.get("sandbox_leases", prev.leases),
            terminals=out.get("abstract_terminals", prev.terminals),
            chat_sessions=out.get("chat_sessions", prev.chat_sessions),
        )  # fmt: skip
        self._state = state
        return state

    async def _hot(
        self, conn: aiosqlite.Connection, s: _Schema, table: str, cols: tuple[str, ...], leases: Any
    ) -> list[tuple] | None:
        """(rowid, signature) of the rows a LEON-way write touched since the last read; None when
        the watermark cannot vouch for the rest of the table (no mark column, or the row count,
        rowid sum or highest row do not add up): the caller scans that table in full."""
        marks = _marks(s, table)
        if not marks or table not in self._wm:
            return None
        wm = self._wm[table] or ""  # no text mark yet (an empty table): every text mark is news
        sig = _signature(s, table, cols)
        where = " OR ".join(f'"{c}" >= ?' for c in marks)
        picks = ", ".join(f'"{c}"' for c in marks)
        rows = list(
            await conn.execute_fetchall(
                f'SELECT rowid, {sig}, {picks} FROM "{table}" WHERE {where}', (wm,) * len(marks)
            )
        )
        high = self._wm[table]
        for r in rows:
            high = _high(high, r[2:])
        hot = {r[0]: hash(r[1]) for r in rows}
        for chunk in _chunks(sorted(leases)):
            for rid, sg in await conn.execute_fetchall(
                f'SELECT rowid, {sig} FROM "{table}" WHERE lease_id IN ({_placeholders(len(chunk))})',
                tuple(chunk),
            ):
                hot[rid] = hash(sg)
        agg = next(
            iter(await conn.execute_fetchall(f'SELECT count(*), total(rowid), max(rowid) FROM "{table}"'))
        )
        old = self._sigs.get(table, _EMPTY)
        new = [rid for rid in hot if rid not in old]  # = old's rowids | hot's, without a set of both
        tops = [t for t in (old.top(), max(new, default=None)) if t is not None]
        if (agg[0], int(agg[1] or 0), agg[2]) != (
            len(old) + len(new),
            old.total() + sum(new),
            max(tops, default=None),
        ):
            return None  # an insert or delete the marks did not show
        if agg[2] is not None:
            # The highest rowid is the one SQLite reuses after deleting the last row: check it.
            top = next(
                iter(
                    await conn.execute_fetchall(
                        f'SELECT rowid, {sig} FROM "{table}" WHERE rowid = ?', (agg[2],)
                    )
                )
            )
            if hot.get(top[0], old.get(top[0])) != hash(top[1]):
                return None
        self._wm[table] = high
        return list(hot.items())

    async def _build(
        self,
        reader: SandboxDbReader,
        schema: _Schema,
        now: datetime | None,
        lists: list[list[tuple]],
        known: list[list[Any] | None],
        rowids: list[Any],
        *,
        changed: set[str] | None,
    ) -> DbState:
        with gc_paused():
            state = await reader._state(
                schema, *lists, now if now is not None else datetime.now(UTC), known=known[:3]
            )
        del lists[:]  # the raw rows go now, not when the caller's frame ends
        prev = self._state
        if prev is not None and changed is not None and "lease_resource_snapshots" not in changed:
            # Unchanged snapshot rows: keep the mapping (and its records) the reconciler already knows.
            state = replace(state, resource_snapshots=prev.resource_snapshots)
        self._state = state
        # Records by rowid, for `_patch` (only when no row was dropped: then they line up).
        self._recs = {}
        for (table, _), ids, recs in zip(
            _TABLES[:3], rowids[:3], (state.leases, state.terminals, state.chat_sessions), strict=True
        ):
            if len(ids) == len(recs):
                self._recs[table] = RowMap.records(ids, recs)
        return state


def _files_key_or_none(path: str) -> tuple[Any, ...] | None:
    try:
        return _files_key(path)
    except OSError:
        return None  # the read says why (precheck)


def _files_key(path: str) -> tuple[Any, ...]:
    """What a commit to the database at `path` changes: the file's and its -wal's identity, size,
    and modification and change times (a WAL commit writes the -wal, a rollback-mode one the
    file). Raises OSError when the file is gone."""
    keys: list[Any] = [path]
    for name in (path, path + "-wal"):
        try:
            st = os.stat(name)
        except FileNotFoundError:
            if name == path:
                raise
            keys.append(None)
            continue
        keys.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(keys)
