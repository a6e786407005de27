"""LEON zero-config: ~/.leon/sandboxes/<name>.json -> our provider fields.

The file layout (`{"provider": kind, kind: {...}}`) is LEON's and read here; what the kind's block
means is the adapter's business (`KindSpec.from_leon`), handed in by the caller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opcockpit.domain.secrets import remember_url
from opcockpit.settings.kinds import Kinds
from opcockpit.settings.models import api_url_problem, docker_host_problem
from opcockpit.settings.paths import tilde

__all__ = ["leon_providers"]


def leon_providers(
    sandboxes: Path, env: Mapping[str, str], warnings: list[str], kinds: Kinds
) -> dict[str, tuple[dict[str, Any], str]]:
    """~/.leon/sandboxes/<name>.json -> {name: (provider fields, origin)}.

    A broken LEON file is a warning, not an error: it is LEON's file, and the rows of that
    provider still show (as 'not configured') instead of the whole cockpit refusing to start.
    """
    found: dict[str, tuple[dict[str, Any], str]] = {}
    if not sandboxes.is_dir():
        return found
    for path in sorted(sandboxes.glob("*.json")):
        origin = tilde(path, env)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            detail = (
                f"line {exc.lineno}: {exc.msg}"
                if isinstance(exc, json.JSONDecodeError)
                else type(exc).__name__
            )
            warnings.append(f"{origin}: not readable JSON ({detail}); provider {path.stem!r} skipped")
            continue
        if not isinstance(data, dict):
            warnings.append(f"{origin}: expected a JSON object; provider {path.stem!r} skipped")
            continue
        kind = data.get("provider")
        spec = kinds.get(kind) if isinstance(kind, str) else None
        if spec is None:
            warnings.append(
                f"{origin}: provider kind {kind!r} is not supported; provider {path.stem!r} skipped"
            )
            continue
        block = data.get(kind)
        block = block if isinstance(block, dict) else {}
        fields: dict[str, Any] = {"kind": kind, **spec.from_leon(block, data)}
        remember_url(fields.get("api_url"))
        remember_url(fields.get("host"))
        problem = None
        if "api_url" in fields:
            problem = api_url_problem(fields["api_url"]) and f"api_url: {api_url_problem(fields['api_url'])}"
        if "host" in fields and not problem:
            problem = docker_host_problem(fields["host"]) and f"host: {docker_host_problem(fields['host'])}"
        if problem:
            warnings.append(f"{origin}: {problem}; provider {path.stem!r} skipped")
            continue
        found[path.stem] = (fields, origin)
    return found
