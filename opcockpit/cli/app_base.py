"""The root of the `opcockpit` typer app and what every command's declaration is made with.

The global flags (`--config --db --context --events-db --read-only --refresh --debug`) are
accepted before or after any command: `with_globals` adds them to every command's signature, and
the value given last on the command line wins. `register` declares a command from a signature-only
function and the runner that does the work; `subgroup` a command group whose bare name is a usage
error. The commands themselves are declared in app_fleet, app_alerts and app_more (in that order:
the order of `opcockpit --help`), assembled by cli/app.py.

No `from __future__ import annotations` here: typer reads the signatures at run time.
"""

import inspect
from collections.abc import Callable
from contextvars import ContextVar
from enum import Enum, StrEnum
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from opcockpit import __version__
from opcockpit.cli import plain
from opcockpit.domain.exit_codes import ExitCode

MIN_REFRESH_S = plain.MIN_REFRESH_S
DEFAULT_WAIT_S = 60.0


class ListFormat(StrEnum):
    table = "table"
    json = "json"


class ShowFormat(StrEnum):
    text = "text"
    json = "json"


def _usage_errors(parse: Callable[[str], float]) -> Callable[[str], float]:
    """`parse` (one of plain's typer-free value parsers) with its ValueError as a usage error."""

    def parser(text: str) -> float:
        try:
            return parse(text)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    parser.__doc__ = parse.__doc__
    return parser


finite_positive = _usage_errors(plain.finite_positive)  # seconds > 0
_refresh_seconds = _usage_errors(plain.refresh_seconds)  # --refresh: raised to the 0.5 s floor


def duration(text: str) -> Any:
    """`mute --for`: the domain's duration parser, its ValueError as a usage error."""
    from opcockpit.domain.timeutil import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


LedgerOpt = Annotated[
    str | None,
    typer.Option("--ledger", metavar="PATH", help="alert ledger (default: $OPCOCKPIT_LEDGER, XDG data dir)"),
]


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


def merge_globals(ctx: typer.Context, given: dict[str, Any]) -> dict[str, Any]:
    """ctx.obj holds the global flags seen so far (root, group, command); later ones win."""
    if ctx.obj is None:
        ctx.obj = dict.fromkeys(GLOBALS)
        ctx.obj.update(read_only=False, debug=False)
    for name, value in given.items():
        if value not in (None, False):
            ctx.obj[name] = value
    return ctx.obj


def _global_params() -> list[inspect.Parameter]:
    return [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
        for n, (d, a) in GLOBALS.items()
    ]


CAPTURE: ContextVar[list[Any] | None] = ContextVar("opcockpit_cli_capture", default=None)


def with_globals(
    signature: Callable[..., None],
    run: Callable[[Any], int],
    name: str,
    fixed: dict[str, Any] | None = None,
    rename: dict[str, str] | None = None,
) -> Callable[..., None]:
    """`run(args)` as a typer command taking `signature`'s parameters plus the global flags;
    `args` is a namespace of both (enum choices as their values), `args.command` the name."""
    own = list(inspect.signature(signature).parameters.values())
    extra = _global_params()
    ctx_param = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)

    def command(ctx: typer.Context, **kwargs: Any) -> None:
        given = {n: kwargs.pop(n) for n in GLOBALS}
        merged = merge_globals(ctx, given)
        values = {
            (rename or {}).get(k, k): (v.value if isinstance(v, Enum) else v) for k, v in kwargs.items()
        }
        args = SimpleNamespace(**merged, **values, **(fixed or {}), command=name)
        captured = CAPTURE.get()
        if captured is not None:
            captured.extend((run, args))
            raise typer.Exit(0)
        raise typer.Exit(int(run(args)))

    command.__signature__ = inspect.Signature([ctx_param, *own, *extra])  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in (ctx_param, *own, *extra)}
    command.__name__ = name
    return command


def register(
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
        group.command(name, help=help_text)(with_globals(signature, run, name, fixed, rename))
        return signature

    return deco


def group_signature(func: Callable[..., None]) -> Callable[..., None]:
    """`func(..., **given)` with the global flags as its keyword parameters instead of **given."""
    own = list(inspect.signature(func).parameters.values())[:-1]  # drop **given
    extra = _global_params()
    func.__signature__ = inspect.Signature([*own, *extra])  # type: ignore[attr-defined]
    func.__annotations__ = {p.name: p.annotation for p in (*own, *extra)}
    return func


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
    merged = merge_globals(ctx, given)
    if ctx.invoked_subcommand is None:
        from opcockpit.cli.tui_cmd import run_tui

        raise typer.Exit(run_tui(SimpleNamespace(**merged, command=None)))


app.callback(invoke_without_command=True)(group_signature(_root))


def subgroup(name: str, help_text: str, bare: str | None) -> typer.Typer:
    """A command group under the root taking the global flags; `opcockpit NAME` alone prints
    `bare` as one line and exits 2 (None: typer's own behaviour, no global flags on the group)."""
    group = typer.Typer(help=help_text, rich_markup_mode=None)
    app.add_typer(group, name=name)
    if bare is None:
        return group

    def callback(ctx: typer.Context, **given: Any) -> None:
        merge_globals(ctx, given)
        if ctx.invoked_subcommand is None:
            from opcockpit.cli.common import err

            err(bare)
            raise typer.Exit(ExitCode.USAGE)

    group.callback(invoke_without_command=True)(group_signature(callback))
    return group


def subcommand(
    group: typer.Typer, run: Callable[[Any], int], key: str
) -> Callable[[str, str], Callable[[Callable[..., None]], Callable[..., None]]]:
    """`register` for the commands of `group`: each runs `run` with args.<key> = its name."""

    def declare(name: str, help_text: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
        return register(group, name, help_text, run, fixed={key: name})

    return declare
