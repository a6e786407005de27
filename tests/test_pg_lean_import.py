# ruff: noqa: F811  (pytest fixtures imported by name)
"""`adapters/lean_psycopg` (issue 12): psycopg imported without importlib.metadata, same versions.

Run in a fresh interpreter each: what is imported depends on what the process imported before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.fixtures.postgres import pg_server, pg_url  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent

LEAN = """
import json, sys
from opcockpit.adapters.lean_psycopg import psycopg
import psycopg.version
lean = {"metadata": "importlib.metadata" in sys.modules, "psycopg": psycopg.version.__version__,
        "binary": getattr(getattr(sys.modules.get("psycopg_binary"), "version", None), "__version__", None),
        "impl": psycopg.pq.__impl__}
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    lean["one"] = conn.execute("SELECT 1").fetchone()[0]
from importlib import metadata
real = {"psycopg": metadata.version("psycopg")}
try:
    real["binary"] = metadata.version("psycopg-binary")
except metadata.PackageNotFoundError:
    real["binary"] = None
print(json.dumps({"lean": lean, "real": real}))
"""


def _run(script: str, *args: str) -> dict:
    cmd = [sys.executable, "-c", script, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_lean_import_skips_importlib_metadata_and_keeps_the_versions(pg_url: str) -> None:
    out = _run(LEAN, pg_url)
    lean, real = out["lean"], out["real"]
    assert lean["metadata"] is False  # the point: no importlib.metadata (email, zipfile, path scan)
    assert lean["psycopg"] == real["psycopg"]  # the very versions psycopg would have read
    if lean["impl"] == "binary":
        assert lean["binary"] == real["binary"]
    assert lean["one"] == 1  # and psycopg works


def test_lean_import_after_psycopg_is_psycopg() -> None:
    out = _run(
        "import json, psycopg\nfrom opcockpit.adapters.lean_psycopg import psycopg as lean\n"
        "print(json.dumps({'same': lean is psycopg}))"
    )
    assert out == {"same": True}
