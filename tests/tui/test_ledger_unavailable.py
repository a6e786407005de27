"""A broken ledger (corrupt file) never stops the fleet view: it is shown as unavailable.

The ledger holds alerts and the audit log. A corrupt, locked or read-only file must cost only
those: the ground truth keeps refreshing and the header says which file is unusable and why.
"""

from __future__ import annotations

from pathlib import Path

from opcockpit.settings.config import CockpitConfig, SourcesConfig
from opcockpit.tui.alerting import Alerting
from opcockpit.tui.app import CockpitApp
from opcockpit.tui.screens.audit import AuditScreen
from opcockpit.wiring import build_cockpit
from tests.tui.conftest import SequenceSource, wait_until
from tests.tui.factories import NOW, make_ground_truth, mutate
from tests.tui.screen_text import screen_text


async def test_corrupt_ledger_shows_unavailable_and_refreshes_go_on(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    ledger.write_bytes(b"this is not a sqlite database\x00" * 200)  # a corrupt file
    gt = make_ground_truth(30)
    src = SequenceSource([gt, mutate(gt, 0.2, step=1), mutate(gt, 0.3, step=2)])
    config = CockpitConfig(sources=SourcesConfig(sandbox_db=tmp_path / "sandbox.db"))
    cockpit = build_cockpit(config, ledger_path=ledger, clock=lambda: NOW)
    alerting = Alerting(cockpit, clock=lambda: NOW)
    app = CockpitApp(
        src,
        clock=lambda: NOW,
        auto_refresh=False,
        watch_events=False,
        alerting=alerting,
        audit_loader=cockpit.audit.list,
    )
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(pilot, lambda: app.refreshes == 1 and not app.inflight)
        await wait_until(pilot, lambda: alerting.ledger_error is not None)
        await pilot.pause()
        text = screen_text(app)
        header = "\n".join(text.splitlines()[:3])
        assert f"ledger unavailable: {ledger}" in header, header
        assert "not a database" in header  # the reason, from SQLite
        for expected in (2, 3):  # the ground truth keeps refreshing
            app.request_refresh()
            await wait_until(pilot, lambda n=expected: app.refreshes == n and not app.inflight)
        assert app.gt_table.row_count == 30 and app.last_error is None

        await pilot.press("4")  # the alerts tab says it too, instead of a bare sqlite error
        await pilot.pause()
        assert f"ledger unavailable: {ledger}" in screen_text(app)

        app.action_audit()  # the audit view of the same ledger
        screen = app.screen
        assert isinstance(screen, AuditScreen)
        await wait_until(pilot, lambda: screen.loaded)
        await pilot.pause()
        assert f"ledger unavailable: {ledger}" in screen_text(app)
        await pilot.press("escape")
        app.request_refresh()
        await wait_until(pilot, lambda: app.refreshes == 4 and not app.inflight)
