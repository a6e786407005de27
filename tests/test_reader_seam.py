# ruff: noqa: F811  (pytest fixtures imported by name)
"""One SQL seam, two sources (issue 9/12): the detail queries are written once
(adapters/leon/reader_details.py) and must answer alike on sandbox.db and on the same rows in
PostgreSQL (Mycel's column types: TIMESTAMP, BOOLEAN, BIGINT...). A real server
(tests.fixtures.postgres) and a generated Mycel fleet, lease_events included.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opcockpit.adapters.leon.dialect import POSTGRES, SQLITE
from opcockpit.adapters.leon.sandbox_db import SandboxDbReader
from opcockpit.adapters.leon.schema import SANDBOX_VOLUMES, SYNC_FILES
from opcockpit.adapters.pg_source import PgSandboxReader, PgSourceSpec
from tests.fixtures.postgres import pg_server, pg_url  # noqa: F401
from tests.test_pg_source import copy_fleet

NOW = datetime(2026, 3, 20, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def fleet(tmp_path: Path) -> Any:
    from opcockpit.demo.fleet import generate_fleet

    return generate_fleet(tmp_path / "f", leases=60, seed=3, now=NOW.replace(tzinfo=None), variant="mycel")


def _ids(db: Path, sql: str) -> list[Any]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute(sql)]


async def _answers(r: Any, fleet: Any) -> dict[str, Any]:
    """Every detail query of the reader contract, over a sample of the fleet's ids."""
    db = fleet.sandbox_db
    leases = _ids(db, "SELECT lease_id FROM sandbox_leases ORDER BY lease_id LIMIT 8")
    threads = _ids(db, "SELECT DISTINCT thread_id FROM abstract_terminals ORDER BY thread_id LIMIT 6")
    terminals = _ids(db, "SELECT terminal_id FROM abstract_terminals ORDER BY terminal_id LIMIT 10")
    commands = _ids(db, "SELECT DISTINCT command_id FROM terminal_command_chunks ORDER BY 1 LIMIT 4")
    commands += _ids(db, "SELECT command_id FROM terminal_commands ORDER BY 1 LIMIT 4")
    busiest = _ids(db, "SELECT lease_id FROM lease_events GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")
    out: dict[str, Any] = {
        "by_ids": await r.leases_by_ids(list(reversed(leases))),
        "events_all": await r.lease_events(None, limit=None),
        "events_window": await r.lease_events(
            busiest[0], since=NOW - timedelta(days=2), until=NOW - timedelta(hours=1)
        ),
        "provider_events": await r.provider_events(limit=None),
        "provider_events_by_lease": await r.provider_events(lease_ids=leases),
        "commands": await r.terminal_commands(terminals, limit=None),
        "volumes": await r.volumes(),
        "state": (await r.read_state(now=NOW)).leases,
    }
    for lid in leases:
        out[f"lease {lid}"] = await r.lease(lid)
        out[f"instances {lid}"] = await r.instance_history(lid)
        out[f"threads {lid}"] = await r.threads_for_lease(lid)
        out[f"find {lid[:6]}"] = await r.find_leases(lid[:6])
    for tid in threads:
        out[f"terminals {tid}"] = await r.thread_terminals(tid)
        out[f"sessions {tid}"] = await r.thread_sessions(tid)
        out[f"pointer {tid}"] = await r.thread_pointer(tid)
        out[f"sync {tid}"] = await r.sync_files(tid)
    for cid in commands:
        out[f"output {cid}"] = await r.command_output(cid, tail_bytes=16)
        out[f"output all {cid}"] = await r.command_output(cid, tail_bytes=None)
    return out


async def test_every_detail_query_answers_alike_on_sqlite_and_postgres(fleet: Any, pg_url: str) -> None:
    threads = _ids(fleet.sandbox_db, "SELECT DISTINCT thread_id FROM abstract_terminals ORDER BY 1 LIMIT 2")
    with sqlite3.connect(fleet.sandbox_db) as conn:  # Mycel's volume and file-sync tables, a few rows
        conn.executescript(SANDBOX_VOLUMES + ";" + SYNC_FILES)
        conn.executemany(
            "INSERT INTO sandbox_volumes VALUES (?, ?, ?, ?)",
            [
                ("vol-b", "data", "s3://b", "2026-03-19T10:00:00"),
                ("vol-a", None, "local", "2026-03-18T09:00:00"),
            ],
        )
        conn.executemany(
            "INSERT INTO sync_files VALUES (?, ?, ?, ?)",
            [(t, p, "sha-" + p, 1773990000 + i) for i, t in enumerate(threads) for p in ("b.txt", "a/x.py")],
        )
    copy_fleet(fleet.sandbox_db, pg_url, skip={"sqlite_sequence"})
    async with SandboxDbReader(str(fleet.sandbox_db)) as lite:
        a = await _answers(lite, fleet)
        assert lite.dialect is SQLITE and lite.lease_history_source == "lease_events"
    async with PgSandboxReader(PgSourceSpec(pg_url)) as pg:
        b = await _answers(pg, fleet)
        assert pg.dialect is POSTGRES and pg.lease_history_source == "lease_events"
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], key
    # the sample is not empty: each kind of answer was really compared
    for key in ("by_ids", "events_all", "events_window", "provider_events", "commands", "volumes", "state"):
        assert a[key], key
    assert any(v.source == "chunks" and v.truncated for k, v in a.items() if k.startswith("output "))
    assert any(v for k, v in a.items() if k.startswith("sync "))
