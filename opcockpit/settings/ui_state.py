"""The cockpit's own UI state (which columns each view shows), one small JSON file.

Where: `$OPCOCKPIT_UI_STATE`, else `<XDG state dir>/opcockpit/ui-state.json` (platformdirs;
honours XDG_STATE_HOME). It is the operator's preference, not the fleet's: a missing file is an
empty state; a file that does not parse is kept aside as `*.bad` (never silently overwritten) and
the state starts empty; writes go through a temporary file and a rename, so a crash mid-write
never leaves half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["UiState", "ui_state_path"]


def ui_state_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("OPCOCKPIT_UI_STATE"):
        return Path(env["OPCOCKPIT_UI_STATE"]).expanduser()
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "opcockpit" / "ui-state.json"
    from platformdirs import user_state_path  # lazy: only needed here

    return user_state_path("opcockpit", appauthor=False) / "ui-state.json"


class UiState:
    """Per-view UI state: `load_view(view) -> dict`, `save_view(view, data)` (whole file rewritten)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.problem: str | None = None  # why the file was set aside, for one line in the UI
        self._views: dict[str, dict[str, Any]] | None = None

    @classmethod
    def default(cls) -> UiState:
        return cls(ui_state_path())

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._views is not None:
            return self._views
        views: dict[str, dict[str, Any]] = {}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict) or not isinstance(raw.get("views", {}), dict):
                raise ValueError("not an object with 'views'")
            views = {str(k): v for k, v in raw.get("views", {}).items() if isinstance(v, dict)}
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
            self.problem = f"{self.path}: unreadable UI state ({exc}); kept as {self.path.name}.bad"
            with contextlib.suppress(OSError):
                self.path.replace(self.path.with_name(self.path.name + ".bad"))
        self._views = views
        return views

    def load_view(self, view: str) -> dict[str, Any]:
        return dict(self._load().get(view, {}))

    def save_view(self, view: str, data: Mapping[str, Any]) -> None:
        views = self._load()
        views[view] = dict(data)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"views": views}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(self.path)
