"""AlertEngine: rules (domain) + the alert store (ledger port) + notifications (notifier port).

One `evaluate(...)` per refresh: run the rules, apply the candidates to the store (pending ->
firing -> resolved), hand the due notifications to the notifier as plain data and record what it
did in the store. The notifier never sees the store; the store never sees the notifier.
"""

from __future__ import annotations

import contextlib
import operator
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from opcockpit.domain.alerts import (
    SCOPE_LEDGER_EVENTS,
    AlertInputs,
    AlertsConfig,
    unknown_scopes,
)
from opcockpit.domain.alerts_due import window_change_at
from opcockpit.domain.alerts_inc import IncrementalRules
from opcockpit.domain.events import Event, EventQuery, LeaseConvergenceChanged
from opcockpit.domain.models import GroundTruth, LeaseEventRecord, ProviderEventRecord
from opcockpit.domain.runs import RunHealth
from opcockpit.ports.alert_records import Alert, AlertSnapshot, Delivery, DeliveryOutcome, DeliveryResult
from opcockpit.ports.ledger import AlertStorePort, EventLogPort
from opcockpit.ports.leon import LeonAccess
from opcockpit.services.alert_quiet import QuietRounds, RoundInputs
from opcockpit.services.history import alert_event
from opcockpit.services.runs import RunReads

__all__ = ["AlertEngine", "NotifierPort", "deliver_due"]


class NotifierPort(Protocol):
    """Sends notifications (adapters.notify.Notifier). Blocking; `cancel()` from any thread."""

    def channels(self) -> list[str]: ...

    def deliver(
        self, due: dict[str, list[tuple[Alert, Delivery | None]]], now: datetime
    ) -> list[DeliveryOutcome]: ...

    def cancel(self) -> None: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


# Who claims a notification: one identity per cockpit process (two cockpits of one operator on
# one host are still two senders).
PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}"


def deliver_due(
    notifier: NotifierPort, store: AlertStorePort, now: datetime, *, owner: str = PROCESS_ID
) -> list[DeliveryResult]:
    """Send what is due (firing, unmuted, not yet delivered or given up on) and record it.

    Several cockpits (and cron) may share one ledger: each due notification is claimed in the
    ledger first, and only the claimer sends it, so it goes out exactly once."""
    due: dict[str, list[tuple[Alert, Delivery | None]]] = {}
    for alert in sorted(store.active(), key=lambda a: a.id):
        if alert.is_muted(now):
            continue
        for channel in notifier.channels():
            prev = store.delivery(alert.id, channel)
            if prev is not None and prev.status in ("ok", "gave_up"):
                continue
            if not store.claim_delivery(alert.id, channel, owner, now=now):
                continue  # another cockpit is sending it (or just did)
            due.setdefault(channel, []).append((alert, prev))
    if not due:
        return []
    out: list[DeliveryResult] = []
    for outcome in notifier.deliver(due, now):
        r = outcome.result
        store.record_delivery(
            r.alert_id, r.channel, r.target, ok=r.ok, attempts=r.attempts, error=r.error, now=now,
            gave_up=r.gave_up, count_round=outcome.count_round,
        )  # fmt: skip
        out.append(r)
    return out


class AlertEngine:
    """Rules + store + notifications. `evaluate(...)` once per refresh; the rest delegates to the store.

    `clock` is injected (tests, demo); the notifier is injected by `wiring` (built from
    `config.webhook` / `config.command`). Notification failures are recorded and returned in the
    snapshot, never raised.
    """

    def __init__(
        self,
        store: AlertStorePort,
        config: AlertsConfig | None = None,
        clock: Callable[[], datetime] | None = None,
        *,
        notifier: NotifierPort | None = None,
        leon: LeonAccess | None = None,
        events: EventLogPort | None = None,
        on_event: Callable[[Event], None] | None = None,
        owner: str = PROCESS_ID,
    ) -> None:
        self.owner = owner  # who claims notifications in a shared ledger
        self.events = events  # the event ledger the flapping rule reads
        self.on_event = on_event  # history.record_events: alert.fired/resolved/acked/muted
        self.store = store
        self.config = config or AlertsConfig()
        self.clock = clock or _utcnow
        self.notifier = notifier
        self.leon = leon  # the readers a live round (services.alerting.evaluate_refresh) gathers with
        self.last: AlertSnapshot | None = None
        self.last_mark: object = None  # store.active_mark() as of the last round's active alerts
        self.run_reads = RunReads()  # events.db's runs, read by seq watermark
        self.rules = IncrementalRules()  # last round's per-lease verdicts (issue 10)
        self.query_rules: Any = None  # services.query_alerts.QueryRules (issue 11), set by wiring
        self.quiet = QuietRounds()  # the last full round's inputs and when it is next due

    def evaluate(
        self,
        ground_truth: GroundTruth,
        run_health: RunHealth | None = None,
        lease_events: Sequence[LeaseEventRecord] | None = None,
        provider_events: Sequence[ProviderEventRecord] | None = None,
        *,
        now: datetime | None = None,
        inputs: RoundInputs | None = None,
    ) -> AlertSnapshot:
        """One full round. `inputs` (a live round's, services.alerting): what it judged, so that
        `quiet_round` can tell a later round on the same inputs that nothing is due."""
        now = now or self.clock()
        self.quiet.forget()  # until this round has written everything
        if self.query_rules is not None:  # ledger overrides of the TOML (issue 11)
            self.config = self.query_rules.config(self.config)
        events = self._flap_events(now)
        inp = AlertInputs(ground_truth, now, run_health, lease_events, provider_events, events)
        candidates = self.rules.evaluate(inp, self.config)  # == evaluate_rules, per changed lease
        unknown = unknown_scopes(inp) | ({SCOPE_LEDGER_EVENTS} if events is None else set())
        if self.query_rules is not None:  # query-backed rules, on their own cadence (issue 11)
            more, blind = self.query_rules.evaluate(self.config, ground_truth, now)
            candidates, unknown = [*candidates, *more], unknown | blind
        fired, resolved, n_pending = self.store.apply(
            candidates, now, unknown=unknown, history_keep=self.config.history_keep
        )
        self._emit("alert.fired", self.store.by_ids(fired) if fired else (), now)
        self._emit("alert.resolved", self.store.by_ids(resolved) if resolved else (), now)
        deliveries: tuple[DeliveryResult, ...] = ()
        if self.notifier is not None:
            deliveries = tuple(deliver_due(self.notifier, self.store, now, owner=self.owner))
        # The firing alerts' fingerprint taken just before they are read, under the store's lock:
        # a cockpit that polls the ledger for the team's changes starts from it instead of
        # reading the same alerts again (~2,700 at 10k leases) because this round changed them.
        with self._store_lock():
            mark = self._active_mark()
            active = tuple(self.store.active())
        prev = self.last.active if self.last is not None else None
        if prev is not None and len(prev) == len(active) and all(map(operator.is_, prev, active)):
            active = prev  # the same alerts: the surfaces skip re-cleaning and re-rendering them
        self.last_mark = mark
        snap = AlertSnapshot(
            now=now,
            active=active,
            newly_firing=tuple(self.store.by_ids(fired)),
            newly_resolved=tuple(self.store.by_ids(resolved)),
            pending=n_pending,
            unknown_scopes=unknown,
            deliveries=deliveries,
        )
        self.last = snap
        self.quiet.judged(inputs, self.config, now, self._due_at(inp, deliveries, active))
        return snap

    def _due_at(
        self, inp: AlertInputs, deliveries: Sequence[DeliveryResult], active: Sequence[Alert]
    ) -> datetime | None:
        """The first moment after this round at which a round on the same inputs can answer
        otherwise (services/alert_quiet.py); this round's `now`: at the next one."""
        now = inp.now
        if any(not r.ok and not r.gave_up for r in deliveries):
            return now  # to be retried (or it lost its claim: another cockpit is sending it)
        if inp.events is None and self.events is not None and "flapping" not in self.config.disabled_rules:
            return now  # the ledger was not read: its flapping alerts are held, not judged
        times = [
            getattr(self.store, "hold_ends_at", now),  # a pending alert fires
            self.rules.stale_at(now),  # a pressure snapshot grows too old
            window_change_at(self.config, now, inp.lease_events, inp.provider_events, inp.events),
            *(a.muted_until for a in active if a.muted_until is not None and a.muted_until > now),
        ]
        if self.query_rules is not None and (due_s := self.query_rules.due_in_s(self.config)) is not None:
            times.append(now + timedelta(seconds=due_s))
        return min((t for t in times if t is not None), default=None)

    def quiet_round(self, inputs: RoundInputs, now: datetime) -> AlertSnapshot | None:
        """The round at `now` when nothing is due since the last full one and its inputs are the
        same (`QuietRounds`): the firing alerts are recorded as seen (one ledger row, what a
        full round on them writes) and the last snapshot comes back at `now`. None: run it in
        full. Blocking (the ledger, the rule config's reload): a worker thread."""
        last, mark_evaluated = self.last, getattr(self.store, "mark_evaluated", None)
        if last is None or mark_evaluated is None:
            return None
        cfg = self.query_rules.config(self.config) if self.query_rules is not None else self.config
        if not self.quiet.quiet(inputs, cfg, now):
            return None
        # The firing alerts as the last round read them (another cockpit's ack, mute or round
        # since moves the mark): else the round reads them again, in full.
        with self._store_lock():
            mark = self._active_mark()
        if mark is None or mark != self.last_mark:
            return None
        mark_evaluated(now)
        self.quiet.skipped += 1
        snap = replace(last, now=now, newly_firing=(), newly_resolved=(), deliveries=())
        self.last = snap
        return snap

    def _store_lock(self) -> Any:
        """The store's lock (a store without one: no lock)."""
        return getattr(self.store, "lock", contextlib.nullcontext())

    def _active_mark(self) -> object | None:
        """The ledger's firing-alerts fingerprint (None: the store keeps none); under _store_lock."""
        return getattr(self.store, "active_mark", lambda: None)()

    def _flap_events(self, now: datetime) -> list[Event] | None:
        """The convergence changes the flapping rule needs; None when there is no ledger or it
        cannot be read (its alerts are then kept, not resolved)."""
        if self.events is None or "flapping" in self.config.disabled_rules:
            return None
        since = now - timedelta(seconds=self.config.flapping_window_s)
        q = EventQuery(
            types=(LeaseConvergenceChanged.TYPE,),
            since=since,
            until=now,
            limit=100_000,
            # A superset of the leases the rule keeps (it also drops events without before/after).
            min_per_lease=self.config.flapping_transitions,
        )
        try:
            return self.events.query(q)
        except Exception:
            return None

    def _emit(self, kind: str, alerts: Sequence[Alert], now: datetime, who: str | None = None) -> None:
        if self.on_event is None:
            return
        for alert in alerts:
            with contextlib.suppress(Exception):  # the event ledger never fails an evaluation
                self.on_event(alert_event(kind, alert, now, who=who))

    # Delegates, so surfaces hold one object.
    def active(self) -> list[Alert]:
        return self.store.active()

    def history(self, limit: int = 50) -> list[Alert]:
        return self.store.history(limit)

    def get(self, ref: str | int) -> Alert:
        return self.store.get(ref)

    def ack(self, ref: str | int, who: str, comment: str | None = None) -> Alert:
        now = self.clock()
        self.quiet.forget()
        alert = self.store.ack(ref, who, comment, now=now)
        self._emit("alert.acked", [alert], now, who)
        return alert

    def mute(
        self,
        ref: str | int,
        until: datetime | None = None,
        *,
        until_resolved: bool = False,
        who: str | None = None,
        comment: str | None = None,
    ) -> Alert:
        now = self.clock()
        self.quiet.forget()
        alert = self.store.mute(
            ref, until=until, until_resolved=until_resolved, who=who, comment=comment, now=now
        )
        self._emit("alert.muted", [alert], now, who)
        return alert

    def unmute(self, ref: str | int) -> Alert:
        self.quiet.forget()
        return self.store.unmute(ref)
