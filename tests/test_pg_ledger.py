"""The ledger on a real PostgreSQL (tests/fixtures/postgres.py) and on SQLite, same tests: audit
rows, alert lifecycle, several cockpits on one ledger (ack/mute seen by the others, NOTIFY,
exactly-once delivery claims), migrations, and the faults (wrong password, server down) as one
line without the password."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.adapters.ledger.alerts_schema import MIGRATIONS as ALERT_MIGRATIONS
from opcockpit.adapters.ledger.audit import AuditLog, list_audit
from opcockpit.adapters.ledger.backend import LedgerTarget, connect, schema_status
from opcockpit.domain.alerts import AlertCandidate, Evidence, Severity
from opcockpit.ports.ledger import LedgerError
from tests.fixtures.postgres import PASSWORD, PgServer, pg_server, pg_url  # noqa: F401

T0 = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return request.getfixturevalue("pg_url")


def cand(key: str, *, hold_s: float = 0) -> AlertCandidate:
    return AlertCandidate(
        key=key, rule="lease_stuck", severity=Severity.WARNING, summary=f"{key} stuck", threshold="5m",
        scope="db", evidence=(Evidence("lease", key, "stuck"),), details={"n": 1}, hold_s=hold_s,
    )  # fmt: skip


def test_audit_round_trip_filters_and_settle(ledger: str) -> None:
    log = AuditLog(ledger)
    log.record(op_id="op1", operator="alice@host-a", action="pause", result="done", provider="e2b",
               lease_id="lease-aaa", instance_id="i-1", before={"s": "running"}, at=T0)  # fmt: skip
    log.begin(op_id="op2", operator="bob@host-b", action="destroy", provider="e2b", instance_id="i-x_y",
              at=T0 + timedelta(hours=1))  # fmt: skip
    assert log.finish("op2", result="done", outcome="destroyed", duration_ms=7)
    assert not log.finish("op2", result="failed")  # only a "started" row changes
    log.settle("op1", "converged")
    log.settle("op1", "failed")
    log.check()
    log.close()
    got = list_audit(10, path=ledger)
    assert [(e.op_id, e.operator) for e in got] == [("op2", "bob@host-b"), ("op1", "alice@host-a")]
    assert got[1].before == {"s": "running"} and got[1].convergence == "converged" and got[1].at == T0
    assert got[0].outcome == "destroyed" and got[0].duration_ms == 7
    assert [e.op_id for e in list_audit(10, target="i-x_", path=ledger)] == ["op2"]
    assert [e.op_id for e in list_audit(10, target="e2b/i-1", path=ledger)] == ["op1"]
    assert [e.op_id for e in list_audit(10, since=T0 + timedelta(minutes=30), path=ledger)] == ["op2"]
    assert len(list_audit(0, path=ledger)) == 2  # 0: no limit


def test_alert_lifecycle_ack_mute_and_history(ledger: str) -> None:
    store = AlertStore.open(ledger)
    fired, resolved, pending = store.apply([cand("k1", hold_s=60), cand("k2")], T0)
    assert len(fired) == 1 and resolved == [] and pending == 1
    fired2, _, pending2 = store.apply([cand("k1", hold_s=60), cand("k2")], T0 + timedelta(seconds=61))
    assert len(fired2) == 1 and pending2 == 0
    a2, a1 = store.get(fired[0]), store.get(fired2[0])
    store.ack(a1.fingerprint[:6], "alice@a", "on it", now=T0 + timedelta(minutes=2))
    store.mute(a2.id, until=T0 + timedelta(hours=1), who="bob@b", now=T0 + timedelta(minutes=2))
    _, resolved, _ = store.apply([cand("k1", hold_s=60)], T0 + timedelta(minutes=3))
    assert resolved == [a2.id]
    # k2 comes back while the time-bound mute lasts: the new episode inherits it
    (new2,), _, _ = store.apply([cand("k1", hold_s=60), cand("k2")], T0 + timedelta(minutes=4))
    assert new2 != a2.id and store.get(new2).muted_until == T0 + timedelta(hours=1)
    assert [a.acked_by for a in store.active() if a.id == a1.id] == ["alice@a"]
    assert [a.id for a in store.history(10, include_firing=False)] == [a2.id]
    store.record_delivery(a1.id, "webhook", "https://h/…", ok=False, attempts=2, error="503", now=T0)
    store.record_delivery(a1.id, "webhook", "https://h/…", ok=True, attempts=1, error=None, now=T0)
    d = store.delivery(a1.id, "webhook")
    assert d is not None and (d.status, d.attempts, d.rounds) == ("ok", 3, 2)
    store.close()


def _poll_until_noted(feed, wait_s: float = 10.0) -> list[str]:  # type: ignore[no-untyped-def]
    """A cockpit polls its feed once per refresh: poll like that until the note is there (a
    NOTIFY reaches another connection asynchronously; under load, after our first look)."""
    import time

    deadline = time.monotonic() + wait_s
    while not (notes := feed.poll()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return notes


def test_two_cockpits_share_acks_mutes_and_deliver_once(ledger: str) -> None:
    a, b = AlertStore.open(ledger), AlertStore.open(ledger)
    feed = b.changes()
    (aid,), _, _ = a.apply([cand("k1")], T0)
    # b's next evaluation keeps the same episode (no duplicate firing row)
    assert b.apply([cand("k1")], T0 + timedelta(seconds=30))[0] == []
    assert feed.poll()  # a's evaluation changed the state
    assert feed.poll() == []  # nothing new since
    a.ack(aid, "alice@a", now=T0 + timedelta(minutes=1))
    notes = _poll_until_noted(feed)  # NOTIFY reaches the listener asynchronously
    assert notes and (notes == ["changed"] or f"alerts:ack:{aid}" in notes)
    assert b.get(aid).acked_by == "alice@a"  # visible in the other cockpit on its next read
    b.mute(aid, until_resolved=True, who="bob@b")
    assert a.get(aid).mute_until_resolved and a.get(aid).muted_by == "bob@b"
    # exactly one cockpit gets to send
    now = T0 + timedelta(minutes=2)
    assert a.claim_delivery(aid, "webhook", "a@host", now=now)
    assert not b.claim_delivery(aid, "webhook", "b@host", now=now)
    assert a.claim_delivery(aid, "webhook", "a@host", now=now)  # the holder may retry
    assert b.claim_delivery(aid, "webhook", "b@host", now=now + timedelta(minutes=5))  # a stale claim
    b.record_delivery(aid, "webhook", "t", ok=True, attempts=1, error=None, now=now)
    assert not a.claim_delivery(aid, "webhook", "a@host", now=now + timedelta(hours=1))  # delivered
    feed.close()
    a.close()
    b.close()


def test_migrations_are_versioned_and_applied_once(ledger: str) -> None:
    AlertStore.open(ledger).close()
    AuditLog(ledger).list()
    db = connect(ledger)
    try:
        assert schema_status(db) == {"alerts": len(ALERT_MIGRATIONS), "audit": 1}
    finally:
        db.close()
    AlertStore.open(ledger).close()  # reopening applies nothing again
    db = connect(ledger)
    try:
        assert db.execute("SELECT COUNT(*) FROM ledger_schema").fetchone()[0] == 2
    finally:
        db.close()


def test_wrong_password_is_one_line_without_the_password(pg_server: PgServer) -> None:  # noqa: F811
    url = pg_server.url(password="Wr0ng-" + PASSWORD[::-1])
    with pytest.raises(LedgerError) as info:
        AuditLog(url).record(op_id="x", operator="a@b", action="pause", result="done")
    text = str(info.value)
    assert "password authentication failed" in text and "\n" not in text
    assert PASSWORD[::-1] not in text and "***" in text and info.value.path == LedgerTarget.parse(url).shown
    with pytest.raises(LedgerError) as info2:
        AlertStore.open(url)
    assert PASSWORD[::-1] not in str(info2.value)


def test_server_down_refuses_writes_then_reconnects(pg_server: PgServer, pg_url: str) -> None:  # noqa: F811
    log = AuditLog(pg_url)
    log.record(op_id="op1", operator="a@b", action="pause", result="done")
    pg_server.stop()
    try:
        with pytest.raises(LedgerError) as info:
            log.record(op_id="op2", operator="a@b", action="pause", result="done")
        assert PASSWORD not in str(info.value) and "\n" not in str(info.value)
        with pytest.raises(LedgerError):
            AlertStore.open(pg_url)
    finally:
        pg_server.start()
    log.record(op_id="op3", operator="a@b", action="pause", result="done")  # reconnected by itself
    assert [e.op_id for e in log.list()] == ["op3", "op1"]  # op2 refused, not half-written
    log.close()


def test_missing_schema_is_one_clear_line(pg_server: PgServer, pg_url: str) -> None:  # noqa: F811
    url = pg_url + "?options=-csearch_path%3Dnope"
    with pytest.raises(LedgerError) as info:
        AuditLog(url).list()
    assert "schema" in str(info.value) and PASSWORD not in str(info.value)


def test_sqlite_prefix_and_env_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert LedgerTarget.parse(f"sqlite:{tmp_path}/l.db").path == tmp_path / "l.db"
    monkeypatch.setenv("OPCOCKPIT_LEDGER", f"postgresql://u:{PASSWORD}@127.0.0.1:1/x")
    t = LedgerTarget.parse(None)
    assert t.kind == "postgres" and PASSWORD not in t.shown and PASSWORD not in repr(t)
