"""`opcockpit snapshot --format table`: provider health lines + a rich table of rows + orphans.

Rich is allowed on the headless path (Textual is not); it is imported here only, so the json/csv
formats never pay for it. Every string from sandbox.db or a provider is passed through
`textsafe.safe_text` and handed to Rich as `Text` (never as markup): a `last_error` holding
`ESC ]0;title BEL` must show, not retitle the operator's terminal.
"""

from __future__ import annotations

from datetime import datetime
from typing import IO, TYPE_CHECKING

from opcockpit.domain.models import GroundTruth, ProviderHealth
from opcockpit.domain.text import safe_text
from opcockpit.domain.timeutil import age_s, fmt_age

if TYPE_CHECKING:
    from rich.text import Text

_CONV_STYLE = {
    "converged": "green",
    "diverged": "bold red",
    "unbound": "dim",
    "transitioning": "yellow",
    "stale": "magenta",
    "unknown": "yellow",
}
_STATUS_STYLE = {"ok": "green", "error": "bold red", "stale": "magenta", "db_only": "cyan"}


def age(then: datetime | None, now: datetime) -> str:
    """Age of `then` at `now` in the one age format (domain.timeutil.fmt_age); '-' when unknown."""
    seconds = age_s(then, now)
    # A timestamp in the future (clock skew between hosts) reads as "0s", never negative.
    return fmt_age(None if seconds is None else max(0.0, seconds))


def provider_line(p: ProviderHealth, now: datetime) -> str:
    status = p.status.value
    count = "-" if p.instance_count is None else str(p.instance_count)
    parts = [f"{p.name} ({p.kind}): {status}", f"instances={count}"]
    if p.listed_at is not None:
        parts.append(f"listed {age(p.listed_at, now)} ago")
    if p.error:
        parts.append(f"error: {p.error}")
    return "  ".join(parts)


def render_table(gt: GroundTruth, file: IO[str], *, width: int | None = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=file, width=width, highlight=False, soft_wrap=False)
    now = gt.generated_at
    db = gt.db_path or "?"
    stamp = f"{gt.generated_at:%Y-%m-%d %H:%M:%SZ}"
    console.print(Text(safe_text(f"sandbox.db {db} ({gt.schema_variant or '?'})  generated {stamp}")))
    for p in gt.providers:
        style = _STATUS_STYLE.get(p.status.value, "")
        console.print(Text(safe_text("  " + provider_line(p, now)), style=style))

    table = Table(show_edge=False, pad_edge=False, header_style="bold", expand=False)
    for col, kw in (
        ("PROVIDER", {}),
        ("THREAD", {"overflow": "ellipsis", "max_width": 22}),
        ("LEASE", {"no_wrap": True}),
        ("INSTANCE", {"overflow": "ellipsis", "max_width": 20}),
        ("DESIRED", {}),
        ("OBSERVED", {}),
        ("PROVIDER", {}),
        ("CONVERGENCE", {}),
        ("ACTIVE", {"justify": "right"}),
        ("REASON", {"overflow": "ellipsis", "ratio": 1, "min_width": 20}),
    ):
        table.add_column(col, **kw)
    for r in gt.rows:
        conv = r.convergence.value
        if r.stale_age_s is not None:
            conv = f"{conv} {age_seconds(r.stale_age_s)}"
        table.add_row(
            _cell(r.provider),
            _cell(r.thread_id or "-"),
            _cell(r.lease_id),
            _cell(r.instance_id or "-"),
            _cell(r.desired_state),
            _cell(r.observed_state),
            _cell(r.provider_state or "-"),
            Text(conv, style=_CONV_STYLE.get(r.convergence.value, "")),
            age(r.last_active, now),
            _cell(r.reason),
        )
    console.print(table)
    console.print(Text(f"{len(gt.rows)} leases, {len(gt.orphans)} orphans", style="bold"))
    if gt.orphans:
        ot = Table(title="orphans", show_edge=False, pad_edge=False, header_style="bold")
        for col in ("PROVIDER", "INSTANCE", "NAME", "STATE", "CLAIMED LEASE", "CLAIM", "CREATED"):
            ot.add_column(col, overflow="ellipsis")
        for o in gt.orphans:
            ot.add_row(
                _cell(o.provider),
                _cell(o.instance_id),
                _cell(o.name or "-"),
                _cell(o.provider_state),
                _cell(o.claimed_lease_id or "-"),
                _cell(o.claim or "-"),
                age(o.created_at, now),
            )
        console.print(ot)


def _cell(value: object) -> Text:
    """Untrusted text as a table cell: control characters visible, no markup."""
    from rich.text import Text

    return Text(safe_text(value))


def age_seconds(s: float) -> str:
    return fmt_age(s)
