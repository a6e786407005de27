"""domain/alerts_rules_apply.py (pure) and config_show_lines (a real ledger file): overrides over
the TOML, what is refused and why, the rules table, `config show`'s override lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.rule_overrides import RuleOverrideStore, config_show_lines
from opcockpit.domain.alerts_config import RULE_NAMES, AlertsConfig
from opcockpit.domain.alerts_rules_apply import (
    QueryEval,
    apply_overrides,
    parse_override_value,
    query_candidate,
    rules_table,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
TOML = AlertsConfig.model_validate(
    {"orphans_min": 2, "query": {"errs": {"query": "runs status:error", "min_rows": 3, "for": "5m"}}}
)


def test_overrides_apply_and_bad_ones_are_named() -> None:
    cfg, problems = apply_overrides(
        TOML,
        [
            ("orphans_present", "orphans_min", 5),
            ("leak", "enabled", False),
            ("stuck_run", "severity", "critical"),
            ("query:errs", "for_s", 60.0),
            ("query:errs", "enabled", False),
            ("leak", "orphans_min", 9),  # not a field of that rule
            ("flapping", "flapping_transitions", 1),  # below the config's bound (ge=2)
            ("query:nosuch", "min_rows", 3),
        ],
        {"tui": {"query": "commands", "min_rows": 1}, "errs": {"query": "runs"}},  # TOML wins "errs"
    )
    assert cfg.orphans_min == 5 and "leak" in cfg.disabled_rules and cfg.severity["stuck_run"] == "critical"
    assert cfg.query["errs"].for_s == 60 and not cfg.query["errs"].enabled
    assert cfg.query["errs"].query == "runs status:error" and cfg.query["tui"].query == "commands"
    assert cfg.flapping_transitions == TOML.flapping_transitions and cfg.orphans_min == 5
    assert len(problems) == 3
    assert "leak.orphans_min ignored: not an editable field" in problems[0]
    assert "flapping.flapping_transitions = 1 ignored" in problems[1]
    assert "greater than or equal to 2" in problems[1]
    assert "query:nosuch.min_rows" in problems[2]
    # re-enabling is an override too
    cfg2, _ = apply_overrides(cfg, [("leak", "enabled", True)])
    assert "leak" not in cfg2.disabled_rules


@pytest.mark.parametrize(
    ("field", "raw", "value"),
    [("orphans_for_s", "5m", 300.0), ("orphans_for_s", "90", 90.0), ("orphans_for_s", "0s", 0.0),
     ("orphans_min", "4", 4), ("memory_pct", "85.5", 85.5), ("enabled", "off", False),
     ("severity", "CRITICAL", "critical"), ("leak_states", "running, paused", ["running", "paused"])],
)  # fmt: skip
def test_parse_override_value(field: str, raw: str, value: object) -> None:
    assert parse_override_value(field, raw) == value


@pytest.mark.parametrize(
    ("field", "raw"),
    [("orphans_min", "many"), ("enabled", "maybe"), ("severity", "loud"), ("orphans_for_s", "soon"),
     ("orphans_min", " ")],
)  # fmt: skip
def test_parse_override_value_refuses(field: str, raw: str) -> None:
    with pytest.raises(ValueError):
        parse_override_value(field, raw)


def test_rules_table_and_candidate() -> None:
    evals = {"query:errs": QueryEval(NOW - timedelta(seconds=30), 4, 0.2)}
    rows = rules_table(TOML, [("orphans_present", "orphans_min")], now=NOW, last_round=NOW,
                       firing={"leak": 2}, query_evals=evals)  # fmt: skip
    by = {r.rule: r for r in rows}
    assert [r.rule for r in rows] == [*RULE_NAMES, "query:errs"]
    assert by["orphans_present"].overridden == {"orphans_min"} and by["leak"].last_eval == "0s ago, 2 firing"
    assert by["query:errs"].last_eval == "4 rows 30s ago" and by["query:errs"].hold_s == 300
    c = query_candidate("errs", TOML.query["errs"], 4, [("run", "r1")])
    assert c is not None and c.key == "query:errs" and c.scope == "@query:errs" and c.hold_s == 300
    assert query_candidate("errs", TOML.query["errs"], 2) is None  # below min_rows


def test_config_show_lines_on_a_real_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    assert config_show_lines(ledger, TOML) == [] and not ledger.exists()  # never creates the ledger
    with RuleOverrideStore.open(ledger) as st:
        st.set_override("orphans_present", "orphans_min", 5, "alice")
        st.set_override("leak", "enabled", False, "bob")
        st.set_override("query:errs", "for_s", 60.0, "bob")
        st.save_query_rule("tui", {"query": "commands"}, "carol")
    lines = config_show_lines(ledger, TOML)
    assert lines[1].startswith("# overrides in the ledger")
    assert lines[2].startswith("[alerts] leak enabled = false   # override (TOML: true), by bob at ")
    assert lines[3].startswith("[alerts] orphans_min = 5   # override (TOML: 2), by alice at ")
    assert lines[4].startswith('[alerts.query."errs"] for = 60.0   # override (TOML: 300.0), by bob')
    assert lines[5] == '# [alerts.query."tui"] made in the TUI: {"query": "commands"}'
    ledger.write_bytes(b"garbage" * 200)
    bad = config_show_lines(ledger, TOML)
    assert len(bad) == 2 and bad[1].startswith("# rule overrides: not read (") and str(ledger) in bad[1]


def test_config_show_lists_query_rules_and_ledger_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from opcockpit.cli.main import main

    ledger = tmp_path / "ledger.db"
    monkeypatch.setenv("OPCOCKPIT_LEDGER", str(ledger))
    monkeypatch.setenv("HOME", str(tmp_path))
    conf = tmp_path / "c.toml"
    conf.write_text(
        '[alerts]\norphans_min = 2\n\n[alerts.query.errs]\nquery = "runs status:error"\nmin_rows = 3\n'
    )
    assert main(["config", "show", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert 'query = { "errs" = { "query" = "runs status:error", "min_rows" = 3 } }' in out
    assert "overrides in the ledger" not in out and not ledger.exists()
    with RuleOverrideStore.open(ledger) as st:
        st.set_override("orphans_present", "orphans_min", 5, "alice")
    assert main(["config", "show", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert "[alerts] orphans_min = 5   # override (TOML: 2), by alice at " in out
