"""The `opcockpit` typer app: every command's flags, and nothing else.

Each command's body imports the module that implements it (snapshot, ops, alerts_cli,
config_cmd, demo_cmd, the TUI) only when it runs, so `snapshot --format json` never imports
asyncio-heavy action code, rich or textual. The global flags (`--config --db --events-db
--read-only --refresh --debug`) are accepted before or after any command: `_with_globals` adds
them to every command's signature, and the value given last on the command line wins.

No `from __future__ import annotations` here: typer reads the signatures at run time.
"""

import copy
import inspect
import os
from collections.abc import Callable
from contextvars import ContextVar
from enum import Enum, StrEnum
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from opcockpit import __version__
from opcockpit.domain.exit_codes import ExitCode

MIN_REFRESH_S = 0.5
DEFAULT_WAIT_S = 60.0


class SnapshotFormat(StrEnum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"
    prometheus = "prometheus"


class ListFormat(StrEnum):
    table = "table"
    json = "json"


class ShowFormat(StrEnum):
    text = "text"
    json = "json"


def _finite_positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise typer.BadParameter(f"not a number: {text!r}") from None
    # nan made the TUI's refresh timer spin at 100 % CPU; inf made it never fire
    if value != value or value in (float("inf"), float("-inf")):
        raise typer.BadParameter(f"must be a finite number of seconds, not {text!r}")
    if value <= 0:
        raise typer.BadParameter("must be > 0")
    return value


def _refresh_seconds(text: str) -> float:
    """--refresh: positive seconds; below the 0.5 s floor it is raised to the floor."""
    return max(_finite_positive(text), MIN_REFRESH_S)


def _duration(text: str) -> Any:
    """`mute --for`: the domain's duration parser, its ValueError as a usage error."""
    from opcockpit.domain.timeutil import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _complete_targets(ctx: typer.Context, incomplete: str) -> list[str]:
    from opcockpit.cli.complete import complete_targets

    return complete_targets(ctx, incomplete)


def _complete_threads(ctx: typer.Context, incomplete: str) -> list[str]:
    from opcockpit.cli.complete import complete_threads

    return complete_threads(ctx, incomplete)


# --------------------------------------------------------------------------- global flags

GLOBALS: dict[str, tuple[Any, Any]] = {
    "config": (
        None,
        Annotated[str | None, typer.Option("--config", metavar="PATH", help="config TOML")],
    ),
    "db": (None, Annotated[str | None, typer.Option("--db", metavar="PATH", help="sandbox.db")]),
    "context": (
        None,
        Annotated[
            str | None,
            typer.Option("--context", metavar="NAME", help="use [contexts.NAME] of the config (k9s-style)"),
        ],
    ),
    "events_db": (
        None,
        Annotated[str | None, typer.Option("--events-db", metavar="PATH", help="events.db")],
    ),
    "read_only": (
        False,
        Annotated[bool, typer.Option("--read-only", help="never change a sandbox")],
    ),
    "refresh": (
        None,
        Annotated[
            float | None,
            typer.Option(
                "--refresh",
                metavar="SECONDS",
                parser=_refresh_seconds,
                help=f"TUI refresh interval (default: config refresh_s, 2; floor {MIN_REFRESH_S:g})",
            ),
        ],
    ),
    "debug": (False, Annotated[bool, typer.Option("--debug", help="show tracebacks (secrets redacted)")]),
}


def _merge_globals(ctx: typer.Context, given: dict[str, Any]) -> dict[str, Any]:
    """ctx.obj holds the global flags seen so far (root, group, command); later ones win."""
    if ctx.obj is None:
        ctx.obj = dict.fromkeys(GLOBALS)
        ctx.obj.update(read_only=False, debug=False)
    for name, value in given.items():
        if value not in (None, False):
            ctx.obj[name] = value
    return ctx.obj


def _with_globals(
    signature: Callable[..., None],
    run: Callable[[Any], int],
    name: str,
    fixed: dict[str, Any] | None = None,
    rename: dict[str, str] | None = None,
) -> Callable[..., None]:
    """`run(args)` as a typer command taking `signature`'s parameters plus the global flags;
    `args` is a namespace of both (enum choices as their values), `args.command` the name."""
    own = list(inspect.signature(signature).parameters.values())
    extra = [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
        for n, (d, a) in GLOBALS.items()
    ]
    ctx_param = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)

    def command(ctx: typer.Context, **kwargs: Any) -> None:
        given = {n: kwargs.pop(n) for n in GLOBALS}
        merged = _merge_globals(ctx, given)
        values = {
            (rename or {}).get(k, k): (v.value if isinstance(v, Enum) else v) for k, v in kwargs.items()
        }
        args = SimpleNamespace(**merged, **values, **(fixed or {}), command=name)
        captured = _CAPTURE.get()
        if captured is not None:
            captured.extend((run, args))
            raise typer.Exit(0)
        raise typer.Exit(int(run(args)))

    command.__signature__ = inspect.Signature([ctx_param, *own, *extra])  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in (ctx_param, *own, *extra)}
    command.__name__ = name
    return command


_CAPTURE: ContextVar[list[Any] | None] = ContextVar("opcockpit_cli_capture", default=None)


def parse(argv: list[str]) -> tuple[Callable[[Any], int], SimpleNamespace]:
    """(run, args) that `opcockpit ARGV` would call, without running it (tests, tooling)."""
    captured: list[Any] = []
    token = _CAPTURE.set(captured)
    try:
        typer.main.get_command(app).main(args=argv, prog_name="opcockpit", standalone_mode=False)
    finally:
        _CAPTURE.reset(token)
    run, args = captured
    return run, args


def command_for(argv: list[str]) -> Any:
    """The click command that runs `opcockpit ARGV`. Building typer's whole tree costs ~15 ms of
    every start-up (issue 9: most of a snapshot's wall time is start-up), so when ARGV starts with
    a command's or group's name only that one is built under the same root (callback, global
    flags, help and error texts unchanged). Anything else (options first, a typo, no command,
    shell completion) builds the whole tree."""
    target = app
    name = argv[0] if argv else ""
    completing = any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)
    if name and not name.startswith("-") and not completing:
        commands = [c for c in app.registered_commands if c.name == name]
        groups = [g for g in app.registered_groups if g.name == name]
        if commands or groups:
            target = copy.copy(app)  # shallow: shares every registration, only the lists differ
            target.registered_commands = commands
            target.registered_groups = groups
    return typer.main.get_command(target)


def _register(
    group: typer.Typer,
    name: str,
    help_text: str,
    run: Callable[[Any], int],
    *,
    fixed: dict[str, Any] | None = None,
    rename: dict[str, str] | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register `name`: the decorated function gives typer the command's own parameters (its
    body is never run); `run(args)` does the work and returns the exit code."""

    def deco(signature: Callable[..., None]) -> Callable[..., None]:
        group.command(name, help=help_text)(_with_globals(signature, run, name, fixed, rename))
        return signature

    return deco


def _version(value: bool) -> None:
    if value:
        typer.echo(f"opcockpit {__version__}")
        raise typer.Exit(0)


app = typer.Typer(
    name="opcockpit",
    help="Terminal cockpit for LEON-family sandbox fleets. No command: the live cockpit (TUI).",
    add_completion=True,
    no_args_is_help=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
    **given: Any,
) -> None:
    merged = _merge_globals(ctx, given)
    if ctx.invoked_subcommand is None:
        from opcockpit.cli.tui_cmd import run_tui

        raise typer.Exit(run_tui(SimpleNamespace(**merged, command=None)))


def _group_signature(func: Callable[..., None]) -> Callable[..., None]:
    own = list(inspect.signature(func).parameters.values())[:-1]  # drop **given
    extra = [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
        for n, (d, a) in GLOBALS.items()
    ]
    func.__signature__ = inspect.Signature([*own, *extra])  # type: ignore[attr-defined]
    func.__annotations__ = {p.name: p.annotation for p in (*own, *extra)}
    return func


app.callback(invoke_without_command=True)(_group_signature(_root))


# --------------------------------------------------------------------------- snapshot, demo


def _run_snapshot(args: Any) -> int:
    from opcockpit.cli.snapshot import run_snapshot

    return run_snapshot(args)


def _run_demo(args: Any) -> int:
    from opcockpit.cli.demo_cmd import run_demo_command

    return run_demo_command(args)


FormatOpt = Annotated[SnapshotFormat, typer.Option("--format", help="output format")]
CheckOpt = Annotated[
    bool, typer.Option("--check", help="also evaluate the alert rules; exit 1 when an unmuted alert fires")
]
WidthOpt = Annotated[int | None, typer.Option("--width", metavar="COLS", hidden=True)]


@_register(app, "snapshot", "print the ground truth once (no TUI)", _run_snapshot)
def _snapshot(
    format: FormatOpt = SnapshotFormat.table,
    check: CheckOpt = False,
    provider: Annotated[
        list[str] | None, typer.Option("--provider", metavar="NAME", help="only this provider (repeatable)")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", metavar="S", parser=_finite_positive, help="per-provider listing timeout"),
    ] = None,
    width: WidthOpt = None,
) -> None: ...


@_register(app, "demo", "run the cockpit on a generated fleet with provider doubles", _run_demo)
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


def _run_action(args: Any) -> int:
    from opcockpit.cli.ops import run_action

    return run_action(args)


def _run_audit(args: Any) -> int:
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
        parser=_finite_positive,
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
    @_register(app, action, _ACTION_HELP[action], _run_action, fixed={"op_action": action}, rename=_WAIT)
    def _signature(
        targets: TargetsArg,
        yes: YesOpt = False,
        dry_run: DryRunOpt = False,
        format: ListFormatOpt = ListFormat.table,
        timeout: WaitOpt = DEFAULT_WAIT_S,
    ) -> None: ...


for _action in ("pause", "resume", "destroy"):
    _action_command(_action)


@_register(
    app,
    "adopt",
    "turn orphan instances into LEON leases (lease-adopt-<hex>)",
    _run_action,
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


@_register(app, "audit", "list the operator actions log", _run_audit)
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


def _run_events(args: Any) -> int:
    from opcockpit.cli.events_cmd import run_events

    return run_events(args)


@_register(app, "events", "the cockpit's event ledger: what changed, when (newest first)", _run_events)
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


# --------------------------------------------------------------------------- alerts


def _run_alerts(args: Any) -> int:
    from opcockpit.cli.alerts_cli import run

    return run(args)


LedgerOpt = Annotated[
    str | None,
    typer.Option("--ledger", metavar="PATH", help="alert ledger (default: $OPCOCKPIT_LEDGER, XDG data dir)"),
]
IdArg = Annotated[str, typer.Argument(metavar="ID", help="alert id (#12 / 12) or fingerprint")]
CommentOpt = Annotated[str | None, typer.Option("--comment", "-m", help="why / what is being done")]
WhoOpt = Annotated[str | None, typer.Option("--who", help="operator (default: $USER@host)")]


@_register(app, "alerts", "evaluate and list alerts (exit 1 when an unmuted alert fires)", _run_alerts)
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


@_register(app, "ack", "acknowledge an alert", _run_alerts)
def _ack(id: IdArg, comment: CommentOpt = None, who: WhoOpt = None, ledger: LedgerOpt = None) -> None: ...


@_register(app, "mute", "silence an alert for a while or until it resolves", _run_alerts)
def _mute(
    id: IdArg,
    duration: Annotated[
        Any, typer.Option("--for", metavar="DURATION", parser=_duration, help="e.g. 30m, 2h, 1d")
    ] = None,
    until_resolved: Annotated[
        bool, typer.Option("--until-resolved", help="until this episode resolves")
    ] = False,
    comment: CommentOpt = None,
    who: WhoOpt = None,
    ledger: LedgerOpt = None,
) -> None: ...


@_register(app, "unmute", "lift a mute", _run_alerts)
def _unmute(id: IdArg, ledger: LedgerOpt = None) -> None: ...


# --------------------------------------------------------------------------- config


config_app = typer.Typer(help="show, validate or create the configuration", rich_markup_mode=None)
app.add_typer(config_app, name="config")


def _config_group(ctx: typer.Context, **given: Any) -> None:
    _merge_globals(ctx, given)
    if ctx.invoked_subcommand is None:
        from opcockpit.cli.common import err

        err(
            "opcockpit config: choose an action: show, validate, init, paths, contexts"
            " (see opcockpit config --help)"
        )
        raise typer.Exit(ExitCode.USAGE)


config_app.callback(invoke_without_command=True)(_group_signature(_config_group))


def _run_config(args: Any) -> int:
    from opcockpit.cli.config_cmd import run_config

    return run_config(args)


def _config(name: str, help_text: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return _register(config_app, name, help_text, _run_config, fixed={"config_command": name})


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


# --------------------------------------------------------------------------- serve, webhooks (issue 13)


def _run_serve(args: Any) -> int:
    from opcockpit.cli.serve_cmd import run_serve

    return run_serve(args)


def _run_webhooks(args: Any) -> int:
    from opcockpit.cli.webhooks_cmd import run_webhooks

    return run_webhooks(args)


@_register(app, "serve", "receive provider webhooks (signatures verified) into the ledger", _run_serve)
def _serve(
    listen: Annotated[
        str | None,
        typer.Option("--listen", metavar="HOST:PORT", help="bind address (default [serve] listen)"),
    ] = None,
    ledger: LedgerOpt = None,
) -> None: ...


webhooks_app = typer.Typer(help="manage provider webhook registrations (E2B)", rich_markup_mode=None)
app.add_typer(webhooks_app, name="webhooks")


def _webhooks_group(ctx: typer.Context, **given: Any) -> None:
    _merge_globals(ctx, given)
    if ctx.invoked_subcommand is None:
        from opcockpit.cli.common import err

        err("opcockpit webhooks: choose an action: register, list, delete (see opcockpit webhooks --help)")
        raise typer.Exit(ExitCode.USAGE)


webhooks_app.callback(invoke_without_command=True)(_group_signature(_webhooks_group))
ProviderArg = Annotated[str, typer.Argument(metavar="PROVIDER", help="configured e2b provider name")]


def _webhooks(name: str, help_text: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return _register(webhooks_app, name, help_text, _run_webhooks, fixed={"webhooks_command": name})


@_webhooks("register", "register this receiver's URL with E2B (secret from [webhooks.<provider>])")
def _wh_register(
    provider: ProviderArg = "e2b",
    *,
    url: Annotated[
        str, typer.Option("--url", metavar="URL", help="public https URL of /webhooks/<provider>")
    ],
    name: Annotated[str, typer.Option("--name")] = "opcockpit",
) -> None: ...


@_webhooks("list", "list E2B webhook registrations")
def _wh_list(
    provider: ProviderArg = "e2b", format: Annotated[ListFormat, typer.Option("--format")] = ListFormat.table
) -> None: ...


@_webhooks("delete", "delete an E2B webhook registration")
def _wh_delete(provider: ProviderArg, id: Annotated[str, typer.Argument(metavar="ID")]) -> None: ...


# --------------------------------------------------------------------------- export (OpenTelemetry)


export_app = typer.Typer(help="push runs and ledger events to a telemetry backend", rich_markup_mode=None)
app.add_typer(export_app, name="export")


def _export_group(ctx: typer.Context, **given: Any) -> None:
    _merge_globals(ctx, given)
    if ctx.invoked_subcommand is None:
        from opcockpit.cli.common import err

        err("opcockpit export: choose a target: otlp (see opcockpit export --help)")
        raise typer.Exit(ExitCode.USAGE)


export_app.callback(invoke_without_command=True)(_group_signature(_export_group))


def _run_export(args: Any) -> int:
    from opcockpit.cli.export_cmd import run_export

    return run_export(args)


@_register(
    export_app,
    "otlp",
    "push LEON runs (traces) and ledger events (logs) to an OTLP/HTTP collector once (cron)",
    _run_export,
    fixed={"export_target": "otlp"},
    rename={"timeout": "push_timeout"},  # never the listing timeout load_or_exit reads
)
def _export_otlp(
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="WHEN", help="ISO time or an age like 30m, 2h, 7d (default 1h)"),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", metavar="S", parser=_finite_positive, help="total delivery deadline (10)"),
    ] = 10.0,
    ledger: LedgerOpt = None,
) -> None: ...


# --------------------------------------------------------------------------- explore: query, queries


class QueryFormat(StrEnum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"


def _run_query(args: Any) -> int:
    from opcockpit.cli.query_cmd import run_query

    return run_query(args)


def _run_queries(args: Any) -> int:
    from opcockpit.cli.query_cmd import run_queries

    return run_queries(args)


QueryLedgerOpt = Annotated[str | None, typer.Option("--ledger", metavar="PATH", help="the cockpit ledger")]


@_register(
    app, "query", "run an Explore query (or --sql: one read-only SELECT); see docs/explore.md", _run_query
)
def _query(
    expr: Annotated[
        str | None, typer.Argument(metavar="EXPR", help="e.g. 'runs status:error since:-6h'")
    ] = None,
    sql: Annotated[bool, typer.Option("--sql", help="EXPR is one read-only SQL statement")] = False,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", metavar="NAME=VALUE", help=":NAME in the query (repeatable)"),
    ] = None,
    format: Annotated[QueryFormat, typer.Option("--format", help="output format")] = QueryFormat.table,
    limit: Annotated[int | None, typer.Option("--limit", min=1, metavar="N", help="at most N rows")] = None,
    saved: Annotated[str | None, typer.Option("--saved", metavar="NAME", help="run a saved query")] = None,
    ledger: QueryLedgerOpt = None,
) -> None: ...


queries_app = typer.Typer(
    help="saved Explore queries: list, show, save, rm, import, export", rich_markup_mode=None
)
app.add_typer(queries_app, name="queries")


def _queries_group(ctx: typer.Context, **given: Any) -> None:
    _merge_globals(ctx, given)
    if ctx.invoked_subcommand is None:
        from opcockpit.cli.common import err

        err("opcockpit queries: choose an action: list, show, save, rm, import, export")
        raise typer.Exit(ExitCode.USAGE)


queries_app.callback(invoke_without_command=True)(_group_signature(_queries_group))


def _queries(name: str, help_text: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return _register(queries_app, name, help_text, _run_queries, fixed={"queries_command": name})


QueryNameArg = Annotated[str, typer.Argument(metavar="NAME")]


@_queries("list", "every saved query")
def _queries_list(ledger: QueryLedgerOpt = None) -> None: ...


@_queries("show", "one saved query as TOML")
def _queries_show(name: QueryNameArg, ledger: QueryLedgerOpt = None) -> None: ...


@_queries("save", "save (or replace) a query; :params are found in it")
def _queries_save(
    name: QueryNameArg,
    expr: Annotated[str, typer.Argument(metavar="EXPR")],
    description: Annotated[str | None, typer.Option("--description", metavar="TEXT")] = None,
    sql: Annotated[bool, typer.Option("--sql", help="EXPR is read-only SQL")] = False,
    ledger: QueryLedgerOpt = None,
) -> None: ...


@_queries("rm", "delete a saved query")
def _queries_rm(name: QueryNameArg, ledger: QueryLedgerOpt = None) -> None: ...


@_queries("import", "import saved queries from a TOML file (all or nothing)")
def _queries_import(
    file: Annotated[str, typer.Argument(metavar="FILE")], ledger: QueryLedgerOpt = None
) -> None: ...


@_queries("export", "write every saved query as TOML (stdout, or FILE)")
def _queries_export(
    file: Annotated[str | None, typer.Argument(metavar="FILE")] = None, ledger: QueryLedgerOpt = None
) -> None: ...


# --------------------------------------------------------------------------- ledger (issue 12)


def _run_ledger(args: Any) -> int:
    from opcockpit.cli.ledger_cmd import run_ledger

    return run_ledger(args)


ledger_app = typer.Typer(help="the cockpit's ledger: migrate, status, copy", rich_markup_mode=None)
app.add_typer(ledger_app, name="ledger")
LedgerUrlOpt = Annotated[
    str | None,
    typer.Option("--ledger", metavar="PATH|URL", help="ledger (default: [ledger] / $OPCOCKPIT_LEDGER)"),
]


def _ledger(name: str, help_text: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return _register(ledger_app, name, help_text, _run_ledger, fixed={"ledger_command": name})


@_ledger("migrate", "apply pending ledger migrations (also done on start)")
def _ledger_migrate(ledger: LedgerUrlOpt = None) -> None: ...


@_ledger("status", "backend, location and schema versions of the ledger")
def _ledger_status(ledger: LedgerUrlOpt = None) -> None: ...


@_ledger("copy", "copy audit and alerts into a new ledger (e.g. sqlite:PATH -> postgresql://…)")
def _ledger_copy(
    src: Annotated[str, typer.Option("--from", metavar="sqlite:PATH|URL")],
    dst: Annotated[str, typer.Option("--to", metavar="postgresql://…")],
) -> None: ...
