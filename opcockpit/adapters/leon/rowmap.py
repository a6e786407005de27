"""A compact {rowid: value} for the sandbox.db tracker (issue 10, RSS).

The tracker keeps, per table, each row's signature hash and its record by rowid. As dicts of
Python ints that was ~100 bytes a row (two int objects and a hash-table slot) and ~8 MB at 10k
leases, allocated at the first full read among the records and pinning pymalloc arenas. Here the
rowids are one sorted `array('q')` (8 bytes a row) beside an aligned value sequence: an
`array('q')` of hashes, or a list of records. Lookups bisect; a few changes are applied in place,
many by one rebuild.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, MutableSequence
from typing import Any

__all__ = ["RowMap"]

# Above this many changes in one apply(), rebuilding beats inserting one by one (each insert or
# delete moves the tail of both sequences).
_IN_PLACE_MAX = 64


class RowMap:
    """{rowid: value}, rowids ascending. `values` is an `array('q')` (hashes) or a list."""

    __slots__ = ("ids", "values")

    def __init__(self, ids: array[int] | None = None, values: MutableSequence[Any] | None = None) -> None:
        self.ids: array[int] = ids if ids is not None else array("q")
        self.values: MutableSequence[Any] = values if values is not None else array("q")
        if len(self.ids) != len(self.values):
            raise ValueError("rowids and values do not line up")

    @classmethod
    def hashes(cls, pairs: Iterable[tuple[int, int]]) -> RowMap:
        """From (rowid, hash) pairs in ascending rowid order (`... ORDER BY rowid`)."""
        ids, values = array("q"), array("q")
        ordered, last = True, None
        for rid, h in pairs:
            if last is not None and rid <= last:
                ordered = False
            ids.append(rid)
            values.append(h)
            last = rid
        if not ordered:  # not the promised order: sort (a repeated rowid keeps its last value)
            return cls.hashes(sorted(dict(zip(ids, values, strict=True)).items()))
        return cls(ids, values)

    @classmethod
    def records(cls, ids: Iterable[int], recs: Iterable[Any]) -> RowMap:
        """Records aligned with `ids` (ascending, as a full read returns them)."""
        return cls(array("q", ids), list(recs))

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids)

    def __contains__(self, rid: object) -> bool:
        return self._find(rid) is not None  # type: ignore[arg-type]

    def _find(self, rid: int) -> int | None:
        ids = self.ids
        i = bisect_left(ids, rid)
        return i if i < len(ids) and ids[i] == rid else None

    def get(self, rid: int, default: Any = None) -> Any:
        i = self._find(rid)
        return default if i is None else self.values[i]

    def items(self) -> Iterator[tuple[int, Any]]:
        return zip(self.ids, self.values, strict=True)

    def total(self) -> int:
        """Sum of the rowids (the tracker's insert/delete check)."""
        return sum(self.ids)

    def top(self) -> int | None:
        return self.ids[-1] if self.ids else None

    def apply(self, gone: Iterable[int], pairs: Iterable[tuple[int, Any]]) -> None:
        """Drop the rowids `gone`, then set (rowid, value) `pairs` (new rowids are inserted)."""
        gone, pairs = list(gone), list(pairs)
        if len(gone) + len(pairs) > _IN_PLACE_MAX:
            self._rebuild(gone, pairs)
            return
        ids, values = self.ids, self.values
        for rid in gone:
            i = self._find(rid)
            if i is not None:
                del ids[i]
                del values[i]
        for rid, value in pairs:
            i = bisect_left(ids, rid)
            if i < len(ids) and ids[i] == rid:
                values[i] = value
            else:
                ids.insert(i, rid)
                values.insert(i, value)

    def _rebuild(self, gone: list[int], pairs: list[tuple[int, Any]]) -> None:
        merged = dict(zip(self.ids, self.values, strict=True))
        for rid in gone:
            merged.pop(rid, None)
        merged.update(pairs)
        keys = sorted(merged)
        self.ids = array("q", keys)
        vals = map(merged.__getitem__, keys)
        self.values = array("q", vals) if isinstance(self.values, array) else list(vals)
