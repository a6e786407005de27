"""The TUI's live loops (issue 10/13) on real parts: a LEON-schema sandbox.db, the E2B double on
127.0.0.1 behind the real adapter, the real event ledger, a loopback OTLP/HTTP receiver.

- a webhook stored in the ledger (what `opcockpit serve` appends) reaches the running cockpit:
  the instance's new state is on screen after a ledger tick, without a full listing;
- the Provider events tab shows the cockpit-observed events next to LEON's rows, with a source;
- the TUI exports the ledger continuously while it runs and stops on exit; drops are in the header.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.events import EventLog
from opcockpit.domain.events import EventSource, InstanceStateChanged, InstanceView, ProviderEvent
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.settings.config import CockpitConfig, ProviderConfig, SourcesConfig
from opcockpit.settings.export import ExportConfig, OtlpExportConfig
from opcockpit.tui.app import CockpitApp, build_app
from opcockpit.wiring import build_cockpit
from tests.cli_support import build_leon_db
from tests.fixtures.leon_db import add_provider_event
from tests.fixtures.otlp import OtlpReceiver, closed_port_url
from tests.tui.conftest import wait_until
from tests.tui.screen_text import screen_text

KEY = "e2b_live_events_key_0123456789"
KEY_ENV = "OPCOCKPIT_TEST_E2B_KEY"
LEASE = "lease-e2b000000001"
LIST_ROUTE = "GET ^/v2/sandboxes$"


@pytest.fixture
def double(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)  # export only where a test turns it on
    with E2BDouble(api_key=KEY) as d:
        yield d


def config(
    tmp_path: Path, double: E2BDouble, iid: str, otlp: OtlpExportConfig | None = None
) -> CockpitConfig:
    db = build_leon_db(tmp_path / "sandbox.db", [(LEASE, "e2b", iid, "running", "running")])
    return CockpitConfig(
        sources=SourcesConfig(sandbox_db=db),
        providers={"e2b": ProviderConfig(name="e2b", kind="e2b", api_url=double.url, api_key_env=KEY_ENV,
                                         retries=0, timeout_s=2, list_interval_s=600)},
        export=ExportConfig(otlp=otlp or OtlpExportConfig(enabled=False)),
    )  # fmt: skip


def app_on(cfg: CockpitConfig, tmp_path: Path, **kw: object) -> CockpitApp:
    cockpit = build_cockpit(cfg, ledger_path=tmp_path / "ledger.db", live=True)
    # watch_events off: the E2B event feed must not be what brings the change (the ledger must)
    return build_app(cfg, cockpit=cockpit, alerting=None, watch_events=False, **kw)


def webhook(iid: str, state: str = "paused") -> ProviderEvent:
    return ProviderEvent(
        observed_at=datetime.now(UTC), source=EventSource.PROVIDER_EVENT, provider="e2b", instance_id=iid,
        lease_id=LEASE, after={"event": f"sandbox.lifecycle.{state}"},
        data={"via": "webhook", "event_type": f"sandbox.lifecycle.{state}", "payload": {"sandboxId": iid}},
    )  # fmt: skip


def provider_state(app: CockpitApp) -> str | None:
    gt = app.ground_truth
    return None if gt is None else {r.lease_id: r.provider_state for r in gt.rows}.get(LEASE)


async def test_a_webhook_in_the_ledger_is_on_screen_without_a_full_listing(
    tmp_path: Path, double: E2BDouble
) -> None:
    iid = double.add(state="running").instance_id
    app = app_on(config(tmp_path, double, iid), tmp_path)
    async with app.run_test() as pilot:
        await wait_until(pilot, lambda: provider_state(app) == "running")
        assert app.live.ledger_watch is not None and app.live.exporter is None  # export is off
        lists = double.requests_by_route.get(LIST_ROUTE, 0)
        refreshes = app.refreshes
        double.set_state(iid, "paused")
        assert app.cockpit is not None and app.cockpit.events is not None
        serve = EventLog(tmp_path / "ledger.db")  # `opcockpit serve` appends on its own connection
        try:
            serve.append([webhook(iid)])
        finally:
            serve.close()
        await wait_until(pilot, lambda: provider_state(app) == "paused")  # the ledger tick's look
        assert app.refreshes > refreshes
        assert app.live.ledger_watch.seen == 1
        assert double.requests_by_route.get(LIST_ROUTE, 0) == lists  # no full listing happened
        assert "paused" in app.gt_table.get_texts(LEASE)  # the row on screen, not just the model
        # The once-a-second poll is a plain task, one at a time: no Textual worker (its object
        # and state messages through the app every second, issue 10's idle tick).
        assert not app._alerts_w._timers  # its feed is polled by the app's one heartbeat
        watch = app.live.ledger_watch
        await wait_until(pilot, lambda: app.live._polling is None or app.live._polling.done())
        app.live._polling, skipped = None, watch.skipped
        app._heartbeat()  # the once-a-second timer: header, the Alerts feed, this poll ...
        assert app.live._polling is None and watch.skipped == skipped + 1  # ... nothing new: no task
        serve = EventLog(tmp_path / "ledger.db")
        try:
            serve.append([webhook(iid)])  # another process committed: a read, in a task
        finally:
            serve.close()
        app._heartbeat()
        first = app.live._polling
        app.live._poll_ledger()
        assert first is not None and app.live._polling is first  # one at a time
        assert not [w for w in app.workers if w.group == "ledger-watch"]
        await first


async def test_provider_events_tab_shows_observed_and_leon_rows_with_their_source(
    tmp_path: Path, double: E2BDouble
) -> None:
    iid = double.add(state="running").instance_id
    cfg = config(tmp_path, double, iid)
    conn = sqlite3.connect(cfg.sources.sandbox_db)
    add_provider_event(
        conn, "e2b", iid, "sandbox.lifecycle.created", {"sandboxId": iid}, matched_lease_id=LEASE
    )
    conn.commit()
    conn.close()
    app = app_on(cfg, tmp_path, auto_refresh=False)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
        assert app.cockpit is not None and app.cockpit.events is not None
        now = datetime.now(UTC)
        observed = InstanceStateChanged(
            observed_at=now, source=EventSource.PROVIDER_LIST, provider="e2b", instance_id=iid,
            before=InstanceView(state="running", lease_id=LEASE),
            after=InstanceView(state="paused", lease_id=LEASE),
        )  # fmt: skip
        app.cockpit.events.append([observed, webhook(iid)])
        await pilot.press("3")
        view = app.events_view
        await wait_until(pilot, lambda: view.loaded and view.table.row_count == 3)
        by_source = {view.sources[k]: view.events[k] for k in view.table.view_keys()}
        assert set(by_source) == {"LEON", "observed", "received"}
        assert by_source["LEON"].event_type == "sandbox.lifecycle.created"
        assert by_source["observed"].event_type == "state_changed"
        assert by_source["observed"].payload_json == "running → paused"
        assert by_source["received"].event_type == "sandbox.lifecycle.paused"
        assert all(e.matched_lease_id == LEASE for e in by_source.values())
        text = screen_text(app)
        assert "observed" in text and "received" in text and "LEON" in text and "state_changed" in text

        # A cockpit-observed row links to its lease like LEON's rows: the lease_events around it
        # (keyed by row, so ledger ids never meet LEON's) and `c` copies the lease id.
        key = next(k for k, s in view.sources.items() if s == "observed")
        assert view.table.move_cursor_to_key(key) and view.table.cursor_key == key
        # (moving the cursor loads them: the table's RowHighlighted)
        await wait_until(pilot, lambda: key in view.around or key in view.around_errors, tries=1500)
        assert key not in view.around_errors, view.around_errors
        assert f"lease_events of {LEASE}" in screen_text(app)
        assert app._event_copy_value(key) == LEASE


async def test_the_tui_exports_the_ledger_while_it_runs_and_stops_on_exit(
    tmp_path: Path, double: E2BDouble
) -> None:
    iid = double.add(state="running").instance_id
    with OtlpReceiver() as rx:
        otlp = OtlpExportConfig(enabled=True, endpoint=rx.url, interval_s=0.5)
        app = app_on(config(tmp_path, double, iid, otlp), tmp_path, auto_refresh=False)
        async with app.run_test() as pilot:
            await wait_until(pilot, lambda: app.ground_truth is not None)
            exporter = app.live.exporter
            assert exporter is not None and exporter._task is not None  # started on mount
            assert app.cockpit is not None and app.cockpit.events is not None
            app.cockpit.events.append([webhook(iid), webhook(iid, "resumed")])
            await wait_until(pilot, lambda: len(rx.logs) >= 2)
            assert app.live.drops == 0 and "OTLP" not in screen_text(app)
        assert exporter._task is None and app.live.exporter is None  # stopped on unmount
        names = [log.event_name for log in rx.logs]
        assert names.count("opcockpit.provider.event") == 2  # both webhooks, each once


async def test_export_drops_are_shown_in_the_header(tmp_path: Path, double: E2BDouble) -> None:
    iid = double.add(state="running").instance_id
    # Nothing listens and the queue holds one record: the rest are dropped, and the header says so.
    otlp = OtlpExportConfig(
        enabled=True, endpoint=closed_port_url(), interval_s=0.5, queue_size=1, timeout_s=1
    )
    app = app_on(config(tmp_path, double, iid, otlp), tmp_path, auto_refresh=False)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_until(pilot, lambda: app.ground_truth is not None)
        assert app.cockpit is not None and app.cockpit.events is not None
        app.cockpit.events.append([webhook(iid) for _ in range(10)])
        await wait_until(pilot, lambda: app.live.drops >= 9)
        app._show_header()
        # the header redraws each second; under load the first draw may still show the old count
        await wait_until(pilot, lambda: f"OTLP export dropped {app.live.drops}" in screen_text(app))
