"""One bad row in sandbox.db never kills the picture (issue 16, data integrity).

Real sandbox.db files in LEON's DDL; LEON's NOT NULL constraints are relaxed through
`writable_schema` (what a hand edit, a foreign writer or an older DDL leaves behind) so NULLs land
where LEON never writes them. SQLite's type affinity decides what survives: a BLOB is stored as is in
any column, text stays text in INTEGER/TIMESTAMP columns, an integer becomes text in TEXT columns.

Contract pinned here, for every format (`json`, `ndjson`, `csv`, `prometheus`, `table`):
- exit 0, the other leases are all there, JSON validates against docs/snapshot.schema.json;
- a lease whose identity/state columns are unusable (lease_id, provider_name, desired_state,
  observed_state, current_instance_id) is a row with convergence `unknown` and the column in its
  reason; lesser oddities (timestamps, numbers, JSON, terminal/session columns) keep the verdict and
  add "bad sandbox.db data: ..." to the reason;
- rows of abstract_terminals/chat_sessions that cannot be tied to a lease are ignored, with a warning
  line on stderr.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opcockpit.cli.main import main
from tests.cli_support import REPO, build_leon_db

SCHEMA = json.loads((REPO / "docs" / "snapshot.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
FORMATS = ("json", "ndjson", "csv", "prometheus", "table")
LEASES = [
    ("lease-000000000001", "local", "leon-lease-000000000001", "running", "running"),
    ("lease-000000000002", "local", "leon-lease-000000000002", "running", "running"),
    ("lease-000000000003", "local", "leon-lease-000000000003", "running", "running"),
]
VICTIM = "lease-000000000002"
OTHERS = {"lease-000000000001", "lease-000000000003"}
SEVERE = ("lease_id", "provider_name", "desired_state", "observed_state", "current_instance_id")


def relax_not_null(path: Path) -> None:
    """Drop LEON's NOT NULL constraints from the stored DDL (the table layout stays LEON's)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("UPDATE sqlite_master SET sql = replace(sql, 'NOT NULL', '') WHERE type = 'table'")
    conn.commit()
    conn.close()


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


def make_db(tmp_path: Path) -> Path:
    db = build_leon_db(tmp_path / "sandbox.db", LEASES)
    relax_not_null(db)
    conn = sqlite3.connect(db)
    for n in (1, 2, 3):  # history rows, so sandbox_instances oddities have something to hit
        conn.execute(
            "INSERT INTO sandbox_instances (instance_id, lease_id, provider_session_id, status,"
            " created_at, last_seen_at) VALUES (?, ?, ?, 'running', ?, ?)",
            (f"leon-lease-00000000000{n}", f"lease-00000000000{n}", f"leon-lease-00000000000{n}",
             "2026-03-20T09:00:00", "2026-03-20T09:00:00"),
        )  # fmt: skip
    conn.commit()
    conn.close()
    return db


def poke(db: Path, table: str, column: str, value: Any) -> None:
    """Set `column` of the victim lease's row(s) in `table` to `value` (NULL, BLOB, text, number)."""
    conn = sqlite3.connect(db)
    cur = conn.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE lease_id = ?', (value, VICTIM))
    assert cur.rowcount >= 1, (table, column)
    conn.commit()
    conn.close()


def run(cfg: Path, db: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["snapshot", "--config", str(cfg), "--db", str(db), "--format", fmt, "--width", "200"])
    out, err = capsys.readouterr()
    return code, out, err


def check_all_formats(cfg: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """Every format exits 0 and keeps the healthy leases; returns the JSON document."""
    doc: dict[str, Any] = {}
    for fmt in FORMATS:
        code, out, err = run(cfg, db, fmt, capsys)
        assert code == 0, (fmt, err)
        assert "Traceback" not in err and "internal error" not in err, err
        for lid in OTHERS if fmt != "prometheus" else ():  # gauges are per provider, not per lease
            assert lid in out, (fmt, lid)
        if fmt == "json":
            doc = json.loads(out)
            VALIDATOR.validate(doc)
        elif fmt == "ndjson":
            for line in out.splitlines():
                obj = json.loads(line)
                kind = obj.pop("type")
                if kind in ("row", "orphan", "provider"):
                    VALIDATOR.evolve(schema={"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{kind}"}).validate(
                        obj
                    )
        elif fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(out)))
            assert len(rows) == len(doc["rows"])
        elif fmt == "prometheus":
            assert list(text_string_to_metric_families(out)), "valid exposition format"
        else:
            assert "\x1b" not in out
    return doc


# (table, column, value): what LEON never writes but a DB may hold.
BLOB = b"\xffnot-utf8\x00blob"
ODDITIES: list[tuple[str, str, Any]] = [
    ("sandbox_leases", "lease_id", None),
    ("sandbox_leases", "lease_id", b"lease-blob"),
    ("sandbox_leases", "provider_name", None),
    ("sandbox_leases", "provider_name", BLOB),
    ("sandbox_leases", "desired_state", None),
    ("sandbox_leases", "desired_state", BLOB),
    ("sandbox_leases", "observed_state", None),
    ("sandbox_leases", "observed_state", BLOB),
    ("sandbox_leases", "current_instance_id", BLOB),
    ("sandbox_leases", "status", BLOB),
    ("sandbox_leases", "version", "three"),
    ("sandbox_leases", "version", None),
    ("sandbox_leases", "version", BLOB),
    ("sandbox_leases", "needs_refresh", "yes"),
    ("sandbox_leases", "needs_refresh", 2.5),
    ("sandbox_leases", "last_error", BLOB),
    ("sandbox_leases", "updated_at", "not a time"),
    ("sandbox_leases", "updated_at", None),
    ("sandbox_leases", "created_at", BLOB),
    ("sandbox_leases", "observed_at", 1e300),
    ("sandbox_leases", "instance_created_at", "2026-13-45T99:99:99"),
    ("sandbox_leases", "instance_status", BLOB),
    ("sandbox_leases", "workspace_key", BLOB),
    ("abstract_terminals", "terminal_id", None),
    ("abstract_terminals", "terminal_id", BLOB),
    ("abstract_terminals", "thread_id", None),
    ("abstract_terminals", "thread_id", BLOB),
    ("abstract_terminals", "lease_id", None),
    ("abstract_terminals", "lease_id", BLOB),
    ("abstract_terminals", "cwd", None),
    ("abstract_terminals", "state_version", "x"),
    ("abstract_terminals", "created_at", "yesterday"),
    ("abstract_terminals", "updated_at", BLOB),
    ("abstract_terminals", "env_delta_json", "{not json"),
    ("abstract_terminals", "env_delta_json", BLOB),
    ("chat_sessions", "chat_session_id", None),
    ("chat_sessions", "chat_session_id", BLOB),
    ("chat_sessions", "thread_id", BLOB),
    ("chat_sessions", "terminal_id", None),
    ("chat_sessions", "lease_id", None),
    ("chat_sessions", "status", None),
    ("chat_sessions", "status", BLOB),
    ("chat_sessions", "started_at", "soon"),
    ("chat_sessions", "last_active_at", BLOB),
    ("chat_sessions", "last_active_at", -1e300),
    ("chat_sessions", "ended_at", "later"),
    ("chat_sessions", "idle_ttl_sec", "abc"),
    ("chat_sessions", "max_duration_sec", BLOB),
    ("chat_sessions", "close_reason", BLOB),
    ("chat_sessions", "runtime_id", BLOB),
    ("sandbox_instances", "instance_id", BLOB),
    ("sandbox_instances", "lease_id", None),
    ("sandbox_instances", "status", BLOB),
    ("sandbox_instances", "created_at", "garbage"),
    ("sandbox_instances", "provider_session_id", None),
]


def victim_row(doc: dict[str, Any]) -> dict[str, Any] | None:
    found = [r for r in doc["rows"] if r["lease_id"] not in OTHERS]
    assert len(found) <= 1, found
    return found[0] if found else None


@pytest.mark.parametrize(("table", "column", "value"), ODDITIES, ids=lambda v: repr(v)[:24])
def test_one_odd_value_degrades_one_row(
    table: str, column: str, value: Any, tmp_path: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_db(tmp_path)
    poke(db, table, column, value)
    doc = check_all_formats(cli_env, db, capsys)
    assert len(doc["rows"]) == 3, "every lease keeps its row"
    others = [r for r in doc["rows"] if r["lease_id"] in OTHERS]
    assert all(r["convergence"] == "converged" for r in others), others
    row = victim_row(doc)
    assert row is not None
    if table == "sandbox_leases" and column in SEVERE:
        assert row["convergence"] == "unknown", row
        assert column in row["reason"], row["reason"]
    elif table == "sandbox_leases" or (
        table in ("abstract_terminals", "chat_sessions") and column != "lease_id"
    ):
        if column in ("updated_at", "observed_at") and value is None:
            return  # NULL where LEON always writes one: nothing to judge, nothing wrong to show
        assert column in row["reason"], row["reason"]
        assert "bad sandbox.db data" in row["reason"], row["reason"]


def test_unbindable_terminal_and_session_rows_are_reported_on_stderr(
    tmp_path: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_db(tmp_path)
    poke(db, "chat_sessions", "lease_id", None)
    poke(db, "abstract_terminals", "lease_id", None)
    code, out, err = run(cli_env, db, "json", capsys)
    assert code == 0, err
    assert "abstract_terminals" in err and "chat_sessions" in err and "NULL or non-text lease_id" in err, err
    row = victim_row(json.loads(out))
    assert row is not None and row["thread_id"] is None  # the binding is gone, not invented


def test_detail_queries_survive_odd_instance_history(tmp_path: Path) -> None:
    """sandbox_instances is read only by the TUI's detail query: it must return strings too."""
    import asyncio

    from opcockpit.adapters.leon.sandbox_db import SandboxDbReader

    db = make_db(tmp_path)
    poke(db, "sandbox_instances", "instance_id", BLOB)
    poke(db, "sandbox_instances", "status", b"run\x1bning")

    async def go() -> list[Any]:
        async with SandboxDbReader(str(db)) as reader:
            return await reader.instance_history(VICTIM)

    (rec,) = asyncio.run(go())
    assert isinstance(rec.instance_id, str) and isinstance(rec.status, str)


def _random_oddity(rng: random.Random) -> Any:
    return rng.choice(
        [None, BLOB, b"", "", " ", "\x1b]0;pwned\x07", "not a time", "{bad json", -1, 0, 2**62, 1e308,
         -0.0, float("nan"), "9999-99-99", "2026-03-20T09:00:00+99:00", "\u202e\ud7ff", "NaN"]
    )  # fmt: skip


def test_property_random_column_oddities_always_give_a_valid_picture(
    tmp_path: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A seeded generator over (table, column, oddity) combinations, several at once."""
    tables = ("sandbox_leases", "abstract_terminals", "chat_sessions", "sandbox_instances")
    base = make_db(tmp_path)
    conn = sqlite3.connect(base)
    columns = {t: [r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')] for t in tables}
    conn.close()
    rng = random.Random(16)
    for i in range(25):
        db = tmp_path / f"case{i}.db"
        db.write_bytes(base.read_bytes())
        conn = sqlite3.connect(db)
        for _ in range(rng.randint(1, 5)):
            table = rng.choice(tables)
            column = rng.choice(columns[table])
            value = _random_oddity(rng)
            conn.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE lease_id = ?', (value, VICTIM))
        conn.commit()
        conn.close()
        for fmt in FORMATS:
            code, out, err = run(cli_env, db, fmt, capsys)
            assert code == 0, (i, fmt, err)
            assert "Traceback" not in err
            if fmt == "json":
                doc = json.loads(out)
                VALIDATOR.validate(doc)
                assert {r["lease_id"] for r in doc["rows"]} >= OTHERS, i
            if fmt in ("table", "csv", "prometheus"):
                assert "\x1b" not in out and "\x07" not in out, (i, fmt)


def test_text_that_is_not_utf8_degrades_nothing_else(
    tmp_path: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """TEXT holding invalid UTF-8 (CAST(X'..' AS TEXT)) made Python's sqlite3 raise for the whole
    query ("Could not decode to UTF-8"): the reader retries decoding with replacement characters."""
    db = make_db(tmp_path)
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE sandbox_leases SET last_error = CAST(X'6f6f7073ff21' AS TEXT) WHERE lease_id = ?", (VICTIM,)
    )
    conn.execute("UPDATE abstract_terminals SET cwd = CAST(X'2fff' AS TEXT) WHERE lease_id = ?", (VICTIM,))
    conn.commit()
    conn.close()
    doc = check_all_formats(cli_env, db, capsys)
    row = victim_row(doc)
    assert row is not None and row["last_error"] == "oops\ufffd!"


@pytest.mark.parametrize(
    ("column", "value"),
    [("probe_error", BLOB), ("cpu_used", "lots"), ("memory_used_mb", BLOB), ("collected_at", "never")],
)
def test_odd_resource_snapshot_values(
    column: str, value: Any, tmp_path: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_db(tmp_path)
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO lease_resource_snapshots (lease_id, provider_name, observed_state, probe_mode,"
        " cpu_used, memory_used_mb, probe_error, collected_at, updated_at)"
        " VALUES (?, 'local', 'running', 'running_runtime', 1.5, 200.0, NULL, ?, ?)",
        (VICTIM, "2026-03-20T03:58:41Z", "2026-03-20T03:58:41Z"),
    )
    conn.commit()
    conn.close()
    poke(db, "lease_resource_snapshots", column, value)
    doc = check_all_formats(cli_env, db, capsys)
    row = victim_row(doc)
    assert row is not None and row["resources"] is not None
