"""The PostgreSQL source's two translations: a server error into one clear, secret-free line
(`map_pg_error`), and PostgreSQL's value types into what SQLite would have returned (`PgSchema.fix`),
so the rows go through the same builders and vetting as sandbox.db's (`sandbox_rows`).

- timestamps -> ISO text (a naive `timestamp` gives back LEON's naive local string byte for byte,
  `timestamptz` an offset), booleans -> 0/1, json/jsonb -> JSON text, numeric -> int or float.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from opcockpit.adapters.leon.sandbox_rows import _Schema
from opcockpit.domain.secrets import redact_url, remember_url, scrub
from opcockpit.domain.text import one_line
from opcockpit.ports.errors import SourceError

__all__ = [
    "STATEMENT_TIMEOUT_MS",
    "PgSchema",
    "PgSourceSpec",
    "connect_options",
    "map_pg_error",
    "sqlite_value",
    "sqlstate",
]

STATEMENT_TIMEOUT_MS = 30_000
_TS_TYPES = ("date", "time")  # timestamps are selected as text (`PgSchema.value`)
_JSON_TYPES = ("json", "jsonb")


class PgSourceSpec:
    """Where the source lives: a URL (password registered with the redactor) and a schema."""

    __slots__ = ("schema", "shown", "url")

    def __init__(self, url: str, schema: str = "public") -> None:
        remember_url(url)
        self.url = url
        self.schema = schema or "public"
        self.shown = f"{redact_url(url)} schema {self.schema}"

    def __repr__(self) -> str:  # never the password, even in a traceback's locals
        return f"PgSourceSpec({self.shown!r})"


# --------------------------------------------------------------------------- errors


def sqlstate(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None)


def map_pg_error(exc: BaseException, spec: PgSourceSpec, table: str | None = None) -> SourceError:
    """One clear, secret-free line for a PostgreSQL failure."""
    where = f"PostgreSQL source {spec.shown}"
    raw = one_line(scrub(str(exc) or type(exc).__name__))
    code = sqlstate(exc)
    if code is None and "authentication failed" in raw:  # a failed connect carries no SQLSTATE
        code = "28P01"
    elif code is None and "does not exist" in raw and "database" in raw:
        code = "3D000"
    if code in ("28P01", "28000"):
        return SourceError(
            "permission", f"{where}: authentication failed (wrong user or password)", path=spec.shown
        )
    if code == "42501":
        what = f" on {spec.schema}.{table}" if table else ""
        return SourceError(
            "permission",
            f"{where}: this role may not read{what} ({raw}); GRANT USAGE ON SCHEMA and SELECT on "
            "LEON's tables to it (docs/postgres.md)",
            path=spec.shown,
        )
    if code == "3D000":
        return SourceError("missing", f"{where}: database does not exist ({raw})", path=spec.shown)
    if code in ("42P01", "3F000"):
        return SourceError("not_leon", f"{where}: {raw}", path=spec.shown)
    if code in ("42703",):
        return SourceError("schema", f"{where}: {raw}", path=spec.shown)
    if code == "25006":  # read_only_sql_transaction: something tried to write
        return SourceError(
            "permission", f"{where}: refused a write (read-only source): {raw}", path=spec.shown
        )
    if code == "57014":
        return SourceError(
            "locked", f"{where}: query cancelled after {STATEMENT_TIMEOUT_MS // 1000}s", path=spec.shown
        )
    if code is None or code.startswith("08") or code.startswith("57P"):
        return SourceError("missing", f"{where}: cannot reach the server ({raw})", path=spec.shown)
    return SourceError("corrupt", f"{where}: {raw}", path=spec.shown)


# --------------------------------------------------------------------------- value normalisation


def _ts_text(v: Any) -> Any:
    if isinstance(v, datetime | date | time):
        return v.isoformat()
    return v


def _bool_int(v: Any) -> Any:
    return int(v) if isinstance(v, bool) else v


def _json_text(v: Any) -> Any:
    return v if v is None or isinstance(v, str) else json.dumps(v, separators=(", ", ": "))


def _num(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() and abs(v) < 2**63 else float(v)
    return v


def _fixer(pgtype: str) -> Callable[[Any], Any] | None:
    t = pgtype.lower()
    if t.startswith("timestamp"):
        return None
    if t.startswith(_TS_TYPES):
        return _ts_text
    if t == "boolean":
        return _bool_int
    if t in _JSON_TYPES:
        return _json_text
    if t.startswith("numeric"):
        return _num
    return None


def sqlite_value(v: Any) -> Any:
    """One value as SQLite would have returned it, judged by its Python type (for rows whose
    columns are expressions across joins, where the column types are not at hand)."""
    if v is None or v.__class__ in (str, int, float):
        return v
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, datetime | date | time):
        return v.isoformat()
    if isinstance(v, Decimal):
        return _num(v)
    if isinstance(v, dict | list):
        return _json_text(v)
    return v


def connect_options(statement_timeout_ms: int = STATEMENT_TIMEOUT_MS) -> str:
    """Session options of every source connection: the server refuses writes whatever the role
    may, no statement runs longer than the timeout, timestamptz text is in UTC, and no JIT (the
    cockpit's reads are short: compiling them took longer than running them, ~1 s on a join)."""
    timeout = int(statement_timeout_ms)
    return f"-c default_transaction_read_only=on -c statement_timeout={timeout} -c TimeZone=UTC -c jit=off"


class PgSchema(_Schema):
    """`_Schema` plus the column types (for the value normalisation)."""

    __slots__ = ("types",)

    def __init__(
        self, tables: dict[str, frozenset[str]], all_tables: frozenset[str], types: dict[str, dict[str, str]]
    ) -> None:
        super().__init__(0, tables, all_tables)
        object.__setattr__(self, "types", types)

    def value(self, table: str, name: str) -> str:
        """Timestamps as LEON's ISO text, made by the server: the row builders parse text as they
        parse sandbox.db's, so datetime objects would only be formatted back to text first (that
        was ~60 % of a 10k-lease read). timestamptz text is UTC (`connect_options`)."""
        col = self.col(table, name)
        pgtype = self.types.get(table, {}).get(name, "") if col != "NULL" else ""
        if _is_naive_timestamp(pgtype):
            return _leon_text(col)
        if pgtype.startswith("timestamp"):
            return f"replace({col}::text, ' ', 'T')"
        if pgtype == "boolean":  # SQLite's 0/1 made by the server: no Python pass over the rows
            return f"{col}::int"
        return col

    def fix(self, table: str | None, cols: Sequence[str], rows: list[tuple]) -> list[tuple]:
        """Rows as SQLite would have returned them (only the columns whose type needs it)."""
        types = self.types.get(table, {})
        fixes = [
            (i, f)
            for i, c in enumerate(cols)
            if c in types and (f := _fixer(types[c])) is not None and not _made_by_server(f, rows, i)
        ]
        if not fixes or not rows:
            return rows
        out = []
        for r in rows:
            row = list(r)
            for i, f in fixes:
                row[i] = f(row[i])
            out.append(tuple(row))
        return out


def _made_by_server(fix: Callable[[Any], Any], rows: list[tuple], i: int) -> bool:
    """A boolean column `value()` selected as ::int: its first non-NULL value is no bool (one SQL
    expression gives every row of a column the same type), so the rows need no pass."""
    if fix is not _bool_int:
        return False
    first = next((r[i] for r in rows if r[i] is not None), None)
    return first is None or first.__class__ is not bool


def _is_naive_timestamp(pgtype: str) -> bool:
    return pgtype.startswith("timestamp") and pgtype.endswith("without time zone")


_WHOLE = "'YYYY-MM-DD\"T\"HH24:MI:SS'"
_MICRO = "'YYYY-MM-DD\"T\"HH24:MI:SS.US'"


def _leon_text(col: str) -> str:
    """A naive timestamp as the very text LEON's `isoformat()` writes to sandbox.db, made by the
    server: six fraction digits, or none for a whole second (`::text` trims a fraction's
    trailing zeros, "12:00:01.4075"). The same text, so the same records, and `parse.column`
    takes each column in its C-level pass (19 or 26 characters only). It was a Python pass
    over every table's rows (~10 % of values end in a zero: nearly every column had one), ~0.1 s
    of CPU at 10k leases for some ~50 ms more of the server's (issue 12). `to_char` ignores
    DateStyle; years outside 1..9999 (and infinity) keep `::text`, as before."""
    return (
        f"CASE WHEN {col} < '0001-01-01' OR {col} >= '10000-01-01' THEN replace({col}::text, ' ', 'T') "
        f"WHEN {col}::timestamp(0) = {col} THEN to_char({col}, {_WHOLE}) ELSE to_char({col}, {_MICRO}) END"
    )
