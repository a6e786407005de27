"""Thread detail: pointer marker, command output view, live summary (pilot tests)."""

from __future__ import annotations

import dataclasses
import sqlite3

from rich.text import Text
from textual.widgets import DataTable, Static

from opcockpit.domain.models import CommandChunk, Convergence, GroundTruth
from opcockpit.tui.app import CockpitApp
from opcockpit.tui.screens.command_output import STDERR_STYLE, CommandOutputScreen, render_chunks
from opcockpit.tui.screens.thread import ThreadDetailScreen
from tests.fixtures.leon_db import CMD1, CMD3, L1, L3, TERM1, TERM3A, TERM3B, add_chunk, add_command
from tests.tui.conftest import SequenceSource, wait_until, worked_example_app
from tests.tui.factories import NOW, make_ground_truth
from tests.tui.screen_text import screen_text


async def open_detail(pilot, app: CockpitApp, lease_id: str) -> ThreadDetailScreen:  # type: ignore[no-untyped-def]
    await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
    app.open_lease(lease_id)
    screen = app.screen
    assert isinstance(screen, ThreadDetailScreen)
    await wait_until(pilot, lambda: screen.detail is not None)
    await pilot.pause()
    return screen


def line_with(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


async def test_terminals_mark_the_pointer_terminal(worked_example) -> None:
    we = worked_example
    app = worked_example_app(we)
    async with app.run_test(size=(120, 50)) as pilot:
        screen = await open_detail(pilot, app, L3)  # T3: two terminals, the pointer names the first
        assert screen.detail.pointer is not None
        text = screen_text(app)
        assert "▸ term-112233445566" in text and "active+default" in line_with(text, TERM3A)
        assert "▸" not in line_with(text, TERM3B) and "active" not in line_with(text, TERM3B)

        # LEON's TerminalStore.set_active (no callers today) would split the roles: reload shows it.
        conn = sqlite3.connect(we.sandbox_db)
        conn.execute(
            "UPDATE thread_terminal_pointers SET active_terminal_id = ? WHERE thread_id = ?",
            (TERM3B, screen.row.thread_id),
        )
        conn.commit()
        conn.close()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.detail.pointer.active_terminal_id == TERM3B)
        await pilot.pause()
        text = screen_text(app)
        assert "▸ term-778899aabbcc" in text and " active " in line_with(text, TERM3B)
        assert "▸" not in line_with(text, TERM3A) and " default " in line_with(text, TERM3A)


async def test_enter_on_a_command_opens_its_chunks_and_esc_comes_back(worked_example) -> None:
    app = worked_example_app(worked_example)
    async with app.run_test(size=(120, 50)) as pilot:
        screen = await open_detail(pilot, app, L3)
        table = screen.query_one("#commands-table", DataTable)
        assert table.row_count == 1 and "o Output" in screen_text(app)  # the key is in the footer
        table.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandOutputScreen))
        out_screen = app.screen
        await wait_until(pilot, lambda: out_screen.output is not None)
        await pilot.pause()
        out = out_screen.output
        assert out.command_id == CMD3 and out.source == "chunks"
        assert [(c.stream, c.content) for c in out.chunks] == [
            ("stdout", "> build\n"),
            ("stdout", "vite v5 building…\n"),
        ]
        text = screen_text(app)
        assert "$ npm run build" in text and "running" in text
        lines = [line.rstrip() for line in text.splitlines()]
        start = lines.index("  > build")  # chunk order, the stdout gutter at each line start
        assert lines[start + 1] == "  vite v5 building…"
        await pilot.press("escape")
        assert app.screen is screen


async def test_o_opens_the_selected_command_with_stderr_highlighted(worked_example) -> None:
    we = worked_example
    conn = sqlite3.connect(we.sandbox_db)
    add_command(
        conn,
        "cmd_ffffffffffff",
        TERM1,
        "make test",
        status="done",
        exit_code=2,
        created_at="2026-03-20T11:59:00",
        stdout="",
        stderr="",
    )
    add_chunk(conn, "cmd_ffffffffffff", "ok 1\n", stream="stdout")
    add_chunk(conn, "cmd_ffffffffffff", "E: boom\n", stream="stderr")
    conn.commit()
    conn.close()
    app = worked_example_app(we)
    async with app.run_test(size=(120, 50)) as pilot:
        screen = await open_detail(pilot, app, L1)
        assert [c.command_id for c in screen.detail.commands] == ["cmd_ffffffffffff", CMD1]
        table = screen.query_one("#commands-table", DataTable)
        table.move_cursor(row=1)  # the older pytest run: no chunks, its stored stdout tail
        await pilot.press("o")  # works without focusing the table (the body has focus)
        await wait_until(
            pilot, lambda: isinstance(app.screen, CommandOutputScreen) and app.screen.output is not None
        )
        assert app.screen.output.source == "tails" and "12 passed" in screen_text(app)
        assert "no chunks recorded" in screen_text(app)
        await pilot.press("escape")
        table.move_cursor(row=0)
        await pilot.press("o")
        await wait_until(
            pilot, lambda: isinstance(app.screen, CommandOutputScreen) and app.screen.output is not None
        )
        await pilot.pause()
        text = screen_text(app)
        assert "  ok 1" in text and "▌ E: boom" in text and "1 stdout, 1 stderr" in text
        body = app.screen.body
        shown = app.screen.query_one("#output-text", Static).render()
        assert isinstance(body, Text) and str(shown) == body.plain
        err = body.plain.index("E: boom")
        assert any(s.style == STDERR_STYLE and s.start <= err < s.end for s in body.spans)
        assert not any(
            s.style == STDERR_STYLE and s.start <= body.plain.index("ok 1") < s.end for s in body.spans
        )


def test_render_chunks_puts_gutters_at_line_starts_across_chunk_splits() -> None:
    text = render_chunks(
        [
            CommandChunk(1, "stdout", "par", None),
            CommandChunk(2, "stdout", "tial\nnext", None),
            CommandChunk(3, "stderr", "\nbad\n", None),
        ]
    )
    assert text.plain == "  partial\n  next\n▌ bad\n"


async def test_open_detail_summary_follows_refreshes_without_redrawing_unchanged() -> None:
    first = make_ground_truth(30)
    row = next(r for r in first.rows if r.convergence is Convergence.CONVERGED and r.thread_id)
    changed = dataclasses.replace(
        row,
        convergence=Convergence.DIVERGED,
        provider_state="paused",
        reason="provider says paused, desired running",
    )
    rows = tuple(changed if r.lease_id == row.lease_id else r for r in first.rows)
    second = GroundTruth(first.generated_at, first.providers, rows, first.orphans)
    third = GroundTruth(
        first.generated_at,
        first.providers,
        tuple(r for r in second.rows if r.lease_id != row.lease_id),
        first.orphans,
    )
    src = SequenceSource([first, second, second, third])
    app = CockpitApp(src, clock=lambda: NOW, auto_refresh=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_detail(pilot, app, row.lease_id)
        summary = screen.query_one("#sec-summary", Static)
        assert "converged" in str(summary.render()) and "diverged" not in str(summary.render())

        app.request_refresh()
        await wait_until(pilot, lambda: "diverged" in str(summary.render()))
        text = screen_text(app)
        assert "provider paused" in text and "provider says paused, desired running" in text
        assert screen.row is not row and screen.row.convergence is Convergence.DIVERGED
        assert app.screen is screen  # still open, nothing re-pushed

        shown = screen._summary_shown
        app.request_refresh()  # identical picture: the summary widget is not touched
        await wait_until(pilot, lambda: src.calls == 3 and not app.inflight)
        assert screen._summary_shown is shown

        app.request_refresh()  # the lease left the picture: last known state, said so
        await wait_until(pilot, lambda: "not in the latest picture" in str(summary.render()))
        assert "diverged" in str(summary.render())
