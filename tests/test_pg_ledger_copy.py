"""`opcockpit ledger copy --from sqlite:PATH --to postgresql://…` moves a ledger without loss
(ids, acks, mutes, deliveries, audit rows), refuses a non-empty destination, and `ledger status`
/ `migrate` speak one line per component without the password; run as a real process."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.adapters.ledger.audit import AuditLog
from tests.fixtures.postgres import PASSWORD, pg_server, pg_url  # noqa: F401
from tests.test_pg_ledger import cand

T0 = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)


def cli(*args: str, env_home: Path) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(env_home), "PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(env_home / "cfg")}
    return subprocess.run(
        [sys.executable, "-m", "opcockpit.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def _fill(path: Path) -> tuple[int, int]:
    store = AlertStore.open(path)
    (a1, a2), _, _ = store.apply([cand("k1"), cand("k2")], T0)
    store.ack(a1, "alice@a", "on it", now=T0)
    store.mute(a2, until=T0 + timedelta(hours=3), who="bob@b", comment="known", now=T0)
    store.record_delivery(a1, "webhook", "https://h/…", ok=True, attempts=2, error=None, now=T0)
    store.apply([cand("k1")], T0 + timedelta(minutes=1))  # k2 resolves: history
    store.close()
    log = AuditLog(path)
    log.record(op_id="op1", operator="alice@a", action="pause", result="done", provider="e2b", at=T0)
    log.close()
    return a1, a2


def _dump(target: str) -> tuple:
    store = AlertStore.open(target)
    alerts = [(a.id, a.key, a.state, a.acked_by, a.muted_until, a.muted_by, a.deliveries, a.acks)
              for a in store.history(100)]  # fmt: skip
    store.close()
    audit = [(e.id, e.op_id, e.operator, e.at) for e in AuditLog(target).list(0)]
    return alerts, audit


def test_copy_round_trip_without_loss(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    src = tmp_path / "ledger.db"
    a1, _ = _fill(src)
    before = _dump(str(src))
    proc = cli("ledger", "copy", "--from", f"sqlite:{src}", "--to", pg_url, env_home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "copied" in proc.stdout and PASSWORD not in proc.stdout + proc.stderr
    assert _dump(pg_url) == before
    # ids continue after the copied ones on the new backend
    store = AlertStore.open(pg_url)
    (new,), _, _ = store.apply([cand("k1"), cand("k3")], T0 + timedelta(minutes=2))
    assert new > a1
    store.close()
    # and back again into a fresh SQLite file: same data
    back = tmp_path / "back.db"
    proc = cli("ledger", "copy", "--from", pg_url, "--to", f"sqlite:{back}", env_home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _dump(str(back))[1] == before[1]
    # a second copy into the non-empty destination is refused, nothing changes
    proc = cli("ledger", "copy", "--from", f"sqlite:{src}", "--to", pg_url, env_home=tmp_path)
    assert proc.returncode == 3 and "not empty" in proc.stderr and PASSWORD not in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_status_and_migrate(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    proc = cli("ledger", "status", "--ledger", pg_url, env_home=tmp_path)
    assert proc.returncode == 0 and "pending" in proc.stdout and PASSWORD not in proc.stdout
    proc = cli("ledger", "migrate", "--ledger", pg_url, env_home=tmp_path)
    assert proc.returncode == 0 and "pending" not in proc.stdout and "alerts: version 4 of 4" in proc.stdout
    bad = pg_url.replace(PASSWORD, "nope-" + PASSWORD[::-1])
    proc = cli("ledger", "status", "--ledger", bad, env_home=tmp_path)
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1
    assert PASSWORD[::-1] not in proc.stderr and "password authentication failed" in proc.stderr
