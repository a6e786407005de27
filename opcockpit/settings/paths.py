"""Where things are: LEON's files (~/.leon, its env vars) and our config file (XDG)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ConfigPaths", "default_paths", "leon_home", "tilde", "user_config_path"]


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


def tilde(path: Path, env: Mapping[str, str]) -> str:
    home = env.get("HOME")
    s = str(path)
    return "~" + s[len(home) :] if home and s.startswith(home.rstrip("/") + "/") else s
