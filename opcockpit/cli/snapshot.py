"""`opcockpit snapshot`: one refresh, printed. The output is produced in full before anything is
written, so a source error leaves stdout empty (exit 3) instead of half a document."""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import sys
from collections.abc import Collection
from dataclasses import replace

from opcockpit.cli.common import CliExit, load_or_exit
from opcockpit.cli.main import EXIT_OK, EXIT_USAGE, err
from opcockpit.domain.models import GroundTruth
from opcockpit.domain.text import safe_text
from opcockpit.settings.config import CockpitConfig


async def collect_once(config: CockpitConfig, providers: Collection[str] | None = None) -> GroundTruth:
    from opcockpit.services.collect import FleetCollector

    collector = FleetCollector(config, providers=providers)
    try:
        return await collector.refresh()
    finally:
        await collector.aclose()


def run_collect(config: CockpitConfig, providers: Collection[str] | None = None) -> GroundTruth:
    """asyncio.run(collect_once(...)), but the main task returns None.

    asyncio.Runner's SIGINT bookkeeping makes signal.getsignal() build a ValueError whose message
    is the repr of a functools.partial holding the main task, and a finished task's repr includes
    its result: for a 10k-row GroundTruth that dataclass repr alone cost ~0.4 s (CPython 3.11).
    """
    box: list[GroundTruth] = []

    async def _main() -> None:
        box.append(await collect_once(config, providers))

    asyncio.run(_main())
    return box[0]


def only_providers(gt: GroundTruth, names: Collection[str]) -> GroundTruth:
    keep = set(names)
    return replace(
        gt,
        providers=tuple(p for p in gt.providers if p.name in keep),
        rows=tuple(r for r in gt.rows if r.provider in keep),
        orphans=tuple(o for o in gt.orphans if o.provider in keep),
    )


def check_provider_names(names: Collection[str], config: CockpitConfig, gt: GroundTruth) -> None:
    """`--provider NAME` must name a configured provider or one sandbox.db's leases name (those
    show as 'not configured'); anything else is a typo, and an empty fleet with exit 0 would say
    "nothing there". Checked after the read so the DB's names count; nothing is printed yet."""
    known = set(config.providers) | {r.provider for r in gt.rows}
    unknown = [n for n in dict.fromkeys(names) if n not in known]
    if not unknown:
        return
    configured = ", ".join(sorted(config.providers)) or "none"
    extra = sorted({r.provider for r in gt.rows} - set(config.providers))
    in_db = f"; in sandbox.db only: {', '.join(extra)}" if extra else ""
    which = ", ".join(repr(n) for n in unknown)
    plural = "s" if len(unknown) > 1 else ""
    err(safe_text(f"opcockpit: unknown provider{plural} {which} (configured: {configured}{in_db})"))
    raise CliExit(EXIT_USAGE)


def format_snapshot(gt: GroundTruth, fmt: str, *, width: int | None = None) -> str:
    if fmt == "json":
        from opcockpit.formats.serialize import dumps_json

        return escape_c1(dumps_json(gt)) + "\n"
    if fmt == "ndjson":
        from opcockpit.formats.serialize import iter_ndjson

        return escape_c1("".join(line + "\n" for line in iter_ndjson(gt)))
    if fmt == "csv":
        from opcockpit.formats.serialize import csv_text

        return csv_text(gt)
    import io

    from opcockpit.formats.table import render_table

    buf = io.StringIO()
    render_table(gt, buf, width=width or _terminal_width())
    return buf.getvalue()


_C1 = re.compile("[\x7f-\x9f]")


def escape_c1(text: str) -> str:
    """JSON text with DEL and C1 controls (8-bit CSI/OSC) written as \\u escapes.

    The encoder (ensure_ascii=False) escapes only U+0000..U+001F; U+007F..U+009F can only occur
    inside JSON strings, where the escape is lossless. The search runs in C; clean output is as is.
    """
    if _C1.search(text) is None:
        return text
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _terminal_width() -> int:
    import shutil

    return max(80, shutil.get_terminal_size((160, 24)).columns)


def run_snapshot(args: argparse.Namespace) -> int:
    # ~100k acyclic records are built here; the cyclic GC would only rescan them (-60 ms at 10k).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run_snapshot(args)
    finally:
        if was_enabled:
            gc.enable()


def _with_alerts(
    gt: GroundTruth, config: CockpitConfig, args: argparse.Namespace
) -> tuple[str, list[str], int]:
    """snapshot_output (alerts_cli), surviving a broken ledger.

    The ledger (alert state, mutes, acks, hold-time starts) is the cockpit's own file; when it
    cannot be opened, read or written, the fleet is still printed and one warning names the file.
    `--check` then evaluates against a throwaway in-memory ledger: conditions without a hold time
    still fire; hold times, mutes and acks are unknown; notifications are not sent (nothing could
    remember they were, so every cron run would send them again). Source errors still propagate.
    """
    from opcockpit.cli.alerts_cli import snapshot_output
    from opcockpit.cli.common import ledger_fault

    check = bool(getattr(args, "check", False))
    ledger = getattr(args, "ledger", None)
    try:
        return snapshot_output(gt, config, args.format, check=check, width=args.width, ledger_path=ledger)
    except Exception as exc:
        fault = ledger_fault(exc, ledger)
        if fault is None:
            raise
    what = "; --check evaluated without it (hold times, mutes and acks unknown; no notifications sent)"
    err(safe_text(f"opcockpit: warning: {fault}{what if check else ''}"))
    quiet = _without_notifications(config)
    return snapshot_output(gt, quiet, args.format, check=check, width=args.width, ledger_path=":memory:")


def _without_notifications(config: CockpitConfig) -> CockpitConfig:
    alerts = getattr(config, "alerts", None)
    if alerts is None:
        return config
    return config.model_copy(update={"alerts": alerts.model_copy(update={"webhook": None, "command": None})})


def _run_snapshot(args: argparse.Namespace) -> int:
    loaded = load_or_exit(args)
    for warning in loaded.warnings:
        err(safe_text(f"opcockpit: warning: {warning}"))
    names = args.provider or None
    gt = run_collect(loaded.config, names)
    for problem in gt.db_problems:
        err(f"opcockpit: warning: sandbox.db: {safe_text(problem)}")
    if names:
        check_provider_names(names, loaded.config, gt)
        gt = only_providers(gt, names)
    if getattr(args, "check", False) or args.format == "prometheus":
        # Alerts (issue 6) own these: rules evaluated into the ledger, gauges for node_exporter.
        text, notes, code = _with_alerts(gt, loaded.config, args)
        sys.stdout.write(text)
        sys.stdout.flush()
        for line in notes:
            err(safe_text(line))
        return code
    text = format_snapshot(gt, args.format, width=args.width)
    sys.stdout.write(text)
    sys.stdout.flush()
    return EXIT_OK
