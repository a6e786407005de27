"""PictureTracker keeps an instance's single holder as a str and a set only while several leases
name the instance (issue 10, memory): sharing and un-sharing keep `exact` and the picture right."""

from __future__ import annotations

from opcockpit.domain.events import picture_of
from opcockpit.domain.models import Convergence, GroundTruth, ProviderHealth, ProviderStatus
from opcockpit.domain.picture_inc import PictureTracker
from tests.test_picture_inc import T0, _row

HEALTH = (ProviderHealth(name="docker", kind="docker", status=ProviderStatus.OK, error=None,
                         listed_at=None, instance_count=None),)  # fmt: skip


def _gt(*named: tuple[str, str | None]) -> GroundTruth:
    rows = tuple(_row(lid, "docker", iid, Convergence.CONVERGED, "running") for lid, iid in named)
    return GroundTruth(generated_at=T0, providers=HEALTH, rows=rows, orphans=())


def test_one_two_three_holders_and_back_keep_exact_and_the_picture() -> None:
    tracker = PictureTracker()
    steps = [
        (("a", "i-1"), ("b", "i-2"), ("c", "i-3")),  # one holder each: plain strs
        (("a", "i-1"), ("b", "i-1"), ("c", "i-3")),  # i-1 shared by two
        (("a", "i-1"), ("b", "i-1"), ("c", "i-1")),  # ... by three
        (("a", "i-1"), ("b", "i-2"), ("c", "i-1")),  # still two
        (("a", "i-1"), ("b", "i-2"), ("c", "i-3")),  # none shared again
        (("a", None), ("b", "i-2")),  # a names nothing, c is gone
    ]
    expect_exact = [True, False, False, False, True, True]
    for named, exact in zip(steps, expect_exact, strict=True):
        gt = _gt(*named)
        upd = tracker.update(gt)
        assert upd.exact is exact, named
        if exact:
            assert tracker.picture == picture_of(gt)
    assert all(isinstance(v, str) for held in tracker._inst_rows.values() for v in held.values())
    assert tracker._shared == 0


def test_an_instance_is_held_under_its_rows_own_id_text() -> None:
    """No key text per instance (issue 10, RSS): the tracker files a lease under its row's own
    provider and instance id objects."""
    tracker = PictureTracker()
    gt = _gt(("a", "i-1"), ("b", "i-2"))
    tracker.update(gt)
    for row in gt.rows:
        held = tracker._inst_rows[row.provider]
        key = next(k for k in held if k == row.instance_id)
        assert key is row.instance_id and held[key] == row.lease_id
    assert tracker.picture == picture_of(gt)
    tracker.update(_gt(("a", None)))
    assert tracker._inst_rows == {}
