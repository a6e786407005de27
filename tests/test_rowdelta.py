"""Incremental table cells equal a full rebuild (issue 10): `RowCells.update` after random row
changes, removals and clock steps (forward and back) holds exactly `gt_table`/`orphan_table`'s
cells, and recomputes only what changed or what time moved to another displayed age."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from opcockpit.domain.models import Convergence, GroundTruth, GroundTruthRow, OrphanRow
from opcockpit.tui.rowdelta import RowCells, gt_row_cells, next_bucket_at, orphan_row_cells
from opcockpit.tui.rows import GT_INDEX, age_of, counts, gt_table, orphan_table
from opcockpit.tui.table.ages import AgeStamp

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEYS = [f"lease-{i}" for i in range(6)]


def _row(key: str, active_s: int | None, updated_s: int | None, conv: Convergence) -> GroundTruthRow:
    def at(s: int | None) -> datetime | None:
        return None if s is None else T0 - timedelta(seconds=s)

    return GroundTruthRow(
        lease_id=key, provider="docker", thread_id=None, thread_ids=(), chat_session_id=None,
        instance_id=None, desired_state="running", observed_state="running", provider_state=None,
        convergence=conv, reason="r", last_active=at(active_s), source="lease", lease_status="active",
        version=1, needs_refresh=False, last_error=None, resources=None, updated_at=at(updated_s),
    )  # fmt: skip


ages = st.one_of(st.none(), st.integers(-30, 200_000))
step = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), ages, ages, st.sampled_from(list(Convergence))),
    st.tuples(st.just("drop"), st.sampled_from(KEYS)),
    st.tuples(st.just("tick"), st.integers(-120, 7200)),
    st.tuples(st.just("same")),  # a new, value-equal row object (a resync)
)


def _gt(rows: dict[str, GroundTruthRow], now: datetime) -> GroundTruth:
    return GroundTruth(generated_at=now, providers=(), rows=tuple(rows[k] for k in sorted(rows)), orphans=())


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=40))
def test_incremental_cells_equal_a_full_rebuild(steps):
    rows: dict[str, GroundTruthRow] = {}
    now = T0
    cache = gt_row_cells()
    table: dict[str, tuple] = {}  # what a table fed only the deltas holds
    for s in steps:
        if s[0] == "put":
            rows[s[1]] = _row(s[1], s[2], s[3], s[4])
        elif s[0] == "drop":
            rows.pop(s[1], None)
        elif s[0] == "tick":
            now += timedelta(seconds=s[1])
        else:
            rows = {k: replace(r) for k, r in rows.items()}
        gt = _gt(rows, now)
        delta = cache.update(gt.rows, now)
        for k in delta.removed:
            del table[k]
        table.update(delta.upserts)
        assert cache.cells == gt_table(gt)
        assert table == gt_table(gt)
        assert cache.rows == {r.lease_id: r for r in gt.rows}
        assert cache.counts == {k: n for k, n in counts(gt).items() if n}


def test_time_passing_recomputes_only_rows_whose_age_shows_another_value():
    # Cells that hold ages (RowCells' `ages_of`): the heap of next-bucket deadlines.
    def cells_of(r: GroundTruthRow, now: datetime) -> tuple:
        return (r.lease_id, age_of(r.last_active, now))

    rows = tuple(_row(f"lease-{i}", 7200 + 3600 * i, None, Convergence.CONVERGED) for i in range(500))
    rows += (_row("fresh", 2, None, Convergence.CONVERGED),)
    cache = RowCells(lambda r: r.lease_id, cells_of, lambda r: (r.last_active,))
    assert len(cache.update(rows, T0).upserts) == 501
    delta = cache.update(rows, T0 + timedelta(seconds=4))  # only "fresh" crosses 5 s
    assert list(delta.upserts) == ["fresh"] and cache.recomputed == 1
    assert cache.update(rows, T0 + timedelta(seconds=4)).empty  # nothing due: nothing built


def test_ground_truth_cells_hold_times_so_time_passing_changes_none():
    """The ground-truth and orphan cells hold AgeStamps (the table paints the ages): an hour
    passing recomputes no cell, and a cell's age at any time is the bucketed age of its stamp."""
    rows = tuple(_row(f"lease-{i}", 7 + 61 * i, 3 + 3600 * i, Convergence.CONVERGED) for i in range(300))
    cache = gt_row_cells()
    assert len(cache.update(rows, T0).upserts) == 300
    for later in (4, 60, 3600):
        now = T0 + timedelta(seconds=later)
        assert cache.update(rows, now).empty and cache.recomputed == 0
        active = cache.cells["lease-5"][GT_INDEX["last_active"]]
        assert isinstance(active, AgeStamp)
        assert active.age(now) == age_of(rows[5].last_active, now)
    assert cache.recomputed == 0


def test_next_bucket_is_when_the_displayed_age_changes():
    ts = T0
    for s in (0, 3, 59, 61, 3599, 3700, 86_399, 90_000):
        now = ts + timedelta(seconds=s, milliseconds=300)
        at = next_bucket_at(ts, now)
        assert at is not None and at > now
        assert age_of(ts, at - timedelta(microseconds=1)) == age_of(ts, now)
        assert age_of(ts, at) != age_of(ts, now)
    assert next_bucket_at(None, T0) is None


def test_orphan_cells_follow_their_created_age():
    o = OrphanRow(
        provider="e2b", instance_id="sb-1", name=None, provider_state="running", raw_state="running",
        labels={}, created_at=T0 - timedelta(seconds=50), claimed_lease_id=None, claim=None, confirmed=None,
    )  # fmt: skip
    cache = orphan_row_cells()
    for s in (0, 5, 11, 600):
        now = T0 + timedelta(seconds=s)
        gt = GroundTruth(generated_at=now, providers=(), rows=(), orphans=(o,))
        cache.update(gt.orphans, now)
        assert cache.cells == orphan_table(gt)
