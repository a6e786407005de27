# ruff: noqa: F811  (pytest fixtures imported by name)
"""Explore's ledger datasets (events, audit, alerts) on the ledger's backend (issue 12): the same
audit rows, alert lifecycle and events written through the real stores into a SQLite ledger and
into a real PostgreSQL ledger (tests.fixtures.postgres), then queried through ExploreService and
`opcockpit query`: the results must be equal, field for field and type for type.

The SQLite path pushes the `events` filter and counts into SQLite; the PostgreSQL path filters and
counts in the evaluator; `before`/`after` come from json_extract on one side and from Python on
the other (explore_ledger._json_part): the parity check holds them together.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.adapters.ledger.audit import AuditLog
from opcockpit.adapters.ledger.events import EventLog
from opcockpit.domain.events import Event, EventSource
from opcockpit.ports.explore import SqlRefused
from opcockpit.ports.ledger import LedgerError
from opcockpit.wiring import build_explore
from tests.fixtures.postgres import PASSWORD, pg_server, pg_url  # noqa: F401
from tests.test_pg_ledger import cand

T0 = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)
FOREVER = datetime(2099, 1, 1, tzinfo=UTC)  # a mute still on when the test runs (`muted` is "now")
# before/after of every JSON kind json_extract distinguishes: text, object, array, number, bool, null
STATES: list[Any] = [
    "running", {"state": "paused", "n": 2, "ok": True, "note": "é\nx \"q\""}, [1, "a", None], 3, 2.5,
    True, False, None, {"nested": {"deep": [{"k": "v"}]}}, 'a plain string: x "q" \\ done',
]  # fmt: skip


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from opcockpit.demo.fleet import generate_fleet

    now = (T0 + timedelta(hours=6)).replace(tzinfo=None)
    return generate_fleet(tmp_path_factory.mktemp("fleet"), leases=5, seed=3, now=now)


def fill(target: str) -> None:
    """The same history written through the real stores."""
    audit = AuditLog(target)
    audit.record(op_id="op1", operator="alice@host-a", action="pause", result="done", provider="e2b",
                 lease_id="lease-1", instance_id="i-1", before={"s": "running"}, at=T0)  # fmt: skip
    audit.begin(op_id="op2", operator="bob@host-b", action="destroy", provider="daytona", instance_id="i-2",
                at=T0 + timedelta(hours=1))  # fmt: skip
    audit.finish("op2", result="done", outcome="destroyed", duration_ms=7)
    audit.record(op_id="op3", operator="élodie@host-c", action="resume", result="refused",
                 provider="e2b", error="read-only mode", dry_run=True, read_only=True,
                 at=T0 + timedelta(hours=2))  # fmt: skip
    audit.settle("op1", "converged", at=T0 + timedelta(minutes=5))
    audit.close()
    store = AlertStore.open(target)
    fired, _, _ = store.apply([cand("k1"), cand("k2"), cand("k3"), cand("k4")], T0)
    store.ack(fired[0], "alice@a", "on it", now=T0 + timedelta(minutes=1))
    store.mute(fired[1], until=FOREVER, who="bob@b", now=T0 + timedelta(minutes=1))
    store.mute(fired[2], until=T0 + timedelta(minutes=30), who="bob@b", now=T0 + timedelta(minutes=1))
    store.mute(fired[3], until_resolved=True, who="carol@c", now=T0 + timedelta(minutes=1))
    store.apply([cand("k1"), cand("k2"), cand("k3")], T0 + timedelta(minutes=10))  # k4 resolves
    store.close()
    log = EventLog(target)
    events = [event(i) for i in range(24)]
    assert log.append(events) == len(events)
    log.close()


# Values whose case rules are Unicode's, not ASCII's (PostgreSQL's pre-filter must keep them):
# the Kelvin sign lowers to "k"; an upper-case ASCII provider; a non-ASCII lease.
ODD = {7: {"instance_id": "i-\u212a7"}, 9: {"provider": "E2B"}, 11: {"lease_id": "lease-État"}}


def event(i: int) -> Event:
    fields = {
        "lease_id": f"lease-{i % 4}", "instance_id": f"i-{i}", "provider": ("e2b", "daytona")[i % 2],
        **ODD.get(i, {}),
    }  # fmt: skip
    return Event(
        type="lease.convergence_changed" if i % 2 else "instance.appeared",
        observed_at=T0 + timedelta(minutes=20 * i), source=EventSource.PROVIDER_LIST,
        occurred_at=None if i % 3 else T0 + timedelta(minutes=20 * i - 1),
        **fields,
        thread_id=None if i % 2 else f"thread-{i}", before=STATES[i % len(STATES)],
        after=STATES[(i + 1) % len(STATES)], data={"i": i},
    )  # fmt: skip


def explore(tmp_path: Path, fleet: Any, ledger: str) -> Any:
    """ExploreService from a config whose `[ledger] url` names the ledger (sqlite:PATH or a URL)."""
    from opcockpit.settings.config import load_config

    path = tmp_path / f"cfg-{abs(hash(ledger))}.toml"
    path.write_text(
        f'[sources]\nsandbox_db = "{fleet.sandbox_db}"\nevents_db = "{fleet.events_db}"\n'
        f'[ledger]\nurl = "{ledger}"\n'
    )
    return build_explore(load_config(path, env={}).config, clock=lambda: T0 + timedelta(hours=6))


def run(ex: Any, text: str) -> Any:
    return asyncio.run(ex.run(text))


def key(row: dict[str, Any]) -> tuple:
    return tuple((k, type(v).__name__, repr(v)) for k, v in row.items())


QUERIES = [
    "audit",
    "audit operator:alice* or result:refused",
    "audit at>2026-03-20T04:30Z | sort at desc",
    "audit dry_run:true",
    "audit | group by provider, result | count",
    "alerts",
    "alerts muted:true | sort id",
    "alerts state:resolved or acked_by:alice*",
    "alerts | count by state",
    "events",
    "events since:2026-03-20T05:00Z until:2026-03-20T09:00Z",
    "events type:lease.* and provider:e2b | count by provider",
    "events | count by type",
    "events | count",
    'events after~"paused" or before:running',
    "events occurred_at:null | count by source",
    "events | count by time 1h",
    "events lease-3 | sort observed_at desc | limit 3",
    # PostgreSQL pre-filters these (ASCII values), the evaluator decides: same rows as SQLite
    "events i-k7",
    "events paused",  # free text inside before/after (PostgreSQL pre-filters on the raw body)
    'events "x \\"q"',
    "events provider:e2b",
    "events provider:E2* | count",
    "events instance_id:i-?7 or instance_id:i_1*",
    "events lease_id:lease-é*",
    "events état",
    "events not provider:e2b | count",
    "events (type:lease.* or provider:dayt*) and lease-1",
    'events provider:e2b or after~"paused"',
    "events source:provider_list type:instance.* | count by provider",
]


@pytest.fixture
def pair(fleet: Any, pg_url: str, tmp_path: Path) -> tuple[Any, Any]:
    sqlite_ledger = tmp_path / "ledger.db"
    fill(str(sqlite_ledger))
    fill(pg_url)
    return explore(tmp_path, fleet, f"sqlite:{sqlite_ledger}"), explore(tmp_path, fleet, pg_url)


def test_ledger_datasets_give_the_same_rows_on_sqlite_and_postgres(pair: tuple[Any, Any]) -> None:
    sqlite, pg = pair
    for text in QUERIES:
        a, b = run(sqlite, text), run(pg, text)
        assert a.columns == b.columns, text
        assert a.total == b.total, text
        assert [key(r) for r in a.rows] == [key(r) for r in b.rows], text
    # the data is really there (equal-and-empty would prove nothing)
    assert run(pg, "audit").total == 3 and run(pg, "alerts").total == 4 and run(pg, "events").total == 24
    alerts = {r["key"]: r for r in run(pg, "alerts").rows}
    assert alerts["k1"]["acked_by"] == "alice@a" and not alerts["k1"]["muted"]
    assert alerts["k2"]["muted"] and not alerts["k3"]["muted"]  # k3's mute ran out long ago
    assert alerts["k4"]["state"] == "resolved"
    # k1 was seen again unchanged at T0+10m (not rewritten, issue 10): that is its last sighting
    assert alerts["k1"]["last_seen"] == T0 + timedelta(minutes=10)
    assert alerts["k4"]["last_seen"] == T0  # resolved then: its last sighting stays
    audit = {r["op_id"]: r for r in run(pg, "audit").rows}
    assert audit["op1"]["at"] == T0 and audit["op1"]["convergence"] == "converged"
    assert audit["op3"]["dry_run"] is True and audit["op2"]["duration_ms"] == 7
    rows = run(pg, "events").rows
    assert rows[0]["observed_at"] == T0 and rows[0]["occurred_at"] == T0 - timedelta(minutes=1)
    assert rows[1]["after"] == json.dumps(STATES[2], separators=(",", ":"))
    # before/after are text whatever the JSON held (a text field: text operators apply to every row)
    assert [rows[i]["before"] for i in (0, 4, 5, 6, 7)] == ["running", "2.5", "true", "false", None]
    assert [r["instance_id"] for r in run(pg, "events i-k7").rows] == ["i-\u212a7"]
    assert run(pg, 'events "x \\"q"').total > 0 and run(pg, "events paused").total > 0  # escaped in the body
    assert run(pg, "events provider:e2b").total == 13 and run(pg, "events état").total == 1
    assert run(pg, "events since:2026-03-20T05:00Z until:2026-03-20T09:00Z").total == 12  # until: exclusive


def test_query_cli_reads_the_postgres_ledger(fleet: Any, pg_url: str, tmp_path: Path) -> None:
    from tests.cli_support import clean_env, run_cli

    fill(pg_url)
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(
        f'[sources]\nsandbox_db = "{fleet.sandbox_db}"\nevents_db = "{fleet.events_db}"\n'
        '[ledger]\nurl_env = "TEAM_LEDGER"\n'
    )
    env = clean_env(tmp_path / "home", TEAM_LEDGER=pg_url)
    audit = run_cli("--config", str(cfg), "query", "audit | count by operator", "--format", "json", env=env)
    assert audit.code == 0, audit.err
    assert {r["operator"]: r["count"] for r in json.loads(audit.out)} == {
        "alice@host-a": 1, "bob@host-b": 1, "élodie@host-c": 1,
    }  # fmt: skip
    events = run_cli("--config", str(cfg), "query", "events type:instance.* | count", "--format", "json",
                     env=env)  # fmt: skip
    assert events.code == 0 and json.loads(events.out) == [{"count": 12}], events.err
    # the SQL mode cannot attach a PostgreSQL ledger: one line saying so, nothing else
    sql = run_cli("--config", str(cfg), "query", "--sql", "SELECT count(*) FROM ledger.audit_log", env=env)
    assert sql.code == 2 and not sql.out.strip(), sql.err
    assert len(sql.err.strip().splitlines()) == 1 and "not attachable" in sql.err and "audit" in sql.err
    ok = run_cli("--config", str(cfg), "query", "--sql", "SELECT count(*) AS n FROM sandbox_leases", env=env)
    assert ok.code == 0 and "5" in ok.out, ok.err
    every = audit.out + audit.err + events.out + events.err + sql.out + sql.err + ok.out + ok.err
    assert PASSWORD not in every


def test_explore_never_writes_a_postgres_ledger(pg_url: str, fleet: Any, tmp_path: Path) -> None:
    """A ledger nothing was written to: no rows, and Explore creates no table there."""
    ex = explore(tmp_path, fleet, pg_url)
    for text in ("audit", "alerts", "events", "events | count by type"):
        assert run(ex, text).rows == [], text
    assert run(ex, "events | count").rows == [{"count": 0}]
    with psycopg.connect(pg_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert not tables & {"audit_log", "alerts", "events"}


def test_a_sqlite_ledger_is_still_attached_in_the_sql_mode(fleet: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    fill(str(ledger))
    ex = explore(tmp_path, fleet, f"sqlite:{ledger}")
    res = asyncio.run(ex.run_sql("SELECT count(*) FROM ledger.audit_log"))
    assert res.rows == [(3,)]


def test_unreachable_postgres_ledger_is_one_line_without_the_password(
    fleet: Any, pg_server: Any, tmp_path: Path
) -> None:
    url = pg_server.url().replace(PASSWORD, "wrong-pass-77")
    ex = explore(tmp_path, fleet, url)
    for text in ("audit", "alerts", "events | count"):
        with pytest.raises(LedgerError) as ei:
            run(ex, text)
        msg = str(ei.value)
        assert "authentication failed" in msg and "\n" not in msg, msg
        assert "wrong-pass-77" not in msg and PASSWORD not in msg
    with pytest.raises(SqlRefused) as sq:
        asyncio.run(ex.run_sql("SELECT * FROM ledger.alerts"))
    assert "not attachable" in str(sq.value) and "wrong-pass-77" not in str(sq.value)
    from tests.cli_support import clean_env, run_cli

    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'[sources]\nsandbox_db = "{fleet.sandbox_db}"\n[ledger]\nurl_env = "TEAM_LEDGER"\n')
    cli = run_cli("--config", str(cfg), "query", "audit", env=clean_env(tmp_path / "home", TEAM_LEDGER=url))
    assert cli.code == 3 and not cli.out.strip(), cli.err  # a source that cannot be read
    assert len(cli.err.strip().splitlines()) == 1 and "authentication failed" in cli.err
    assert "wrong-pass-77" not in cli.err and PASSWORD not in cli.err


def test_query_backed_rules_read_the_cockpits_postgres_ledger(
    fleet: Any, pg_url: str, tmp_path: Path
) -> None:
    """The alert engine's Explore (query-backed rules) reads the team's ledger, not the local file."""
    from opcockpit.settings.config import load_config
    from opcockpit.wiring import build_cockpit

    fill(pg_url)
    path = tmp_path / "cfg.toml"
    path.write_text(f'[sources]\nsandbox_db = "{fleet.sandbox_db}"\n[ledger]\nurl = "{pg_url}"\n')
    cockpit = build_cockpit(load_config(path, env={}).config, read_only=True)
    store = cockpit.open_alert_store()
    try:
        svc = cockpit.alert_engine(store).query_rules.explore()
        assert [r["op_id"] for r in run(svc, "audit").rows] == ["op1", "op2", "op3"]
    finally:
        store.close()


def test_postgres_source_with_a_postgres_ledger(
    fleet: Any, pg_server: Any, pg_url: str, tmp_path: Path
) -> None:
    """Both on PostgreSQL (each its own database): the ledger datasets come from the ledger's, the
    LEON ones from the source's; the SQL mode (on the source) says the ledger is not attached."""
    from opcockpit.settings.config import load_config
    from tests.test_pg_source import copy_fleet

    copy_fleet(fleet.sandbox_db, pg_url)
    ledger = pg_server.fresh_db()
    fill(ledger)
    path = tmp_path / "both.toml"
    path.write_text(
        f'[sources]\nkind = "postgres"\nurl = "{pg_url}"\nevents_db = "{fleet.events_db}"\n'
        f'[ledger]\nurl = "{ledger}"\n'
    )
    ex = build_explore(load_config(path, env={}).config, clock=lambda: T0 + timedelta(hours=6))
    assert run(ex, "events | count").rows == [{"count": 24}]
    assert [r["key"] for r in run(ex, "alerts muted:true").rows] == ["k2", "k4"]
    assert run(ex, "sessions | count").rows[0]["count"] > 0
    with pytest.raises(SqlRefused) as ei:
        asyncio.run(ex.run_sql("SELECT * FROM ledger.audit_log"))
    assert "not attachable" in str(ei.value) and PASSWORD not in str(ei.value)


def test_a_blocked_postgres_ledger_query_stops_at_its_time_budget(
    fleet: Any, pg_url: str, tmp_path: Path
) -> None:
    """statement_timeout is the query's budget: a read stuck behind another session's lock stops
    with QueryTimeout (one clear message) instead of hanging the worker."""
    from opcockpit.domain.query import QueryTimeout

    fill(pg_url)
    ex = explore(tmp_path, fleet, pg_url)
    with psycopg.connect(pg_url) as holder:
        holder.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")  # held until the block ends
        with pytest.raises(QueryTimeout) as ei:
            asyncio.run(ex.run("events", timeout_s=0.5))
        holder.rollback()
    assert "time budget" in str(ei.value)
    assert run(ex, "events | count").rows == [{"count": 24}]  # and the next query runs
