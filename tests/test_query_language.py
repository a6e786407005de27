"""The Explore query language: grammar, errors with columns, typed evaluation (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opcockpit.domain.query import (
    MissingParameterError,
    QueryError,
    QuerySyntaxError,
    QueryTimeout,
    UnknownNameError,
    compile_query,
    parse,
    run_plan,
)
from opcockpit.domain.query.ast import And, Compare, Count, GroupBy, InList, Not, Or, Text

NOW = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)
PROVIDERS = ("e2b", "daytona", "docker")


def _runs(n: int = 12) -> list[dict]:
    return [
        {
            "run_id": f"r{i}",
            "thread_id": f"t{i % 3}",
            "status": "error" if i % 2 == 0 else "completed",
            "provider": PROVIDERS[i % 3],
            "lease_id": f"lease-{i % 3}",
            "started": NOW - timedelta(hours=i, minutes=5),
            "ended": None,
            "last_event": NOW - timedelta(hours=i),
            "error": "HTTP 529 overloaded" if i % 4 == 0 else None,
            "events": i,
        }
        for i in range(n)
    ]


def q(text: str, rows: list[dict] | None = None, **kw) -> list[dict]:
    plan = compile_query(parse(text), now=NOW, params=kw.pop("params", None))
    return run_plan(plan, _runs() if rows is None else rows, **kw).rows


def test_parse_builds_the_tree() -> None:
    query = parse(
        "runs status:error and (provider in (e2b, docker) or !events>3) '529' | group by provider | count"
    )
    assert query.dataset == "runs"
    assert isinstance(query.where, And)
    first, second, third = query.where.items
    assert first == Compare("status", ":", first.value, 6) and first.value.text == "error"
    assert isinstance(second, Or) and isinstance(second.items[0], InList) and isinstance(second.items[1], Not)
    assert isinstance(third, Text) and third.value.kind == "string" and third.value.text == "529"
    assert query.stages == (GroupBy(("provider",), (query.text.index("provider |") + 1,)), Count())


def test_juxtaposed_terms_are_anded_and_keywords_are_case_insensitive() -> None:
    query = parse("runs a:b OR c:d AND NOT e")
    assert isinstance(query.where, Or)
    assert isinstance(query.where.items[1], And)
    assert isinstance(query.where.items[1].items[1], Not)
    # a keyword inside a longer word is a word (android, sorted)
    words = parse("runs android sorted notable").where
    assert isinstance(words, And) and all(isinstance(t, Text) for t in words.items)
    assert [t.value.text for t in words.items] == ["android", "sorted", "notable"]


def test_regex_strings_keep_their_backslashes() -> None:
    assert parse(r'runs error~"^HTTP \d+ \"x\""').where.value.text == r'^HTTP \d+ "x"'


@pytest.mark.parametrize(
    ("text", "column", "token"),
    [
        ("runs status: | count", 14, "'|'"),
        ("runs (status:error", 19, "the end"),
        ("runs status:error )", 19, "')'"),
        ("runs | limit ten", 14, "'ten'"),
        ("runs | count by time soon", 22, "'soon'"),
    ],
)
def test_syntax_errors_point_at_the_token(text: str, column: int, token: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse(text)
    err = info.value
    assert err.column == column
    assert f"column {column}" in str(err) and token in str(err)
    line, caret = err.caret()
    assert line == text and caret.index("^") == column - 1
    assert "\n" not in str(err)


def test_filters_and_group_count() -> None:
    rows = q("runs status:error since:-6h | group by provider | count")
    # errors at i = 0, 2, 4, 6 (6h ago is inside `since:-6h`)
    assert rows == [{"provider": "e2b", "count": 2}, {"provider": "daytona", "count": 1},
                    {"provider": "docker", "count": 1}]  # fmt: skip


def test_operators_by_type() -> None:
    assert [r["run_id"] for r in q("runs events>=10")] == ["r10", "r11"]
    assert len(q("runs events!=0")) == 11
    assert [r["run_id"] for r in q("runs status=error events<3")] == ["r0", "r2"]
    assert [r["run_id"] for r in q("runs provider:DOCK* events<6")] == ["r2", "r5"]
    assert [r["run_id"] for r in q("runs run_id~'^r1[01]$'")] == ["r10", "r11"]
    assert [r["run_id"] for r in q("runs provider in (docker, daytona) status:error events<5")] == [
        "r2",
        "r4",
    ]
    assert len(q("runs error:null")) == 9 and len(q("runs error!=null")) == 3
    assert [r["run_id"] for r in q("runs not status:completed and not provider:e2b events<5")] == ["r2", "r4"]


def test_time_ranges_relative_and_absolute() -> None:
    assert [r["run_id"] for r in q("runs started>-2h")] == ["r0", "r1"]
    assert [r["run_id"] for r in q("runs started>2026-12-06T18:00Z")] == ["r0", "r1"]
    assert [r["run_id"] for r in q("runs since:-1h30m")] == ["r0", "r1"]
    assert [r["run_id"] for r in q("runs until:-10h")] == ["r11"]
    plan = compile_query(parse("runs last_event>-3h since:-2h until:-1h"), now=NOW)
    assert plan.since == NOW - timedelta(hours=2) and plan.until == NOW - timedelta(hours=1)


def test_free_text_is_case_insensitive_across_text_fields() -> None:
    assert [r["run_id"] for r in q("runs overloaded")] == ["r0", "r4", "r8"]
    assert [r["run_id"] for r in q("runs LEASE-1")] == ["r1", "r4", "r7", "r10"]


def test_sort_limit_count_by_time() -> None:
    assert [r["run_id"] for r in q("runs | sort provider, events desc | limit 3")] == ["r10", "r7", "r4"]
    buckets = q("runs | count by time 6h")
    assert sum(b["count"] for b in buckets) == 12
    assert all(b["time"].timestamp() % 21600 == 0 for b in buckets)
    per = q("runs | group by provider | count by time 1d")
    assert {r["provider"] for r in per} == set(PROVIDERS) and sum(r["count"] for r in per) == 12
    assert q("runs | count") == [{"count": 12}]
    assert q("runs | count by status | sort count desc | limit 1")[0]["count"] == 6


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        q("runs bogus:1")
    assert "fields: run_id, thread_id, status" in str(info.value) and info.value.column == 6
    with pytest.raises(UnknownNameError, match="datasets: leases, orphans, runs"):
        q("rnus status:error")
    with pytest.raises(UnknownNameError, match="cannot sort by 'status'"):
        q("runs | count by provider | sort status")


def test_bad_values_name_the_field() -> None:
    with pytest.raises(QueryError, match="field events is a number; 'many' is not"):
        q("runs events>many")
    with pytest.raises(QueryError, match="is not a time"):
        q("runs started>yesterdayish")
    with pytest.raises(QueryError, match="bad regex"):
        q("runs error~'('")


def test_parameters_bind_and_missing_ones_are_named() -> None:
    assert [r["run_id"] for r in q("runs thread_id=:t events<4", params={"t": "t1"})] == ["r1"]
    with pytest.raises(MissingParameterError, match=r"missing parameter :t; pass --param t=VALUE"):
        q("runs thread_id=:t")


def test_results_are_capped_and_say_so_but_limit_is_not_a_cap() -> None:
    plan = compile_query(parse("runs"), now=NOW)
    result = run_plan(plan, _runs(50), cap=10)
    assert result.capped and len(result.rows) == 10 and result.total == 50
    assert "10 of 50" in result.notice
    limited = run_plan(compile_query(parse("runs | limit 20"), now=NOW), _runs(50), cap=10)
    assert not limited.capped and len(limited.rows) == 20 and limited.notice is None


def test_facets_come_with_the_results() -> None:
    result = run_plan(compile_query(parse("runs events<6"), now=NOW), _runs(), facets=True)
    assert dict(result.facets["status"]) == {"error": 3, "completed": 3}
    assert dict(result.facets["provider"]) == {"e2b": 2, "daytona": 2, "docker": 2}


def test_a_runaway_evaluation_stops() -> None:
    ticks = iter(range(1000))
    plan = compile_query(parse("runs"), now=NOW)
    with pytest.raises(QueryTimeout, match="time budget"):
        run_plan(plan, _runs(20000), deadline=0.5, clock=lambda: next(ticks))
