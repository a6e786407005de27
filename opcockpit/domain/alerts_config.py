"""The `[alerts]` table: thresholds, hold times and notification channels (pydantic models).

Kept apart from the rules (domain/alerts.py) so the settings loader validates the config without
the rule code, and the rules read a plain validated object.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opcockpit.domain.alerts_rules import QueryRuleConfig, check_rule_name
from opcockpit.domain.secrets import http_url_problem, redact_mapping, redact_url

__all__ = [
    "DAY_S",
    "RULE_NAMES",
    "SCOPE_EVENTS_DB",
    "SCOPE_LEASE_EVENTS",
    "SCOPE_LEDGER_EVENTS",
    "SEVERITY_RANK",
    "STRICT",
    "YEAR_S",
    "AlertsConfig",
    "CommandConfig",
    "Severity",
    "WebhookConfig",
]


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}

# Scope names for inputs other than providers.
# Bounds for every number in the config: a timeout or backoff longer than a day is a typo (and `inf`
# or `nan`, both valid TOML, would hang a listing or a cron run forever); a window or hold time
# longer than a year means "never".
DAY_S = 86_400.0
YEAR_S = 365 * DAY_S
# Every config model: non-finite floats are config errors, never values. defer_build: a model's
# validator is built on its first validation, not at import; the loader validates CockpitConfig
# once, which builds the nested ones inside it (issue 9: start-up of `snapshot`).
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

SCOPE_EVENTS_DB = "@events_db"
SCOPE_LEASE_EVENTS = "@lease_events"
SCOPE_LEDGER_EVENTS = "@ledger_events"  # the cockpit's own event ledger (flapping)


# The rules' names (the functions are in domain/alerts.py, in this order).
RULE_NAMES: tuple[str, ...] = (
    "stuck_run",
    "lease_diverged",
    "lease_recovering",
    "provider_unreachable",
    "orphans_present",
    "leak",
    "intent_failures",
    "resource_pressure",
    "flapping",
)


# --------------------------------------------------------------------------- config


class WebhookConfig(BaseModel):
    """POST the alert JSON to a URL. The URL of chat webhooks is itself a secret: prefer `url_env`."""

    model_config = STRICT

    url: str | None = None
    url_env: str | None = None  # env var holding the URL (wins when set)
    headers: dict[str, str] = Field(default_factory=dict)  # non-secret headers
    headers_env: dict[str, str] = Field(default_factory=dict)  # header name -> env var with its value
    timeout_s: float = Field(default=5.0, gt=0, le=DAY_S)
    attempts: int = Field(default=4, ge=1, le=20)  # per evaluation round, with backoff
    backoff_s: float = Field(default=1.0, ge=0, le=DAY_S)  # first retry delay; doubles per attempt
    max_backoff_s: float = Field(default=30.0, ge=0, le=DAY_S)
    max_rounds: int = Field(default=5, ge=1)  # evaluation rounds to keep retrying a failed delivery

    @field_validator("url")
    @classmethod
    def _url_shape(cls, v: str | None) -> str | None:
        # Without a scheme it would be shown whole (no host to cut the path at) and never work.
        if v is not None and (problem := http_url_problem(v, "https://hooks.example.com/…")):
            raise ValueError(problem)
        return v

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A chat webhook URL is a bearer credential (token in the path): reprs show scheme://host/…;
        # a static `authorization` (or any secret-named) header is shown as ***.
        for key, value in super().__repr_args__():
            if key == "url" and isinstance(value, str):
                value = redact_url(value, hide_path=True)
            elif key == "headers" and isinstance(value, dict):
                value = redact_mapping(value)
            yield key, value


class CommandConfig(BaseModel):
    """Run a command with the alert JSON on stdin (argv list, no shell)."""

    model_config = STRICT

    argv: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=10.0, gt=0, le=DAY_S)
    max_rounds: int = Field(default=3, ge=1)


class AlertsConfig(BaseModel):
    """The `[alerts]` table. Durations are seconds."""

    model_config = STRICT

    enabled: bool = True
    disabled_rules: list[str] = Field(default_factory=list)
    severity: dict[str, Severity] = Field(default_factory=dict)  # rule -> severity override
    # run health
    window_s: float = Field(default=86400.0, gt=0, le=YEAR_S)
    stuck_after_s: float = Field(default=600.0, gt=0, le=YEAR_S)
    # hold times: how long a condition must hold before it fires
    diverged_for_s: float = Field(default=600.0, ge=0, le=YEAR_S)
    recovering_for_s: float = Field(default=300.0, ge=0, le=YEAR_S)
    provider_down_for_s: float = Field(default=120.0, ge=0, le=YEAR_S)
    orphans_for_s: float = Field(default=300.0, ge=0, le=YEAR_S)
    orphans_min: int = Field(default=1, ge=1)
    leak_for_s: float = Field(default=120.0, ge=0, le=YEAR_S)
    leak_states: list[str] = Field(default_factory=lambda: ["running"])
    # bursts of failed intents / provider.error lease events
    intent_window_s: float = Field(default=600.0, gt=0, le=YEAR_S)
    intent_failures_min: int = Field(default=3, ge=1)
    # resource pressure (lease_resource_snapshots)
    memory_pct: float = Field(default=90.0, gt=0, le=100)
    disk_pct: float = Field(default=90.0, gt=0, le=100)
    cpu_pct: float = Field(default=90.0, gt=0, le=100_000)  # percent of one core
    resource_for_s: float = Field(default=300.0, ge=0, le=YEAR_S)
    resource_max_age_s: float = Field(default=1800.0, gt=0, le=YEAR_S)  # older snapshots are ignored
    # flapping: a lease whose convergence changed this often within the window (event ledger)
    flapping_transitions: int = Field(default=4, ge=2)
    flapping_window_s: float = Field(default=900.0, gt=0, le=YEAR_S)
    # storage
    history_keep: int = Field(default=2000, ge=10)  # resolved alerts kept in the ledger
    # notifications on a newly firing (unmuted) alert
    # Total wall-clock budget for one round of deliveries (all channels, retries included): a cron
    # `snapshot --check` must not wait on a receiver that hangs; what is left over is recorded as
    # undelivered and retried on the next evaluation.
    notify_deadline_s: float = Field(default=5.0, gt=0, le=3600)
    webhook: WebhookConfig | None = None
    command: CommandConfig | None = None
    # query-backed rules, `[alerts.query.<name>]` (domain/alerts_rules.py, services/query_alerts.py)
    query: dict[str, QueryRuleConfig] = Field(default_factory=dict)

    @field_validator("query")
    @classmethod
    def _query_rule_names(cls, v: dict[str, QueryRuleConfig]) -> dict[str, QueryRuleConfig]:
        return {check_rule_name(k): r for k, r in v.items()}

    @field_validator("disabled_rules")
    @classmethod
    def _known_rules(cls, v: list[str]) -> list[str]:
        unknown = [r for r in v if r not in RULE_NAMES]
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}; rules: {', '.join(RULE_NAMES)}")
        return v

    @field_validator("severity")
    @classmethod
    def _known_severity_rules(cls, v: dict[str, Severity]) -> dict[str, Severity]:
        unknown = [r for r in v if r not in RULE_NAMES]
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}; rules: {', '.join(RULE_NAMES)}")
        return v
