"""The configuration models (pydantic, validated at the boundary) and the URL shape checks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import tzinfo
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from opcockpit.domain.alerts_config import DAY_S, STRICT, AlertsConfig
from opcockpit.domain.events_config import EventsConfig
from opcockpit.domain.secrets import http_url_problem, redact_url
from opcockpit.settings.export import ExportConfig

__all__ = [
    "CockpitConfig",
    "ContextConfig",
    "ProviderConfig",
    "ServeConfig",
    "SourcesConfig",
    "TuiConfig",
    "WebhookSenderConfig",
    "api_url_problem",
    "docker_host_problem",
]


# --------------------------------------------------------------------------- URL shapes


def api_url_problem(url: str) -> str | None:
    """Why `url` cannot be a provider API base URL (None: it can)."""
    return http_url_problem(url, "https://api.e2b.app")


def docker_host_problem(host: str) -> str | None:
    """Why `host` cannot be a Docker Engine address (None: it can). The adapter speaks HTTP over
    unix:///path or tcp://host:port (http://host:port too); ssh:// and npipe:// are not supported."""
    shown = redact_url(host)
    want = "unix:///path/to/docker.sock or tcp://host:port"
    if any(c.isspace() for c in host):
        return f"not a docker host: {shown!r} (want {want})"
    try:
        parts = urlsplit(host)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a docker host: {shown!r} ({exc}; want {want})"
    scheme = parts.scheme.lower()
    if scheme == "unix":
        return None if parts.path not in ("", "/") else f"unix socket path missing in {shown!r} (want {want})"
    if scheme in ("tcp", "http"):
        return None if parts.hostname else f"host missing in {shown!r} (want {want})"
    got = f"scheme {parts.scheme!r} is not supported" if scheme else "no scheme"
    return f"not a docker host: {shown!r} ({got}; want {want})"


class ProviderConfig(BaseModel):
    """One configured provider. `name` is what appears in `sandbox_leases.provider_name`."""

    model_config = STRICT

    name: str
    # Checked against the kinds the loader was given (the adapters own them; settings may not
    # import adapters), so a plain string here.
    kind: str = Field(min_length=1)
    # docker: unix:///path or tcp://host:port (DOCKER_HOST respected when unset)
    host: str | None = None
    # e2b / daytona / agentbay: base URL of the API
    api_url: str | None = None
    # Name of the env var holding the key (preferred), or the key itself (e.g. from LEON's json).
    api_key_env: str | None = None
    api_key: SecretStr | None = None
    region: str | None = None  # agentbay
    timeout_s: float = Field(default=10.0, gt=0, le=DAY_S)
    max_concurrency: int = Field(default=8, ge=1, le=256)
    retries: int = Field(default=3, ge=0, le=10)
    # A provider that hands out endless cursors must not grow the cockpit without bound: a listing
    # past either cap fails (its rows go stale) instead of eating memory.
    max_pages: int = Field(default=1000, ge=1, le=100_000)
    max_instances: int = Field(default=200_000, ge=1, le=10_000_000)
    # Full listing at most this often when refreshes are paced (the TUI); None: the kind's default.
    list_interval_s: float | None = Field(default=None, gt=0, le=DAY_S)
    label_filter: dict[str, str] | None = None  # only list instances carrying these labels/metadata
    # Additive (config loader): a provider can be switched off without deleting its table.
    enabled: bool = True
    target: str | None = None  # daytona target/region (informational; the URL decides)

    @field_validator("api_url")
    @classmethod
    def _api_url_shape(cls, v: str | None) -> str | None:
        if v is not None and (problem := api_url_problem(v)):
            raise ValueError(problem)
        return v

    @field_validator("host")
    @classmethod
    def _host_shape(cls, v: str | None) -> str | None:
        if v is not None and (problem := docker_host_problem(v)):
            raise ValueError(problem)
        return v

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr()/str() are what ends up in logs and tracebacks: URL credentials redacted.
        for key, value in super().__repr_args__():
            yield key, (redact_url(value) if key in ("api_url", "host") and isinstance(value, str) else value)

    def resolve_api_key(self) -> str | None:
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if value:
                return value
        return self.api_key.get_secret_value() if self.api_key else None

    def key_source(self) -> str | None:
        """Where `resolve_api_key` gets its value from (for messages; never the value)."""
        if self.api_key_env and os.environ.get(self.api_key_env):
            return f"${self.api_key_env}"
        if self.api_key:
            return "api_key"
        return None


# --------------------------------------------------------------------------- webhooks (issue 13)


class WebhookSenderConfig(BaseModel):
    """`[webhooks.<provider>]`: one sender. `<provider>` is the name used in sandbox.db (events
    match leases by it) and the path `POST /webhooks/<provider>`."""

    model_config = STRICT

    kind: Literal["e2b", "daytona", "hmac"]
    secret_env: str | None = None  # the env var holding the secret (preferred)
    secret: SecretStr | None = None
    # e2b: max age of the payload's timestamp (0: off; default 1 h); daytona/hmac: signed
    # timestamp tolerance (default 300 s, daytona at most 300: standardwebhooks' own bound).
    tolerance_s: float | None = Field(default=None, ge=0, le=DAY_S)
    rate_per_s: float = Field(default=1000.0, gt=0, le=1_000_000)  # per source address
    burst: int = Field(default=2000, ge=1, le=1_000_000)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)
    enabled: bool = True

    def resolve_secret(self) -> str | None:
        if self.secret_env:
            value = os.environ.get(self.secret_env)
            if value:
                return value
        return self.secret.get_secret_value() if self.secret else None


class ServeConfig(BaseModel):
    """`[serve]`: the webhook receiver (`opcockpit serve`)."""

    model_config = STRICT

    listen: str = "127.0.0.1:8787"
    queue_max: int = Field(default=2000, ge=1, le=1_000_000)  # deliveries waiting for the ledger
    ack_timeout_s: float = Field(default=5.0, gt=0, le=300)  # longer: 503 + Retry-After
    retry_after_s: int = Field(default=5, ge=1, le=3600)
    # Also write LEON's own `provider_events` row (LEON's way) for each newly stored webhook.
    leon_provider_events: bool = False


class LedgerConfig(BaseModel):
    """`[ledger]` (issue 12): where the cockpit's ledger lives. Unset: the SQLite file
    ($OPCOCKPIT_LEDGER, else the XDG data dir). `url_env` names a variable holding the URL (so the
    password stays out of the file); it wins over `url` when set."""

    model_config = STRICT

    url: str | None = None  # postgresql://user@host/db, sqlite:PATH or a path
    url_env: str | None = None

    @field_validator("url")
    @classmethod
    def _url_shape(cls, v: str | None) -> str | None:
        if v is not None and "://" in v and not v.lower().startswith(("postgresql://", "postgres://")):
            raise ValueError(f"not a ledger URL: {redact_url(v)!r} (postgresql://… or sqlite:PATH)")
        return v

    def resolve(self, env: Any = None) -> str | None:
        """The configured ledger (None: the default file)."""
        env = os.environ if env is None else env
        if self.url_env:
            value = (env.get(self.url_env) or "").strip()
            if value:
                return value
        return self.url


class TuiConfig(BaseModel):
    """`[tui]`: the terminal cockpit's own behaviour (issue 15)."""

    model_config = STRICT

    # "all": every action asks first (pause/resume with one key); "destructive": only destroy
    # and adopt ask, pause/resume run at once (lazydocker's habit).
    confirm: Literal["all", "destructive"] = "all"


PG_SOURCE_ENV = "LEON_POSTGRES_URL"  # Mycel's DSN of the same deployment
SCHEMA_ENV = "LEON_DB_SCHEMA"


class SourcesConfig(BaseModel):
    model_config = ConfigDict(**STRICT, populate_by_name=True)

    sandbox_db: Path
    events_db: Path | None = None
    # Full re-read of sandbox.db at least this often, whatever change detection says (safety net).
    resync_s: float = Field(default=300.0, gt=0, le=DAY_S)
    # IANA zone LEON wrote its naive local timestamps in ("Asia/Shanghai"); None: this host's zone.
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, v: str | None) -> str | None:
        if v is not None:
            _zone(v)  # raises ValueError with one clear line
        return v

    def local_tz(self) -> tzinfo | None:
        """The zone of sandbox.db's naive timestamps (None: the host's, resolved by the reader)."""
        return _zone(self.timezone) if self.timezone else None

    # Additive (issue 12): the platform source. "sqlite" (sandbox_db, the default) or "postgres":
    # LEON's tables in a PostgreSQL schema (Mycel with LEON_STORAGE_STRATEGY=supabase). The URL
    # comes from `url_env` (preferred: the password stays out of the file), else `url`, else
    # $LEON_POSTGRES_URL (Mycel's own DSN variable). `schema`: Mycel's LEON_DB_SCHEMA.
    kind: Literal["sqlite", "postgres"] = "sqlite"
    url: str | None = None
    url_env: str | None = None
    db_schema: str = Field(default="public", alias="schema", min_length=1, max_length=63)

    @field_validator("url")
    @classmethod
    def _pg_url_shape(cls, v: str | None) -> str | None:
        if v is not None and not v.strip().lower().startswith(("postgresql://", "postgres://")):
            raise ValueError(f"not a PostgreSQL URL: {redact_url(v)!r} (want postgresql://user@host:port/db)")
        return v

    def resolve_url(self, env: Any = None) -> str | None:
        """The PostgreSQL source URL (None: none configured). Never print it: `redact_url`."""
        env = os.environ if env is None else env
        for var in (self.url_env, None, PG_SOURCE_ENV):
            if var is None:
                if self.url:
                    return self.url
                continue
            value = (env.get(var) or "").strip()
            if value:
                return value
        return None

    def shown(self) -> str:
        """The source, fit to print (sandbox.db path, or the URL without its password + schema)."""
        if self.kind == "postgres":
            return f"{redact_url(self.resolve_url())} schema {self.db_schema}"
        return str(self.sandbox_db)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for key, value in super().__repr_args__():  # never a URL's password in a repr
            yield key, (redact_url(value) if key == "url" and isinstance(value, str) else value)


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {name!r} (want an IANA name like 'Asia/Shanghai')") from None


class ContextConfig(BaseModel):
    """`[contexts.<name>]` (issue 12, k9s's contexts): one deployment's own tables. Selecting the
    context (`--context NAME`, $OPCOCKPIT_CONTEXT or the top-level `context = "NAME"`) overlays
    them on the top level key by key (`sources`, `ledger`), provider by provider (`providers`);
    `read_only` replaces the top-level value. Kept raw here: validated after the overlay."""

    model_config = STRICT

    description: str | None = None
    sources: dict[str, Any] = Field(default_factory=dict)
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    ledger: dict[str, Any] = Field(default_factory=dict)
    read_only: bool | None = None


class CockpitConfig(BaseModel):
    model_config = STRICT

    sources: SourcesConfig
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    refresh_s: float = Field(default=2.0, ge=0.5, le=DAY_S)
    read_only: bool = False
    # Additive: wall-clock budget for listing one provider (all pages, retries included).
    list_timeout_s: float = Field(default=20.0, gt=0, le=DAY_S)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    # Additive (issue 10): `[export.otlp]` (settings/export.py).
    export: ExportConfig = Field(default_factory=ExportConfig)
    # Additive (issue 13): webhook senders and the receiver's limits.
    webhooks: dict[str, WebhookSenderConfig] = Field(default_factory=dict)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    # Additive (issue 15): `[tui]`.
    tui: TuiConfig = Field(default_factory=TuiConfig)
    # Additive (issue 12): `[ledger]` url / url_env (PostgreSQL shared by a team).
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    # Additive (issue 10): `[events]` retention of the cockpit's event ledger.
    events: EventsConfig = Field(default_factory=EventsConfig)
    # Additive (issue 12): the contexts defined in the file and the one in effect (None: none).
    contexts: dict[str, ContextConfig] = Field(default_factory=dict)
    context: str | None = None
