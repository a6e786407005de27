"""RowMap (the sandbox.db tracker's compact {rowid: value}) behaves as the dict it replaced, on
random sequences of drops and sets, few (in place) and many (rebuilt) at a time."""

from __future__ import annotations

from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from opcockpit.adapters.leon.rowmap import RowMap

rowids = st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.integers(min_value=0, max_value=300)
hashes = st.integers(min_value=-(2**63), max_value=2**63 - 1)
steps = st.lists(
    st.tuples(st.lists(rowids, max_size=80), st.lists(st.tuples(rowids, hashes), max_size=80)), max_size=8
)


def _same(m: RowMap, d: dict[int, object]) -> None:
    assert list(m.items()) == sorted(d.items())
    assert len(m) == len(d) and m.total() == sum(d) and m.top() == max(d, default=None)
    for rid in list(d)[:20]:
        assert rid in m and m.get(rid) == d[rid]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(rowids, hashes, max_size=200), steps, rowids)
def test_hashes_equal_a_dict_after_any_drops_and_sets(start, ops, probe) -> None:
    m = RowMap.hashes(sorted(start.items()))
    d = dict(start)
    _same(m, d)
    for gone, pairs in ops:
        m.apply(gone, pairs)
        for rid in gone:
            d.pop(rid, None)
        d.update(pairs)
        _same(m, d)
        assert m.get(probe) == d.get(probe)
    assert isinstance(m.values, array)  # still the compact form after a rebuild


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(rowids, st.text(max_size=3), max_size=100), steps)
def test_records_equal_a_dict_and_stay_a_list(start, ops) -> None:
    keys = sorted(start)
    m = RowMap.records(keys, [start[k] for k in keys])
    d = dict(start)
    for gone, pairs in ops:
        recs = [(rid, f"r{h % 7}") for rid, h in pairs]
        m.apply(gone, recs)
        for rid in gone:
            d.pop(rid, None)
        d.update(recs)
        _same(m, d)
        assert isinstance(m.values, list)


def test_unordered_pairs_are_sorted_and_the_last_value_of_a_rowid_wins() -> None:
    m = RowMap.hashes([(5, 1), (3, 2), (5, 9)])
    assert list(m.items()) == [(3, 2), (5, 9)]
