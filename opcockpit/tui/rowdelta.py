"""Table cells kept up to date by change, not rebuilt per refresh (issue 10). No Textual import.

`gt_table(gt)` builds the cells of every row: at 10k leases that was ~12 % of the cockpit's CPU,
nearly all of it for rows that did not change. `RowCells` keeps the cells of each row and, per
refresh, recomputes only

- the rows whose object changed (the incremental reconciler keeps unchanged rows as the same
  objects, so identity is the test; a new value-equal object costs one compare), and
- the rows whose displayed age moves to its next bucket (`rows.bucket_age`), for cells that
  hold ages (`ages_of`): each row's next bucket boundary is a deadline in a heap. The ground-truth
  and orphan cells hold their times instead (tui/table/ages.py: the table paints the ages of the
  rows on screen), so for them time passing costs nothing here.

`update(rows, now)` returns the delta (`RowsDelta`) and keeps `cells` equal to
`{key(r): cells_of(r, now) for r in rows}` (tests/test_rowdelta.py checks this on random
sequences). A clock going backwards recomputes everything.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import compress
from operator import is_not
from typing import Any, Generic, Protocol, TypeVar

from opcockpit.tui.rows import gt_cells, orphan_cells

R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)
Cells = tuple[Any, ...]

__all__ = ["RowCells", "RowObserver", "RowsDelta", "gt_row_cells", "next_bucket_at", "orphan_row_cells"]


def next_bucket_at(ts: datetime | None, now: datetime) -> datetime | None:
    """When the age of `ts` (as `rows.age_of` buckets it) shows its next value; None: never."""
    if ts is None:
        return None
    s = max(int((now - ts).total_seconds()), 0)
    if s < 60:
        step = 5
    elif s < 3600:
        step = 60
    elif s < 86400:
        step = 600
    else:
        step = 3600
    return ts + timedelta(seconds=(s // step + 1) * step)


class RowObserver(Protocol[R_contra]):
    """Told of every row RowCells takes in or lets go (domain.clock_skew.FutureStamps): state kept
    by change beside the cells, without a second walk over all rows."""

    def put(self, key: str, row: R_contra, now: datetime) -> None: ...

    def remove(self, key: str) -> None: ...

    def reset(self) -> None: ...


@dataclass(slots=True)
class RowsDelta:
    """What one `update` changed: keys added or recomputed (with their cells) and keys removed."""

    upserts: dict[str, Cells] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.upserts or self.removed)


class RowCells(Generic[R]):
    """Cells per row key, recomputed only for changed rows and rows whose age bucket moved."""

    def __init__(
        self,
        key: Callable[[R], str],
        cells_of: Callable[[R, datetime], Cells],
        ages_of: Callable[[R], Iterable[datetime | None]],
        tally: Callable[[R], str] | None = None,
        reage: Callable[[R, Cells, datetime], Cells] | None = None,
        observer: RowObserver[R] | None = None,
    ) -> None:
        self._key = key
        self._cells_of = cells_of
        self._ages_of = ages_of
        self._tally = tally
        self._reage = reage  # the cells with only the ages recomputed (an age bucket moved)
        self._observer = observer  # put/remove per changed row; reset when the clock goes back
        self.cells: dict[str, Cells] = {}
        self.rows: dict[str, R] = {}  # the current rows by key (kept, not rebuilt per refresh)
        self.counts: dict[str, int] = {}  # rows per `tally(row)` (the header's convergence counts)
        self._seq: Sequence[R] | None = None
        self._now: datetime | None = None
        self._due: list[tuple[datetime, str, int]] = []  # (deadline, key, id(row)): lazy deletion
        self.recomputed = 0  # cells built by the last update (diagnostics, tests)

    def _count(self, row: R, n: int) -> None:
        if self._tally is not None:
            name = self._tally(row)
            left = self.counts.get(name, 0) + n
            if left:
                self.counts[name] = left
            else:
                self.counts.pop(name, None)

    def _put(self, k: str, row: R, now: datetime, delta: RowsDelta, *, ages_only: bool = False) -> None:
        old = self.cells.get(k) if ages_only and self._reage is not None else None
        cells = self._reage(row, old, now) if old is not None and self._reage else self._cells_of(row, now)
        self.recomputed += 1
        if self.cells.get(k) != cells:
            delta.upserts[k] = cells
        self.cells[k] = cells
        self.rows[k] = row
        deadlines = [d for d in (next_bucket_at(t, now) for t in self._ages_of(row)) if d is not None]
        if deadlines:
            deadline = min(deadlines)
            heapq.heappush(self._due, (deadline, k, id(row)))

    def _in_place(self, rows: Sequence[R], now: datetime, delta: RowsDelta) -> bool:
        """The fast path: `rows` is the last sequence with some rows replaced at their places
        (the incremental reconciler keeps order and unchanged row objects). The positions whose
        object changed are found at C speed (~0.2 ms at 10k rows, against ~3 ms for the keyed walk);
        False, having changed nothing, when a row came, went or moved (the keyed walk then)."""
        prev = self._seq
        if prev is None or len(prev) != len(rows):
            return False
        moved = list(compress(range(len(rows)), map(is_not, rows, prev)))
        key = self._key
        if any(key(rows[i]) != key(prev[i]) for i in moved):
            return False
        observer = self._observer
        for i in moved:
            row, old = rows[i], prev[i]
            k = key(row)
            if self.rows.get(k) is not old:  # not what the keyed walk left (cannot happen)
                return False
        for i in moved:
            row, old = rows[i], prev[i]
            k = key(row)
            self._count(old, -1)
            self._count(row, 1)
            self._put(k, row, now, delta)
            if observer is not None:
                observer.put(k, row, now)
        self._seq = rows
        return True

    def update(self, rows: Sequence[R], now: datetime) -> RowsDelta:
        delta = RowsDelta()
        self.recomputed = 0
        if self._now is not None and now < self._now:  # time went back: buckets may too
            self.rows.clear()
            self.counts.clear()
            self._due.clear()
            self._seq = None
            if self._observer is not None:
                self._observer.reset()
        observer = self._observer
        if rows is not self._seq and not self._in_place(rows, now, delta):
            known, seen = self.rows, set()
            for row in rows:
                k = self._key(row)
                seen.add(k)
                prev = known.get(k)
                if prev is not row:
                    if prev is not None:
                        self._count(prev, -1)
                    self._count(row, 1)
                    self._put(k, row, now, delta)
                    if observer is not None:
                        observer.put(k, row, now)
            if len(seen) != len(known):
                for k in [k for k in known if k not in seen]:
                    self._count(known.pop(k), -1)
                    del self.cells[k]
                    delta.removed.append(k)
                    if observer is not None:
                        observer.remove(k)
            self._seq = rows
        due = self._due
        while due and due[0][0] <= now:
            _, k, rid = heapq.heappop(due)
            row = self.rows.get(k)
            if row is not None and id(row) == rid:
                self._put(k, row, now, delta, ages_only=True)
        if len(due) > 4 * max(len(self.rows), 64):  # lazily deleted entries pile up: rebuild
            self._due = [e for e in due if id(self.rows.get(e[1])) == e[2]]
            heapq.heapify(self._due)
        self._now = now
        return delta


def _no_ages(_row: Any) -> tuple[()]:
    return ()


def gt_row_cells(observer: RowObserver[Any] | None = None) -> RowCells[Any]:
    """Ground-truth cells (`rows.gt_cells`) by lease id; `counts` is rows per convergence
    (`rows.counts`); `observer` sees every row change. The cells hold their times as AgeStamps
    (the table paints the ages), so time passing recomputes nothing here."""
    return RowCells(
        lambda r: r.lease_id, gt_cells, _no_ages, lambda r: r.convergence.value, observer=observer
    )


def orphan_row_cells() -> RowCells[Any]:
    """Orphan cells (`rows.orphan_cells`) by orphan key; the age (created_at) is painted."""
    return RowCells(lambda o: o.key, orphan_cells, _no_ages)
