"""`opcockpit ledger migrate|status|copy`: the cockpit's ledger (SQLite file or PostgreSQL).

- migrate: apply every pending migration (the cockpit also does this on start); prints versions.
- status: backend, where (password masked), applied version per component, what is pending.
- copy --from sqlite:PATH --to postgresql://…: move an existing ledger without loss (ids kept,
  one transaction, counted afterwards); the destination must be empty.
Every failure is one line, exit 3 (the ledger is unusable), 2 for usage.
"""

from __future__ import annotations

from typing import Any

from opcockpit.cli.common import EXIT_OK, EXIT_SOURCE, EXIT_USAGE, err, load_or_exit


def _components() -> list[tuple[str, Any]]:
    """Every component with tables in the ledger: all of them migrate, and copy, together."""
    from opcockpit.adapters.ledger import alerts_schema, audit, events, queries

    return [(m.COMPONENT, m.MIGRATIONS) for m in (audit, alerts_schema, events, queries)]


def run_ledger(args: Any) -> int:
    from opcockpit.adapters.ledger.backend import LedgerTarget, connect, copy_ledger, migrate, schema_status
    from opcockpit.ports.ledger import LedgerError

    command = getattr(args, "ledger_command", None)
    try:
        if command == "copy":
            src_t, dst_t = LedgerTarget.parse(args.src), LedgerTarget.parse(args.dst)
            if src_t == dst_t:
                err("opcockpit ledger copy: --from and --to are the same ledger")
                return EXIT_USAGE
            src, dst = connect(src_t), connect(dst_t)
            try:
                counts = copy_ledger(src, dst, _components())
            finally:
                src.close()
                dst.close()
            total = sum(counts.values())
            print(f"copied {total} rows from {src_t.shown} to {dst_t.shown}: "
                  + ", ".join(f"{t} {n}" for t, n in counts.items()))  # fmt: skip
            return EXIT_OK
        if getattr(args, "ledger", None):
            target = LedgerTarget.parse(args.ledger)
        else:
            from opcockpit.wiring import ledger_target

            target = ledger_target(load_or_exit(args).config)
        db = connect(target)
        try:
            if command == "migrate":
                for name, migrations in _components():
                    migrate(db, name, migrations)
            status = schema_status(db)
        finally:
            db.close()
        print(f"ledger: {target.kind} {target.shown}")
        for name, migrations in _components():
            have, want = status.get(name, 0), len(migrations)
            note = "" if have >= want else f" ({want - have} pending: opcockpit ledger migrate)"
            print(f"  {name}: version {have} of {want}{note}")
        return EXIT_OK
    except LedgerError as exc:
        err(f"opcockpit ledger: {exc}")
        return EXIT_SOURCE
