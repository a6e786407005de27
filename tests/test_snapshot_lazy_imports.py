"""The snapshot's start-up (issue 9): what a `snapshot` whose fleet did not change never imports,
checked in a fresh interpreter running the real command; and the lazily loaded names still resolve
from their old homes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli_support import REPO, build_leon_db, clean_env

_PROBE = """
import io, json, sys
from opcockpit.cli.main import main
out, sys.stdout = sys.stdout, io.StringIO()
code = main(sys.argv[1:])
sys.stdout = out
print(json.dumps({"code": code, "modules": sorted(m for m in sys.modules if m.startswith("opcockpit"))}))
"""


def _modules_after_snapshot(db: Path, home: Path) -> list[str]:
    env = clean_env(home, OPCOCKPIT_LEDGER=str(home / "ledger.db"))
    args = [sys.executable, "-c", _PROBE, "snapshot", "--format", "json", "--db", str(db)]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.splitlines()[-1])
    assert doc["code"] == 0
    return list(doc["modules"])


def test_an_unchanged_snapshot_builds_no_typed_event(tmp_path: Path) -> None:
    db = build_leon_db(tmp_path / "sandbox.db")
    first = _modules_after_snapshot(db, tmp_path / "home")  # the baseline: stored, no event
    again = _modules_after_snapshot(db, tmp_path / "home")
    assert "opcockpit.domain.events" in again  # the generic part (ledger, history) is used
    assert "opcockpit.domain.event_types" not in again
    assert "opcockpit.domain.event_types" not in first  # a baseline has no events either
    assert "opcockpit.domain.detail_records" not in again  # the thread screen's records


def test_lazy_names_resolve_from_their_old_homes() -> None:
    from opcockpit.domain import event_types, events
    from opcockpit.domain.events import EVENT_TYPES, LeaseConvergenceChanged, LeaseView
    from opcockpit.services.history import ACTION_REQUESTED, ACTION_SETTLED

    assert LeaseConvergenceChanged is event_types.LeaseConvergenceChanged
    assert events.LeaseView is LeaseView and EVENT_TYPES is event_types.EVENT_TYPES
    assert ACTION_REQUESTED == event_types.ActionRequested.TYPE
    assert ACTION_SETTLED == event_types.ActionSettled.TYPE
    assert set(events.__all__) >= set(event_types.__all__)
    from opcockpit.domain import detail_records, models
    from opcockpit.domain.models import CommandOutput, TerminalCommandRecord

    assert CommandOutput is detail_records.CommandOutput
    assert models.TerminalCommandRecord is TerminalCommandRecord is detail_records.TerminalCommandRecord
    assert all(getattr(models, n) is getattr(detail_records, n) for n in detail_records.__all__)
    try:
        models.NoSuchRecord  # noqa: B018
    except AttributeError:
        pass
    else:
        raise AssertionError("an unknown name must stay an AttributeError")
    try:
        events.NoSuchEvent  # noqa: B018
    except AttributeError:
        pass
    else:
        raise AssertionError("an unknown name must stay an AttributeError")
