"""Provider kinds come from the adapters (registry.KINDS) and reach the loader as a parameter."""

from __future__ import annotations

from pathlib import Path

import pytest

from opcockpit.adapters.providers import registry
from opcockpit.adapters.providers.daytona import DaytonaAdapter
from opcockpit.ports.provider import ProviderKind
from opcockpit.settings.config import ConfigError, load_config
from tests.test_config import home, leon_json, write_toml  # noqa: F401 - the fixture


def test_every_kind_is_declared_by_its_adapter_module() -> None:
    assert list(registry.KINDS) == ["docker", "e2b", "daytona", "agentbay", "local"]
    for name, kind in registry.KINDS.items():
        assert isinstance(kind, ProviderKind) and kind.name == name
        assert registry.adapter_class(name) is kind.factory
    assert "nope" not in registry.KINDS
    with pytest.raises(KeyError):
        registry.KINDS["nope"]


def test_kind_facts_live_with_the_adapter() -> None:
    kinds = registry.KINDS
    assert kinds["daytona"].capabilities.pause_is_stop is True
    assert DaytonaAdapter("d", base_url="http://127.0.0.1:9/api").capabilities.pause_is_stop is True
    assert not any(kinds[k].capabilities.pause_is_stop for k in ("docker", "e2b", "agentbay", "local"))
    roots = {k: kinds[k].capabilities.workspace_root for k in kinds}
    assert roots == {"docker": "/workspace", "e2b": "/home/user", "daytona": "/home/daytona",
                     "agentbay": None, "local": None}  # fmt: skip
    assert kinds["daytona"].capabilities.eventually_consistent_list
    assert kinds["e2b"].capabilities.paused_hint == "E2B auto-pause?"
    assert [k for k in kinds if kinds[k].key_env] == ["e2b", "daytona", "agentbay"]


def test_without_kinds_nothing_kind_specific_happens(home: Path, tmp_path: Path) -> None:  # noqa: F811
    """Sources-only callers (completion) load without kinds: nothing is checked or filled per kind."""
    leon_json(home, "e2b", {"provider": "e2b", "e2b": {"api_key": "k" * 20}})
    p = write_toml(tmp_path / "c.toml", '[providers.x]\nkind = "e3b"\n[providers.d]\nkind = "docker"\n')
    loaded = load_config(p)
    assert set(loaded.config.providers) == {"local", "x", "d"}  # LEON's json is not read
    assert loaded.config.providers["d"].host is None and loaded.warnings == []
    with pytest.raises(ConfigError):
        load_config(p, kinds=registry.KINDS)  # the same file, checked


def test_injected_kinds_drive_zero_config(home: Path) -> None:  # noqa: F811
    leon_json(home, "e2b", {"provider": "e2b", "e2b": {"api_key": "k" * 20, "domain": "e2b.example"}})
    leon_json(home, "dock", {"provider": "docker", "docker_host": "tcp://127.0.0.1:2375"})
    loaded = load_config(kinds=registry.KINDS)
    providers = loaded.config.providers
    assert (providers["e2b"].api_url, providers["e2b"].api_key_env) == (
        "https://api.e2b.example",
        "E2B_API_KEY",
    )
    assert providers["dock"].host == "tcp://127.0.0.1:2375"
    # A loader given fewer kinds knows fewer: the kind is the caller's, not the loader's.
    only = {"local": registry.KINDS["local"], "docker": registry.KINDS["docker"]}
    loaded = load_config(kinds=only)
    assert set(loaded.config.providers) == {"local", "dock"}
    assert any("provider kind 'e2b' is not supported" in w for w in loaded.warnings)


def test_unknown_kind_names_the_injected_kinds(home: Path, tmp_path: Path) -> None:  # noqa: F811
    p = write_toml(tmp_path / "c.toml", '[providers.x]\nkind = "e3b"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(p, kinds=registry.KINDS)
    (problem,) = exc.value.problems
    assert problem == (
        f"{p}: providers.x.kind: Input should be 'docker', 'e2b', 'daytona', 'agentbay' or 'local'"
    )
