"""The three API doubles the raw-record tests (tests/providers, tests/conformance) point adapters
and SDKs at, as fixtures: a module takes them by assigning them to its own names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opcockpit.doubles.agentbay import AgentBayDouble
from opcockpit.doubles.daytona import DaytonaDouble
from opcockpit.doubles.e2b import E2BDouble

KEY = "test-key-Zq7xSECRETvalue"  # every double's API key (the tests check it never shows)


@pytest.fixture
def e2b() -> Iterator[E2BDouble]:
    with E2BDouble(api_key=KEY) as d:
        yield d  # type: ignore[misc]


@pytest.fixture
def daytona() -> Iterator[DaytonaDouble]:
    with DaytonaDouble(api_key=KEY, transition_s=0.05) as d:
        yield d  # type: ignore[misc]


@pytest.fixture
def agentbay() -> Iterator[AgentBayDouble]:
    with AgentBayDouble(api_key=KEY, transition_s=0.05) as d:
        yield d
