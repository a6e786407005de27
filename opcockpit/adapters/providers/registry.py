"""Build a provider adapter from its config, importing the adapter module only when needed.

Lazy by kind so that `opcockpit snapshot` against a Docker-only fleet never imports the E2B code,
and so a kind whose adapter is not installed/written yet fails per provider, not globally.
"""

from __future__ import annotations

import importlib
import os

from opcockpit.ports.provider import AuthFailed, ProviderAdapter, ProviderError
from opcockpit.settings.config import ProviderConfig

# kind -> (module, class)
ADAPTERS: dict[str, tuple[str, str]] = {
    "docker": ("opcockpit.adapters.providers.docker", "DockerAdapter"),
    "e2b": ("opcockpit.adapters.providers.e2b", "E2BAdapter"),
    "daytona": ("opcockpit.adapters.providers.daytona", "DaytonaAdapter"),
    "agentbay": ("opcockpit.adapters.providers.agentbay", "AgentBayAdapter"),
    "local": ("opcockpit.adapters.providers.local", "LocalAdapter"),
}


class AdapterUnavailable(ProviderError):
    """No adapter implementation for this kind (module missing or broken)."""


def adapter_class(kind: str) -> type:
    try:
        module_name, class_name = ADAPTERS[kind]
    except KeyError:
        raise AdapterUnavailable(f"unknown provider kind {kind!r}") from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise AdapterUnavailable(f"no adapter for kind {kind!r} yet") from None
        msg = f"adapter for kind {kind!r} cannot be imported (missing {exc.name})"
        raise AdapterUnavailable(msg) from None
    try:
        return getattr(module, class_name)
    except AttributeError:
        msg = f"no adapter for kind {kind!r} yet ({module_name}.{class_name} missing)"
        raise AdapterUnavailable(msg) from None


def build_adapter(cfg: ProviderConfig) -> ProviderAdapter:
    """One adapter for one configured provider. Raises AuthFailed (naming the env var, never the
    value) when a key is required and missing, AdapterUnavailable when the kind has no adapter."""
    cls = adapter_class(cfg.kind)
    common = {
        "timeout": cfg.timeout_s,
        "max_concurrency": cfg.max_concurrency,
        "retries": cfg.retries,
        "label_filter": cfg.label_filter,
        # Bounds on one listing (issue 16): past either, the listing fails and its rows go stale.
        "max_pages": cfg.max_pages,
        "max_instances": cfg.max_instances,
    }
    if cfg.kind == "docker":
        host = cfg.host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        return cls(cfg.name, host=host, **common)
    if cfg.kind == "local":
        return cls(cfg.name)
    key = cfg.resolve_api_key()
    if not key:
        where = f"${cfg.api_key_env}" if cfg.api_key_env else "api_key_env"
        raise AuthFailed(
            f"no API key: set {where} (or api_key_env / api_key in [providers.{cfg.name}])",
            provider=cfg.name,
        )
    if not cfg.api_url:
        raise AdapterUnavailable(f"no api_url configured for kind {cfg.kind!r}", provider=cfg.name)
    return cls(cfg.name, base_url=cfg.api_url, api_key=key, **common)
