"""`opcockpit events`: the cockpit's event ledger, headless (newest first).

Filters: --lease --thread --provider --type (repeatable) --since (an age like 1h / 30m / 7d, or an
ISO time; naive = local) --limit. Formats: table (terminal-safe), json (one array), ndjson (one
event per line: for jq and log shippers). The ledger is --ledger (a path, sqlite:PATH or a
postgresql:// URL), else $OPCOCKPIT_LEDGER (either), else the XDG data dir; a ledger file that does
not exist yet is empty (and is not created). A ledger that cannot be read: one line on stderr
naming it (password masked), exit 3.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from opcockpit.cli.common import EXIT_OK, EXIT_SOURCE, EXIT_USAGE, err
from opcockpit.domain.events import EVENT_TYPES, Event, EventQuery
from opcockpit.domain.text import one_line, safe_text
from opcockpit.domain.timeutil import parse_duration

__all__ = ["event_change", "parse_since", "run_events"]


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """'1h' / '30m' / '7d' ago, or an ISO time (naive = local). ValueError with one line."""
    t = text.strip()
    if t and not t.replace(".", "").isdigit():  # a bare number would be an ISO year, not minutes
        try:
            return (now or datetime.now(UTC)) - parse_duration(t)
        except ValueError:
            pass
    try:
        when = datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(f"--since {text!r}: not an ISO time or an age like 30m, 2h, 7d") from None
    return when if when.tzinfo else when.astimezone()


def event_change(e: Event) -> str:
    """One line saying what changed ('converged → diverged', 'running → paused', the error)."""
    b, a = e.before, e.after
    for attr in ("convergence", "state", "status"):
        bv, av = getattr(b, attr, None), getattr(a, attr, None)
        if bv is not None or av is not None:
            change = f"{bv or '∅'} → {av or '∅'}"
            extra = getattr(a, "error", None) or getattr(a, "summary", None) or e.data.get("reason")
            if isinstance(a, object) and getattr(a, "action", None):
                change = f"{a.action}: {change}"  # type: ignore[union-attr]
            return change + (f" ({extra})" if extra else "")
    return json.dumps(e.data, default=str, sort_keys=True) if e.data else ""


def _subject(e: Event) -> str:
    if e.lease_id:
        return e.lease_id
    if e.instance_id:
        return f"{e.provider}/{e.instance_id}"
    return e.provider or "-"


def _table(events: list[Event]) -> str:
    rows = [("OBSERVED", "TYPE", "SUBJECT", "THREAD", "SOURCE", "CHANGE")]
    for e in events:
        at = e.observed_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        rows.append(
            (at, e.type, safe_text(_subject(e)), safe_text(e.thread_id or "-"), e.source.value,
             one_line(event_change(e), 160))
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    out = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5] for r in rows]
    text = "\n".join(line.rstrip() for line in out) + "\n"
    return text if events else text + "(no events recorded)\n"


def run_events(args: Any) -> int:
    from opcockpit.adapters.ledger.backend import LedgerTarget
    from opcockpit.adapters.ledger.events import EventLog
    from opcockpit.ports.ledger import LedgerError

    types = tuple(getattr(args, "type", None) or ())
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        err(safe_text(f"opcockpit events: unknown --type {', '.join(unknown)} (see docs/events.md)"))
        return EXIT_USAGE
    try:
        since = parse_since(args.since) if getattr(args, "since", None) else None
    except ValueError as exc:
        err(safe_text(f"opcockpit events: {exc}"))
        return EXIT_USAGE
    limit = getattr(args, "limit", 200)
    if limit is not None and limit < 1:
        err("opcockpit events: --limit must be >= 1")
        return EXIT_USAGE
    target = LedgerTarget.parse(getattr(args, "ledger", None) or None)
    q = EventQuery(
        lease_id=args.lease, thread_id=args.thread, provider=args.provider, types=types, since=since,
        limit=limit,
    )  # fmt: skip
    events: list[Event] = []
    if target.path is None or target.path.exists():  # a read command never creates a ledger file
        log = EventLog(target)
        try:
            events = log.query(q)
        except LedgerError as exc:
            err(safe_text(f"opcockpit: {exc}"))
            return EXIT_SOURCE
        finally:
            log.close()
    fmt = str(getattr(args, "format", "table"))
    if fmt == "json":
        sys.stdout.write(json.dumps([e.as_dict() for e in events], indent=2) + "\n")
    elif fmt == "ndjson":
        sys.stdout.write("".join(json.dumps(e.as_dict()) + "\n" for e in events))
    else:
        sys.stdout.write(_table(events))
    sys.stdout.flush()
    return EXIT_OK
