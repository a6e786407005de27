"""`opcockpit export otlp [--since DURATION] [--timeout S] [--ledger PATH]`: push LEON runs (as
traces) and the cockpit's ledger events (as log records) to an OTLP/HTTP collector once (cron).

Exit codes: 0 everything read was delivered; 3 (ExitCode.SOURCE) the collector was unreachable or
refused within --timeout (one line says so; nothing is lost: the ledger and events.db keep it all,
rerun with --since), or events.db / the ledger could not be read; 2 bad flags or config.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from opcockpit.cli.common import EXIT_OK, EXIT_SOURCE, EXIT_USAGE, err, load_or_exit

DEFAULT_SINCE = timedelta(hours=1)


def run_export(args: Any) -> int:
    from opcockpit.cli.ops import parse_since

    name = f"opcockpit export {args.export_target}"
    try:
        since = parse_since(args.since) if args.since else datetime.now(UTC) - DEFAULT_SINCE
    except ValueError as exc:
        err(f"{name}: {exc}")
        return EXIT_USAGE
    loaded = load_or_exit(args)
    for warning in loaded.warnings:
        err(f"opcockpit: warning: {warning}")
    return _push(name, loaded.config, since, float(args.push_timeout), getattr(args, "ledger", None))


def _push(name: str, config: Any, since: datetime, timeout_s: float, ledger: str | None) -> int:
    from opcockpit.services.export import push_once
    from opcockpit.wiring import build_cockpit, build_otlp_sink, ledger_feed, otlp_config, run_main

    cfg = otlp_config(config)
    cockpit = build_cockpit(config, read_only=True, ledger_path=ledger)
    sink = build_otlp_sink(config)
    events_db = config.sources.events_db

    async def push() -> Any:
        try:
            return await push_once(
                sink, since=since, events_db=str(events_db) if events_db else None,
                events_reader=cockpit.leon.events_reader, ledger_feed=ledger_feed(cockpit),
                timeout_s=timeout_s, provider_name=cfg.provider_name,
            )  # fmt: skip
        finally:
            await cockpit.aclose()

    rep = run_main(push)
    for problem in rep.source_errors:
        err(f"{name}: {problem}")
    where = rep.stats.endpoint
    total = rep.spans + rep.logs
    if not rep.delivered and total:
        why = rep.stats.last_error or f"no answer within {timeout_s:g}s"
        err(
            f"{name}: collector {where} unreachable or refusing ({why}); {rep.stats.dropped} of {total} "
            "records not delivered (nothing lost: the ledger and events.db keep them; rerun with --since)"
        )
        return EXIT_SOURCE
    running = f"; {rep.running_skipped} running run(s) left for when they end" if rep.running_skipped else ""
    sent = f"{rep.runs} run(s) as {rep.spans} span(s) and {rep.logs} log record(s)"
    print(f"exported {sent} to {where}{running}")
    return EXIT_SOURCE if rep.source_errors else EXIT_OK
