"""Default fixtures of the adapter contract (tests/providers/contract.py).

Each provider's test module supplies `double` (a started FakeProvider, or anything with the same
fleet hooks) and `make_adapter(**overrides)` (a factory building the adapter pointed at it; it
must accept `timeout`, `retries`, `label_filter`, `api_key` overrides and close what it built).
Everything else defaults here and can be overridden by a module- or class-level fixture of the
same name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from opcockpit.doubles.base import Faults


@pytest.fixture
def secret() -> str | None:
    """The API key the adapter under test was given (None for keyless providers like Docker)."""
    return "test-key-Zq7xSECRETvalue"


@pytest.fixture
def adapter(make_adapter: Callable[..., Any]) -> Any:
    return make_adapter()


@pytest.fixture
def faults(double: Any) -> Faults:
    return double.faults


@pytest.fixture
def seed(double: Any) -> Callable[..., str]:
    """`seed(state="running", labels=None) -> instance_id`: add an instance the provider's way."""

    def _seed(state: str = "running", labels: dict[str, str] | None = None) -> str:
        return double.add(state=state, labels=labels).instance_id

    return _seed


@pytest.fixture
def vanish(double: Any) -> Callable[[str], None]:
    """`vanish(instance_id)`: the instance disappears out of band."""
    return double.remove


@pytest.fixture
def set_state(double: Any) -> Callable[[str, str], None]:
    """`set_state(instance_id, "running"|"paused"|"stopped")`: change state behind our back."""
    return double.set_state
