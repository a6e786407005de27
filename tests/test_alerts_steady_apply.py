"""AlertStore.apply encodes only what changed (issue 10, steady-state CPU) and stores what a full
rewrite stores: after every round each firing alert's row holds exactly that round's candidate
(severity, summary, threshold, scope, evidence, details) and reads back `last_seen` = the round's
time, also when another cockpit on the same ledger file wrote the row in between. A round in which
nothing changed writes no alert row at all (issue 10, idle tick)."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.alerts import Alert, AlertStore
from opcockpit.domain.alerts import AlertCandidate, Evidence, Severity
from opcockpit.ports.alert_records import iso
from tests.alerts_support import T0


def _cand(key: str, note: str = "diverged", severity: Severity = Severity.WARNING) -> AlertCandidate:
    return AlertCandidate(
        rule="lease_diverged",
        key=f"lease_diverged:{key}",
        severity=severity,
        summary=f"docker lease {key} {note}",
        evidence=(Evidence("lease", key, note),),
        threshold="diverged for > 10m",
        scope="docker",
        details={"desired": "running", "observed": "paused", "note": note},
    )


def _firing(store: AlertStore) -> dict[str, tuple[object, ...]]:
    """The stored firing alerts, with `last_seen` as the store reads it back (an alert seen again
    unchanged is not rewritten: its last sighting is the last evaluation's time)."""
    rows = store.db.execute(
        "SELECT key, severity, summary, threshold, scope, evidence_json, details_json"
        " FROM alerts WHERE state = 'firing'"
    ).fetchall()
    seen = {a.key: iso(a.last_seen) for a in store.history(1000) if a.firing}  # read afresh
    return {r[0]: (*r[1:], seen[r[0]]) for r in rows}


def _expected(cands: list[AlertCandidate], now: datetime) -> dict[str, tuple[object, ...]]:
    return {
        c.key: (
            c.severity.value,
            c.summary,
            c.threshold,
            c.scope,
            json.dumps([e.to_dict() for e in c.evidence], ensure_ascii=False),
            json.dumps(dict(c.details), ensure_ascii=False, default=str),
            iso(now),
        )
        for c in cands
    }


def test_unchanged_alerts_move_last_seen_and_changed_ones_are_rewritten(tmp_path: Path) -> None:
    store = AlertStore.open(tmp_path / "ledger.db")
    now = T0
    rounds = [
        [_cand("a"), _cand("b"), _cand("c")],
        [_cand("a"), _cand("b"), _cand("c")],  # equal, new objects: last_seen only
        [_cand("a"), _cand("b", "still diverged"), _cand("c", severity=Severity.CRITICAL)],
        [_cand("a"), _cand("b", "still diverged")],  # c resolves
        [_cand("a"), _cand("b", "still diverged"), _cand("c")],  # c fires again: a new episode
    ]
    ids: dict[str, int] = {}
    for cands in rounds:
        now += timedelta(seconds=10)
        fired, _, _ = store.apply(cands, now)
        assert _firing(store) == _expected(cands, now)
        for a in store.by_ids(fired):
            assert a.key not in ids or ids[a.key] != a.id
            ids[a.key] = a.id
    resolved_c = store.db.execute(
        "SELECT severity, last_seen FROM alerts WHERE state = 'resolved' AND key = 'lease_diverged:c'"
    ).fetchone()
    assert resolved_c == ("critical", iso(T0 + timedelta(seconds=30)))  # as it was last seen firing
    store.close()


def test_a_row_another_cockpit_wrote_is_rewritten_whole(tmp_path: Path) -> None:
    ours, theirs = AlertStore.open(tmp_path / "ledger.db"), AlertStore.open(tmp_path / "ledger.db")
    now = T0
    mine = [_cand("a"), _cand("b")]
    ours.apply(mine, now)
    now += timedelta(seconds=5)
    other = [_cand("a", "seen otherwise"), _cand("b")]
    theirs.apply(other, now)  # e.g. a second cockpit whose picture differs for lease a
    assert _firing(ours) == _expected(other, now)
    now += timedelta(seconds=5)
    ours.apply(mine, now)  # equal to what *we* wrote last, but the row is no longer ours
    assert _firing(ours) == _expected(mine, now)
    ours.close()
    theirs.close()


def _changes(store: AlertStore) -> int:
    return int(store.db.execute("SELECT total_changes()").fetchone()[0])


def test_an_idle_round_rewrites_no_alert_and_rereads_nothing(tmp_path: Path) -> None:
    store = AlertStore.open(tmp_path / "ledger.db")
    now = T0
    cands = [_cand("a"), _cand("b")]
    store.apply(cands, now)
    first = store.active()
    for _ in range(3):
        now += timedelta(seconds=10)
        before = _changes(store)
        fired, resolved, _ = store.apply([_cand("a"), _cand("b")], now)  # equal, new objects
        assert (fired, resolved) == ([], [])
        assert _changes(store) - before == 1  # alert_meta's last_evaluated_at, nothing else
        again = store.active()
        assert all(x is y for x, y in zip(again, first, strict=True))  # not read again
        assert {store.seen_at(a, now) for a in again} == {now}
        assert {iso(a.last_seen) for a in AlertStore.open(tmp_path / "ledger.db").active()} == {iso(now)}
    store.close()


def test_an_alert_kept_unseen_freezes_its_last_sighting(tmp_path: Path) -> None:
    store = AlertStore.open(tmp_path / "ledger.db")
    store.apply([_cand("a"), _cand("b")], T0)
    store.apply([_cand("a"), _cand("b")], T0 + timedelta(seconds=10))
    # docker could not be listed: b is kept (scope unknown), not resolved, and was last seen at +10
    store.apply([_cand("a")], T0 + timedelta(seconds=20), unknown=frozenset({"docker"}))
    store.apply([_cand("a")], T0 + timedelta(seconds=30), unknown=frozenset({"docker"}))
    seen = {a.key: a.last_seen for a in store.active()}
    assert seen == {
        "lease_diverged:a": T0 + timedelta(seconds=30),
        "lease_diverged:b": T0 + timedelta(seconds=10),
    }
    b = next(a for a in store.active() if a.key == "lease_diverged:b")
    assert store.seen_at(b, T0 + timedelta(seconds=30)) == T0 + timedelta(seconds=10)
    store.apply([_cand("a"), _cand("b")], T0 + timedelta(seconds=40))  # seen again
    # a was unchanged: the same object as before (last read at +30), seen by this round
    assert {store.seen_at(a, T0 + timedelta(seconds=40)) for a in store.active()} == {
        T0 + timedelta(seconds=40)
    }
    _, resolved, _ = store.apply([_cand("a")], T0 + timedelta(seconds=50))  # b is gone
    (gone,) = store.by_ids(resolved)
    assert gone.last_seen == T0 + timedelta(seconds=40)  # its last sighting, not the round's
    store.close()


def test_a_pending_candidate_is_not_rewritten_and_still_fires_when_its_hold_ends(tmp_path: Path) -> None:
    store = AlertStore.open(tmp_path / "ledger.db")
    held = replace(_cand("a"), hold_s=60.0)
    store.apply([held], T0)
    before = _changes(store)
    fired, _, n_pending = store.apply([held], T0 + timedelta(seconds=30))
    assert (fired, n_pending, _changes(store) - before) == ([], 1, 1)  # only last_evaluated_at
    fired, _, n_pending = store.apply([held], T0 + timedelta(seconds=60))  # nothing else changed
    assert n_pending == 0 and [a.first_seen for a in store.by_ids(fired)] == [T0]
    store.close()


def test_a_round_that_changed_one_alert_decodes_only_that_one(tmp_path: Path) -> None:
    store = AlertStore.open(tmp_path / "ledger.db")
    store.apply([_cand("a"), _cand("b"), _cand("c")], T0)
    first = {a.key: a for a in store.active()}
    store.apply([_cand("a"), _cand("b", "still diverged"), _cand("c")], T0 + timedelta(seconds=10))
    again = {a.key: a for a in store.active()}
    assert again["lease_diverged:a"] is first["lease_diverged:a"]
    assert again["lease_diverged:c"] is first["lease_diverged:c"]
    assert again["lease_diverged:b"].summary == "docker lease b still diverged"
    store.ack(again["lease_diverged:c"].id, "alice", "mine", now=T0 + timedelta(seconds=15))
    acked = {a.key: a for a in store.active()}
    assert (
        acked["lease_diverged:c"].acked_by == "alice"
        and acked["lease_diverged:a"] is first["lease_diverged:a"]
    )
    store.close()


def _stuck(idle_s: float, text: str) -> AlertCandidate:
    return AlertCandidate(
        rule="stuck_run",
        key="stuck_run:run-1",
        severity=Severity.WARNING,
        summary=f"run run-1 on thread t-1: no event for {text} (3 events)",
        evidence=(Evidence("run", "run-1"),),
        threshold="no event for > 10m",
        scope="@events_db",
        details={"idle_s": idle_s, "event_count": 3},
        clock_details=("idle_s",),
    )


def test_an_age_that_only_grows_with_the_clock_is_rewritten_with_its_summary(tmp_path: Path) -> None:
    store = AlertStore.open(tmp_path / "ledger.db")

    def stored() -> tuple[str, dict[str, object]]:
        row = store.db.execute("SELECT summary, details_json FROM alerts WHERE state = 'firing'").fetchone()
        return row[0], json.loads(row[1])

    store.apply([_stuck(700.0, "11m")], T0)
    before = _changes(store)
    store.apply([_stuck(710.0, "11m")], T0 + timedelta(seconds=10))  # only the idle time grew
    assert _changes(store) - before == 1 and stored()[1]["idle_s"] == 700.0  # as the summary says
    store.apply([_stuck(720.0, "12m")], T0 + timedelta(seconds=20))  # the summary's text moved
    assert stored() == (
        "run run-1 on thread t-1: no event for 12m (3 events)",
        {"idle_s": 720.0, "event_count": 3},
    )
    store.apply(
        [replace(_stuck(730.0, "12m"), details={"idle_s": 730.0, "event_count": 4})],
        T0 + timedelta(seconds=30),
    )
    assert stored()[1] == {"idle_s": 730.0, "event_count": 4}  # anything else changed: all of it is
    store.close()


def _view(a: Alert, last_seen: datetime) -> tuple[object, ...]:
    return (a.id, a.key, a.severity, a.summary, a.evidence, a.details, a.state, a.acks, a.deliveries,
            a.muted_until, last_seen)  # fmt: skip


def _raw(store: AlertStore) -> dict[int, tuple[object, ...]]:
    rows = store.db.execute("SELECT * FROM alerts WHERE state = 'firing'").fetchall()
    acks = store.db.execute("SELECT alert_id, count(*) FROM alert_acks GROUP BY alert_id").fetchall()
    n = dict(acks)
    return {r[0]: (*r, n.get(r[0], 0)) for r in rows}


@pytest.mark.parametrize("seed", range(6))
def test_the_firing_alerts_patched_after_a_round_equal_a_fresh_read(tmp_path: Path, seed: int) -> None:
    """active() after this store's own round re-reads only what the round wrote (the rest are the
    objects of the last read); whatever the rounds did (fire, rewrite, keep unseen, see again,
    resolve) and a team mate's ack in between, it equals what a fresh store reads."""
    rng = random.Random(seed)
    path = tmp_path / "ledger.db"
    store, mate = AlertStore.open(path), AlertStore.open(path)
    keys, now = [f"k{i}" for i in range(12)], T0
    for _ in range(25):
        now += timedelta(seconds=10)
        cands = [_cand(k, rng.choice(["diverged", "still diverged"])) for k in keys if rng.random() < 0.8]
        before = {a.id: a for a in store.active()}
        raw = _raw(store)
        store.apply(cands, now, unknown=frozenset({"docker"}) if rng.random() < 0.2 else frozenset())
        if rng.random() < 0.2 and before:
            mate.ack(rng.choice(sorted(before)), "alice", "seen", now=now)
        got = store.active()
        fresh = AlertStore.open(path)
        want = fresh.active()
        fresh.close()
        assert [_view(a, store.seen_at(a, now)) for a in got] == [_view(a, a.last_seen) for a in want]
        after = _raw(store)
        for a in got:  # an alert nobody wrote is the object of the last read, not decoded again
            if a.id in before and raw.get(a.id) == after[a.id]:
                assert a is before[a.id]
    store.close()
    mate.close()
