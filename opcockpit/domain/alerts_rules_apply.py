"""Rules as the operator sees them: TOML + ledger overrides -> the effective AlertsConfig, the
rules view's rows, `config show`'s override lines, and a query rule's alert candidate. Pure.

An override is (rule, field, value): `enabled` and `severity` for any rule; a built-in rule's
threshold or hold-time field (domain/alerts_rules.BUILTIN_*); a query rule's min_rows, for_s,
interval_s, timeout_s. An override the config would reject (out of bounds, unknown field) is
skipped and named in `problems`: a bad ledger row never switches alerting off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from opcockpit.domain.alerts import AlertCandidate, Evidence, fmt_duration
from opcockpit.domain.alerts_config import RULE_NAMES, AlertsConfig, Severity
from opcockpit.domain.alerts_rules import (
    BUILTIN_DEFAULT_SEVERITY,
    BUILTIN_HOLD,
    BUILTIN_THRESHOLDS,
    EDITABLE_QUERY_FIELDS,
    QUERY_RULE_PREFIX,
    QueryRuleConfig,
    parse_seconds,
    query_rule_id,
)

__all__ = [
    "OverrideRow",
    "QueryEval",
    "RuleInfo",
    "apply_overrides",
    "editable_fields",
    "override_lines",
    "parse_override_value",
    "query_candidate",
    "rules_table",
]

OverrideRow = tuple[str, str, Any]  # (rule, field, value)


@dataclass(frozen=True, slots=True)
class QueryEval:
    """A query rule's last evaluation."""

    at: datetime
    rows: int | None  # None: it failed
    elapsed_s: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """One row of the rules view."""

    rule: str  # built-in name or "query:<name>"
    kind: str  # builtin | query
    thresholds: dict[str, Any]  # field -> effective value
    hold_s: float | None
    severity: str
    enabled: bool
    overridden: frozenset[str]  # fields whose value comes from the ledger
    source: str  # query rules: the query text / saved name; built-ins: ""
    last_eval: str  # in words: "3 rows 12s ago", "failed: ...", "never"


def editable_fields(rule: str) -> tuple[str, ...]:
    """The fields of `rule` the TUI may override (enabled and severity for all)."""
    if rule.startswith(QUERY_RULE_PREFIX):
        return (*EDITABLE_QUERY_FIELDS, "enabled", "severity")
    hold = BUILTIN_HOLD.get(rule)
    return (*BUILTIN_THRESHOLDS.get(rule, ()), *((hold,) if hold else ()), "enabled", "severity")


def apply_overrides(
    cfg: AlertsConfig,
    overrides: Iterable[OverrideRow],
    ledger_rules: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[AlertsConfig, list[str]]:
    """The config in effect: `cfg` (the TOML) with the TUI-made query rules added (the TOML wins
    a name clash) and every valid override applied. Returns (config, problems)."""
    problems: list[str] = []
    data = cfg.model_dump(by_alias=True)
    queries: dict[str, dict[str, Any]] = data.setdefault("query", {})
    for name, body in (ledger_rules or {}).items():
        if name in queries:
            continue
        try:
            queries[name] = QueryRuleConfig.model_validate(dict(body)).model_dump(by_alias=True)
        except ValidationError as exc:
            problems.append(f"query rule {name} from the ledger ignored: {_first(exc)}")
    for rule, field, value in overrides:
        trial = _with(data, rule, field, value)
        if trial is None:
            problems.append(f"override {rule}.{field} ignored: not an editable field of that rule")
            continue
        try:
            AlertsConfig.model_validate(trial)
        except ValidationError as exc:
            problems.append(f"override {rule}.{field} = {value!r} ignored: {_first(exc)}")
            continue
        data = trial
    return AlertsConfig.model_validate(data), problems


def parse_override_value(field: str, raw: str) -> Any:
    """What an operator typed for `field` -> the config's value: durations for `*_s` ("5m",
    "90s", seconds), true/false for enabled, a list for leak_states, numbers otherwise."""
    text = raw.strip()
    if not text:
        raise ValueError("empty value")
    if field == "enabled":
        words = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}
        if text.lower() not in words:
            raise ValueError(f"{text!r} is not true/false")
        return words[text.lower()]
    if field == "severity":
        if text.lower() not in ("critical", "warning", "info"):
            raise ValueError(f"{text!r} is not critical, warning or info")
        return text.lower()
    if field == "leak_states":
        return [s.strip() for s in text.split(",") if s.strip()]
    if field.endswith("_s"):
        return parse_seconds(float(text) if _number(text) else text)
    if not _number(text):
        raise ValueError(f"{text!r} is not a number")
    n = float(text)
    return int(n) if n.is_integer() and field.endswith(("_min", "min_rows", "_transitions")) else n


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return str(err.get("msg", exc)).removeprefix("Value error, ")


_ALIAS = {"for_s": "for", "interval_s": "interval", "timeout_s": "timeout"}


def _with(data: dict[str, Any], rule: str, field: str, value: Any) -> dict[str, Any] | None:
    """`data` (a dumped AlertsConfig) with one override applied; None if it is not editable."""
    if field not in editable_fields(rule):
        return None
    out = {**data, "query": {k: dict(v) for k, v in data.get("query", {}).items()}}
    if rule.startswith(QUERY_RULE_PREFIX):
        body = out["query"].get(rule.removeprefix(QUERY_RULE_PREFIX))
        if body is None:
            return None
        body[_ALIAS.get(field, field)] = value
        return out
    if rule not in RULE_NAMES:
        return None
    if field == "enabled":
        disabled = [r for r in out.get("disabled_rules", []) if r != rule]
        out["disabled_rules"] = disabled if value else [*disabled, rule]
    elif field == "severity":
        out["severity"] = {**out.get("severity", {}), rule: value}
    else:
        out[field] = value
    return out


def _ago(now: datetime, then: datetime) -> str:
    return f"{fmt_duration((now - then).total_seconds())} ago"


def rules_table(
    cfg: AlertsConfig,
    overridden: Iterable[tuple[str, str]],
    *,
    now: datetime,
    last_round: datetime | None = None,
    firing: Mapping[str, int] | None = None,
    query_evals: Mapping[str, QueryEval] | None = None,
) -> list[RuleInfo]:
    """Every rule, built-in then query-backed, with the effective values (`cfg` after
    apply_overrides), which of them are overrides, and the last evaluation in words."""
    over: dict[str, set[str]] = {}
    for rule, field in overridden:
        over.setdefault(rule, set()).add(field)
    firing = firing or {}
    out = []
    for rule in RULE_NAMES:
        hold = BUILTIN_HOLD[rule]
        last = "never" if last_round is None else f"{_ago(now, last_round)}, {firing.get(rule, 0)} firing"
        out.append(
            RuleInfo(
                rule, "builtin", {f: getattr(cfg, f) for f in BUILTIN_THRESHOLDS[rule]},
                getattr(cfg, hold) if hold else None,
                str(cfg.severity.get(rule, BUILTIN_DEFAULT_SEVERITY[rule])),
                cfg.enabled and rule not in cfg.disabled_rules, frozenset(over.get(rule, ())), "", last,
            )
        )  # fmt: skip
    for name, q in sorted(cfg.query.items()):
        rid = query_rule_id(name)
        ev = (query_evals or {}).get(rid)
        if ev is None:
            last = "never"
        elif ev.error is not None:
            last = f"failed {_ago(now, ev.at)}: {ev.error}"
        else:
            last = f"{ev.rows} rows {_ago(now, ev.at)}"  # elapsed: in QueryEval, not the view (it jitters)
        out.append(
            RuleInfo(
                rid, "query", {"min_rows": q.min_rows, "interval_s": q.interval_s, "timeout_s": q.timeout_s},
                q.for_s, q.severity, cfg.enabled and q.enabled, frozenset(over.get(rid, ())), q.source, last,
            )
        )  # fmt: skip
    return out


def override_lines(toml: AlertsConfig, overrides: Iterable[tuple[str, str, Any, str, datetime]]) -> list[str]:
    """`config show`'s section: every ledger override next to the TOML value it replaces."""
    lines = []
    for rule, field, value, who, at in overrides:
        if rule.startswith(QUERY_RULE_PREFIX):
            body = toml.query.get(rule.removeprefix(QUERY_RULE_PREFIX))
            was: Any = getattr(body, field, None) if body is not None else "(rule made in the TUI)"
            where = f'[alerts.query."{rule.removeprefix(QUERY_RULE_PREFIX)}"] {_ALIAS.get(field, field)}'
        elif field == "enabled":
            was, where = rule not in toml.disabled_rules, f"[alerts] {rule} enabled"
        elif field == "severity":
            was = toml.severity.get(rule, BUILTIN_DEFAULT_SEVERITY.get(rule, "?"))
            where = f"[alerts.severity] {rule}"
        else:
            was, where = getattr(toml, field, None), f"[alerts] {field}"
        note = f"override (TOML: {_show(was)}), by {who or '?'} at {at:%Y-%m-%d %H:%M}Z"
        lines.append(f"{where} = {_show(value)}   # {note}")
    return lines


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Severity):
        return f'"{v.value}"'
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


def query_candidate(
    name: str, rule: QueryRuleConfig, rows: int, sample: Iterable[tuple[str, str]] = ()
) -> AlertCandidate | None:
    """The alert a query rule raises when its query returned `rows` (None below min_rows).
    Dedup key `query:<name>`; scope `@query:<name>` (a failed evaluation keeps the alert as is);
    evidence: up to 10 (kind, id) of the matching rows."""
    if rows < rule.min_rows:
        return None
    rid = query_rule_id(name)
    return AlertCandidate(
        rule=rid, key=rid, severity=Severity(rule.severity),
        summary=f"query {name} returned {rows} row{'s' if rows != 1 else ''} (≥ {rule.min_rows})",
        evidence=tuple(Evidence(kind, ident) for kind, ident in list(sample)[:10]),
        threshold=f"≥ {rule.min_rows} rows for {fmt_duration(rule.for_s)}", hold_s=rule.for_s,
        scope="@" + rid, details={"rows": rows, "min_rows": rule.min_rows, "query": rule.source},
    )  # fmt: skip
