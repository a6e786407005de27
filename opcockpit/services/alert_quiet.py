"""Alert rounds with nothing to judge are not run (issue 10, idle tick).

A live cockpit evaluates its alert rules every ALERT_ROUND_S (10 s); on a quiet fleet each round
judged the same inputs again (~40 ms of CPU at 10k leases: rules over the flagged rows and runs,
the store's pass over every firing alert) to find what it found before. A round gives another
answer only when

- its inputs changed: the picture's rows or orphans (other objects), a provider's status,
  sandbox.db (its lease_events and provider_events; by stat signature), events.db's runs (the
  run health is not carried from the last read), the effective rule config;
- time alone moves a verdict: a pending alert's hold runs out, a mute ends, a pressure snapshot
  grows too old, an event enters or leaves the intent or flapping window, a run leaves the window
  or turns stuck (the run health is then read, not carried), a query rule falls due;
- something outside the inputs moved: a notification is still to be sent or retried, an ack or
  mute here (the engine forgets), the firing alerts in the ledger (another cockpit's ack, mute or
  round: `AlertStore.active_mark` is not the last round's, asked in the round's thread).

`QuietRounds` keeps the last full round's inputs and the first of those moments (`due_at`); a
round before it, on the same inputs, only records that the firing alerts were seen again (the
one ledger row a quiet full round writes) and hands back the last snapshot at the new time. The
durations inside alert summaries ("no event for 12m") move only with the rounds that run: at
least one every QUIET_MAX_S (also the safety net for what no input shows, e.g. another cockpit's
convergence events in a shared ledger).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from opcockpit.domain.alerts import AlertsConfig
from opcockpit.domain.models import GroundTruth

__all__ = ["QUIET_MAX_S", "QuietRounds", "RoundInputs"]

QUIET_MAX_S = 60.0  # a full round at least this often, however quiet


@dataclass(frozen=True, slots=True)
class RoundInputs:
    """What an alert round judges, by identity where the sources keep objects (the incremental
    reconciler hands back an unchanged row or orphan as the same object)."""

    rows: Sequence[object]
    orphans: Sequence[object]
    providers: tuple[tuple[object, ...], ...]  # name, kind, status, error: not the listing ages
    sandbox: tuple[object, ...] | None  # sandbox.db's stat signature; None: unknown (never quiet)
    runs_carried: bool  # the run health is the last read's, carried to now (events.db unchanged)

    @classmethod
    def of(cls, gt: GroundTruth, sandbox: tuple[object, ...] | None, runs_carried: bool) -> RoundInputs:
        providers = tuple((p.name, p.kind, p.status, p.error) for p in gt.providers)
        return cls(gt.rows, gt.orphans, providers, sandbox, runs_carried)

    def same_as(self, judged: RoundInputs) -> bool:
        """Would a round on these inputs judge what the round on `judged` did?"""
        return (
            self.runs_carried
            and self.sandbox is not None
            and _same_objects(self.rows, judged.rows)
            and _same_objects(self.orphans, judged.orphans)
            and self.providers == judged.providers
            and self.sandbox == judged.sandbox
        )


def _same_objects(a: Sequence[object], b: Sequence[object]) -> bool:
    """The same objects in the same order (a refresh after a listing that found nothing new
    builds a new tuple of the same rows: ~0.2 ms at 10k, against a ~40 ms round)."""
    return a is b or (len(a) == len(b) and all(map(operator.is_, a, b)))


class QuietRounds:
    """The last full round's inputs, config and when time alone changes its answer."""

    def __init__(self, max_quiet_s: float = QUIET_MAX_S) -> None:
        self.max_quiet = timedelta(seconds=max_quiet_s)
        self.skipped = 0  # rounds not run (tests, diagnostics)
        self.forget()

    def forget(self) -> None:
        """The next round runs in full (an ack or mute, a failed round, another cockpit's change)."""
        self._judged: tuple[RoundInputs, AlertsConfig, datetime, datetime | None] | None = None

    def judged(
        self, inputs: RoundInputs | None, config: AlertsConfig, now: datetime, due_at: datetime | None
    ) -> None:
        """A full round ran at `now` on `inputs` (None: inputs not known, e.g. a CLI round)."""
        self._judged = None if inputs is None else (inputs, config, now, due_at)

    def quiet(self, inputs: RoundInputs, config: AlertsConfig, now: datetime) -> bool:
        """Would a round at `now` on `inputs` and `config` answer what the last full one did?"""
        if self._judged is None:
            return False
        was, was_config, at, due_at = self._judged
        return (
            at <= now < at + self.max_quiet
            and (due_at is None or now < due_at)
            and (config is was_config or config == was_config)
            and inputs.same_as(was)
        )
