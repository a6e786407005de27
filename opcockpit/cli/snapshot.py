"""`opcockpit snapshot`: one refresh, printed. The output is produced in full before anything is
written, so a source error leaves stdout empty (exit 3) instead of half a document."""

from __future__ import annotations

import gc
import sys
from collections.abc import Collection
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opcockpit.cli.common import EXIT_OK, EXIT_USAGE, CliExit, err, load_or_exit
from opcockpit.cli.output import escape_c1, format_snapshot, json_document, write_out
from opcockpit.domain.models import GroundTruth
from opcockpit.domain.text import safe_text
from opcockpit.settings.config import CockpitConfig

__all__ = ["collect_once", "escape_c1", "format_snapshot", "run_collect", "run_snapshot"]

if TYPE_CHECKING:
    from opcockpit.wiring import Cockpit


async def collect_once(cockpit: Cockpit) -> GroundTruth:
    """One refresh of `cockpit`'s collector, then the cockpit is closed."""
    try:
        return await cockpit.collector.refresh()
    finally:
        await cockpit.aclose()


def run_collect(cockpit: Cockpit) -> GroundTruth:
    """collect_once under wiring.run_main (the asyncio.run start-up trick, kept in one place)."""
    from opcockpit.wiring import run_main

    return run_main(lambda: collect_once(cockpit))


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


def run_snapshot(args: Any, *, config: CockpitConfig | None = None, demo: bool = False) -> int:
    """`opcockpit snapshot`; `opcockpit demo --snapshot` passes the demo's `config` and `demo`
    (the ledger beside the demo fleet) and is otherwise this very path."""
    # ~100k acyclic records are built here; the cyclic GC would only rescan them (-60 ms at 10k).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run_snapshot(args, config, demo=demo)
    finally:
        if was_enabled:
            gc.enable()


def _with_alerts(
    gt: GroundTruth, config: CockpitConfig, args: Any, ledger: Any
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


def _run_snapshot(args: Any, config: CockpitConfig | None, *, demo: bool) -> int:
    from opcockpit.wiring import build_cockpit

    if config is None:
        loaded = load_or_exit(args)
        for warning in loaded.warnings:
            err(safe_text(f"opcockpit: warning: {warning}"))
        config = loaded.config
    names = getattr(args, "provider", None) or None
    cockpit = build_cockpit(config, read_only=True, providers=names, demo=demo, one_shot=True)
    gt = run_collect(cockpit)  # the collector appends what changed since the last run (history)
    history_error = getattr(cockpit.collector, "ledger_error", None)
    for problem in gt.db_problems:
        err(f"opcockpit: warning: sandbox.db: {safe_text(problem)}")
    if names:
        check_provider_names(names, config, gt)
        gt = only_providers(gt, names)
    if getattr(args, "check", False) or args.format == "prometheus":
        # Alerts (issue 6) own these: rules evaluated into the ledger, gauges for node_exporter.
        text, notes, code = _with_alerts(gt, config, args, cockpit.ledger_at)  # [ledger] url too
        sys.stdout.write(text)
        sys.stdout.flush()
        for line in notes:
            err(safe_text(line))
        return code
    if history_error:  # (--check above names an unusable ledger itself: one warning, not two)
        err(safe_text(f"opcockpit: warning: {history_error}; history not recorded"))
    if args.format == "json":
        write_out(json_document(gt))
        return EXIT_OK
    sys.stdout.write(format_snapshot(gt, args.format, width=args.width))
    sys.stdout.flush()
    return EXIT_OK
