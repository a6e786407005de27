"""`opcockpit alerts|ack|mute|unmute` in a real subprocess (python -m opcockpit.cli.alerts_cli) on
real LEON DBs, and the `snapshot --check` / `--format prometheus` output builder."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from opcockpit.adapters.leon.schema import create_events_db, create_sandbox_db
from opcockpit.cli.alerts_cli import parse_duration, snapshot_output
from opcockpit.domain.alerts import AlertsConfig
from tests.alerts_support import T0, Clock, ground_truth, listing, naive, sandbox_db
from tests.cli_support import REPO, clean_env
from tests.fixtures.leon_db import add_lease, add_run

LEASE = "lease-cafecafecafe"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opcockpit.cli.alerts_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
        timeout=60,
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    db, edb = tmp_path / "sandbox.db", tmp_path / "events.db"
    conn = create_sandbox_db(str(db))
    now_local = datetime.now()  # LEON writes naive local time; the CLI reads it in the machine zone
    add_lease(
        conn,
        LEASE,
        "local",
        status="recovering",
        created_at=now_local - timedelta(hours=1),
        updated_at=now_local - timedelta(minutes=30),
    )
    conn.commit()
    conn.close()
    econn = create_events_db(str(edb))
    add_run(
        econn, "m_cli-1", "run-cli-stuck", outcome="running", start=datetime.now(UTC) - timedelta(minutes=40)
    )
    econn.commit()
    econn.close()
    env = clean_env(tmp_path / "home", OPCOCKPIT_LEDGER=str(tmp_path / "ledger.db"))
    (tmp_path / "home").mkdir()
    return env, db, edb


def test_alerts_ack_mute_unmute_round_trip(setup: tuple[dict[str, str], Path, Path]) -> None:
    env, db, edb = setup
    r = _cli("alerts", "--db", str(db), "--events-db", str(edb), env=env)
    assert r.returncode == 1, r.stderr
    assert "lease_recovering" in r.stdout and "stuck_run" in r.stdout and "2 firing (0 muted)" in r.stdout

    r = _cli("alerts", "--cached", "--format", "json", env=env)
    assert r.returncode == 1
    alerts = {a["rule"]: a for a in json.loads(r.stdout)}
    rec, stuck = alerts["lease_recovering"], alerts["stuck_run"]
    assert rec["state"] == "firing" and {"kind": "lease", "id": LEASE} in [
        {"kind": e["kind"], "id": e["id"]} for e in rec["evidence"]
    ]

    r = _cli("ack", str(rec["id"]), "--comment", "on it", "--who", "alice", env=env)
    assert r.returncode == 0 and f"acked #{rec['id']}" in r.stdout
    r = _cli("mute", f"#{rec['id']}", "--for", "2h", env=env)
    assert r.returncode == 0 and "muted" in r.stdout
    r = _cli("alerts", "--cached", env=env)
    assert r.returncode == 1 and "1 muted" in r.stdout and "acked by alice" in r.stdout
    r = _cli("mute", stuck["fingerprint"], "--until-resolved", env=env)
    assert r.returncode == 0
    r = _cli("alerts", "--cached", env=env)
    assert r.returncode == 0, r.stdout  # everything firing is muted
    r = _cli("alerts", str(rec["id"]), env=env)
    assert r.returncode == 0 and "threshold:" in r.stdout and f"lease {LEASE}" in r.stdout
    assert "acked by alice: on it" in r.stdout

    r = _cli("unmute", str(stuck["id"]), env=env)
    assert r.returncode == 0
    assert _cli("alerts", "--cached", env=env).returncode == 1
    r = _cli("alerts", "--history", "--format", "json", env=env)
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ack", "9999"), "no alert"),
        (("mute", "1", "--for", "banana"), "not a duration"),
        (("mute", "1"), "required"),
        (("ack", "zz"), "no alert"),
    ],
)
def test_usage_errors_exit_2(
    setup: tuple[dict[str, str], Path, Path], args: tuple[str, ...], message: str
) -> None:
    env, _, _ = setup
    r = _cli(*args, env=env)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_parse_duration() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2d") == timedelta(days=2)
    assert parse_duration("15") == timedelta(minutes=15)
    for bad in ("", "h", "5x", "1h banana", "0m"):
        with pytest.raises(Exception, match="not a duration"):
            parse_duration(bad)


def _gt(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = sandbox_db(
        tmp_path / "sb.db",
        lambda c: add_lease(
            c, LEASE, "docker", status="recovering", created_at=naive(T0), updated_at=naive(T0)
        ),
    )
    return ground_truth(db, [listing("docker", "docker", listed_at=T0)], Clock().now)


class _Cfg:
    """A CockpitConfig stand-in with the `alerts` field the lead adds (and no events.db)."""

    alerts = AlertsConfig(recovering_for_s=0)
    sources = None


@pytest.mark.parametrize("fmt", ["table", "json", "ndjson", "csv", "prometheus"])
def test_snapshot_check_output_in_every_format(tmp_path: Path, fmt: str) -> None:
    gt = _gt(tmp_path)
    text, notes, code = snapshot_output(
        gt,
        _Cfg(),
        fmt,
        check=True,
        width=120,  # type: ignore[arg-type]
        ledger_path=tmp_path / "ledger.db",
    )
    assert code == 1
    if fmt == "json":
        doc = json.loads(text)
        assert [a["rule"] for a in doc["alerts"]] == ["lease_recovering"]
        assert doc["check"] == {"exit_code": 1, "firing": 1, "unmuted": 1}
        assert doc["rows"][0]["lease_id"] == LEASE
    elif fmt == "ndjson":
        lines = [json.loads(x) for x in text.splitlines()]
        assert [x["rule"] for x in lines if x["type"] == "alert"] == ["lease_recovering"]
    elif fmt == "csv":
        assert "lease_recovering" not in text and any("lease_recovering" in n for n in notes)
    elif fmt == "prometheus":
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        firing = {tuple(sorted(s.labels.items())): s.value for s in fams["opcockpit_alerts_firing"].samples}
        assert firing[(("rule", "lease_recovering"), ("severity", "warning"))] == 1
    else:
        assert "ALERTS: 1 firing (0 muted)" in text and LEASE in text


def test_prometheus_without_check_reads_the_ledger_and_evaluates_nothing(tmp_path: Path) -> None:
    gt = _gt(tmp_path)
    ledger = tmp_path / "ledger.db"
    text, _, code = snapshot_output(gt, _Cfg(), "prometheus", ledger_path=ledger)  # type: ignore[arg-type]
    assert code == 0 and 'opcockpit_alerts_firing{rule="lease_recovering",severity="warning"} 0' in text
    snapshot_output(gt, _Cfg(), "table", check=True, ledger_path=ledger)  # type: ignore[arg-type]
    text, _, code = snapshot_output(gt, _Cfg(), "prometheus", ledger_path=ledger)  # type: ignore[arg-type]
    assert code == 0 and 'opcockpit_alerts_firing{rule="lease_recovering",severity="warning"} 1' in text
    assert "opcockpit_runs_available 0" in text  # no events.db configured: unknown, said so
