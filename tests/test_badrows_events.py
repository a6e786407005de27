"""Odd values in events.db (LEON's run_events) never break `snapshot --check` (issue 16).

A BLOB or non-UTF-8 `data` of an `error` event, a BLOB thread_id: the run-health picture and the
alerts built from it still come out, and the JSON still validates against the schema.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from opcockpit.adapters.leon.schema import create_events_db
from opcockpit.cli.main import main
from tests.cli_support import REPO, build_leon_db
from tests.fixtures.leon_db import add_run

SCHEMA = json.loads((REPO / "docs" / "snapshot.schema.json").read_text())


@pytest.mark.parametrize(
    "setter",
    [
        "data = CAST(X'7b226572726f72223a2022ff227d' AS TEXT)",  # {"error": "<0xff>"}: not UTF-8
        "data = X'ff00'",  # a BLOB
        "thread_id = X'ff00'",
        "run_id = CAST(X'ff' AS TEXT)",
        "created_at = 'whenever'",
    ],
)
def test_odd_run_events_keep_check_output_valid(
    setter: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for var in ("LEON_SANDBOX_DB_PATH", "LEON_RUN_EVENT_DB_PATH", "LEON_DB_PATH", "OPCOCKPIT_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("OPCOCKPIT_LEDGER", str(tmp_path / "ledger.db"))
    db = build_leon_db(
        tmp_path / "sandbox.db", [("lease-000000000001", "local", "leon-1", "running", "running")]
    )
    edb = tmp_path / "events.db"
    conn = create_events_db(str(edb))
    add_run(conn, "thread-1", "run-1", outcome="error", error="boom")
    conn.execute(f"UPDATE run_events SET {setter} WHERE event_type = 'error'")
    conn.commit()
    conn.close()
    cfg = tmp_path / "opcockpit.toml"
    cfg.write_text('[providers.local]\nkind = "local"\n')
    args = ["snapshot", "--config", str(cfg), "--db", str(db), "--events-db", str(edb), "--check"]
    for fmt in ("json", "table", "prometheus"):
        code = main([*args, "--format", fmt])
        out, err = capsys.readouterr()
        assert code in (0, 1), (fmt, err)
        assert "Traceback" not in err and "internal error" not in err, err
        assert "\x1b" not in out
        if fmt == "prometheus":
            assert "opcockpit_runs_available 1" in out, "events.db still read: run health known"
        if fmt == "json":
            jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(
                json.loads(out)
            )
