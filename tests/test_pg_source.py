# ruff: noqa: F811  (pytest fixtures imported by name)
"""The PostgreSQL platform source (issue 12): LEON's tables in a PostgreSQL schema, read like sandbox.db.

A real server (tests.fixtures.postgres); a generated fleet's sandbox.db is copied into it with
Mycel-like column types (TIMESTAMP for LEON's naive local times, TIMESTAMPTZ for the 'Z' ones,
BOOLEAN needs_refresh, BIGINT ids, DOUBLE PRECISION metrics) and *without* lease_events (Mycel
has none there). `opcockpit snapshot --format json` over both must agree.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opcockpit.adapters.pg_source import PG_WRITE_REFUSAL, PgSandboxReader, PgSourceSpec, read_pg_state
from opcockpit.adapters.pg_source_track import PgSourceTracker
from opcockpit.demo.fleet import generate_fleet
from opcockpit.ports.errors import SourceError
from tests.cli_support import clean_env, run_cli
from tests.fixtures.postgres import PASSWORD, pg_server, pg_url  # noqa: F401

NOW = datetime(2026, 3, 20, 12, 0, 0, tzinfo=UTC)
UTC_Z_TABLES = {"lease_resource_snapshots"}
SKIP_TABLES = {"lease_events", "sqlite_sequence"}


def _pg_type(table: str, col: str, decl: str) -> str:
    d = decl.upper()
    if col == "needs_refresh":
        return "BOOLEAN"
    if "TIMESTAMP" in d or col.endswith("_at"):
        return "TIMESTAMPTZ" if table in UTC_Z_TABLES else "TIMESTAMP"
    if "INT" in d:
        return "BIGINT"
    if "REAL" in d:
        return "DOUBLE PRECISION"
    return "TEXT"


def copy_fleet(sqlite_path: Path, url: str, schema: str = "public", *, skip: set[str] = SKIP_TABLES) -> None:
    """Every table of `sqlite_path` into `schema` (COPY), Mycel's column types."""
    src = sqlite3.connect(sqlite_path)
    tables = [r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for t in tables:
            if t in skip:
                continue
            info = src.execute(f'PRAGMA table_info("{t}")').fetchall()
            cols = [r[1] for r in info]
            ddl = ", ".join(f'"{c}" {_pg_type(t, c, r[2])}' for c, r in zip(cols, info, strict=True))
            pg.execute(f'CREATE TABLE "{schema}"."{t}" ({ddl})')
            collist = ", ".join(f'"{c}"' for c in cols)
            with pg.cursor() as cur, cur.copy(f'COPY "{schema}"."{t}" ({collist}) FROM STDIN') as cp:
                for row in src.execute(f'SELECT {collist} FROM "{t}"'):
                    cp.write_row(row)
    src.close()


def add_matched_event(conn: Any, lease_id: str, created_at: str = "2026-03-20T11:00:00") -> None:
    """A Mycel provider event matched to `lease_id` (event_id 999001, 'pe-999001' in the history)."""
    conn.execute(
        "INSERT INTO provider_events (event_id, provider_name, instance_id, event_type, payload_json,"
        " matched_lease_id, created_at) VALUES (999001, 'e2b', 'i-x', 'sandbox.lifecycle.paused',"
        " '{}', %s, %s)",
        (lease_id, created_at),
    )


@pytest.fixture
def fleet(tmp_path: Path) -> Any:
    return generate_fleet(
        tmp_path / "fleet", leases=80, seed=11, now=NOW.replace(tzinfo=None), variant="mycel"
    )


def _config(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(body)
    return p


def _snapshot(config: Path, home: Path, *extra: str, **env: str) -> Any:
    return run_cli(
        "--config", str(config), "snapshot", "--format", "json", *extra, env=clean_env(home, **env)
    )


_VOLATILE = {"generated_at", "refreshed_at", "read_at", "duration_s", "timings", "listed_at", "age_s"}


def _comparable(doc: Any) -> Any:
    """The snapshot minus what names the source (`db`) and the wall-clock of each run."""
    if isinstance(doc, dict):
        return {k: _comparable(v) for k, v in doc.items() if k not in _VOLATILE and k != "db"}
    if isinstance(doc, list):
        return [_comparable(v) for v in doc]
    return doc


def test_snapshot_over_postgres_equals_snapshot_over_sqlite(fleet: Any, pg_url: str, tmp_path: Path) -> None:
    copy_fleet(fleet.sandbox_db, pg_url, "staging")
    home = tmp_path / "home"
    sqlite_cfg = _config(tmp_path, f'[sources]\nsandbox_db = "{fleet.sandbox_db}"\n')
    pg_dir = tmp_path / "pg"
    pg_dir.mkdir()
    pg_cfg = _config(pg_dir, '[sources]\nkind = "postgres"\nurl_env = "MYCEL_PG"\nschema = "staging"\n')
    a = _snapshot(sqlite_cfg, home)
    b = _snapshot(pg_cfg, home, MYCEL_PG=pg_url)
    assert a.code == b.code, (a.err, b.err)
    da, db = json.loads(a.out), json.loads(b.out)
    assert len(da["rows"]) == 80
    assert db["db"]["path"].endswith("#staging") and PASSWORD not in b.out + b.err
    ca, cb = _comparable(da), _comparable(db)
    assert ca.keys() == cb.keys()
    for key in ca:
        assert ca[key] == cb[key], key


async def test_reader_details_and_lease_history_from_provider_events(fleet: Any, pg_url: str) -> None:
    copy_fleet(fleet.sandbox_db, pg_url)
    with psycopg.connect(pg_url, autocommit=True) as pg:
        lease_id = pg.execute("SELECT lease_id FROM sandbox_leases ORDER BY lease_id LIMIT 1").fetchone()[0]
        add_matched_event(pg, lease_id)
    async with PgSandboxReader(PgSourceSpec(pg_url)) as r:
        assert r.lease_history_source == "provider_events"
        hist = await r.lease_events(lease_id)
        assert [(e.event_id, e.source, e.event_type) for e in hist][:1] == [
            ("pe-999001", "provider_events", "sandbox.lifecycle.paused")
        ]
        lease = await r.lease(lease_id)
        assert lease is not None and lease.lease_id == lease_id
        assert [x.lease_id for x in await r.find_leases(lease_id)] == [lease_id]
        threads = await r.threads_for_lease(lease_id)
        if threads:
            terms = await r.thread_terminals(threads[0])
            assert all(t.lease_id == lease_id for t in terms)
        assert r.missing_tables == () or "lease_events" not in r.missing_tables


async def test_lease_events_table_wins_when_present(fleet: Any, pg_url: str) -> None:
    copy_fleet(fleet.sandbox_db, pg_url, skip={"sqlite_sequence"})
    src = sqlite3.connect(fleet.sandbox_db)
    lease_id, n = src.execute(
        "SELECT lease_id, count(*) FROM lease_events GROUP BY lease_id ORDER BY 2 DESC LIMIT 1"
    ).fetchone()
    async with PgSandboxReader(PgSourceSpec(pg_url)) as r:
        assert r.lease_history_source == "lease_events"
        events = await r.lease_events(lease_id, limit=None)
    assert len(events) == n and {e.source for e in events} != {"provider_events"}


async def test_reads_are_read_only_by_construction(fleet: Any, pg_url: str) -> None:
    copy_fleet(fleet.sandbox_db, pg_url)
    async with PgSandboxReader(PgSourceSpec(pg_url)) as r:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await r._conn.execute("DELETE FROM sandbox_leases")  # the session refuses writes
        # the connection is usable afterwards (autocommit: the failed statement ended its xact)
        assert len((await r.read_state()).leases) == 80


async def test_tracker_reads_again_only_when_something_changed(fleet: Any, pg_url: str) -> None:
    copy_fleet(fleet.sandbox_db, pg_url)
    tracker = PgSourceTracker(PgSourceSpec(pg_url))
    try:
        first = await tracker.read_state()
        same = await tracker.read_state()
        assert same is first and tracker.stats.full_reads == 1 and tracker.stats.unchanged == 1
        with psycopg.connect(pg_url, autocommit=True) as pg:
            lid = pg.execute("SELECT lease_id FROM sandbox_leases ORDER BY lease_id LIMIT 1").fetchone()[0]
            pg.execute(
                "UPDATE sandbox_leases SET desired_state = 'destroyed', updated_at = now()"
                " WHERE lease_id = %s",
                (lid,),
            )
        changed = await tracker.read_state()
        # the changed row alone was read again (updated_at watermark), merged into the kept copy
        assert changed is not first and tracker.stats.full_reads == 1 and tracker.stats.incremental == 1
        assert next(x for x in changed.leases if x.lease_id == lid).desired_state == "destroyed"
        assert _by_key(changed) == _by_key(await read_pg_state(PgSourceSpec(pg_url)))
    finally:
        await tracker.aclose()


def _by_key(state: Any) -> Any:
    """A DbState's records by key (a full read returns heap order, a merged copy its own)."""
    return (
        {x.lease_id: x for x in state.leases},
        {x.terminal_id: x for x in state.terminals},
        {x.chat_session_id: x for x in state.chat_sessions},
        dict(state.resource_snapshots),
    )


async def test_tracker_merges_changed_rows_and_reads_all_after_a_delete(fleet: Any, pg_url: str) -> None:
    """Inserts, stamped updates (a terminal, a resource snapshot) and rows without any stamp come
    from the changed-rows read; a
    delete (the merged count is not the server's) makes it read everything; every answer equals a
    fresh full read of the same tables."""
    copy_fleet(fleet.sandbox_db, pg_url)
    tracker = PgSourceTracker(PgSourceSpec(pg_url))
    spec = PgSourceSpec(pg_url)
    try:
        await tracker.read_state()
        with psycopg.connect(pg_url, autocommit=True) as pg:
            lid, tid = pg.execute("SELECT lease_id, terminal_id FROM abstract_terminals LIMIT 1").fetchone()
            pg.execute(
                "UPDATE abstract_terminals SET cwd = '/moved', updated_at = now() WHERE terminal_id = %s",
                (tid,),
            )
            pg.execute(
                "INSERT INTO abstract_terminals"
                " (terminal_id, thread_id, lease_id, cwd, created_at, updated_at)"
                " SELECT 'term-new', thread_id, lease_id, '/new', NULL, NULL"
                " FROM abstract_terminals WHERE terminal_id = %s",
                (tid,),
            )
            pg.execute(
                "UPDATE lease_resource_snapshots SET cpu_used = 0.5, updated_at = now()"
                " WHERE lease_id = (SELECT min(lease_id) FROM lease_resource_snapshots)"
            )
        state = await tracker.read_state()
        assert tracker.stats.incremental == 1 and tracker.stats.full_reads == 1
        terms = {t.terminal_id: t for t in state.terminals}
        assert terms[tid].cwd == "/moved" and terms["term-new"].cwd == "/new"
        assert _by_key(state) == _by_key(await read_pg_state(spec))
        with psycopg.connect(pg_url, autocommit=True) as pg:
            pg.execute("DELETE FROM abstract_terminals WHERE terminal_id = 'term-new'")
        state = await tracker.read_state()
        assert tracker.stats.full_reads == 2 and "term-new" not in {t.terminal_id for t in state.terminals}
        assert _by_key(state) == _by_key(await read_pg_state(spec))
        assert lid in {x.lease_id for x in state.leases}
    finally:
        await tracker.aclose()


# --------------------------------------------------------------------------- faults


def _one_line_no_secret(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and PASSWORD not in text
    return text


@pytest.mark.parametrize("one_shot", [False, True])  # the one-shot read has its own connection
async def test_wrong_password_is_one_line_without_the_password(
    pg_server: Any, pg_url: str, one_shot: bool
) -> None:
    bad = pg_url.replace(PASSWORD, "not-the-password-123")
    with pytest.raises(SourceError) as ei:
        await read_pg_state(PgSourceSpec(bad), one_shot=one_shot)
    text = _one_line_no_secret(ei.value)
    assert "authentication failed" in text and "not-the-password-123" not in text
    assert ei.value.kind == "permission"


@pytest.mark.parametrize("one_shot", [False, True])
async def test_missing_schema_and_missing_table(fleet: Any, pg_url: str, one_shot: bool) -> None:
    with pytest.raises(SourceError) as ei:
        await read_pg_state(PgSourceSpec(pg_url, "nope"), one_shot=one_shot)
    assert "schema 'nope' does not exist" in _one_line_no_secret(ei.value)
    with pytest.raises(SourceError) as ei:
        await read_pg_state(PgSourceSpec(pg_url, "public"), one_shot=one_shot)  # empty database
    assert "no tables" in _one_line_no_secret(ei.value) and ei.value.kind == "not_leon"
    copy_fleet(fleet.sandbox_db, pg_url, skip={*SKIP_TABLES, "abstract_terminals"})
    with pytest.raises(SourceError) as ei:
        await read_pg_state(PgSourceSpec(pg_url), one_shot=one_shot)
    assert "abstract_terminals" in _one_line_no_secret(ei.value)


async def test_role_without_select_is_told_what_to_grant(pg_server: Any, fleet: Any, pg_url: str) -> None:
    copy_fleet(fleet.sandbox_db, pg_url)
    db = pg_url.rsplit("/", 1)[1]
    pg_server.psql(
        "DO $$BEGIN CREATE ROLE noselect LOGIN PASSWORD 'pw-noselect-42';"
        " EXCEPTION WHEN duplicate_object THEN NULL; END$$"
    )
    pg_server.psql(
        f"GRANT CONNECT ON DATABASE {db} TO noselect; GRANT USAGE ON SCHEMA public TO noselect", db
    )
    url = pg_url.replace(f"cockpit:{PASSWORD}", "noselect:pw-noselect-42")
    with pytest.raises(SourceError) as ei:
        await read_pg_state(PgSourceSpec(url))
    text = _one_line_no_secret(ei.value)
    assert ei.value.kind == "permission" and "GRANT" in text and "sandbox_leases" in text
    assert "pw-noselect-42" not in text


def test_server_down_at_start_is_one_line_exit_3(
    fleet: Any, pg_server: Any, pg_url: str, tmp_path: Path
) -> None:
    copy_fleet(fleet.sandbox_db, pg_url)
    cfg = _config(tmp_path, f'[sources]\nkind = "postgres"\nurl = "{pg_url}"\n')
    pg_server.stop()
    try:
        r = _snapshot(cfg, tmp_path / "home")
    finally:
        pg_server.start()
    assert r.code == 3, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the server" in lines[0]
    assert PASSWORD not in r.err + r.out


async def test_server_down_mid_run_keeps_last_picture_then_reconnects(
    fleet: Any,
    pg_server: Any,
    pg_url: str,
    tmp_path: Path,
) -> None:
    from opcockpit.settings.config import load_config
    from opcockpit.wiring import build_cockpit

    copy_fleet(fleet.sandbox_db, pg_url)
    cfg = _config(tmp_path, f'[sources]\nkind = "postgres"\nurl = "{pg_url}"\n')
    cockpit = build_cockpit(load_config(cfg, env={}).config)
    try:
        gt = await cockpit.collector.refresh()
        assert len(gt.rows) == 80
        await cockpit.collector.refresh()  # the tracker's connection is now long-lived
        pg_server.stop()
        try:
            with pytest.raises(SourceError) as ei:
                await cockpit.collector.refresh()
            _one_line_no_secret(ei.value)
        finally:
            pg_server.start()
        # the collector's last good DB picture is still there (the TUI shows it stale with its age)
        assert (
            cockpit.collector.last_db_state is not None and len(cockpit.collector.last_db_state.leases) == 80
        )
        again = await cockpit.collector.refresh()  # reconnected by itself
        assert len(again.rows) == 80
    finally:
        await cockpit.aclose()


async def test_actions_are_refused_in_the_gate_with_a_postgres_source(
    fleet: Any, pg_url: str, tmp_path: Path
) -> None:
    from opcockpit.settings.config import load_config
    from opcockpit.wiring import build_cockpit

    copy_fleet(fleet.sandbox_db, pg_url)
    cfg = _config(tmp_path, f'[sources]\nkind = "postgres"\nurl = "{pg_url}"\n')
    cockpit = build_cockpit(load_config(cfg, env={}).config)
    try:
        gt = await cockpit.collector.refresh()
        row = gt.rows[0]
        gate = cockpit.operations.gate("pause", row)
        assert not gate.allowed and gate.reason == PG_WRITE_REFUSAL
    finally:
        await cockpit.aclose()


def test_config_show_never_prints_the_url_password(tmp_path: Path, pg_server: Any) -> None:
    url = pg_server.url()
    cfg = _config(tmp_path, f'[sources]\nkind = "postgres"\nurl = "{url}"\nschema = "x y"\n')
    r = run_cli("--config", str(cfg), "config", "show", env=clean_env(tmp_path / "home"))
    assert r.code == 0 and PASSWORD not in r.out + r.err


def test_postgres_kind_without_url_is_a_config_error(tmp_path: Path) -> None:
    cfg = _config(tmp_path, '[sources]\nkind = "postgres"\n')
    r = run_cli("--config", str(cfg), "snapshot", env=clean_env(tmp_path / "home"))
    assert r.code == 2 and "needs url, url_env or $LEON_POSTGRES_URL" in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_bad_url_scheme_is_one_line(tmp_path: Path) -> None:
    cfg = _config(tmp_path, '[sources]\nkind = "postgres"\nurl = "mysql://u:sekrit-pass@h/db"\n')
    r = run_cli("--config", str(cfg), "snapshot", env=clean_env(tmp_path / "home"))
    assert r.code == 2 and "not a PostgreSQL URL" in r.err and "sekrit-pass" not in r.err
