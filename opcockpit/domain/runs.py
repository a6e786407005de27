"""Run health: runs by status, stuck runs, top errors, per-provider sandbox health.

Pure over `RunSummary` lists (from `EventsDbReader.runs`) and a `GroundTruth`, with an injected
`now` (reading events.db is `services.runs.load_run_health`). No Textual.

Runs have no status column in LEON (domain brief §7.1): the reader derives running / completed /
error / cancelled from the events. Here a "running" run whose last event is older than
`stuck_after_s` becomes "stuck" instead (the categories are disjoint, so they add up to the
total). The window is about activity: a run is counted when its last event (else its start) is
within `window_s` of `now`, so a run started yesterday that is still working is in today's
window. Retention keeps one run per thread, so these are "latest run per thread" statistics.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from operator import attrgetter

from opcockpit.domain.models import Convergence, GroundTruth, ProviderStatus

__all__ = [
    "ACTIVITY_PREFIX",
    "RUN_STATUSES",
    "ErrorGroup",
    "ProviderSandboxes",
    "RunHealth",
    "RunSummary",
    "StuckRun",
    "normalize_error",
    "provider_counts",
    "provider_sandboxes",
    "run_health",
]

RUN_STATUSES: tuple[str, ...] = ("running", "completed", "error", "cancelled", "stuck")
ACTIVITY_PREFIX = "activity_"  # LEON's activity streams share run_events; they are not runs
DEFAULT_WINDOW_S = 86400.0
DEFAULT_STUCK_AFTER_S = 600.0
_EXAMPLE_CHARS = 500
_SIGNATURE_CHARS = 200


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One run derived from its events.

    status: "running" (no run_done, no error/cancelled yet), "completed" (run_done, no error),
    "error" (an `error` event; `error` holds its data.error), "cancelled" (a `cancelled` event).
    error/cancelled win even before run_done lands (LEON writes run_done right after them);
    `ended_at` is the run_done time, None until it exists.
    """

    run_id: str
    thread_id: str
    status: str
    started_at: datetime | None  # run_start time, else the first event's
    ended_at: datetime | None
    last_event_at: datetime | None
    error: str | None
    event_count: int
    first_seq: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class StuckRun:
    run_id: str
    thread_id: str
    started_at: datetime | None
    last_event_at: datetime | None
    idle_s: float  # seconds since the last event
    event_count: int


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """Errors whose normalised text is equal: `signature` is that text, `example` one real message."""

    signature: str
    count: int
    last_seen: datetime | None
    example: str
    run_ids: tuple[str, ...]  # newest first, at most 10
    thread_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProviderSandboxes:
    """Sandbox counts and health of one provider, from a GroundTruth."""

    name: str
    kind: str
    status: str  # ProviderStatus value
    error: str | None
    age_s: float | None
    leases: int
    orphans: int
    by_convergence: dict[str, int]
    by_provider_state: dict[str, int]  # "-" for rows the provider did not list

    @property
    def healthy(self) -> bool:
        return self.status in (
            ProviderStatus.OK.value,
            ProviderStatus.DB_ONLY.value,
        ) and not self.by_convergence.get(Convergence.DIVERGED.value)


@dataclass(frozen=True, slots=True)
class RunHealth:
    generated_at: datetime
    window_s: float
    stuck_after_s: float
    by_status: dict[str, int]  # every RUN_STATUSES key, in that order
    total: int
    stuck: tuple[StuckRun, ...]  # longest idle first
    top_errors: tuple[ErrorGroup, ...]  # most frequent first
    providers: tuple[ProviderSandboxes, ...] = ()
    error: str | None = None  # events.db could not be read: run figures are unknown, not zero
    runs: tuple[RunSummary, ...] = field(default=(), repr=False)  # the runs counted, newest first

    @property
    def available(self) -> bool:
        return self.error is None


# --------------------------------------------------------------------------- error normalisation

# What must survive folding, because it is what an operator acts on (bug 11: `Error code: <n> -
# {'<str>': '<str>', …}` hid "529 overloaded"): HTTP status codes after a status-ish word or
# arrow, or before their reason phrase, and quoted strings that are dict keys or name a
# well-known error. All are low-cardinality, so grouping stays useful.
_STATUS = re.compile(
    r"(?i)((?:\b(?:code|status|http(?:/[\d.]+)?)|->|=>)\s*[:=]?\s*)([1-5]\d\d)(?![\d.])"
    r"|\b([1-5]\d\d)(?=\s+(?:too many requests|service unavailable|bad gateway|gateway timeout"
    r"|internal server error|not found|unauthori[sz]ed|forbidden|conflict|overloaded|bad request)\b)"
)
_KNOWN_WORDS = re.compile(
    r"(?i)overload|rate.?limit|too many requests|timeout|timed out|not.?found|unauthori[sz]ed"
    r"|forbidden|permission|authenticat|invalid|api.?error|internal|unavailable|quota|exceed"
    r"|refused|denied|conflict|gateway|^error$"
)
_QUOTED = re.compile(r"""'([^'\n]*)'(\s*:)?|"([^"\n]*)"(\s*:)?""")
_DICT_KEY = re.compile(r"[A-Za-z_][\w-]{0,39}")
_KEEP = "\x01"  # brackets a kept token's index (private-use chars, so no fold matches inside)


def _quoted(m: re.Match[str]) -> str:
    single = m.group(1) is not None
    body = m.group(1) if single else m.group(3)
    colon = m.group(2) if single else m.group(4)
    q = "'" if single else '"'
    if (colon and _DICT_KEY.fullmatch(body)) or (body and len(body) <= 80 and _KNOWN_WORDS.search(body)):
        return f"{q}{body}{q}{colon or ''}"
    return f"{q}<str>{q}{colon or ''}"


# Order matters: UUIDs first (they contain the other patterns), numbers last.
_FOLDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
        "<uuid>",
    ),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"]+"), "<url>"),
    (re.compile(r"(?<![\w.<>])(?:~|\.{1,2})?(?:/[\w.@+-]+)+/?"), "<path>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    # ids: an optional word prefix ("lease-", "cmd_") then 8+ alphanumerics mixing letters and
    # digits (LEON's hex ids, E2B/Daytona ids), or 12+ hex characters of any kind.
    (re.compile(r"\b([A-Za-z]+[-_])?(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{8,}\b"), r"\1<id>"),
    (re.compile(r"\b([A-Za-z]+[-_])?[0-9a-fA-F]{12,}\b"), r"\1<id>"),
    (re.compile(r"(?<![\w<])\d+(?:\.\d+)?"), "<n>"),
)
_SPACES = re.compile(r"\s+")
_RUN_ID = attrgetter("run_id")
_LAST_SEQ = attrgetter("last_seq")
_PROVIDER = attrgetter("provider")
_CONVERGENCE = attrgetter("convergence")
_PROVIDER_STATE = attrgetter("provider_state")


@lru_cache(maxsize=4096)  # run health groups every error every round; messages repeat
def normalize_error(message: str) -> str:
    """Fold the variable parts of an error (ids, numbers, paths, quoted strings) into placeholders,
    keeping what says what went wrong (HTTP status codes, dict keys, well-known error words).

    "Failed to pause lease lease-0e1f2a3b4c5d: Docker command timed out after 20.0s" ->
    "Failed to pause lease lease-<id>: Docker command timed out after <n>s";
    "Error code: 529 - {'type': 'error', 'error': {'type': 'overloaded_error', 'message': ...}}"
    keeps 529 and every word of it.
    """
    kept: list[str] = []

    def keep(text: str) -> str:
        kept.append(text)
        return f"{_KEEP}{chr(0xE000 + len(kept) - 1)}{_KEEP}"

    text = _SPACES.sub(" ", message).strip()
    text = _STATUS.sub(lambda m: (m.group(1) + keep(m.group(2))) if m.group(2) else keep(m.group(3)), text)
    text = _QUOTED.sub(lambda m: keep(_quoted(m)), text)
    for pattern, repl in _FOLDS:
        text = pattern.sub(repl, text)
    if kept:
        text = re.sub(f"{_KEEP}(.){_KEEP}", lambda m: _fold_kept(kept[ord(m.group(1)) - 0xE000]), text)
    return text[:_SIGNATURE_CHARS] if len(text) > _SIGNATURE_CHARS else text


def _fold_kept(token: str) -> str:
    # A kept quoted string still loses its ids and numbers ("rate limit for org-ab12cd34ef"):
    # only the quotes protected it from the whole-string fold.
    if token[:1] not in "'\"":
        return token
    for pattern, repl in _FOLDS:
        token = pattern.sub(repl, token)
    return token


def group_errors(
    items: Iterable[tuple[str, datetime | None, str, str]], *, top_n: int = 10
) -> tuple[ErrorGroup, ...]:
    """(message, when, run_id, thread_id) -> groups by normalised message, most frequent first
    (ties: most recent first, then signature, so the order is stable)."""
    acc: dict[str, list] = {}
    for message, when, run_id, thread_id in items:
        sig = normalize_error(message)
        g = acc.get(sig)
        if g is None:
            acc[sig] = [1, when, message, [run_id], [thread_id]]
            continue
        g[0] += 1
        if when is not None and (g[1] is None or when > g[1]):
            g[1], g[2] = when, message
        g[3].append(run_id)
        g[4].append(thread_id)
    groups = [
        ErrorGroup(
            signature=sig,
            count=n,
            last_seen=last,
            example=example[:_EXAMPLE_CHARS],
            run_ids=tuple(dict.fromkeys(runs))[:10],
            thread_ids=tuple(dict.fromkeys(threads))[:10],
        )
        for sig, (n, last, example, runs, threads) in acc.items()
    ]
    groups.sort(key=lambda g: (-g.count, -(g.last_seen.timestamp() if g.last_seen else 0.0), g.signature))
    return tuple(groups[:top_n]) if top_n > 0 else tuple(groups)


# --------------------------------------------------------------------------- run health


def run_health(
    runs: Iterable[RunSummary],
    now: datetime,
    *,
    window_s: float = DEFAULT_WINDOW_S,
    stuck_after_s: float = DEFAULT_STUCK_AFTER_S,
    top_n: int = 10,
    ground_truth: GroundTruth | None = None,
) -> RunHealth:
    """Classify the runs active within `window_s` of `now`; pure (no clock, no I/O)."""
    cutoff = now - timedelta(seconds=window_s)
    counts = dict.fromkeys(RUN_STATUSES, 0)
    stuck: list[StuckRun] = []
    errors: list[tuple[str, datetime | None, str, str]] = []
    kept: list[RunSummary] = []
    for run in runs:
        if run.run_id.startswith(ACTIVITY_PREFIX):
            continue  # per-thread activity streams are not runs
        last = run.last_event_at or run.started_at
        if last is not None and last < cutoff:
            continue
        kept.append(run)
        status = run.status
        if status == "running" and last is not None:
            idle = (now - last).total_seconds()
            if idle > stuck_after_s:
                status = "stuck"
                stuck.append(
                    StuckRun(
                        run.run_id, run.thread_id, run.started_at, run.last_event_at, idle, run.event_count
                    )
                )
        counts[status] = counts.get(status, 0) + 1
        if run.status == "error" and run.error:
            errors.append((run.error, run.ended_at or last, run.run_id, run.thread_id))
    stuck.sort(key=lambda s: (-s.idle_s, s.run_id))
    # (-last_seq, run_id) as two stable C-keyed sorts: a lambda per run was ~4 % of the profile at 10k.
    kept.sort(key=_RUN_ID)
    kept.sort(key=_LAST_SEQ, reverse=True)
    return RunHealth(
        generated_at=now,
        window_s=window_s,
        stuck_after_s=stuck_after_s,
        by_status=counts,
        total=len(kept),
        stuck=tuple(stuck),
        top_errors=group_errors(errors, top_n=top_n),
        providers=provider_sandboxes(ground_truth) if ground_truth is not None else (),
        runs=tuple(kept),
    )


ProviderCounts = tuple[dict[str, dict[str, int]], dict[str, dict[str, int]], Counter, Counter]


def provider_sandboxes(
    gt: GroundTruth, counts: ProviderCounts | None = None
) -> tuple[ProviderSandboxes, ...]:
    """Per-provider lease counts by convergence and provider state, plus orphans and health.

    `counts`: `provider_counts(gt)` already made for the same rows and orphans (a caller that
    sees the same row objects again reuses them; the providers' status and age still come from
    `gt`)."""
    by_conv, by_state, leases, orphans = counts if counts is not None else provider_counts(gt)
    out = []
    for p in sorted(gt.providers, key=lambda p: p.name):
        out.append(
            ProviderSandboxes(
                name=p.name,
                kind=p.kind,
                status=p.status.value,
                error=p.error,
                age_s=p.age_s,
                leases=leases.get(p.name, 0),
                orphans=orphans.get(p.name, 0),
                by_convergence=dict(sorted(by_conv.get(p.name, {}).items())),
                by_provider_state=dict(sorted(by_state.get(p.name, {}).items())),
            )
        )
    return tuple(out)


def provider_counts(gt: GroundTruth) -> ProviderCounts:
    """provider_sandboxes' counts over the rows and orphans (by convergence, by provider state,
    leases, orphans per provider).

    Counted in C (Counter over zipped columns), then folded per distinct (provider, value): each
    alert round asks for it over every row (issue 10: ~20k enum lookups per round at 10k)."""
    rows = gt.rows
    provs = list(map(_PROVIDER, rows))
    by_conv: dict[str, dict[str, int]] = {}
    for (prov, conv), n in Counter(zip(provs, map(_CONVERGENCE, rows), strict=True)).items():
        by_conv.setdefault(prov, {})[conv.value] = n
    by_state: dict[str, dict[str, int]] = {}
    for (prov, state), n in Counter(zip(provs, map(_PROVIDER_STATE, rows), strict=True)).items():
        s = by_state.setdefault(prov, {})
        key = state or "-"
        s[key] = s.get(key, 0) + n
    return by_conv, by_state, Counter(provs), Counter(map(_PROVIDER, gt.orphans))


def unavailable(
    now: datetime,
    error: str,
    *,
    window_s: float = DEFAULT_WINDOW_S,
    stuck_after_s: float = DEFAULT_STUCK_AFTER_S,
    ground_truth: GroundTruth | None = None,
) -> RunHealth:
    """Run health when events.db cannot be read: counts are unknown (zeros plus `error`)."""
    return RunHealth(
        generated_at=now,
        window_s=window_s,
        stuck_after_s=stuck_after_s,
        by_status=dict.fromkeys(RUN_STATUSES, 0),
        total=0,
        stuck=(),
        top_errors=(),
        providers=provider_sandboxes(ground_truth) if ground_truth is not None else (),
        error=error,
    )
