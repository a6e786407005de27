"""Issue 15, safety of marks and actions: pilot tests on the real pipeline (demo fleet in LEON's
schema + provider doubles on loopback + FleetCollector + Operations). Each bug's test was written
first and failed on the main of its day."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Input

from opcockpit.adapters.ledger.audit import AuditEntry
from opcockpit.domain.models import Convergence
from opcockpit.settings.config import CockpitConfig, SourcesConfig
from opcockpit.tui.app import CockpitApp, build_app
from opcockpit.tui.screens.audit import AUDIT_COLUMNS, audit_cells
from opcockpit.tui.screens.confirm import ConfirmActionScreen, ConfirmDestroyScreen
from opcockpit.tui.screens.help import FILTERS, help_renderable
from opcockpit.tui.screens.thread import ThreadDetailScreen
from tests.tui.conftest import wait_until
from tests.tui.screen_text import screen_text

SIZE = (140, 40)


@pytest.fixture
def env() -> Iterator[Any]:
    from opcockpit.demo.runtime import demo_environment

    with demo_environment(seed=7, leases=40, drift=False) as e:
        yield e


def make(env: Any, tmp_path: Path, **kwargs: Any) -> CockpitApp:
    return build_app(
        env.config, ledger_path=tmp_path / "ledger.db", auto_refresh=False, watch_events=False, **kwargs
    )


async def loaded(pilot: Any, app: CockpitApp) -> None:
    await wait_until(pilot, lambda: app.refreshes >= 1 and not app.inflight)
    await pilot.pause()


def converged(app: CockpitApp, provider: str, state: str, n: int = 1) -> list[str]:
    assert app.ground_truth is not None
    keys = [
        r.lease_id
        for r in app.ground_truth.rows
        if r.provider == provider
        and r.convergence == Convergence.CONVERGED
        and r.provider_state == state
        and r.thread_id
    ]
    assert len(keys) >= n
    return keys[:n]


def iid(app: CockpitApp, lease: str) -> str:
    assert app.ground_truth is not None
    found = next(r.instance_id for r in app.ground_truth.rows if r.lease_id == lease)
    assert found is not None
    return found


def messages(app: CockpitApp) -> list[str]:
    return [n.message for n in app._notifications]


async def settled(pilot: Any, app: CockpitApp) -> None:
    for _ in range(40):
        if not app.overlay.pending_count() and not app.inflight and not app.workers._workers:
            return
        if not app.inflight:
            # The TUI's collector lists each provider in full only every list_interval_s; the
            # tracker settles an operation on a listing newer than the action: ask for one.
            app.source.resync()
            app.request_refresh()
        await pilot.pause(0.1)
    raise AssertionError("operations did not settle")


async def filter_to(pilot: Any, app: CockpitApp, text: str) -> None:
    """Filter the way an operator does: `/`, the text, Enter."""
    await pilot.press("slash")
    app._filter_w.value = text  # what typing it does (Input.Changed filters live)
    await pilot.press("enter")


def flat(text: str) -> str:
    """Screen text with line breaks and box borders gone (wrapped lines join up again)."""
    return re.sub(r"[\s│┃▌▐]+", "", text)


# ---------------------------------------------------------------------- bug 1: hidden marks


async def test_hidden_marked_row_is_not_acted_on_unless_the_confirmation_lists_it(
    env: Any, tmp_path: Path
) -> None:
    app = make(env, tmp_path)
    e2b = env.doubles["e2b"]
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        hidden, shown = converged(app, "e2b", "running", 2)
        app.gt_table.move_cursor_to_key(hidden)
        await pilot.press("space")
        assert "1 marked" in screen_text(app)  # the mark count is visible
        await filter_to(pilot, app, f"lease:{shown}")
        app.gt_table.move_cursor_to_key(shown)
        await pilot.pause()
        assert "1 marked (1 hidden)" in screen_text(app)
        await pilot.press("p")
        dialog = app.screen
        assert isinstance(dialog, ConfirmActionScreen)
        text = screen_text(app)
        assert shown in text and "1 marked row is hidden by the filter" in text and hidden in text
        assert [t.key for t in dialog.chosen] == [shown]  # hidden rows only when asked for
        await pilot.press("y")
        await settled(pilot, app)
        assert e2b.instances[iid(app, shown)].state == "paused"
        assert e2b.instances[iid(app, hidden)].state == "running"  # the hidden mark was left alone
        assert hidden in app.gt_table.marked  # and is still marked, as the toast says
        assert any("hidden" in m and hidden in m for m in messages(app))


async def test_hidden_marked_rows_included_when_the_operator_says_so(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    e2b = env.doubles["e2b"]
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        hidden, shown = converged(app, "e2b", "running", 2)
        app.gt_table.toggle_mark(hidden)
        app.gt_table.set_filter(f"lease:{shown}")
        app.gt_table.move_cursor_to_key(shown)
        await pilot.pause()
        await pilot.press("p")
        dialog = app.screen
        assert isinstance(dialog, ConfirmActionScreen)
        await pilot.press("h")  # include the hidden ones
        assert sorted(t.key for t in dialog.chosen) == sorted([hidden, shown])
        assert "Pause 2" in screen_text(app)
        await pilot.press("enter")
        await settled(pilot, app)
        assert {e2b.instances[iid(app, k)].state for k in (hidden, shown)} == {"paused"}
        assert not app.gt_table.marked


# ---------------------------------------------------------------------- bug 2: confirm every action


async def test_pause_confirms_naming_its_target_and_the_cursor_stays(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    e2b = env.doubles["e2b"]
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        (lease,) = converged(app, "e2b", "running")
        app.gt_table.move_cursor_to_key(lease)
        await pilot.press("p")
        assert isinstance(app.screen, ConfirmActionScreen)
        text = screen_text(app)
        assert lease in text and iid(app, lease) in text and "Pause" in text
        await pilot.press("n")  # no: nothing happens
        assert not isinstance(app.screen, ConfirmActionScreen)
        assert e2b.instances[iid(app, lease)].state == "running" and lease not in app.overlay
        await pilot.press("p", "y")
        await settled(pilot, app)
        assert e2b.instances[iid(app, lease)].state == "paused"
        assert app.gt_table.cursor_key == lease  # the cursor did not move on
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmActionScreen)
        await pilot.press("enter")  # one key confirms a reversible action
        await settled(pilot, app)
        assert e2b.instances[iid(app, lease)].state == "running"


async def test_confirm_destructive_only_runs_pause_at_once(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path, confirm="destructive")
    e2b = env.doubles["e2b"]
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        (lease,) = converged(app, "e2b", "running")
        app.gt_table.move_cursor_to_key(lease)
        await pilot.press("p")
        assert not isinstance(app.screen, ConfirmActionScreen)
        await settled(pilot, app)
        assert e2b.instances[iid(app, lease)].state == "paused"
        await pilot.press("ctrl+d")
        assert isinstance(app.screen, ConfirmDestroyScreen)  # destroy always asks


def test_tui_confirm_setting_is_validated() -> None:
    from pydantic import ValidationError

    cfg = CockpitConfig(sources=SourcesConfig(sandbox_db=Path("x.db")))
    assert cfg.tui.confirm == "all"
    assert CockpitConfig.model_validate({"sources": {"sandbox_db": "x"}, "tui": {"confirm": "destructive"}})
    with pytest.raises(ValidationError):
        CockpitConfig.model_validate({"sources": {"sandbox_db": "x"}, "tui": {"confirm": "none"}})


def test_tui_table_loads_from_the_config_file(tmp_path: Path) -> None:
    from opcockpit.settings.config import load_config

    path = tmp_path / "opcockpit.toml"
    path.write_text(f'[sources]\nsandbox_db = "{tmp_path / "s.db"}"\n[tui]\nconfirm = "destructive"\n')
    assert load_config(path, env={}).config.tui.confirm == "destructive"


# ---------------------------------------------------------------------- bug 6: bulk destroy count


async def test_bulk_destroy_typed_digits_reach_the_count_and_enter_destroys(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    e2b = env.doubles["e2b"]
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await loaded(pilot, app)
        keys = converged(app, "e2b", "running", 2)
        ids = [iid(app, k) for k in keys]
        for k in keys:
            app.gt_table.toggle_mark(k)
        await pilot.press("ctrl+d")
        dialog = app.screen
        assert isinstance(dialog, ConfirmDestroyScreen) and dialog.bulk
        assert dialog.focused is dialog.query_one("#cancel", Button)  # a stray Enter still cancels
        await pilot.press("3")  # typed straight away: it goes to the count
        assert dialog.query_one("#confirm-count", Input).value == "3"
        await pilot.press("enter")  # wrong count: cancels, and says why
        assert app.screen is not dialog
        assert any("typed 3" in m and "2" in m for m in messages(app))
        assert all(i in e2b.instances for i in ids)
        await pilot.press("ctrl+d")
        await pilot.press("enter")  # empty count: cancels, and says why
        assert not isinstance(app.screen, ConfirmDestroyScreen)
        assert any("nothing destroyed" in m for m in messages(app))
        await pilot.press("ctrl+d", "2", "enter")
        await settled(pilot, app)
        assert all(i not in e2b.instances for i in ids)


# ---------------------------------------------------------------------- bug 8: silent drops


async def test_resume_names_what_it_skipped_and_why(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await loaded(pilot, app)
        (paused,) = converged(app, "e2b", "paused")
        (running,) = converged(app, "e2b", "running")
        app.gt_table.toggle_mark(paused)
        app.gt_table.toggle_mark(running)
        app.gt_table.move_cursor_to_key(paused)
        await pilot.pause()
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmActionScreen)
        assert "skipped: already running" in screen_text(app)
        await pilot.press("y")
        await settled(pilot, app)
        assert any(running in m and "already running" in m for m in messages(app))
        assert running in app.gt_table.marked  # not dropped without a word: still marked


async def test_a_greyed_key_says_why_when_pressed(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await loaded(pilot, app)
        (running,) = converged(app, "e2b", "running")
        app.gt_table.move_cursor_to_key(running)
        await pilot.pause()
        assert app.check_action("resume", ()) is None  # greyed
        await pilot.press("r")
        assert not isinstance(app.screen, ConfirmActionScreen)
        assert any("resume" in m and "already running" in m for m in messages(app))


async def test_read_only_key_press_says_read_only(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path, read_only=True)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await loaded(pilot, app)
        await pilot.press("ctrl+d")
        assert not isinstance(app.screen, ConfirmDestroyScreen)
        assert any("read-only" in m for m in messages(app))


# ---------------------------------------------------------------------- bug 4: the help's regex


async def test_the_help_regex_example_matches_lease_ids(env: Any, tmp_path: Path) -> None:
    example = next(expr for expr, what in FILTERS if what.startswith("regex"))
    app = make(env, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        pattern = re.compile(example, re.IGNORECASE)
        assert app.ground_truth is not None
        want = {r.lease_id for r in app.ground_truth.rows if pattern.search(r.lease_id)}
        assert want, "the demo fleet has leases the example should find"
        app.gt_table.set_filter(example)
        shown = set(app.gt_table.view_keys())
        assert want <= shown and shown  # bare regex terms match any cell, anchored to the cell


# ---------------------------------------------------------------------- bug 10: audit coherence


def _entry(result: str, convergence: str | None) -> AuditEntry:
    return AuditEntry(
        id=1,
        op_id="op1",
        at=datetime(2026, 1, 1, tzinfo=UTC),
        operator="sre",
        action="pause",
        result=result,
        outcome=None,
        dry_run=False,
        read_only=False,
        convergence=convergence,
        provider="e2b",
        lease_id="lease-1",
        instance_id="i-1",
        thread_id="t-1",
        before=None,
        after=None,
        duration_ms=5,
        error=None,
        settled_at=None,
    )


def test_audit_result_settles_with_the_convergence() -> None:
    labels = [c.label for c in AUDIT_COLUMNS]
    for result, conv, want in (
        ("pending", "converged", "converged"),
        ("pending", "timed_out", "timed out"),
        ("pending", None, "pending"),
        ("failed", None, "failed"),
    ):
        cells = dict(zip(labels, audit_cells(_entry(result, conv)), strict=True))
        words = " ".join(str(v) for v in cells.values() if v is not None)
        assert want in str(cells["Result"])
        if conv:  # no "pending" beside a settled convergence
            assert "pending" not in words


# ---------------------------------------------------------------------- bug 12: no config


async def test_unreadable_sandbox_db_reason_in_full_with_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "a-rather-long-directory-name-for-leon" / "nested-again" / "sandbox.db"
    cfg = CockpitConfig(sources=SourcesConfig(sandbox_db=missing))
    app = build_app(cfg, ledger_path=tmp_path / "ledger.db", auto_refresh=False, watch_events=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.last_error is not None and not app.inflight)
        await pilot.pause()
        text = screen_text(app)
        assert "waiting for the first refresh" not in text
        assert str(missing).replace(" ", "") in flat(text)  # the whole path, wrapped, not cut
        assert "What to do: point [sources] sandbox_db in the config" in text


# ---------------------------------------------------------------------- marks


async def test_mark_all_visible_range_and_clear(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        table = app.gt_table
        await filter_to(pilot, app, "provider:e2b")
        await pilot.press("ctrl+a")
        assert table.marked == set(table.view_keys())
        assert f"{len(table.marked)} marked" in screen_text(app)
        await pilot.press("u")
        assert not table.marked
        keys = table.view_keys()
        table.move_cursor_to_key(keys[1])
        await pilot.press("space")  # marks keys[1], cursor to keys[2]
        table.move_cursor_to_key(keys[4])
        await pilot.press("ctrl+@")  # ctrl+space: from the last mark to the cursor
        assert table.marked == set(keys[1:5])
        assert "4 marked" in screen_text(app)


def test_help_lists_every_mark_key() -> None:
    from rich.console import Console

    console = Console(width=120, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(help_renderable())
    text = console.export_text()
    for key in ("space", "ctrl+space", "ctrl+a", "u", ": ", "ctrl+p"):
        assert key in text


# ---------------------------------------------------------------------- actions from thread detail


async def test_pause_from_thread_detail_confirms_on_its_lease(env: Any, tmp_path: Path) -> None:
    app = make(env, tmp_path)
    e2b = env.doubles["e2b"]
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        lease, other = converged(app, "e2b", "running", 2)
        app.gt_table.toggle_mark(other)  # a mark on the main view does not leak into the detail
        app.open_lease(lease)
        await pilot.pause()
        assert isinstance(app.screen, ThreadDetailScreen)
        await pilot.press("p")
        dialog = app.screen
        assert isinstance(dialog, ConfirmActionScreen)
        assert [t.key for t in dialog.chosen] == [lease]
        await pilot.press("y")
        assert isinstance(app.screen, ThreadDetailScreen)
        await settled(pilot, app)
        assert e2b.instances[iid(app, lease)].state == "paused"
        assert e2b.instances[iid(app, other)].state == "running"
        await pilot.press("ctrl+d")
        assert isinstance(app.screen, ConfirmDestroyScreen)
        assert app.screen.focused is app.screen.query_one("#cancel", Button)
        await pilot.press("escape")
        assert isinstance(app.screen, ThreadDetailScreen)


# ---------------------------------------------------------------------- snapshots at 80x24


def _snap_targets(app: Any, n: int) -> list[Any]:
    from opcockpit.domain.targets import Target

    rows = [r for r in app.ground_truth.rows if r.instance_id and r.provider != "local"][:n]
    return [Target.of_row(r) for r in rows]


def test_snapshot_pause_confirmation_80x24(snap_compare: Any) -> None:
    from tests.tui.test_snapshots import ready, synthetic_app

    async def dialog(pilot: Any) -> None:
        targets = _snap_targets(pilot.app, 3)
        await pilot.app.push_screen(ConfirmActionScreen("pause", targets[:1], [], targets[1:]))

    assert snap_compare(synthetic_app(), terminal_size=(80, 24), run_before=ready(then=dialog))


def test_snapshot_bulk_destroy_with_hidden_marks_80x24(snap_compare: Any) -> None:
    from tests.tui.test_snapshots import ready, synthetic_app

    async def dialog(pilot: Any) -> None:
        targets = _snap_targets(pilot.app, 3)
        await pilot.app.push_screen(ConfirmDestroyScreen(targets[:2], [], targets[2:]))
        for inp in pilot.app.screen.query(Input):
            inp.cursor_blink = False

    assert snap_compare(synthetic_app(), terminal_size=(80, 24), run_before=ready(then=dialog))
