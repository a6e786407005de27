"""Conformance suite (issue 14): the providers' official Python SDKs, pointed at our loopback
doubles, perform the calls the cockpit relies on and we assert on what the SDK parsed.

The SDKs are test-only dependencies (pyproject `dev` extra). Missing SDK: skip with the reason on a
developer machine, FAIL in CI (OPCOCKPIT_CI=1) -- see `need_sdk`.
Every request goes to 127.0.0.1 or a unix socket; no test reaches a real provider endpoint.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from types import ModuleType

import pytest

from tests.fixtures.podman import in_ci

# The AgentBay SDK opens a log file in the working directory at import (it logs request bodies):
# keep it out of the checkout.
os.environ.setdefault(
    "AGENTBAY_LOG_FILE", os.path.join(tempfile.gettempdir(), "opcockpit-tests-agentbay.log")
)


def need_sdk(module: str, pin: str) -> ModuleType:
    """Import an SDK module; absent, skip on a dev machine but fail in CI (never skip there)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        reason = f"{module} not installed ({exc}); pip install -e '.[dev]' ({pin})"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason, allow_module_level=True)
        raise  # unreachable: skip raises


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """SDKs read credentials/endpoints from the environment; a stray real one must never be used."""
    for var in list(os.environ):
        if var.startswith(("E2B_", "DAYTONA_", "AGENTBAY_", "DOCKER_")):
            monkeypatch.delenv(var, raising=False)
