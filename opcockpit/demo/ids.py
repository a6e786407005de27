"""LEON-shaped ids and LEON's timestamp conventions, drawn from a seeded RNG.

Shared by the fleet generator and the drift simulator so both write exactly what LEON writes
(see shared/domain/leon-sandbox-db.md §1 timestamps, §2 id formats, §4.3 instance ids).
"""

from __future__ import annotations

import bisect
import itertools
import random
import time
from datetime import UTC, datetime, timedelta

HEX = "0123456789abcdef"
ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


def weighted(rng: random.Random, table: tuple[tuple[object, float], ...]) -> object:
    """One weighted pick. `rng.choices(pop, weights)` re-accumulates the weights on every call,
    which dominated the generator's profile; callers pass a precomputed table from `cumulative`."""
    values, cum = table
    return values[bisect.bisect_right(cum, rng.random() * cum[-1])]  # type: ignore[index]


def cumulative(*pairs: tuple[object, float]) -> tuple:
    return tuple(v for v, _ in pairs), tuple(itertools.accumulate(w for _, w in pairs))


class IdGen:
    """Unique ids per kind. A set guards primary keys: a 48-bit collision is unlikely at 50k
    leases, but a generator that can crash on one seed out of thousands is not deterministic-safe."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def _unique(self, make) -> str:  # type: ignore[no-untyped-def]
        while True:
            value = make()
            if value not in self.used:
                self.used.add(value)
                return value

    def hex(self, n: int) -> str:
        return "%0*x" % (n, self.rng.getrandbits(n * 4))  # noqa: UP031 - fastest hex formatting

    def alnum(self, n: int) -> str:
        return "".join(self.rng.choices(ALNUM, k=n))

    # sandbox.db ids -------------------------------------------------------------------------
    # Hot path (about 20 ids per lease): a plain loop instead of _unique(lambda) per call.
    def _hex_id(self, prefix: str, nibbles: int) -> str:
        used, bits = self.used, self.rng.getrandbits
        while True:
            value = f"{prefix}{bits(nibbles * 4):0{nibbles}x}"
            if value not in used:
                used.add(value)
                return value

    def lease(self) -> str:
        return self._hex_id("lease-", 12)

    def adopted_lease(self) -> str:
        return self._hex_id("lease-adopt-", 12)

    def terminal(self) -> str:
        return self._hex_id("term-", 12)

    def session(self) -> str:
        return self._hex_id("sess-", 12)

    def runtime(self) -> str:
        return self._hex_id("runtime-", 12)

    def command(self) -> str:
        return self._hex_id("cmd_", 12)

    def event(self) -> str:
        return self._hex_id("evt-", 32)

    def member(self) -> str:
        return self._unique(lambda: "m_" + self.alnum(12))

    def uuid4(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"  # version/variant nibbles set below as uuid4 has them
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    # provider instance ids ------------------------------------------------------------------
    def instance(self, kind: str, lease_id: str) -> str:
        if kind == "docker":  # container name = leon.session_id label = LEON's instance id
            return self._unique(lambda: "leon-" + self.hex(12))
        if kind == "e2b":  # 20 lowercase alnum chars, as E2B sandbox ids
            return self._unique(lambda: self.alnum(20))
        if kind == "daytona":
            return self._unique(self.uuid4)
        if kind == "agentbay":
            return self._unique(lambda: "s-" + self.alnum(17))
        if kind == "local":  # LocalProvider returns context_id itself: leon-<lease_id>
            return self._unique(lambda: "leon-" + lease_id)
        raise ValueError(f"unknown provider kind {kind!r}")

    def docker_id(self) -> str:
        return self.hex(64)


class Clock:
    """Converts POSIX seconds to LEON's on-disk time formats.

    `now` is fixed at construction so one generation is internally consistent and two
    generations with the same `now` are byte-identical. Local time is computed with the UTC
    offset in force at `now` (LEON writes naive local time; DST shifts inside a demo fleet's
    two-week window are irrelevant to the cockpit).
    """

    def __init__(self, now: datetime | None = None) -> None:
        if now is None:
            now = datetime.now(UTC)
        if now.tzinfo is None:  # naive = local wall time, as LEON would read datetime.now()
            now = now.astimezone()
        self.now_ts = now.timestamp()
        offset = now.astimezone().utcoffset() or timedelta(0)
        self._offset = offset.total_seconds()
        # Formatting is the generator's hottest path (~1M timestamps at 50k leases): dates are
        # cached per day and the time of day is formatted arithmetically.
        self._days: dict[int, str] = {}

    def _day(self, day: int) -> str:
        text = self._days.get(day)
        if text is None:
            text = self._days[day] = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
        return text

    def local(self, ts: float) -> str:
        """Naive local ISO, `datetime.now().isoformat()` (sandbox tables)."""
        ts += self._offset
        sec = int(ts)
        us = int((ts - sec) * 1_000_000)
        day, rem = divmod(sec, 86400)
        h, rem = divmod(rem, 3600)
        m, s = divmod(rem, 60)
        if us:
            return f"{self._day(day)}T{h:02d}:{m:02d}:{s:02d}.{us:06d}"
        return f"{self._day(day)}T{h:02d}:{m:02d}:{s:02d}"  # isoformat drops zero micros

    def _utc(self, ts: float, sep: str, z: str) -> str:
        day, rem = divmod(int(ts), 86400)
        h, rem = divmod(rem, 3600)
        m, s = divmod(rem, 60)
        return f"{self._day(day)}{sep}{h:02d}:{m:02d}:{s:02d}{z}"

    def utc_z(self, ts: float) -> str:
        """UTC with Z, seconds precision (lease_resource_snapshots)."""
        return self._utc(ts, "T", "Z")

    def utc_sql(self, ts: float) -> str:
        """SQLite CURRENT_TIMESTAMP format, UTC (run_events.created_at)."""
        return self._utc(ts, " ", "")

    def aware(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, UTC)


def local_now_iso() -> str:
    """What LEON writes for 'now' in sandbox tables."""
    return datetime.now().isoformat()


def utc_now_sql() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def utc_now_z() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
