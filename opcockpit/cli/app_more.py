"""The declarations of serve, webhooks, export, query/queries (Explore) and ledger.

Runners import their module lazily (starlette, the OTLP exporter, lark, PostgreSQL load only when
their command runs).

No `from __future__ import annotations` here: typer reads the signatures at run time.
"""

from enum import StrEnum
from typing import Annotated, Any

import typer

import opcockpit.cli.app_alerts  # noqa: F401  (its commands come first in --help: registered first)
from opcockpit.cli.app_base import LedgerOpt, ListFormat, app, finite_positive, register, subcommand, subgroup

# --------------------------------------------------------------------------- serve, webhooks (issue 13)


def run_serve_command(args: Any) -> int:
    from opcockpit.cli.serve_cmd import run_serve

    return run_serve(args)


def run_webhooks_command(args: Any) -> int:
    from opcockpit.cli.webhooks_cmd import run_webhooks

    return run_webhooks(args)


@register(app, "serve", "receive provider webhooks (signatures verified) into the ledger", run_serve_command)
def _serve(
    listen: Annotated[
        str | None,
        typer.Option("--listen", metavar="HOST:PORT", help="bind address (default [serve] listen)"),
    ] = None,
    ledger: LedgerOpt = None,
) -> None: ...


webhooks_app = subgroup(
    "webhooks",
    "manage provider webhook registrations (E2B)",
    "opcockpit webhooks: choose an action: register, list, delete (see opcockpit webhooks --help)",
)
ProviderArg = Annotated[str, typer.Argument(metavar="PROVIDER", help="configured e2b provider name")]
_webhooks = subcommand(webhooks_app, run_webhooks_command, "webhooks_command")


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


export_app = subgroup(
    "export",
    "push runs and ledger events to a telemetry backend",
    "opcockpit export: choose a target: otlp (see opcockpit export --help)",
)


def run_export_command(args: Any) -> int:
    from opcockpit.cli.export_cmd import run_export

    return run_export(args)


@register(
    export_app,
    "otlp",
    "push LEON runs (traces) and ledger events (logs) to an OTLP/HTTP collector once (cron)",
    run_export_command,
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
        typer.Option("--timeout", metavar="S", parser=finite_positive, help="total delivery deadline (10)"),
    ] = 10.0,
    ledger: LedgerOpt = None,
) -> None: ...


# --------------------------------------------------------------------------- explore: query, queries


class QueryFormat(StrEnum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"


def run_query_command(args: Any) -> int:
    from opcockpit.cli.query_cmd import run_query

    return run_query(args)


def run_queries_command(args: Any) -> int:
    from opcockpit.cli.query_cmd import run_queries

    return run_queries(args)


QueryLedgerOpt = Annotated[str | None, typer.Option("--ledger", metavar="PATH", help="the cockpit ledger")]


@register(
    app,
    "query",
    "run an Explore query (or --sql: one read-only SELECT); see docs/explore.md",
    run_query_command,
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


queries_app = subgroup(
    "queries",
    "saved Explore queries: list, show, save, rm, import, export",
    "opcockpit queries: choose an action: list, show, save, rm, import, export",
)
_queries = subcommand(queries_app, run_queries_command, "queries_command")
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


def run_ledger_command(args: Any) -> int:
    from opcockpit.cli.ledger_cmd import run_ledger

    return run_ledger(args)


# No bare-name callback (as before the split): `opcockpit ledger` alone is typer's own answer.
ledger_app = subgroup("ledger", "the cockpit's ledger: migrate, status, copy", None)
LedgerUrlOpt = Annotated[
    str | None,
    typer.Option("--ledger", metavar="PATH|URL", help="ledger (default: [ledger] / $OPCOCKPIT_LEDGER)"),
]
_ledger = subcommand(ledger_app, run_ledger_command, "ledger_command")


@_ledger("migrate", "apply pending ledger migrations (also done on start)")
def _ledger_migrate(ledger: LedgerUrlOpt = None) -> None: ...


@_ledger("status", "backend, location and schema versions of the ledger")
def _ledger_status(ledger: LedgerUrlOpt = None) -> None: ...


@_ledger("copy", "copy audit and alerts into a new ledger (e.g. sqlite:PATH -> postgresql://…)")
def _ledger_copy(
    src: Annotated[str, typer.Option("--from", metavar="sqlite:PATH|URL")],
    dst: Annotated[str, typer.Option("--to", metavar="postgresql://…")],
) -> None: ...
