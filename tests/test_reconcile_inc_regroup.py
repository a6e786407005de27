"""IncrementalReconciler's per-lease groups of terminals and sessions (`_regroup`): after any change
of the record tuple (records replaced in place, few or many; inserted or deleted at the front, in
the middle or at the end; moved) each lease's group holds exactly its records of the new tuple, and
every lease whose records changed is dirty. Few replacements are found by place (issue 10, RSS: no
set of every record's id), the rest by identity; both must give the same groups."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from opcockpit.domain.reconcile_inc import _members, _moved_places, _regroup


@dataclass(eq=False)
class Rec:
    lease_id: str
    n: int


def _grouped(recs: tuple[Rec, ...]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for r in recs:
        out.setdefault(r.lease_id, set()).add(id(r))
    return out


def _step(old: tuple[Rec, ...], new: tuple[Rec, ...]) -> None:
    by: dict[str, object] = {}
    _regroup((), old, by, set())
    dirty: set[str] = set()
    _regroup(old, new, by, dirty)
    assert {lid: {id(r) for r in _members(g)} for lid, g in by.items()} == _grouped(new)
    before, after = _grouped(old), _grouped(new)
    assert {lid for lid in before.keys() | after.keys() if before.get(lid) != after.get(lid)} <= dirty


def _fleet(rng: random.Random, n: int) -> tuple[Rec, ...]:
    return tuple(Rec(f"lease-{rng.randrange(n // 2)}", i) for i in range(n))


@pytest.mark.parametrize("seed", range(6))
def test_groups_follow_every_kind_of_change(seed: int) -> None:
    rng = random.Random(seed)
    old = _fleet(rng, 2000)
    lids = [f"lease-{i}" for i in range(1000)]

    def fresh() -> Rec:
        return Rec(rng.choice(lids), -1)

    replaced = list(old)
    for i in rng.sample(range(len(old)), 40):  # a few in place: found by place
        replaced[i] = fresh()
    many = list(old)
    for i in rng.sample(range(len(old)), 900):  # many in place: by identity
        many[i] = fresh()
    moved = list(old)
    moved[3], moved[1500] = moved[1500], moved[3]
    cases = [
        tuple(replaced),
        tuple(many),
        tuple(moved),
        (fresh(), *old),  # inserted at the front: every place shifts
        old[:700] + old[701:],  # deleted in the middle
        (*old, fresh(), fresh()),  # appended
        old[:-5],  # deleted at the end
        (*replaced[:-3], fresh()),  # replaced and the tail changed
        (),
    ]
    for new in cases:
        _step(old, new)
        _step(new, old)


def test_few_replacements_are_found_by_place_many_by_identity() -> None:
    old = tuple(Rec(f"lease-{i}", i) for i in range(1000))
    few = (Rec("lease-x", -1), *old[1:999], Rec("lease-y", -2), Rec("lease-z", -3))
    gone, came = _moved_places(old, few) or ((), ())
    assert [r.n for r in gone] == [0, 999] and [r.n for r in came] == [-1, -2, -3]
    assert _moved_places(old, (Rec("lease-x", -1), *old)) is None
