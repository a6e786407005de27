"""Golden outputs: every snapshot format, byte for byte, on one pinned input.

A real sandbox.db in LEON's schema (the demo generator with a pinned clock and seed), listings made
from the instances the generator planned (one provider failed with an earlier listing: stale rows),
a pinned `now`. Refactors move code; these files say the output did not move with it. Regenerate
only for an intended output change: `OPCOCKPIT_GOLDEN_UPDATE=1 pytest tests/test_golden_outputs.py`.
"""

from __future__ import annotations

import asyncio
import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.leon.sandbox_db import read_db_state
from opcockpit.adapters.providers.registry import kind_of
from opcockpit.demo.fleet import generate_fleet
from opcockpit.domain.models import Instance, NormalState, ProviderListing
from opcockpit.domain.reconcile import reconcile
from opcockpit.formats.prometheus import render_prometheus
from opcockpit.formats.serialize import csv_text, dumps_json, iter_ndjson
from opcockpit.formats.table import render_table

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 12, 1, 14, 0, 0, tzinfo=UTC)
STALE = "agentbay"  # its listing failed; the last good one is 90 s old


def _listings(fleet) -> list[ProviderListing]:
    out = []
    for name, kind in sorted(fleet.providers.items()):
        if kind == "local":
            out.append(ProviderListing(name, kind, ok=True, has_api=False, listed_at=NOW))
            continue
        instances = tuple(
            Instance(
                provider=name,
                instance_id=s.instance_id,
                raw_state=s.state,
                state=NormalState(s.state),
                name=s.name,
                labels=dict(s.labels),
                created_at=s.created_at,
                claimed_lease_id=s.lease_id if s.role in ("orphan_replaced", "leak") else None,
            )
            for s in fleet.specs(name)
        )
        stale = name == STALE
        caps = kind_of(kind).capabilities  # the kind facts, as the collector copies them
        out.append(
            ProviderListing(
                name,
                kind,
                ok=not stale,
                instances=instances,
                listed_at=NOW - timedelta(seconds=90 if stale else 1),
                error="listing timed out after 10s" if stale else None,
                eventually_consistent=kind == "daytona",
                confirmed_orphans=frozenset() if kind == "daytona" else None,
                pause_is_stop=caps.pause_is_stop,
                paused_hint=caps.paused_hint,
            )
        )
    return out


@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("golden")
    fleet = generate_fleet(d, leases=120, seed=11, now=NOW - timedelta(minutes=5), runs=False)
    db = asyncio.run(read_db_state(str(fleet.sandbox_db), now=NOW, local_tz=UTC))
    # The DB's path is a temporary directory: pin it so the documents compare.
    db = type(db)(**{**{f: getattr(db, f) for f in db.__dataclass_fields__}, "path": "/srv/leon/sandbox.db"})
    return reconcile(db, _listings(fleet), NOW)


def _table(gt) -> str:
    buf = io.StringIO()
    render_table(gt, buf, width=160)
    return buf.getvalue()


RENDERERS = {
    "snapshot.json": lambda gt: dumps_json(gt) + "\n",
    "snapshot.ndjson": lambda gt: "".join(line + "\n" for line in iter_ndjson(gt)),
    "snapshot.csv": csv_text,
    "snapshot.prom": lambda gt: render_prometheus(gt, now=NOW),
    "snapshot.txt": _table,
}


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_output_is_byte_for_byte_the_golden_file(ground_truth, name: str) -> None:
    text = RENDERERS[name](ground_truth)
    path = GOLDEN / name
    if os.environ.get("OPCOCKPIT_GOLDEN_UPDATE") == "1":
        path.write_text(text, encoding="utf-8", newline="")
    assert ground_truth.rows and ground_truth.orphans  # the input exercises rows and orphans
    assert text == path.read_text(encoding="utf-8")
