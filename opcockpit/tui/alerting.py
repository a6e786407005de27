"""Alert glue for the cockpit: one AlertEngine per app, evaluated after each successful refresh.

The engine (rules + the ledger + notifications) is core; this module owns its lifecycle in the TUI:
the ledger is opened lazily on the first evaluation (in a thread), closed when the app exits,
and `evaluate(gt)` runs `evaluate_refresh` (async DB reads, then sqlite + notifications in a
worker thread) so the UI thread never blocks. Scheduling (one evaluation at a time, the newest
ground truth coalesced) lives in `AlertsView`, which owns the worker.

Ack and mute write the cockpit's own ledger, never the platform: they stay allowed in read-only
mode (docs/alerts.md, `?` help).
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opcockpit.domain.alerts import Severity
from opcockpit.domain.text import error_line, safe_text

if TYPE_CHECKING:
    from opcockpit.domain.alerts_rules_apply import RuleInfo
    from opcockpit.domain.models import GroundTruth
    from opcockpit.domain.runs import RunHealth
    from opcockpit.ports.alert_records import Alert, AlertSnapshot, DeliveryResult
    from opcockpit.services.alert_engine import AlertEngine
    from opcockpit.wiring import Cockpit

__all__ = [
    "AlertRound",
    "Alerting",
    "LedgerUnavailable",
    "ledger_problem",
    "ledger_reason",
]


class LedgerUnavailable(Exception):
    """The ledger file cannot be used (corrupt, locked, read-only): alerts and audit are off,
    the fleet view is not. str() is the line the TUI shows."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"ledger unavailable: {path}: {reason}")


def ledger_problem(exc: BaseException) -> bool:
    """Does `exc` come from the ledger file itself (the ledger's LedgerError, SQLite, the FS)?"""
    import sqlite3

    from opcockpit.ports.errors import SourceError
    from opcockpit.ports.ledger import LedgerError

    return isinstance(exc, LedgerError | sqlite3.Error | OSError) and not isinstance(exc, SourceError)


def ledger_reason(exc: BaseException) -> str:
    """Why the ledger is unusable, in one short terminal-safe line (the file is named apart)."""
    from opcockpit.ports.ledger import LedgerError

    text = exc.message if isinstance(exc, LedgerError) else str(exc)
    text = text.splitlines()[0] if text else type(exc).__name__
    return safe_text(text[:200])


def _clean(value: Any) -> Any:
    from opcockpit.tui.data import clean

    return clean(value)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AlertRound:
    """What one evaluation produced, for the views."""

    snapshot: AlertSnapshot | None
    run_health: RunHealth | None
    error: str | None  # the evaluation itself failed (ledger unreadable, ...): alerts unknown
    notify_errors: tuple[DeliveryResult, ...] = ()


class Alerting:
    """The app's alert engine and the last things it said."""

    def __init__(
        self,
        cockpit: Cockpit,
        *,
        clock: Callable[[], datetime] | None = None,
        who: str | None = None,
        local_tz: tzinfo | None = None,
        engine: AlertEngine | None = None,
    ) -> None:
        # The cockpit (opcockpit.wiring) owns the ledger, the alert store/engine and the operator:
        # alerts, audit and the CLI agree on which ledger and who acted.
        self.cockpit = cockpit
        self.config = cockpit.alerts_config
        self.ledger_path = Path(cockpit.ledger_path)
        sources = cockpit.settings.sources
        self.sandbox_db = sources.sandbox_db
        self.events_db = sources.events_db
        self.clock = clock or _utcnow
        self.who = who or cockpit.operator
        self.local_tz = local_tz
        self.engine: AlertEngine | None = engine
        self.snapshot: AlertSnapshot | None = None
        self.run_health: RunHealth | None = None
        self.active: tuple[Alert, ...] = ()  # firing alerts as last read from the ledger
        # counts(): (the `active` counted, from, until (None: no mute ends), the counts)
        self._counts: tuple[tuple[Alert, ...], datetime, datetime | None, dict[str, int]] | None = None
        self.error: str | None = None
        self.ledger_error: str | None = None  # "ledger unavailable: <file>: <reason>", or None
        self.evaluations = 0
        self._feed: Any = None  # the ledger's ChangeFeed: acks/mutes made by other cockpits
        self._mark: object = None  # the firing alerts' fingerprint at the last read
        # (the engine's active alerts, them made terminal-safe): a round that read the same Alert
        # objects again does not walk ~2,700 of them through clean() (issue 10, idle tick).
        self._cleaned: tuple[tuple[Alert, ...], tuple[Alert, ...]] | None = None

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    # ------------------------------------------------------------------ lifecycle

    @property
    def ledger_file(self) -> str:
        return str(self.ledger_path)

    def _open(self) -> AlertEngine:
        if self.engine is None:
            try:
                store = self.cockpit.open_alert_store()
            except Exception as exc:
                if ledger_problem(exc):
                    raise LedgerUnavailable(self.ledger_file, ledger_reason(exc)) from exc
                raise
            self.engine = self.cockpit.alert_engine(store, clock=self.clock)
        return self.engine

    async def ensure_engine(self) -> AlertEngine:
        if self.engine is None:
            await asyncio.to_thread(self._open)
        assert self.engine is not None
        return self.engine

    def close(self) -> None:
        if self.engine is not None:
            store = self.engine.store
            with store.lock:  # an evaluation in its thread finishes its transaction first
                if self._feed is not None:
                    self._feed.close()
                store.close()
            self.engine, self._feed = None, None

    def feed_moved(self) -> bool | None:
        """The change feed asked on the calling thread, never waiting: False when nothing moved
        (SQLite's data_version, under the store's lock if it is free), True when it did (then
        `poll_changes(moved=True)` reads the alerts' mark); None when it cannot say at once
        (PostgreSQL, no feed yet, an evaluation holds the store): `poll_changes()` in a thread.
        A quiet second then costs no thread hop (issue 10, idle tick)."""
        engine, feed = self.engine, self._feed
        if engine is None or feed is None or not getattr(feed, "instant", False):
            return None
        lock = engine.store.lock
        if not lock.acquire(blocking=False):
            return None
        try:
            return bool(feed.poll())
        except Exception:  # the thread's poll reports it (or the next evaluation)
            return None
        finally:
            lock.release()

    def poll_changes(self, moved: bool = False) -> bool:
        """Did another cockpit (or cron's `snapshot --check`, `opcockpit ack`) change the alert
        state on this ledger since the last poll? Then the active alerts are re-read, so a team
        mate's ack or mute shows here within a poll, not at the next change of the fleet.
        Worker thread. SQLite: the file's data_version (this cockpit's own commits do not move
        it); PostgreSQL: LISTEN/NOTIFY. The feed also moves on event appends (every refresh), so
        the firing alerts' fingerprint decides whether to re-read them. A ledger that fails here
        is the evaluation's to report."""
        engine = self.engine
        changes = getattr(engine.store, "changes", None) if engine is not None else None
        if engine is None or changes is None:
            return False
        store = engine.store
        try:
            with store.lock:
                if self._feed is None:
                    # Opened at the first poll, after the alerts on screen were read: what
                    # changed in between shows as a mark other than the one of that read.
                    self._feed = changes()
                elif not moved and not self._feed.poll():  # `moved`: feed_moved() polled it
                    return False
                mark = store.active_mark()
                if mark == self._mark:
                    return False
                self._mark = mark
                # Another cockpit acked, muted or evaluated: the next round judges in full.
                engine.quiet.forget()
            self.reload_active()
        except Exception as exc:
            if ledger_problem(exc):
                return False
            raise
        return True

    # ------------------------------------------------------------------ evaluation

    async def evaluate(self, gt: GroundTruth) -> AlertRound:
        """One round on a fresh ground truth; never raises (an error is reported in the round)."""
        from opcockpit.services.alerting import evaluate_refresh

        try:
            if not self.enabled:  # alerts off: run health for the overview is still useful
                rh = await self.cockpit.load_run_health(gt.generated_at, ground_truth=gt)
                self.run_health, self.error = rh, None
                return AlertRound(None, rh, None)
            engine = await self.ensure_engine()
            sandbox_db = self.sandbox_db or gt.db_path
            snap, rh = await evaluate_refresh(
                engine,
                gt,
                sandbox_db=sandbox_db,
                events_db=self.events_db,
                now=gt.generated_at,
                local_tz=self.local_tz,
                leon=self.cockpit.leon,
            )
        except Exception as exc:  # the last good alerts stay on screen, marked as not current
            if isinstance(exc, LedgerUnavailable) or ledger_problem(exc):
                # Say which file and why (corrupt, locked, read-only); retried next round.
                unavailable = exc if isinstance(exc, LedgerUnavailable) else None
                self.error = str(unavailable or LedgerUnavailable(self.ledger_file, ledger_reason(exc)))
                self.ledger_error = self.error
            else:
                self.error = error_line(exc)
            return AlertRound(None, None, self.error)
        self.ledger_error = None
        if engine.last_mark is not None:
            # The round read the firing alerts itself: the feed's next poll re-reads them only
            # when something changed after that read (a team mate), not for this round's own writes.
            self._mark = engine.last_mark
        # Subjects, summaries, evidence quote DB/provider text: terminal-safe.
        active = self._clean_active(snap.active)
        snap = replace(_clean(replace(snap, active=())), active=active)
        self.snapshot, self.run_health, self.error = snap, rh, None
        self.active = snap.active
        self.evaluations += 1
        return AlertRound(snap, rh, None, snap.notify_errors)

    # ------------------------------------------------------------------ reads (worker threads)

    def reload_active(self) -> tuple[Alert, ...]:
        if self.engine is not None:
            self.active = self._clean_active(tuple(self.engine.active()))
        return self.active

    def _clean_active(self, raw: tuple[Alert, ...]) -> tuple[Alert, ...]:
        """`clean(raw)`: the previous result again when `raw` holds the very same alerts, and
        each alert the last call cleaned reused (the ledger hands back unchanged alerts as the
        same objects: only the changed few are walked)."""
        was = self._cleaned
        if was is not None and (
            was[0] is raw or (len(was[0]) == len(raw) and all(map(operator.is_, was[0], raw)))
        ):
            return was[1]
        # By identity: the old alerts are alive in `was`, so no new object can share an id().
        known = {id(a): c for a, c in zip(was[0], was[1], strict=True)} if was is not None else {}
        cleaned = tuple(c if (c := known.get(id(a))) is not None else _clean(a) for a in raw)
        self._cleaned = (raw, cleaned)
        return cleaned

    def current(self, alert: Alert) -> Alert:
        """`alert` with its live `last_seen`: a firing alert the last round saw again unchanged
        was not re-read (the ledger does not rewrite it), so its object holds an older sighting."""
        engine, snap = self.engine, self.snapshot
        seen_at = getattr(engine.store, "seen_at", None) if engine is not None else None
        if snap is None or seen_at is None:
            return alert
        last = seen_at(alert, snap.now)
        return alert if last == alert.last_seen else replace(alert, last_seen=last)

    def history(self, limit: int = 500) -> list[Alert]:
        return _clean(self._open().history(limit))

    def get(self, ref: str | int) -> Alert:
        return _clean(self._open().get(ref))

    def counts(self, now: datetime | None = None) -> dict[str, int] | None:
        """Unmuted firing alerts by severity (the header badge); None before the first evaluation."""
        if self.snapshot is None and not self.active:
            return None
        now = now or self.clock()
        cached = self._counts
        # The header asks every repaint; the answer holds until the firing set is re-read or
        # a mute among them runs out (~2,700 alerts walked per paint at 10k leases, issue 10).
        if (
            cached is not None
            and cached[0] is self.active
            and cached[1] <= now
            and (cached[2] is None or now < cached[2])
        ):
            return dict(cached[3])
        out = {s.value: 0 for s in Severity}
        for a in self.active:
            if not a.is_muted(now):
                out[a.severity.value] += 1
        ends = [a.muted_until for a in self.active if a.muted_until is not None and a.muted_until > now]
        self._counts = (self.active, now, min(ends) if ends else None, out)
        return dict(out)

    # ------------------------------------------------------------------ rules view (worker threads)

    def _rule_store(self) -> Any:
        return self.cockpit.open_rule_store()

    def rules(self) -> tuple[list[RuleInfo], list[str]]:
        """Every rule as the rules view shows it, and the overrides the config rejected."""
        from opcockpit.domain.alerts_rules_apply import rules_table

        engine = self._open()
        qr = engine.query_rules
        cfg = qr.config() if qr is not None else engine.config
        firing: dict[str, int] = {}
        for a in self.active:
            firing[a.rule] = firing.get(a.rule, 0) + 1
        info = rules_table(
            cfg, qr.overridden if qr is not None else (), now=self.clock(),
            last_round=self.snapshot.now if self.snapshot is not None else None, firing=firing,
            query_evals=qr.evals if qr is not None else None,
        )  # fmt: skip
        return info, list(qr.problems) if qr is not None else []

    def set_rule_override(self, rule: str, field: str, raw: str) -> str | None:
        """Store `rule.field = raw` in the ledger; None, or the one line saying why not (then
        nothing is stored). Takes effect on the next evaluation."""
        from opcockpit.domain.alerts_rules_apply import apply_overrides, parse_override_value

        engine = self._open()
        qr = engine.query_rules
        try:
            value = parse_override_value(field, raw)
        except ValueError as exc:
            return f"{rule}.{field}: {exc}"
        base = qr.config() if qr is not None else engine.config
        _, problems = apply_overrides(base, [(rule, field, value)])
        if problems:
            return problems[0]
        with self._rule_store() as st:
            st.set_override(rule, field, value, self.who)
        if qr is not None:
            engine.config = qr.reload()
        return None

    def remove_query_rule(self, rule: str) -> str | None:
        """Delete a query rule made in the TUI (and its overrides); None, or why not."""
        from opcockpit.domain.alerts_rules import QUERY_RULE_PREFIX

        engine = self._open()
        qr = engine.query_rules
        name = rule.removeprefix(QUERY_RULE_PREFIX)
        if qr is None or not rule.startswith(QUERY_RULE_PREFIX) or name not in qr.tui_made:
            return f"{rule} is defined in the TOML config: e disables it, the file removes it"
        with self._rule_store() as st:
            st.remove_query_rule(name)
            st.clear_override(rule)
        engine.config = qr.reload()
        return None

    def clear_rule_overrides(self, rule: str) -> int:
        engine = self._open()
        with self._rule_store() as st:
            n = int(st.clear_override(rule))
        if engine.query_rules is not None:
            engine.config = engine.query_rules.reload()
        return n

    # ------------------------------------------------------------------ operator actions (ledger writes)

    def ack(self, ref: str | int, comment: str | None) -> Alert:
        alert = self._open().ack(ref, self.who, comment or None)
        self.reload_active()
        return _clean(alert)

    def mute(
        self,
        ref: str | int,
        *,
        duration: timedelta | None = None,
        until_resolved: bool = False,
        comment: str | None = None,
    ) -> Alert:
        engine = self._open()
        until = self.clock() + duration if duration is not None else None
        alert = engine.mute(ref, until, until_resolved=until_resolved, who=self.who, comment=comment or None)
        self.reload_active()
        return _clean(alert)

    def unmute(self, ref: str | int) -> Alert:
        alert = self._open().unmute(ref)
        self.reload_active()
        return _clean(alert)

    # A group (Alerts tab, same rule and provider) is acked/muted member by member: each alert
    # gets its own ledger record, exactly as if the operator had acked it alone; one reload after.

    def ack_many(self, refs: Sequence[str | int], comment: str | None) -> list[Alert]:
        engine = self._open()
        out = [engine.ack(ref, self.who, comment or None) for ref in refs]
        self.reload_active()
        return _clean(out)

    def mute_many(
        self,
        refs: Sequence[str | int],
        *,
        duration: timedelta | None = None,
        until_resolved: bool = False,
        comment: str | None = None,
    ) -> list[Alert]:
        engine = self._open()
        until = self.clock() + duration if duration is not None else None
        out = [
            engine.mute(ref, until, until_resolved=until_resolved, who=self.who, comment=comment or None)
            for ref in refs
        ]
        self.reload_active()
        return _clean(out)

    def unmute_many(self, refs: Sequence[str | int]) -> list[Alert]:
        engine = self._open()
        out = [engine.unmute(ref) for ref in refs]
        self.reload_active()
        return _clean(out)
