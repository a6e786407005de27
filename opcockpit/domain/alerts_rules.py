"""Query-backed alert rules (`[alerts.query.<name>]`) and what the rules view knows of every rule.

A query rule fires when its Explore query (inline `query = "..."` or a saved query by name,
`saved = "NAME"`) returns at least `min_rows` rows for `for` (the hold time, like the built-in
rules' `*_for_s`). It is evaluated with the built-in rules but on its own slower cadence
(`interval`, default 1m) and under a per-rule `timeout` (default 5s), so a heavy query costs at
most timeout/interval of a core.

This module imports nothing of alerts_config (which imports it for the `query` table): the
severity is checked against the same three words.

```toml
[alerts.query.e2b-errors]
query = "runs status:error provider:e2b since:-1h"
min_rows = 3
for = "5m"
severity = "critical"
```
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opcockpit.domain.timeutil import parse_duration

__all__ = [
    "BUILTIN_DEFAULT_SEVERITY",
    "BUILTIN_HOLD",
    "BUILTIN_THRESHOLDS",
    "EDITABLE_QUERY_FIELDS",
    "QUERY_RULE_PREFIX",
    "QueryRuleConfig",
    "check_rule_name",
    "parse_seconds",
    "query_rule_id",
]

QUERY_RULE_PREFIX = "query:"  # a query rule's id in alerts and overrides: "query:<name>"
RULE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SeverityWord = Literal["critical", "warning", "info"]

# The built-in rules' thresholds (AlertsConfig fields), their hold time field and default
# severity: what the rules view shows and lets an operator override. provider_unreachable is
# warning for a short outage and critical after provider_down_for_s (domain/alerts.py).
BUILTIN_THRESHOLDS: dict[str, tuple[str, ...]] = {
    "stuck_run": ("stuck_after_s", "window_s"),
    "lease_diverged": (),
    "lease_recovering": (),
    "provider_unreachable": (),
    "orphans_present": ("orphans_min",),
    "leak": ("leak_states",),
    "intent_failures": ("intent_failures_min", "intent_window_s"),
    "resource_pressure": ("memory_pct", "disk_pct", "cpu_pct", "resource_max_age_s"),
    "flapping": ("flapping_transitions", "flapping_window_s"),
}
BUILTIN_HOLD: dict[str, str | None] = {
    "stuck_run": None,
    "lease_diverged": "diverged_for_s",
    "lease_recovering": "recovering_for_s",
    "provider_unreachable": "provider_down_for_s",
    "orphans_present": "orphans_for_s",
    "leak": "leak_for_s",
    "intent_failures": None,
    "resource_pressure": "resource_for_s",
    "flapping": None,
}
BUILTIN_DEFAULT_SEVERITY: dict[str, str] = {
    "stuck_run": "warning",
    "lease_diverged": "warning",
    "lease_recovering": "warning",
    "provider_unreachable": "warning/critical",  # critical once it has been down provider_down_for_s
    "orphans_present": "warning",
    "leak": "critical",
    "intent_failures": "warning",
    "resource_pressure": "warning",
    "flapping": "warning",
}
# What the TUI may override on a query rule (the query text itself is edited as a saved query).
EDITABLE_QUERY_FIELDS = ("min_rows", "for_s", "interval_s", "timeout_s")

MAX_TIMEOUT_S = 60.0  # one rule may not hold the alert round longer than this
MIN_INTERVAL_S = 10.0  # nor run more often than this


def parse_seconds(value: Any) -> float:
    """A duration as written in the config: a number of seconds or a string like "5m"/"90s"."""
    if isinstance(value, bool):
        raise ValueError("a duration, not a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if value.strip() in ("0", "0s", "0m"):
            return 0.0
        return parse_duration(value).total_seconds()
    raise ValueError(f"not a duration: {value!r} (e.g. 30s, 5m, 1h, or seconds as a number)")


def query_rule_id(name: str) -> str:
    return QUERY_RULE_PREFIX + name


class QueryRuleConfig(BaseModel):
    """One `[alerts.query.<name>]` table."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    query: str | None = None  # Explore query text (docs/explore.md)
    saved: str | None = None  # or a saved query's name (`opcockpit queries`)
    params: dict[str, str] = Field(default_factory=dict)  # the saved query's :parameters
    description: str = ""
    min_rows: int = Field(default=1, ge=1)
    for_s: float = Field(default=300.0, ge=0, le=365 * 86_400.0, alias="for")
    interval_s: float = Field(default=60.0, ge=MIN_INTERVAL_S, le=86_400.0, alias="interval")
    timeout_s: float = Field(default=5.0, gt=0, le=MAX_TIMEOUT_S, alias="timeout")
    severity: SeverityWord = "warning"
    enabled: bool = True

    @field_validator("for_s", "interval_s", "timeout_s", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_seconds(v)

    @field_validator("query")
    @classmethod
    def _not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("query is empty")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> QueryRuleConfig:
        if (self.query is None) == (self.saved is None):
            raise ValueError('give exactly one of query = "..." or saved = "NAME"')
        return self

    @property
    def source(self) -> str:
        return self.query if self.query is not None else f"saved query {self.saved}"


def check_rule_name(name: str) -> str:
    if not RULE_NAME_RE.match(name):
        raise ValueError(f"bad query rule name {name!r}: letters, digits, '_', '.', '-' (max 64)")
    return name
