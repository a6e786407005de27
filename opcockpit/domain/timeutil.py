"""Timestamp normalisation for LEON's mixed conventions, plus age helpers.

LEON writes (domain brief §1):
- sandbox tables: naive *local* ISO from `datetime.now().isoformat()` ("2026-03-20T09:00:01.482913");
- `lease_resource_snapshots`: UTC with a 'Z' suffix;
- column defaults / events.db `created_at`: SQLite CURRENT_TIMESTAMP, UTC "YYYY-MM-DD HH:MM:SS";
- `threads.created_at`: REAL epoch seconds.

`parse_ts` turns any of these into an aware UTC datetime and never raises. It runs on ~100k values
per refresh, so the hot path (LEON's own naive local strings) avoids tz arithmetic per value: the
local UTC offset is looked up once per (date, hour) and cached.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from itertools import repeat as _repeat
from operator import attrgetter, itemgetter
from operator import sub as _sub
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "age_s",
    "fmt_age",
    "fmt_duration",
    "local_zone",
    "make_parser",
    "parse_duration",
    "parse_ts",
    "to_local_naive_iso",
    "to_sqlite_utc",
]

_fromiso = datetime.fromisoformat
_STR_ONLY = {str}
_HOT_LENS = frozenset((19, 26))  # "YYYY-MM-DDTHH:MM:SS" and with ".ffffff"
_Z_LENS, _Z, _T = {20}, {"Z"}, {"T"}  # "YYYY-MM-DDTHH:MM:SSZ": UTC as written
_AT_19, _AT_10 = itemgetter(19), itemgetter(10)
_HOUR_KEY = itemgetter(slice(13))  # "YYYY-MM-DDTHH": the local offset is looked up per hour
_fromts = datetime.fromtimestamp
_MAX_OFFSET_CACHE = 200_000  # (date, hour) keys: ~23 years of hours; cleared when exceeded
# tzdata's names of UTC itself: a zone by one of these keys is UTC at every instant.
_UTC_KEYS = frozenset(
    f"{area}{name}"
    for area in ("", "Etc/")
    for name in ("UTC", "UCT", "Universal", "Zulu", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich")
)


@functools.cache
def local_zone() -> tzinfo:
    """The machine's local zone, resolved once (LEON writes `datetime.now()` in this zone).

    Prefers a real IANA zone (DST-correct for past timestamps) from $TZ or /etc/localtime; falls
    back to the current fixed offset. `local_zone.cache_clear()` re-resolves (tests, TZ changes).
    """
    tz_env = os.environ.get("TZ", "").lstrip(":")
    if tz_env:
        try:
            return ZoneInfo(tz_env)
        except (ValueError, OSError, KeyError):
            pass  # POSIX TZ strings like "UTC+8" are not IANA keys: use the libc view below
    else:
        # A link to one of UTC's names is loaded by that name: the key tells the parsers that
        # no hour needs an offset looked up (the usual server and container set-up).
        name = os.path.realpath("/etc/localtime").partition("/zoneinfo/")[2]
        if name in _UTC_KEYS:
            with contextlib.suppress(ValueError, OSError, KeyError):
                return ZoneInfo(name)
        try:
            with open("/etc/localtime", "rb") as fh:
                return ZoneInfo.from_file(fh, key="localtime")
        except (OSError, ValueError):
            pass
    offset = datetime.now().astimezone().utcoffset() or timedelta(0)
    return timezone(offset)


_MISS = object()
# str -> datetime, cleared wholesale when full. Small on purpose (issue 10, memory): the live
# cockpit converts only changed rows between resyncs and a resync reuses unchanged records, so a
# cache holding every timestamp string it ever saw (~100k at 10k leases: ~12 MB of keys and
# table, ~36 MB at its old 300k cap) bought little; what it must still catch is the same value
# repeated close together (one `now()` in several columns, CURRENT_TIMESTAMP runs of events):
# 4k entries do (16k held ~1.9 MB per parser; distinct values miss at any size).
_MAX_VALUE_CACHE = 4_096


def _build_parser(tz: tzinfo) -> Callable[[object], datetime | None]:
    """parse_ts bound to one local zone.

    Two caches make repeated refreshes cheap: the local UTC offset per (date, hour) and the parsed
    value per distinct string (LEON rows rarely change, and one `now()` often fills several
    columns), so a steady-state refresh is mostly dict hits. Cached datetimes are immutable.
    """
    offsets: dict[str, timedelta] = {}
    values: dict[str, datetime | None] = {}
    # UTC at every instant (tz is UTC by name, or a fixed zero offset): parse_column then looks
    # up no hour's offset (~15 % of its time: a slice and a set entry per value).
    always_utc = getattr(tz, "key", None) in _UTC_KEYS or (
        isinstance(tz, timezone) and tz.utcoffset(None) == timedelta(0)
    )
    values_get = values.get
    offsets_get = offsets.get

    def offset_for(s: str, key: str) -> timedelta | None:
        try:
            naive = _fromiso(s)
        except ValueError:
            return None
        off = naive.replace(tzinfo=tz).utcoffset() or timedelta(0)
        if len(offsets) >= _MAX_OFFSET_CACHE:
            offsets.clear()
        offsets[key] = off
        return off

    def from_dt(dt: datetime) -> datetime | None:
        try:
            if dt.tzinfo is None:
                return dt.replace(tzinfo=tz).astimezone(UTC)
            return dt.astimezone(UTC)
        except (OverflowError, ValueError):
            return None

    def parse_str(s: str) -> datetime | None:
        n = len(s)
        # Hot path: LEON's naive local ISO, "YYYY-MM-DDTHH:MM:SS" or with ".ffffff".
        if (n == 26 and s[19] == ".") or n == 19:
            if s[10] == "T":
                key = s[:13]
                off = offsets_get(key)
                if off is None:
                    off = offset_for(s, key)
                    if off is None:
                        return None
                try:
                    # Parsing as "+00:00" yields an aware UTC value directly; shifting by the local
                    # offset is cheaper than replace(tzinfo=zone).astimezone(UTC) (and skipped on
                    # UTC hosts, where the offset is zero).
                    dt = _fromiso(s + "+00:00")
                except ValueError:
                    return None
                return dt - off if off else dt
            if n == 19 and s[10] == " ":
                try:  # SQLite CURRENT_TIMESTAMP: UTC by definition
                    return _fromiso(s + "+00:00")
                except ValueError:
                    return None
        elif n == 20 and s[19] == "Z" and s[10] == "T":
            with contextlib.suppress(ValueError):  # else: the general path below decides
                return _fromiso(s)  # UTC with 'Z' (lease_resource_snapshots): aware UTC as is
        s = s.strip()
        if not s:
            return None
        try:
            dt = _fromiso(s)  # 'Z', offsets, ' ' or 'T', date only, other fraction lengths
        except ValueError:
            try:
                return _epoch(float(s))  # numeric text (a REAL epoch stored as TEXT)
            except ValueError:
                return None
        if dt.tzinfo is None and len(s) == 19 and s[10] == " ":
            return dt.replace(tzinfo=UTC)  # CURRENT_TIMESTAMP shape, reached via strip()
        return from_dt(dt)

    def parse(value: object) -> datetime | None:
        if value.__class__ is str:
            r = values_get(value, _MISS)  # type: ignore[call-overload]
            if r is _MISS:
                r = parse_str(value)  # type: ignore[arg-type]
                if len(values) >= _MAX_VALUE_CACHE:
                    values.clear()
                values[value] = r  # type: ignore[index]
            return r  # type: ignore[no-any-return]
        if value is None:
            return None
        if value.__class__ is float or value.__class__ is int:
            return _epoch(value)  # type: ignore[arg-type]
        if isinstance(value, datetime):
            return from_dt(value)
        if isinstance(value, str):  # str subclass
            return parse_str(str(value))
        if isinstance(value, bytes):
            try:
                return parse(value.decode("ascii"))
            except UnicodeDecodeError:
                return None
        return None

    def parse_column(col: Sequence[object]) -> list[datetime | None]:
        """`[parse(v) for v in col]` for a whole column, in C-level passes when it holds only
        LEON's own shapes (issue 9: ~150k values per 10k-lease snapshot, a fifth of its CPU).

        Every value None or text of 19 or 26 characters: each text is parsed as UTC and shifted
        by its hour's local offset, exactly parse_str's hot path (for 26 characters the general
        path gives the same: a naive time in the local zone). 19-character text may be SQLite's
        CURRENT_TIMESTAMP (UTC, not local), told apart only per value: the pass takes it only
        when no hour in the column has a local offset. Anything else, or a value that does not
        parse, sends the column through `parse` one value at a time."""
        vals = [v for v in col if v is not None] if None in col else col
        if not vals:
            return [None] * len(col)
        if set(map(type, vals)) != _STR_ONLY:
            return list(map(parse, col))
        lens = set(map(len, vals))
        if lens == _Z_LENS and set(map(_AT_19, vals)) == _Z and set(map(_AT_10, vals)) == _T:
            try:  # all "YYYY-MM-DDTHH:MM:SSZ" (lease_resource_snapshots): parse_str's 'Z' path
                return _with_nones(col, vals, list(map(_fromiso, vals)))
            except ValueError:
                return list(map(parse, col))
        if not lens <= _HOT_LENS:
            return list(map(parse, col))
        offs: dict[str, timedelta | None] = {}
        if not always_utc:  # (else local time and CURRENT_TIMESTAMP's UTC agree: nothing to shift)
            for key in set(map(_HOUR_KEY, vals)):
                off = offsets_get(key)
                offs[key] = off if off is not None else offset_for(key + ":00", key)
        shifted = any(offs.values())
        if None in offs.values() or (shifted and 19 in lens):
            return list(map(parse, col))
        try:
            out: list[Any] = list(map(_fromiso, map(str.__add__, vals, _repeat("+00:00"))))
        except ValueError:
            return list(map(parse, col))
        if shifted:
            out = list(map(_sub, out, map(offs.__getitem__, map(_HOUR_KEY, vals))))
        return _with_nones(col, vals, out)

    parse.cache_len = values.__len__  # type: ignore[attr-defined]  # tests: the bound holds
    parse.column = parse_column  # type: ignore[attr-defined]
    return parse


def _with_nones(col: Sequence[object], vals: Sequence[object], out: list[Any]) -> list[Any]:
    """`out` (parsed `vals`, the non-None values of `col`) with col's Nones put back in place."""
    if vals is col:
        return out
    it = iter(out)
    return [None if v is None else next(it) for v in col]


def _epoch(v: float) -> datetime | None:
    if v != v:  # NaN
        return None
    try:
        return _fromts(v, UTC)
    except (OverflowError, OSError, ValueError):
        return None


@functools.cache
def _parser_for(tz: tzinfo) -> Callable[[object], datetime | None]:
    return _build_parser(tz)


def make_parser(local_tz: tzinfo | None = None) -> Callable[[object], datetime | None]:
    """A `parse_ts` bound to `local_tz` (default: the machine's zone) for tight loops."""
    return _parser_for(local_tz if local_tz is not None else local_zone())


def parse_ts(value: object, *, local_tz: tzinfo | None = None) -> datetime | None:
    """Normalise one LEON timestamp to an aware UTC datetime; None for None/''/garbage.

    - naive ISO ("2026-03-20T09:00:01.482913", also with ' ' and fractional seconds): local time
      in `local_tz` (default: the machine's zone, as LEON's `datetime.now()`);
    - exactly "YYYY-MM-DD HH:MM:SS" (SQLite CURRENT_TIMESTAMP): UTC;
    - 'Z' or an explicit offset: honoured;
    - int/float (or numeric text): epoch seconds;
    - datetime: naive as local, aware converted.
    DST: an ambiguous local time resolves to its first occurrence (fold=0).
    """
    return make_parser(local_tz)(value)


def to_local_naive_iso(dt: datetime, local_tz: tzinfo | None = None) -> str:
    """Render `dt` the way LEON stores sandbox timestamps (naive local ISO), for SQL comparisons."""
    tz = local_tz if local_tz is not None else local_zone()
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.astimezone(tz).replace(tzinfo=None).isoformat()


def to_sqlite_utc(dt: datetime) -> str:
    """Render `dt` as SQLite CURRENT_TIMESTAMP text (UTC), for comparisons in events.db."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def age_s(dt: datetime | None, now: datetime | None = None) -> float | None:
    """Seconds from `dt` to `now` (default: current UTC time); None if `dt` is None.

    Negative ages (clock skew, future timestamps) are returned as is: callers decide.
    """
    if dt is None:
        return None
    if now is None:
        now = datetime.now(UTC)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return (now - dt).total_seconds()


def fmt_age(seconds: float | None, *, unknown: str = "-") -> str:
    """The one age/duration format: '45s', '12m', '1h30m', '2d3h' (two units at most, floored).

    Every surface (table, TUI, alerts, reasons) prints ages with this, so the same age reads the
    same everywhere. Small negative ages (clock skew) show as '0s'; larger ones keep their sign.
    """
    if seconds is None or seconds != seconds or seconds in (float("inf"), float("-inf")):
        return unknown
    sign = ""
    if seconds < 0:
        if seconds > -1:
            seconds = 0
        else:
            sign, seconds = "-", -seconds
    s = int(seconds)
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{sign}{h}h{m}m" if m else f"{sign}{h}h"
    d, h = divmod(s // 3600, 24)
    return f"{sign}{d}d{h}h" if h else f"{sign}{d}d"


def fmt_duration(seconds: float) -> str:
    """A span's length: '850ms', '4.2s' below a minute (tool calls are short), else `fmt_age`."""
    if seconds < 1:
        return f"{max(seconds, 0) * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return fmt_age(seconds)


_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '2h', '1d', '1h30m' (a bare number is minutes); ValueError otherwise."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return timedelta(minutes=float(t))
    pos, total = 0, 0.0
    for m in _DURATION.finditer(t):
        if t[pos : m.start()].strip():
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos == 0 or t[pos:].strip() or total <= 0:
        raise ValueError(f"not a duration: {text!r} (e.g. 30m, 2h, 1d, 1h30m)")
    return timedelta(seconds=total)


_ZONE = attrgetter("tzinfo")
_UTC_OR_NAIVE = frozenset((UTC, None))


def utc_or_naive(times: Iterable[datetime | None]) -> bool:
    """Every time in `times` (None skipped) is aware UTC or naive: those orjson writes as
    isoformat() does (and, with its UTC options, as the snapshot's 'Z' text). Runs in C (map and
    filter: ~10x cheaper than a generator over 10k rows); False for a value that is no datetime."""
    try:
        return set(map(_ZONE, filter(None, times))) <= _UTC_OR_NAIVE
    except AttributeError:
        return False
