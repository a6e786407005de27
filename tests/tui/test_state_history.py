"""Thread detail's State history (pilot): LEON's lease_events, the cockpit's recorded transitions and
operator actions from a real ledger, interleaved newest first, with the time spent diverged."""

from __future__ import annotations

from pathlib import Path

import pytest

from opcockpit.adapters.ledger.events import EventLog
from opcockpit.domain.events import (
    ActionRequested,
    ActionView,
    InstanceAppeared,
    InstanceView,
    LeaseConvergenceChanged,
    LeaseView,
)
from opcockpit.domain.timeutil import parse_ts
from tests.fixtures.leon_db import L3, lt
from tests.tui.conftest import wait_until, worked_example_app
from tests.tui.screen_text import screen_text
from tests.tui.test_thread_detail import open_detail


def at(hms: str):  # type: ignore[no-untyped-def]
    """The instant the detail reader gives LEON's naive wall time `hms` (the host's zone), so the
    cockpit's events interleave with LEON's rows the same way on any host."""
    return parse_ts(lt(hms).isoformat())


def _view(conv: str) -> LeaseView:
    return LeaseView(
        convergence=conv, desired_state="paused", observed_state="running", provider_state="running"
    )


async def test_state_history_interleaves_leon_cockpit_and_operator(
    worked_example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = tmp_path / "ledger.db"
    monkeypatch.setenv("OPCOCKPIT_LEDGER", str(ledger))
    log = EventLog(ledger)
    log.append(
        [
            InstanceAppeared(observed_at=at("11:30:00"), source="provider_list", lease_id=L3,
                             provider="e2b", instance_id="i-3", after=InstanceView(state="running")),
            LeaseConvergenceChanged(observed_at=at("11:50:30"), source="sandbox_db", lease_id=L3,
                                    before=_view("converged"), after=_view("diverged")),
            ActionRequested(observed_at=at("11:51:00"), source="operator", lease_id=L3,
                            after=ActionView(action="pause", status="pending", operator="sre@bastion")),
            LeaseConvergenceChanged(observed_at=at("11:57:30"), source="provider_list", lease_id=L3,
                                    before=_view("diverged"), after=_view("converged")),
            LeaseConvergenceChanged(observed_at=at("11:52:00"), source="sandbox_db",
                                    lease_id="lease-someone-else", after=_view("diverged")),
        ]
    )  # fmt: skip
    log.close()
    app = worked_example_app(worked_example)
    async with app.run_test(size=(160, 60)) as pilot:
        screen = await open_detail(pilot, app, L3)
        await wait_until(pilot, lambda: bool(screen.history))
        await pilot.pause()
        got = [(h.origin, h.what) for h in screen.history]
        assert got == [
            ("cockpit", "lease.convergence_changed"),
            ("operator", "action.requested"),
            ("cockpit", "lease.convergence_changed"),
            ("leon", "intent.pause"),
            ("leon", "observe.status"),
            ("cockpit", "instance.appeared"),
            ("leon", "intent.ensure_running"),
        ]  # newest first; another lease's events are not here
        text = screen_text(app)
        assert "State history" in text
        assert "converged → diverged" in text and "pause pending by sre@bastion" in text
        assert "time diverged (recorded): 7m" in text  # 11:50:30 -> 11:57:30


async def test_state_history_says_when_the_ledger_is_unusable(
    worked_example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = tmp_path / "ledger.db"
    ledger.write_bytes(b"not a ledger" * 300)
    monkeypatch.setenv("OPCOCKPIT_LEDGER", str(ledger))
    app = worked_example_app(worked_example)
    async with app.run_test(size=(160, 60)) as pilot:
        screen = await open_detail(pilot, app, L3)
        await wait_until(pilot, lambda: bool(screen.history))
        await pilot.pause()
        assert [h.origin for h in screen.history] == ["leon", "leon", "leon"]  # LEON's side still shown
        text = screen_text(app)
        assert "✗" in text and str(ledger)[:40] in text.replace("\n", "")
