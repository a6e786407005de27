"""The snapshot's JSON (formats/serialize.py, issue 9: orjson straight from the dataclasses) holds
exactly to_dict's values, odd ones included: NaN/inf (written as null: JSON has neither), ints and
bools where floats are expected, text where numbers are, ints beyond 64 bits and lone surrogates
(json's encoder then writes the document), times in another zone (written in UTC like to_dict)."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opcockpit.domain.models import Convergence, GroundTruth, GroundTruthRow, Resources
from opcockpit.formats import serialize

T = datetime(2026, 3, 20, 4, 0, 1, 500, tzinfo=UTC)
ODD = [None, 0.0, -0.0, 1.5, 1e300, 2.5e-7, float("nan"), float("inf"), float("-inf"), 0, 7, 2**70,
       True, False, "12", 'x "y"\n', "ü\x7f"]  # fmt: skip
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


def _nulled(v: Any) -> Any:
    """to_dict's value as JSON can hold it: non-finite floats are null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _nulled(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_nulled(x) for x in v]
    return v


def same_values(gt: GroundTruth) -> str:
    """dumps_json(gt), checked to parse to exactly to_dict(gt)'s values (types included)."""
    text = serialize.dumps_json(gt)
    got, want = json.loads(text), _nulled(serialize.to_dict(gt))
    assert got == want
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)  # 1 vs 1.0 vs True
    return text


def _same(rows: list[GroundTruthRow]) -> None:
    same_values(GroundTruth(generated_at=T, providers=(), rows=tuple(rows), orphans=()))


@pytest.mark.parametrize("field", FIELDS)
def test_every_resources_field_takes_every_odd_value(field: str) -> None:
    _same([_row(resources=Resources(**{field: v}, collected_at=T)) for v in ODD])  # type: ignore[arg-type]


def test_row_numbers_and_flags_take_odd_values() -> None:
    rows = [_row(version=v) for v in ODD] + [_row(needs_refresh=v) for v in ODD]
    rows += [_row(stale_age_s=v) for v in ODD]
    _same(rows)


def test_non_finite_numbers_are_null_and_huge_ints_exact() -> None:
    gt = GroundTruth(
        generated_at=T, providers=(), rows=(_row(stale_age_s=float("nan")), _row(version=2**70)), orphans=()
    )
    doc = json.loads(serialize.dumps_json(gt))
    assert doc["rows"][0]["stale_age_s"] is None
    assert doc["rows"][1]["version"] == 2**70  # json's encoder wrote it: orjson stops at 64 bits
    assert json.loads(serialize.dumps_json(gt, indent=2)) == doc


def test_times_in_another_zone_are_written_in_utc_with_z() -> None:
    other = T.astimezone(timezone(timedelta(hours=2)))
    gt = GroundTruth(
        generated_at=T,
        providers=(),
        rows=(_row(last_active=other, updated_at=other),),
        orphans=(),
    )
    row = json.loads(same_values(gt))["rows"][0]
    assert row["last_active"] == "2026-03-20T04:00:01.000500Z"
    assert row["updated_at"] == "2026-03-20T04:00:01.000500Z"


def test_lone_surrogates_take_json_and_lose_nothing() -> None:
    gt = GroundTruth(generated_at=T, providers=(), rows=(_row(reason="bad \udc80 byte"),), orphans=())
    assert json.loads(serialize.dumps_json(gt))["rows"][0]["reason"] == "bad \udc80 byte"


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(_TEXT, min_size=1, max_size=8), num=st.integers(-(2**63), 2**63 - 1))
def test_text_and_ints_are_written_exactly_as_json_writes_them(texts: list[str], num: int) -> None:
    """Escaping is byte for byte json's (ensure_ascii=False): control characters, quotes,
    backslashes, non-ASCII; ints too. (Floats may differ in spelling only: 1e-05 vs 0.00001.)"""
    rows = tuple(_row(lease_id=t, reason=t, thread_ids=tuple(texts), version=num) for t in texts)
    gt = GroundTruth(generated_at=T, providers=(), rows=rows, orphans=())
    want = json.dumps(serialize.to_dict(gt), ensure_ascii=False, separators=(",", ":"))
    assert serialize.dumps_json(gt) == want


def test_lone_surrogates_survive_the_bytes_as_their_json_escape() -> None:
    gt = GroundTruth(generated_at=T, providers=(), rows=(_row(reason="bad \udc80 byte"),), orphans=())
    data = serialize.json_bytes(gt)
    assert b"\\udc80" in data
    assert json.loads(data)["rows"][0]["reason"] == "bad \udc80 byte"
