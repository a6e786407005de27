"""Issue 15, Provider events tab: Enter on one event opens it alone (every field, the whole payload
as pretty JSON, scrollable, copied whole by `c`, secrets masked), and from there Enter opens the
thread detail of its lease. Real LEON sandbox.db/events.db (the worked example) with a long,
secret-carrying webhook payload added to its provider_events; SVG snapshot at 80x24.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from opcockpit.tui.app import CockpitApp
from opcockpit.tui.screens.event import EventDetailScreen
from opcockpit.tui.screens.thread import ThreadDetailScreen
from tests.fixtures.leon_db import L1, ORPHAN, T1, add_provider_event, lt
from tests.tui.conftest import wait_until, worked_example_app
from tests.tui.screen_text import screen_text

SECRET = "whsec_DoNotShowMe0123456789abcdef"
TAIL = "END-OF-PAYLOAD"
PAYLOAD = {
    "event": "sandbox.lifecycle.paused",
    "sandbox_id": "inst-l1",
    "metadata": {"leon.lease_id": L1, "note": "n" * 150 + TAIL},
    "auth_token": SECRET,
    "steps": [{"at": f"11:5{n}:00", "state": "pausing" if n < 2 else "paused"} for n in range(3)],
}


def add_matched_event(we: Any) -> None:
    conn = sqlite3.connect(str(we.sandbox_db))
    try:
        add_provider_event(conn, "docker", "inst-l1", "sandbox.lifecycle.paused", PAYLOAD,
                           matched_lease_id=L1, event_id=7, created_at=lt("11:52:00"))  # fmt: skip
        conn.commit()
    finally:
        conn.close()


async def events_tab(pilot: Any, app: CockpitApp) -> None:
    await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
    await pilot.press("3")
    await wait_until(pilot, lambda: app.events_view.loaded and app.events_view.table.row_count >= 1)
    await pilot.pause()


async def open_event(pilot: Any, app: CockpitApp, key: str) -> EventDetailScreen:
    app.events_view.table.move_cursor_to_key(key)
    await pilot.pause()
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, EventDetailScreen) and app.screen.loaded)
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, EventDetailScreen)
    return screen


async def test_enter_opens_the_event_alone_with_its_whole_payload(worked_example: Any) -> None:
    add_matched_event(worked_example)
    app = worked_example_app(worked_example)
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign]  # the terminal's side
    async with app.run_test(size=(100, 30)) as pilot:
        await events_tab(pilot, app)
        assert "…" in screen_text(app) or TAIL not in screen_text(app)  # the table cuts the payload
        screen = await open_event(pilot, app, "7")
        text = screen.text
        fields = [("Event", "sandbox.lifecycle.paused"), ("Provider", "docker"), ("Instance", "inst-l1"),
                  ("Lease", L1), ("Thread", T1), ("Event id", "7")]  # fmt: skip
        for label, value in fields:
            line = next(x for x in text.splitlines() if x.startswith(label + " "))
            assert line[len(label) :].strip() == value, line
        assert '"sandbox_id": "inst-l1"' in text and TAIL in text  # pretty JSON, nothing cut
        assert '"auth_token": "***"' in text and SECRET not in text
        shown = screen_text(app)
        assert " event " in shown and SECRET not in shown
        body = screen.query_one("#inspect-body")
        await pilot.press("end")
        await pilot.pause()
        assert body.scroll_offset.y > 0  # longer than the screen: it scrolls
        await pilot.press("c")
        assert copied == [text] and SECRET not in copied[0]
        await pilot.press("j")  # the same record YAML-ish
        await wait_until(pilot, lambda: "sandbox_id: inst-l1" in screen.text)
        await pilot.press("enter")  # its lease's thread detail
        await wait_until(pilot, lambda: isinstance(app.screen, ThreadDetailScreen))
        assert app.screen.row.lease_id == L1
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press("escape")
        assert app.screen is not screen and app.events_view.table.cursor_key == "7"


async def test_unmatched_event_says_there_is_no_thread(worked_example: Any) -> None:
    app = worked_example_app(worked_example)
    async with app.run_test(size=(100, 30)) as pilot:
        await events_tab(pilot, app)
        key = next(k for k, e in app.events_view.events.items() if e.instance_id == ORPHAN)
        screen = await open_event(pilot, app, key)
        assert "(matched no lease)" in screen.text and '"sandbox_id": "' + ORPHAN in screen.text
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen  # nothing to open, and it says so instead of staying silent
        assert any("matched no lease" in str(n.message) for n in app._notifications)


def test_event_detail_80x24(snap_compare: Any, worked_example: Any) -> None:
    add_matched_event(worked_example)

    async def opened(pilot: Any) -> None:
        app = pilot.app
        await events_tab(pilot, app)
        await open_event(pilot, app, "7")

    assert snap_compare(worked_example_app(worked_example), terminal_size=(80, 24), run_before=opened)


def test_a_received_webhook_shows_the_whole_stored_event_masked() -> None:
    """A ledger row (received webhook): the stored event itself, every field, nothing cut."""
    from datetime import UTC, datetime

    from opcockpit.domain.events import EventSource, ProviderEvent
    from opcockpit.tui.screens.event import event_detail_text
    from opcockpit.tui.tabs.events import observed_record

    at = datetime(2026, 3, 20, 3, 52, tzinfo=UTC)
    ev = ProviderEvent(
        observed_at=at, occurred_at=at, source=EventSource.PROVIDER_EVENT, provider="e2b",
        instance_id="sbx-9", lease_id=L1, id=42,
        data={"via": "webhook", "event_type": "sandbox.lifecycle.paused",
              "payload": {"note": "n" * 500 + TAIL, "token": SECRET}},
    )  # fmt: skip
    source, record = observed_record(ev)
    assert source == "received" and TAIL not in (record.payload_json or "")  # the row is cut
    text = event_detail_text(source, record, T1, ev)
    assert "Event id    c42" in text and "Stored event" in text and f"Thread      {T1}" in text
    assert TAIL in text and '"token": "***"' in text and SECRET not in text
    yaml = event_detail_text(source, record, None, ev, style="yaml")
    assert "Thread      (unknown)" in yaml and "instance_id: sbx-9" in yaml and SECRET not in yaml


def test_a_payload_that_is_not_json_is_shown_as_stored_and_scrubbed() -> None:
    from opcockpit.domain.models import ProviderEventRecord
    from opcockpit.tui.screens.event import event_detail_text

    raw = f"paused; Authorization: Bearer {SECRET}\nsecond line"
    rec = ProviderEventRecord(3, "docker", "i-1", "pause", raw, None, None)
    text = event_detail_text("LEON", rec, None)
    assert "Payload (not JSON, as stored)" in text and "second line" in text and SECRET not in text
    assert "Lease       (matched no lease)" in text and "Time (UTC)  (no time)" in text
    bare = ProviderEventRecord(4, "docker", "i-1", "pause", None, None, None)
    assert event_detail_text("LEON", bare, None).endswith("(no payload)")
