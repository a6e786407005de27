"""`opcockpit query` and `opcockpit queries`: Explore from the shell.

Exit codes: 0 results (also none), 2 a bad query (syntax error with its column and a caret line,
unknown names, missing parameters, a refused or runaway statement), 3 a source unreadable.
Results are produced in full before anything is printed.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from opcockpit.cli.common import EXIT_OK, EXIT_SOURCE, EXIT_USAGE, CliExit, err, load_or_exit
from opcockpit.domain.text import one_line, safe_text

CELL = 60  # table cells are clipped; json/ndjson/csv keep every byte


def _value(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


def render(columns: tuple[str, ...] | list[str], rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([{c: _value(r.get(c)) for c in columns} for r in rows], indent=1) + "\n"
    if fmt == "ndjson":
        return "".join(json.dumps({c: _value(r.get(c)) for c in columns}) + "\n" for r in rows)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else _value(r.get(c)) for c in columns])
        return buf.getvalue()
    cells = [
        [one_line(safe_text("" if r.get(c) is None else _value(r.get(c))), CELL) for c in columns]
        for r in rows
    ]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"


def _params(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs or ():
        k, sep, v = p.partition("=")
        if not sep or not k.strip():
            err(f"opcockpit query: --param takes NAME=VALUE, not {p!r}")
            raise CliExit(EXIT_USAGE)
        out[k.strip().lstrip(":")] = v
    return out


def _explore(args: Any) -> tuple[Any, Any]:
    from opcockpit.wiring import build_explore

    loaded = load_or_exit(args)
    settings = loaded.config if hasattr(loaded, "config") else loaded
    return build_explore(settings, ledger_path=getattr(args, "ledger", None)), settings


def run_query(args: Any) -> int:
    from opcockpit.domain.query import QueryError, QuerySyntaxError, parse
    from opcockpit.ports.errors import SourceError
    from opcockpit.ports.explore import SqlRefused
    from opcockpit.ports.ledger import LedgerError
    from opcockpit.wiring import run_main

    explore, settings = _explore(args)
    params = _params(getattr(args, "param", None))
    text, sql = args.expr, bool(args.sql)
    try:
        if args.saved:
            saved = explore.saved(args.saved)
            if saved is None:
                names = ", ".join(q.name for q in explore.saved_all()) or "none saved"
                err(f"opcockpit query: no saved query {args.saved!r} ({names})")
                return EXIT_USAGE
            text, sql = saved.query, saved.sql
        if not text:
            err("opcockpit query: give a query, e.g. opcockpit query 'runs status:error since:-6h'")
            return EXIT_USAGE
        limit = args.limit
        if sql:
            res = run_main(lambda: explore.run_sql(text, params=params, limit=limit or 1000))
            rows = [dict(zip(res.columns, r, strict=True)) for r in res.rows]
            out = render(res.columns, rows, args.format)
            notice = (
                f"showing the first {res.limit} rows (row limit); add LIMIT or --limit"
                if res.capped
                else None
            )
            warnings: list[str] = []
        else:
            gt = None
            if parse(text).dataset in ("leases", "orphans"):
                from opcockpit.cli.snapshot import run_collect
                from opcockpit.wiring import build_cockpit

                gt = run_collect(build_cockpit(settings, read_only=True))
            result = run_main(lambda: explore.run(text, params=params, cap=limit, ground_truth=gt))
            out = render(result.columns, result.rows, args.format)
            notice, warnings = result.notice, result.warnings
    except QuerySyntaxError as exc:
        err(f"opcockpit query: {exc}")
        for line in exc.caret():
            err(safe_text(line))
        return EXIT_USAGE
    except (QueryError, SqlRefused) as exc:
        err(f"opcockpit query: {one_line(str(exc), 400)}")
        for line in getattr(exc, "caret", list)():
            err(safe_text(line))
        return EXIT_USAGE
    except (SourceError, LedgerError) as exc:
        err(f"opcockpit query: {one_line(str(exc), 400)}")
        return EXIT_SOURCE
    sys.stdout.write(out)
    for w in warnings:
        err(f"opcockpit query: warning: {w}")
    if notice:
        err(f"opcockpit query: {notice}")
    return EXIT_OK


def run_queries(args: Any) -> int:
    """`opcockpit queries list|show|save|rm|import|export`."""
    from opcockpit.domain.query import QueryError
    from opcockpit.ports.ledger import LedgerError
    from opcockpit.wiring import dump_queries_toml, load_queries_toml, open_query_pins, query_pins_toml

    explore, settings = _explore(args)
    action = args.queries_command
    try:
        if action == "list":
            rows = [
                {"name": q.name, "params": " ".join(":" + p for p in q.params),
                 "mode": "sql" if q.sql else "query", "owner": q.owner, "description": q.description,
                 "query": q.query}
                for q in explore.saved_all()
            ]  # fmt: skip
            sys.stdout.write(
                render(("name", "mode", "params", "owner", "description", "query"), rows, "table")
            )
            return EXIT_OK
        if action == "show":
            q = explore.saved(args.name)
            if q is None:
                err(f"opcockpit queries: no saved query {args.name!r}")
                return EXIT_USAGE
            sys.stdout.write(dump_queries_toml([q]))
            return EXIT_OK
        if action == "save":
            q = explore.save(args.name, args.expr, description=args.description or "", sql=bool(args.sql))
            err(
                f"opcockpit queries: saved {q.name}"
                + (f" (parameters: {', '.join(q.params)})" if q.params else "")
            )
            return EXIT_OK
        if action == "rm":
            if not explore.remove(args.name):
                err(f"opcockpit queries: no saved query {args.name!r}; nothing removed")
                return EXIT_USAGE
            err(f"opcockpit queries: removed {args.name}")
            return EXIT_OK
        if action == "import":
            try:
                text = Path(args.file).read_text(encoding="utf-8")
                items = load_queries_toml(text)
                pins = query_pins_toml(text)
            except OSError as exc:
                err(f"opcockpit queries: cannot read {args.file}: {exc.strerror}")
                return EXIT_USAGE
            # check every query first: one bad entry imports nothing
            from opcockpit.domain.query import parse

            for q in items:
                if not q.sql:
                    try:
                        parse(q.query)
                    except QueryError as exc:
                        err(f"opcockpit queries: {args.file}: {q.name}: {exc}; nothing imported")
                        return EXIT_USAGE
            for q in items:
                explore.save(q.name, q.query, description=q.description, sql=q.sql)
            if pins:
                with open_query_pins(settings, getattr(args, "ledger", None)) as store:
                    for name, (slot, palette) in sorted(pins.items()):
                        store.pin(name, slot=slot, palette=palette, who=explore.operator)
            pinned = f", {len(pins)} pinned" if pins else ""
            err(f"opcockpit queries: imported {len(items)} quer{'y' if len(items) == 1 else 'ies'}{pinned}")
            return EXIT_OK
        if action == "export":
            with open_query_pins(settings, getattr(args, "ledger", None)) as store:
                pinned = {p.name: (p.slot, p.palette) for p in store.pins()}
            text = dump_queries_toml(explore.saved_all(), pinned)
            if args.file:
                Path(args.file).write_text(text, encoding="utf-8")
            else:
                sys.stdout.write(text)
            return EXIT_OK
    except (QueryError, ValueError) as exc:
        err(f"opcockpit queries: {one_line(str(exc), 400)}")
        return EXIT_USAGE
    except LedgerError as exc:
        err(f"opcockpit queries: {one_line(str(exc), 400)}")
        return EXIT_SOURCE
    err(f"opcockpit queries: unknown action {action!r}")
    return EXIT_USAGE
