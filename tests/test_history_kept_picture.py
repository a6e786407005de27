"""RecordingCollector keeps the last recorded picture as its differences from the tracker's
(picture_inc.KeptPicture, issue 10, RSS): on random fleets, with the ledger locked now and then,
what it keeps and the events it appends equal the full diff's (diff_pictures of every picture
against the last one written), with a real SQLite ledger."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from opcockpit.adapters.ledger.events import EventLog
from opcockpit.domain.events import Event, EventQuery, diff_pictures, picture_of
from opcockpit.domain.models import GroundTruth, GroundTruthRow, ProviderHealth, ProviderStatus
from opcockpit.services.history import RecordingCollector
from tests.test_picture_inc import T0, _row, frames, step


class _Frames:
    """A collector that returns prepared ground truths, one per refresh."""

    def __init__(self) -> None:
        self.next: GroundTruth | None = None

    async def refresh(self) -> GroundTruth:
        assert self.next is not None
        return self.next

    async def aclose(self) -> None:
        return None


def _kept(rec: RecordingCollector) -> dict | None:
    return rec._kept.full() if rec._kept is not None else rec._picture


def _key(e: Event) -> tuple:
    return (e.type, e.lease_id or "", e.instance_id or "", e.provider or "", e.observed_at)


async def _run(path: Path, frames: list[GroundTruth], locked: list[bool]) -> None:
    inner = _Frames()
    rec = RecordingCollector(inner, EventLog(path))
    want: dict | None = None
    want_events: list[tuple] = []
    try:
        for gt, lock_it in zip(frames, locked, strict=True):
            inner.next = gt
            lock = None
            if lock_it:
                # the log is open (the baseline was written): a locked ledger fails at once
                rec.events._conn.conn.execute("PRAGMA busy_timeout=0")
                lock = sqlite3.connect(path)
                lock.execute("BEGIN EXCLUSIVE")
            try:
                await rec.refresh()
            finally:
                if lock is not None:
                    lock.rollback()
                    lock.close()
            if rec.ledger_error is None:  # written: the full diff's events and picture
                events, keep = diff_pictures(want, picture_of(gt), gt.generated_at)
                want, want_events = keep, want_events + [_key(e) for e in events]
            assert _kept(rec) == want
        got = [
            _key(e) for e in rec.events.query(EventQuery(limit=100_000)) if not e.type.startswith("action")
        ]
        assert sorted(got) == sorted(want_events)
    finally:
        await rec.aclose()


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(step, min_size=1, max_size=25),
    locks=st.lists(st.sampled_from([False, False, False, True]), min_size=25, max_size=25),
)
def test_the_kept_picture_and_events_equal_the_full_diffs(steps: list[tuple], locks: list[bool]) -> None:
    gts = list(frames(steps))
    locked = [False, *locks[1 : len(gts)]]  # the baseline is written
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(Path(tmp) / "ledger.db", gts, locked))


def test_differences_only_where_the_recorded_picture_is_not_the_trackers(tmp_path: Path) -> None:
    """A quiet fleet keeps no entry of its own; a stale lease keeps its last recorded entry only."""
    from opcockpit.domain.models import Convergence

    a = _row("lease-0", "docker", "i-0", Convergence.CONVERGED, "running")
    b = _row("lease-1", "docker", "i-1", Convergence.CONVERGED, "running")
    health = (ProviderHealth(name="docker", kind="docker", status=ProviderStatus.OK, error=None,
                             listed_at=None, instance_count=None),)  # fmt: skip

    def gt(*rows: GroundTruthRow) -> GroundTruth:
        return GroundTruth(generated_at=T0, providers=health, rows=rows, orphans=())

    async def go() -> None:
        inner = _Frames()
        rec = RecordingCollector(inner, EventLog(tmp_path / "ledger.db"))
        try:
            for frame in (gt(a, b), gt(a, b), gt(replace(a, convergence=Convergence.STALE), b)):
                inner.next = frame
                await rec.refresh()
                assert rec._picture is None and rec._kept is not None
            assert len(rec._kept) == 1 and rec._kept.get("L|lease-0")[0] == "converged"  # type: ignore[index]
        finally:
            await rec.aclose()

    asyncio.run(go())
