"""`opcockpit pause|resume|destroy|adopt TARGET...` and `opcockpit audit`: operator actions, headless.

Each command takes one fresh picture of the fleet (what the operator "sees"), resolves the targets
in it, asks for confirmation where needed, executes through the core `Operations` API (which
re-checks every target against the truth at action time) and then waits until every target has
converged (or `--timeout`).

Exit codes: 0 every target converged (a dry run: every target would be acted on); 2 usage error,
unresolvable or ambiguous target, or destroy refused without --yes and without a terminal;
3 a source could not be read; 4 at least one target refused, failed, timed out or has an unknown
outcome, or the audit ledger cannot be written (then nothing runs); 5 the operator declined the
confirmation (nothing was changed); 130 interrupted (SIGINT), 143 terminated (SIGTERM): running
actions complete their audit rows as "interrupted" first.

Wiring: `opcockpit.cli.main` registers these with `add_subparsers(sub)` and dispatches to
`args.func(args)`; until then `python -m opcockpit.cli.ops ...` runs them standalone.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from opcockpit.cli.common import EXIT_OK, EXIT_USAGE, UsageError, err, say_interrupted
from opcockpit.domain.exit_codes import ExitCode

if TYPE_CHECKING:
    from opcockpit.services.operations import Operation, Plan

EXIT_NOT_CONVERGED = ExitCode.NOT_CONVERGED
EXIT_DECLINED = ExitCode.DECLINED
ACTIONS = ("pause", "resume", "destroy", "adopt")


# --------------------------------------------------------------------------- actions


def run_action(args: Any) -> int:
    from opcockpit.cli.common import load_or_exit
    from opcockpit.wiring import build_cockpit, run_main

    loaded = load_or_exit(args)
    for warning in loaded.warnings:
        err(f"opcockpit: warning: {warning}")
    cockpit = build_cockpit(loaded.config, read_only=bool(args.read_only))

    async def _main() -> int:
        # SIGINT and SIGTERM cancel the action instead of killing the process: each running
        # operation then completes its audit row as "interrupted" (bounded) before we exit.
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        got: list[int] = []

        def interrupt(signum: int) -> None:
            if not got:  # once: a second signal must not cancel the audit writes themselves
                got.append(signum)
                task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, interrupt, sig)
        try:
            return await _act(args, cockpit)
        except asyncio.CancelledError:
            if not got:
                raise
            name = signal.Signals(got[0]).name
            say_interrupted(
                f"opcockpit: interrupted by {name}: actions in flight were recorded as interrupted "
                "(their outcome at the provider is unknown); see `opcockpit audit`"
            )
            return 128 + got[0]
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    return run_main(_main)


async def _act(args: Any, cockpit: Any) -> int:
    from opcockpit.services.operations import OpStatus, TargetError

    collector, audit, ops = cockpit.collector, cockpit.audit, cockpit.operations
    try:
        gt = await collector.refresh()
        try:
            plan = ops.plan(
                args.op_action, args.targets, seen=gt, thread_id=getattr(args, "thread", None),
                dry_run=args.dry_run,
            )  # fmt: skip
        except TargetError as exc:
            err(f"opcockpit: {exc}")
            return EXIT_USAGE
        if plan.errors:
            for problem in plan.errors:
                err(f"opcockpit: {problem}")
            return EXIT_USAGE
        if not (args.dry_run or ops.read_only) and plan.allowed:
            # No action without an audit record: find out now, before asking or touching anything.
            try:
                await asyncio.to_thread(audit.check)
            except Exception as exc:
                err(
                    f"opcockpit: the audit ledger {audit.path} cannot be written ({_one_line(exc)}); "
                    "refusing to act: no action runs without an audit record"
                )
                return EXIT_NOT_CONVERGED
        if plan.action.value == "destroy" and not (args.yes or args.dry_run or ops.read_only):
            code = _confirm_destroy(plan)
            if code is not None:
                return code
        results = await ops.execute(plan, dry_run=args.dry_run)
        pending = [r for r in results if r.status is OpStatus.PENDING]
        if pending:
            await ops.wait_converged(pending, args.wait_timeout)
        for r in results:
            if r.status is OpStatus.UNKNOWN:
                err(f"opcockpit: {r.key}: {r.message}")
        want = OpStatus.PLANNED if args.dry_run else OpStatus.CONVERGED
        code = EXIT_OK if results and all(r.status is want for r in results) else EXIT_NOT_CONVERGED
        _print_results(results, args, read_only=ops.read_only, code=code)
        return code
    finally:
        await cockpit.aclose()


def _one_line(exc: BaseException) -> str:
    from opcockpit.settings.config import scrub

    return scrub(" ".join((str(exc) or type(exc).__name__).split()))


def _confirm_destroy(plan: Plan, stdin: IO[str] | None = None, out: IO[str] | None = None) -> int | None:
    """Ask on a terminal (None: go ahead). Names provider, instance, lease and thread per target;
    a bulk destroy requires typing the number of targets."""
    stdin = stdin or sys.stdin
    out = out or sys.stderr
    targets = plan.allowed
    if not targets:
        return None  # every item is refused anyway; execute reports why
    n = len(targets)
    if not stdin.isatty():
        err(
            f"opcockpit: refusing to destroy {n} target{'s' if n != 1 else ''} without --yes "
            "(stdin is not a terminal, so there is no one to ask)"
        )
        return EXIT_USAGE
    out.write(f"About to DESTROY {n} sandbox{'es' if n != 1 else ''} (this cannot be undone):\n")
    for t in targets:
        state = t.seen_provider_state or "not listed"
        out.write(f"  - {t.describe()} [{state}]\n")
    for item in plan.refused:
        out.write(f"  (refused, will not be touched: {item.target.describe()}: {item.gate.reason})\n")
    if n == 1:
        out.write("Destroy it? [y/N] ")
        out.flush()
        ok = stdin.readline().strip().lower() in ("y", "yes")
    else:
        out.write(f"Type the number of targets ({n}) to destroy them all: ")
        out.flush()
        ok = stdin.readline().strip() == str(n)
    if not ok:
        out.write("Not confirmed: nothing was destroyed.\n")
        return EXIT_DECLINED
    return None


def _print_results(results: list[Operation], args: Any, *, read_only: bool, code: int) -> None:
    if args.format == "json":
        doc = {
            "action": args.op_action,
            "dry_run": bool(args.dry_run),
            "read_only": read_only,
            "exit_code": code,
            "operations": [r.as_dict() for r in results],
        }
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        sys.stdout.flush()
        return
    rows = [("ACTION", "TARGET", "RESULT", "OUTCOME", "DETAIL")]
    for r in results:
        target = r.target.key + (f" -> {r.new_lease_id}" if r.new_lease_id else "")
        detail = (
            r.message if r.status.value in ("converged", "planned", "pending") else (r.error or r.message)
        )
        rows.append((r.action.value, target, r.status.value, r.outcome or "-", detail or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
             for row in rows]  # fmt: skip
    ok = sum(1 for r in results if r.status.value in ("converged", "planned"))
    lines.append(f"{ok}/{len(results)} {'would be acted on' if args.dry_run else 'converged'}"
                 + (" (read-only mode)" if read_only else ""))  # fmt: skip
    sys.stdout.write("\n".join(line.rstrip() for line in lines) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- audit


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """'30m' / '2h' / '7d' / '45s' / '1h30m' ago (the domain's durations), or an ISO time
    (naive = local)."""
    from opcockpit.domain.timeutil import parse_duration

    if not text.strip().replace(".", "").isdigit():  # a bare number is an ISO year, not minutes
        try:
            return (now or datetime.now(UTC)) - parse_duration(text)
        except ValueError:
            pass
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"opcockpit audit: --since {text!r}: not an ISO time or an age like 30m, 2h, 7d"
        ) from None
    return when if when.tzinfo else when.astimezone()


def run_audit(args: Any) -> int:
    from opcockpit.adapters.ledger.audit import STARTED, list_audit

    since = parse_since(args.since) if args.since else None
    entries = list_audit(args.limit, since, args.target)
    if args.format == "json":
        sys.stdout.write(json.dumps([e.as_dict() for e in entries], indent=2, default=str) + "\n")
        return EXIT_OK
    rows = [("AT", "OPERATOR", "ACTION", "TARGET", "RESULT", "CONVERGENCE", "MS", "ERROR")]
    for e in entries:
        target = e.lease_id or (f"{e.provider}/{e.instance_id}" if e.instance_id else "-")
        at = e.at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        action = e.action + (" (dry run)" if e.dry_run else "")
        result, error = e.result, e.error or ""
        if result == STARTED:  # begun before it acted, never completed: killed or crashed mid-way
            result = "started (unsettled)"
            error = error or "never completed (killed or crashed mid-action): check the provider"
        rows.append((at, e.operator, action, target, result, e.convergence or "-",
                     str(e.duration_ms if e.duration_ms is not None else "-"), error))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(7)]
    out = ["  ".join(c.ljust(w) for c, w in zip(r[:7], widths, strict=True)) + "  " + r[7] for r in rows]
    sys.stdout.write("\n".join(line.rstrip() for line in out) + "\n")
    if not entries:
        sys.stdout.write("(no actions recorded)\n")
    return EXIT_OK


# --------------------------------------------------------------------------- standalone entry


if __name__ == "__main__":
    # `python -m opcockpit.cli.ops ARGS` is `opcockpit ARGS` (scripts and tests still call it).
    import runpy

    runpy.run_module("opcockpit.cli", run_name="__main__")
