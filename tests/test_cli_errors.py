"""Exit codes and one-line errors of the CLI for every kind of bad input (real files, subprocesses)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_support import build_leon_db, clean_env, file_hashes, run_cli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return clean_env(home)


def file_hashes_empty() -> str:
    import hashlib

    return hashlib.sha256(b"").hexdigest()


def assert_one_line_failure(res, code: int = 3) -> str:
    assert res.code == code, (res.code, res.err)
    assert res.out == "", "nothing may be written to stdout on failure"
    lines = res.err.splitlines()
    assert len(lines) == 1, res.err
    assert "Traceback" not in res.err
    assert lines[0].startswith("opcockpit")
    return lines[0]


def make_bad(kind: str, tmp_path: Path) -> Path:
    p = tmp_path / f"{kind}.db"
    if kind == "missing":
        return p
    if kind == "directory":
        p.mkdir()
    elif kind == "random_bytes":
        p.write_bytes(os.urandom(8192))
    elif kind == "text":
        p.write_text("lease_id,provider\nlease-1,docker\n" * 50)
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "foreign_sqlite":
        conn = sqlite3.connect(p)
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (9.5)")
        conn.commit()
        conn.close()
    elif kind == "truncated":
        real = build_leon_db(tmp_path / "real.db", [
            (f"lease-{i:012d}", "docker", f"leon-{i:012x}", "running", "running") for i in range(400)
        ])  # fmt: skip
        data = real.read_bytes()
        p.write_bytes(data[: len(data) // 3])
    return p


BAD_KINDS = ["missing", "directory", "random_bytes", "text", "foreign_sqlite", "truncated"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_sandbox_db_is_one_line_exit_3(kind: str, tmp_path: Path, env) -> None:
    path = make_bad(kind, tmp_path)
    before = file_hashes(path) if path.is_file() else None
    for fmt in ("json", "table"):
        res = run_cli("snapshot", "--db", str(path), "--format", fmt, env=env)
        line = assert_one_line_failure(res)
        assert str(path) in line or path.name in line, line
    if kind == "missing":
        assert not path.exists(), "reading must never create the file"
    elif before is not None:
        assert file_hashes(path) == before
    assert not Path(str(path) + "-wal").exists() or kind == "directory"


def test_db_locked_by_another_process(tmp_path: Path, env) -> None:
    db = build_leon_db(tmp_path / "sandbox.db")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('PRAGMA locking_mode=EXCLUSIVE')\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            'c.execute("UPDATE sandbox_leases SET version = version")\n'
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        res = run_cli("snapshot", "--db", str(db), "--format", "json", env=env, timeout=90)
        line = assert_one_line_failure(res)
        assert "lock" in line.lower(), line
        assert time.monotonic() - started < 60  # gave up instead of hanging
    finally:
        holder.kill()
        holder.wait()


def test_usage_errors_exit_2_one_line(env) -> None:
    for args in (
        ("snapshot", "--format", "xml"),
        ("snapshot", "--timeout", "-1"),
        ("snapshot", "--bogus"),
        ("frobnicate",),
    ):
        res = run_cli(*args, env=env)
        line = assert_one_line_failure(res, code=2)
        assert "see opcockpit" in line


def test_missing_config_file_exits_2(tmp_path: Path, env) -> None:
    res = run_cli("snapshot", "--config", str(tmp_path / "nope.toml"), env=env)
    line = assert_one_line_failure(res, code=2)
    assert "config file not found" in line


def test_version_and_help(env) -> None:
    res = run_cli("--version", env=env)
    assert res.code == 0 and res.out.startswith("opcockpit ")
    res = run_cli("snapshot", "--help", env=env)
    assert res.code == 0 and "--format" in res.out


def test_snapshot_leaves_a_wal_mode_db_byte_identical(tmp_path: Path, env) -> None:
    db = build_leon_db(tmp_path / "sandbox.db", checkpoint=False)  # still in WAL mode, as LEON leaves it
    before = file_hashes(db)
    res = run_cli("snapshot", "--db", str(db), "--format", "json", env=env)
    assert res.code == 0, res.err
    after = file_hashes(db)
    # The DB bytes never change. A read-only SQLite reader of a cleanly closed WAL DB creates an
    # empty -wal and a -shm index beside it (documented in opcockpit/adapters/leon/sqlite_ro.py).
    assert after["db"] == before["db"]
    assert after.get("-wal") in (None, before.get("-wal"), file_hashes_empty())


@pytest.mark.parametrize("debug", [False, True])
def test_last_resort_handler_redacts_secrets(debug: bool, tmp_path: Path, capsys, monkeypatch) -> None:
    from opcockpit.cli.common import report_unexpected
    from opcockpit.settings.config import load_config

    secret = "dtn_handler_secret_0123456789abcdef"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[providers.d]\nkind = "daytona"\napi_key = "{secret}"\n')
    monkeypatch.setenv("HOME", str(tmp_path))
    load_config(cfg)  # the loader learns the secret so handlers can scrub it anywhere
    try:
        raise RuntimeError(f"upstream said: bad key {secret}\nsecond line")
    except RuntimeError as exc:
        code = report_unexpected(exc, debug=debug)
    err = capsys.readouterr().err
    assert code == 1
    assert secret not in err and "dtn_…ef" in err
    assert ("Traceback" in err) is debug
    if not debug:
        assert len(err.splitlines()) == 1 and "--debug" in err


def test_tui_refuses_without_a_terminal(env) -> None:
    res = run_cli(env=env)  # subprocess: stdin/stdout are pipes
    line = assert_one_line_failure(res, code=2)
    assert "opcockpit snapshot" in line
