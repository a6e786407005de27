"""The fleet commands' declarations: snapshot, demo, the operator actions, audit, events.

Each runner imports the module that implements its command only when it runs, so
`snapshot --format json` never imports asyncio-heavy action code, rich or textual. The snapshot's
options are mirrored by cli/plain.py (its typer-free parser); tests/test_cli_plain.py keeps the two
equal.

No `from __future__ import annotations` here: typer reads the signatures at run time.
"""

from enum import StrEnum
from typing import Annotated, Any

import typer

from opcockpit.cli.app_base import DEFAULT_WAIT_S, ListFormat, app, finite_positive, register
from opcockpit.cli.plain import run_snapshot_command


class SnapshotFormat(StrEnum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"
    prometheus = "prometheus"


def _complete_targets(ctx: typer.Context, incomplete: str) -> list[str]:
    from opcockpit.cli.complete import complete_targets

    return complete_targets(ctx, incomplete)


def _complete_threads(ctx: typer.Context, incomplete: str) -> list[str]:
    from opcockpit.cli.complete import complete_threads

    return complete_threads(ctx, incomplete)


# --------------------------------------------------------------------------- snapshot, demo


def run_demo_command(args: Any) -> int:
    from opcockpit.cli.demo_cmd import run_demo_command

    return run_demo_command(args)


FormatOpt = Annotated[SnapshotFormat, typer.Option("--format", help="output format")]
CheckOpt = Annotated[
    bool, typer.Option("--check", help="also evaluate the alert rules; exit 1 when an unmuted alert fires")
]
WidthOpt = Annotated[int | None, typer.Option("--width", metavar="COLS", hidden=True)]


@register(app, "snapshot", "print the ground truth once (no TUI)", run_snapshot_command)
def _snapshot(
    format: FormatOpt = SnapshotFormat.table,
    check: CheckOpt = False,
    provider: Annotated[
        list[str] | None, typer.Option("--provider", metavar="NAME", help="only this provider (repeatable)")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", metavar="S", parser=finite_positive, help="per-provider listing timeout"),
    ] = None,
    width: WidthOpt = None,
) -> None: ...


@register(app, "demo", "run the cockpit on a generated fleet with provider doubles", run_demo_command)
def _demo(
    snapshot: Annotated[
        bool, typer.Option("--snapshot", help="print one snapshot instead of the TUI")
    ] = False,
    format: FormatOpt = SnapshotFormat.table,
    check: CheckOpt = False,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    leases: Annotated[int, typer.Option("--leases")] = 60,
    width: WidthOpt = None,
) -> None: ...


# --------------------------------------------------------------------------- operator actions


def run_action_command(args: Any) -> int:
    from opcockpit.cli.ops import run_action

    return run_action(args)


def run_audit_command(args: Any) -> int:
    from opcockpit.cli.ops import run_audit

    return run_audit(args)


TargetsArg = Annotated[
    list[str],
    typer.Argument(
        metavar="TARGET...",
        help="lease id, thread id, instance id, unique prefix, or provider/instance",
        autocompletion=_complete_targets,
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="check and report; change nothing")]
ListFormatOpt = Annotated[ListFormat, typer.Option("--format")]
WaitOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        metavar="S",
        parser=finite_positive,
        help=f"wait at most S seconds for convergence (default {DEFAULT_WAIT_S:g})",
    ),
]
# An action's --timeout is the convergence wait, never the listing timeout load_or_exit reads.
_WAIT = {"timeout": "wait_timeout"}
_ACTION_HELP = {
    "pause": "pause sandboxes (lease id, thread id, instance id, unique prefix, or provider/instance)",
    "resume": "resume paused sandboxes",
    "destroy": "destroy sandboxes (asks on a terminal; --yes to skip)",
}


def _action_command(action: str) -> None:
    @register(
        app, action, _ACTION_HELP[action], run_action_command, fixed={"op_action": action}, rename=_WAIT
    )
    def _signature(
        targets: TargetsArg,
        yes: YesOpt = False,
        dry_run: DryRunOpt = False,
        format: ListFormatOpt = ListFormat.table,
        timeout: WaitOpt = DEFAULT_WAIT_S,
    ) -> None: ...


for _action in ("pause", "resume", "destroy"):
    _action_command(_action)


@register(
    app,
    "adopt",
    "turn orphan instances into LEON leases (lease-adopt-<hex>)",
    run_action_command,
    fixed={"op_action": "adopt"},
    rename=_WAIT,
)
def _adopt(
    targets: TargetsArg,
    thread: Annotated[
        str | None,
        typer.Option(
            "--thread",
            metavar="THREAD_ID",
            help="attach to this thread (it must have no lease)",
            autocompletion=_complete_threads,
        ),
    ] = None,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    format: ListFormatOpt = ListFormat.table,
    timeout: WaitOpt = DEFAULT_WAIT_S,
) -> None: ...


@register(app, "audit", "list the operator actions log", run_audit_command)
def _audit(
    limit: Annotated[int, typer.Option("--limit", metavar="N")] = 50,
    since: Annotated[
        str | None, typer.Option("--since", metavar="WHEN", help="ISO time or an age like 30m, 2h, 7d")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", metavar="ID", help="lease, instance, thread or provider/instance (prefix)"),
    ] = None,
    format: ListFormatOpt = ListFormat.table,
) -> None: ...


# --------------------------------------------------------------------------- events


class EventsFormat(StrEnum):
    table = "table"
    json = "json"
    ndjson = "ndjson"


def run_events_command(args: Any) -> int:
    from opcockpit.cli.events_cmd import run_events

    return run_events(args)


@register(app, "events", "the cockpit's event ledger: what changed, when (newest first)", run_events_command)
def _events(
    lease: Annotated[str | None, typer.Option("--lease", metavar="ID", help="only this lease")] = None,
    thread: Annotated[str | None, typer.Option("--thread", metavar="ID", help="only this thread")] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", metavar="NAME", help="only this provider")
    ] = None,
    type: Annotated[
        list[str] | None, typer.Option("--type", metavar="NAME", help="only this event type (repeatable)")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DURATION", help="an age (1h, 30m, 7d) or an ISO time"),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="at most N events (default 200)")] = 200,
    format: Annotated[EventsFormat, typer.Option("--format", help="output format")] = EventsFormat.table,
    ledger: Annotated[
        str | None,
        typer.Option("--ledger", metavar="PATH", help="ledger (default: $OPCOCKPIT_LEDGER, XDG data dir)"),
    ] = None,
) -> None: ...
