"""Issue 10 (RSS): the ground-truth table keeps each row's cells as `GtCells` (made from the row
when read) until it paints the row, not a tuple per row. The lazy cells equal the tuple of the
same cells; through the real row cache and table model, the rows never painted hold their GtCells
(also after a change), a painted row holds a tuple, and every row shows the texts tuple cells give."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from opcockpit.domain.models import Convergence, GroundTruthRow, Resources
from opcockpit.tui.rowdelta import gt_row_cells
from opcockpit.tui.rows import GT_COLUMNS, GtCells, gt_cell_tuple, gt_row_tag
from opcockpit.tui.table.model import TableModel
from opcockpit.tui.widgets.tables import columns_from

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _row(i: int, **changes: object) -> GroundTruthRow:
    row = GroundTruthRow(
        lease_id=f"lease-{i:04d}", provider="docker", thread_id=f"t-{i}", thread_ids=(f"t-{i}", f"u-{i}"),
        chat_session_id=None, instance_id=f"i-{i}", desired_state="running", observed_state="running",
        provider_state="running", convergence=list(Convergence)[i % 6], reason=f"reason {i}",
        last_active=T0 - timedelta(seconds=7 * i), source="lease+provider", lease_status="active",
        version=i, needs_refresh=bool(i % 2), last_error=None,
        resources=Resources(cpu_used=0.5, memory_used_mb=100.0 + i, memory_total_mb=2048.0),
        updated_at=T0 - timedelta(seconds=i), stale_age_s=float(i) if i % 6 == 4 else None,
    )  # fmt: skip
    return replace(row, **changes) if changes else row  # type: ignore[arg-type]


def test_lazy_cells_are_the_tuple_cells() -> None:
    a, b = _row(3), _row(3)
    cells = GtCells(a)
    plain = gt_cell_tuple(a)
    assert len(cells) == len(plain) == len(GT_COLUMNS)
    assert tuple(cells) == plain and cells == plain and plain == cells
    assert [cells[i] for i in range(len(plain))] == list(plain) and cells[-1] == plain[-1]
    assert cells[2:5] == plain[2:5]
    assert cells == GtCells(b) and hash(cells) == hash(plain)  # another row object, same values
    assert cells != GtCells(_row(3, reason="other")) and cells != plain[:-1]


def _model(rows: tuple[GroundTruthRow, ...]) -> tuple[TableModel, object]:
    cache = gt_row_cells()
    model = TableModel(columns_from(GT_COLUMNS))
    model.set_now(T0)
    model.apply(model.upsert_diff(cache.update(rows, T0).upserts))
    return model, cache


def test_rows_not_painted_keep_their_lazy_cells_painted_ones_a_tuple() -> None:
    rows = tuple(_row(i) for i in range(40))
    model, cache = _model(rows)
    kinds = {key: type(row.values) for key, row in model._rows.items()}
    assert set(kinds.values()) == {GtCells}
    painted = model.window(0, 5)
    for key in painted:
        model.row_version(key)
    assert all(type(model.get_row(k)) is tuple for k in painted)
    # A change of a row painted and one not: both hold the new row's lazy cells again.
    changed = list(rows)
    gone = next(i for i, r in enumerate(rows) if r.lease_id not in painted)
    first = next(i for i, r in enumerate(rows) if r.lease_id == painted[0])
    for i in (gone, first):
        changed[i] = _row(i, reason="changed", version=99)
    applied = model.apply(model.upsert_diff(cache.update(tuple(changed), T0).upserts))  # type: ignore[attr-defined]
    assert applied is not None
    for i in (gone, first):
        values = model.get_row(rows[i].lease_id)
        assert type(values) is GtCells and values.row is changed[i]
    others = [k for k in model._rows if k not in painted and k != rows[gone].lease_id]
    assert all(type(model.get_row(k)) is GtCells for k in others)


def test_every_row_shows_the_texts_of_its_tuple_cells() -> None:
    rows = tuple(_row(i) for i in range(30))
    lazy, _ = _model(rows)
    plain = TableModel(columns_from(GT_COLUMNS))
    plain.set_now(T0)
    plain.replace({r.lease_id: gt_cell_tuple(r) for r in rows})
    for model in (lazy, plain):
        model.set_now(T0 + timedelta(seconds=95))
    assert lazy.view_keys() == plain.view_keys()
    for key in plain.view_keys():
        assert lazy.get_texts(key) == plain.get_texts(key)
        assert gt_row_tag(lazy.get_row(key)) == gt_row_tag(plain.get_row(key))
    lazy.sort_by("resources")
    plain.sort_by("resources")
    assert lazy.view_keys() == plain.view_keys()
