"""The alert commands' and the `config` group's declarations (runners import their module lazily).

No `from __future__ import annotations` here: typer reads the signatures at run time.
"""

from typing import Annotated, Any

import typer

import opcockpit.cli.app_fleet  # noqa: F401  (its commands come first in --help: registered first)
from opcockpit.cli.app_base import LedgerOpt, ListFormat, ShowFormat, app, register, subcommand, subgroup
from opcockpit.cli.app_base import duration as duration_opt

# --------------------------------------------------------------------------- alerts


def run_alerts_command(args: Any) -> int:
    from opcockpit.cli.alerts_cli import run

    return run(args)


IdArg = Annotated[str, typer.Argument(metavar="ID", help="alert id (#12 / 12) or fingerprint")]
CommentOpt = Annotated[str | None, typer.Option("--comment", "-m", help="why / what is being done")]
WhoOpt = Annotated[str | None, typer.Option("--who", help="operator (default: $USER@host)")]
ListFormatOpt = Annotated[ListFormat, typer.Option("--format")]


@register(app, "alerts", "evaluate and list alerts (exit 1 when an unmuted alert fires)", run_alerts_command)
def _alerts(
    id: Annotated[str | None, typer.Argument(metavar="[ID]", help="show one alert in detail")] = None,
    history: Annotated[
        bool, typer.Option("--history", help="list past episodes too (no evaluation)")
    ] = False,
    cached: Annotated[
        bool, typer.Option("--cached", help="show the ledger's alerts without evaluating")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", help="history length (default 50)")] = 50,
    format: ListFormatOpt = ListFormat.table,
    ledger: LedgerOpt = None,
) -> None: ...


@register(app, "ack", "acknowledge an alert", run_alerts_command)
def _ack(id: IdArg, comment: CommentOpt = None, who: WhoOpt = None, ledger: LedgerOpt = None) -> None: ...


@register(app, "mute", "silence an alert for a while or until it resolves", run_alerts_command)
def _mute(
    id: IdArg,
    duration: Annotated[
        Any, typer.Option("--for", metavar="DURATION", parser=duration_opt, help="e.g. 30m, 2h, 1d")
    ] = None,
    until_resolved: Annotated[
        bool, typer.Option("--until-resolved", help="until this episode resolves")
    ] = False,
    comment: CommentOpt = None,
    who: WhoOpt = None,
    ledger: LedgerOpt = None,
) -> None: ...


@register(app, "unmute", "lift a mute", run_alerts_command)
def _unmute(id: IdArg, ledger: LedgerOpt = None) -> None: ...


# --------------------------------------------------------------------------- config


def run_config_command(args: Any) -> int:
    from opcockpit.cli.config_cmd import run_config

    return run_config(args)


config_app = subgroup(
    "config",
    "show, validate or create the configuration",
    "opcockpit config: choose an action: show, validate, init, paths, contexts (see opcockpit config --help)",
)
_config = subcommand(config_app, run_config_command, "config_command")


@_config("show", "effective config, where each value came from (secrets redacted)")
def _config_show(format: Annotated[ShowFormat, typer.Option("--format")] = ShowFormat.text) -> None: ...


@_config("validate", "exit 0 when the config is valid, 2 otherwise")
def _config_validate() -> None: ...


@_config("init", "write a commented starter config")
def _config_init(
    path: Annotated[
        str | None,
        typer.Option("--path", metavar="PATH", help="where to write (default: the XDG config path)"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None: ...


@_config("paths", "every path opcockpit reads")
def _config_paths() -> None: ...


@_config("contexts", "the [contexts.<name>] of the config, the current one marked")
def _config_contexts(format: Annotated[ListFormat, typer.Option("--format")] = ListFormat.table) -> None: ...
