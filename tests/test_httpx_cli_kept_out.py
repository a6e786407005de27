"""httpx's command-line client stays out of the cockpit's processes (issues 9 and 10): importing
httpx also imports `httpx._main` (click, pygments, rich.syntax) whenever click is installed, which
uvicorn brings; adapters/providers/lean_httpx.py keeps it out (~60 ms and ~6 MB per process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import sys
import opcockpit.adapters.providers.docker, opcockpit.adapters.providers.e2b
import httpx
assert httpx.AsyncClient and httpx.Timeout  # the library itself is whole
print(sorted(m for m in ("httpx._main", "pygments", "click", "rich.syntax") if m in sys.modules))
import httpx._main  # still importable on purpose
print("explicit import ok")
"""


def test_the_snapshot_without_providers_imports_no_httpx() -> None:
    """Only the adapters that talk HTTP import httpx: the provider registry (a snapshot with no
    provider configured) does not."""
    probe = "import sys, opcockpit.adapters.providers.registry; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_provider_adapters_import_httpx_without_its_cli() -> None:
    pytest.importorskip("click", reason="without click httpx never loads its CLI")
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert out == ["[]", "explicit import ok"]
