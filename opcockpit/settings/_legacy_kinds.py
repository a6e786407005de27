"""TEMPORARY: the provider kinds for callers of `load_config` that do not pass `kinds=` yet.

The kinds belong to the adapters (`ProviderKind` in each adapter module, listed by
adapters/providers/registry.py) and reach the loader through the wiring. Until every caller
passes them (cli/common.load_or_exit), this copy keeps behaviour unchanged;
tests/test_config_kinds.py checks it matches the registry. Delete it (and the fallback in
config.load_config) once no caller relies on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Defaults = Callable[[Mapping[str, Any], Mapping[str, str]], dict[str, tuple[Any, str]]]
Leon = Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]


def _none(fields: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    return {}


def _api_fields(block: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key in ("api_key", "api_url", "target"):
        if isinstance(block.get(key), str) and block[key]:
            fields[key] = block[key]
    region = block.get("region_id") or block.get("region")
    if isinstance(region, str) and region:
        fields["region"] = region
    return fields


def _docker_leon(block: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    host = block.get("host") or block.get("docker_host") or data.get("docker_host")
    return {"host": host} if isinstance(host, str) and host else {}


def _docker(fields: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    if env.get("DOCKER_HOST"):
        return {"host": (env["DOCKER_HOST"], "$DOCKER_HOST")}
    return {"host": ("unix:///var/run/docker.sock", "default")}


def _e2b_leon(block: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    fields = _api_fields(block, data)
    if isinstance(block.get("domain"), str) and "api_url" not in fields:
        fields["api_url"] = f"https://api.{block['domain']}"
    return fields


def _e2b(fields: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    if env.get("E2B_API_URL"):
        return {"api_url": (env["E2B_API_URL"], "$E2B_API_URL")}
    return {"api_url": (f"https://api.{env.get('E2B_DOMAIN') or 'e2b.app'}", "default")}


def _daytona(fields: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    out: dict[str, tuple[Any, str]] = {}
    if env.get("DAYTONA_API_URL"):
        out["api_url"] = (env["DAYTONA_API_URL"], "$DAYTONA_API_URL")
    else:
        out["api_url"] = ("https://app.daytona.io/api", "default")
    if env.get("DAYTONA_TARGET"):
        out["target"] = (env["DAYTONA_TARGET"], "$DAYTONA_TARGET")
    return out


def _agentbay(fields: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    out: dict[str, tuple[Any, str]] = {}
    if env.get("AGENTBAY_REGION_ID"):
        out["region"] = (env["AGENTBAY_REGION_ID"], "$AGENTBAY_REGION_ID")
    else:
        out["region"] = ("cn-hangzhou", "default")
    region = fields.get("region") or out["region"][0]
    if env.get("AGENTBAY_ENDPOINT"):
        out["api_url"] = (env["AGENTBAY_ENDPOINT"], "$AGENTBAY_ENDPOINT")
    else:
        out["api_url"] = (f"https://agentbay.{region}.aliyuncs.com", "default (from region)")
    return out


@dataclass(frozen=True, slots=True)
class _Kind:
    name: str
    key_env: str | None
    defaults: Defaults
    from_leon: Leon


LEGACY_KINDS: dict[str, _Kind] = {
    k.name: k
    for k in (
        _Kind("docker", None, _docker, _docker_leon),
        _Kind("e2b", "E2B_API_KEY", _e2b, _e2b_leon),
        _Kind("daytona", "DAYTONA_API_KEY", _daytona, _api_fields),
        _Kind("agentbay", "AGENTBAY_API_KEY", _agentbay, _api_fields),
        _Kind("local", None, _none, _api_fields),
    )
}
