"""The SQL seam between LEON's readers: what differs between sandbox.db (SQLite) and LEON's tables
in PostgreSQL (Mycel), stated once, so the detail queries (`reader_base.LeonReaderBase`) are
written once and both readers feed the same row builders and row vetting (`sandbox_rows`).

Only spelling differs, never meaning: a query built for either dialect selects the same rows in
the same order, except for the tie-break of rows with equal timestamps (SQLite's `rowid`, which
PostgreSQL lacks: there the table's own id column).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["POSTGRES", "SQLITE", "Dialect", "Q"]


class Q(NamedTuple):
    """One query of a read snapshot. `table`/`cols` name what the select list holds, so the
    PostgreSQL reader can turn its column types into SQLite's value types (ignored by SQLite)."""

    sql: str
    params: Sequence[Any] = ()
    table: str | None = None
    cols: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    p: str  # the parameter placeholder
    nothing: str  # a statement that returns no rows (keeps the result positions)
    desc: str  # newest first with NULL times last (SQLite's DESC already puts NULLs last)
    rowid: str | None  # SQLite's tie-break of equal timestamps; None: the table's id column
    no_limit: int | None  # the LIMIT value meaning "every row"
    byte_len: str  # a TEXT value's size in UTF-8 bytes ({} = the expression)
    prefix: str  # "the first n characters of {}": compared with the prefix
    ts_text: str  # a time column as LEON's ISO text, for the since/until filters ({} = column)
    skip_absent_ts: bool  # a since/until on a table without the time column filters nothing
    history_fallback: bool  # lease history from provider_events where lease_events is absent (Mycel)
    chunk: int | None  # ids per IN list (SQLite's variable limit); None: one `= ANY(array)`

    def tiebreak(self, key: str) -> str:
        return self.rowid or key

    def limit(self, limit: int | None) -> int | None:
        return self.no_limit if limit is None or limit <= 0 else int(limit)

    def starts(self, expr: str) -> str:
        """`expr` starts with the prefix: takes (len(prefix), prefix) as parameters."""
        return f"{self.prefix.format(expr, p=self.p)} = {self.p}"

    def in_list(self, col: str, ids: Sequence[str]) -> tuple[str, list[Any]]:
        """`col` among `ids`, as one condition (all ids at once)."""
        if self.chunk is None:
            return f"{col} = ANY({self.p})", [list(ids)]
        return f"{col} IN ({','.join(self.p for _ in ids)})", list(ids)

    def in_chunks(self, col: str, ids: Sequence[str]) -> Iterable[tuple[str, list[Any]]]:
        """`col` among `ids`, as one condition per chunk of ids (one query each)."""
        if self.chunk is None:
            yield self.in_list(col, ids)
            return
        for i in range(0, len(ids), self.chunk):
            yield self.in_list(col, ids[i : i + self.chunk])


SQLITE = Dialect(
    name="sqlite",
    p="?",
    nothing="SELECT 1 WHERE 0",
    desc="DESC",
    rowid="rowid",
    no_limit=-1,
    byte_len="length(CAST({} AS BLOB))",
    prefix="substr({}, 1, {p})",
    ts_text="{}",
    skip_absent_ts=False,
    history_fallback=False,
    chunk=500,  # far below SQLITE_MAX_VARIABLE_NUMBER
)

POSTGRES = Dialect(
    name="postgres",
    p="%s",
    nothing="SELECT 1 WHERE false",
    desc="DESC NULLS LAST",
    rowid=None,
    no_limit=None,  # LIMIT NULL
    byte_len="octet_length({})",
    prefix="left({}, {p})",
    ts_text="replace({}::text, ' ', 'T')",  # a timestamp column's text has a space, LEON's a 'T'
    skip_absent_ts=True,
    history_fallback=True,
    chunk=None,
)
