"""`opcockpit config show|validate|init|paths`. Secrets are only ever printed through `redact`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from opcockpit.cli.common import EXIT_OK, EXIT_USAGE, CliExit, err, load_or_exit
from opcockpit.settings.config import (
    LoadedConfig,
    ProviderConfig,
    default_paths,
    redact,
    redact_mapping,
    redact_url,
)

_PROVIDER_KEYS = (
    "kind", "enabled", "host", "api_url", "region", "target", "api_key_env",
    "timeout_s", "max_concurrency", "retries", "label_filter",
)  # fmt: skip


def run_config(args: Any) -> int:
    action = args.config_command
    if action == "show":
        return _show(args)
    if action == "validate":
        return _validate(args)
    if action == "init":
        return _init(args)
    if action == "paths":
        return _paths(args)
    if action == "contexts":
        return _contexts(args)
    err(
        "opcockpit config: choose an action: show, validate, init, paths, contexts"
        " (see opcockpit config --help)"
    )
    return EXIT_USAGE


# --------------------------------------------------------------------------- show


def _key_view(p: ProviderConfig, loaded: LoadedConfig) -> tuple[str | None, str]:
    """(redacted key or None, where it comes from / how to set it)."""
    if p.api_key_env and os.environ.get(p.api_key_env):
        return redact(os.environ[p.api_key_env]), f"from ${p.api_key_env}"
    if p.api_key is not None:
        return redact(p.api_key.get_secret_value()), loaded.origin(f"providers.{p.name}.api_key")
    if p.kind in ("docker", "local"):
        return None, "not needed"
    hint = f"set ${p.api_key_env}" if p.api_key_env else "set api_key_env"
    return None, f"missing: {hint}"


def _entries(loaded: LoadedConfig) -> dict[str, Any]:
    cfg = loaded.config
    out: dict[str, Any] = {
        "config_file": str(loaded.paths.own_config) if loaded.paths.own_config else None,
        "config_file_origin": loaded.paths.own_config_origin,
        "settings": {},
        "sources": {},
        "providers": {},
        "warnings": list(loaded.warnings),
    }
    for key in ("refresh_s", "read_only", "list_timeout_s"):
        out["settings"][key] = {"value": getattr(cfg, key), "origin": loaded.origin(key)}
    for key in ("sandbox_db", "events_db"):
        value = getattr(cfg.sources, key)
        out["sources"][key] = {
            "value": str(value) if value is not None else None,
            "origin": loaded.origin(f"sources.{key}"),
            "exists": bool(value is not None and Path(value).is_file()),
        }
    for name in sorted(cfg.providers):
        p = cfg.providers[name]
        entry: dict[str, Any] = {}
        for key in _PROVIDER_KEYS:
            value = getattr(p, key)
            origin = loaded.origins.get(f"providers.{name}.{key}")
            if value is None and origin is None:
                continue
            if key in ("api_url", "host") and isinstance(value, str):
                value = redact_url(value)  # user:password@ and token query values never shown
            entry[key] = {"value": value, "origin": origin or "default"}
        shown, where = _key_view(p, loaded)
        entry["api_key"] = {"value": shown, "origin": where}
        out["providers"][name] = entry
    out["alerts"] = _alerts_entries(loaded)
    return out


def _alerts_entries(loaded: LoadedConfig) -> dict[str, Any]:
    """The [alerts] table: every setting with its origin; webhook URLs redacted down to
    scheme://host/… (a chat webhook URL is itself the credential), the command shown as is."""
    cfg = loaded.config.alerts
    where = loaded.origin("alerts")

    def items(model: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        return {
            key: {
                "value": getattr(model, key),
                "origin": where if key in model.model_fields_set else "default",
            }
            for key in type(model).model_fields
            if key not in skip
        }

    settings = items(cfg, skip=("webhook", "command"))
    for item in settings.values():
        if isinstance(item["value"], dict):  # severity overrides: enum values -> their words
            item["value"] = {  # query rules (issue 11): their tables as written
                k: v.model_dump(by_alias=True, exclude_defaults=True) if hasattr(v, "model_dump") else str(v)
                for k, v in item["value"].items()
            }
    webhook = None
    if cfg.webhook is not None:
        webhook = items(cfg.webhook)
        # A static `authorization = "Bearer …"` header is a credential: secret-named values -> ***.
        webhook["headers"]["value"] = redact_mapping(cfg.webhook.headers)
        env_var = cfg.webhook.url_env
        if env_var and os.environ.get(env_var):
            webhook["url"] = {
                "value": redact_url(os.environ[env_var], hide_path=True),
                "origin": f"from ${env_var}",
            }
        elif cfg.webhook.url is not None:
            webhook["url"]["value"] = redact_url(cfg.webhook.url, hide_path=True)
        elif env_var:
            webhook["url"] = {"value": None, "origin": f"missing: set ${env_var}"}
    command = items(cfg.command) if cfg.command is not None else None
    return {"settings": settings, "webhook": webhook, "command": command}


def _toml_value(v: Any) -> str:
    if v is None:
        return "(unset)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v), ensure_ascii=False)


def _show(args: Any) -> int:
    loaded = load_or_exit(args)
    data = _entries(loaded)
    if args.format == "json":
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    lines = ["# opcockpit effective configuration (secrets redacted)"]
    if data["config_file"]:
        lines.append(f"# config file: {data['config_file']} (from {data['config_file_origin']})")
    else:
        lines.append(f"# config file: none (would be {loaded.paths.default_config}); LEON defaults only")
    for w in data["warnings"]:
        lines.append(f"# warning: {w}")

    def emit(key: str, item: dict[str, Any], extra: str = "") -> None:
        left = f"{key} = {_toml_value(item['value'])}"
        lines.append(f"{left:<52} # {item['origin']}{extra}")

    lines.append("")
    for key, item in data["settings"].items():
        emit(key, item)
    lines += ["", "[sources]"]
    for key, item in data["sources"].items():
        emit(key, item, "" if item["exists"] or item["value"] is None else " (file not found)")
    for name, entry in data["providers"].items():
        lines += ["", f"[providers.{name}]"]
        for key, item in entry.items():
            emit(key, item)
    alerts = data["alerts"]
    lines += ["", "[alerts]"]
    for key, item in alerts["settings"].items():
        emit(key, item)
    for table in ("webhook", "command"):
        if alerts[table] is not None:
            lines += ["", f"[alerts.{table}]"]
            for key, item in alerts[table].items():
                emit(key, item, " (path and query hidden)" if key == "url" and item["value"] else "")
    from opcockpit.adapters.ledger.rule_overrides import config_show_lines  # issue 11
    from opcockpit.wiring import ledger_target

    lines += config_show_lines(ledger_target(loaded.config), loaded.config.alerts)
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


# --------------------------------------------------------------------------- validate / init / paths


def _validate(args: Any) -> int:
    loaded = load_or_exit(args)  # every problem -> one stderr line, exit 2
    for w in loaded.warnings:
        err(f"opcockpit: warning: {w}")
    sources = loaded.config.sources
    if sources.kind == "sqlite" and not Path(sources.sandbox_db).expanduser().exists():
        # A valid file can still point at nothing: the cockpit would show the source unreadable.
        hint = "set [sources] sandbox_db or --db"
        err(f"opcockpit: warning: sandbox.db at {sources.sandbox_db} does not exist ({hint})")
    where = loaded.paths.own_config or "no config file (LEON defaults)"
    n = len(loaded.config.providers)
    sys.stdout.write(f"ok: {where}: {n} provider{'s' if n != 1 else ''} configured\n")
    return EXIT_OK


def _init(args: Any) -> int:
    from opcockpit.cli.starter import STARTER_CONFIG

    target = Path(args.path).expanduser() if args.path else default_paths().default_config
    if target.is_dir():
        err(f"opcockpit: {target} is a directory; give a file path with --path")
        raise CliExit(EXIT_USAGE)
    if target.exists() and not args.force:
        err(f"opcockpit: {target} already exists; use --force to overwrite")
        raise CliExit(EXIT_USAGE)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(STARTER_CONFIG, encoding="utf-8")
    except OSError as exc:
        err(f"opcockpit: cannot write {target}: {exc.strerror or type(exc).__name__}")
        raise CliExit(EXIT_USAGE) from None
    sys.stdout.write(f"wrote {target}\n")
    return EXIT_OK


def _paths(args: Any) -> int:
    paths = default_paths(config_path=getattr(args, "config", None))

    def state(p: Path | None) -> str:
        if p is None:
            return ""
        return "exists" if p.exists() else "missing"

    rows = [
        ("config (in use)", paths.own_config, f"from {paths.own_config_origin}"),
        ("config (default)", paths.default_config, state(paths.default_config)),
        ("LEON home", paths.leon_home, state(paths.leon_home)),
        ("LEON provider configs", paths.leon_sandboxes, state(paths.leon_sandboxes)),
        ("sandbox.db (LEON default)", paths.sandbox_db_default, state(paths.sandbox_db_default)),
        ("events.db (LEON default)", paths.events_db_default, state(paths.events_db_default)),
    ]
    for label, path, note in rows:
        sys.stdout.write(f"{label:<27} {path if path is not None else '(none)'}  {note}\n")
    return EXIT_OK


# --------------------------------------------------------------------------- contexts (issue 12)


def _contexts(args: Any) -> int:
    """Every `[contexts.<name>]`: its source (URL without password), ledger, read_only, providers;
    `*` marks the one in effect. A context whose tables do not validate shows its first problem."""
    from opcockpit.settings.config import ConfigError

    loaded = load_or_exit(args)  # the selected context (if any) must itself be valid
    current = loaded.config.context
    rows: list[dict[str, Any]] = []
    for name in sorted(loaded.config.contexts):
        row: dict[str, Any] = {"name": name, "current": name == current}
        row["description"] = loaded.config.contexts[name].description
        try:
            cfg = load_or_exit_quiet(args, name)
        except ConfigError as exc:
            row["error"] = exc.problems[0] if exc.problems else "invalid"
            rows.append(row)
            continue
        src = cfg.sources
        row["source"] = {"kind": src.kind, "where": src.shown()}
        if src.kind == "postgres":
            row["source"]["schema"] = src.db_schema
        row["ledger"] = redact_url(cfg.ledger.resolve()) if cfg.ledger.resolve() else "(default file)"
        row["read_only"] = cfg.read_only
        row["providers"] = sorted(p.name for p in cfg.providers.values() if p.enabled)
        rows.append(row)
    if args.format == "json":
        sys.stdout.write(json.dumps({"current": current, "contexts": rows}, indent=2) + "\n")
        return EXIT_OK
    if not rows:
        sys.stdout.write("no contexts defined (add [contexts.<name>] tables to the config)\n")
        return EXIT_OK
    for row in rows:
        mark = "*" if row["current"] else " "
        if "error" in row:
            sys.stdout.write(f"{mark} {row['name']:<16} invalid: {row['error']}\n")
            continue
        ro = "  read-only" if row["read_only"] else ""
        provs = ",".join(row["providers"]) or "-"
        sys.stdout.write(
            f"{mark} {row['name']:<16} {row['source']['kind']:<8} {row['source']['where']}"
            f"  ledger {row['ledger']}  providers {provs}{ro}\n"
        )
    return EXIT_OK


def load_or_exit_quiet(args: Any, context: str) -> Any:
    """The config with `context` selected (ConfigError raised, not printed)."""
    from opcockpit.adapters.providers.registry import KINDS
    from opcockpit.settings.config import load_config

    return load_config(
        getattr(args, "config", None), kinds=KINDS, db=getattr(args, "db", None),
        events_db=getattr(args, "events_db", None), context=context,
    ).config  # fmt: skip
