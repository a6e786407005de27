"""`from opcockpit.adapters.lean_psycopg import psycopg`: psycopg, without importlib.metadata.

psycopg's package init reads its own version and psycopg_binary's through `importlib.metadata`
(`psycopg/version.py`, `psycopg_binary/version.py`): that imports email, zipfile, csv and scans
every sys.path entry for distributions, ~57M instructions (~10 ms) of every process that talks to
PostgreSQL, ~15 % of importing psycopg (issue 12: `snapshot` with a PostgreSQL source or ledger).
The versions are in the names of the `<dist>-<version>.dist-info` directories beside the
packages: both version modules are put in place from those first, holding the very same
`__version__`. When a directory is not found exactly once, that module is left to psycopg.
"""

from __future__ import annotations

import os
import sys
import types
from importlib.machinery import PathFinder

__all__ = ["psycopg"]


def _dist_version(package: str) -> str | None:
    """The version in the name of `package`'s one dist-info directory beside it, or None."""
    spec = PathFinder.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    site = os.path.dirname(next(iter(spec.submodule_search_locations)))
    prefix = package + "-"
    try:
        found = [n for n in os.listdir(site) if n.startswith(prefix) and n.endswith(".dist-info")]
    except OSError:
        return None
    if len(found) != 1:
        return None  # none, or stale leftovers beside the installed one: let psycopg decide
    version = found[0][len(prefix) : -len(".dist-info")]
    return version or None


def _preset_versions() -> list[str]:
    placed = []
    for package in ("psycopg", "psycopg_binary"):
        name = f"{package}.version"
        version = _dist_version(package)
        if version is None or name in sys.modules:
            continue
        module = types.ModuleType(name, f"{package} distribution version (from its dist-info name)")
        module.__version__ = version  # type: ignore[attr-defined]
        sys.modules[name] = module
        placed.append(name)
    return placed


def _bind(placed: list[str]) -> None:
    """`psycopg.version` as an attribute too, as a real import of the submodule leaves it."""
    for name in placed:
        parent, _, child = name.rpartition(".")
        package = sys.modules.get(parent)
        if package is not None and not hasattr(package, child):
            setattr(package, child, sys.modules[name])


if "psycopg" not in sys.modules:
    _placed = _preset_versions()
    try:
        import psycopg
    except BaseException:
        for _name in _placed:  # a failed import leaves nothing of ours behind
            sys.modules.pop(_name, None)
        raise
    _bind(_placed)
else:
    import psycopg
