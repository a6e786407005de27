"""Untrusted text never reaches the terminal as control sequences.

sandbox.db fields and provider/exception text are written by other programs: `ESC ]0;title BEL`
would retitle the operator's terminal, OSC 52 would write their clipboard. Everything the TUI
renders from them goes through opcockpit.domain.text.safe_text (ESC shown as ``^[``).
"""

from __future__ import annotations

import sqlite3

from textual.widgets import DataTable

from opcockpit.tui.screens.command_output import CommandOutputScreen
from tests.fixtures.leon_db import L1, TERM1, add_chunk, add_command
from tests.tui.conftest import wait_until, worked_example_app
from tests.tui.screen_text import screen_text
from tests.tui.test_thread_detail import open_detail

TITLE = "\x1b]0;pwned\x07"
CLIPBOARD = "\x1b]52;c;SGVsbG8=\x07"
CSI = "\x1b[2J\x9b31m"
PAYLOAD = f"boom {TITLE} then {CLIPBOARD} and {CSI} end"


def assert_clean(text: str, where: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text, (where, text)


async def test_db_and_provider_text_renders_without_escape_sequences(worked_example) -> None:
    we = worked_example
    conn = sqlite3.connect(we.sandbox_db)
    conn.execute("UPDATE sandbox_leases SET last_error = ? WHERE lease_id = ?", (PAYLOAD, L1))
    add_command(
        conn, "cmd_eeeeeeeeeeee", TERM1, f"echo {TITLE}", status="done", exit_code=1,
        created_at="2026-03-20T11:59:00", stdout="", stderr="",
    )  # fmt: skip
    add_chunk(conn, "cmd_eeeeeeeeeeee", f"line one {CLIPBOARD}\nline two {TITLE}\n", stream="stdout")
    conn.commit()
    conn.close()
    app = worked_example_app(we)
    async with app.run_test(size=(400, 40)) as pilot:  # wide: every column, last_error included
        await wait_until(pilot, lambda: app.ground_truth is not None and not app.inflight)
        await pilot.pause()
        assert PAYLOAD in next(r.last_error for r in app.ground_truth.rows if r.lease_id == L1)
        table_text = screen_text(app)
        assert "boom ^[]0;pwned" in table_text  # shown, made visible: the operator still sees it
        assert_clean(table_text, "ground truth table")

        screen = await open_detail(pilot, app, L1)
        detail_text = screen_text(app)
        assert "pwned" in detail_text
        assert_clean(detail_text, "thread detail")

        table = screen.query_one("#commands-table", DataTable)
        table.move_cursor(row=0)
        await pilot.press("o")
        await wait_until(
            pilot, lambda: isinstance(app.screen, CommandOutputScreen) and app.screen.output is not None
        )
        await pilot.pause()
        output_text = screen_text(app)
        assert "line one ^[]52;c;SGVsbG8=" in output_text
        assert "line two" in output_text.split("line one", 1)[1]  # newlines kept in command output
        assert_clean(output_text, "command output")
        await pilot.press("escape", "escape")

        # A refresh failing with provider text in its exception: the header shows it, sanitized.
        app.source = _Failing(app.source, RuntimeError(f"provider said {TITLE}"))
        app.request_refresh()
        await wait_until(pilot, lambda: app.last_error is not None and not app.inflight)
        await pilot.pause()
        header_text = screen_text(app)
        assert "provider said" in header_text
        assert_clean(header_text, "header error")
        app.notify(f"destroy failed: {CLIPBOARD}", markup=False)  # how the app reports op errors
        await pilot.pause(0.2)
        assert_clean(screen_text(app), "toast")


class _Failing:
    def __init__(self, inner: object, exc: Exception) -> None:
        self.inner, self.exc = inner, exc

    async def refresh(self) -> object:
        raise self.exc

    async def aclose(self) -> None:
        await self.inner.aclose()  # type: ignore[attr-defined]


def test_destroy_dialog_lists_provider_ids_safely() -> None:
    import dataclasses
    import io

    from rich.console import Console

    from opcockpit.domain.targets import Target
    from opcockpit.tui.screens.confirm import targets_table
    from tests.tui.factories import make_ground_truth

    rows = [r for r in make_ground_truth(10).rows if r.instance_id][:2]
    evil = [dataclasses.replace(r, instance_id=f"inst-{TITLE}", thread_id=CLIPBOARD) for r in rows]
    targets = [Target.of_row(r) for r in evil]
    for chosen in (targets[:1], targets):  # the one-target and the list layouts
        out = io.StringIO()
        Console(file=out, width=120, color_system=None, force_terminal=True).print(targets_table(chosen))
        assert "inst-^[]0;pwned" in out.getvalue()
        assert_clean(out.getvalue(), "destroy dialog")
    assert targets[0].instance_id == f"inst-{TITLE}"  # the operation itself keeps the real id
