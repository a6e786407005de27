"""SVG snapshots of each screen at 100x30 with deterministic data (fixed seed, fixed clock).

Review changes with `pytest tests/tui/test_snapshots.py --snapshot-update` only after reading the
HTML diff report: a Textual upgrade alone can change these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from textual.widgets import Input

from opcockpit.tui.app import CockpitApp
from opcockpit.tui.screens.thread import ThreadDetailScreen
from tests.tui.conftest import SequenceSource, wait_until, worked_example_app
from tests.tui.factories import NOW, make_ground_truth

SIZE = (100, 30)


def frozen_flash_clock() -> float:
    """The tables' change-highlight clock, stopped: a highlight shown is still shown when the
    screenshot is taken, however loaded the machine (its 1.5 s timer never finds it expired)."""
    return 0.0


def synthetic_app(**kwargs: Any) -> CockpitApp:
    return CockpitApp(
        SequenceSource([make_ground_truth(60)]),
        clock=lambda: NOW,
        auto_refresh=False,
        flash_clock=frozen_flash_clock,
        **kwargs,
    )


Step = Callable[[Any], Awaitable[None]]


def ready(*keys: str, then: Step | None = None) -> Step:
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
        for inp in app.query(Input):
            inp.cursor_blink = False
        if keys:
            await pilot.press(*keys)
        if then is not None:
            await then(pilot)
        await pilot.pause()

    return run_before


def test_ground_truth(snap_compare: Any) -> None:
    assert snap_compare(synthetic_app(demo_banner="DEMO seed 7"), terminal_size=SIZE, run_before=ready())


def test_ground_truth_read_only_filtered_sorted(snap_compare: Any) -> None:
    assert snap_compare(
        synthetic_app(read_only=True),
        terminal_size=SIZE,
        run_before=ready("slash", *"!state:converged", "enter", "greater_than_sign", "i"),
    )


def test_orphans(snap_compare: Any) -> None:
    assert snap_compare(synthetic_app(), terminal_size=SIZE, run_before=ready("2"))


def test_alerts_placeholder(snap_compare: Any) -> None:
    assert snap_compare(synthetic_app(), terminal_size=SIZE, run_before=ready("4"))


def test_help(snap_compare: Any) -> None:
    assert snap_compare(synthetic_app(), terminal_size=SIZE, run_before=ready("question_mark"))


def test_thread_detail(snap_compare: Any, worked_example: Any) -> None:
    async def detail_loaded(pilot: Any) -> None:
        await wait_until(
            pilot,
            lambda: isinstance(pilot.app.screen, ThreadDetailScreen) and pilot.app.screen.detail is not None,
        )

    app = worked_example_app(worked_example)
    assert snap_compare(app, terminal_size=SIZE, run_before=ready("enter", then=detail_loaded))


def test_provider_events(snap_compare: Any, worked_example: Any) -> None:
    async def events_loaded(pilot: Any) -> None:
        await wait_until(pilot, lambda: pilot.app.events_view.loaded)

    app = worked_example_app(worked_example)
    assert snap_compare(app, terminal_size=SIZE, run_before=ready("3", then=events_loaded))


# ----------------------------------------------------------------------- 16 colours, actions, audit


def test_ground_truth_16_colours(snap_compare: Any) -> None:
    async def ansi(pilot: Any) -> None:
        pilot.app.theme = "ansi-dark"  # what a 16-colour terminal gets

    assert snap_compare(synthetic_app(), terminal_size=SIZE, run_before=ready(then=ansi))


def _targets(app: CockpitApp, n: int) -> list[Any]:
    from opcockpit.domain.targets import Target

    rows = [r for r in app.ground_truth.rows if r.instance_id and r.provider != "local"][:n]
    return [Target.of_row(r) for r in rows]


def test_destroy_dialog(snap_compare: Any) -> None:
    from opcockpit.tui.screens.confirm import ConfirmDestroyScreen

    async def dialog(pilot: Any) -> None:
        await pilot.app.push_screen(ConfirmDestroyScreen(_targets(pilot.app, 1)))

    assert snap_compare(synthetic_app(), terminal_size=SIZE, run_before=ready(then=dialog))


def test_bulk_destroy_dialog(snap_compare: Any) -> None:
    from opcockpit.tui.screens.confirm import ConfirmDestroyScreen

    async def dialog(pilot: Any) -> None:
        await pilot.app.push_screen(ConfirmDestroyScreen(_targets(pilot.app, 3)))
        for inp in pilot.app.screen.query(Input):
            inp.cursor_blink = False

    assert snap_compare(synthetic_app(), terminal_size=SIZE, run_before=ready(then=dialog))


def test_pending_and_failed_rows(snap_compare: Any) -> None:
    from opcockpit.domain.targets import Target
    from opcockpit.tui.rows import failed_mark, pending_mark
    from tests.tui.screen_text import screen_text

    async def overlay(pilot: Any) -> None:
        app = pilot.app
        # Two rows on the first screen of the sorted view (the first rows of the fleet sort
        # below the 30-line window): the snapshot must show both marks.
        by_key = {r.lease_id: r for r in app.ground_truth.rows}
        shown = [by_key[k] for k in app.gt_table.view_keys()[:10] if k in by_key]
        a, b = [Target.of_row(r) for r in shown if r.instance_id and r.provider != "local"][:2]
        app.overlay.start(a.key, "pause", "paused")
        app.overlay.fail(b.key, "resume", "e2b: POST /sandboxes/x/resume: HTTP 500 (injected)")
        app._render_tables()
        app._show_header()  # the header's pending count now, not at its next 1 s tick (timing)
        # The two changed rows stay highlighted in the snapshot: the flash clock is frozen.
        await pilot.pause()
        text = screen_text(app)
        lines = {key: next((ln for ln in text.splitlines() if key in ln), "") for key in (a.key, b.key)}
        assert str(pending_mark("pause")) in lines[a.key], lines
        assert str(failed_mark("resume")) in lines[b.key], lines

    app = synthetic_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=ready(then=overlay))


def test_audit_view(snap_compare: Any) -> None:
    from datetime import timedelta

    from opcockpit.adapters.ledger.audit import AuditEntry

    entries = [
        AuditEntry(
            2,
            "op2",
            NOW - timedelta(minutes=1),
            "sre@bastion",
            "destroy",
            "docker",
            "lease-00003",
            "doc-000003",
            "thr-00003-0",
            {"provider_state": "running"},
            {"provider_state": "gone"},
            "pending",
            "done",
            None,
            41,
            False,
            False,
            "converged",
            NOW,
        ),
        AuditEntry(
            1,
            "op1",
            NOW - timedelta(minutes=5),
            "sre@bastion",
            "pause",
            "e2b",
            "lease-00001",
            "e2b-000001",
            "thr-00001-0",
            {"provider_state": "running"},
            None,
            "failed",
            None,
            "Failed to pause lease lease-00001: HTTP 500",
            12,
            False,
            False,
            None,
            None,
        ),
    ]

    async def audit(pilot: Any) -> None:
        from opcockpit.tui.screens.audit import AuditScreen

        pilot.app.action_audit()
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, AuditScreen) and pilot.app.screen.loaded)

    app = CockpitApp(
        SequenceSource([make_ground_truth(60)]),
        clock=lambda: NOW,
        auto_refresh=False,
        audit_loader=lambda limit: entries,
    )
    assert snap_compare(app, terminal_size=SIZE, run_before=ready(then=audit))
