"""Issue 15, bug 11: the overview's top errors keep what says what went wrong.

"Error code: 529 - {'type': 'error', 'error': {'type': 'overloaded_error', ...}}" was folded into
`Error code: <n> - {'<str>': '<str>', …}`; the operator could not tell an overloaded model from a
500. Real pipeline: the LEON worked example's events.db gets failed runs as LEON writes them, the
app's Alerts tab opens the overview (`o`) at 80x24 and the screen text must name 529 / overloaded.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from tests.fixtures.leon_db import T1, T2, WorkedExample, add_run, write_worked_example
from tests.tui.screen_text import screen_text
from tests.tui.test_alerts_tab import evaluated, make_app, view

OVERLOADED = (
    "Error code: 529 - {'type': 'error', 'error': {'type': 'overloaded_error', 'message': 'Overloaded'}}"
)
INTERNAL = "Error code: 500 - {'type': 'error', 'error': {'type': 'api_error', 'message': 'Internal'}}"


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.db"
    monkeypatch.setenv("OPCOCKPIT_LEDGER", str(path))
    return path


@pytest.fixture
def we(tmp_path: Path) -> WorkedExample:
    example = write_worked_example(tmp_path / "leon")
    conn = sqlite3.connect(example.events_db)
    with conn:  # failed runs a few minutes before the example's clock, inside the overview window
        for i, (thread, error) in enumerate([(T1, OVERLOADED), (T2, OVERLOADED), (T1, INTERNAL)]):
            start = example.now - timedelta(minutes=10 - i)
            add_run(conn, thread, outcome="error", error=error, start=start)
    conn.close()
    return example


async def test_overview_top_errors_name_status_and_cause_at_80x24(ledger: Path, we: WorkedExample) -> None:
    app = make_app(we)
    async with app.run_test(size=(80, 24)) as pilot:
        await evaluated(pilot, app)
        await pilot.press("4", "o")
        await pilot.pause()
        signatures = list(view(app).overview._errors)  # the groups the table shows, keyed by signature
        text = screen_text(app)
        assert "Top errors" in text, text
        # two groups, one per cause; the overloaded one first (2 runs) and readable at 80 columns
        assert "529" in text and "overloaded" in text, text
        assert len([s for s in signatures if "529" in s or "500" in s]) == 2, signatures
        assert not any("Error code: <n>" in s for s in signatures), signatures


@pytest.mark.parametrize(
    ("signature", "starts"),
    [
        (OVERLOADED, "529 overloaded_error · Error code: 529"),
        (INTERNAL, "500 api_error: Internal · "),
        ("Failed to pause lease lease-<id>: Docker command timed out after <n>s", "Failed to pause"),
        ("Error code: <n> - {'<str>': '<str>'}", "Error code: <n>"),  # nothing to say: as it is
    ],
)
def test_error_headline_says_status_and_cause_first(signature: str, starts: str) -> None:
    from opcockpit.tui.widgets.error_headline import error_headline

    shown = error_headline(signature)
    assert shown.startswith(starts) and shown.endswith(signature), shown
