"""The headless core must never import Textual (harlequin's test_import_hygiene, adapted).

Runs in a fresh interpreter: walks every module under the headless packages (so new modules are
covered without editing this test), imports them, then runs the real snapshot code path on a
real LEON-schema DB in every output format, and fails if `textual` got imported on the way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.cli_support import REPO, build_leon_db

HEADLESS_PACKAGES = ("opcockpit.core", "opcockpit.sources", "opcockpit.providers", "opcockpit.doubles")
HEADLESS_MODULES = ("opcockpit.config", "opcockpit.timeutil", "opcockpit.cli.main", "opcockpit.cli.snapshot",
                    "opcockpit.cli.config_cmd", "opcockpit.cli.common")  # fmt: skip

SCRIPT = textwrap.dedent(
    """
    import contextlib, importlib, io, json, pkgutil, sys

    packages, modules, db = json.loads(sys.argv[1])
    imported = []
    for pkg_name in packages:
        pkg = importlib.import_module(pkg_name)
        imported.append(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, pkg_name + "."):
            importlib.import_module(info.name)
            imported.append(info.name)
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # optional module not written yet (e.g. timeutil)
        imported.append(name)

    from opcockpit.cli.main import main
    codes = {}
    for fmt in ("json", "ndjson", "csv", "table"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            codes[fmt] = main(["snapshot", "--db", db, "--format", fmt])
    bad = sorted(m for m in sys.modules if m == "textual" or m.startswith("textual."))
    print(json.dumps({"imported": imported, "codes": codes, "textual": bad}))
    """
)


def test_headless_core_never_imports_textual(tmp_path: Path) -> None:
    db = build_leon_db(tmp_path / "sandbox.db")
    arg = json.dumps([HEADLESS_PACKAGES, HEADLESS_MODULES, str(db)])
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, arg],
        capture_output=True,
        text=True,
        cwd=str(REPO),
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["textual"] == [], f"textual imported by the headless path: {result['textual'][:5]}"
    assert result["codes"] == {"json": 0, "ndjson": 0, "csv": 0, "table": 0}, proc.stderr
    # the walk really covered the packages (a test that imports nothing proves nothing)
    assert "opcockpit.core.collect" in result["imported"]
    assert "opcockpit.providers.registry" in result["imported"]
    assert "opcockpit.config" in result["imported"]
