"""Configuration loading: discover, merge and validate, with where every value came from.

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

Split along its seams: models.py (pydantic models), paths.py (LEON and XDG paths), leon.py (LEON's
provider json), kinds.py (what the loader needs from the provider kinds its caller hands in).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from opcockpit.domain import secrets as _secrets
from opcockpit.domain.alerts_config import AlertsConfig
from opcockpit.domain.secrets import (
    is_secret_name,
    redact,
    redact_mapping,
    redact_url,
    remember,
    remember_url,
    scrub,
    url_secrets,
)
from opcockpit.settings.kinds import Kinds, KindSpec, kinds_phrase
from opcockpit.settings.leon import leon_providers
from opcockpit.settings.models import (
    CockpitConfig,
    ProviderConfig,
    SourcesConfig,
    api_url_problem,
    docker_host_problem,
)
from opcockpit.settings.paths import ConfigPaths, default_paths, leon_home, user_config_path

__all__ = [
    "CONTEXT_ENV",
    "CockpitConfig",
    "ConfigError",
    "ConfigPaths",
    "KindSpec",
    "LoadedConfig",
    "ProviderConfig",
    "SourcesConfig",
    "api_url_problem",
    "default_paths",
    "docker_host_problem",
    "is_secret_name",
    "leon_home",
    "load_config",
    "redact",
    "redact_mapping",
    "redact_url",
    "scrub",
    "select_context",
    "url_secrets",
    "user_config_path",
]


class ConfigError(Exception):
    """Invalid configuration: one message per problem ("<file>: <key.path>: <what is wrong>")."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# One implementation (opcockpit.domain.secrets); these names stay importable from here.
_KNOWN_SECRETS = _secrets._KNOWN
_remember_secret = remember
_remember_url_secrets = remember_url


@dataclass
class LoadedConfig:
    """The validated config plus where every value came from (for `config show`)."""

    config: CockpitConfig
    paths: ConfigPaths
    origins: dict[str, str] = field(default_factory=dict)  # "providers.e2b.api_url" -> origin
    warnings: list[str] = field(default_factory=list)

    def origin(self, key: str) -> str:
        return self.origins.get(key, "default")


def _kind_defaults(
    spec: KindSpec, fields: dict[str, Any], env: Mapping[str, str]
) -> dict[str, tuple[Any, str]]:
    """Built-in defaults for one provider, each with its origin (the kind's own, plus its key env)."""
    out = dict(spec.defaults(fields, env))
    if spec.key_env:
        out["api_key_env"] = (spec.key_env, "default for kind")
    return out


# Top-level tables/values taken from the file as they are (validated by the models).
_PASSTHROUGH_KEYS = (
    "refresh_s", "read_only", "list_timeout_s", "alerts", "export", "webhooks", "serve", "events", "tui",
    "ledger",
)  # fmt: skip
_TOP_KEYS = ("sources", "providers", *_PASSTHROUGH_KEYS, "contexts", "context")
CONTEXT_ENV = "OPCOCKPIT_CONTEXT"
_CONTEXT_KEYS = ("description", "sources", "providers", "ledger", "read_only")


def select_context(
    toml: dict[str, Any], toml_origin: str, context: str | None, env: Mapping[str, str]
) -> tuple[dict[str, Any], str | None, dict[str, str]]:
    """(`toml` with the chosen `[contexts.<name>]` overlaid, its name, {key path: origin} of the
    values it set). The name: `context` (--context), else $OPCOCKPIT_CONTEXT, else the file's
    `context = "NAME"`. An unknown name is one ConfigError line naming the known ones."""
    contexts = toml.get("contexts", {})
    if not isinstance(contexts, dict) or not all(isinstance(v, dict) for v in contexts.values()):
        raise ConfigError(
            [f"{toml_origin or 'config'}: contexts: must be a table of tables ([contexts.<name>])"]
        )
    default = toml.get("context")
    if default is not None and not isinstance(default, str):
        raise ConfigError([f"{toml_origin}: context: must be a context name (a string)"])
    name = context or (env.get(CONTEXT_ENV) or "").strip() or default
    if not name:
        return toml, None, {}
    if name not in contexts:
        known = ", ".join(sorted(contexts)) or "none defined"
        given = (
            "--context"
            if context
            else f"${CONTEXT_ENV}"
            if env.get(CONTEXT_ENV)
            else f"{toml_origin}: context"
        )
        raise ConfigError([f"unknown context {name!r} (from {given}; known: {known})"])
    table = contexts[name]
    where = f"{toml_origin} [contexts.{name}]"
    bad = [k for k in table if k not in _CONTEXT_KEYS]
    if bad:
        raise ConfigError(
            [f"{where}: {k}: unknown key (a context has {', '.join(_CONTEXT_KEYS)})" for k in bad]
        )
    out = dict(toml)
    origins: dict[str, str] = {}
    for key in ("sources", "ledger"):
        if key in table:
            if not isinstance(table[key], dict):
                raise ConfigError([f"{where}: {key}: must be a table"])
            base = out.get(key, {})
            out[key] = {**(base if isinstance(base, dict) else {}), **table[key]}
            origins.update({f"{key}.{k}": where for k in table[key]})
            if key == "ledger":
                origins["ledger"] = where
    if "providers" in table:
        if not isinstance(table["providers"], dict):
            raise ConfigError([f"{where}: providers: must be a table of tables"])
        provs = {k: dict(v) if isinstance(v, dict) else v for k, v in dict(out.get("providers", {})).items()}
        for pname, ptable in table["providers"].items():
            if isinstance(ptable, dict) and isinstance(provs.get(pname), dict):
                if "kind" in ptable and provs[pname].get("kind") not in (None, ptable["kind"]):
                    provs[pname] = {}  # another kind: the top level's fields do not apply
                provs[pname] = {**provs[pname], **ptable}
            else:
                provs[pname] = ptable
            if isinstance(ptable, dict):
                origins.update({f"providers.{pname}.{k}": where for k in ptable})
        out["providers"] = provs
    if "read_only" in table:
        out["read_only"] = table["read_only"]
        origins["read_only"] = where
    return out, name, origins


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
    kinds: Kinds | None = None,
    context: str | None = None,
) -> LoadedConfig:
    """Discover, merge and validate. Raises ConfigError listing every problem found.

    `kinds` (name -> KindSpec) are the provider kinds the caller knows: the wiring passes the
    adapter registry's. Their names are the valid `kind` values; each supplies its defaults and
    reads its block of LEON's provider json. Without `kinds` (callers that only need the sources
    or the secrets learnt, e.g. shell completion) nothing kind-specific happens: kind names are
    not checked, no per-kind defaults are filled in and LEON's provider json is not read."""
    env = os.environ if env is None else env
    check_kinds = kinds is not None
    kinds = {} if kinds is None else kinds
    paths = default_paths(env, config_path)
    warnings: list[str] = []
    origins: dict[str, str] = {}
    problems: list[str] = []

    toml: dict[str, Any] = {}
    toml_origin = ""
    if paths.own_config is not None:
        toml = _read_toml(paths.own_config, paths.own_config_origin)
        toml_origin = str(paths.own_config)

    # `[contexts.<name>]` (issue 12): the chosen one's tables overlaid on the top level.
    for table in toml.get("contexts", {}).values() if isinstance(toml.get("contexts"), dict) else ():
        for key in ("sources", "ledger"):  # every context's URL password is a secret, chosen or not
            if isinstance(table, dict) and isinstance(table.get(key), dict):
                remember_url(table[key].get("url"))
    toml, context_name, context_origins = select_context(toml, toml_origin, context, env)

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
    if env.get("LEON_DB_SCHEMA") and "schema" not in sources:
        sources["schema"], origins["sources.schema"] = env["LEON_DB_SCHEMA"], "$LEON_DB_SCHEMA"
    remember_url(sources.get("url"))  # a PostgreSQL source URL's password: scrubbed everywhere
    for var in (sources.get("url_env"), "LEON_POSTGRES_URL"):
        if isinstance(var, str) and env.get(var):
            remember_url(env[var])
    file_sources = dict(sources)  # before the flags: a bad value in the file is still reported
    if db is not None:
        sources["sandbox_db"], origins["sources.sandbox_db"] = str(db), "--db flag"
    if events_db is not None:
        sources["events_db"], origins["sources.events_db"] = str(events_db), "--events-db flag"

    # ---- providers: LEON json, then our TOML on top, key by key
    merged: dict[str, dict[str, Any]] = {"local": {"kind": "local"}}
    origins["providers.local.kind"] = "built in"
    leon = leon_providers(paths.leon_sandboxes, env, warnings, kinds) if check_kinds else {}
    for name, (fields, origin) in leon.items():
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
        spec = kinds.get(kind) if isinstance(kind, str) else None
        if check_kinds and isinstance(kind, str) and kind and spec is None:
            problems.append(
                f"{origins.get(f'providers.{name}.kind') or toml_origin or 'config'}: providers.{name}.kind: "
                f"Input should be {kinds_phrase(kinds)}"
            )
        if spec is not None:
            for key, (value, origin) in _kind_defaults(spec, entry, env).items():
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
    for key in _PASSTHROUGH_KEYS:
        if key in toml:
            data[key], origins[key] = toml[key], toml_origin
    if "contexts" in toml:
        data["contexts"] = toml["contexts"]
    data["context"] = context_name
    for key, where in context_origins.items():
        if origins.get(key, toml_origin) == toml_origin:
            origins[key] = where
    _remember_alert_secrets(toml.get("alerts"), env)
    if isinstance(toml.get("ledger"), dict):  # a ledger URL's password is a secret like any key
        remember_url(toml["ledger"].get("url"))
    webhooks = toml.get("webhooks")
    for table in webhooks.values() if isinstance(webhooks, dict) else ():
        if isinstance(table, dict):  # webhook signing secrets: scrubbed from every message
            _remember_secret(table.get("secret") if isinstance(table.get("secret"), str) else None)
            _remember_secret(env.get(str(table.get("secret_env") or "")) or None)
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
            problems.append(f"{origin}: {loc}: {_explain(err, kinds)}")
        cfg = None
    problems += _masked_file_problems(data, file_sources, toml, toml_origin, kinds)
    if problems:
        raise ConfigError(problems)
    assert cfg is not None
    if cfg.sources.kind == "postgres" and cfg.sources.resolve_url(env) is None:
        origin = origins.get("sources.kind", toml_origin or "config")
        raise ConfigError(
            [f'{origin}: sources.url: kind = "postgres" needs url, url_env or $LEON_POSTGRES_URL']
        )
    for prov in cfg.providers.values():
        if prov.api_key_env:
            _remember_secret(env.get(prov.api_key_env))
    return LoadedConfig(cfg, paths, origins, warnings)


def _masked_file_problems(
    data: dict[str, Any],
    file_sources: dict[str, Any],
    toml: Mapping[str, Any],
    toml_origin: str,
    kinds: Kinds,
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
                out.append(f"{toml_origin}: {loc}: {_explain(err, kinds)}")
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


def _explain(err: Mapping[str, Any], kinds: Kinds) -> str:
    """pydantic's message, made specific for the two mistakes people actually make."""
    loc = err["loc"]
    if err["type"] == "missing" and loc[-1] == "kind":
        return f"missing (one of {', '.join(kinds)})" if kinds else "missing"
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
