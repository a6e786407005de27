"""What the settings loader needs to know about provider kinds, received from its caller.

Settings may not import adapters (the layer rule), yet kind names, per-kind defaults and the
translation of LEON's provider json belong to the adapters. So the loader takes the kinds as a
parameter (`load_config(..., kinds=registry.KINDS)`): anything with these members will do; the
adapters' `ports.provider.ProviderKind` descriptors are what the registry hands in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class KindSpec(Protocol):
    """The settings-facing part of a provider kind (structurally: ports.provider.ProviderKind)."""

    @property
    def name(self) -> str: ...

    @property
    def key_env(self) -> str | None: ...

    def defaults(
        self, fields: Mapping[str, Any], env: Mapping[str, str], /
    ) -> dict[str, tuple[Any, str]]: ...

    def from_leon(self, block: Mapping[str, Any], data: Mapping[str, Any], /) -> dict[str, Any]: ...


Kinds = Mapping[str, KindSpec]


def kinds_phrase(kinds: Kinds) -> str:
    """'docker', 'e2b' or 'local': the phrasing pydantic used for the old Literal kind."""
    names = [repr(name) for name in kinds]
    return " or ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)
