# ruff: noqa: F811  (pytest fixtures imported by name)
"""A naive PostgreSQL timestamp reads as the very text LEON writes to sandbox.db (issue 12).

PostgreSQL trims a fraction's trailing zeros ("12:00:01.4075"); LEON's `datetime.isoformat()`
keeps six digits ("12:00:01.407500") or none. The PostgreSQL source hands its rows to the
sandbox.db row builders, whose column parse takes the fast path only for LEON's two shapes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
import pytest

from opcockpit.adapters.leon.sandbox_rows import _LEASE_COLS
from opcockpit.adapters.pg_source import PgSandboxReader, PgSourceSpec, read_pg_state
from opcockpit.demo.fleet import generate_fleet
from tests.fixtures.postgres import pg_server, pg_url  # noqa: F401
from tests.test_pg_source import copy_fleet

WRITTEN = [
    datetime(2026, 3, 20, 12, 0, 1, 407500),  # PostgreSQL: ".4075"
    datetime(2026, 3, 20, 12, 0, 2),  # no fraction at all
    datetime(2026, 3, 20, 12, 0, 3, 100000),  # ".1"
    datetime(2026, 3, 20, 12, 0, 4, 123456),  # six digits already
    datetime(2026, 3, 20, 12, 0, 5, 1),  # ".000001"
]


@pytest.fixture
def fleet(tmp_path: Any) -> Any:
    return generate_fleet(tmp_path / "fleet", leases=len(WRITTEN), seed=3, variant="mycel")


async def test_naive_timestamps_read_as_leons_isoformat_text(fleet: Any, pg_url: str) -> None:
    copy_fleet(fleet.sandbox_db, pg_url)
    with psycopg.connect(pg_url, autocommit=True) as pg:
        ids = [r[0] for r in pg.execute("SELECT lease_id FROM sandbox_leases ORDER BY lease_id")]
        for lid, ts in zip(ids, WRITTEN, strict=True):
            pg.execute("UPDATE sandbox_leases SET observed_at = %s WHERE lease_id = %s", (ts, lid))
        col = pg.execute("SELECT observed_at::text FROM sandbox_leases ORDER BY lease_id").fetchall()
    assert col[0][0] == "2026-03-20 12:00:01.4075"  # what the server itself says
    spec = PgSourceSpec(pg_url)
    async with PgSandboxReader(spec) as reader:
        _, (rows,) = await reader._snapshot(lambda s: [reader._sel(s, "sandbox_leases", _LEASE_COLS)])
    at = _LEASE_COLS.index("observed_at")
    by_id = {r[0]: r[at] for r in rows}
    assert [by_id[lid] for lid in ids] == [ts.isoformat() for ts in WRITTEN]
    # and the records, through either read, hold those times exactly
    for one_shot in (False, True):
        state = await read_pg_state(spec, one_shot=one_shot)
        seen = {x.lease_id: x.observed_at for x in state.leases}
        got = [seen[lid].replace(tzinfo=None) if seen[lid] else None for lid in ids]
        local = [ts.astimezone().astimezone(seen[ids[0]].tzinfo).replace(tzinfo=None) for ts in WRITTEN]
        assert got == local


async def test_times_leon_never_writes_keep_the_servers_own_text(fleet: Any, pg_url: str) -> None:
    """Infinity and BC: `to_char` has no text for the first and drops the era of the second;
    such a value reads as the server's `::text` (with the 'T'), as it always did, never as a
    wrong date or as no time at all."""
    copy_fleet(fleet.sandbox_db, pg_url)
    odd = ["infinity", "-infinity", "0044-03-15 00:00:00.5 BC"]
    with psycopg.connect(pg_url, autocommit=True) as pg:
        ids = [r[0] for r in pg.execute("SELECT lease_id FROM sandbox_leases ORDER BY lease_id")]
        for lid, text in zip(ids, odd, strict=False):
            sql = "UPDATE sandbox_leases SET observed_at = %s::timestamp WHERE lease_id = %s"
            pg.execute(sql, (text, lid))
    async with PgSandboxReader(PgSourceSpec(pg_url)) as reader:
        _, (rows,) = await reader._snapshot(lambda s: [reader._sel(s, "sandbox_leases", _LEASE_COLS)])
    at = _LEASE_COLS.index("observed_at")
    by_id = {r[0]: r[at] for r in rows}
    assert [by_id[lid] for lid in ids[: len(odd)]] == ["infinity", "-infinity", "0044-03-15T00:00:00.5TBC"]
