"""`opcockpit demo`: the demo environment (opcockpit.demo.runtime) under the CLI.

`demo --snapshot` is `opcockpit snapshot` on the demo's config (every format, `--check`, the same
exit codes); without it the live cockpit runs on the demo fleet. The demo's ledger is one file
beside the generated fleet (wiring.build_cockpit(demo=True)), never the operator's.
"""

from __future__ import annotations

from typing import Any

from opcockpit.cli.common import EXIT_USAGE, err


def run_demo_command(args: Any) -> int:
    from opcockpit.demo import runtime

    for flag, value in (("--db", args.db), ("--events-db", args.events_db)):
        if value is not None:
            err(f"opcockpit demo: {flag} does not apply: the demo generates its own databases")
            return EXIT_USAGE
    if not args.snapshot:
        from opcockpit.wiring import tune_for_long_run

        trimmer = tune_for_long_run()  # as the live cockpit: before the doubles' threads exist
        try:
            return runtime.run_demo(
                seed=args.seed, leases=args.leases, refresh_s=args.refresh, read_only=bool(args.read_only)
            )
        finally:
            if trimmer is not None:
                trimmer.stop()
    from opcockpit.cli.snapshot import run_snapshot

    def snapshot(env: runtime.DemoEnvironment) -> int:
        args.provider = None
        return run_snapshot(args, config=env.config, demo=True)

    return runtime.in_demo(snapshot, seed=args.seed, leases=args.leases)
