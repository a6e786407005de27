"""Explore end to end over a generated LEON fleet (real SQLite files): datasets, the SQL mode's
guards, saved queries, the CLI's exit codes, and every example in docs/explore.md."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest

from opcockpit.adapters.leon.sql_readonly import ReadOnlySql
from opcockpit.demo.fleet import generate_fleet
from opcockpit.domain.query import QueryError, compile_query, parse
from opcockpit.ports.explore import SqlRefused
from opcockpit.settings.config import CockpitConfig
from opcockpit.wiring import build_explore

DOC = Path(__file__).resolve().parents[1] / "docs" / "explore.md"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    return generate_fleet(tmp_path_factory.mktemp("fleet"), leases=40, seed=5)


@pytest.fixture
def explore(fleet, tmp_path: Path):
    cfg = CockpitConfig.model_validate(
        {"sources": {"sandbox_db": str(fleet.sandbox_db), "events_db": str(fleet.events_db)}}
    )
    return build_explore(cfg, ledger_path=tmp_path / "ledger.db")


def run(explore, text: str, **kw):
    return asyncio.run(explore.run(text, **kw))


def _doc_blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)\n```", DOC.read_text(), flags=re.S)


def test_every_doc_example_runs(explore) -> None:
    examples = _doc_blocks("query")
    assert len(examples) >= 6
    for text in examples:
        result = run(explore, text)
        assert result.columns, text
    for sql in _doc_blocks("sql"):
        assert asyncio.run(explore.run_sql(sql)).rows


def test_group_by_matches_the_tables(explore, fleet) -> None:
    result = run(explore, "run_events | group by event_type | count")
    counts = {r["event_type"]: r["count"] for r in result.rows}
    with sqlite3.connect(fleet.events_db) as conn:
        expected = dict(conn.execute("SELECT event_type, COUNT(*) FROM run_events GROUP BY 1"))
    assert counts == expected


def test_commands_carry_thread_and_provider_and_output(explore, fleet) -> None:
    rows = run(explore, "commands").rows
    assert rows and all(r["provider"] for r in rows if r["lease_id"])
    with sqlite3.connect(fleet.sandbox_db) as conn:
        cid, content = conn.execute(
            "SELECT command_id, content FROM terminal_command_chunks LIMIT 1"
        ).fetchone()
    found = {r["command_id"]: r for r in run(explore, f"commands command_id={cid}").rows}
    assert content in found[cid]["output"]


def test_runs_filter_by_provider_and_time(explore) -> None:
    all_runs = run(explore, "runs").rows
    errors = run(explore, "runs status:error").rows
    assert all_runs and {r["status"] for r in errors} <= {"error"}
    assert all(r["provider"] for r in all_runs if r["lease_id"])


def test_unreadable_source_is_a_source_error(tmp_path: Path) -> None:
    from opcockpit.ports.errors import SourceError

    cfg = CockpitConfig.model_validate(
        {"sources": {"sandbox_db": str(tmp_path / "nope.db"), "events_db": str(tmp_path / "nope2.db")}}
    )
    ex = build_explore(cfg, ledger_path=tmp_path / "l.db")
    with pytest.raises(SourceError):
        run(ex, "commands")
    assert not (tmp_path / "nope.db").exists()


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM sandbox_leases",
        "UPDATE sandbox_leases SET desired_state = 'destroyed'",
        "INSERT INTO run_events (thread_id, run_id, event_type, data) VALUES ('a','b','c','d')",
        "DROP TABLE sandbox_leases",
        "PRAGMA journal_mode=DELETE",
        "ATTACH DATABASE ':memory:' AS x",
        "SELECT 1; DELETE FROM sandbox_leases",
    ],
)
def test_sql_mode_refuses_writes_and_changes_nothing(fleet, sql: str) -> None:
    before = fleet.sandbox_db.read_bytes()
    with pytest.raises(SqlRefused) as info:
        ReadOnlySql(str(fleet.sandbox_db), str(fleet.events_db)).execute(sql, limit=10, timeout_s=2)
    assert "\n" not in str(info.value)
    assert fleet.sandbox_db.read_bytes() == before


def test_sql_mode_reads_all_three_and_caps_rows(fleet, tmp_path: Path) -> None:
    sql = ReadOnlySql(str(fleet.sandbox_db), str(fleet.events_db))
    res = sql.execute("SELECT seq FROM events.run_events", limit=5, timeout_s=5)
    assert len(res.rows) == 5 and res.capped and res.columns == ("seq",)


def test_sql_mode_interrupts_a_runaway_query(fleet) -> None:
    runaway = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"
    with pytest.raises(SqlRefused, match="stopped after"):
        ReadOnlySql(str(fleet.sandbox_db)).execute(runaway, limit=10, timeout_s=0.3)


def test_saved_queries_params_history_and_toml(explore, tmp_path: Path) -> None:
    from opcockpit.wiring import dump_queries_toml, load_queries_toml

    saved = explore.save("failing", "commands thread_id=:thread exit_code!=0", description="per thread")
    assert saved.params == ("thread",) and saved.owner
    with pytest.raises(QueryError, match="missing parameter :thread"):
        run(explore, saved.query)
    assert run(explore, saved.query, params={"thread": "nobody"}).rows == []
    text = dump_queries_toml(explore.saved_all())
    back = load_queries_toml(text)
    assert [(q.name, q.query, q.params, q.description) for q in back] == [
        ("failing", saved.query, ("thread",), "per thread")
    ]
    history = explore.history()
    assert history[0]["query"] == saved.query and history[1]["error"].startswith("missing parameter")
    assert explore.remove("failing") and explore.saved("failing") is None


def test_cli_exit_codes(fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from opcockpit.cli.main import main

    base = [
        "--db",
        str(fleet.sandbox_db),
        "--events-db",
        str(fleet.events_db),
        "--ledger",
        str(tmp_path / "l.db"),
    ]
    assert main(["query", "runs | count by status", "--format", "json", *base]) == 0
    assert '"count"' in capsys.readouterr().out
    assert main(["query", "runs status: | count", *base]) == 2
    errs = capsys.readouterr().err.splitlines()
    assert "column 14" in errs[0] and errs[1] == "runs status: | count" and errs[2] == " " * 13 + "^"
    assert main(["query", "--sql", "DELETE FROM sandbox_leases", *base]) == 2
    assert "read-only" in capsys.readouterr().err
    assert (
        main(["query", "commands", "--db", str(tmp_path / "missing.db"), "--ledger", str(tmp_path / "l.db")])
        == 3
    )
    assert main(["query", "run_events", "--limit", "3", "--format", "ndjson", *base]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3 and "capped" in captured.err


def test_plan_pushes_the_window_down() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 12, 6, tzinfo=UTC)
    plan = compile_query(parse("run_events since:-24h event_type:error"), now=now)
    assert plan.since == now - timedelta(hours=24)


def test_queries_export_and_import_carry_pins(
    fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A team keeps its saved queries in git: the hotkey and palette pins travel with them."""
    from opcockpit.adapters.ledger.rule_overrides import RuleOverrideStore
    from opcockpit.cli.main import main

    def base(ledger: Path) -> list[str]:
        return ["--db", str(fleet.sandbox_db), "--events-db", str(fleet.events_db), "--ledger", str(ledger)]

    mine, theirs, out = tmp_path / "mine.db", tmp_path / "theirs.db", tmp_path / "team.toml"
    assert main(["queries", "save", "errs", "runs status:error", *base(mine)]) == 0
    assert main(["queries", "save", "plain", "leases", *base(mine)]) == 0
    with RuleOverrideStore.open(mine) as store:
        store.pin("errs", slot=3, palette=True, who="alice")
    assert main(["queries", "export", str(out), *base(mine)]) == 0
    text = out.read_text()
    errs, plain = text.split("[queries.")[1:]
    assert "hotkey = 3" in errs and "palette = true" in errs
    assert "hotkey" not in plain and "palette" not in plain
    capsys.readouterr()
    assert main(["queries", "import", str(out), *base(theirs)]) == 0
    assert "imported 2 queries, 1 pinned" in capsys.readouterr().err
    with RuleOverrideStore.open(theirs) as store:
        assert [(p.name, p.slot, p.palette) for p in store.pins()] == [("errs", 3, True)]
    out.write_text(text.replace("hotkey = 3", "hotkey = 12"))  # a bad pin imports nothing
    assert main(["queries", "import", str(out), *base(tmp_path / "third.db")]) == 2
    assert "queries.errs: hotkey must be a number 1..9" in capsys.readouterr().err


def test_record_false_leaves_the_history_to_the_caller(explore) -> None:
    """The TUI runs with record=False and records once the result is drawn (`remember`)."""
    result = run(explore, "commands | count", record=False)
    with pytest.raises(QueryError):
        run(explore, "commands nosuchfield:1", record=False)
    assert explore.history() == []
    asyncio.run(explore.remember("commands | count", rows=result.total))
    asyncio.run(explore.remember("commands nosuchfield:1", rows=None, error=QueryError("bad\nfield")))
    history = explore.history()
    assert [(h["query"], h["rows"], h["error"]) for h in history] == [
        ("commands nosuchfield:1", None, "bad field"),
        ("commands | count", 1, None),
    ]


def test_the_thread_map_follows_sandbox_db(fleet, tmp_path: Path) -> None:
    """A long-lived service (the TUI's) maps a thread bound after its first query to its lease
    and provider; a commit that touches no terminal or lease does not read the map again."""
    import shutil

    db = tmp_path / "sandbox.db"
    shutil.copy(fleet.sandbox_db, db)
    sources = {"sandbox_db": str(db), "events_db": str(fleet.events_db)}
    rows = build_explore(CockpitConfig.model_validate({"sources": sources}), ledger_path=None).rows
    first = rows.thread_leases()
    with sqlite3.connect(db) as conn:  # a lease changes state: the bindings do not move
        flip = "CASE desired_state WHEN 'paused' THEN 'running' ELSE 'paused' END"
        conn.execute(f"UPDATE sandbox_leases SET desired_state = {flip} WHERE rowid = 1")
    assert rows.thread_leases() is first
    thread, (lease, _) = next(iter(first.items()))
    with sqlite3.connect(db) as conn:
        newest, other, provider = conn.execute(
            "SELECT t.terminal_id, l.lease_id, l.provider_name FROM abstract_terminals t, sandbox_leases l"
            " WHERE l.lease_id <> ? ORDER BY t.rowid DESC LIMIT 1",
            (lease,),
        ).fetchone()
        # the thread's terminals go and a new one binds it to another lease, in the newest
        # terminal's rowid (deleted first: SQLite hands the greatest rowid out again)
        conn.execute(
            "DELETE FROM abstract_terminals WHERE thread_id = ? OR terminal_id = ?", (thread, newest)
        )
        values = {"terminal_id": "term-rebound", "thread_id": thread, "lease_id": other, "cwd": "/"}
        conn.execute(
            f"INSERT INTO abstract_terminals ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
            list(values.values()),
        )
    assert rows.thread_leases()[thread] == (other, provider)
