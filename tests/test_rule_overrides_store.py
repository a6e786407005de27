"""adapters/ledger/rule_overrides.py on a real SQLite ledger file and a real PostgreSQL server:
overrides set/replace/clear, TUI-made query rules, pins (a slot moves, unpin), reopen keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest

from opcockpit.adapters.ledger.rule_overrides import Pin, RuleOverrideStore
from tests.fixtures.postgres import pg_server, pg_url  # noqa: F401


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return request.getfixturevalue("pg_url")


def test_overrides_round_trip(target: str) -> None:
    with RuleOverrideStore.open(target) as st:
        assert st.overrides() == []
        st.set_override("orphans_present", "orphans_min", 3, "alice")
        st.set_override("orphans_present", "orphans_min", 5, "bob")  # replaces
        st.set_override("leak", "enabled", False, "bob")
        st.set_override("query:e2b", "min_rows", 7, "bob")
    with RuleOverrideStore.open(target) as st:
        got = {(o.rule, o.field): (o.value, o.who) for o in st.overrides()}
        assert got == {
            ("orphans_present", "orphans_min"): (5, "bob"),
            ("leak", "enabled"): (False, "bob"),
            ("query:e2b", "min_rows"): (7, "bob"),
        }
        assert st.clear_override("leak") == 1 and st.clear_override("leak") == 0
        assert st.clear_override("orphans_present", "nosuch") == 0
        assert {o.rule for o in st.overrides()} == {"orphans_present", "query:e2b"}


def test_query_rules_and_pins(target: str) -> None:
    with RuleOverrideStore.open(target) as st:
        st.save_query_rule("errs", {"query": "runs status:error", "min_rows": 2}, "alice")
        st.save_query_rule("errs", {"query": "runs status:error", "min_rows": 4}, "alice")
        assert st.query_rules() == {"errs": {"query": "runs status:error", "min_rows": 4}}
        st.pin("a", slot=1, palette=False, who="x")
        st.pin("b", slot=2, palette=True, who="x")
        st.pin("c", slot=None, palette=True, who="x")
        assert st.pins() == [Pin("a", 1, False), Pin("b", 2, True), Pin("c", None, True)]
        st.pin("c", slot=1, palette=True, who="x")  # slot 1 moves from a to c
        assert st.pins() == [Pin("c", 1, True), Pin("b", 2, True)]  # a had only that slot
        st.pin("b", slot=None, palette=False, who="x")  # unpinned
        with pytest.raises(ValueError, match=r"1\.\.9"):
            st.pin("d", slot=10, palette=False, who="x")
        assert st.remove_query_rule("errs") and not st.remove_query_rule("errs")
    with RuleOverrideStore.open(target) as st:
        assert [p.name for p in st.pins()] == ["c"] and st.query_rules() == {}
