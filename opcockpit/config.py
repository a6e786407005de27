"""Configuration models (pydantic at the boundary). Loading/discovery lives beside them.

OWNER NOTE: the loader (TOML at XDG path, --config, LEON defaults, ~/.leon/sandboxes/*.json) is
being written; the models below are the contract other modules build on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

ProviderKind = Literal["docker", "e2b", "daytona", "agentbay", "local"]


class ProviderConfig(BaseModel):
    """One configured provider. `name` is what appears in `sandbox_leases.provider_name`."""

    model_config = ConfigDict(extra="forbid")

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
    timeout_s: float = Field(default=10.0, gt=0)
    max_concurrency: int = Field(default=8, ge=1, le=256)
    retries: int = Field(default=3, ge=0, le=10)
    label_filter: dict[str, str] | None = None  # only list instances carrying these labels/metadata

    def resolve_api_key(self) -> str | None:
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if value:
                return value
        return self.api_key.get_secret_value() if self.api_key else None


class SourcesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sandbox_db: Path
    events_db: Path | None = None


class CockpitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: SourcesConfig
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    refresh_s: float = Field(default=2.0, ge=0.5)
    read_only: bool = False
