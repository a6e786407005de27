"""cli/pydantic_plugins.py: the CLI gives pydantic a plugin loader that finds none (start-up,
issue 9), validation is unchanged, and a set PYDANTIC_DISABLE_PLUGINS leaves pydantic's own
loader in charge."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cli_support import clean_env

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import opcockpit.cli.main
    from pydantic import ValidationError
    from opcockpit.settings.config import CockpitConfig

    CockpitConfig.model_validate({"sources": {"sandbox_db": "x.db"}, "refresh_s": 3})
    try:
        CockpitConfig.model_validate({"sources": {"sandbox_db": "x.db"}, "refresh_s": "soon"})
        rejected = False
    except ValidationError:
        rejected = True
    loader = sys.modules["pydantic.plugin._loader"]
    print(json.dumps({"metadata": "importlib.metadata" in sys.modules, "rejected": rejected,
                      "stub": not hasattr(loader, "entry_points")}))
    """
)


@pytest.mark.parametrize("env_value", [None, "", "__all__"])
def test_cli_loader_finds_no_plugins_unless_pydantic_is_told(tmp_path: Path, env_value: str | None) -> None:
    env = clean_env(tmp_path / "home")
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    if env_value is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = env_value
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, env=env,
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["rejected"] is True  # validation itself is pydantic's, unchanged
    assert report["stub"] is (env_value is None)
    assert report["metadata"] is (env_value is not None)
