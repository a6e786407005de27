"""Ages painted at render time (issue 10, the idle tick). No Textual.

A ground-truth or orphan cell that shows an age ("Active 12m") holds the point in time itself, an
`AgeStamp`, not the age: the cell then changes only when the row does, and time passing changes no
cell at all. The table formats a stamp as its age at the table's `now` (the snapshot's
`generated_at`, never the wall clock), bucketed by `bucket_age` so each bucket renders one text,
and only for the rows it paints: at 10k leases re-aging the cells of every row whose age moved to
its next bucket was ~300 rows per 2 s tick (most of a quiet tick's table work), nearly all of them
scrolled off screen.

Sorting by such a column orders by the stamp (newest = youngest first, ascending), which does not
change as time passes, so nothing re-sorts either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opcockpit.tui.table.filter import Predicate

__all__ = ["NO_NOW", "AgeStamp", "Calm", "TableAges", "bucket_age", "bucket_step", "stamp"]

NO_NOW = datetime.min  # a row's ages were painted before its table had a `now`
SEP = "\x1f"  # joins cells so a pattern cannot match across a column boundary by accident
# Rows on screen -> (their version when last aged, the first time one of their age texts may move;
# None: never). Kept by the table view between ticks (`TableAges.age_window`).
Calm = dict[str, tuple[int, datetime | None]]


def bucket_age(seconds: float | None) -> int | None:
    """Round an age down to a step of `fmt_age`'s resolution, so each bucket renders one text and
    a refresh changes an age cell only when its bucket moves (strip cache, diff size)."""
    if seconds is None:
        return None
    s = max(int(seconds), 0)
    return s - s % bucket_step(s)


def bucket_step(s: int) -> int:
    """The width of the bucket an age of `s` whole seconds falls in (see bucket_age)."""
    if s < 60:
        return 5  # 5 s steps: fresh enough, and a 2 s tick changes few cells
    if s < 3600:
        return 60  # "12m"
    if s < 86400:
        return 600  # "1h30m": 10-minute steps
    return 3600  # "2d3h"


@dataclass(frozen=True, slots=True)
class AgeStamp:
    """A cell value shown as the age of `at` at the table's `now` (see the module docstring)."""

    at: datetime

    def age(self, now: datetime | None) -> int | None:
        """The bucketed age in seconds at `now` (None when the table has no `now` yet)."""
        return None if now is None else bucket_age((now - self.at).total_seconds())

    def turns_at(self, now: datetime) -> datetime:
        """The first time after `now` at which the bucket, so the text, moves on."""
        s = max(int((now - self.at).total_seconds()), 0)
        step = bucket_step(s)
        return self.at + timedelta(seconds=s - s % step + step)

    def sort_value(self) -> float:
        """Ascending = youngest first, as ascending ages sort; constant as time passes."""
        return -self.at.timestamp()


def stamp(at: datetime | None) -> AgeStamp | None:
    return None if at is None else AgeStamp(at)


class TableAges:
    """TableModel's painted ages (a mixin): `now`, `set_now`, and `_age` for the rows asked for.

    A row whose cells hold AgeStamps has `aged` = the `now` its texts were painted at; `get_texts`
    and `row_version` (what the view reads for the rows it paints) paint it again when `now` moved.
    """

    now: datetime | None
    _rows: dict[str, Any]
    _columns: tuple[Any, ...]  # model.Column (not imported: model imports this module)
    _predicate: Predicate | None
    _cursor_key: str | None
    _text: Callable[[Any, Any], str]
    _texts: Callable[[Any], tuple[str, ...]]
    view_index: Callable[[str], int | None]
    _neighbours: Callable[[int | None], list[str]]
    _rebuild_filtered: Callable[[], None]
    _follow: Callable[[str | None, int | None, Sequence[str]], Any]  # -> model.CursorMove

    def _age(self, row: Any) -> None:
        """Paint row's ages at `now` (its other texts stay); a moved age bumps its version. A cell
        whose bucket is the one it was painted in keeps its text unformatted: a 2 s tick moves
        few buckets, and formatting every age of the rows on screen twice a tick was most of a
        carried tick's table work (issue 10, idle tick)."""
        columns, values, now, was = self._columns, row.values, self.now, row.aged
        same_bucket = now is not None and was is not None and was is not NO_NOW
        old = row.texts
        texts: list[str] | None = None
        for i in range(min(len(old), len(values), len(columns))):
            value = values[i]
            if value.__class__ is AgeStamp:
                if same_bucket and value.age(was) == value.age(now):
                    continue  # the text is a function of the bucket: the same
                text = self._text(columns[i], value)
                if text != old[i]:
                    if texts is None:
                        texts = list(old)
                    texts[i] = text
        if texts is not None:
            row.texts = tuple(texts)
            row.version += 1
        row.aged = now or NO_NOW

    def set_now(self, now: datetime) -> Any:  # model.CursorMove | None
        """The time the ages (AgeStamp cells) are shown at. Rows are aged when asked for
        (`get_texts`, `row_version`: the view asks for the rows it paints), except while a filter
        is set: it may name an age, so every aged row's verdict is taken again (O(rows), only
        while filtering). Returns the cursor's move when the filter's rows changed."""
        if now == self.now:
            return None
        self.now = now
        pred = self._predicate
        if pred is None:
            return None
        old = self._cursor_key
        old_index = self.view_index(old) if old is not None else None
        near = self._neighbours(old_index)
        moved = False
        for row in self._rows.values():
            if row.aged is not None:
                self._age(row)
                visible = pred(row.texts, SEP.join(row.texts))
                if visible != row.visible:
                    row.visible, moved = visible, True
        if not moved:
            return None
        self._rebuild_filtered()
        return self._follow(old, old_index, near)

    def age_window(self, keys: Sequence[str], calm: Calm) -> tuple[Calm, list[int]]:
        """Paint at `now` the ages of the rows `keys` (the lines on screen, in order), except each
        row `calm` says keeps its texts past `now` (the same version as when it was last aged
        here, and no age of it turns before). Returns the calm map of `keys` and the indexes of
        the rows aged (whose lines may need painting). A quiet tick at 10k leases moves one age
        on screen now and then; aging all ~35 rows on screen twice a tick was most of its table
        work (issue 10, idle tick)."""
        now = self.now
        rows = self._rows
        fresh: Calm = {}
        aged: list[int] = []
        if now is None:
            return fresh, aged
        for i, key in enumerate(keys):
            row = rows[key]
            known = calm.get(key)
            if known is not None and known[0] == row.version and (known[1] is None or now < known[1]):
                fresh[key] = known
                continue
            self._texts(row)
            turns = [v.turns_at(now) for v in row.values if v.__class__ is AgeStamp]
            fresh[key] = (row.version, min(turns) if turns else None)
            aged.append(i)
        return fresh, aged
