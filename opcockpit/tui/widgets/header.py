"""Two-line status header: fleet counts by convergence and provider health, with ages.

Ages are computed from an injected clock so snapshots are deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime

from rich.style import Style
from rich.text import Span, Text
from textual.widgets import Static

from opcockpit.domain.clock_skew import FutureStamps, future_timestamp_warning
from opcockpit.domain.models import Convergence, GroundTruth, ProviderStatus
from opcockpit.domain.text import safe_text
from opcockpit.domain.timeutil import fmt_age
from opcockpit.tui.rows import GLYPH, counts

_CONV_STYLE = {
    Convergence.CONVERGED: "green",
    Convergence.DIVERGED: "bold red",
    Convergence.UNBOUND: "dim",
    Convergence.TRANSITIONING: "cyan",
    Convergence.STALE: "yellow",
    Convergence.UNKNOWN: "magenta",
}
_PROVIDER = {
    ProviderStatus.OK: ("✓", "ok", "green"),
    ProviderStatus.ERROR: ("✗", "ERROR", "bold red"),
    ProviderStatus.STALE: ("~", "STALE", "yellow"),
    ProviderStatus.DB_ONLY: ("·", "db-only", "dim"),
}


@dataclass(frozen=True, slots=True)
class HeaderState:
    gt: GroundTruth | None
    now: datetime
    last_refresh: datetime | None  # wall time of the last successful refresh
    last_duration_s: float | None
    frozen: bool
    read_only: bool
    banner: str | None
    error: str | None  # last refresh failure (sandbox.db unreadable, ...)
    dropped_ticks: int = 0
    pending_ops: int = 0  # operator actions awaiting confirmation by an observation
    alerts: Mapping[str, int] | None = None  # unmuted firing alerts by severity; None: alerts off
    ledger: str | None = None  # "ledger unavailable: <file>: <reason>" (alerts/audit off, fleet on)
    export_drops: int = 0  # OTLP records dropped (queue full, collector unreachable): said when > 0
    # Rows per convergence, kept by the app as rows change (the header redraws every second:
    # counting 10k rows each time was ~3 % of a core); None: counted from `gt` here.
    counts: Mapping[str, int] | None = None
    context: str | None = None  # the `[contexts.<name>]` in effect (issue 12): always said
    # The future-timestamp warning kept by change over `gt`'s rows (the app feeds it as rows
    # change); None: computed from `gt` here (a walk over every row per new picture).
    skew: FutureStamps | None = None


def _age(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "never"
    return fmt_age(max((now - since).total_seconds(), 0))


def short_banner(banner: str) -> str:
    """The banner's first phrase ("DEMO" of "DEMO · seed 7 · ..."): what is left when space is short."""
    return banner.split(" · ", 1)[0]


def _counts_line(s: HeaderState, words: bool, banner: str | None) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" opcockpit ", style="bold reverse")
    if s.context:
        t.append(f" ctx:{safe_text(s.context)} ", style="bold reverse blue")
    if s.read_only:
        t.append(" RO ", style="bold reverse yellow")
    if banner:
        t.append(f" {banner} ", style="bold reverse magenta")
    if s.frozen:
        t.append(" FROZEN ", style="bold reverse cyan")
    if s.pending_ops:
        t.append(f" ⧗{s.pending_ops} pending ", style="bold reverse blue")
    if s.alerts is not None:
        _alert_badge(t, s.alerts, words)
    if s.gt is None:
        # A failed first refresh is not "waiting": the reason is shown whole under the header.
        waiting = "  no picture: refresh failed (below)" if s.error else "  waiting for the first refresh…"
        t.append(waiting, style="bold red" if s.error else "italic")
        return t
    gt = s.gt
    t.append(f" leases {len(gt.rows)}", style="bold")
    c = s.counts if s.counts is not None else counts(gt)
    for conv in Convergence:
        n = c.get(conv.value, 0)
        if n or conv in (Convergence.CONVERGED, Convergence.DIVERGED):
            label = f" {GLYPH[conv]} {conv.value} {n}" if words else f" {GLYPH[conv]}{n}"
            t.append(label, style=_CONV_STYLE[conv] if n else "dim")
    t.append(f"  orphans {len(gt.orphans)}", style="bold red" if gt.orphans else "dim")
    return t


def _alert_badge(t: Text, alerts: Mapping[str, int], words: bool) -> None:
    """Unmuted firing alerts by severity, most severe first; the glyph survives NO_COLOR."""
    firing = [(sev, n) for sev, n in alerts.items() if n]
    if not firing:
        t.append(" ✓ no alerts" if words else " ⚠0", style="dim")
        return
    style = "bold reverse red" if alerts.get("critical") else "bold reverse yellow"
    parts = [f"{n} {sev}" if words else f"{n}{sev[0]}" for sev, n in firing]
    t.append(f" ⚠ {' '.join(parts)} ", style=style)


def _health_line(s: HeaderState, verbose: bool) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    if s.last_refresh is None:
        t.append(" refreshed never", style="dim")
    else:
        took = f" in {s.last_duration_s:.1f}s" if s.last_duration_s is not None and verbose else ""
        t.append(f" refreshed {_age(s.last_refresh, s.now)} ago{took}", style="dim")
    if s.dropped_ticks:
        dropped = f" ({s.dropped_ticks} slow ticks dropped)" if verbose else f" (-{s.dropped_ticks})"
        t.append(dropped, style="dim")
    if s.export_drops:
        drops = f"OTLP export dropped {s.export_drops}" if verbose else f"otlp -{s.export_drops}"
        t.append(f"  ✗ {drops}", style="bold yellow")
    if s.error:
        t.append(f"  ✗ {safe_text(s.error)}", style="bold red")
    if s.ledger:
        t.append(f"  ✗ {safe_text(s.ledger)}", style="bold yellow")
    if s.gt is not None and _future_warning(s):
        t.append("  ⚠ DB times in the future: set [sources] timezone", style="bold yellow")
    if s.gt is not None:
        t.append(" │", style="dim")
        for p in s.gt.providers:
            glyph, word, style = _PROVIDER.get(p.status, ("?", str(p.status), "magenta"))
            t.append(f" {p.name} ", style="bold")
            t.append(f"{glyph}{word}" if verbose or p.status != ProviderStatus.OK else glyph, style=style)
            if p.status in (ProviderStatus.STALE, ProviderStatus.ERROR):
                if p.age_s is not None:
                    t.append(f" {fmt_age(p.age_s, unknown='')}", style=style)
                if p.error and verbose:
                    t.append(f" ({safe_text(p.error)})", style="dim")
    return t


_warned: tuple[GroundTruth | None, str | None] = (None, None)


def _future_warning(s: HeaderState) -> str | None:
    """domain.clock_skew's warning: the app's tracker, else once per ground truth (the header
    redraws each second)."""
    global _warned
    gt = s.gt
    assert gt is not None
    if s.skew is not None:
        return s.skew.warning(gt.generated_at)
    if _warned[0] is not gt:
        _warned = (gt, future_timestamp_warning(gt.rows, gt.generated_at))
    return _warned[1]


def render_header(s: HeaderState, width: int = 200) -> Text:
    """Two lines; drops words before it drops facts when the terminal is narrow (80x24 over SSH).

    The banner (the demo's long description) is decoration: it shrinks to its first phrase before
    any count, FROZEN or alert badge is cut off."""
    short = short_banner(s.banner) if s.banner else None
    ladder = [(True, s.banner), (True, short), (False, short)]
    for words, banner in ladder:
        top = _counts_line(s, words=words, banner=banner)
        if top.cell_len <= width:
            break
    bottom = _health_line(s, verbose=True)
    if bottom.cell_len > width:
        bottom = _health_line(s, verbose=False)
    top.truncate(width, overflow="ellipsis")
    bottom.truncate(width, overflow="ellipsis")
    return Text("\n", no_wrap=True).join([top, bottom])


# HeaderState fields render_header shows as they are: compared by value in shown_key. Derived from
# the dataclass, so a field added to the header is in the key without a second list to keep.
_AS_IS = tuple(
    f.name
    for f in fields(HeaderState)
    if f.name not in ("gt", "now", "last_refresh", "last_duration_s", "alerts", "counts", "skew")
)


def shown_key(s: HeaderState, width: int, no_color: bool) -> tuple[object, ...] | None:
    """Everything `render_header(s, width)` reads, as values (None: not cheaply known, when the
    counts would be walked from the rows): equal keys, equal texts."""
    gt = s.gt
    if gt is not None and s.counts is None:
        return None
    fleet = None
    if gt is not None:
        providers = tuple(
            (p.name, p.status, p.error, p.age_s is not None and fmt_age(p.age_s, unknown=""))
            if p.status in (ProviderStatus.STALE, ProviderStatus.ERROR)
            else (p.name, p.status)
            for p in gt.providers
        )
        counts = tuple(s.counts.items()) if s.counts is not None else None
        fleet = (len(gt.rows), len(gt.orphans), providers, counts, _future_warning(s))
    took = f"{s.last_duration_s:.1f}" if s.last_duration_s is not None else None
    age = None if s.last_refresh is None else _age(s.last_refresh, s.now)
    alerts = tuple(s.alerts.items()) if s.alerts is not None else None
    return (width, no_color, fleet, age, took, alerts, *[getattr(s, name) for name in _AS_IS])


def _plain(style: str | Style) -> Style:
    return (Style.parse(style) if isinstance(style, str) else style).without_color


def without_colour(text: Text) -> Text:
    """NO_COLOR: keep bold/reverse/dim, drop colours (greyed by luminance, a red count or a
    reversed magenta badge becomes dark grey on dark grey: unreadable)."""
    out = text.copy()
    out.spans[:] = [Span(sp.start, sp.end, _plain(sp.style)) for sp in out.spans]
    return out


class StatusHeader(Static):
    DEFAULT_CSS = """
    StatusHeader { height: 2; background: $panel; color: $foreground; }
    """

    _state: HeaderState | None = None
    _shown: Text | None = None
    _key: tuple[object, ...] | None = None

    def show(self, state: HeaderState) -> None:
        self._state = state
        width = self.size.width or 200
        # What the text is made of, compared before it is made: a quiet tick shows the same
        # header, and building it (two lines, ~40 styled parts) was ~0.45 ms (issue 10).
        key = shown_key(state, width, self.app.no_color)
        if key is not None and key == self._key:
            return
        self._key = key
        text = render_header(state, width)
        if self.app.no_color:
            text = without_colour(text)
        if text == self._shown:
            return
        # Two lines, full width (CSS): only a change of the text's width can move anything, so
        # the once-a-second age update skips the layout pass of the whole screen.
        layout = self._shown is None or text.cell_len != self._shown.cell_len
        self._shown = text
        self.update(text, layout=layout)

    def on_resize(self) -> None:
        if self._state is not None:
            self.show(self._state)
