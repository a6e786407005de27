"""When the windowed alert rules change their verdict with time alone (issue 10, idle tick).

An alert round on unchanged inputs returns what the last one returned until one of its time
windows moves over an event: `intent_failures` counts failed intents and provider errors of the
last `intent_window_s`, `flapping` counts convergence changes of the last `flapping_window_s`.
An event enters its window at its own time (a future timestamp) and leaves it one window later.
`window_change_at` is the first such moment from `now` on, so a round skipped before it judges
nothing differently (services/alert_quiet.py). Pure: data in, a time out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from opcockpit.domain.alerts import WEBHOOK_ERROR_WORDS, AlertsConfig
from opcockpit.domain.events import Event
from opcockpit.domain.models import LeaseEventRecord, ProviderEventRecord

__all__ = ["window_change_at"]


def _counted_times(
    lease_events: Sequence[LeaseEventRecord] | None, provider_events: Sequence[ProviderEventRecord] | None
) -> Iterable[datetime]:
    """The times of the events `rule_intent_failures` counts (whichever window they fall in)."""
    for e in lease_events or ():
        if e.created_at is not None and (e.error is not None or e.event_type == "provider.error"):
            yield e.created_at
    for pe in provider_events or ():
        if pe.created_at is not None and any(w in pe.event_type.lower() for w in WEBHOOK_ERROR_WORDS):
            yield pe.created_at


def _first_move(times: Iterable[datetime], window: timedelta, now: datetime) -> datetime | None:
    """The first moment from `now` on at which one of `times` enters [t - window, t] or leaves it."""
    first: datetime | None = None
    for t in times:
        move = t if t > now else t + window  # entering (a future timestamp), else leaving
        if move >= now and (first is None or move < first):
            first = move
    return first


def window_change_at(
    cfg: AlertsConfig,
    now: datetime,
    lease_events: Sequence[LeaseEventRecord] | None,
    provider_events: Sequence[ProviderEventRecord] | None,
    events: Sequence[Event] | None,
) -> datetime | None:
    """The first moment from `now` on at which the intent_failures or flapping verdict on these
    same inputs can differ from the one at `now`; None: never (no event in either window)."""
    moves = (
        _first_move(
            _counted_times(lease_events, provider_events), timedelta(seconds=cfg.intent_window_s), now
        ),
        _first_move((e.observed_at for e in events or ()), timedelta(seconds=cfg.flapping_window_s), now),
    )
    return min((m for m in moves if m is not None), default=None)
