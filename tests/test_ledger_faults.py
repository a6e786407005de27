"""A broken ledger (the cockpit's own SQLite file: alerts, audit) is named as the ledger, never blamed
on sandbox.db, and never stops the fleet view (issue 16).

Decided behaviour, pinned here:
- `opcockpit snapshot` (no --check) does not touch the ledger at all;
- `opcockpit snapshot --check` prints the fleet, plus one stderr warning naming the ledger file and
  what is wrong with it; the rules are evaluated against a throwaway in-memory ledger, so alerts
  without a hold time still fire, while hold times, mutes and acks are unavailable and no
  notification is sent (nothing could remember it was sent: every cron run would resend). The exit
  code stays the verdict of that evaluation (0 here: a healthy fleet);
- `opcockpit alerts` (the ledger is what it shows) fails with exit 3 and one stderr line naming the
  ledger file, not sandbox.db.

Faults: a corrupt file, a read-only directory (as `nobody` via setpriv when running as root, since
root ignores permissions), and a ledger locked by another connection holding an exclusive lock
(the CLI waits out its busy timeout, a few seconds).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_support import REPO, Result, build_leon_db

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
SETPRIV = shutil.which("setpriv")
LEASES = [
    ("lease-000000000001", "local", "leon-lease-000000000001", "running", "running"),
    ("lease-000000000002", "local", "leon-lease-000000000002", "running", "running"),
]


@pytest.fixture
def site() -> Iterator[Path]:
    """A world-readable directory (pytest's tmp root is 0700, and `nobody` must get in)."""
    d = Path(tempfile.mkdtemp(prefix="opcockpit-ledger-"))
    d.chmod(0o755)
    (d / "home").mkdir(mode=0o777)
    (d / "home").chmod(0o777)
    build_leon_db(d / "sandbox.db", LEASES)
    (d / "sandbox.db").chmod(0o644)
    (d / "opcockpit.toml").write_text('[providers.local]\nkind = "local"\n')
    (d / "ledger").mkdir()
    try:
        yield d
    finally:
        for sub in d.rglob("*"):
            if sub.is_dir():
                sub.chmod(0o755)
        shutil.rmtree(d, ignore_errors=True)


def cli(site: Path, *args: str, as_nobody: bool = False) -> Result:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin"),
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": str(site / "home"),
        "XDG_CONFIG_HOME": str(site / "home" / ".config"),
        "XDG_DATA_HOME": str(site / "home" / ".local" / "share"),
        "OPCOCKPIT_LEDGER": str(site / "ledger" / "ledger.db"),
    }
    cmd = [sys.executable, "-m", "opcockpit.cli", *args]
    if as_nobody:
        cmd = [SETPRIV or "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd="/")
    return Result(proc.returncode, proc.stdout, proc.stderr)


def snapshot(site: Path, *extra: str, as_nobody: bool = False) -> Result:
    base = ("snapshot", "--config", str(site / "opcockpit.toml"), "--db", str(site / "sandbox.db"))
    return cli(site, *base, *extra, as_nobody=as_nobody)


def alerts(site: Path, as_nobody: bool = False) -> Result:
    base = ("alerts", "--config", str(site / "opcockpit.toml"), "--db", str(site / "sandbox.db"))
    return cli(site, *base, as_nobody=as_nobody)


def ledger_of(site: Path) -> Path:
    return site / "ledger" / "ledger.db"


def assert_fleet_with_ledger_warning(res: Result, ledger: Path, fmt: str) -> None:
    assert res.code == 0, res.err
    assert "Traceback" not in res.err
    assert "sandbox.db" not in res.err, res.err  # never blamed on sandbox.db
    warnings = [line for line in res.err.splitlines() if "ledger" in line]
    assert len(warnings) == 1, res.err
    assert str(ledger) in warnings[0] and "warning" in warnings[0], warnings
    if fmt == "json":
        doc = json.loads(res.out)
        assert {r["lease_id"] for r in doc["rows"]} == {lid for lid, *_ in LEASES}
        assert doc["check"]["exit_code"] == 0
    else:
        for lid, *_ in LEASES:
            assert lid in res.out


def assert_alerts_names_ledger(res: Result, ledger: Path) -> None:
    assert res.code == 3, (res.code, res.err)
    lines = res.err.splitlines()
    assert len(lines) == 1, res.err
    assert "Traceback" not in res.err
    assert "sandbox.db" not in lines[0], lines[0]
    assert "ledger" in lines[0] and str(ledger) in lines[0], lines[0]


# --------------------------------------------------------------------------- corrupt


def test_corrupt_ledger(site: Path) -> None:
    ledger = ledger_of(site)
    ledger.write_bytes(b"this is not a SQLite file, just bytes\n" * 200)
    plain = snapshot(site, "--format", "json")
    # No --check: snapshot records history in the ledger; a broken one costs one warning naming
    # it, never the fleet (stdout is the full document).
    assert plain.code == 0 and json.loads(plain.out)["rows"], plain.err
    assert plain.err.count("\n") == 1 and str(ledger) in plain.err and "sandbox.db" not in plain.err
    for fmt in ("table", "json"):
        assert_fleet_with_ledger_warning(snapshot(site, "--check", "--format", fmt), ledger, fmt)
    assert_alerts_names_ledger(alerts(site), ledger)
    assert ledger.read_bytes().startswith(b"this is not a SQLite file")  # never "repaired" over


# --------------------------------------------------------------------------- read-only directory


needs_ro = pytest.mark.skipif(IS_ROOT and not SETPRIV, reason="root ignores permissions; needs setpriv")


@needs_ro
@pytest.mark.parametrize("existing", [False, True], ids=["no-ledger-yet", "ledger-exists"])
def test_read_only_ledger_dir(site: Path, existing: bool) -> None:
    ledger = ledger_of(site)
    if existing:
        conn = sqlite3.connect(ledger)
        conn.execute("CREATE TABLE ledger_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        conn.commit()
        conn.close()
        ledger.chmod(0o444)
    ledger.parent.chmod(0o555)
    for fmt in ("table", "json"):
        res = snapshot(site, "--check", "--format", fmt, as_nobody=IS_ROOT)
        assert_fleet_with_ledger_warning(res, ledger, fmt)
    assert_alerts_names_ledger(alerts(site, as_nobody=IS_ROOT), ledger)


# --------------------------------------------------------------------------- locked


def test_locked_ledger(site: Path) -> None:
    ledger = ledger_of(site)
    holder = sqlite3.connect(ledger, isolation_level=None)
    holder.execute("CREATE TABLE ledger_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    holder.execute("BEGIN EXCLUSIVE")  # rollback-journal DB: readers and writers both wait, then fail
    try:
        assert_fleet_with_ledger_warning(snapshot(site, "--check", "--format", "json"), ledger, "json")
        res = alerts(site)
        assert_alerts_names_ledger(res, ledger)
        assert "locked" in res.err
    finally:
        holder.execute("ROLLBACK")
        holder.close()
