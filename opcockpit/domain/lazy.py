"""Names a module re-exports but creates only on first use (PEP 562 module `__getattr__`): the
headless start-up does not pay for classes only some screens need (issue 9)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(namespace: dict[str, Any], names: Iterable[str], source: str) -> Callable[[str], Any]:
    """A module `__getattr__` for `namespace` (its `globals()`): each of `names` is imported from
    module `source` on first access and kept in `namespace`, so later lookups cost nothing."""
    lazy = frozenset(names)
    module = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name not in lazy:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        namespace[name] = value
        return value

    return __getattr__
