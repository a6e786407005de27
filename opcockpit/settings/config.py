"""Configuration: pydantic models at the boundary, plus discovery and loading.

Zero-config for LEON users: with no file of our own, the sandbox DB, events DB and provider list
come from LEON's own conventions (env vars, ~/.leon/sandbox.db, ~/.leon/sandboxes/*.json).

Precedence, highest first (documented in docs/configuration.md):
  1. CLI flags (--db, --events-db, --read-only)
  2. our TOML: --config PATH, else $OPCOCKPIT_CONFIG, else <user config dir>/opcockpit/config.toml
  3. LEON defaults ($LEON_SANDBOX_DB_PATH, ~/.leon/..., ~/.leon/sandboxes/<name>.json)
  4. built-in defaults (DOCKER_HOST / kind default URLs and key env vars)
Secrets: the env var named by `api_key_env` (default per kind, e.g. E2B_API_KEY) wins when it is
set; otherwise `api_key` from the TOML or the LEON json. Values are SecretStr and only ever shown
through `redact`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator

from opcockpit.domain import secrets as _secrets
from opcockpit.domain.alerts import DAY_S, STRICT, AlertsConfig
from opcockpit.domain.secrets import (
    http_url_problem,
    is_secret_name,
    redact,
    redact_mapping,
    redact_url,
    remember,
    remember_url,
    scrub,
    url_secrets,
)

__all__ = [
    "CockpitConfig",
    "ConfigError",
    "LoadedConfig",
    "ProviderConfig",
    "SourcesConfig",
    "is_secret_name",
    "load_config",
    "redact",
    "redact_mapping",
    "redact_url",
    "scrub",
    "url_secrets",
]

ProviderKind = Literal["docker", "e2b", "daytona", "agentbay", "local"]
KINDS: tuple[str, ...] = ("docker", "e2b", "daytona", "agentbay", "local")

# Env var a kind's API key is read from when `api_key_env` is not given.
KEY_ENV_DEFAULTS: dict[str, str] = {
    "e2b": "E2B_API_KEY",
    "daytona": "DAYTONA_API_KEY",
    "agentbay": "AGENTBAY_API_KEY",
}
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


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
    kind: ProviderKind
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


class SourcesConfig(BaseModel):
    model_config = STRICT

    sandbox_db: Path
    events_db: Path | None = None


class CockpitConfig(BaseModel):
    model_config = STRICT

    sources: SourcesConfig
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    refresh_s: float = Field(default=2.0, ge=0.5, le=DAY_S)
    read_only: bool = False
    # Additive: wall-clock budget for listing one provider (all pages, retries included).
    list_timeout_s: float = Field(default=20.0, gt=0, le=DAY_S)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)


# --------------------------------------------------------------------------- errors, redaction


class ConfigError(Exception):
    """Invalid configuration: one message per problem ("<file>: <key.path>: <what is wrong>")."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# One implementation (opcockpit.domain.secrets); these names stay importable from here.
_KNOWN_SECRETS = _secrets._KNOWN
_remember_secret = remember
_remember_url_secrets = remember_url


# --------------------------------------------------------------------------- paths


def leon_home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("HOME") or Path.home()) / ".leon"


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """<XDG config dir>/opcockpit/config.toml (platformdirs; honours XDG_CONFIG_HOME)."""
    env = os.environ if env is None else env
    if env.get("XDG_CONFIG_HOME"):
        return Path(env["XDG_CONFIG_HOME"]) / "opcockpit" / "config.toml"
    from platformdirs import user_config_path as _ucp  # lazy: only needed here

    return _ucp("opcockpit", appauthor=False) / "config.toml"


@dataclass(frozen=True, slots=True)
class ConfigPaths:
    own_config: Path | None  # the TOML actually used (None: none found)
    own_config_origin: str  # "--config", "$OPCOCKPIT_CONFIG", "default path", "none"
    default_config: Path
    leon_home: Path
    leon_sandboxes: Path
    sandbox_db_default: Path
    events_db_default: Path


def default_paths(env: Mapping[str, str] | None = None, config_path: str | Path | None = None) -> ConfigPaths:
    env = os.environ if env is None else env
    home = leon_home(env)
    sandbox_db = Path(env["LEON_SANDBOX_DB_PATH"]) if env.get("LEON_SANDBOX_DB_PATH") else home / "sandbox.db"
    if env.get("LEON_RUN_EVENT_DB_PATH"):
        events_db = Path(env["LEON_RUN_EVENT_DB_PATH"])
    else:
        main_db = Path(env["LEON_DB_PATH"]) if env.get("LEON_DB_PATH") else home / "leon.db"
        events_db = main_db.with_name("events.db")  # LEON's storage/container.py derives it so
    default_cfg = user_config_path(env)
    if config_path is not None:
        own, origin = Path(config_path).expanduser(), "--config"
    elif env.get("OPCOCKPIT_CONFIG"):
        own, origin = Path(env["OPCOCKPIT_CONFIG"]).expanduser(), "$OPCOCKPIT_CONFIG"
    elif default_cfg.is_file():
        own, origin = default_cfg, "default path"
    else:
        own, origin = None, "none"
    return ConfigPaths(own, origin, default_cfg, home, home / "sandboxes", sandbox_db, events_db)


# --------------------------------------------------------------------------- loading


@dataclass
class LoadedConfig:
    """The validated config plus where every value came from (for `config show`)."""

    config: CockpitConfig
    paths: ConfigPaths
    origins: dict[str, str] = field(default_factory=dict)  # "providers.e2b.api_url" -> origin
    warnings: list[str] = field(default_factory=list)

    def origin(self, key: str) -> str:
        return self.origins.get(key, "default")


def _tilde(path: Path, env: Mapping[str, str]) -> str:
    home = env.get("HOME")
    s = str(path)
    return "~" + s[len(home) :] if home and s.startswith(home.rstrip("/") + "/") else s


def _leon_providers(
    sandboxes: Path, env: Mapping[str, str], warnings: list[str]
) -> dict[str, tuple[dict[str, Any], str]]:
    """~/.leon/sandboxes/<name>.json -> {name: (provider fields, origin)}.

    A broken LEON file is a warning, not an error: it is LEON's file, and the rows of that
    provider still show (as 'not configured') instead of the whole cockpit refusing to start.
    """
    found: dict[str, tuple[dict[str, Any], str]] = {}
    if not sandboxes.is_dir():
        return found
    for path in sorted(sandboxes.glob("*.json")):
        origin = _tilde(path, env)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            detail = (
                f"line {exc.lineno}: {exc.msg}"
                if isinstance(exc, json.JSONDecodeError)
                else type(exc).__name__
            )
            warnings.append(f"{origin}: not readable JSON ({detail}); provider {path.stem!r} skipped")
            continue
        if not isinstance(data, dict):
            warnings.append(f"{origin}: expected a JSON object; provider {path.stem!r} skipped")
            continue
        kind = data.get("provider")
        if kind not in KINDS:
            warnings.append(
                f"{origin}: provider kind {kind!r} is not supported; provider {path.stem!r} skipped"
            )
            continue
        block = data.get(kind)
        block = block if isinstance(block, dict) else {}
        fields: dict[str, Any] = {"kind": kind}
        if kind == "docker":
            host = block.get("host") or block.get("docker_host") or data.get("docker_host")
            if isinstance(host, str) and host:
                fields["host"] = host
        else:
            for src, dst in (("api_key", "api_key"), ("api_url", "api_url"), ("target", "target")):
                if isinstance(block.get(src), str) and block[src]:
                    fields[dst] = block[src]
            region = block.get("region_id") or block.get("region")
            if isinstance(region, str) and region:
                fields["region"] = region
            if kind == "e2b" and isinstance(block.get("domain"), str) and "api_url" not in fields:
                fields["api_url"] = f"https://api.{block['domain']}"
        _remember_url_secrets(fields.get("api_url"))
        _remember_url_secrets(fields.get("host"))
        problem = None
        if "api_url" in fields:
            problem = api_url_problem(fields["api_url"]) and f"api_url: {api_url_problem(fields['api_url'])}"
        if "host" in fields and not problem:
            problem = docker_host_problem(fields["host"]) and f"host: {docker_host_problem(fields['host'])}"
        if problem:
            warnings.append(f"{origin}: {problem}; provider {path.stem!r} skipped")
            continue
        found[path.stem] = (fields, origin)
    return found


def _kind_defaults(kind: str, fields: dict[str, Any], env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """Built-in defaults for one provider, each with its origin."""
    out: dict[str, tuple[Any, str]] = {}
    if kind == "docker":
        if env.get("DOCKER_HOST"):
            out["host"] = (env["DOCKER_HOST"], "$DOCKER_HOST")
        else:
            out["host"] = (DEFAULT_DOCKER_HOST, "default")
    elif kind == "e2b":
        if env.get("E2B_API_URL"):
            out["api_url"] = (env["E2B_API_URL"], "$E2B_API_URL")
        else:
            out["api_url"] = (f"https://api.{env.get('E2B_DOMAIN') or 'e2b.app'}", "default")
    elif kind == "daytona":
        if env.get("DAYTONA_API_URL"):
            out["api_url"] = (env["DAYTONA_API_URL"], "$DAYTONA_API_URL")
        else:
            out["api_url"] = ("https://app.daytona.io/api", "default")
        if env.get("DAYTONA_TARGET"):
            out["target"] = (env["DAYTONA_TARGET"], "$DAYTONA_TARGET")
    elif kind == "agentbay":
        if env.get("AGENTBAY_REGION_ID"):
            out["region"] = (env["AGENTBAY_REGION_ID"], "$AGENTBAY_REGION_ID")
        else:
            out["region"] = ("cn-hangzhou", "default")
        region = fields.get("region") or out["region"][0]
        if env.get("AGENTBAY_ENDPOINT"):
            out["api_url"] = (env["AGENTBAY_ENDPOINT"], "$AGENTBAY_ENDPOINT")
        else:
            out["api_url"] = (f"https://agentbay.{region}.aliyuncs.com", "default (from region)")
    if kind in KEY_ENV_DEFAULTS:
        out["api_key_env"] = (KEY_ENV_DEFAULTS[kind], "default for kind")
    return out


_TOP_KEYS = ("sources", "providers", "refresh_s", "read_only", "list_timeout_s", "alerts")


def _read_toml(path: Path, origin: str) -> dict[str, Any]:
    import tomllib

    shown = str(path)
    if not path.exists():
        raise ConfigError([f"{shown}: config file not found (given by {origin})"])
    if path.is_dir():
        raise ConfigError([f"{shown}: is a directory, not a TOML file (given by {origin})"])
    try:
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{shown}: not UTF-8 text"]) from None
    except OSError as exc:
        raise ConfigError([f"{shown}: cannot read ({exc.strerror or type(exc).__name__})"]) from None
    try:
        return tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        # The message carries "(at line N, column M)" but never the value text.
        raise ConfigError([f"{shown}: invalid TOML: {exc}"]) from None


def load_config(
    config_path: str | Path | None = None,
    *,
    db: str | Path | None = None,
    events_db: str | Path | None = None,
    read_only: bool | None = None,
    list_timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Discover, merge and validate. Raises ConfigError listing every problem found."""
    env = os.environ if env is None else env
    paths = default_paths(env, config_path)
    warnings: list[str] = []
    origins: dict[str, str] = {}
    problems: list[str] = []

    toml: dict[str, Any] = {}
    toml_origin = ""
    if paths.own_config is not None:
        toml = _read_toml(paths.own_config, paths.own_config_origin)
        toml_origin = str(paths.own_config)

    # Shape checks the models cannot phrase well (tables vs values), one message per problem.
    for key in toml:
        if key not in _TOP_KEYS:
            problems.append(f"{toml_origin}: {key}: unknown key (expected one of {', '.join(_TOP_KEYS)})")
    t_sources = toml.get("sources", {})
    if not isinstance(t_sources, dict):
        problems.append(f"{toml_origin}: sources: must be a table ([sources])")
        t_sources = {}
    t_providers = toml.get("providers", {})
    if not isinstance(t_providers, dict):
        problems.append(f"{toml_origin}: providers: must be a table of tables ([providers.<name>])")
        t_providers = {}

    # ---- sources
    sources: dict[str, Any] = {}
    leon_db_origin = "$LEON_SANDBOX_DB_PATH" if env.get("LEON_SANDBOX_DB_PATH") else "LEON default"
    sources["sandbox_db"], origins["sources.sandbox_db"] = str(paths.sandbox_db_default), leon_db_origin
    if env.get("LEON_RUN_EVENT_DB_PATH"):
        ev_origin = "$LEON_RUN_EVENT_DB_PATH"
    elif env.get("LEON_DB_PATH"):
        ev_origin = "beside $LEON_DB_PATH"
    else:
        ev_origin = "LEON default"
    sources["events_db"], origins["sources.events_db"] = str(paths.events_db_default), ev_origin
    for key, value in t_sources.items():
        sources[key] = os.path.expanduser(value) if isinstance(value, str) else value
        origins[f"sources.{key}"] = toml_origin
    file_sources = dict(sources)  # before the flags: a bad value in the file is still reported
    if db is not None:
        sources["sandbox_db"], origins["sources.sandbox_db"] = str(db), "--db flag"
    if events_db is not None:
        sources["events_db"], origins["sources.events_db"] = str(events_db), "--events-db flag"

    # ---- providers: LEON json, then our TOML on top, key by key
    merged: dict[str, dict[str, Any]] = {"local": {"kind": "local"}}
    origins["providers.local.kind"] = "built in"
    for name, (fields, origin) in _leon_providers(paths.leon_sandboxes, env, warnings).items():
        merged[name] = dict(fields)
        for key in fields:
            origins[f"providers.{name}.{key}"] = origin
    for name, table in t_providers.items():
        if not isinstance(table, dict):
            problems.append(f"{toml_origin}: providers.{name}: must be a table ([providers.{name}])")
            continue
        entry = merged.setdefault(name, {})
        if "kind" in table and entry.get("kind") not in (None, table["kind"]):
            entry.clear()  # a different kind: LEON's fields for the old kind do not apply
        for key, value in table.items():
            entry[key] = value
            origins[f"providers.{name}.{key}"] = toml_origin
    for name, entry in merged.items():
        entry["name"] = name
        kind = entry.get("kind")
        if isinstance(kind, str) and kind in KINDS:
            for key, (value, origin) in _kind_defaults(kind, entry, env).items():
                if key in entry:
                    continue
                if key == "host" and (problem := docker_host_problem(value)):
                    # $DOCKER_HOST is the machine's setting, not ours: an address the adapter cannot
                    # speak (ssh://) fails this provider at listing time, not the whole cockpit.
                    _remember_url_secrets(value)
                    warnings.append(f"{origin}: {problem}; provider {name!r} will show as unreachable")
                    continue
                entry[key] = value
                origins[f"providers.{name}.{key}"] = origin
        if isinstance(entry.get("api_key"), str):
            _remember_secret(entry["api_key"])
        _remember_url_secrets(entry.get("api_url"))
        _remember_url_secrets(entry.get("host"))

    data: dict[str, Any] = {"sources": sources, "providers": merged}
    for key in ("refresh_s", "read_only", "list_timeout_s", "alerts"):
        if key in toml:
            data[key], origins[key] = toml[key], toml_origin
    _remember_alert_secrets(toml.get("alerts"), env)
    if read_only is not None and read_only:
        data["read_only"], origins["read_only"] = True, "--read-only flag"
    if list_timeout_s is not None:
        data["list_timeout_s"], origins["list_timeout_s"] = list_timeout_s, "--timeout flag"

    try:
        cfg = CockpitConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            loc = ".".join(str(p) for p in err["loc"])
            origin = origins.get(loc) or _nearest_origin(loc, origins) or toml_origin or "config"
            problems.append(f"{origin}: {loc}: {_explain(err)}")
        cfg = None
    problems += _masked_file_problems(data, file_sources, toml, toml_origin)
    if problems:
        raise ConfigError(problems)
    assert cfg is not None
    for prov in cfg.providers.values():
        if prov.api_key_env:
            _remember_secret(env.get(prov.api_key_env))
    return LoadedConfig(cfg, paths, origins, warnings)


def _masked_file_problems(
    data: dict[str, Any], file_sources: dict[str, Any], toml: Mapping[str, Any], toml_origin: str
) -> list[str]:
    """Problems in file values a flag replaced (`--db` over `sources.sandbox_db`, `--timeout` over
    `list_timeout_s`): the flag wins for this run, but the file is still broken and every other
    command (the TUI, cron without the flag) would fail on it, so say so now."""
    masked: set[str] = set()
    file_data = dict(data)
    t_sources = toml.get("sources")
    for key in ("sandbox_db", "events_db"):
        in_file = isinstance(t_sources, Mapping) and key in t_sources
        if in_file and data["sources"].get(key) != file_sources.get(key):
            masked.add(f"sources.{key}")
    file_data["sources"] = file_sources
    for key in ("list_timeout_s", "read_only"):
        if key in toml and data.get(key) is not toml[key]:
            file_data[key] = toml[key]
            masked.add(key)
    if not masked:
        return []
    try:
        CockpitConfig.model_validate(file_data)
    except ValidationError as exc:
        out = []
        for err in exc.errors(include_input=False, include_url=False):
            loc = ".".join(str(p) for p in err["loc"])
            if loc in masked:
                out.append(f"{toml_origin}: {loc}: {_explain(err)}")
        return out
    return []


def _remember_alert_secrets(table: object, env: Mapping[str, str]) -> None:
    """Webhook URLs (chat webhooks are bearer URLs: the whole URL is the secret) and the values of
    header env vars, so a delivery error can never print them."""
    if not isinstance(table, Mapping):
        return
    hook = table.get("webhook")
    if not isinstance(hook, Mapping):
        return
    _remember_url_secrets(hook.get("url"), whole=True)
    if isinstance(hook.get("url_env"), str):
        _remember_url_secrets(env.get(hook["url_env"]), whole=True)
    headers_env = hook.get("headers_env")
    if isinstance(headers_env, Mapping):
        for var in headers_env.values():
            if isinstance(var, str):
                _remember_secret(env.get(var))


def _explain(err: Mapping[str, Any]) -> str:
    """pydantic's message, made specific for the two mistakes people actually make."""
    loc = err["loc"]
    if err["type"] == "missing" and loc[-1] == "kind":
        return f"missing (one of {', '.join(KINDS)})"
    if err["type"] == "extra_forbidden":
        import difflib

        model = {"providers": ProviderConfig, "alerts": AlertsConfig}.get(str(loc[0]), SourcesConfig)
        close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
        return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if err["type"] == "value_error" and loc and loc[-1] in ("api_url", "host", "url"):
        return str(err["msg"]).removeprefix("Value error, ")  # our own sentence, said once
    return str(err["msg"])


def _nearest_origin(loc: str, origins: Mapping[str, str]) -> str | None:
    parts = loc.split(".")
    while parts:
        parts.pop()
        prefix = ".".join(parts) + "."
        for key, origin in origins.items():
            if key.startswith(prefix) and not origin.startswith(("default", "built in", "LEON default")):
                return origin
    return None


def resolved_key(cfg: ProviderConfig, env: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """(key, where it came from) honouring `api_key_env` first; the value is for adapters only."""
    env = os.environ if env is None else env
    if cfg.api_key_env and env.get(cfg.api_key_env):
        return env[cfg.api_key_env], f"${cfg.api_key_env}"
    if cfg.api_key:
        return cfg.api_key.get_secret_value(), "api_key"
    return None, None
