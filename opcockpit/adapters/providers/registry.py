"""The provider kinds: one line per kind, and building an adapter from its config.

Each adapter module declares its kind (`KIND = ProviderKind(...)`: capabilities, key env var,
config defaults, LEON json translation, reason hints). `KINDS` maps kind name -> that descriptor
and imports an adapter module only when its kind is asked for, so `opcockpit snapshot` against a
Docker-only fleet never imports the E2B code, and a broken adapter fails per provider, not globally.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping

from opcockpit.ports.provider import AuthFailed, ProviderAdapter, ProviderError, ProviderKind
from opcockpit.settings.config import ProviderConfig

# kind -> the module declaring it. Adding a provider: one line here.
MODULES: dict[str, str] = {
    "docker": "opcockpit.adapters.providers.docker",
    "e2b": "opcockpit.adapters.providers.e2b",
    "daytona": "opcockpit.adapters.providers.daytona",
    "agentbay": "opcockpit.adapters.providers.agentbay",
    "local": "opcockpit.adapters.providers.local",
}


class AdapterUnavailable(ProviderError):
    """No adapter implementation for this kind (module missing or broken)."""


def kind_of(kind: str) -> ProviderKind:
    """The descriptor of `kind`, importing its adapter module. Raises AdapterUnavailable."""
    try:
        module_name = MODULES[kind]
    except KeyError:
        raise AdapterUnavailable(f"unknown provider kind {kind!r}") from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise AdapterUnavailable(f"no adapter for kind {kind!r} yet") from None
        msg = f"adapter for kind {kind!r} cannot be imported (missing {exc.name})"
        raise AdapterUnavailable(msg) from None
    descriptor = getattr(module, "KIND", None)
    if not isinstance(descriptor, ProviderKind) or descriptor.name != kind:
        raise AdapterUnavailable(f"no adapter for kind {kind!r} yet ({module_name}.KIND missing)")
    return descriptor


class _Kinds(Mapping[str, ProviderKind]):
    """kind name -> ProviderKind, importing a module on first lookup of its kind."""

    def __getitem__(self, kind: str) -> ProviderKind:
        if kind not in MODULES:
            raise KeyError(kind)
        return kind_of(kind)

    def __iter__(self) -> Iterator[str]:
        return iter(MODULES)

    def __len__(self) -> int:
        return len(MODULES)

    def __contains__(self, kind: object) -> bool:
        return kind in MODULES


# What the settings loader takes: `load_config(..., kinds=KINDS)` (settings may not import us).
KINDS: Mapping[str, ProviderKind] = _Kinds()


def adapter_class(kind: str) -> type:
    return kind_of(kind).factory  # type: ignore[return-value]


def build_adapter(cfg: ProviderConfig) -> ProviderAdapter:
    """One adapter for one configured provider. Raises AuthFailed (naming the env var, never the
    value) when a key is required and missing, AdapterUnavailable when the kind has no adapter."""
    kind = kind_of(cfg.kind)
    if kind.connect == "none":
        return kind.factory(cfg.name)
    common = {
        "timeout": cfg.timeout_s,
        "max_concurrency": cfg.max_concurrency,
        "retries": cfg.retries,
        "label_filter": cfg.label_filter,
        # Bounds on one listing (issue 16): past either, the listing fails and its rows go stale.
        "max_pages": cfg.max_pages,
        "max_instances": cfg.max_instances,
    }
    if kind.connect == "host":
        # A config built in code (tests, demo) may not carry the loader's defaults: apply the kind's.
        host = cfg.host or kind.defaults({}, os.environ).get("host", (None, ""))[0]
        return kind.factory(cfg.name, host=host, **common)
    key = cfg.resolve_api_key()
    if not key:
        where = f"${cfg.api_key_env}" if cfg.api_key_env else "api_key_env"
        raise AuthFailed(
            f"no API key: set {where} (or api_key_env / api_key in [providers.{cfg.name}])",
            provider=cfg.name,
        )
    if not cfg.api_url:
        raise AdapterUnavailable(f"no api_url configured for kind {cfg.kind!r}", provider=cfg.name)
    return kind.factory(cfg.name, base_url=cfg.api_url, api_key=key, **common)
