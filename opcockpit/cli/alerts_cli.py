"""`opcockpit alerts | ack | mute | unmute`, and the `snapshot --check` / `--format prometheus` pieces.

Wiring (cli/main.py): `add_subparsers(sub)` in build_parser, and in _dispatch
`if command in COMMANDS: return run(args)`. Until then: `python -m opcockpit.cli.alerts_cli ...`.

Exit codes: 0 ok; 1 `alerts`/`--check` found an unmuted firing alert; 2 usage (unknown alert id,
bad duration); 3 a source could not be read. The ledger is $OPCOCKPIT_LEDGER or the XDG data dir,
or --ledger PATH.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opcockpit.cli.common import EXIT_USAGE, err
from opcockpit.cli.output import escape_c1, format_snapshot
from opcockpit.domain.exit_codes import ExitCode
from opcockpit.domain.timeutil import fmt_age, parse_duration

if TYPE_CHECKING:
    from opcockpit.adapters.ledger.alerts import Alert, AlertSnapshot, AlertStore
    from opcockpit.adapters.ledger.backend import LedgerTarget
    from opcockpit.domain.alerts import AlertsConfig
    from opcockpit.domain.models import GroundTruth
    from opcockpit.domain.runs import RunHealth
    from opcockpit.settings.config import CockpitConfig
    from opcockpit.wiring import Cockpit

__all__ = [
    "COMMANDS",
    "alerts_config",
    "check_for_snapshot",
    "format_alerts",
    "parse_duration",
    "run",
    "snapshot_output",
]

COMMANDS = ("alerts", "ack", "mute", "unmute")
EXIT_OK, EXIT_FIRING = ExitCode.OK, ExitCode.FIRING


# --------------------------------------------------------------------------- helpers


def alerts_config(config: CockpitConfig | AlertsConfig | None) -> AlertsConfig:
    """The AlertsConfig inside a CockpitConfig (`config.alerts`), or the defaults."""
    from opcockpit.domain.alerts import AlertsConfig

    if isinstance(config, AlertsConfig):
        return config
    found = getattr(config, "alerts", None)
    return found if isinstance(found, AlertsConfig) else AlertsConfig()


def _configured_store(args: Any) -> AlertStore:
    """The store of the ledger this command means: `--ledger`, else the one the config (and
    `--context`) names, `[ledger] url` included, so an ack from a shell reaches the team's
    PostgreSQL ledger; else $OPCOCKPIT_LEDGER / the XDG file."""
    if args.ledger is not None:
        return _open_store(args.ledger)
    from opcockpit.cli.common import load_or_exit
    from opcockpit.wiring import ledger_target

    loaded = load_or_exit(args)
    for warning in loaded.warnings:
        _err(f"opcockpit: warning: {warning}")
    return _open_store(ledger_target(loaded.config))


def _open_store(ledger_path: str | Path | LedgerTarget | None) -> AlertStore:
    from opcockpit.adapters.ledger.alerts import AlertStore

    return AlertStore.open(ledger_path)


FIRING_LABEL = "Firing"  # the TUI's Alerts tab names the same column the same (widgets/alert_rows.py)


def firing_for(a: Alert, now: datetime) -> str:
    """How long the alert has fired (since `fired_at`, not since first seen before the hold time);
    for a resolved one, how long it fired. THE age format, as in the TUI."""
    return fmt_age(((a.resolved_at or now) - a.fired_at).total_seconds())


def _age(now: datetime, then: datetime | None) -> str:
    from opcockpit.domain.alerts import fmt_duration

    return "-" if then is None else fmt_duration((now - then).total_seconds())


# --------------------------------------------------------------------------- evaluation


async def aevaluate(
    ground_truth: GroundTruth,
    config: CockpitConfig | AlertsConfig | None,
    *,
    ledger_path: str | Path | LedgerTarget | None = None,
    now: datetime | None = None,
    sandbox_db: str | Path | None = None,
    events_db: str | Path | None = None,
    cockpit: Cockpit | None = None,
) -> tuple[AlertSnapshot, RunHealth]:
    """Gather run health + recent events, evaluate the rules, persist, notify. With `cockpit`
    the store and engine are its own (wiring); else a store at `ledger_path` (tests, --ledger)."""
    from opcockpit.services.alerting import evaluate_refresh
    from opcockpit.wiring import build_alert_engine

    cfg = alerts_config(config)
    now = now or datetime.now(UTC)
    sources_cfg = getattr(config, "sources", None)
    sdb = sandbox_db or getattr(sources_cfg, "sandbox_db", None) or ground_truth.db_path
    edb = events_db or getattr(sources_cfg, "events_db", None)
    if cockpit is not None:
        store = await asyncio.to_thread(cockpit.open_alert_store)
    else:
        store = await asyncio.to_thread(_open_store, ledger_path)
    try:
        if cockpit is not None:
            engine = cockpit.alert_engine(store, clock=lambda: now)
        else:
            engine = build_alert_engine(store, cfg, lambda: now)
        return await evaluate_refresh(engine, ground_truth, sandbox_db=sdb, events_db=edb, now=now)
    finally:
        store.close()


def _run_async(factory: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    from opcockpit.wiring import run_main

    return run_main(factory)


def check_for_snapshot(
    ground_truth: GroundTruth,
    config: CockpitConfig | AlertsConfig | None,
    ledger_path: str | Path | LedgerTarget | None = None,
    now: datetime | None = None,
) -> tuple[list[Alert], int]:
    """For `opcockpit snapshot --check`: evaluate (persisting to the ledger, so hold times work
    across cron runs, and notifying when configured) and return (firing alerts, exit code):
    1 when any firing alert is not muted, else 0."""
    snap, _ = _run_async(lambda: aevaluate(ground_truth, config, ledger_path=ledger_path, now=now))
    return list(snap.active), (EXIT_FIRING if snap.unmuted else EXIT_OK)


def snapshot_output(
    ground_truth: GroundTruth,
    config: CockpitConfig | None,
    fmt: str,
    *,
    check: bool = False,
    width: int | None = None,
    ledger_path: str | Path | LedgerTarget | None = None,
    now: datetime | None = None,
) -> tuple[str, list[str], int]:
    """The whole `snapshot` output when `--check` or `--format prometheus` is involved.

    Returns (stdout text, stderr lines, exit code). With --check the alerts join the output:
    table: a section after the snapshot; json: an "alerts" key and a "check" object; ndjson:
    {"type": "alert"} lines; csv: one stderr line per alert (the CSV stays a single table);
    prometheus: alert gauges from this evaluation. Without --check, prometheus reports the alerts
    the ledger holds (e.g. from a running cockpit) and evaluates nothing.
    """
    now = now or ground_truth.generated_at
    alerts: list[Alert] = []
    code = EXIT_OK
    run_health = None
    snap = None
    if check:
        snap, run_health = _run_async(
            lambda: aevaluate(ground_truth, config, ledger_path=ledger_path, now=now)
        )
        alerts = list(snap.active)
        code = EXIT_FIRING if snap.unmuted else EXIT_OK
    notes: list[str] = []
    if snap is not None:
        notes.extend(
            f"opcockpit: notify: {d.target} alert #{d.alert_id}: {d.error}" for d in snap.notify_errors
        )
    if fmt == "prometheus":
        from opcockpit.formats.prometheus import render_prometheus

        if run_health is None:
            from opcockpit.services.runs import load_run_health
            from opcockpit.wiring import leon_access

            cfg = alerts_config(config)
            edb = getattr(getattr(config, "sources", None), "events_db", None)
            run_health = _run_async(
                lambda: load_run_health(
                    edb,
                    now,
                    events_reader=leon_access().events_reader,
                    window_s=cfg.window_s,
                    stuck_after_s=cfg.stuck_after_s,
                )
            )
            try:
                with _open_store(ledger_path) as store:
                    alerts = store.active()
            except Exception as exc:  # sqlite3 / OS errors: gauges without alerts, said on stderr
                notes.append(f"opcockpit: alert ledger unreadable: {type(exc).__name__}: {exc}")
        return render_prometheus(ground_truth, run_health, alerts, now=now), notes, code

    if fmt == "json":
        from opcockpit.formats.serialize import dumps_json

        unmuted = sum(1 for a in alerts if not a.is_muted(now))
        check = {"exit_code": code, "firing": len(alerts), "unmuted": unmuted}
        extra = {"alerts": [a.to_dict(now) for a in alerts], "check": check}
        return escape_c1(dumps_json(ground_truth, extra=extra)) + "\n", notes, code
    text = format_snapshot(ground_truth, fmt, width=width)
    if fmt == "ndjson":
        from opcockpit.formats.serialize import encode_line

        text += escape_c1("".join(encode_line({"type": "alert", **a.to_dict(now)}) + "\n" for a in alerts))
    elif fmt == "csv":
        notes.extend(f"opcockpit: alert: {_one_line(a, now)}" for a in alerts)
    else:
        text += "\n" + format_alerts(alerts, "table", now=now, title="ALERTS")
    return text, notes, code


def _one_line(a: Alert, now: datetime) -> str:
    flags = "".join((" muted" if a.is_muted(now) else "", " acked" if a.acked else ""))
    return f"#{a.id} {a.fingerprint} {a.severity.value} {a.rule}{flags}: {a.summary}"


# --------------------------------------------------------------------------- formatting


def format_alerts(
    alerts: Sequence[Alert],
    fmt: str,
    *,
    now: datetime,
    title: str | None = None,
    pending: int | None = None,
    last_evaluated: datetime | None = None,
) -> str:
    if fmt == "json":
        return json.dumps([a.to_dict(now) for a in alerts], ensure_ascii=False, indent=2) + "\n"
    lines: list[str] = []
    firing = [a for a in alerts if a.firing]
    muted = sum(1 for a in firing if a.is_muted(now))
    if title:
        lines.append(f"{title}: {len(firing)} firing ({muted} muted)")
    if not alerts:
        lines.append("no alerts")
    else:
        # FIRING: how long the alert has fired (resolved: how long it fired), THE age format; the
        # TUI's Alerts tab has the same column under the same name with the same meaning.
        rows = [("ID", "FP", "SEVERITY", "RULE", "STATE", FIRING_LABEL.upper(), "SUMMARY")]
        for a in alerts:
            state = a.state
            if a.firing and a.is_muted(now):
                state += ",muted"
            if a.acked:
                state += ",acked"
            rows.append(
                (f"#{a.id}", a.fingerprint, a.severity.value, a.rule, state, firing_for(a, now), a.summary)
            )
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        for r in rows:
            lines.append("  ".join(r[i].ljust(widths[i]) for i in range(6)) + "  " + r[6])
    for a in alerts:
        for d in a.deliveries:
            if d.status != "ok":
                lines.append(
                    f"  notify {d.channel} {d.target} for #{a.id}: {d.status}"
                    f" after {d.attempts} attempt(s): {d.last_error or '?'}"
                )
        if a.acked:
            lines.append(
                f"  #{a.id} acked by {a.acked_by} {_age(now, a.acked_at)} ago"
                + (f": {a.ack_comment}" if a.ack_comment else "")
            )
    if pending:
        lines.append(f"{pending} condition(s) pending (seen, hold time not reached yet)")
    if last_evaluated is not None:
        lines.append(f"last evaluated {_age(now, last_evaluated)} ago")
    return "\n".join(lines) + "\n"


def format_detail(a: Alert, now: datetime) -> str:
    out = [
        f"alert #{a.id} ({a.fingerprint})  {a.severity.value}  {a.state}",
        f"rule:      {a.rule}",
        f"key:       {a.key}",
        f"summary:   {a.summary}",
        f"threshold: {a.threshold}",
        f"first seen {_age(now, a.first_seen)} ago, fired {_age(now, a.fired_at)} ago, "
        f"last seen {_age(now, a.last_seen)} ago"
        + (f", resolved {_age(now, a.resolved_at)} ago" if a.resolved_at else ""),
    ]
    if a.acks:  # every ack: two operators acking at once both show
        out.extend(
            f"acked by {k.who}" + (f": {k.comment}" if k.comment else "") + f" ({_age(now, k.at)} ago)"
            for k in a.acks
        )
    elif a.acked:
        out.append(f"acked by {a.acked_by}" + (f": {a.ack_comment}" if a.ack_comment else ""))
    if a.is_muted(now):
        until = "until resolved" if a.mute_until_resolved else f"until {a.muted_until:%Y-%m-%d %H:%M:%SZ}"
        out.append(f"muted {until}" + (f" by {a.muted_by}" if a.muted_by else ""))
    out.append("evidence:")
    out.extend(f"  {e.kind} {e.id}" + (f"  ({e.note})" if e.note else "") for e in a.evidence)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- commands


def run(args: Any) -> int:
    """Dispatch one of COMMANDS; user errors are one stderr line and exit 2."""
    from opcockpit.adapters.ledger.alerts import AlertNotFound

    try:
        if args.command == "alerts":
            return _cmd_alerts(args)
        return _cmd_action(args)
    except AlertNotFound as exc:
        _err(f"opcockpit: {exc.args[0] if exc.args else exc}")
        return EXIT_USAGE


def _err(line: str) -> None:
    err(line)


def _cmd_action(args: Any) -> int:
    from opcockpit.wiring import operator_name

    if args.command == "mute" and (args.duration is None) == (not args.until_resolved):
        _err("opcockpit mute: exactly one of --for DURATION or --until-resolved is required")
        return EXIT_USAGE
    now = datetime.now(UTC)
    who = getattr(args, "who", None) or operator_name()
    with _configured_store(args) as store:
        if args.command == "ack":
            a = store.ack(args.id, who, args.comment, now=now)
            print(f"acked #{a.id} ({a.rule}: {a.summary})")
        elif args.command == "mute":
            if args.until_resolved:
                a = store.mute(args.id, until_resolved=True, who=who, comment=args.comment, now=now)
                print(f"muted #{a.id} until it resolves")
            else:
                a = store.mute(args.id, until=now + args.duration, who=who, comment=args.comment, now=now)
                print(f"muted #{a.id} until {a.muted_until:%Y-%m-%d %H:%M:%SZ}")
        else:
            a = store.unmute(args.id)
            print(f"unmuted #{a.id}")
    return EXIT_OK


def _cmd_alerts(args: Any) -> int:
    now = datetime.now(UTC)
    if args.id:
        with _configured_store(args) as store:
            a = store.get(args.id)
        sys.stdout.write(
            json.dumps(a.to_dict(now), indent=2) + "\n" if args.format == "json" else format_detail(a, now)
        )
        return EXIT_OK
    if args.history or args.cached:
        with _configured_store(args) as store:
            alerts = store.history(args.limit) if args.history else store.active()
            last = store.last_evaluated_at()
            pending = len(store.pending())
        sys.stdout.write(
            format_alerts(
                alerts,
                args.format,
                now=now,
                title="history" if args.history else "alerts",
                pending=pending,
                last_evaluated=last,
            )
        )
        firing = [a for a in alerts if a.firing and not a.is_muted(now)]
        return EXIT_FIRING if firing and not args.history else EXIT_OK

    from opcockpit.cli.common import load_or_exit
    from opcockpit.wiring import build_cockpit

    loaded = load_or_exit(args)
    for warning in loaded.warnings:
        _err(f"opcockpit: warning: {warning}")
    cockpit = build_cockpit(loaded.config, read_only=True, ledger_path=args.ledger)

    async def collect_and_evaluate() -> tuple[AlertSnapshot, RunHealth]:
        try:
            gt = await cockpit.collector.refresh()
        finally:
            await cockpit.aclose()
        return await aevaluate(gt, loaded.config, now=gt.generated_at, cockpit=cockpit)

    snap, _ = _run_async(collect_and_evaluate)
    for d in snap.notify_errors:
        _err(f"opcockpit: notify: {d.target} alert #{d.alert_id}: {d.error}")
    sys.stdout.write(
        format_alerts(list(snap.active), args.format, now=snap.now, title="alerts", pending=snap.pending)
    )
    return EXIT_FIRING if snap.unmuted else EXIT_OK


if __name__ == "__main__":
    # `python -m opcockpit.cli.alerts_cli ARGS` is `opcockpit ARGS`.
    import runpy

    runpy.run_module("opcockpit.cli", run_name="__main__")
