"""docs/events.md and docs/events/*.schema.json are generated from the models: stale fails."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jsonschema

from opcockpit.domain.events import EVENT_TYPES, LeaseConvergenceChanged, LeaseView
from tests.alerts_support import T0

ROOT = Path(__file__).resolve().parent.parent


def _gen():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "gen_event_catalog", ROOT / "tools" / "gen_event_catalog.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_catalog_is_up_to_date() -> None:
    stale = _gen().stale()
    assert stale == [], f"regenerate with python tools/gen_event_catalog.py: {stale}"


def test_every_type_has_a_schema_that_validates_its_events() -> None:
    for name in EVENT_TYPES:
        assert f"`{name}`" in (ROOT / "docs" / "events.md").read_text()
    schema = json.loads((ROOT / "docs" / "events" / "lease.convergence_changed.schema.json").read_text())
    v = LeaseView(convergence="diverged", desired_state="running", observed_state="running")
    good = LeaseConvergenceChanged(observed_at=T0, source="provider_list", lease_id="l", after=v).as_dict()
    jsonschema.validate(good, schema)
    bad = dict(good, type="instance.appeared")
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("a wrong type name must not validate")
