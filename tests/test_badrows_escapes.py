"""Terminal escape injection through sandbox.db text (issue 16).

A `last_error` holding `ESC ]0;pwned BEL` retitled the operator's terminal from
`opcockpit snapshot`; OSC 52 wrote their clipboard. What each format does, pinned here:

- table: every DB/provider string goes through `textsafe.safe_text` (ESC shown as `^[`, other
  controls as `\\xNN`, newlines as spaces) and is never read as Rich markup;
- csv: the data stays, tabs and newlines included (CSV quotes them), but other control characters
  are made visible by `safe_text(..., single_line=False)`: a CSV lands in terminals (`| column -t`,
  `cat`) as often as in spreadsheets, and no legitimate LEON value holds ESC/BEL;
- prometheus: label values are sanitized the same way, then escaped per the exposition format, so
  the output still parses;
- json/ndjson: the original text, lossless; the JSON encoder writes controls as `\\u001b` escapes;
- stderr: one-line errors and warnings quoting DB contents go through `safe_text` too.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from opcockpit.cli.main import main
from opcockpit.domain.text import safe_text
from tests.cli_support import build_leon_db

TITLE = "\x1b]0;pwned\x07"
CLIP = "\x1b]52;c;cHduZWQ=\x07"
EVIL = f"boom {TITLE} then {CLIP}\nline two [bold red]markup[/] \x9b31m c1"
EVIL_PROVIDER = "dock\x1b[2Jer"
RAW = ("\x1b", "\x07", "\x9b")


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    for var in ("LEON_SANDBOX_DB_PATH", "LEON_RUN_EVENT_DB_PATH", "LEON_DB_PATH", "OPCOCKPIT_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("OPCOCKPIT_LEDGER", str(tmp_path / "ledger.db"))
    cfg = tmp_path / "opcockpit.toml"
    cfg.write_text('[providers.local]\nkind = "local"\n')
    return cfg


@pytest.fixture
def evil_db(tmp_path: Path) -> Path:
    db = build_leon_db(
        tmp_path / "sandbox.db",
        [
            ("lease-000000000001", "local", "leon-lease-000000000001", "running", "running"),
            ("lease-000000000002", EVIL_PROVIDER, "leon-x", "running", "running"),
        ],
    )
    conn = sqlite3.connect(db)
    conn.execute("UPDATE sandbox_leases SET last_error = ? WHERE lease_id = 'lease-000000000001'", (EVIL,))
    conn.execute(
        "UPDATE abstract_terminals SET thread_id = ? WHERE lease_id = 'lease-000000000001'", (TITLE,)
    )
    conn.commit()
    conn.close()
    return db


def run(cfg: Path, db: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["snapshot", "--config", str(cfg), "--db", str(db), "--format", fmt, "--width", "400"])
    out, err = capsys.readouterr()
    return code, out, err


def assert_no_raw_controls(text: str) -> None:
    for ch in RAW:
        assert ch not in text, (ch, text[:2000])


def test_table_shows_escapes_instead_of_running_them(
    evil_db: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(cli_env, evil_db, "table", capsys)
    assert code == 0, err
    assert_no_raw_controls(out)
    assert "^[]0;pwned" in out and "^[]52;c;" in out  # visible, not executed
    assert "^[[2Jer" in out  # the provider name, in the provider line and the row
    assert "[bold red]markup[/]" in out  # text, never Rich markup


def test_csv_keeps_data_but_no_raw_controls(
    evil_db: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(cli_env, evil_db, "csv", capsys)
    assert code == 0, err
    assert_no_raw_controls(out)
    rows = {r["lease_id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["lease-000000000001"]["last_error"] == safe_text(EVIL, single_line=False)
    assert "\nline two" in rows["lease-000000000001"]["last_error"]  # newlines are data, CSV-quoted
    assert rows["lease-000000000002"]["provider"] == safe_text(EVIL_PROVIDER)


def test_prometheus_labels_sanitized_and_still_valid(
    evil_db: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(cli_env, evil_db, "prometheus", capsys)
    assert code == 0, err
    assert_no_raw_controls(out)
    providers = {
        s.labels["provider"]
        for fam in text_string_to_metric_families(out)
        for s in fam.samples
        if "provider" in s.labels
    }
    assert safe_text(EVIL_PROVIDER) in providers


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_json_keeps_the_original_escaped_by_the_encoder(
    fmt: str, evil_db: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(cli_env, evil_db, fmt, capsys)
    assert code == 0, err
    assert_no_raw_controls(out)
    assert "\\u001b]0;pwned\\u0007" in out
    objs = [json.loads(line) for line in out.splitlines()] if fmt == "ndjson" else json.loads(out)["rows"]
    rows = {o["lease_id"]: o for o in objs if "lease_id" in o}
    assert rows["lease-000000000001"]["last_error"] == EVIL  # lossless
    assert rows["lease-000000000001"]["thread_id"] == TITLE


def test_stderr_error_line_quoting_db_contents_is_sanitized(
    tmp_path: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SQLite file that is not LEON's: the error line lists its table names, which the file chose."""
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute(f'CREATE TABLE "{TITLE}x" (a)')
    conn.commit()
    conn.close()
    code, out, err = run(cli_env, db, "table", capsys)
    assert code == 3 and out == ""
    assert_no_raw_controls(err)
    assert "^[]0;pwned" in err
    assert len(err.splitlines()) == 1


def test_stderr_warning_about_ignored_rows_is_sanitized(
    evil_db: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = sqlite3.connect(evil_db)
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("UPDATE sqlite_master SET sql = replace(sql, 'NOT NULL', '') WHERE type = 'table'")
    conn.commit()
    conn.close()
    conn = sqlite3.connect(evil_db)
    conn.execute(
        "UPDATE abstract_terminals SET lease_id = NULL, terminal_id = ?"
        " WHERE lease_id = 'lease-000000000002'",
        (f"term-{CLIP}",),
    )
    conn.commit()
    conn.close()
    code, _, err = run(cli_env, evil_db, "json", capsys)
    assert code == 0, err
    assert "abstract_terminals" in err and "^[]52;c;" in err
    assert_no_raw_controls(err)
