"""The audit log in the cockpit's own ledger: schema via ledger migrations, filters, settle-once,
no secrets."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.audit import AuditLog, list_audit
from opcockpit.adapters.ledger.sqlite import open_ledger
from opcockpit.settings.config import load_config
from opcockpit.wiring import operator_name


def record(log: AuditLog, op_id: str, **kw) -> int:
    base = {"operator": "alice@host", "action": "pause", "result": "pending", "provider": "e2b"}
    return log.record(op_id=op_id, **(base | kw))


def test_rows_round_trip_newest_first_with_filters(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    log = AuditLog(path)
    t0 = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)
    record(log, "op1", lease_id="lease-aaa", instance_id="i-1", thread_id="t-1", at=t0,
           before={"desired_state": "running"}, after={"desired_state": "paused"}, outcome="done",
           duration_ms=12)  # fmt: skip
    record(log, "op2", action="destroy", instance_id="i-orphan", at=t0 + timedelta(hours=2), dry_run=True)
    record(
        log,
        "op3",
        action="adopt",
        instance_id="i-x_y",
        result="refused",
        error="bound",
        at=t0 + timedelta(hours=3),
    )
    log.close()
    entries = list_audit(10, path=path)
    assert [e.op_id for e in entries] == ["op3", "op2", "op1"]
    first = entries[-1]
    assert (first.before, first.after, first.outcome, first.duration_ms) == (
        {"desired_state": "running"}, {"desired_state": "paused"}, "done", 12,
    )  # fmt: skip
    assert first.at == t0 and entries[1].dry_run and not first.dry_run
    assert [e.op_id for e in list_audit(10, since=t0 + timedelta(hours=1), path=path)] == ["op3", "op2"]
    assert [e.op_id for e in list_audit(10, target="e2b/i-orphan", path=path)] == ["op2"]
    assert [e.op_id for e in list_audit(10, target="t-1", path=path)] == ["op1"]
    assert [e.op_id for e in list_audit(10, target="lease-a", path=path)] == ["op1"]
    # LIKE wildcards in a target are literal: "i-x_" must not match "i-1" etc. through "_"
    assert [e.op_id for e in list_audit(10, target="i-x_", path=path)] == ["op3"]
    assert [e.op_id for e in list_audit(1, path=path)] == ["op3"]


def test_schema_lives_in_the_ledger_as_component_audit(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    AuditLog(path).list()
    conn = open_ledger(path)
    assert conn.execute("SELECT version FROM ledger_schema WHERE component = 'audit'").fetchone() == (1,)
    conn.close()
    AuditLog(path).list()  # reopening does not re-run the migration
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM ledger_schema WHERE component = 'audit'").fetchone() == (1,)
    conn.close()


def test_settle_fills_convergence_once(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "ledger.db")
    record(log, "op1")
    log.settle("op1", "converged")
    log.settle("op1", "failed")  # a settled row is never changed again
    (entry,) = log.list()
    assert entry.convergence == "converged" and entry.settled_at is not None
    log.close()


def test_default_path_follows_opcockpit_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPCOCKPIT_LEDGER", str(tmp_path / "x" / "ledger.db"))
    log = AuditLog()
    record(log, "op1")
    log.close()
    assert (tmp_path / "x" / "ledger.db").exists()
    assert [e.op_id for e in list_audit()] == ["op1"]


def test_secrets_the_config_knows_are_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "e2b_live_" + "k" * 30
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[sources]\nsandbox_db = "/nonexistent"\n[providers.e2b]\nkind = "e2b"\napi_key = "{secret}"\n'
    )
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    load_config(cfg, env={"HOME": str(tmp_path)})
    path = tmp_path / "ledger.db"
    log = AuditLog(path)
    record(log, "op1", result="failed", error=f"upstream said: key {secret} rejected",
           before={"note": f"Bearer {secret}"})  # fmt: skip
    log.close()
    (entry,) = list_audit(path=path)
    assert secret not in (entry.error or "") and secret not in str(entry.before)
    assert "e2b_…kk" in (entry.error or "")
    for f in tmp_path.glob("ledger.db*"):
        assert secret.encode() not in f.read_bytes()


def test_operator_name_is_user_at_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "carol")
    user, host = operator_name().split("@", 1)
    assert user == "carol" and host


def test_every_ledger_fault_is_a_ledger_error_naming_the_file(tmp_path: Path) -> None:
    """Callers tell a broken ledger by isinstance(LedgerError), never by reading tracebacks."""
    from opcockpit.adapters.ledger.alerts import AlertStore
    from opcockpit.ports.ledger import LedgerError

    bad = tmp_path / "ledger.db"
    bad.write_bytes(b"this is not a sqlite database, just bytes" * 100)
    log = AuditLog(bad)
    with pytest.raises(LedgerError) as info:
        log.record(op_id="x", operator="a@b", action="pause", result="done", provider="e2b")
    assert info.value.path == str(bad) and str(bad) in str(info.value)
    with pytest.raises(LedgerError) as info2:
        AlertStore.open(bad)
    assert str(bad) in str(info2.value)
    with pytest.raises(LedgerError):
        list_audit(path=bad)
