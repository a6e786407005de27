"""The snapshot's direct JSON rows (formats/serialize.py, issue 9: values encoded inline) write
every odd value exactly as json.dumps(to_dict(gt)) does: NaN/inf, ints and bools where floats are
expected, text where numbers are, in each resources field and in version/needs_refresh/stale_age_s."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from opcockpit.domain.models import Convergence, GroundTruth, GroundTruthRow, Resources
from opcockpit.formats import serialize

T = datetime(2026, 3, 20, 4, 0, 1, 500, tzinfo=UTC)
ODD = [None, 0.0, -0.0, 1.5, 1e300, float("nan"), float("inf"), float("-inf"), 0, 7, 2**70, True,
       False, "12", 'x "y"\n', "ü\x7f"]  # fmt: skip
FIELDS = [f.name for f in dataclasses.fields(Resources) if f.name != "collected_at"]


def _row(**over: object) -> GroundTruthRow:
    base = GroundTruthRow(
        lease_id="lease-1", provider="e2b", thread_id=None, thread_ids=(), chat_session_id=None,
        instance_id=None, desired_state="running", observed_state="running", provider_state=None,
        convergence=Convergence.CONVERGED, reason="ok", last_active=None, source="lease",
        lease_status=None, version=1, needs_refresh=False, last_error=None, resources=None,
        updated_at=T,
    )  # fmt: skip
    return dataclasses.replace(base, **over)  # type: ignore[arg-type]


def _same(rows: list[GroundTruthRow]) -> None:
    gt = GroundTruth(generated_at=T, providers=(), rows=tuple(rows), orphans=())
    assert serialize.dumps_json(gt) == json.dumps(serialize.to_dict(gt), ensure_ascii=False)


@pytest.mark.parametrize("field", FIELDS)
def test_every_resources_field_takes_every_odd_value_as_json_would(field: str) -> None:
    _same([_row(resources=Resources(**{field: v}, collected_at=T)) for v in ODD])  # type: ignore[arg-type]


def test_row_numbers_and_flags_take_odd_values_as_json_would() -> None:
    rows = [_row(version=v) for v in ODD] + [_row(needs_refresh=v) for v in ODD]
    rows += [_row(stale_age_s=v) for v in ODD]
    _same(rows)
