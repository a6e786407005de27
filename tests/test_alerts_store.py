"""Alert lifecycle in the ledger: ack/mute survive restarts (the ledger file is reopened), mute
expiry against the injected clock, episodes and history, ids, and `snapshot --check`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.alerts import AlertNotFound, AlertStore, fingerprint
from opcockpit.cli.alerts_cli import check_for_snapshot, parse_duration
from opcockpit.domain.alerts import AlertsConfig
from opcockpit.services.alert_engine import AlertEngine
from opcockpit.wiring import build_alert_engine
from tests.alerts_support import T0, Clock, ground_truth, listing, naive, sandbox_db
from tests.fixtures.leon_db import add_lease

L1, L2 = "lease-aaaaaaaaaaaa", "lease-bbbbbbbbbbbb"
CFG = AlertsConfig(recovering_for_s=0)


def _db(tmp_path: Path, *recovering: str) -> Path:
    def build(conn) -> None:  # type: ignore[no-untyped-def]
        for lid in recovering:
            add_lease(conn, lid, "docker", status="recovering", created_at=naive(T0), updated_at=naive(T0))

    return sandbox_db(tmp_path / f"sandbox-{len(recovering)}.db", build)


def _gt(db: Path, clock: Clock):  # type: ignore[no-untyped-def]
    return ground_truth(db, [listing("docker", "docker", listed_at=clock.now)], clock.now)


def _engine(ledger: Path, clock: Clock, cfg: AlertsConfig = CFG) -> AlertEngine:
    return build_alert_engine(AlertStore.open(ledger), cfg, clock)


def test_ack_and_mute_survive_a_restart(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    db = _db(tmp_path, L1, L2)
    clock = Clock()
    eng = _engine(ledger, clock)
    snap = eng.evaluate(_gt(db, clock))
    a1, a2 = sorted(snap.active, key=lambda a: a.key)
    eng.ack(a1.id, "alice@host", "looking at the docker daemon")
    eng.mute(f"#{a2.id}", clock.now + timedelta(hours=2), who="bob@host", comment="known")
    eng.store.close()

    clock.advance(60)
    eng2 = _engine(ledger, clock)  # a new process: only the file is shared
    got1, got2 = eng2.get(a1.id), eng2.get(a2.id)
    assert got1.acked_by == "alice@host" and got1.ack_comment == "looking at the docker daemon"
    assert got1.acked_at == T0
    assert got2.muted_until == T0 + timedelta(hours=2) and got2.muted_by == "bob@host"
    assert got2.is_muted(clock.now) and not got1.is_muted(clock.now)
    snap = eng2.evaluate(_gt(db, clock))
    assert [a.id for a in snap.unmuted] == [a1.id]  # same episodes after the restart, mute intact
    assert {a.id for a in snap.active} == {a1.id, a2.id}
    assert snap.counts()["warning"] == 1


def test_mute_expires_by_the_clock(tmp_path: Path) -> None:
    db = _db(tmp_path, L1)
    clock = Clock()
    eng = _engine(tmp_path / "ledger.db", clock)
    a = eng.evaluate(_gt(db, clock)).active[0]
    eng.mute(a.id, clock.now + parse_duration("30m"))
    clock.advance(29 * 60)
    assert eng.evaluate(_gt(db, clock)).unmuted == ()
    clock.advance(2 * 60)
    snap = eng.evaluate(_gt(db, clock))
    assert [x.id for x in snap.unmuted] == [a.id]


def test_mute_until_resolved_ends_with_the_episode(tmp_path: Path) -> None:
    with_lease, without = _db(tmp_path, L1), _db(tmp_path)
    clock = Clock()
    eng = _engine(tmp_path / "ledger.db", clock)
    first = eng.evaluate(_gt(with_lease, clock)).active[0]
    eng.mute(first.id, until_resolved=True)
    assert eng.evaluate(_gt(with_lease, clock)).unmuted == ()
    clock.advance(60)
    assert [a.id for a in eng.evaluate(_gt(without, clock)).newly_resolved] == [first.id]
    assert not eng.get(first.id).is_muted(clock.now)
    clock.advance(60)
    snap = eng.evaluate(_gt(with_lease, clock))
    second = snap.active[0]
    assert second.id != first.id and second.key == first.key and second.fingerprint == first.fingerprint
    assert snap.unmuted == (second,)  # a new episode is not silenced by the old one's until-resolved mute


def test_time_mute_carries_over_to_a_new_episode_while_it_lasts(tmp_path: Path) -> None:
    with_lease, without = _db(tmp_path, L1), _db(tmp_path)
    clock = Clock()
    eng = _engine(tmp_path / "ledger.db", clock)
    first = eng.evaluate(_gt(with_lease, clock)).active[0]
    eng.mute(first.id, clock.now + timedelta(hours=1))
    clock.advance(60)
    eng.evaluate(_gt(without, clock))
    clock.advance(60)
    snap = eng.evaluate(_gt(with_lease, clock))
    assert snap.active[0].id != first.id and snap.unmuted == ()
    clock.advance(3600)
    assert len(eng.evaluate(_gt(with_lease, clock)).unmuted) == 1


def test_ids_fingerprints_history_and_pruning(tmp_path: Path) -> None:
    with_lease, without = _db(tmp_path, L1), _db(tmp_path)
    clock = Clock()
    eng = _engine(tmp_path / "ledger.db", clock, AlertsConfig(recovering_for_s=0, history_keep=10))
    ids = []
    for _ in range(14):  # 14 episodes of the same key
        ids.append(eng.evaluate(_gt(with_lease, clock)).active[0].id)
        clock.advance(60)
        eng.evaluate(_gt(without, clock))
        clock.advance(60)
    fp = fingerprint(f"lease_recovering:{L1}")
    assert eng.get(fp).id == ids[-1]  # a fingerprint means the key's newest episode
    assert eng.get(fp[:4]).id == ids[-1]
    assert eng.get(str(ids[-1])).fingerprint == fp
    hist = eng.history(100)
    assert [a.id for a in hist] == sorted(ids[-10:], reverse=True)  # older resolved episodes pruned
    assert all(a.state == "resolved" and a.resolved_at is not None for a in hist)
    with pytest.raises(AlertNotFound):
        eng.get(ids[0])
    with pytest.raises(AlertNotFound):
        eng.get("zz")
    with pytest.raises(ValueError):
        eng.mute(ids[-1])  # neither until nor until_resolved


def test_two_engines_on_one_ledger_do_not_duplicate(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    db = _db(tmp_path, L1)
    clock = Clock()
    e1, e2 = _engine(ledger, clock), _engine(ledger, clock)  # e.g. the TUI and a cron --check
    a = e1.evaluate(_gt(db, clock)).active
    b = e2.evaluate(_gt(db, clock)).active
    assert [x.id for x in a] == [x.id for x in b] and len(a) == 1


def test_check_for_snapshot_exit_codes(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    db = _db(tmp_path, L1)
    gt = _gt(db, Clock())
    alerts, code = check_for_snapshot(gt, CFG, ledger_path=ledger, now=T0)
    assert code == 1 and [a.key for a in alerts] == [f"lease_recovering:{L1}"]
    with AlertStore.open(ledger) as store:
        store.mute(alerts[0].id, until=T0 + timedelta(hours=1), who="op")
    alerts, code = check_for_snapshot(gt, CFG, ledger_path=ledger, now=T0 + timedelta(minutes=5))
    assert code == 0 and len(alerts) == 1 and alerts[0].is_muted(T0 + timedelta(minutes=5))
    clean = _gt(_db(tmp_path), Clock())
    alerts, code = check_for_snapshot(clean, CFG, ledger_path=ledger, now=T0 + timedelta(minutes=6))
    assert (alerts, code) == ([], 0)
