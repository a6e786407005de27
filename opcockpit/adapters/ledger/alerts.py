"""Alert lifecycle in the cockpit's ledger (component "alerts"): pending -> firing -> resolved,
ack, mute, delivery records, history.

- A rule candidate first goes to `alert_pending` with its first-seen time; it becomes a firing
  alert once it has held for the rule's hold time (the data's own start time counts when the rule
  knows it, e.g. an orphan's created_at). GroundTruth is a point in time: this table is the memory.
- One firing row per dedup key (unique partial index). A firing alert whose condition is gone is
  resolved; if the input it depends on could not be read this round (its `scope`), it is kept.
  A condition that comes back later opens a new episode (new id), so history shows each episode.
- Ids: the numeric row id of the episode (`12`, also typed `#12`) and a fingerprint, the first
  8 hex of sha1(key), stable across episodes; `get`/`ack`/`mute` accept either (a fingerprint,
  or a unique prefix of at least 4 of its characters, means that key's newest episode).
- Mute: `until` a time (outlives resolution: a new episode of the same key starting before it
  inherits the mute) or `until_resolved` (ends with the episode). Muted alerts are not notified
  and do not fail `snapshot --check`. Expiry is computed at read time against the clock.
- Ack (who, comment, when) is per episode and changes nothing but the record.

Synchronous (the ledger is tiny): call from a worker thread in async code. The SQL runs on
either backend through `backend.LedgerDb` (SQLite file, or PostgreSQL shared by a team: several
cockpits, one alert state; an ack/mute/evaluation NOTIFYs the others, see `changes()`).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opcockpit.adapters.ledger.alerts_schema import COMPONENT, MIGRATIONS
from opcockpit.adapters.ledger.backend import LedgerDb, LedgerTarget, SqliteDb, connect, migrate
from opcockpit.adapters.ledger.sqlite import connection_path, guarded
from opcockpit.domain.alerts import AlertCandidate, Evidence, Severity
from opcockpit.ports.alert_records import (
    Ack,
    Alert,
    AlertNotFound,
    AlertSnapshot,
    Delivery,
    alert_order,
    fingerprint,
    iso,
    parse_iso,
)

# Ack, Alert, AlertNotFound, AlertSnapshot, Delivery, fingerprint: re-exported (they live in
# ports.alert_records now); AlertEngine moved to opcockpit.services.alert_engine.
__all__ = [
    "Ack",
    "Alert",
    "AlertNotFound",
    "AlertSnapshot",
    "AlertStore",
    "Delivery",
    "fingerprint",
]

_COLS = (
    "id, fingerprint, key, rule, severity, summary, threshold, scope, evidence_json, details_json, state,"
    " first_seen, fired_at, last_seen, resolved_at, acked_by, acked_at, ack_comment, muted_until,"
    " mute_until_resolved, muted_by, muted_at, mute_comment, held"
)
_LAST_EVALUATED = "SELECT v FROM alert_meta WHERE k = 'last_evaluated_at'"
_SET_LAST_EVALUATED = (
    "INSERT INTO alert_meta(k, v) VALUES ('last_evaluated_at', ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v"
)
_Memo = tuple[tuple, tuple[Delivery, ...], tuple[Ack, ...], Alert]  # row, deliveries, acks, the Alert


@dataclass(frozen=True, slots=True)
class _Patch:
    """What one apply changed among the firing alerts of the last read, and the mark it left."""

    mark: tuple[object, ...]
    seen: frozenset[int]  # fired, rewritten or seen again after being held: read again, held = 0
    held: frozenset[int]  # kept unseen: read again (its last_seen froze), held = 1
    gone: frozenset[int]  # resolved


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- store


class AlertStore:
    """The alerts tables of one ledger file. Thread-safe (one connection, one lock)."""

    def __init__(
        self, conn: sqlite3.Connection | LedgerDb, *, owns: bool = False, path: str | None = None
    ) -> None:
        if isinstance(conn, sqlite3.Connection):
            where = path or connection_path(conn)
            conn = SqliteDb(conn, LedgerTarget("sqlite", path=Path(where) if where else None))
        self.db: LedgerDb = conn
        self.path = path or self.db.where  # named by every LedgerError this store raises
        migrate(self.db, COMPONENT, MIGRATIONS)
        self._owns = owns
        self.lock = threading.RLock()
        # What this store last wrote per firing alert key: (alert id, last_seen written, the
        # candidate). A candidate equal to the one written, on a row nobody else wrote since (its
        # last_seen is still ours), needs only last_seen moved: ~2,700 firing alerts at 10k
        # leases were JSON-encoded and rewritten whole every round.
        self._written: dict[str, tuple[int, str, AlertCandidate]] = {}
        # The firing alerts as last read, by `active_mark()`: an idle round reads ~2,700 alerts
        # (JSON, times, acks, deliveries) only when the mark moved (issue 10, idle tick).
        self._active: tuple[tuple[object, ...], tuple[Alert, ...]] | None = None
        self._held: frozenset[int] = frozenset()  # held firing alerts as of the last active() read
        self._pruned = False  # history pruned once by this store (then whenever an alert resolves)
        self._by_id: dict[int, _Memo] = {}  # the firing alerts of the last active() read (_rows)
        self._patch: _Patch | None = None  # what the last apply changed in the last active() read
        # When the first candidate left pending by the last apply reaches its hold and would
        # fire (None: none pending): a round on the same inputs changes nothing before it.
        self.hold_ends_at: datetime | None = None

    @property
    def conn(self) -> object:
        """The backend's own connection (sqlite3.Connection or psycopg.Connection)."""
        return getattr(self.db, "conn", None)

    @classmethod
    def open(cls, path: str | Path | LedgerTarget | None = None) -> AlertStore:
        """Open (creating) the ledger at `path`: a file, `sqlite:PATH` or a postgresql:// URL
        (default: $OPCOCKPIT_LEDGER / XDG data dir)."""
        db = connect(path)
        try:
            return cls(db, owns=True, path=db.where)
        except BaseException:
            db.close()  # a ledger it cannot migrate: do not leak the connection
            raise

    @guarded
    def close(self) -> None:
        if self._owns:
            self.db.close()

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- reads

    def _rows(
        self,
        where: str,
        params: Sequence[Any] = (),
        tail: str = "",
        memo: dict[int, _Memo] | None = None,
        *,
        some: bool = False,
    ) -> list[Alert]:
        """The alerts the query selects. `memo` (id -> the row, deliveries, acks and Alert of an
        earlier read): an alert whose row, deliveries and acks are as they were is that same
        Alert object, not decoded again; `memo` is left holding this read's alerts only, or, when
        the query selects `some` of them, this read's entries beside the others'."""
        with self.lock:
            rows = self.db.execute(
                f"SELECT {_COLS} FROM alerts WHERE {where} {tail}", tuple(params)
            ).fetchall()
            if not rows:
                return []
            evaluated = self.db.execute(_LAST_EVALUATED).fetchone()
            live_at = parse_iso(evaluated[0]) if evaluated else None
            ids = [r[0] for r in rows]
            deliveries: dict[int, list[Delivery]] = {}
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                for d in self.db.execute(
                    "SELECT alert_id, channel, target, status, attempts, rounds, last_error, last_attempt_at,"
                    f" delivered_at FROM alert_deliveries WHERE alert_id IN ({','.join('?' * len(chunk))})"
                    " ORDER BY channel",
                    chunk,
                ):
                    deliveries.setdefault(d[0], []).append(
                        Delivery(d[1], d[2], d[3], d[4], d[5], d[6], parse_iso(d[7]), parse_iso(d[8]))
                    )
            acks: dict[int, list[Ack]] = {}
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                for k in self.db.execute(
                    "SELECT alert_id, who, at, comment FROM alert_acks"
                    f" WHERE alert_id IN ({','.join('?' * len(chunk))}) ORDER BY seq",
                    chunk,
                ):
                    acks.setdefault(k[0], []).append(Ack(k[1], datetime.fromisoformat(k[2]), k[3]))
        if memo is None:
            return [
                _alert(r, tuple(deliveries.get(r[0], ())), tuple(acks.get(r[0], ())), live_at) for r in rows
            ]
        out: list[Alert] = []
        was, now_memo = dict(memo), {}
        for r in rows:
            ds, ks = tuple(deliveries.get(r[0], ())), tuple(acks.get(r[0], ()))
            hit = was.get(r[0])
            if hit is not None and hit[0] == r and hit[1] == ds and hit[2] == ks:
                alert = hit[3]  # its last_seen is as of the read that made it (see seen_at)
            else:
                alert = _alert(r, ds, ks, live_at)
            now_memo[r[0]] = (r, ds, ks, alert)
            out.append(alert)
        if not some:
            memo.clear()
        memo.update(now_memo)
        return out

    @guarded
    def active(self) -> list[Alert]:
        """Firing alerts (muted ones included; see `Alert.is_muted`), most severe then newest first.

        While `active_mark()` has not moved, the very same Alert objects as the last read (a
        round that changed nothing reads nothing). Their `last_seen` is as of that read: a firing
        alert's live value is `seen_at(alert, now_of_last_round)`."""
        with self.lock:
            mark = self.active_mark()  # before the read: a write in between re-reads next time
            cached, patch, self._patch = self._active, self._patch, None
            if cached is not None and cached[0] == mark:
                return list(cached[1])
            if cached is not None and patch is not None and patch.mark == mark:
                alerts = self._patched(cached[1], patch)  # only this store's apply since: its alerts
            else:
                # An alert that changed (a stuck run's silence in its summary, an ack) is decoded;
                # the rest of the ~2,700 are the objects of the last read.
                alerts = sorted(self._rows("state = 'firing'", memo=self._by_id), key=alert_order)
                held = self.db.execute("SELECT id FROM alerts WHERE state = 'firing' AND held = 1")
                self._held = frozenset(r[0] for r in held)
            self._active = (mark, tuple(alerts))
        return alerts

    def _patched(self, cached: tuple[Alert, ...], patch: _Patch) -> list[Alert]:
        """The last read with this store's last apply in it: the alerts it wrote read again, the
        ones it resolved dropped, every other the same object (no other writer came between:
        the mark is the one that apply left)."""
        dirty = sorted(patch.seen | patch.held)
        fresh: list[Alert] = []
        for i in range(0, len(dirty), 500):
            chunk = dirty[i : i + 500]
            where = f"state = 'firing' AND id IN ({','.join('?' * len(chunk))})"
            fresh += self._rows(where, chunk, memo=self._by_id, some=True)
        out = set(dirty) | patch.gone
        for aid in patch.gone:
            self._by_id.pop(aid, None)
        self._held = (self._held - patch.gone - patch.seen) | patch.held
        return sorted([a for a in cached if a.id not in out] + fresh, key=alert_order)

    @guarded
    def active_mark(self) -> tuple[object, ...]:
        """A cheap fingerprint of what `active()` shows (which alerts fire, their content, acks,
        mutes and deliveries; not the passing `last_seen` of alerts seen every round): a change
        feed says the ledger file moved (event appends move it too); this says whether the alerts
        did, so a cockpit re-reads them only then. `rev` moves with every evaluation that changed
        a firing alert (content, held, fired, resolved), whichever cockpit ran it."""
        with self.lock:
            row = self.db.execute(
                "SELECT count(*), max(id), count(acked_at), max(acked_at), count(muted_until),"
                " max(muted_until), sum(mute_until_resolved), max(muted_at), max(severity),"
                " (SELECT max(seq) FROM alert_acks), (SELECT v FROM alert_meta WHERE k = 'rev'),"
                " (SELECT count(*) FROM alert_deliveries),"
                " (SELECT max(last_attempt_at) FROM alert_deliveries),"
                " (SELECT sum(attempts) + sum(rounds) FROM alert_deliveries)"
                " FROM alerts WHERE state = 'firing'"
            ).fetchone()
        return tuple(row)

    def seen_at(self, alert: Alert, evaluated_at: datetime) -> datetime:
        """`alert.last_seen` as of the evaluation at `evaluated_at` (the last round): a firing
        alert from `active()` that was not held was seen by it; any other keeps its own."""
        if alert.state != "firing" or alert.id in self._held or evaluated_at <= alert.last_seen:
            return alert.last_seen
        return evaluated_at

    @guarded
    def history(self, limit: int = 50, *, include_firing: bool = True) -> list[Alert]:
        """Episodes newest first (resolved ones, plus firing ones unless include_firing=False)."""
        where = "1 = 1" if include_firing else "state = 'resolved'"
        return self._rows(where, (max(1, int(limit)),), "ORDER BY id DESC LIMIT ?")

    @guarded
    def get(self, ref: str | int) -> Alert:
        """By episode id ("12", "#12", 12) or fingerprint / unique fingerprint prefix (>= 4 hex).
        Raises AlertNotFound."""
        text = str(ref).strip().lstrip("#")
        if text.isdigit():
            found = self._rows("id = ?", (int(text),))
            if found:
                return found[0]
            if len(text) < 4:
                raise AlertNotFound(f"no alert with id {text}")
        low = text.lower()
        if len(low) < 4 or any(c not in "0123456789abcdef" for c in low):
            raise AlertNotFound(
                f"no alert {ref!r} (use the numeric id or at least 4 characters of the fingerprint)"
            )
        with self.lock:
            fps = [
                r[0]
                for r in self.db.execute(
                    "SELECT DISTINCT fingerprint FROM alerts WHERE fingerprint LIKE ? LIMIT 3", (low + "%",)
                )
            ]
        if not fps:
            raise AlertNotFound(f"no alert with id or fingerprint {text!r}")
        if len(fps) > 1:
            raise AlertNotFound(f"{text!r} matches several alerts ({', '.join(fps)}); type more of it")
        return self._rows("fingerprint = ?", (fps[0],), "ORDER BY id DESC LIMIT 1")[0]

    @guarded
    def last_evaluated_at(self) -> datetime | None:
        with self.lock:
            row = self.db.execute(_LAST_EVALUATED).fetchone()
        return parse_iso(row[0]) if row else None

    @guarded
    def pending(self) -> list[tuple[str, datetime]]:
        with self.lock:
            return [
                (k, datetime.fromisoformat(t))
                for k, t in self.db.execute("SELECT key, first_seen FROM alert_pending ORDER BY key")
            ]

    # ---------------------------------------------------------------- operator actions

    @guarded
    def ack(
        self, ref: str | int, who: str, comment: str | None = None, *, now: datetime | None = None
    ) -> Alert:
        """Record an ack. Every ack is kept (`Alert.acks`); a concurrent ack from another
        connection is added next to this one, never overwritten."""
        alert = self.get(ref)
        at = iso(now or _utcnow())
        with self.lock, self.db.transaction():
            self.db.execute(
                "INSERT INTO alert_acks(alert_id, who, at, comment) VALUES (?, ?, ?, ?)",
                (alert.id, who, at, comment),
            )
            # The summary fields follow the newest ack by time (not by who wrote last).
            self.db.notify(f"alerts:ack:{alert.id}")
            self.db.execute(
                "UPDATE alerts SET acked_by = ?, acked_at = ?, ack_comment = ?"
                " WHERE id = ? AND (acked_at IS NULL OR acked_at <= ?)",
                (who, at, comment, alert.id, at),
            )
        return self.get(alert.id)

    @guarded
    def mute(
        self,
        ref: str | int,
        *,
        until: datetime | None = None,
        until_resolved: bool = False,
        who: str | None = None,
        comment: str | None = None,
        now: datetime | None = None,
    ) -> Alert:
        """Mute one alert until a time or until it resolves (exactly one of the two)."""
        if (until is None) == (not until_resolved):
            raise ValueError("mute needs exactly one of until=<datetime> or until_resolved=True")
        alert = self.get(ref)
        with self.lock, self.db.transaction():
            self.db.notify(f"alerts:mute:{alert.id}")
            self.db.execute(
                "UPDATE alerts SET muted_until = ?, mute_until_resolved = ?, muted_by = ?, muted_at = ?,"
                " mute_comment = ? WHERE id = ?",
                (iso(until), 1 if until_resolved else 0, who, iso(now or _utcnow()), comment, alert.id),
            )
        return self.get(alert.id)

    @guarded
    def unmute(self, ref: str | int) -> Alert:
        alert = self.get(ref)
        with self.lock, self.db.transaction():
            self.db.notify(f"alerts:unmute:{alert.id}")
            self.db.execute(
                "UPDATE alerts SET muted_until = NULL, mute_until_resolved = 0 WHERE id = ?", (alert.id,)
            )
        return self.get(alert.id)

    # ---------------------------------------------------------------- deliveries (notify.py)

    @guarded
    def delivery(self, alert_id: int, channel: str) -> Delivery | None:
        with self.lock:
            d = self.db.execute(
                "SELECT channel, target, status, attempts, rounds, last_error, last_attempt_at, delivered_at"
                " FROM alert_deliveries WHERE alert_id = ? AND channel = ?",
                (alert_id, channel),
            ).fetchone()
        return Delivery(d[0], d[1], d[2], d[3], d[4], d[5], parse_iso(d[6]), parse_iso(d[7])) if d else None

    @guarded
    def record_delivery(
        self,
        alert_id: int,
        channel: str,
        target: str,
        *,
        ok: bool,
        attempts: int,
        error: str | None,
        now: datetime,
        gave_up: bool = False,
        count_round: bool = True,
    ) -> None:
        """Upsert one channel's record. `count_round=False`: nothing was sent (the round's deadline
        or an interrupt came first), so the record says "not delivered" without using up a round."""
        status = "ok" if ok else ("gave_up" if gave_up else "failed")
        inc = 1 if count_round else 0
        with self.lock, self.db.transaction():
            self.db.execute(
                "INSERT INTO alert_deliveries(alert_id, channel, target, status, attempts, rounds,"
                " last_error, last_attempt_at, delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(alert_id, channel) DO UPDATE SET target = excluded.target,"
                " status = excluded.status, attempts = alert_deliveries.attempts + excluded.attempts,"
                " rounds = alert_deliveries.rounds + excluded.rounds,"
                " last_error = excluded.last_error, last_attempt_at = excluded.last_attempt_at,"
                " delivered_at = excluded.delivered_at, claimed_by = NULL, claimed_until = NULL",
                (
                    alert_id,
                    channel,
                    target,
                    status,
                    attempts,
                    inc,
                    error,
                    iso(now),
                    iso(now) if ok else None,
                ),
            )

    @guarded
    def claim_delivery(
        self, alert_id: int, channel: str, owner: str, *, now: datetime, hold_s: float = 120
    ) -> bool:
        """Claim the right to send `alert_id` on `channel` (exactly once across every cockpit on
        this ledger): True for the one claimer; False when it was delivered/given up or another
        cockpit holds a claim younger than `hold_s`. `record_delivery` releases the claim."""
        until = iso(now + timedelta(seconds=hold_s))
        with self.lock, self.db.transaction():
            cur = self.db.execute(
                "INSERT INTO alert_deliveries(alert_id, channel, target, status, claimed_by, claimed_until)"
                " VALUES (?, ?, '', 'claimed', ?, ?)"
                " ON CONFLICT(alert_id, channel) DO UPDATE SET claimed_by = excluded.claimed_by,"
                " claimed_until = excluded.claimed_until"
                " WHERE alert_deliveries.status NOT IN ('ok', 'gave_up')"
                " AND (alert_deliveries.claimed_until IS NULL OR alert_deliveries.claimed_until < ?"
                " OR alert_deliveries.claimed_by = excluded.claimed_by)",
                (alert_id, channel, owner, until, iso(now)),
            )
            return cur.rowcount > 0

    def changes(self) -> ChangeFeed:
        """A feed that says when another cockpit changed the alert state (ack, mute, evaluation):
        PostgreSQL LISTEN on its own connection, SQLite's data_version. Poll it once per refresh."""
        return ChangeFeed(self.db)

    # ---------------------------------------------------------------- evaluation

    @guarded
    def apply(
        self,
        candidates: Iterable[AlertCandidate],
        now: datetime,
        *,
        unknown: frozenset[str] = frozenset(),
        history_keep: int = 2000,
    ) -> tuple[list[int], list[int], int]:
        """Transition the stored alerts to match this round's candidates, in one transaction.

        Returns (newly firing ids, newly resolved ids, pending count). A round in which nothing
        changed writes one row (alert_meta's last_evaluated_at, which is the `last_seen` of every
        firing alert seen again, see `held`): no alert or pending row is rewritten.
        """
        now_s = iso(now)
        fired: list[int] = []
        resolved: list[int] = []
        with (
            self.lock,
            self.db.transaction(lock="alerts"),
        ):  # one evaluator at a time (TUI, cron, other cockpits)
            conn = self.db
            # The firing alerts as last read still stand: this round's writes can be patched in.
            patchable = self._active is not None and self.active_mark() == self._active[0]
            row = conn.execute(_LAST_EVALUATED).fetchone()
            prev_round = row[0] if row else None  # when every firing alert not held was last seen
            firing = {
                k: (i, s, seen_at, held)
                for i, k, s, seen_at, held in conn.execute(
                    "SELECT id, key, scope, last_seen, held FROM alerts WHERE state = 'firing'"
                )
            }
            pending = {
                k: (datetime.fromisoformat(f), s)
                for k, f, s in conn.execute("SELECT key, first_seen, scope FROM alert_pending")
            }
            seen: set[str] = set()
            hold_end: datetime | None = None  # the first pending candidate's hold to run out
            updates: list[tuple] = []
            touches: list[tuple[str, int]] = []  # held alerts seen again unchanged: last_seen only
            last_written, written = self._written, {}
            for c in candidates:
                seen.add(c.key)
                if c.key in firing:
                    aid, _, seen_at, held = firing[c.key]
                    was = last_written.get(c.key)
                    if (
                        was is not None
                        and was[0] == aid
                        and was[1] == seen_at
                        and (was[2] is c or was[2] == c or c.same_but_clock(was[2]))
                    ):
                        # Unchanged (but for an age that grows with the clock: its stored value
                        # is the one the summary was written with) and nobody rewrote it since.
                        if held:
                            touches.append((now_s, aid))
                            written[c.key] = (aid, now_s, was[2])  # what its row holds
                        else:
                            written[c.key] = was
                        continue
                    written[c.key] = (aid, now_s, c)
                    updates.append(
                        (
                            c.severity.value,
                            c.summary,
                            c.threshold,
                            c.scope,
                            json.dumps([e.to_dict() for e in c.evidence], ensure_ascii=False),
                            json.dumps(dict(c.details), ensure_ascii=False, default=str),
                            now_s,
                            aid,
                        )
                    )
                    continue
                start = pending[c.key][0] if c.key in pending else now
                if c.since is not None and c.since < start:
                    start = c.since
                if (now - start).total_seconds() < c.hold_s:
                    ends = start + timedelta(seconds=c.hold_s)
                    hold_end = ends if hold_end is None or ends < hold_end else hold_end
                    if pending.get(c.key) == (start, c.scope):
                        continue  # pending as it was: its hold is judged again next round
                    conn.execute(
                        "INSERT INTO alert_pending(key, rule, scope, first_seen, last_seen)"
                        " VALUES (?,?,?,?,?)"
                        " ON CONFLICT(key) DO UPDATE SET first_seen = excluded.first_seen,"
                        " scope = excluded.scope, last_seen = excluded.last_seen",
                        (c.key, c.rule, c.scope, iso(start), now_s),
                    )
                    continue
                conn.execute("DELETE FROM alert_pending WHERE key = ?", (c.key,))
                # Encoded only here: a pending candidate (held, not firing yet) stores no evidence.
                ev = json.dumps([e.to_dict() for e in c.evidence], ensure_ascii=False)
                details = json.dumps(dict(c.details), ensure_ascii=False, default=str)
                # A time-bound mute of the previous episode carries over while it lasts.
                prev = conn.execute(
                    "SELECT muted_until, muted_by, muted_at, mute_comment FROM alerts WHERE key = ?"
                    " AND muted_until > ? ORDER BY id DESC LIMIT 1",
                    (c.key, now_s),
                ).fetchone()
                new_id = conn.insert_id(
                    "INSERT INTO alerts(fingerprint, key, rule, severity, summary, threshold, scope,"
                    " evidence_json, details_json, state, first_seen, fired_at, last_seen, muted_until,"
                    " muted_by, muted_at, mute_comment)"
                    " VALUES (?,?,?,?,?,?,?,?,?,'firing',?,?,?,?,?,?,?)",
                    (
                        fingerprint(c.key),
                        c.key,
                        c.rule,
                        c.severity.value,
                        c.summary,
                        c.threshold,
                        c.scope,
                        ev,
                        details,
                        iso(start),
                        now_s,
                        now_s,
                        *(prev or (None, None, None, None)),
                    ),
                )
                fired.append(new_id)
                written[c.key] = (new_id, now_s, c)
            # One prepared statement for every still-firing alert (thousands when a provider
            # auto-pauses a whole fleet).
            if updates:
                conn.executemany(
                    "UPDATE alerts SET severity = ?, summary = ?, threshold = ?, scope = ?,"
                    " evidence_json = ?, details_json = ?, last_seen = ?, held = 0 WHERE id = ?",
                    updates,
                )
            if touches:
                conn.executemany("UPDATE alerts SET last_seen = ?, held = 0 WHERE id = ?", touches)
            held_now: list[int] = []
            for key, (aid, scope, seen_at, held) in firing.items():
                if key in seen:
                    continue
                # Not seen this round: it was last seen when it was written (held) or, if it was
                # seen by the previous round, then; that time is frozen into its row now.
                last = seen_at if held or prev_round is None or prev_round < seen_at else prev_round
                if scope is not None and scope in unknown:
                    if not held:  # its input is unknown: kept, not resolved
                        conn.execute("UPDATE alerts SET held = 1, last_seen = ? WHERE id = ?", (last, aid))
                        held_now.append(aid)
                    continue
                conn.execute(
                    "UPDATE alerts SET state = 'resolved', resolved_at = ?, last_seen = ?, held = 0"
                    " WHERE id = ?",
                    (now_s, last, aid),
                )
                resolved.append(aid)
            for key, (_, scope) in pending.items():
                if key not in seen and not (scope is not None and scope in unknown):
                    conn.execute("DELETE FROM alert_pending WHERE key = ?", (key,))
            n_pending = conn.execute("SELECT COUNT(*) FROM alert_pending").fetchone()[0]
            conn.execute(_SET_LAST_EVALUATED, (now_s,))
            if fired or resolved or updates or touches or held_now:  # what active() shows changed
                conn.execute(
                    "INSERT INTO alert_meta(k, v) VALUES ('rev', '1')"
                    " ON CONFLICT(k) DO UPDATE SET v = CAST(CAST(alert_meta.v AS INTEGER) + 1 AS TEXT)"
                )
            if resolved or not self._pruned:  # history grows only by resolving
                self._prune(history_keep)
            if fired or resolved:
                conn.notify(f"alerts:apply:{len(fired)}:{len(resolved)}")
            patch = None
            if patchable:
                seen_ids = frozenset([*fired, *(u[-1] for u in updates), *(t[1] for t in touches)])
                patch = _Patch(self.active_mark(), seen_ids, frozenset(held_now), frozenset(resolved))
        self._written = written  # only once committed: a rolled-back round wrote nothing
        self._patch = patch
        self.hold_ends_at = hold_end
        self._pruned = True
        return fired, resolved, int(n_pending)

    @guarded
    def mark_evaluated(self, now: datetime) -> None:
        """Record a round at `now` that judged the inputs of the last `apply` again (nothing
        changed, nothing due: services/alert_quiet.py): what that apply would write then, the one
        row saying when the firing alerts were last seen."""
        with self.lock, self.db.transaction(lock="alerts"):
            self.db.execute(_SET_LAST_EVALUATED, (iso(now),))

    def _prune(self, keep: int) -> None:
        row = self.db.execute(
            "SELECT id FROM alerts WHERE state = 'resolved' ORDER BY id DESC LIMIT 1 OFFSET ?", (keep,)
        ).fetchone()
        if row is None:
            return
        for table in ("alert_deliveries", "alert_acks"):
            self.db.execute(
                f"DELETE FROM {table} WHERE alert_id IN"
                " (SELECT id FROM alerts WHERE state = 'resolved' AND id <= ?)",
                (row[0],),
            )
        self.db.execute("DELETE FROM alerts WHERE state = 'resolved' AND id <= ?", (row[0],))

    @guarded
    def by_ids(self, ids: Sequence[int]) -> list[Alert]:
        if not ids:
            return []
        return sorted(self._rows(f"id IN ({','.join('?' * len(ids))})", list(ids)), key=alert_order)


def _alert(
    r: tuple, deliveries: tuple[Delivery, ...], acks: tuple[Ack, ...] = (), live_at: datetime | None = None
) -> Alert:
    """One alerts row -> Alert. A firing alert not held was seen by the last evaluation
    (`live_at`, alert_meta's last_evaluated_at): rounds that see it unchanged do not rewrite it."""
    last_seen = datetime.fromisoformat(r[13])
    if live_at is not None and r[10] == "firing" and not r[23] and live_at > last_seen:
        last_seen = live_at
    evidence = tuple(
        Evidence(e.get("kind", ""), e.get("id", ""), e.get("note", "")) for e in json.loads(r[8])
    )
    try:
        sev = Severity(r[4])
    except ValueError:
        sev = Severity.WARNING
    return Alert(
        id=r[0],
        fingerprint=r[1],
        key=r[2],
        rule=r[3],
        severity=sev,
        summary=r[5],
        threshold=r[6],
        scope=r[7],
        evidence=evidence,
        details=json.loads(r[9]),
        state=r[10],
        first_seen=datetime.fromisoformat(r[11]),
        fired_at=datetime.fromisoformat(r[12]),
        last_seen=last_seen,
        resolved_at=parse_iso(r[14]),
        acked_by=r[15],
        acked_at=parse_iso(r[16]),
        ack_comment=r[17],
        muted_until=parse_iso(r[18]),
        mute_until_resolved=bool(r[19]),
        muted_by=r[20],
        muted_at=parse_iso(r[21]),
        mute_comment=r[22],
        deliveries=deliveries,
        acks=acks,
    )


@dataclass
class ChangeFeed:
    """`poll()` -> the change notes other cockpits sent since the last poll (never blocks).

    PostgreSQL: a LISTEN connection in autocommit (NOTIFY arrives after the sender's commit);
    SQLite: one note "changed" when the file's data_version moved. A feed that cannot listen
    (the server went away) returns ["?"]: re-read everything, the reconnect is automatic.
    """

    db: LedgerDb
    _listen: object = None
    _version: int | None = None

    def __post_init__(self) -> None:
        self.poll()

    @property
    def instant(self) -> bool:
        """poll() answers from the open file at once (SQLite's data_version: no network, no
        connect), so a caller may ask it without a thread (issue 10, idle tick)."""
        return isinstance(self.db, SqliteDb)

    def poll(self) -> list[str]:
        if isinstance(self.db, SqliteDb):
            v = self.db.data_version()
            changed = self._version is not None and v != self._version
            self._version = v
            return ["changed"] if changed else []
        return self._poll_pg()

    def _poll_pg(self) -> list[str]:
        from opcockpit.adapters.ledger.backend import NOTIFY_CHANNEL, is_db_error

        try:
            fresh = self._listen is None
            if fresh:
                import psycopg

                conn = psycopg.connect(self.db.target.url or "", autocommit=True, connect_timeout=5)
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                self._listen = conn
            conn = self._listen
            notes = [n.payload for n in conn.notifies(timeout=0)]  # type: ignore[attr-defined]
            return notes
        except Exception as exc:
            if not is_db_error(exc):
                raise
            self.close()
            return ["?"]

    def close(self) -> None:
        conn, self._listen = self._listen, None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a dead connection
                conn.close()  # type: ignore[attr-defined]
