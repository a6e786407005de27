"""sandbox.db rows -> domain records: the columns the reader selects, value coercion, the row
builders, schema introspection results and row vetting. No I/O (the reader, sandbox_db.py, runs
the queries)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from sys import intern as _intern
from typing import TYPE_CHECKING, Any

from opcockpit.adapters.leon.rowcheck import ABSENT, INT, INT_OPT, JSON, KEY, LINK, OPT, REQ, TS, vet
from opcockpit.adapters.leon.schema import OPTIONAL_TABLES
from opcockpit.domain.fastbuild import fast_factory
from opcockpit.domain.models import (
    ChatSessionRecord,
    LeaseEventRecord,
    LeaseRecord,
    ProviderEventRecord,
    ResourceSnapshotRecord,
    TerminalRecord,
)
from opcockpit.ports.errors import SourceError

if TYPE_CHECKING:  # detail records: created on first use (domain/detail_records.py, issue 9)
    from opcockpit.domain.detail_records import InstanceHistoryRecord, TerminalCommandRecord

LABEL = "sandbox.db"
HINT = "check --db / LEON_SANDBOX_DB_PATH (LEON's default is ~/.leon/sandbox.db)"
DEFAULT_BUSY_TIMEOUT_MS = 2000
_CHUNK = 500  # ids per IN (...) list, far below SQLITE_MAX_VARIABLE_NUMBER
_OFFLOOP_ROWS = 2000  # convert bigger results in a worker thread so the UI loop stays responsive

# Columns each table must have for the reader to make sense of it (`schema` error otherwise).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "sandbox_leases": ("lease_id", "provider_name", "desired_state", "observed_state"),
    "abstract_terminals": ("terminal_id", "thread_id", "lease_id"),
    "chat_sessions": ("chat_session_id", "thread_id", "terminal_id", "lease_id", "status"),
    "sandbox_instances": ("instance_id", "lease_id"),
    "lease_events": ("event_id", "lease_id", "event_type"),
    "provider_events": ("event_id", "provider_name", "instance_id", "event_type"),
    "lease_resource_snapshots": ("lease_id",),
    "terminal_commands": ("command_id", "terminal_id"),
    "thread_terminal_pointers": ("thread_id",),
    "terminal_command_chunks": ("command_id", "content"),
    "sandbox_volumes": ("volume_id",),  # Mycel only
    "sync_files": ("thread_id", "relative_path"),  # Mycel only
}
_TABLES_OF_INTEREST = tuple(REQUIRED_COLUMNS)

# Select lists, in the positional order the builders below expect.
_LEASE_COLS = (
    "lease_id",
    "provider_name",
    "current_instance_id",
    "desired_state",
    "observed_state",
    "status",
    "version",
    "needs_refresh",
    "last_error",
    "instance_created_at",
    "observed_at",
    "refresh_hint_at",
    "created_at",
    "updated_at",
    "instance_status",
    "workspace_key",
    "recipe_id",
    "volume_id",
)
_TERMINAL_COLS = (
    "terminal_id",
    "thread_id",
    "lease_id",
    "cwd",
    "state_version",
    "created_at",
    "updated_at",
    "env_delta_json",
)
_SESSION_COLS = (
    "chat_session_id",
    "thread_id",
    "terminal_id",
    "lease_id",
    "status",
    "started_at",
    "last_active_at",
    "ended_at",
    "close_reason",
    "runtime_id",
    "idle_ttl_sec",
    "max_duration_sec",
)
_SNAPSHOT_COLS = (
    "lease_id",
    "provider_name",
    "observed_state",
    "probe_mode",
    "cpu_used",
    "cpu_limit",
    "memory_used_mb",
    "memory_total_mb",
    "disk_used_gb",
    "disk_total_gb",
    "network_rx_kbps",
    "network_tx_kbps",
    "probe_error",
    "collected_at",
)
# Column kinds for `rowcheck.vet`, in select-list order (LEON's NOT NULL columns are REQ/INT).
_LEASE_KINDS = (KEY, REQ, OPT, REQ, REQ, OPT, INT, INT, OPT, TS, TS, TS, TS, TS, OPT, OPT, OPT, OPT)
_TERMINAL_KINDS = (KEY, REQ, LINK, REQ, INT_OPT, TS, TS, JSON)
_SESSION_KINDS = (KEY, REQ, REQ, LINK, REQ, TS, TS, TS, OPT, OPT, INT_OPT, INT_OPT)
_INSTANCE_COLS = ("instance_id", "lease_id", "provider_session_id", "status", "created_at", "last_seen_at")
_LEASE_EVENT_COLS = ("event_id", "lease_id", "event_type", "source", "payload_json", "error", "created_at")
_PROVIDER_EVENT_COLS = (
    "event_id",
    "provider_name",
    "instance_id",
    "event_type",
    "payload_json",
    "matched_lease_id",
    "created_at",
)
_COMMAND_COLS = (
    "command_id",
    "terminal_id",
    "chat_session_id",
    "command_line",
    "cwd",
    "status",
    "exit_code",
    "created_at",
    "updated_at",
    "finished_at",
)
_POINTER_COLS = ("thread_id", "active_terminal_id", "default_terminal_id", "updated_at")
_CHUNK_COLS = ("chunk_id", "stream", "content", "created_at")
_VOLUME_COLS = ("volume_id", "name", "source", "created_at")
_SYNC_FILE_COLS = ("thread_id", "relative_path", "checksum", "last_synced")
DEFAULT_TAIL_BYTES = 8192

Parser = Callable[[object], datetime | None]


# --------------------------------------------------------------------------- value coercion


def _int0(v: object) -> int:
    if v.__class__ is int:
        return v  # type: ignore[return-value]
    return _int_or_none(v) or 0


def _int_or_none(v: object) -> int | None:
    if v is None or v.__class__ is int:
        return v  # type: ignore[return-value]
    try:
        return int(v)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError, OverflowError):  # OverflowError: a REAL inf in an INTEGER column
        return None


def _float(v: object) -> float | None:
    if v is None or v.__class__ is float:
        return v  # type: ignore[return-value]
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _str(v: object) -> str | None:
    return v if v is None or v.__class__ is str else str(v)


def _i(v: Any) -> Any:
    """One str object per distinct text: sqlite3 makes a new str per value, so 10k leases held
    10k copies of "running" and each lease id once per table naming it (~15 MB of ~22 MB of
    record text at 10k leases, issue 10's memory budget). Interned strings are freed with their
    last reference (CPython < 3.12 keeps them mortal; 3.12+ too for runtime interning)."""
    return _intern(v) if v.__class__ is str else v


# One object per distinct number, as `_i` does for text: ints outside CPython's small-int cache
# (idle_ttl_sec 300, max_duration_sec 86400 on every session) and floats (snapshot totals, probe
# values) were one object per row: ~1.4 MB at 10k leases. Ints and floats apart (1 == 1.0 would
# hand back the other type); bounded, cleared wholesale when full like the timestamp cache.
_SHARED_CAP = 8192
_shared_ints: dict[int, int] = {}
_shared_floats: dict[float, float] = {}


def _n(v: Any) -> Any:
    """The shared object equal to `v` (an int or a float; anything else as is)."""
    cls = v.__class__
    if cls is int:
        table: dict[Any, Any] = _shared_ints
    elif cls is float and v != 0.0:  # 0.0 == -0.0: keep each zero's own sign
        table = _shared_floats
    else:
        return v
    got = table.get(v)
    if got is None:
        if len(table) >= _SHARED_CAP:
            table.clear()
        table[v] = got = v
    return got


def _bool(v: object) -> bool:
    if v.__class__ is int:
        return v != 0
    return _int0(v) != 0


# --------------------------------------------------------------------------- row builders
# Comprehensions with tuple unpacking: the fastest plain-Python shape for tens of thousands of rows.
# Records are made by `fast_factory` constructors (plain slot stores instead of a frozen
# dataclass's object.__setattr__ per field: ~5x cheaper); the select lists above are exactly the
# records' field order, which fast_factory verifies at import.

_new_lease = fast_factory(LeaseRecord, _LEASE_COLS)
_new_terminal = fast_factory(TerminalRecord, _TERMINAL_COLS)
_new_session = fast_factory(ChatSessionRecord, _SESSION_COLS)
_new_snapshot = fast_factory(ResourceSnapshotRecord, _SNAPSHOT_COLS)


def _leases(rows: Iterable[tuple], p: Parser) -> list[LeaseRecord]:
    new, i_ = _new_lease, _i
    return [
        new(
            i_(a),
            i_(b),
            c,  # the instance id: unique per lease
            i_(d),
            i_(e),
            i_(f),
            g if g.__class__ is int else _int0(g),
            h != 0 if h.__class__ is int else _bool(h),
            i,
            p(j),
            p(k),
            p(m),
            p(n),
            p(o),
            i_(q),
            i_(r),
            i_(s),
            i_(t),
        )
        for (a, b, c, d, e, f, g, h, i, j, k, m, n, o, q, r, s, t) in rows
    ]


def _terminals(rows: Iterable[tuple], p: Parser) -> list[TerminalRecord]:
    new, i_ = _new_terminal, _i
    return [
        new(i_(a), i_(b), i_(c), i_(d or ""), e if e.__class__ is int else _int0(e), p(f), p(g), i_(h))
        for (a, b, c, d, e, f, g, h) in rows
    ]


def _sessions(rows: Iterable[tuple], p: Parser) -> list[ChatSessionRecord]:
    new, i_, n_ = _new_session, _i, _n
    return [
        new(
            a,  # unique ids (session, runtime) are not interned: a slot in the intern table, no saving
            i_(b),
            i_(c),
            i_(d),
            i_(e),
            p(f),
            p(g),
            p(h),
            i_(i),
            j,
            n_(k) if k.__class__ is int else _int_or_none(k),
            n_(m) if m.__class__ is int else _int_or_none(m),
        )
        for (a, b, c, d, e, f, g, h, i, j, k, m) in rows
    ]


def _snapshots(rows: Iterable[tuple], p: Parser) -> dict[str, ResourceSnapshotRecord]:
    new, i_ = _new_snapshot, _i

    def f(v: object) -> float | None:
        return _n(v) if v.__class__ is float else _n(_float(v))

    return {
        a: new(
            i_(a),
            i_(_utf8(b)),
            i_(_utf8(c)),
            i_(_utf8(d)),
            f(e),
            f(g),
            f(h),
            f(i),
            f(j),
            f(k),
            f(m),
            f(n),
            i_(o if o is None or o.__class__ is str else _utf8(o)),  # a BLOB probe_error: text, not bytes
            p(q),
        )
        for (a, b, c, d, e, g, h, i, j, k, m, n, o, q) in rows
    }


def _instances(rows: Iterable[tuple], p: Parser) -> list[InstanceHistoryRecord]:
    from opcockpit.domain.detail_records import InstanceHistoryRecord

    # Detail query (a few rows): text columns made text whatever SQLite stored (BLOB, NULL).
    return [
        InstanceHistoryRecord(_utf8(a), _utf8(b), _str_or_none(c), _str_or_none(d), p(e), p(f))
        for (a, b, c, d, e, f) in rows
    ]


def _str_or_none(v: object) -> str | None:
    return None if v is None else _utf8(v)


def _lease_events(rows: Iterable[tuple], p: Parser) -> list[LeaseEventRecord]:
    return [LeaseEventRecord(a, b, c, d or "", e, f, p(g)) for (a, b, c, d, e, f, g) in rows]


def _provider_events(rows: Iterable[tuple], p: Parser) -> list[ProviderEventRecord]:
    return [ProviderEventRecord(_int0(a), b, c, d, e, f, p(g)) for (a, b, c, d, e, f, g) in rows]


def _commands(rows: Iterable[tuple], p: Parser) -> list[TerminalCommandRecord]:
    from opcockpit.domain.detail_records import TerminalCommandRecord

    return [
        TerminalCommandRecord(a, b, c, d or "", e or "", f or "", _int_or_none(g), p(h), p(i), p(j))
        for (a, b, c, d, e, f, g, h, i, j) in rows
    ]


def _utf8(v: object) -> str:
    if v is None:
        return ""
    if v.__class__ is bytes:  # a BLOB where LEON meant TEXT: show it, never crash
        return v.decode("utf-8", "replace")  # type: ignore[attr-defined,no-any-return]
    return v if v.__class__ is str else str(v)


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _is_decode_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "could not decode to utf-8" in str(exc).lower()


def _tail(text: str, nbytes: int) -> tuple[str, bool]:
    """The last `nbytes` UTF-8 bytes of `text` (a split character is dropped) and whether it was cut."""
    if nbytes < 0:
        return text, False
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= nbytes:
        return text, False
    return raw[len(raw) - nbytes :].decode("utf-8", "ignore"), True


# --------------------------------------------------------------------------- schema introspection


@dataclass(frozen=True, slots=True)
class _Schema:
    version: int
    tables: dict[str, frozenset[str]]  # table name -> column names (tables of interest only)
    all_tables: frozenset[str]

    def has(self, table: str) -> bool:
        return table in self.tables

    def select(self, table: str, cols: Sequence[str], apath: str) -> str:
        """`SELECT <cols> FROM table`, NULL for absent columns; schema error if required ones lack."""
        present = self.tables[table]
        missing = [c for c in REQUIRED_COLUMNS.get(table, ()) if c not in present]
        if missing:
            raise SourceError(
                "schema",
                f"sandbox.db at {apath}: table {table} lacks required column(s) {', '.join(missing)}; "
                "this is not a LEON schema opcockpit understands (LEON would say 'schema mismatch: "
                "purge and retry')",
                path=apath,
            )
        exprs = ", ".join(self.value(table, c) for c in cols)
        return f'SELECT {exprs} FROM "{table}"'

    def value(self, table: str, name: str) -> str:
        """The column as a selected value (the PostgreSQL schema turns timestamps into text here)."""
        return self.col(table, name)

    def col(self, table: str, name: str) -> str:
        """`name` quoted, or NULL when this variant lacks it (keeps ORDER BY/WHERE valid)."""
        return f'"{name}"' if name in self.tables.get(table, ()) else "NULL"

    @property
    def variant(self) -> str:
        lease_cols = self.tables.get("sandbox_leases", frozenset())
        if "volume_id" in lease_cols or "recipe_id" in lease_cols or "sandbox_volumes" in self.all_tables:
            return "mycel"
        if "instance_status" in lease_cols:
            return "leonai"
        return "older"

    @property
    def missing_tables(self) -> tuple[str, ...]:
        return tuple(t for t in OPTIONAL_TABLES if t not in self.all_tables)


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _where(conds: list[str], ts: str = "NULL") -> str:
    """AND the conditions; `{ts}` stands for the table's timestamp column expression."""
    return (" WHERE " + " AND ".join(f"({c.format(ts=ts)})" for c in conds)) if conds else ""


def _kinds(schema: _Schema, table: str, cols: Sequence[str], kinds: Sequence[str]) -> tuple[str, ...]:
    present = schema.tables.get(table, frozenset())
    return tuple(k if c in present else ABSENT for c, k in zip(cols, kinds, strict=True))


Vetted = tuple[
    tuple[LeaseRecord, ...],
    tuple[TerminalRecord, ...],
    tuple[ChatSessionRecord, ...],
    dict[str, tuple[str, ...]],
    tuple[str, ...],
]


def _vetted(
    schema: _Schema,
    p: Parser,
    leases: tuple[list[tuple], Sequence[LeaseRecord]],
    terminals: tuple[list[tuple], Sequence[TerminalRecord]],
    sessions: tuple[list[tuple], Sequence[ChatSessionRecord]],
) -> Vetted:
    """Leases, terminals and sessions with odd rows cleaned (see `rowcheck`).

    A lease's own problems, and those of the terminals and sessions bound to it, are returned by
    lease_id (its row shows them). Child rows whose lease_id is unusable cannot be
    bound to any lease: they are dropped and counted in the returned table-level problems.
    """
    lrecs, lp = vet(
        leases[0], leases[1], _LEASE_COLS, _kinds(schema, "sandbox_leases", _LEASE_COLS, _LEASE_KINDS),
        lambda r: _leases(r, p),
    )  # fmt: skip
    trecs, tp = vet(
        terminals[0], terminals[1], _TERMINAL_COLS,
        _kinds(schema, "abstract_terminals", _TERMINAL_COLS, _TERMINAL_KINDS), lambda r: _terminals(r, p),
    )  # fmt: skip
    srecs, sp = vet(
        sessions[0], sessions[1], _SESSION_COLS,
        _kinds(schema, "chat_sessions", _SESSION_COLS, _SESSION_KINDS), lambda r: _sessions(r, p),
    )  # fmt: skip
    if not (lp or tp or sp):
        return tuple(lrecs), tuple(trecs), tuple(srecs), {}, ()
    inherited: dict[str, list[str]] = {}
    notes: list[str] = []
    kept: dict[str, list[Any]] = {}
    for table, recs, found, ident in (
        ("abstract_terminals", trecs, tp, "terminal_id"),
        ("chat_sessions", srecs, sp, "chat_session_id"),
    ):
        dropped = []
        for i, texts in found.items():
            rec = recs[i]
            if any(t.startswith("lease_id ") for t in texts):
                dropped.append(i)
                continue
            rid = getattr(rec, ident)
            inherited.setdefault(rec.lease_id, []).extend(f"{table} {rid}: {t}" for t in texts)
        if dropped:
            gone = set(dropped)
            ids = ", ".join(str(getattr(recs[i], ident)) for i in dropped[:3])
            more = ", ..." if len(dropped) > 3 else ""
            notes.append(
                f"{table}: ignored {len(dropped)} row(s) with a NULL or non-text lease_id ({ids}{more})"
            )
            recs = [r for i, r in enumerate(recs) if i not in gone]
        kept[table] = recs
    by_lease: dict[str, list[str]] = {}
    for i, texts in lp.items():
        by_lease.setdefault(lrecs[i].lease_id, []).extend(texts)
    known = {r.lease_id for r in lrecs} if inherited else set()
    for lid, texts in inherited.items():
        if lid in known:  # rows of deleted leases stay ignored, as reconcile ignores them
            by_lease.setdefault(lid, []).extend(texts)
    problems = {lid: tuple(texts) for lid, texts in by_lease.items()}
    return (
        tuple(lrecs),
        tuple(kept["abstract_terminals"]),
        tuple(kept["chat_sessions"]),
        problems,
        tuple(notes),
    )
