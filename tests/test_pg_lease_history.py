# ruff: noqa: F811  (pytest fixtures imported by name)
"""The lease history on a Mycel PostgreSQL source (issue 12): Mycel keeps no lease_events table
there, so the thread detail's lease history comes from provider_events by matched_lease_id, and
the data the TUI renders says so (each row's source, and the section's note)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fixtures.postgres import pg_server, pg_url  # noqa: F401
from tests.test_pg_source import SKIP_TABLES, add_matched_event, copy_fleet

NOW = datetime(2026, 3, 20, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def fleet(tmp_path: Path) -> Any:
    from opcockpit.demo.fleet import generate_fleet

    return generate_fleet(tmp_path / "f", leases=20, seed=7, now=NOW.replace(tzinfo=None), variant="mycel")


async def _detail(config: str, tmp_path: Path, thread_id: str, lease_id: str) -> Any:
    from opcockpit.settings.config import load_config
    from opcockpit.tui.data import DbDetails
    from opcockpit.wiring import build_cockpit

    path = tmp_path / f"c{abs(hash(config))}.toml"
    path.write_text(config)
    cockpit = build_cockpit(load_config(path, env={}).config)
    details = DbDetails.of(cockpit)
    try:
        return await details.thread_detail(thread_id, lease_id)
    finally:
        await details.aclose()
        await cockpit.aclose()


async def test_thread_detail_says_the_lease_history_is_provider_events(
    fleet: Any, pg_url: str, tmp_path: Path
) -> None:
    copy_fleet(fleet.sandbox_db, pg_url, skip=SKIP_TABLES)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        lease_id, thread_id = conn.execute(
            "SELECT lease_id, thread_id FROM abstract_terminals ORDER BY thread_id LIMIT 1"
        ).fetchone()
        add_matched_event(conn, lease_id, "2026-03-20T11:59:00")
    pg = await _detail(
        f'[sources]\nkind = "postgres"\nurl = "{pg_url}"\nevents_db = "{fleet.events_db}"\n',
        tmp_path,
        thread_id,
        lease_id,
    )
    assert not pg.errors, pg.errors
    assert "provider_events" in pg.notes["lease_events"] and "matched_lease_id" in pg.notes["lease_events"]
    assert pg.lease_events and {e.source for e in pg.lease_events} == {"provider_events"}
    assert pg.lease_events[0].event_id == "pe-999001" and pg.lease_events[0].lease_id == lease_id
    assert pg.terminals and pg.lease is not None and pg.lease.lease_id == lease_id
    # the same lease on sandbox.db: LEON's own lease_events, no note
    lite = await _detail(
        f'[sources]\nsandbox_db = "{fleet.sandbox_db}"\nevents_db = "{fleet.events_db}"\n',
        tmp_path,
        thread_id,
        lease_id,
    )
    assert "lease_events" not in lite.notes and "provider_events" not in {e.source for e in lite.lease_events}
