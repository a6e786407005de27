"""Query-backed alert rules (services/query_alerts.py + the AlertEngine hook) on real parts: a
generated LEON fleet (real sandbox.db/events.db), the real ExploreService, a real ledger file
(alerts + rule overrides). Fires after its hold time, keeps its cadence, resolves, keeps its alert
when the query cannot run, and the ledger's overrides change built-in and query rules."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.adapters.ledger.rule_overrides import RuleOverrideStore
from opcockpit.demo.fleet import generate_fleet
from opcockpit.domain.alerts_config import AlertsConfig
from opcockpit.services.query_alerts import OverrideSource, QueryRules
from opcockpit.settings.config import CockpitConfig
from opcockpit.tui.synthetic import make_ground_truth
from opcockpit.wiring import build_alert_engine, build_explore

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return generate_fleet(tmp_path_factory.mktemp("fleet"), leases=30, seed=3, now=NOW)


class Mono:
    """The evaluator's monotonic clock, moved by the test (intervals without sleeping)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Env:
    def __init__(self, tmp_path: Path, fleet: Any, rules: dict[str, dict[str, Any]]) -> None:
        self.sandbox = tmp_path / "sandbox.db"
        shutil.copy(fleet.sandbox_db, self.sandbox)  # a copy the test may break
        self.ledger = tmp_path / "ledger.db"
        self.now = NOW
        self.mono = Mono()
        settings = CockpitConfig.model_validate(
            {"sources": {"sandbox_db": str(self.sandbox), "events_db": str(fleet.events_db)}}
        )
        self.cfg = AlertsConfig.model_validate({"query": rules})
        self.store = AlertStore.open(self.ledger)
        self.engine = build_alert_engine(self.store, self.cfg, lambda: self.now)
        self.rules = QueryRules(
            toml=self.cfg,
            explore=lambda: build_explore(settings, ledger_path=self.ledger, clock=lambda: self.now),
            overrides=OverrideSource(lambda: RuleOverrideStore.open(self.ledger)),
            monotonic=self.mono,
        )
        self.engine.query_rules = self.rules
        self.gt = make_ground_truth(5)

    def round(self, advance_s: float = 0.0) -> Any:
        self.now += timedelta(seconds=advance_s)
        self.mono.t += advance_s
        return self.engine.evaluate(self.gt, now=self.now)

    def firing(self) -> dict[str, Any]:
        return {a.key: a for a in self.store.active()}


def test_fires_after_its_hold_time_with_evidence(tmp_path: Path, fleet: Any) -> None:
    env = Env(tmp_path, fleet, {"failed-cmds": {"query": "commands exit_code!=0", "for": "5m",
                                                "severity": "critical", "min_rows": 2}})  # fmt: skip
    snap = env.round()
    assert "query:failed-cmds" not in env.firing() and snap.pending >= 1  # held, not yet firing
    ev = env.rules.evals["query:failed-cmds"]
    assert ev.error is None and ev.rows is not None and ev.rows >= 2
    env.round(301)
    alert = env.firing()["query:failed-cmds"]
    assert alert.rule == "query:failed-cmds" and alert.severity.value == "critical"
    assert alert.summary == f"query failed-cmds returned {ev.rows} rows (≥ 2)"
    assert alert.evidence and all(e.kind == "command" for e in alert.evidence)
    assert alert.threshold == "≥ 2 rows for 5m"


def test_cadence_then_resolve_by_an_override(tmp_path: Path, fleet: Any) -> None:
    env = Env(tmp_path, fleet, {"errs": {"query": "runs status:error", "for": 0, "interval": "2m"}})
    env.round()
    first = env.rules.evals["query:errs"]
    assert "query:errs" in env.firing()
    env.round(30)  # within the interval: the query is not run again, its answer stands
    assert env.rules.evals["query:errs"] is first and "query:errs" in env.firing()
    with RuleOverrideStore.open(env.ledger) as st:
        st.set_override("query:errs", "min_rows", 10_000, "alice")
    env.rules.reload()
    env.round(100)  # due again (2m since the first run): now below the threshold
    assert env.rules.evals["query:errs"] is not first
    assert "query:errs" not in env.firing()
    mine = [a for a in env.store.history(50) if a.key == "query:errs"]
    assert [a.state for a in mine] == ["resolved"]


def test_an_unreadable_source_keeps_the_alert(tmp_path: Path, fleet: Any) -> None:
    env = Env(tmp_path, fleet, {"cmds": {"query": "commands", "for": 0, "interval": "10s"}})
    env.round()
    assert "query:cmds" in env.firing()
    env.sandbox.write_bytes(b"this is not a database" * 100)
    env.round(11)
    ev = env.rules.evals["query:cmds"]
    assert ev.rows is None and ev.error  # said, in one line
    assert "\n" not in ev.error
    assert "query:cmds" in env.firing()  # "we could not look" is not "it is fine"


def test_a_missing_saved_query_and_a_timeout_are_failures(tmp_path: Path, fleet: Any) -> None:
    env = Env(tmp_path, fleet, {"gone": {"saved": "nosuch"}, "slow": {"query": "commands", "timeout": 1e-9}})
    env.round()
    assert "saved query 'nosuch' not found" in (env.rules.evals["query:gone"].error or "")
    assert "ran past its time budget" in (env.rules.evals["query:slow"].error or "")
    assert not any(k.startswith("query:") for k in env.firing())
    # both scopes are reported as not looked at (an alert they had would be kept)
    _, blind = env.rules.evaluate(env.engine.config, env.gt, env.now)
    assert blind == {"@query:gone", "@query:slow"}


def test_a_saved_query_backs_a_rule_with_parameters(tmp_path: Path, fleet: Any) -> None:
    env = Env(tmp_path, fleet, {"by-prov": {"saved": "prov-cmds", "params": {"p": "e2b"}, "for": 0}})
    svc = build_explore(CockpitConfig.model_validate({"sources": {"sandbox_db": str(env.sandbox)}}),
                        ledger_path=env.ledger)  # fmt: skip
    svc.save("prov-cmds", "commands provider::p")
    env.round()
    ev = env.rules.evals["query:by-prov"]
    want = sum(1 for _ in svc.rows.rows("commands", since=None, until=None, where=None, deadline=None)
               if _["provider"] == "e2b")  # fmt: skip
    assert ev.error is None and ev.rows == want


def test_overrides_reach_the_built_in_rules(tmp_path: Path, fleet: Any) -> None:
    env = Env(tmp_path, fleet, {})
    with RuleOverrideStore.open(env.ledger) as st:
        st.set_override("orphans_present", "enabled", False, "bob")
        st.set_override("orphans_present", "orphans_min", 4, "bob")
        st.set_override("leak", "leak_for_s", -5, "bob")  # out of bounds: skipped and said
    env.round()
    assert "orphans_present" in env.engine.config.disabled_rules and env.engine.config.orphans_min == 4
    assert env.engine.config.leak_for_s == env.cfg.leak_for_s
    assert any("leak.leak_for_s" in p for p in env.rules.problems)
    assert not any(k.startswith("orphans_present:") for k in env.firing())


def test_rules_made_in_the_tui_are_evaluated(tmp_path: Path, fleet: Any) -> None:
    env = Env(tmp_path, fleet, {})
    with RuleOverrideStore.open(env.ledger) as st:
        st.save_query_rule("tui-rule", {"query": "commands", "for": 0}, "carol")
    env.round()
    assert "query:tui-rule" in env.firing()


def test_the_documented_query_rule_is_valid() -> None:
    import re
    import tomllib

    doc = (Path(__file__).resolve().parents[1] / "docs" / "alerts.md").read_text()
    block = re.search(r"```toml\n(\[alerts\.query\..*?)```", doc, re.S)
    assert block is not None
    cfg = AlertsConfig.model_validate(tomllib.loads(block.group(1))["alerts"])
    rule = cfg.query["e2b-errors"]
    assert (rule.min_rows, rule.for_s, rule.interval_s, rule.timeout_s) == (3, 300, 60, 5)
    assert rule.severity == "critical" and rule.query == "runs status:error provider:e2b since:-1h"


def test_the_cockpit_engine_carries_the_query_rules(tmp_path: Path, fleet: Any) -> None:
    """wiring: every engine the Cockpit builds (TUI, `alerts check`, `snapshot --check`) has them."""
    from opcockpit.wiring import build_cockpit

    settings = CockpitConfig.model_validate({
        "sources": {"sandbox_db": str(fleet.sandbox_db), "events_db": str(fleet.events_db)},
        "alerts": {"query": {"cmds": {"query": "commands", "for": 0, "min_rows": 1}}},
    })  # fmt: skip
    ledger = tmp_path / "ledger.db"
    cockpit = build_cockpit(settings, ledger_path=ledger, clock=lambda: NOW)
    with RuleOverrideStore.open(ledger) as st:
        st.set_override("orphans_present", "orphans_min", 7, "dave")
    store = cockpit.open_alert_store()
    try:
        engine = cockpit.alert_engine(store)
        engine.evaluate(make_ground_truth(3), now=NOW)
        assert "query:cmds" in {a.key for a in store.active()}
        assert engine.config.orphans_min == 7
    finally:
        store.close()


def test_a_query_alert_is_notified_like_any_alert(tmp_path: Path, fleet: Any) -> None:
    import sys

    out = tmp_path / "notified.jsonl"
    env = Env(tmp_path, fleet, {"cmds": {"query": "commands", "for": 0}})
    script = f"import sys; open({str(out)!r}, 'a').write(sys.stdin.read() + '\\n')"
    cfg = AlertsConfig.model_validate({"query": env.cfg.model_dump(by_alias=True)["query"],
                                       "command": {"argv": [sys.executable, "-c", script]}})  # fmt: skip
    env.engine = build_alert_engine(env.store, cfg, lambda: env.now)
    env.engine.query_rules = env.rules
    snap = env.round()
    assert [d.ok for d in snap.deliveries if d.alert_id == env.firing()["query:cmds"].id] == [True]
    assert '"query:cmds"' in out.read_text()
