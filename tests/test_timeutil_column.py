"""`parse.column` (the one-shot reader's column pass) equals `parse` value by value: same
datetimes, same tzinfo objects, same Nones, in every zone kind and for every odd shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from opcockpit.domain.timeutil import _build_parser

ZONES = [
    UTC,
    ZoneInfo("UTC"),
    ZoneInfo("Etc/UTC"),  # UTC by name: the column pass looks up no offsets (always_utc)
    timezone(timedelta(0)),
    ZoneInfo("Europe/London"),  # DST: offsets 0 and +1 in one column
    ZoneInfo("America/New_York"),
    ZoneInfo("Asia/Shanghai"),
    timezone(timedelta(hours=-5, minutes=-30)),
]

_moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2037, 12, 31))
_leon_local = _moments.map(lambda d: d.isoformat(timespec="microseconds"))  # 26 chars
_leon_seconds = _moments.map(lambda d: d.isoformat(timespec="seconds"))  # 19 chars, 'T'
_utc_z = _moments.map(lambda d: d.isoformat(timespec="seconds") + "Z")  # 20 chars: snapshots' UTC
_current_timestamp = _moments.map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S"))  # 19, ' ': UTC
_odd = st.sampled_from(
    [
        "2026-13-01T00:00:00",  # 19 chars, no such month
        "x" * 19,
        "2026-12-06T05:02:00.40371Z",  # 26 chars, not LEON's
        "2026-02-30T05:02:00Z",  # the 'Z' shape, no such day
        "2026-12-06 05:02:00Z",
        "2026-12-06T05:02:00+08:00",
        "2026-12-06X05:02:00",
        "1700000000.12345678",
        "2026-12-06",
        " 2026-12-06T05:02:00",
        "",
        1700000000,
        1.5e9,
        b"2026-01-01T00:00:00",
    ]
)
_value = st.one_of(st.none(), _leon_local, _leon_seconds, _current_timestamp, _utc_z, _odd)
_clean = st.one_of(st.none(), _leon_local, _leon_seconds)


def _same(col: tuple[object, ...], tz_index: int) -> None:
    tz = ZONES[tz_index]
    by_column = _build_parser(tz).column(col)  # type: ignore[attr-defined]
    by_value = list(map(_build_parser(tz), col))
    assert by_column == by_value
    assert [None if d is None else d.tzinfo for d in by_column] == [
        None if d is None else d.tzinfo for d in by_value
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(_value, max_size=8).map(tuple), st.integers(0, len(ZONES) - 1))
def test_column_equals_value_by_value_on_any_mix(col: tuple[object, ...], tz_index: int) -> None:
    _same(col, tz_index)


@settings(max_examples=200, deadline=None)
@given(st.lists(_clean, min_size=1, max_size=40).map(tuple), st.integers(0, len(ZONES) - 1))
def test_column_equals_value_by_value_on_leon_shapes(col: tuple[object, ...], tz_index: int) -> None:
    _same(col, tz_index)  # the columns the fast pass takes (local offsets, DST hours included)


def test_the_fast_pass_shifts_by_each_hours_offset() -> None:
    parse = _build_parser(ZoneInfo("Europe/London"))
    got = parse.column(("2026-01-10T12:00:00.000000", "2026-07-10T12:00:00.000000", None))  # type: ignore[attr-defined]
    assert got == [datetime(2026, 1, 10, 12, tzinfo=UTC), datetime(2026, 7, 10, 11, tzinfo=UTC), None]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.none(), _utc_z), min_size=1, max_size=40).map(tuple), st.integers(0, len(ZONES) - 1)
)
def test_column_equals_value_by_value_on_utc_z_columns(col: tuple[object, ...], tz_index: int) -> None:
    _same(col, tz_index)  # lease_resource_snapshots.collected_at: UTC 'Z', whatever the local zone


def test_utc_or_naive_says_when_orjson_writes_isoformat_text() -> None:
    from opcockpit.domain.timeutil import utc_or_naive

    aware, naive = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1)
    assert utc_or_naive([aware, None, naive]) and utc_or_naive([])
    assert not utc_or_naive([aware, aware.astimezone(timezone(timedelta(hours=1)))])
    assert not utc_or_naive([aware, "2026-01-01"])  # type: ignore[list-item]  # not a datetime
