"""The reconcile input's row builders for a one-shot read (`snapshot`, issue 9): the very records
`sandbox_rows` builds, without interning their text.

`sandbox_rows` interns repeated text (one str per distinct value: issue 10's memory budget for
the live cockpit, which keeps its records for hours). A snapshot process prints its records and
exits, and the ~300k calls at 10k leases (~0.1 s) bought it nothing. Kept in step with
sandbox_rows by tests/test_snapshot_one_shot_read.py (same records from both reads).
"""

from __future__ import annotations

from collections.abc import Iterable

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


def _leases(rows: Iterable[tuple], p: Parser) -> list[LeaseRecord]:
    new = _new_lease
    return [
        new(
            a, b, c, d, e, f,
            g if g.__class__ is int else _int0(g),
            h != 0 if h.__class__ is int else _bool(h),
            i, p(j), p(k), p(m), p(n), p(o), q, r, s, t,
        )
        for (a, b, c, d, e, f, g, h, i, j, k, m, n, o, q, r, s, t) in rows
    ]  # fmt: skip


def _terminals(rows: Iterable[tuple], p: Parser) -> list[TerminalRecord]:
    new = _new_terminal
    return [
        new(a, b, c, d or "", e if e.__class__ is int else _int0(e), p(f), p(g), h)
        for (a, b, c, d, e, f, g, h) in rows
    ]


def _sessions(rows: Iterable[tuple], p: Parser) -> list[ChatSessionRecord]:
    new = _new_session
    return [
        new(
            a, b, c, d, e, p(f), p(g), p(h), i, j,
            k if k.__class__ is int else _int_or_none(k),
            m if m.__class__ is int else _int_or_none(m),
        )
        for (a, b, c, d, e, f, g, h, i, j, k, m) in rows
    ]  # fmt: skip


def _snapshots(rows: Iterable[tuple], p: Parser) -> dict[str, ResourceSnapshotRecord]:
    new, f = _new_snapshot, _float
    return {
        a: new(
            a, _utf8(b), _utf8(c), _utf8(d), f(e), f(g), f(h), f(i), f(j), f(k), f(m), f(n),
            o if o is None or o.__class__ is str else _utf8(o),  # a BLOB probe_error: text, not bytes
            p(q),
        )
        for (a, b, c, d, e, g, h, i, j, k, m, n, o, q) in rows
    }  # fmt: skip


ONE_SHOT_BUILDERS = (_leases, _terminals, _sessions, _snapshots)
