"""Contexts (issue 12, k9s's): `[contexts.<name>]` tables, `--context NAME` on every command,
`opcockpit config contexts`, a context's read_only enforced in the core."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opcockpit.settings.config import ConfigError, load_config
from tests.cli_support import build_leon_db, clean_env, run_cli

SECRET = "ctx-ledger-pw-93kq"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    for d in ("prod", "staging"):
        (tmp_path / d).mkdir()
    prod = build_leon_db(tmp_path / "prod" / "sandbox.db")
    staging = build_leon_db(
        tmp_path / "staging" / "sandbox.db",
        [("lease-0000000000aa", "local", "leon-lease-0000000000aa", "running", "running")],
    )
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'''
[sources]
sandbox_db = "{prod}"

[contexts.staging]
description = "staging, eu-1"
sources = {{ sandbox_db = "{staging}" }}
ledger = {{ url = "postgresql://ops:{SECRET}@127.0.0.1:1/ledger" }}

[contexts.audit]
read_only = true
'''
    )
    return cfg, prod, staging


def test_context_staging_snapshot_reads_stagings_db(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cfg, prod, staging = setup
    env = clean_env(tmp_path / "home")
    top = run_cli("--config", str(cfg), "snapshot", "--format", "json", env=env)
    ctx = run_cli("--config", str(cfg), "--context", "staging", "snapshot", "--format", "json", env=env)
    after = run_cli("--config", str(cfg), "snapshot", "--format", "json", "--context", "staging", env=env)
    assert top.code == 0 and ctx.code == 0 and after.code == 0, (top.err, ctx.err, after.err)
    assert json.loads(top.out)["db"]["path"] == str(prod)
    doc = json.loads(ctx.out)
    assert doc["db"]["path"] == str(staging)
    assert [r["lease_id"] for r in doc["rows"]] == ["lease-0000000000aa"]
    assert json.loads(after.out)["db"]["path"] == str(staging)  # the flag after the command too
    assert SECRET not in ctx.out + ctx.err


def test_unknown_context_is_one_line_exit_2(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cfg, _, _ = setup
    r = run_cli("--config", str(cfg), "--context", "prdo", "snapshot", env=clean_env(tmp_path / "home"))
    assert r.code == 2 and r.out == ""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1
    assert "unknown context 'prdo'" in lines[0] and "known: audit, staging" in lines[0]


def test_context_from_env_and_file_default(setup: tuple[Path, Path, Path]) -> None:
    cfg, prod, staging = setup
    assert load_config(cfg, env={"OPCOCKPIT_CONTEXT": "staging"}).config.sources.sandbox_db == staging
    cfg.write_text('context = "staging"\n' + cfg.read_text())
    loaded = load_config(cfg, env={})
    assert loaded.config.context == "staging" and loaded.config.sources.sandbox_db == staging
    assert loaded.origin("sources.sandbox_db").endswith("[contexts.staging]")
    assert load_config(cfg, env={}, context="audit").config.sources.sandbox_db == prod  # the flag wins


def test_context_tables_are_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[contexts.x]\nrefresh = 3\n")
    with pytest.raises(ConfigError) as ei:
        load_config(cfg, env={}, context="x")
    assert "refresh: unknown key" in ei.value.problems[0]
    cfg.write_text('[contexts.x]\nsources = { kind = "postgres" }\n')
    with pytest.raises(ConfigError) as ei:
        load_config(cfg, env={}, context="x")
    assert "needs url" in ei.value.problems[0]


async def test_read_only_context_refuses_an_action(setup: tuple[Path, Path, Path]) -> None:
    from opcockpit.wiring import build_cockpit

    cfg, _, _ = setup
    cockpit = build_cockpit(load_config(cfg, env={}, context="audit").config)
    try:
        assert cockpit.context == "audit" and cockpit.read_only and cockpit.operations.read_only
        gt = await cockpit.collector.refresh()
        gate = cockpit.operations.gate("destroy", gt.rows[0])
        assert not gate.allowed and "read-only" in (gate.reason or "")
    finally:
        await cockpit.aclose()
    plain = build_cockpit(load_config(cfg, env={}).config)
    try:
        assert plain.context is None and not plain.operations.read_only
    finally:
        await plain.aclose()


def test_read_only_context_refuses_a_cli_action(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cfg, _, _ = setup
    env = clean_env(tmp_path / "home")
    r = run_cli("--config", str(cfg), "--context", "audit", "pause", "lease-000000000001", "--yes", env=env)
    assert r.code == 4 and "refused" in r.out and "read-only mode: actions are disabled" in r.out
    ok = run_cli("--config", str(cfg), "pause", "lease-000000000001", "--yes", env=env)
    assert "read-only mode" not in ok.out  # the top level is not read-only: only the context


def test_config_contexts_lists_them_and_marks_the_current(
    setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    cfg, _, staging = setup
    env = clean_env(tmp_path / "home")
    r = run_cli(
        "--config", str(cfg), "--context", "staging", "config", "contexts", "--format", "json", env=env
    )
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["current"] == "staging"
    by = {c["name"]: c for c in doc["contexts"]}
    assert set(by) == {"audit", "staging"}
    assert by["staging"]["current"] and by["staging"]["source"]["where"] == str(staging)
    assert by["audit"]["read_only"] is True and by["staging"]["read_only"] is False
    assert SECRET not in r.out + r.err and "ops:***@" in by["staging"]["ledger"]
    table = run_cli("--config", str(cfg), "config", "contexts", env=env)
    assert table.code == 0
    lines = table.out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == ["audit", "staging"]  # nothing current: no '*'
    assert "read-only" in lines[0] and SECRET not in table.out
