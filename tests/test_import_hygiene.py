"""The headless core must never import Textual (harlequin's test_import_hygiene, adapted).

Runs in a fresh interpreter: walks every module under the headless packages (so new modules are
covered without editing this test), imports them and the named CLI modules (a module that is
missing or renamed fails the test: nothing here is optional), then runs the real headless code
paths on a real LEON-schema DB: snapshot in every output format, `snapshot --check`,
`snapshot --format prometheus` and `demo --snapshot` (generated fleet, provider doubles). It
fails if `textual` got imported on the way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.cli_support import REPO, build_leon_db

HEADLESS_PACKAGES = ("opcockpit.domain", "opcockpit.ports", "opcockpit.settings", "opcockpit.services",
                     "opcockpit.adapters", "opcockpit.formats", "opcockpit.doubles", "opcockpit.demo",
                     "opcockpit.cli")  # fmt: skip
HEADLESS_MODULES = ("opcockpit.settings.config", "opcockpit.domain.timeutil", "opcockpit.cli.main",
                    "opcockpit.cli.snapshot", "opcockpit.cli.config_cmd", "opcockpit.cli.common",
                    "opcockpit.cli.ops",
                    "opcockpit.cli.alerts_cli", "opcockpit.cli.starter")  # fmt: skip
SKIP = ("opcockpit.cli.__main__",)  # runs the CLI (sys.exit) on import; its import is cli.main

SCRIPT = textwrap.dedent(
    """
    import contextlib, importlib, io, json, pkgutil, sys

    packages, modules, skip, db = json.loads(sys.argv[1])
    imported = []
    for pkg_name in packages:
        pkg = importlib.import_module(pkg_name)
        imported.append(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, pkg_name + "."):
            if info.name in skip:
                continue
            importlib.import_module(info.name)
            imported.append(info.name)
    for name in modules:
        importlib.import_module(name)  # ModuleNotFoundError fails the run: nothing is optional
        imported.append(name)

    from opcockpit.cli.main import main

    def run(*argv):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(list(argv))
        return code, out.getvalue()

    codes, outputs = {}, {}
    for fmt in ("json", "ndjson", "csv", "table"):
        codes[fmt], _ = run("snapshot", "--db", db, "--format", fmt)
    codes["check"], outputs["check"] = run("snapshot", "--db", db, "--format", "json", "--check")
    codes["prometheus"], outputs["prometheus"] = run("snapshot", "--db", db, "--format", "prometheus")
    codes["demo"], outputs["demo"] = run("demo", "--snapshot", "--leases", "12", "--format", "json")
    bad = sorted(m for m in sys.modules if m == "textual" or m.startswith("textual."))
    print(json.dumps({"imported": imported, "codes": codes, "outputs": outputs, "textual": bad}))
    """
)


def _module_files(package: str) -> set[str]:
    """Every module the walk must reach, from the files on disk."""
    root = REPO / Path(*package.split("."))
    names = set()
    for path in root.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_headless_core_never_imports_textual(tmp_path: Path) -> None:
    db = build_leon_db(tmp_path / "sandbox.db")
    arg = json.dumps([HEADLESS_PACKAGES, HEADLESS_MODULES, SKIP, str(db)])
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, arg],
        capture_output=True,
        text=True,
        cwd=str(REPO),
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "PYTHONPATH": str(REPO),
            "OPCOCKPIT_LEDGER": str(tmp_path / "ledger.db"),
        },
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["textual"] == [], f"textual imported by the headless path: {result['textual'][:5]}"
    codes = result["codes"]
    assert {k: codes[k] for k in ("json", "ndjson", "csv", "table", "prometheus", "demo")} == dict.fromkeys(
        ("json", "ndjson", "csv", "table", "prometheus", "demo"), 0
    ), proc.stderr
    assert codes["check"] in (0, 1), proc.stderr  # 1 = an unmuted alert fires: still a full run
    # the commands really ran (a run that printed nothing proves nothing)
    check = json.loads(result["outputs"]["check"])
    assert check["check"]["exit_code"] == codes["check"] and len(check["rows"]) == 4
    assert "# TYPE opcockpit_provider_up gauge" in result["outputs"]["prometheus"]
    assert len(json.loads(result["outputs"]["demo"])["rows"]) == 12
    # the walk covered every module on disk, and the named ones
    imported = set(result["imported"])
    for package in HEADLESS_PACKAGES:
        missing = _module_files(package) - imported - set(SKIP)
        assert not missing, f"not imported: {sorted(missing)}"
    assert imported >= set(HEADLESS_MODULES) | {"opcockpit.demo.runtime", "opcockpit.formats.prometheus"}
