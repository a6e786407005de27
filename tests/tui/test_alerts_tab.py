"""Alerts tab, alert detail, ack/mute keys, overview and header badge on the real pipeline.

LEON worked-example DBs (tests/fixtures/leon_db.py) -> FleetCollector (+ an E2B double on loopback
for a real diverged lease) -> reconcile -> the real AlertEngine on a tmp ledger ($OPCOCKPIT_LEDGER),
with the example's fixed clock. Ack/mute are checked by reopening the ledger file.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.domain.alerts import AlertsConfig, WebhookConfig
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.settings.config import CockpitConfig, ProviderConfig, SourcesConfig
from opcockpit.tui.alerting import Alerting
from opcockpit.tui.app import CockpitApp
from opcockpit.tui.data import DbDetails
from opcockpit.tui.screens.alert_detail import AckPrompt, AlertDetailScreen, MutePrompt, parse_mute
from opcockpit.tui.screens.thread import ThreadDetailScreen
from opcockpit.tui.tabs.alerts import AlertsView
from opcockpit.wiring import build_cockpit, leon_access
from tests.fixtures.leon_db import (
    I2,
    L2,
    L3,
    RUN_T3,
    T1,
    T3,
    WorkedExample,
    add_run_event,
    write_worked_example,
)
from tests.tui.conftest import wait_until
from tests.tui.screen_text import screen_text

E2B_KEY = "e2b-test-key-0123"
SIZE = (100, 30)


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own ledger: never the operator's XDG data dir."""
    path = tmp_path / "ledger.db"
    monkeypatch.setenv("OPCOCKPIT_LEDGER", str(path))
    monkeypatch.setenv("USER", "tester")
    return path


@pytest.fixture
def we(tmp_path: Path) -> WorkedExample:
    return write_worked_example(tmp_path / "leon")


@pytest.fixture
def e2b() -> Iterator[E2BDouble]:
    """The example's e2b lease L2 wants `running`; the provider says paused: diverged."""
    with E2BDouble(api_key=E2B_KEY) as double:
        double.add(I2, state="paused")
        yield double


def make_app(
    we: WorkedExample,
    cfg: AlertsConfig | None = None,
    *,
    e2b: E2BDouble | None = None,
    alerting_cls: type[Alerting] = Alerting,
    **kwargs: Any,
) -> CockpitApp:
    providers = {}
    if e2b is not None:
        providers["e2b"] = ProviderConfig(
            name="e2b", kind="e2b", api_url=e2b.url, api_key=SecretStr(E2B_KEY), retries=0, timeout_s=5
        )
    config = CockpitConfig(
        sources=SourcesConfig(sandbox_db=we.sandbox_db, events_db=we.events_db),
        providers=providers,
        alerts=cfg or AlertsConfig(),
    )

    def now() -> datetime:
        return we.now

    cockpit = build_cockpit(config, clock=now)  # ledger: $OPCOCKPIT_LEDGER
    return CockpitApp(
        cockpit.collector,
        details=DbDetails(str(we.sandbox_db), str(we.events_db), leon=leon_access()),
        clock=now,
        auto_refresh=False,
        alerting=alerting_cls(cockpit, clock=now),
        **kwargs,
    )


def view(app: CockpitApp) -> AlertsView:
    return app._alerts_w


async def evaluated(pilot: Any, app: CockpitApp, rounds: int = 1) -> None:
    await wait_until(
        pilot,
        lambda: app.ground_truth is not None and view(app).rounds >= rounds and not view(app).evaluating,
    )
    await pilot.pause()


def keys_of(app: CockpitApp) -> dict[str, str]:
    """alert key -> row key (episode id) as shown in the active table."""
    al = app.alerting
    assert al is not None
    return {a.key: str(a.id) for a in al.active}


async def test_alerts_tab_lists_firing_alerts_and_the_badge(
    ledger: Path, we: WorkedExample, e2b: E2BDouble
) -> None:
    app = make_app(we, AlertsConfig(diverged_for_s=0), e2b=e2b)
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        keys = keys_of(app)
        # From real rules: T3's run has had no event for 40 min; L2 is paused at e2b but wanted running.
        assert f"stuck_run:{RUN_T3}" in keys and f"lease_diverged:{L2}" in keys
        # docker is named by the DB but not configured: pending within its 120 s hold, not firing yet
        assert "provider_unreachable:docker" not in keys
        table = view(app).active_table
        assert set(table.view_keys()) == set(keys.values())
        await pilot.press("4")
        assert app.focused is table
        text = screen_text(app)
        assert "⚠ 2 warning" in text  # header badge: unmuted firing by severity
        assert "Alerts 2" in text  # tab label
        assert "stuck_run" in text and "lease_diverged" in text
        assert app.alerting is not None
        assert app.alerting.counts(we.now) == {"critical": 0, "warning": 2, "info": 0}
    stored = AlertStore.open(ledger)
    try:
        assert {a.key for a in stored.active()} == set(keys)  # the TUI evaluated into the ledger file
    finally:
        stored.close()


async def test_ack_and_mute_keys_persist_in_the_ledger(ledger: Path, we: WorkedExample) -> None:
    app = make_app(we, read_only=True)  # ledger writes are not platform writes: allowed read-only
    who = f"tester@{socket.gethostname()}"
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        await pilot.press("4")
        alert_id = keys_of(app)[f"stuck_run:{RUN_T3}"]
        table = view(app).active_table
        assert table.move_cursor_to_key(alert_id)
        assert app.check_action("filter", ()) is True  # the alerts table filters like the others

        await pilot.press("A")
        assert isinstance(app.screen, AckPrompt)
        await pilot.press(*"on it", "enter")
        await wait_until(pilot, lambda: table.get_texts(alert_id)[5].startswith("✓ack"))
        assert table.get_texts(alert_id)[5] == "✓ack tester"

        await pilot.press("M")
        assert isinstance(app.screen, MutePrompt)
        await pilot.press(*"30m", "tab", *"deploy", "enter")  # Tab to the optional comment
        await wait_until(pilot, lambda: "muted" in table.get_texts(alert_id)[5])
        assert app.alerting.counts(we.now)["warning"] == 0  # type: ignore[union-attr]
        assert "✓ no alerts" in screen_text(app)  # the badge counts unmuted alerts only
        # the counts are kept between paints, but never past the end of a mute, nor before `now`
        ran_out = we.now + timedelta(minutes=31)
        assert app.alerting.counts(ran_out)["warning"] == 1  # type: ignore[union-attr]
        assert app.alerting.counts(we.now)["warning"] == 0  # type: ignore[union-attr]

    store = AlertStore.open(ledger)  # a new connection: what survives a restart
    try:
        a = store.get(alert_id)
        assert (a.acked_by, a.ack_comment, a.acked_at) == (who, "on it", we.now)
        assert a.muted_until == we.now + timedelta(minutes=30) and a.muted_by == who
        assert a.mute_comment == "deploy" and a.is_muted(we.now)
    finally:
        store.close()

    app2 = make_app(we)  # a restarted cockpit shows the mute from the ledger, and U lifts it
    async with app2.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app2)
        await pilot.press("4")
        table = view(app2).active_table
        assert table.get_texts(alert_id)[5] == "⊘ muted 30m ✓ack tester"
        table.move_cursor_to_key(alert_id)
        await pilot.press("U")
        await wait_until(pilot, lambda: "muted" not in table.get_texts(alert_id)[5])
        assert "⚠ 1 warning" in screen_text(app2)
        await pilot.press("M", "r", "enter")  # "until resolved": Enter in the duration mutes
        await wait_until(pilot, lambda: "⟂res" in table.get_texts(alert_id)[5])
    store = AlertStore.open(ledger)
    try:
        a = store.get(alert_id)
        assert a.mute_until_resolved and a.muted_until is None
    finally:
        store.close()


async def test_mute_dialog_fits_80x24_and_enter_in_the_duration_mutes(
    ledger: Path, we: WorkedExample, e2b: E2BDouble
) -> None:
    app = make_app(we, AlertsConfig(diverged_for_s=0), e2b=e2b)
    async with app.run_test(size=(80, 24)) as pilot:
        await evaluated(pilot, app)
        await pilot.press("4")
        table = view(app).active_table
        alert_id = table.cursor_key
        await pilot.press("M", *"soon", "enter")  # a bad duration: the error line makes it taller
        dialog = app.screen
        assert isinstance(dialog, MutePrompt) and "not a duration" in screen_text(app)
        box = dialog.query_one(".dialog").region
        assert box.y >= 0 and box.bottom <= 24  # the whole box, bottom border included, is on screen
        rows = screen_text(app).splitlines()
        assert "▄▄▄▄" in rows[box.bottom - 1] and "Mute" in rows[box.bottom - 2]  # border, buttons
        await pilot.press("end", *["backspace"] * 4, *"2h", "enter")  # Enter here mutes (comment optional)
        await wait_until(pilot, lambda: not isinstance(app.screen, MutePrompt))
        await wait_until(pilot, lambda: "muted" in table.get_texts(alert_id)[5])
    store = AlertStore.open(ledger)
    try:
        a = store.get(int(alert_id))
        assert a.muted_until == we.now + timedelta(hours=2) and not a.mute_comment
    finally:
        store.close()


async def test_mute_prompt_rejects_a_bad_duration(ledger: Path, we: WorkedExample) -> None:
    app = make_app(we)
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        await pilot.press("4", "M", *"soon", "enter", "enter")
        assert isinstance(app.screen, MutePrompt)  # still open, saying why
        assert "not a duration" in screen_text(app)
        await pilot.press("escape")
        assert not isinstance(app.screen, MutePrompt)
        assert all(not a.muted_by for a in app.alerting.active)  # type: ignore[union-attr]
    assert parse_mute("1h30m") == timedelta(minutes=90) and parse_mute("until resolved") is None


async def test_evidence_lease_jumps_to_the_ground_truth_row(
    ledger: Path, we: WorkedExample, e2b: E2BDouble
) -> None:
    app = make_app(we, AlertsConfig(diverged_for_s=0), e2b=e2b)
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        await pilot.press("G")  # the cursor elsewhere (diverged rows sort first): the jump must move it
        assert app.gt_table.cursor_key not in (None, L2)
        await pilot.press("4")
        alert_id = keys_of(app)[f"lease_diverged:{L2}"]
        view(app).active_table.move_cursor_to_key(alert_id)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, AlertDetailScreen) and screen.alert.rule == "lease_diverged"
        text = screen_text(app)
        assert "threshold" in text and "→ Ground truth row" in text
        evidence = screen.query_one("#alert-evidence")
        assert screen.alert.evidence[0].kind == "lease"
        assert evidence.cursor_key == "0"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is app.screen_stack[0]
        assert app.active_tab == "ground-truth" and app.gt_table.cursor_key == L2
        assert app.focused is app.gt_table


async def test_thread_evidence_and_stuck_run_open_the_thread_detail(ledger: Path, we: WorkedExample) -> None:
    app = make_app(we)
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        await pilot.press("4", "o")  # overview: run stats, stuck runs, top errors, providers
        ov = view(app).overview
        assert app.focused is ov.stuck_table and ov.stuck_table.cursor_key == RUN_T3
        text = screen_text(app)
        assert "⧗ stuck 1" in text and "✓ completed 1" in text and "docker" in text
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ThreadDetailScreen))
        assert app.screen.row.lease_id == L3 and app.screen.row.thread_id == T3  # type: ignore[attr-defined]
        await pilot.press("escape", "o")  # back to the active alerts
        alert_id = keys_of(app)[f"stuck_run:{RUN_T3}"]
        view(app).active_table.move_cursor_to_key(alert_id)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, AlertDetailScreen)
        await pilot.press("enter")  # evidence 1: the run -> its thread's detail, over the alert detail
        await wait_until(pilot, lambda: isinstance(app.screen, ThreadDetailScreen))
        assert app.screen.row.lease_id == L3  # type: ignore[attr-defined]
        await pilot.press("escape")
        assert app.screen is screen


async def test_resolved_alert_moves_to_history(ledger: Path, we: WorkedExample) -> None:
    import sqlite3

    app = make_app(we)
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        alert_id = keys_of(app)[f"stuck_run:{RUN_T3}"]
        conn = sqlite3.connect(we.events_db)  # the run finishes
        add_run_event(
            conn,
            T3,
            RUN_T3,
            "run_done",
            {"thread_id": T3, "run_id": RUN_T3},
            seq=306,
            created_at=we.now - timedelta(seconds=30),
        )
        conn.commit()
        conn.close()
        await pilot.press("ctrl+r")
        await evaluated(pilot, app, rounds=2)
        assert alert_id not in view(app).active_table
        await pilot.press("4", "h")
        history = view(app).history_table
        await wait_until(pilot, lambda: alert_id in history)
        assert app.focused is history
        assert history.get_texts(alert_id)[2] == "resolved"
        assert "History" in screen_text(app) and "resolved" in screen_text(app)


async def test_a_newly_firing_alert_is_announced(ledger: Path, we: WorkedExample) -> None:
    import sqlite3

    app = make_app(we)
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        assert not any("new alert" in n.message for n in app._notifications)  # startup backlog: quiet
        conn = sqlite3.connect(we.events_db)  # T1 starts a run that goes silent for 20 minutes
        add_run_event(
            conn,
            T1,
            "run-new-0001",
            "run_start",
            {"thread_id": T1, "run_id": "run-new-0001"},
            seq=400,
            created_at=we.now - timedelta(minutes=20),
        )
        conn.commit()
        conn.close()
        await pilot.press("ctrl+r")
        await evaluated(pilot, app, rounds=2)
        assert "stuck_run:run-new-0001" in keys_of(app)
        assert any("new alert" in n.message and "run run-new-" in n.message for n in app._notifications)
        assert "⚠ 2 warning" in screen_text(app)


async def test_evaluations_never_overlap(ledger: Path, we: WorkedExample) -> None:
    """Refreshes land while an evaluation runs: never two at once; the newest refresh is evaluated
    next and the ones in between are skipped (an alert round on an old picture is wasted work)."""
    import asyncio

    gate = asyncio.Event()
    seen: list[Any] = []

    class Watched(Alerting):
        running = 0
        most = 0

        async def evaluate(self, gt: Any) -> Any:
            Watched.running += 1
            Watched.most = max(Watched.most, Watched.running)
            seen.append(gt)
            try:
                await gate.wait()  # hold the first round until every refresh below has landed
                return await super().evaluate(gt)
            finally:
                Watched.running -= 1

    app = make_app(we, alerting_cls=Watched)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.refreshes >= 1 and not app.inflight)
        for n in range(2, 6):
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda n=n: app.refreshes >= n and not app.inflight)
        latest = app.ground_truth
        assert len(seen) == 1 and view(app).evaluating
        gate.set()
        await wait_until(pilot, lambda: not view(app).evaluating and len(seen) == 2)
        await pilot.pause()
        assert Watched.most == 1
        assert seen[1] is latest and view(app).rounds == 2
        assert app.refreshes == 5


async def test_a_finished_round_keeps_no_ground_truth(ledger: Path, we: WorkedExample) -> None:
    """A Worker stays reachable after it ends (from the context of any task started while it ran),
    so the alert round's worker must not hold its ground truth: every old picture stayed alive."""
    import gc

    from textual.worker import Worker

    from opcockpit.domain.models import GroundTruth

    app = make_app(we)
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        await pilot.press("ctrl+r")
        await evaluated(pilot, app, rounds=2)
        workers = [o for o in gc.get_objects() if isinstance(o, Worker) and o.group == "alert-eval"]
        assert workers  # the finished rounds' workers are still there ...
        for w in workers:  # ... but none holds a picture
            held = gc.get_referents(w._work, *gc.get_referents(w._work))
            assert not any(isinstance(o, GroundTruth) for o in held)


async def test_notification_failure_is_shown(ledger: Path, we: WorkedExample) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there: connection refused
    cfg = AlertsConfig(webhook=WebhookConfig(url=f"http://127.0.0.1:{port}/hook", attempts=1, backoff_s=0))
    app = make_app(we, cfg)
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app)
        messages = [n.message for n in app._notifications]
        assert any("webhook notification" in m and "failed" in m for m in messages), messages
        await pilot.press("4", "enter")
        assert isinstance(app.screen, AlertDetailScreen)
        text = screen_text(app)
        assert "✗ webhook http://127.0.0.1" in text and "failed" in text


def _snap_app(we: WorkedExample, e2b: E2BDouble) -> CockpitApp:
    return make_app(we, AlertsConfig(diverged_for_s=0), e2b=e2b)


def _ready(*keys: str) -> Callable[[Any], Any]:
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        await evaluated(pilot, app)
        await pilot.press(*keys)
        await pilot.pause()

    return run_before


def test_snapshot_alerts_tab(snap_compare: Any, ledger: Path, we: WorkedExample, e2b: E2BDouble) -> None:
    assert snap_compare(_snap_app(we, e2b), terminal_size=SIZE, run_before=_ready("4"))


def test_snapshot_overview(snap_compare: Any, ledger: Path, we: WorkedExample, e2b: E2BDouble) -> None:
    assert snap_compare(_snap_app(we, e2b), terminal_size=SIZE, run_before=_ready("4", "o"))


def test_snapshot_alert_detail(snap_compare: Any, ledger: Path, we: WorkedExample, e2b: E2BDouble) -> None:
    assert snap_compare(_snap_app(we, e2b), terminal_size=SIZE, run_before=_ready("4", "enter"))


async def test_build_app_wires_alerts_and_one_demo_ledger(ledger: Path, demo_env: Any) -> None:
    from opcockpit.tui.app import build_app

    env = demo_env
    app = build_app(env.config, demo_banner="DEMO", auto_refresh=False)
    al = app.alerting
    assert al is not None
    # One demo ledger beside the fleet (wiring.build_cockpit(demo=True)): alerts and audit share it.
    assert al.ledger_path == Path(env.config.sources.sandbox_db).parent / "ledger.db"
    assert app.ops is not None and Path(app.ops.audit.path) == al.ledger_path
    try:
        async with app.run_test(size=SIZE) as pilot:
            await evaluated(pilot, app)
            assert al.snapshot is not None and al.run_health is not None and al.error is None
            await pilot.press("4", "o")
            providers = view(app).overview.providers_table
            expected = {p.name for p in app.ground_truth.providers}  # type: ignore[union-attr]
            # The overview fills on its own message after the key press; wait for it, don't race it.
            await wait_until(pilot, lambda: set(providers.view_keys()) == expected)
            assert set(providers.view_keys()) == expected
            assert "Alerts" in screen_text(app)
    finally:
        audit = getattr(app.ops, "audit", None)
        if audit is not None:
            audit.close()
    assert al.ledger_path.exists() and not ledger.exists()  # the operator's ledger was never touched


async def test_timer_refreshes_evaluate_alerts_at_most_every_round(ledger: Path, we: WorkedExample) -> None:
    """Issue 10: timer-driven refreshes run the alert rules at most every ALERT_ROUND_S (holds are
    minutes; a round per 2 s refresh was ~40 % of the CPU at 10k leases); ctrl+r evaluates at once."""
    from opcockpit.tui.app import ALERT_ROUND_S

    app = make_app(we, refresh_s=3600)  # the timer exists (auto_refresh) but never fires by itself
    app.auto_poll = True
    t = [1000.0]
    app.alert_clock = lambda: t[0]
    async with app.run_test(size=SIZE) as pilot:
        await evaluated(pilot, app, 1)  # the first picture: at once
        for n in (2, 3):
            app.start_refresh(manual=False)  # what the timer does
            await wait_until(pilot, lambda n=n: app.refreshes >= n and not app.inflight)
        await pilot.pause()
        assert view(app).rounds == 1 and not view(app).evaluating
        t[0] += ALERT_ROUND_S
        app.start_refresh(manual=False)
        await evaluated(pilot, app, 2)
        await pilot.press("ctrl+r")
        await evaluated(pilot, app, 3)
        assert app.refreshes == 5
