"""The typer CLI contract: one-line usage errors (exit 2, nothing on stdout), global flags on
every command including the TUI, shell completion (ids read from sandbox.db read-only), and
`demo --snapshot` as the snapshot path (prometheus, --check)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opcockpit.adapters.leon.schema import create_sandbox_db
from tests.cli_support import clean_env, run_cli, sha256
from tests.fixtures.leon_db import write_worked_example


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path / "home", OPCOCKPIT_LEDGER=str(tmp_path / "ledger.db"))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("nosuch",), "No such command 'nosuch'"),
        (("snapshot", "--format", "yaml"), "'yaml' is not one of"),
        (("pause",), "Missing argument"),
        (("snapshot", "--bogus"), "No such option: --bogus"),
        (("--refresh", "nan", "snapshot"), "finite"),
        (("mute", "1", "--for", "banana"), "not a duration"),
        (("config", "show", "--format", "xml"), "'xml' is not one of"),
    ],
)
def test_usage_errors_are_one_line_exit_2_nothing_on_stdout(
    env: dict[str, str], args: tuple[str, ...], needle: str
) -> None:
    r = run_cli(*args, env=env)
    assert r.code == 2 and r.out == "", r
    lines = r.err.splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("opcockpit"), r.err
    assert "Usage:" not in r.err and "Traceback" not in r.err


def test_global_db_flag_reaches_the_tui_path(tmp_path: Path, env: dict[str, str]) -> None:
    db = tmp_path / "missing.db"
    # no terminal under pytest: the TUI path is reached (not `invalid choice`) and says why it stops
    r = run_cli("--db", str(db), "--read-only", "--refresh", "1", "--debug", env=env)
    assert r.code == 2 and r.out == "" and "needs a terminal" in r.err, r
    assert run_cli("--version", env=env).out.strip().startswith("opcockpit ")


def test_every_global_flag_works_after_every_command(tmp_path: Path, env: dict[str, str]) -> None:
    we = write_worked_example(tmp_path / "leon")
    flags = ["--db", str(we.sandbox_db), "--events-db", str(we.events_db), "--read-only", "--refresh", "1"]
    r = run_cli("snapshot", "--format", "json", *flags, env=env)
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["db"]["path"] == str(we.sandbox_db) and doc["rows"]
    r = run_cli(*flags, "config", "show", "--format", "json", env=env)
    assert r.code == 0, r.err
    shown = json.loads(r.out)
    assert shown["sources"]["sandbox_db"]["value"] == str(we.sandbox_db)
    assert shown["settings"]["read_only"]["value"] is True


def _complete(env: dict[str, str], words: str, cword: int) -> list[str]:
    env = {**env, "_OPCOCKPIT_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    r = run_cli(env=env)
    assert r.code == 0, r.err
    return r.out.split()


def test_completion_of_lease_thread_and_instance_ids_reads_sandbox_db_only(
    tmp_path: Path, env: dict[str, str]
) -> None:
    we = write_worked_example(tmp_path / "leon")
    before = sha256(we.sandbox_db)
    db = str(we.sandbox_db)
    leases = _complete(env, f"opcockpit pause --db {db} lease-", 4)
    assert leases and all(x.startswith("lease-") for x in leases)
    everything = _complete(env, f"opcockpit --db {db} destroy ''", 4)
    assert set(leases) <= set(everything) and len(everything) > len(leases)  # threads, instances too
    threads = _complete(env, f"opcockpit --db {db} adopt docker/x --thread ''", 6)
    assert threads and not set(threads) & set(leases)
    assert _complete(env, f"opcockpit pause --db {tmp_path / 'nope.db'} ''", 4) == []
    assert sha256(we.sandbox_db) == before and not (tmp_path / "nope.db").exists()


def test_completion_of_a_non_leon_file_completes_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite" * 100)
    assert _complete(env, f"opcockpit resume --db {junk} ''", 4) == []
    empty = tmp_path / "empty.db"
    create_sandbox_db(empty)
    assert _complete(env, f"opcockpit resume --db {empty} ''", 4) == []


def test_show_and_install_completion(tmp_path: Path, env: dict[str, str]) -> None:
    env = {**env, "SHELL": "/bin/bash"}
    shown = run_cli("--show-completion", "bash", env=env)
    assert shown.code == 0 and "_OPCOCKPIT_COMPLETE" in shown.out, shown
    installed = run_cli("--install-completion", "bash", env=env)
    assert installed.code == 0, installed
    home = Path(env["HOME"])
    assert "opcockpit" in (home / ".bashrc").read_text()
    assert any(p.name == "opcockpit.sh" for p in home.rglob("*.sh"))


def test_demo_snapshot_prometheus_and_check(env: dict[str, str]) -> None:
    prom = run_cli("demo", "--snapshot", "--format", "prometheus", "--leases", "12", env=env)
    assert prom.code == 0 and "# TYPE opcockpit_provider_up gauge" in prom.out, prom.err
    check = run_cli("demo", "--snapshot", "--check", "--format", "json", "--leases", "12", env=env)
    assert check.code in (0, 1), check.err
    doc = json.loads(check.out)
    assert len(doc["rows"]) == 12 and doc["check"]["exit_code"] == check.code
    assert not Path(env["OPCOCKPIT_LEDGER"]).exists()  # the demo's ledger lives beside its fleet
