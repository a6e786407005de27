"""The live TUI's by-change bookkeeping equals a full recompute (issue 10, steady-state CPU).

- domain.clock_skew.FutureStamps fed by RowCells' row changes gives the header the same warning as
  `future_timestamp_warning` over every row, through random puts, drops, resyncs and clock steps
  (forward and back).
- KeyedTable repaints only when a line on screen changes (a refresh at 10k leases nearly always
  changes rows scrolled off), and the screen still shows every change that is on it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from textual.app import App

from opcockpit.domain.clock_skew import FutureStamps, future_timestamp_warning
from opcockpit.domain.models import Convergence, GroundTruthRow
from opcockpit.tui.rowdelta import gt_row_cells
from opcockpit.tui.table.widget import Column
from tests.tui.screen_text import screen_text
from tests.tui.table_support import CountingTable, OneTableApp

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEYS = [f"lease-{i}" for i in range(6)]


def _row(key: str, active_s: int | None, updated_s: int | None) -> GroundTruthRow:
    """A lease whose stamps are `*_s` seconds before T0 (negative: in the future)."""

    def at(s: int | None) -> datetime | None:
        return None if s is None else T0 - timedelta(seconds=s)

    return GroundTruthRow(
        lease_id=key, provider="docker", thread_id=None, thread_ids=(), chat_session_id=None,
        instance_id=None, desired_state="running", observed_state="running", provider_state=None,
        convergence=Convergence.CONVERGED, reason="r", last_active=at(active_s), source="lease",
        lease_status="active", version=1, needs_refresh=False, last_error=None, resources=None,
        updated_at=at(updated_s),
    )  # fmt: skip


# Stamps from 3 h in the future to 2 days old: around the 300 s skew threshold as the clock moves.
stamps = st.one_of(st.none(), st.integers(-10_800, 200_000))
step = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), stamps, stamps),
    st.tuples(st.just("drop"), st.sampled_from(KEYS)),
    st.tuples(st.just("tick"), st.integers(-600, 5_400)),
    st.tuples(st.just("same")),  # a new, value-equal row object (a resync)
    st.tuples(st.just("look")),  # the header redraws without a new picture
)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=40))
def test_future_stamps_by_change_equal_the_full_warning(steps):
    rows: dict[str, GroundTruthRow] = {}
    now = T0
    skew = FutureStamps()
    cells = gt_row_cells(observer=skew)
    for s in steps:
        if s[0] == "put":
            rows[s[1]] = _row(s[1], s[2], s[3])
        elif s[0] == "drop":
            rows.pop(s[1], None)
        elif s[0] == "tick":
            now += timedelta(seconds=s[1])
        elif s[0] == "same":
            rows = {k: replace(r) for k, r in rows.items()}
        if s[0] != "look":
            cells.update(tuple(rows[k] for k in sorted(rows)), now)
        assert skew.warning(now) == future_timestamp_warning(rows.values(), now)


def test_future_stamps_keep_only_leases_ahead_of_the_clock():
    skew = FutureStamps(skew_s=300)
    skew.put("old", _row("old", 60, 60), T0)
    skew.put("ahead", _row("ahead", -3600, None), T0)
    line = skew.warning(T0)
    assert line is not None and "(1 lease)" in line and "1h" in line
    # An hour on, the lease is no longer ahead: the warning goes and the lease is let go.
    assert skew.warning(T0 + timedelta(hours=1)) is None
    assert skew._ahead == {}
    skew.put("ahead", _row("ahead", -7200, None), T0 + timedelta(hours=1))
    assert skew.warning(T0 + timedelta(hours=1)) is not None
    skew.remove("ahead")
    assert skew.warning(T0 + timedelta(hours=1)) is None


# ----------------------------------------------------------------------- KeyedTable repaints


def _lines(app: App[None]) -> list[str]:
    return [line.rstrip() for line in screen_text(app).splitlines()]


async def test_a_change_scrolled_off_screen_does_not_repaint_and_the_screen_stays_right() -> None:
    cols = [Column("id", "ID", 8), Column("state", "State", 10)]
    rows = {f"r{i:03d}": (f"r{i:03d}", "running") for i in range(500)}
    table = CountingTable(cols, flash_seconds=0)
    app = OneTableApp(table, rows)
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        before = _lines(app)
        assert any("r000" in line for line in before)
        n = table.refreshes
        table.apply_rows({"r400": ("r400", "paused")})  # far below the screen
        await pilot.pause()
        assert table.refreshes == n and _lines(app) == before
        assert table.get_row("r400") == ("r400", "paused")
        # A change on screen repaints, and the screen shows it.
        table.apply_rows({"r003": ("r003", "stopped")})
        await pilot.pause()
        assert table.refreshes > n
        assert any("r003" in line and "stopped" in line for line in _lines(app))
        # A row removed above the window's end shifts the rows on screen: repaint.
        n = table.refreshes
        table.apply_rows({}, ["r005"])
        await pilot.pause()
        assert table.refreshes > n
        assert not any("r005" in line for line in _lines(app))
        assert any("r011" in line for line in _lines(app))
