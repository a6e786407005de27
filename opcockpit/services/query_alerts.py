"""Query-backed alert rules, evaluated with the built-in rules (the AlertEngine calls this hook).

`QueryRules` is attached to an AlertEngine (`engine.query_rules`, by wiring). Every alert round
the engine asks it for:
- `config(current)`: the `[alerts]` TOML with the ledger's overrides and TUI-made query rules
  applied (domain/alerts_rules_apply.py); the ledger is re-read at most every `reload_s`, and an
  unreadable ledger keeps the last good config (alerting never stops over it);
- `evaluate(cfg, ground_truth, now)`: the candidates of the query rules and the scopes that could
  not be looked at. Each rule runs its Explore query at most every `interval` under its own
  `timeout` (bounded cost: one heavy query costs at most timeout/interval of a core); between
  runs its last answer stands. A rule whose query failed (timed out, a source unreadable, a saved
  query gone) reports its scope `@query:<name>` as unknown: its alert is kept as it is, never
  resolved on a guess, and the failure is shown in the rules view.

The engine's evaluate runs in a worker thread: the queries run in a private event loop there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from opcockpit.domain.alerts import AlertCandidate
from opcockpit.domain.alerts_config import AlertsConfig
from opcockpit.domain.alerts_rules import QueryRuleConfig, query_rule_id
from opcockpit.domain.alerts_rules_apply import QueryEval, apply_overrides, query_candidate
from opcockpit.domain.models import GroundTruth
from opcockpit.domain.query import DATASETS
from opcockpit.domain.text import one_line
from opcockpit.services.explore import ExploreService

__all__ = ["OverrideSource", "QueryRules"]

T = TypeVar("T")
EVIDENCE_CAP = 100  # rows a rule's query returns (its total is counted past the cap)
_KIND = {"leases": "lease", "orphans": "orphan", "runs": "run", "commands": "command", "sessions": "session"}


@dataclass
class OverrideSource:
    """Reads the ledger's overrides and TUI-made rules (adapters/ledger/rule_overrides.py, opened
    per read by the factory wiring gives). `read()` -> (overrides, ledger rules)."""

    open_store: Callable[[], Any]

    def read(self) -> tuple[list[tuple[str, str, Any]], dict[str, dict[str, Any]]]:
        st = self.open_store()
        try:
            return [(o.rule, o.field, o.value) for o in st.overrides()], st.query_rules()
        finally:
            st.close()


@dataclass
class _Slot:
    signature: tuple[Any, ...]
    next_due: float = 0.0
    candidate: AlertCandidate | None = None
    ok: bool = False  # the last run answered (its candidate stands until the next run)


@dataclass
class QueryRules:
    toml: AlertsConfig
    explore: Callable[[], ExploreService]  # built on first use (a snapshot never pays for it)
    overrides: OverrideSource | None = None
    reload_s: float = 10.0
    monotonic: Callable[[], float] = time.monotonic
    evals: dict[str, QueryEval] = field(default_factory=dict)  # rule id -> last evaluation
    problems: list[str] = field(default_factory=list)  # overrides the config rejected
    overridden: list[tuple[str, str]] = field(default_factory=list)  # (rule, field) from the ledger
    tui_made: set[str] = field(default_factory=set)  # query rules the ledger adds (not the TOML's)
    _effective: AlertsConfig | None = None
    _loaded_at: float | None = None
    _slots: dict[str, _Slot] = field(default_factory=dict)
    _svc: ExploreService | None = None
    _runner: ExploreService | None = None  # the same sources without the history: a rule's
    # query every minute would bury the operator's own queries
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------ config + overrides

    def config(self, current: AlertsConfig | None = None) -> AlertsConfig:
        """The effective config (TOML + ledger), re-read at most every reload_s."""
        now = self.monotonic()
        fresh = self._loaded_at is not None and now - self._loaded_at < self.reload_s
        if self._effective is not None and fresh:
            return self._effective
        self._loaded_at = now
        if self.overrides is None:
            self._effective = self.toml
            return self.toml
        try:
            rows, ledger_rules = self.overrides.read()
        except Exception as exc:  # an unreadable ledger: the last good config stays
            self.problems = [f"overrides not read: {one_line(str(exc))}"]
            return self._effective or self.toml
        self._effective, self.problems = apply_overrides(self.toml, rows, ledger_rules)
        self.overridden = [(r, f) for r, f, _ in rows]
        self.tui_made = set(ledger_rules) - set(self.toml.query)
        return self._effective

    def reload(self) -> AlertsConfig:
        """Re-read now (after the TUI changed an override)."""
        self._loaded_at = None
        return self.config()

    # ------------------------------------------------------------------ evaluation

    def evaluate(
        self, cfg: AlertsConfig, ground_truth: GroundTruth | None, now: datetime
    ) -> tuple[list[AlertCandidate], frozenset[str]]:
        """This round's query-rule candidates and the scopes not looked at (failed rules)."""
        if not cfg.enabled:
            return [], frozenset()
        rules = {n: r for n, r in cfg.query.items() if r.enabled}
        with self._lock:  # one round at a time (TUI and a `check` in one process)
            for name in list(self._slots):
                if name not in rules:
                    del self._slots[name]
            due = []
            t = self.monotonic()
            for name, rule in rules.items():
                sig = (rule.query, rule.saved, tuple(sorted(rule.params.items())), rule.min_rows,
                       rule.severity, rule.for_s, rule.interval_s)  # fmt: skip
                slot = self._slots.get(name)
                if slot is None or slot.signature != sig:
                    slot = self._slots[name] = _Slot(sig)
                if t >= slot.next_due:
                    due.append((name, rule, slot))
            if due:
                _run_coroutine(lambda: self._run_due(due, ground_truth, now))
            out = [s.candidate for s in self._slots.values() if s.ok and s.candidate is not None]
            blind = frozenset("@" + query_rule_id(n) for n, s in self._slots.items() if not s.ok)
        return sorted(out, key=lambda c: c.key), blind

    def due_in_s(self, cfg: AlertsConfig) -> float | None:
        """Seconds until the next query rule falls due (0: one never ran or its query changed);
        None: no query rule is on."""
        if not cfg.enabled:
            return None
        rules = {n: r for n, r in cfg.query.items() if r.enabled}
        if not rules:
            return None
        with self._lock:
            slots = [self._slots.get(name) for name in rules]
        if any(slot is None for slot in slots):
            return 0.0
        t = self.monotonic()
        return max(0.0, min(slot.next_due - t for slot in slots if slot is not None))

    async def _run_due(self, due: list[tuple[str, QueryRuleConfig, _Slot]], gt: GroundTruth | None,
                       now: datetime) -> None:  # fmt: skip
        if self._svc is None:
            self._svc = self.explore()
            self._runner = replace(self._svc, store=None)
        for name, rule, slot in due:
            started = self.monotonic()
            slot.next_due = started + rule.interval_s
            try:
                rows, sample = await asyncio.wait_for(self._count(rule, gt), rule.timeout_s + 1.0)
            except Exception as exc:  # timeout, source unreadable, saved query gone, bad query
                msg = "timed out" if isinstance(exc, TimeoutError) else one_line(str(exc) or repr(exc))
                slot.ok = False  # its alert is kept as it is (scope unknown), not resolved
                self.evals[query_rule_id(name)] = QueryEval(now, None, self.monotonic() - started, msg)
                continue
            slot.ok, slot.candidate = True, query_candidate(name, rule, rows, sample)
            self.evals[query_rule_id(name)] = QueryEval(now, rows, self.monotonic() - started)

    async def _count(
        self, rule: QueryRuleConfig, gt: GroundTruth | None
    ) -> tuple[int, list[tuple[str, str]]]:
        """(rows the query returns, up to 10 (kind, id) of them as evidence)."""
        svc, runner = self._svc, self._runner
        assert svc is not None and runner is not None
        text, params = rule.query, dict(rule.params)
        if text is None:
            saved = await asyncio.to_thread(svc.saved, rule.saved or "")
            if saved is None:
                raise LookupError(f"saved query {rule.saved!r} not found")
            if saved.sql:
                raise ValueError(f"saved query {rule.saved!r} is SQL; alert rules take the query language")
            text = saved.query
        result = await runner.run(
            text, params=params, cap=EVIDENCE_CAP, timeout_s=rule.timeout_s, ground_truth=gt
        )
        spec = DATASETS[result.dataset]
        sample: list[tuple[str, str]] = []
        if spec.key in result.columns:
            kind = _KIND.get(spec.name, spec.name)
            for r in result.rows[:10]:
                key = r.get(spec.key)
                if key is not None:
                    ident = f"{r.get('provider')}/{key}" if spec.name == "orphans" else str(key)
                    sample.append((kind, ident))
        return result.total, sample


def _run_coroutine(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code: here if no loop runs in this thread (the
    engine's worker thread, a CLI), else in a helper thread (never nested in a running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="query-rules") as ex:
        return ex.submit(lambda: asyncio.run(factory())).result()
