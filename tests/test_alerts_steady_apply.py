"""AlertStore.apply encodes only what changed (issue 10, steady-state CPU) and stores what a full
rewrite stores: after every round each firing alert's row holds exactly that round's candidate
(severity, summary, threshold, scope, evidence, details) and `last_seen` = the round's time, also
when another cockpit on the same ledger file wrote the row in between."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from opcockpit.adapters.ledger.alerts import AlertStore
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
    rows = store.db.execute(
        "SELECT key, severity, summary, threshold, scope, evidence_json, details_json, last_seen"
        " FROM alerts WHERE state = 'firing'"
    ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


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
