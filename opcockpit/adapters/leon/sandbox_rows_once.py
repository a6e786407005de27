"""The reconcile input's row builders for a one-shot read (`snapshot`, issue 9): the very records
`sandbox_rows` builds, without interning their text.

`sandbox_rows` interns repeated text (one str per distinct value: issue 10's memory budget for
the live cockpit, which keeps its records for hours). A snapshot process prints its records and
exits, and the ~300k calls at 10k leases (~0.1 s) bought it nothing. Kept in step with
sandbox_rows by tests/test_snapshot_one_shot_read.py (same records from both reads).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from opcockpit.adapters.leon.sandbox_rows import (
    Parser,
    _bool,
    _float,
    _int0,
    _int_or_none,
    _new_lease,
    _new_session,
    _new_snapshot,
    _new_terminal,
    _utf8,
)
from opcockpit.domain.models import ChatSessionRecord, LeaseRecord, ResourceSnapshotRecord, TerminalRecord

__all__ = ["ONE_SHOT_BUILDERS"]


class Built(list):  # type: ignore[type-arg]
    """A one-shot builder's records, carrying the rows' columns as it transposed them (`columns`)
    and its parsed time columns by index (`parsed`), so rowcheck.vet neither transposes the rows
    again nor reads the times back off the records (~a third of vet's cost at 10k leases)."""

    __slots__ = ("columns", "parsed")

    def __init__(self, records: list[Any], columns: list[tuple], parsed: dict[int, list]) -> None:
        super().__init__(records)
        self.columns = columns
        self.parsed = parsed


def _timed(
    rows: Iterable[tuple], p: Parser, *times: int
) -> tuple[Iterable[tuple], list[tuple], dict[int, list]]:
    """(`rows` with their `times` columns parsed by `p`, the raw columns, the parsed ones by
    index). Column by column (timeutil's `parse.column`: C-level passes over LEON's own shapes,
    ~2.4x cheaper than a call per value)."""
    column = getattr(p, "column", None)
    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return rows, [], {}
    if column is None:  # a plain parse_ts-like callable
        column = partial(map, p)
    raw = list(zip(*rows, strict=True))
    cols = list(raw)
    parsed = {}
    for j in times:
        cols[j] = parsed[j] = list(column(raw[j]))
    return zip(*cols, strict=True), raw, parsed


def _leases(rows: Iterable[tuple], p: Parser) -> list[LeaseRecord]:
    new = _new_lease
    timed, raw, parsed = _timed(rows, p, 9, 10, 11, 12, 13)
    records = [
        new(
            a, b, c, d, e, f,
            g if g.__class__ is int else _int0(g),
            h != 0 if h.__class__ is int else _bool(h),
            i, j, k, m, n, o, q, r, s, t,
        )
        for (a, b, c, d, e, f, g, h, i, j, k, m, n, o, q, r, s, t) in timed
    ]  # fmt: skip
    return Built(records, raw, parsed)


def _terminals(rows: Iterable[tuple], p: Parser) -> list[TerminalRecord]:
    new = _new_terminal
    timed, raw, parsed = _timed(rows, p, 5, 6)
    records = [
        new(a, b, c, d or "", e if e.__class__ is int else _int0(e), f, g, h)
        for (a, b, c, d, e, f, g, h) in timed
    ]
    return Built(records, raw, parsed)


def _sessions(rows: Iterable[tuple], p: Parser) -> list[ChatSessionRecord]:
    new = _new_session
    timed, raw, parsed = _timed(rows, p, 5, 6, 7)
    records = [
        new(
            a, b, c, d, e, f, g, h, i, j,
            k if k.__class__ is int else _int_or_none(k),
            m if m.__class__ is int else _int_or_none(m),
        )
        for (a, b, c, d, e, f, g, h, i, j, k, m) in timed
    ]  # fmt: skip
    return Built(records, raw, parsed)


def _snapshots(rows: Iterable[tuple], p: Parser) -> dict[str, ResourceSnapshotRecord]:
    # _utf8/_float inlined for the values they return as they are (~90k calls fewer at 10k).
    new, f, u, F = _new_snapshot, _float, _utf8, float
    return {
        a: new(
            a,
            b if b.__class__ is str else u(b),
            c if c.__class__ is str else u(c),
            d if d.__class__ is str else u(d),
            e if e is None or e.__class__ is F else f(e),
            g if g is None or g.__class__ is F else f(g),
            h if h is None or h.__class__ is F else f(h),
            i if i is None or i.__class__ is F else f(i),
            j if j is None or j.__class__ is F else f(j),
            k if k is None or k.__class__ is F else f(k),
            m if m is None or m.__class__ is F else f(m),
            n if n is None or n.__class__ is F else f(n),
            o if o is None or o.__class__ is str else u(o),  # a BLOB probe_error: text, not bytes
            q,
        )
        for (a, b, c, d, e, g, h, i, j, k, m, n, o, q) in _timed(rows, p, 13)[0]
    }  # fmt: skip


ONE_SHOT_BUILDERS = (_leases, _terminals, _sessions, _snapshots)
