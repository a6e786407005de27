# ruff: noqa: F811  (pytest fixtures imported by name)
"""The PostgreSQL source's one-shot read (issue 12, snapshot 10k budget) on a real server.

`read_pg_state(one_shot=True)` builds its records without interning their text and runs the
snapshot's statements pipelined; it must return the very records of the default read, and a
failure inside the pipeline must still name the table it happened on.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from opcockpit.adapters.pg_source import PgSandboxReader, PgSourceSpec, read_pg_state
from opcockpit.demo.fleet import generate_fleet
from opcockpit.ports.errors import SourceError
from tests.fixtures.postgres import pg_server, pg_url  # noqa: F401
from tests.test_pg_source import copy_fleet

NOW = datetime(2026, 3, 20, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def fleet(tmp_path: Any) -> Any:
    return generate_fleet(
        tmp_path / "fleet", leases=60, seed=5, now=NOW.replace(tzinfo=None), variant="mycel"
    )


def _without_read_at(state: Any) -> Any:
    return dataclasses.replace(state, read_at=NOW)


async def test_one_shot_read_returns_the_records_of_the_default_read(fleet: Any, pg_url: str) -> None:
    copy_fleet(fleet.sandbox_db, pg_url)
    spec = PgSourceSpec(pg_url)
    default = await read_pg_state(spec, now=NOW)
    once = await read_pg_state(spec, now=NOW, one_shot=True)
    assert len(once.leases) == 60 and once.terminals and once.chat_sessions and once.resource_snapshots
    assert _without_read_at(once) == _without_read_at(default)
    # interning is what differs: the default read shares one str per provider name, the one-shot
    # read keeps the strings psycopg made (so the one-shot builders really are in use)
    shared = {id(x.provider_name) for x in default.leases}
    assert len(shared) == len({x.provider_name for x in default.leases})
    assert len({id(x.provider_name) for x in once.leases}) > len(shared)


async def test_a_pipelined_failure_names_its_table(pg_server: Any, fleet: Any, pg_url: str) -> None:
    """SELECT on the leases but not on chat_sessions: the error of the third query in the
    pipeline is reported for chat_sessions, not for the first or the last statement."""
    copy_fleet(fleet.sandbox_db, pg_url)
    db = pg_url.rsplit("/", 1)[1]
    pg_server.psql(
        "DO $$BEGIN CREATE ROLE halfselect LOGIN PASSWORD 'pw-halfselect-7';"
        " EXCEPTION WHEN duplicate_object THEN NULL; END$$"
    )
    pg_server.psql(
        f"GRANT CONNECT ON DATABASE {db} TO halfselect; GRANT USAGE ON SCHEMA public TO halfselect;"
        " GRANT SELECT ON ALL TABLES IN SCHEMA public TO halfselect;"
        " REVOKE SELECT ON chat_sessions FROM halfselect",
        db,
    )
    url = pg_url.replace(pg_url.split("//", 1)[1].split("@", 1)[0], "halfselect:pw-halfselect-7")
    for one_shot in (False, True):
        with pytest.raises(SourceError) as ei:
            await read_pg_state(PgSourceSpec(url), one_shot=one_shot)
        text = str(ei.value)
        assert ei.value.kind == "permission" and "public.chat_sessions" in text, text
        assert "pw-halfselect-7" not in text
    # the reader stays usable after a failed pipeline: the next snapshot runs on the same session
    async with PgSandboxReader(PgSourceSpec(pg_url)) as reader:
        conn = reader._conn
        with pytest.raises(SourceError):
            await reader._snapshot(lambda s: [*reader._state_queries(s), _bad_query()])
        assert len((await reader.read_state()).leases) == 60
        assert reader._conn is conn


def _bad_query() -> Any:
    from opcockpit.adapters.leon.dialect import Q

    return Q("SELECT no_such_column FROM sandbox_leases", (), "sandbox_leases", ("x",))


async def test_a_retried_one_shot_read_returns_the_records_of_the_rows_it_returned(
    fleet: Any, pg_url: str
) -> None:
    """A column dropped after the reader introspected: the pipelined attempt fails on
    chat_sessions (the leases' records were already built as their rows arrived), the read
    introspects again and retries (stepwise, then pipelined), and the records returned are those
    built from the rows of the retry, not the failed attempt's."""
    import psycopg

    from opcockpit.adapters.pg_source import _OneShotPgReader

    copy_fleet(fleet.sandbox_db, pg_url)
    spec = PgSourceSpec(pg_url)
    reader = _OneShotPgReader(spec)
    try:
        reader._conn = await reader._connect()
        await reader.read_state(now=NOW)  # the schema is now cached, close_reason in it
        with psycopg.connect(pg_url, autocommit=True) as pg:
            pg.execute("ALTER TABLE chat_sessions DROP COLUMN close_reason")
            pg.execute("UPDATE sandbox_leases SET last_error = 'changed after the first read'")
        built: list[Any] = []  # what the leases' builder made, call by call (the real one works)
        leases_of = reader._builders[0]
        reader._builders = (
            (lambda rows, p: built.append(leases_of(rows, p)) or built[-1]),
            *reader._builders[1:],
        )
        again = await reader.read_state(now=NOW)
    finally:
        await reader.close()
    assert [len(b) for b in built] == [60, 60]  # early in the failed attempt, then from the retry's rows
    assert again.leases[0] is built[-1][0] and again.leases[0] is not built[0][0]
    assert all(x.last_error == "changed after the first read" for x in again.leases)
    assert all(s.close_reason is None for s in again.chat_sessions)
    assert _without_read_at(again) == _without_read_at(await read_pg_state(spec, now=NOW))


async def test_one_shot_statements_are_staggered(fleet: Any, pg_url: str) -> None:
    """The server runs each statement while the client loads the rows of the one before it and
    builds their records: the next statement is sent before those rows are fetched, and the one
    after only once they were; the cheapest statement first (the client waits for it idle), chat
    sessions while the leases are built. (All sent at once, the first fetch waited for the
    server's whole run; records built at the end left the client idle while the server ran.)"""
    from opcockpit.adapters.pg_source import _OneShotPgReader
    from opcockpit.adapters.pg_sync import SyncSession

    copy_fleet(fleet.sandbox_db, pg_url)
    calls: list[str] = []

    def table_of(sql: str) -> str:
        return sql.rsplit('"', 2)[-2] if sql.endswith('"') else "introspection"  # ... FROM "table"

    class Logged:  # the real session, each call written down as it is made
        def __init__(self, session: SyncSession) -> None:
            self._s = session

        def __getattr__(self, name: str) -> Any:
            return getattr(self._s, name)

        async def execute(self, sql: str, params: Any = ()) -> Any:
            cur = await self._s.execute(sql, params)
            calls.append(f"send {table_of(sql)}")
            return LoggedCursor(cur, table_of(sql))

    class LoggedCursor:
        def __init__(self, cur: Any, table: str) -> None:
            self._cur, self._table = cur, table

        async def fetchall(self) -> Any:
            calls.append(f"fetch {self._table}")
            return await self._cur.fetchall()

    reader = _OneShotPgReader(PgSourceSpec(pg_url))
    tables = ("sandbox_leases", "abstract_terminals", "chat_sessions", "lease_resource_snapshots")

    def logged(table: str, build: Any) -> Any:
        return lambda rows, p: calls.append(f"build {table}") or build(rows, p)

    reader._builders = tuple(logged(t, b) for t, b in zip(tables, reader._builders, strict=True))
    try:
        reader._conn = Logged(await reader._connect())
        state = await reader.read_state(now=NOW)
    finally:
        await reader.close()
    assert len(state.leases) == 60 and len(state.resource_snapshots) > 0
    assert _without_read_at(state) == _without_read_at(await read_pg_state(PgSourceSpec(pg_url), now=NOW))
    assert calls == [
        "send introspection", "fetch introspection",
        "send lease_resource_snapshots",
        "send sandbox_leases", "fetch lease_resource_snapshots", "build lease_resource_snapshots",
        "send chat_sessions", "fetch sandbox_leases", "build sandbox_leases",
        "send abstract_terminals", "fetch chat_sessions", "build chat_sessions",
        "fetch abstract_terminals", "build abstract_terminals",
    ]  # fmt: skip
