"""The `[export.otlp]` table: where and how the cockpit pushes OpenTelemetry (docs/export.md).

    [export.otlp]
    enabled = true                 # unset: on when $OTEL_EXPORTER_OTLP_ENDPOINT is set
    endpoint = "http://collector:4318"   # base URL; wins over $OTEL_EXPORTER_OTLP_ENDPOINT
    headers_env = "OPCOCKPIT_OTLP_HEADERS"  # env var holding `k=v,k2=v2` (e.g. authorization=...)

Header values live only in the environment (never in the file), so `config show` has nothing to
print but the variable's name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, Field, field_validator

from opcockpit.domain.alerts_config import STRICT
from opcockpit.domain.secrets import http_url_problem

__all__ = ["ExportConfig", "OtlpExportConfig"]

ENDPOINT_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


class OtlpExportConfig(BaseModel):
    model_config = STRICT

    enabled: bool | None = None
    endpoint: str | None = None
    headers_env: str | None = Field(default=None, min_length=1)
    timeout_s: float = Field(default=10.0, gt=0, le=300)  # one export request, retries included
    interval_s: float = Field(default=5.0, ge=0.5, le=3600)  # the TUI's export pass
    queue_size: int = Field(default=2048, ge=1, le=1_000_000)  # records waiting; beyond: dropped
    service_name: str = Field(default="opcockpit", min_length=1)
    provider_name: str = Field(default="leon", min_length=1)  # gen_ai.provider.name of runs

    @field_validator("endpoint")
    @classmethod
    def _endpoint_shape(cls, v: str | None) -> str | None:
        if v is not None and (problem := http_url_problem(v, "http://localhost:4318")):
            raise ValueError(problem)
        return v

    def is_enabled(self, env: Mapping[str, str] | None = None) -> bool:
        """`enabled` when set; otherwise on exactly when the OTel endpoint variable is set."""
        if self.enabled is not None:
            return self.enabled
        env = os.environ if env is None else env
        return any(env.get(name) for name in ENDPOINT_ENV)


class ExportConfig(BaseModel):
    model_config = STRICT

    otlp: OtlpExportConfig = Field(default_factory=OtlpExportConfig)
