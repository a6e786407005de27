"""Issue 15, Tests: SVG snapshots at 80x24 of the screens the issue names. Ground truth, alerts
(grouped) and thread detail have theirs (test_ux_columns, test_ux_alert_groups,
test_ux_thread_detail); the orphans tab was only pinned at 100x30 (test_snapshots.test_orphans).

Review a change with `pytest tests/tui/test_ux15_snapshots.py --snapshot-update` only after reading
the diff of the SVG: these pin what an operator sees at 80 columns.
"""

from __future__ import annotations

from typing import Any

from tests.tui.screen_text import screen_text
from tests.tui.test_app import loaded
from tests.tui.test_snapshots import ready, synthetic_app


def test_snapshot_orphans_80x24(snap_compare: Any) -> None:
    assert snap_compare(synthetic_app(), terminal_size=(80, 24), run_before=ready("2"))


async def test_orphans_at_80x24_keep_instance_status_provider_and_state() -> None:
    """What the snapshot pins, in words: the instance id (the pinned key) and its state glyph and
    word fit at 80 columns, and the tab says how many orphans there are."""
    app = synthetic_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        await pilot.press("2")
        await pilot.pause()
        text = screen_text(app)
        header = next(ln for ln in text.splitlines() if ln.lstrip().startswith("Instance"))
        assert "Status" in header and "Provider" in header and "State" in header, header
        assert "Orphans 4" in text, text
        rows = [ln for ln in text.splitlines() if ln.startswith((">orph-", " orph-"))]
        assert len(rows) == 4 and "? unconfirmed" in text and "✗ orphan" in text, text
