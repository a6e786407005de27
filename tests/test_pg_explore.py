# ruff: noqa: F811  (pytest fixtures imported by name)
"""Explore over the PostgreSQL platform source (issue 12): the query language's LEON datasets and
the read-only SQL mode, on a real server (tests.fixtures.postgres) holding a generated fleet.

The same fleet is read through sandbox.db and through PostgreSQL: every dataset must give the same
rows (the SQLite path pushes filters into SQL, the PostgreSQL path filters in the evaluator).
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opcockpit.ports.errors import SourceError
from opcockpit.ports.explore import SqlRefused
from opcockpit.wiring import build_explore
from tests.fixtures.postgres import PASSWORD, pg_server, pg_url  # noqa: F401
from tests.test_pg_source import SKIP_TABLES, add_matched_event, copy_fleet

NOW = datetime(2026, 3, 20, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from opcockpit.demo.fleet import generate_fleet

    return generate_fleet(tmp_path_factory.mktemp("fleet"), leases=40, seed=5, now=NOW.replace(tzinfo=None))


def _explore(tmp_path: Path, sources: str) -> Any:
    from opcockpit.settings.config import load_config

    path = tmp_path / f"config-{abs(hash(sources))}.toml"
    path.write_text("[sources]\n" + sources)
    return build_explore(
        load_config(path, env={}).config, ledger_path=tmp_path / "ledger.db", clock=lambda: NOW
    )


def _pair(fleet: Any, url: str, tmp_path: Path) -> tuple[Any, Any]:
    sqlite = _explore(tmp_path, f'sandbox_db = "{fleet.sandbox_db}"\nevents_db = "{fleet.events_db}"\n')
    pg = _explore(tmp_path, f'kind = "postgres"\nurl = "{url}"\nevents_db = "{fleet.events_db}"\n')
    return sqlite, pg


def _run(ex: Any, text: str) -> Any:
    return asyncio.run(ex.run(text))


def _key(row: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in row.items()))


QUERIES = [
    "sessions",
    "sessions status in (active, idle) and not provider:local",
    "sessions since:-3h until:-1h",  # the window pre-filter in PostgreSQL
    "commands since:-2d until:2026-03-20T06:00 | count by status",
    "lease_events",
    "lease_events event_type:intent.* | count by time 1h",
    "provider_events",
    "provider_events since:-1d | count by provider, event_type",
    "commands",
    "commands exit_code!=0 | sort created desc | limit 20",
    "runs status:error | group by provider | count",
    "run_events | count by provider",
]


def test_every_leon_dataset_gives_the_same_rows_as_sandbox_db(
    fleet: Any, pg_url: str, tmp_path: Path
) -> None:
    copy_fleet(fleet.sandbox_db, pg_url, skip={"sqlite_sequence"})  # lease_events included
    sqlite, pg = _pair(fleet, pg_url, tmp_path)
    for text in QUERIES:
        a, b = _run(sqlite, text), _run(pg, text)
        assert a.columns == b.columns, text
        assert a.total == b.total, text
        assert sorted(map(_key, a.rows)) == sorted(map(_key, b.rows)), text
    assert _run(pg, "sessions").total > 0 and _run(pg, "commands").total > 0
    assert any(r["output"] for r in _run(pg, "commands").rows)  # chunks joined in PostgreSQL too


def test_mycel_lease_events_dataset_is_the_matched_provider_events(
    fleet: Any, pg_url: str, tmp_path: Path
) -> None:
    copy_fleet(fleet.sandbox_db, pg_url, skip=SKIP_TABLES)  # Mycel: no lease_events table
    with psycopg.connect(pg_url, autocommit=True) as conn:
        lease_id = conn.execute("SELECT lease_id FROM sandbox_leases ORDER BY lease_id LIMIT 1").fetchone()[0]
        add_matched_event(conn, lease_id)
        matched = conn.execute(
            "SELECT count(*) FROM provider_events WHERE matched_lease_id IS NOT NULL"
        ).fetchone()[0]
    _, pg = _pair(fleet, pg_url, tmp_path)
    rows = _run(pg, "lease_events").rows
    assert len(rows) == matched and {r["source"] for r in rows} == {"provider_events"}
    mine = [r for r in rows if r["event_id"] == "pe-999001"]
    assert mine and mine[0]["lease_id"] == lease_id and mine[0]["provider"]
    assert mine[0]["created"] is not None


def test_sql_mode_reads_and_refuses_writes_and_second_statements(
    fleet: Any, pg_url: str, tmp_path: Path
) -> None:
    copy_fleet(fleet.sandbox_db, pg_url)
    _, pg = _pair(fleet, pg_url, tmp_path)
    res = asyncio.run(pg.run_sql("SELECT provider_name, COUNT(*) FROM sandbox_leases GROUP BY provider_name"))
    with sqlite3.connect(fleet.sandbox_db) as conn:
        expected = dict(conn.execute("SELECT provider_name, COUNT(*) FROM sandbox_leases GROUP BY 1"))
    assert res.columns == ("provider_name", "count") and dict(res.rows) == expected
    lid = min(r[0] for r in asyncio.run(pg.run_sql("SELECT lease_id FROM sandbox_leases")).rows)
    named = asyncio.run(
        pg.run_sql(
            "SELECT lease_id::text, 'x%' FROM sandbox_leases WHERE lease_id = :lid AND lease_id LIKE 'l%'",
            params={"lid": lid},
        )
    )
    assert named.rows == [(lid, "x%")]  # `:name` as on sandbox.db; casts and literal '%' untouched
    capped = asyncio.run(pg.run_sql("SELECT lease_id FROM sandbox_leases", limit=5))
    assert len(capped.rows) == 5 and capped.capped
    for sql, words in [
        ("DELETE FROM sandbox_leases", "read-only"),
        ("UPDATE sandbox_leases SET desired_state = 'destroyed'", "read-only"),
        ("CREATE TABLE x (a int)", "read-only"),
        ("SELECT 1; DELETE FROM sandbox_leases", "one statement"),
        (
            "SELECT 1; COMMIT; SET default_transaction_read_only = off; DELETE FROM sandbox_leases",
            "one statement",
        ),
        ("SELECT nope FROM sandbox_leases", "SQL error"),
    ]:
        with pytest.raises(SqlRefused) as ei:
            asyncio.run(pg.run_sql(sql))
        text = str(ei.value)
        assert words in text and "\n" not in text and PASSWORD not in text, (sql, text)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM sandbox_leases").fetchone()[0] == 40
    with pytest.raises(SqlRefused) as ei:
        asyncio.run(pg.run_sql("SELECT pg_sleep(5)", timeout_s=0.3))
    assert "stopped after 0.3s" in str(ei.value)


def test_unreachable_server_is_one_line_without_the_password(
    fleet: Any, pg_server: Any, tmp_path: Path
) -> None:
    url = pg_server.url().replace(PASSWORD, "wrong-pass-77")
    _, pg = _pair(fleet, url, tmp_path)
    for call in (lambda: _run(pg, "sessions"), lambda: asyncio.run(pg.run_sql("SELECT 1"))):
        with pytest.raises(SourceError) as ei:
            call()
        text = str(ei.value)
        assert "authentication failed" in text and "\n" not in text
        assert "wrong-pass-77" not in text and PASSWORD not in text


def test_query_cli_on_the_postgres_source(fleet: Any, pg_url: str, tmp_path: Path) -> None:
    from tests.cli_support import clean_env, run_cli

    copy_fleet(fleet.sandbox_db, pg_url)
    cfg = tmp_path / "pg.toml"
    cfg.write_text(f'[sources]\nkind = "postgres"\nurl_env = "MYCEL_PG"\nevents_db = "{fleet.events_db}"\n')
    env = clean_env(tmp_path / "home", MYCEL_PG=pg_url)
    sql = run_cli("--config", str(cfg), "query", "--sql", "SELECT count(*) AS n FROM sandbox_leases", env=env)
    assert sql.code == 0 and "40" in sql.out, sql.err
    lang = run_cli("--config", str(cfg), "query", "sessions | count", "--format", "json", env=env)
    with sqlite3.connect(fleet.sandbox_db) as conn:
        sessions = conn.execute("SELECT count(*) FROM chat_sessions").fetchone()[0]
    assert lang.code == 0 and str(sessions) in lang.out, lang.err
    bad = run_cli("--config", str(cfg), "query", "--sql", "DELETE FROM sandbox_leases", env=env)
    assert bad.code != 0 and not bad.out.strip()
    assert len(bad.err.strip().splitlines()) == 1 and "read-only" in bad.err
    assert PASSWORD not in sql.out + sql.err + lang.out + lang.err + bad.out + bad.err
