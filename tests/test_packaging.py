"""Every runtime dependency in pyproject.toml is imported by the package (an unused one costs every
install: typer was once declared for a CLI that was argparse; now the CLI is typer)."""

from __future__ import annotations

import ast
import re
import tomllib

from tests.cli_support import REPO

# distribution name -> top-level import name, where they differ
IMPORT_NAME: dict[str, str] = {
    "opentelemetry-sdk": "opentelemetry",
    "opentelemetry-exporter-otlp-proto-http": "opentelemetry",
    "psycopg": "psycopg",
}


def _imported_top_levels() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "opcockpit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_every_runtime_dependency_is_imported() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    deps = [re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0].lower() for d in project["dependencies"]]
    assert "pydantic" in deps and "httpx" in deps  # the parse found the real list
    used = _imported_top_levels()
    unused = [d for d in deps if IMPORT_NAME.get(d, d.replace("-", "_")) not in used]
    assert unused == [], f"declared but never imported by opcockpit: {unused}"
