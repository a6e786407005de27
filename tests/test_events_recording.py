"""RecordingCollector through wiring: real LEON-schema DB, real E2B double on 127.0.0.1, real ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from opcockpit.adapters.ledger.events import EventLog
from opcockpit.domain.events import EventQuery
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.services.history import RecordingCollector
from opcockpit.wiring import build_cockpit
from tests.cli_support import build_leon_db
from tests.test_snapshot_collector import KEY, KEY_ENV, make_config

LEASE = "lease-e2b000000001"


@pytest.fixture
def double():
    with E2BDouble(api_key=KEY) as d:
        yield d


async def test_refreshes_record_changes_after_a_baseline(
    tmp_path: Path, double: E2BDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    iid = double.add(state="running").instance_id
    db = build_leon_db(tmp_path / "sandbox.db", [(LEASE, "e2b", iid, "running", "running")])
    ledger = tmp_path / "ledger.db"
    cockpit = build_cockpit(make_config(db, double.url), ledger_path=ledger)
    assert isinstance(cockpit.collector, RecordingCollector) and cockpit.events is not None
    try:
        await cockpit.collector.refresh()
        assert cockpit.events.query(EventQuery()) == []  # baseline: no flood
        double.set_state(iid, "paused")
        stray = double.add(state="running").instance_id
        gt = await cockpit.collector.refresh()
        got = {
            (e.type, e.lease_id if e.type.startswith("lease") else e.instance_id)
            for e in cockpit.events.query(EventQuery())
        }
        assert got == {
            ("instance.state_changed", iid),
            ("lease.convergence_changed", LEASE),
            ("instance.appeared", stray),
            ("orphan.appeared", stray),
        }
        assert cockpit.collector.last_ground_truth is gt  # passes through to the collector
        double.faults.error_status = 503
        await cockpit.collector.refresh()
        assert [e.type for e in cockpit.events.query(EventQuery(limit=1))] == ["provider.listing_failed"]
        assert cockpit.collector.ledger_error is None
    finally:
        await cockpit.aclose()
    # a later process (cron snapshot) diffs against the stored picture: nothing new, no baseline
    double.faults.error_status = None
    again = build_cockpit(make_config(db, double.url), ledger_path=ledger)
    try:
        await again.collector.refresh()
    finally:
        await again.aclose()
    newest = EventLog(ledger).query(EventQuery(limit=1))
    assert [e.type for e in newest] == ["provider.listing_recovered"]


async def test_broken_ledger_never_stops_the_fleet_view(
    tmp_path: Path, double: E2BDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    iid = double.add(state="running").instance_id
    db = build_leon_db(tmp_path / "sandbox.db", [(LEASE, "e2b", iid, "running", "running")])
    ledger = tmp_path / "ledger.db"
    ledger.write_bytes(b"not a database" * 200)
    cockpit = build_cockpit(make_config(db, double.url), ledger_path=ledger)
    try:
        gt = await cockpit.collector.refresh()
        assert [r.lease_id for r in gt.rows] == [LEASE]
        assert cockpit.collector.ledger_error and str(ledger) in cockpit.collector.ledger_error
    finally:
        await cockpit.aclose()
