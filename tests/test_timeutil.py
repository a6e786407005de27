"""parse_ts normalises every LEON timestamp convention to aware UTC; age helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from opcockpit.domain.timeutil import (
    age_s,
    fmt_age,
    local_zone,
    make_parser,
    parse_duration,
    parse_ts,
    to_local_naive_iso,
    to_sqlite_utc,
)

PLUS8 = timezone(timedelta(hours=8))  # fixed, DST-free: the worked example's host zone
MINUS5 = timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    ("value", "tz", "expected"),
    [
        # LEON sandbox tables: naive local ISO (datetime.now().isoformat()), with and without micros
        ("2026-03-20T09:00:01.482913", PLUS8, datetime(2026, 3, 20, 1, 0, 1, 482913, tzinfo=UTC)),
        ("2026-03-20T09:00:01", PLUS8, datetime(2026, 3, 20, 1, 0, 1, tzinfo=UTC)),
        ("2026-03-20T09:00:01", MINUS5, datetime(2026, 3, 20, 14, 0, 1, tzinfo=UTC)),
        ("2026-03-20T02:00:00.5", PLUS8, datetime(2026, 3, 19, 18, 0, 0, 500000, tzinfo=UTC)),  # crosses day
        # str(datetime.now()): naive local with a space and fraction
        ("2026-03-20 09:00:01.482913", PLUS8, datetime(2026, 3, 20, 1, 0, 1, 482913, tzinfo=UTC)),
        # lease_resource_snapshots: UTC with 'Z'
        ("2026-03-20T03:58:41Z", PLUS8, datetime(2026, 3, 20, 3, 58, 41, tzinfo=UTC)),
        ("2026-03-20T03:58:41.123456Z", PLUS8, datetime(2026, 3, 20, 3, 58, 41, 123456, tzinfo=UTC)),
        # explicit offsets are honoured whatever local_tz says
        ("2026-03-20T09:00:00+08:00", MINUS5, datetime(2026, 3, 20, 1, 0, 0, tzinfo=UTC)),
        ("2026-03-20T09:00:00.250-05:00", PLUS8, datetime(2026, 3, 20, 14, 0, 0, 250000, tzinfo=UTC)),
        # SQLite CURRENT_TIMESTAMP: UTC, not local
        ("2026-03-20 03:20:00", PLUS8, datetime(2026, 3, 20, 3, 20, 0, tzinfo=UTC)),
        ("  2026-03-20 03:20:00 ", PLUS8, datetime(2026, 3, 20, 3, 20, 0, tzinfo=UTC)),
        # threads.created_at: REAL / int epoch, also as numeric text
        (1774000000.5, PLUS8, datetime.fromtimestamp(1774000000.5, UTC)),
        (1774000000, PLUS8, datetime.fromtimestamp(1774000000, UTC)),
        ("1774000000.25", PLUS8, datetime.fromtimestamp(1774000000.25, UTC)),
        # datetimes: naive = local, aware converted
        (datetime(2026, 3, 20, 9, 0), PLUS8, datetime(2026, 3, 20, 1, 0, tzinfo=UTC)),
        (datetime(2026, 3, 20, 9, 0, tzinfo=MINUS5), PLUS8, datetime(2026, 3, 20, 14, 0, tzinfo=UTC)),
        (b"2026-03-20T03:58:41Z", PLUS8, datetime(2026, 3, 20, 3, 58, 41, tzinfo=UTC)),
    ],
)
def test_parse_ts_conventions(value: object, tz: timezone, expected: datetime) -> None:
    got = parse_ts(value, local_tz=tz)
    assert got == expected
    assert got is not None and got.utcoffset() == timedelta(0)  # always aware UTC


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "garbage",
        "2026-13-45T99:99:99",
        "2026-03-20Tnope",
        "abcdefghijTklmnopqrs",
        "2026-02-30T10:00:00.000000",
        float("nan"),
        1e300,
        -1e300,
        True,
        [],
        {},
        object(),
        b"\xff\xfe",
    ],
)
def test_parse_ts_garbage_is_none_and_never_raises(value: object) -> None:
    assert parse_ts(value, local_tz=PLUS8) is None


def test_parse_ts_dst_zone_uses_the_offset_of_that_date() -> None:
    ny = ZoneInfo("America/New_York")
    assert parse_ts("2026-01-15T12:00:00", local_tz=ny) == datetime(2026, 1, 15, 17, 0, tzinfo=UTC)  # EST
    assert parse_ts("2026-07-15T12:00:00", local_tz=ny) == datetime(2026, 7, 15, 16, 0, tzinfo=UTC)  # EDT


def test_cached_values_are_consistent_per_zone() -> None:
    # Same string, different zones: the per-zone caches must not leak into each other.
    s = "2026-03-20T09:00:00"
    assert parse_ts(s, local_tz=PLUS8) == datetime(2026, 3, 20, 1, 0, tzinfo=UTC)
    assert parse_ts(s, local_tz=MINUS5) == datetime(2026, 3, 20, 14, 0, tzinfo=UTC)
    assert parse_ts(s, local_tz=PLUS8) == datetime(2026, 3, 20, 1, 0, tzinfo=UTC)
    p = make_parser(PLUS8)
    assert p(s) is p(s)  # memoised: the second call is a dict hit


def test_default_zone_is_the_machine_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    local_zone.cache_clear()
    try:
        assert parse_ts("2026-03-20T09:00:00") == datetime(2026, 3, 20, 1, 0, tzinfo=UTC)
    finally:
        monkeypatch.undo()
        local_zone.cache_clear()


def test_round_trip_helpers() -> None:
    dt = datetime(2026, 3, 20, 1, 0, 1, 482913, tzinfo=UTC)
    assert to_local_naive_iso(dt, PLUS8) == "2026-03-20T09:00:01.482913"
    assert parse_ts(to_local_naive_iso(dt, PLUS8), local_tz=PLUS8) == dt
    assert to_sqlite_utc(datetime(2026, 3, 20, 11, 20, tzinfo=PLUS8)) == "2026-03-20 03:20:00"


def test_age_and_the_one_age_format() -> None:
    now = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)
    assert age_s(datetime(2026, 3, 20, 3, 58, 41, tzinfo=UTC), now) == 79.0
    assert age_s(None, now) is None
    assert age_s(datetime(2026, 3, 20, 3, 0), now) == 3600.0  # naive treated as UTC
    assert [
        fmt_age(s) for s in (0, 3.9, 59, 60, 240, 3599, 3600, 5400, 7300, 86399, 86400, 5 * 86400 + 5, 97200)
    ] == ["0s", "3s", "59s", "1m", "4m", "59m", "1h", "1h30m", "2h1m", "23h59m", "1d", "5d", "1d3h"]
    assert fmt_age(None) == "-" and fmt_age(float("nan")) == "-" and fmt_age(None, unknown="?") == "?"
    assert fmt_age(-0.4) == "0s"  # clock skew noise
    assert fmt_age(-180) == "-3m"


def test_parse_duration() -> None:
    assert parse_duration("90s").total_seconds() == 90
    assert parse_duration("1h30m").total_seconds() == 5400
    assert parse_duration("2").total_seconds() == 120  # a bare number is minutes
    assert parse_duration(" 1d 2h ").total_seconds() == 93600
    for bad in ("", "h", "5x", "0m", "1h junk", "-5m"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
