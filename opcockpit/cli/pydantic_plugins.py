"""The CLI runs no third-party pydantic plugins, and so never imports importlib.metadata.

pydantic looks its plugins up through `importlib.metadata` entry points the first time it builds a
validator. That import and scan (zipfile, email, every installed distribution's metadata) was ~6 %
of a 100-lease `opcockpit snapshot`'s instructions (issue 9: <= 0.3 s including start-up), for
plugins (observability hooks on validation) that a CLI validating its own config has no use for.
`disable()` gives pydantic a plugin loader that finds none: what pydantic's documented
`PYDANTIC_DISABLE_PLUGINS=__all__` does, without the lookup. When that variable is set at all,
pydantic's own loader is left to honour it (and a user can opt back in to plugins with
`PYDANTIC_DISABLE_PLUGINS=` empty). A pydantic that stopped importing `get_plugins` from
`pydantic.plugin._loader` would fail every CLI test at once, not silently.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterable
from typing import Any

LOADER = "pydantic.plugin._loader"


def _no_plugins() -> Iterable[Any]:
    return ()


def disable() -> None:
    """Install the empty plugin loader (before pydantic builds its first validator)."""
    if LOADER in sys.modules or "PYDANTIC_DISABLE_PLUGINS" in os.environ:
        return
    loader = types.ModuleType(LOADER, "opcockpit: no third-party pydantic plugins in the CLI")
    loader.get_plugins = _no_plugins  # type: ignore[attr-defined]
    sys.modules[LOADER] = loader
