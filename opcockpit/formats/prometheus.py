"""Prometheus text exposition (format 0.0.4) for the node_exporter textfile collector.

`opcockpit snapshot --format prometheus > /var/lib/node_exporter/opcockpit.prom.$$ && mv ...`
Gauges only, no timestamps (the collector stamps them). Families and series come out in a fixed
order; label values are escaped per the format (backslash, double quote, newline). Series with
a zero value are emitted for every known provider / rule / run status, so a dashboard sees 0
rather than a gap.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from opcockpit.domain.alerts import RULES, Severity
from opcockpit.domain.models import GroundTruth, ProviderStatus
from opcockpit.domain.runs import RUN_STATUSES, RunHealth
from opcockpit.domain.text import safe_text

__all__ = ["render_prometheus"]


def _esc_label(value: str) -> str:
    # Provider names come from sandbox.db: control characters made visible (a .prom file gets
    # cat'ed), then the exposition format's own escapes.
    value = safe_text(value, single_line=False)
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _esc_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _num(v: float) -> str:
    if v != v:
        return "NaN"
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, help_text: str, series: Iterable[tuple[dict[str, str], float]]) -> None:
        self.lines.append(f"# HELP {name} {_esc_help(help_text)}")
        self.lines.append(f"# TYPE {name} gauge")
        for labels, value in series:
            if labels:
                body = ",".join(f'{k}="{_esc_label(v)}"' for k, v in labels.items())
                self.lines.append(f"{name}{{{body}}} {_num(value)}")
            else:
                self.lines.append(f"{name} {_num(value)}")


def render_prometheus(
    ground_truth: GroundTruth,
    run_health: RunHealth | None = None,
    alerts: Iterable[object] | None = None,
    *,
    now: datetime | None = None,
) -> str:
    """Gauges for one snapshot. `alerts` are `alert_store.Alert`s (firing ones count; muted ones
    are reported separately); `now` (default: the snapshot time) decides mute expiry."""
    gt = ground_truth
    now = now or gt.generated_at
    out = _Out()

    out.family(
        "opcockpit_snapshot_timestamp_seconds",
        "Time the ground truth was computed (unix seconds).",
        [({}, gt.generated_at.timestamp())],
    )

    counts: dict[tuple[str, str, str], int] = {}
    for r in gt.rows:
        k = (r.provider, r.provider_state or "unlisted", r.convergence.value)
        counts[k] = counts.get(k, 0) + 1
    out.family(
        "opcockpit_sandboxes",
        "Leases by provider, provider-reported state (unlisted: not in the listing) and convergence.",
        [({"provider": p, "state": s, "convergence": c}, n) for (p, s, c), n in sorted(counts.items())],
    )

    providers = sorted(gt.providers, key=lambda p: p.name)
    orphans: dict[str, int] = {p.name: 0 for p in providers if p.status is ProviderStatus.OK}
    for o in gt.orphans:
        orphans[o.provider] = orphans.get(o.provider, 0) + 1
    out.family(
        "opcockpit_orphans",
        "Instances at a provider that no lease accounts for.",
        [({"provider": p}, n) for p, n in sorted(orphans.items())],
    )

    out.family(
        "opcockpit_provider_up",
        "1 when the provider's latest listing succeeded (or it has no API and the DB is the truth).",
        [
            (
                {"provider": p.name, "kind": p.kind},
                1 if p.status in (ProviderStatus.OK, ProviderStatus.DB_ONLY) else 0,
            )
            for p in providers
        ],
    )
    # "Stale" is about the rows, not the kind of failure: a provider whose listing failed with no
    # earlier good one (error), or one never listed at all, has stale rows just as much as one
    # showing an older listing. Reading 0 there would tell a dashboard all is fresh.
    failed = {p.name for p in providers if p.status in (ProviderStatus.STALE, ProviderStatus.ERROR)}
    unhealthy = sorted({r.provider for r in gt.rows} - {p.name for p in providers})  # no health entry
    out.family(
        "opcockpit_provider_stale",
        "1 when the provider's rows are stale: its latest listing failed (status stale or error) or "
        "it was never listed.",
        [({"provider": p.name}, 1 if p.name in failed else 0) for p in providers]
        + [({"provider": name}, 1) for name in unhealthy],
    )
    out.family(
        "opcockpit_provider_status",
        "1 for the provider's current status (ok, stale, error, db_only), 0 for the others.",
        [
            ({"provider": p.name, "kind": p.kind, "status": s.value}, 1 if p.status is s else 0)
            for p in providers
            for s in ProviderStatus
        ],
    )
    out.family(
        "opcockpit_provider_listing_age_seconds",
        "Age of the listing behind the provider's rows.",
        [({"provider": p.name}, round(p.age_s, 3)) for p in providers if p.age_s is not None],
    )

    firing: dict[tuple[str, str], int] = {(r, s.value): 0 for r in RULES for s in Severity}
    muted: dict[tuple[str, str], int] = dict(firing)
    for a in alerts or ():
        if getattr(a, "state", None) != "firing":
            continue
        key = (str(a.rule), str(getattr(a.severity, "value", a.severity)))  # type: ignore[attr-defined]
        target = muted if a.is_muted(now) else firing  # type: ignore[attr-defined]
        target[key] = target.get(key, 0) + 1
    out.family(
        "opcockpit_alerts_firing",
        "Unmuted firing alerts by rule and severity.",
        [({"rule": r, "severity": s}, n) for (r, s), n in sorted(firing.items())],
    )
    out.family(
        "opcockpit_alerts_muted",
        "Muted firing alerts by rule and severity.",
        [({"rule": r, "severity": s}, n) for (r, s), n in sorted(muted.items())],
    )

    if run_health is not None:
        out.family(
            "opcockpit_runs_available",
            "1 when events.db could be read for run health.",
            [({}, 1 if run_health.error is None else 0)],
        )
        if run_health.error is None:
            out.family(
                "opcockpit_runs",
                "Latest runs per thread active in the window, by status (stuck: running, no event lately).",
                [({"status": s}, run_health.by_status.get(s, 0)) for s in RUN_STATUSES],
            )
            out.family("opcockpit_runs_window_seconds", "Run health window.", [({}, run_health.window_s)])
    return "\n".join(out.lines) + "\n"
