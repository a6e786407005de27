"""The ledger's picture kept by change equals the full build, and diffing only the changed keys
gives the full diff's events and kept picture (issue 10), on random fleets: rows replaced or kept
(same objects), leases sharing an instance, orphans, providers going down and back."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from opcockpit.domain.events import diff_pictures, picture_of
from opcockpit.domain.models import (
    Convergence,
    GroundTruth,
    GroundTruthRow,
    OrphanRow,
    ProviderHealth,
    ProviderStatus,
)
from opcockpit.domain.picture_inc import PictureTracker, diff_changed

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASES = [f"lease-{i}" for i in range(5)]
IIDS = [None, "i-0", "i-1", "i-2"]
PROVS = ["docker", "e2b"]


def _row(lid: str, prov: str, iid: str | None, conv: Convergence, state: str | None) -> GroundTruthRow:
    return GroundTruthRow(
        lease_id=lid, provider=prov, thread_id=None, thread_ids=(), chat_session_id=None, instance_id=iid,
        desired_state="running", observed_state="running", provider_state=state, convergence=conv,
        reason="r", last_active=None, source="lease", lease_status="active", version=1,
        needs_refresh=False, last_error=None, resources=None, updated_at=T0,
    )  # fmt: skip


def _orphan(prov: str, iid: str, state: str) -> OrphanRow:
    return OrphanRow(
        provider=prov, instance_id=iid, name=None, provider_state=state, raw_state=state, labels={},
        created_at=None, claimed_lease_id=None, claim=None, confirmed=None,
    )  # fmt: skip


step = st.one_of(
    st.tuples(
        st.just("row"), st.sampled_from(LEASES), st.sampled_from(PROVS), st.sampled_from(IIDS),
        st.sampled_from([Convergence.CONVERGED, Convergence.DIVERGED, Convergence.STALE]),
        st.sampled_from([None, "running", "paused"]),
    ),
    st.tuples(st.just("drop"), st.sampled_from(LEASES)),
    st.tuples(st.just("orphan"), st.sampled_from(PROVS), st.sampled_from(IIDS[1:]),
              st.sampled_from(["running", "paused"])),
    st.tuples(st.just("clear"), st.sampled_from(PROVS), st.sampled_from(IIDS[1:])),
    st.tuples(st.just("provider"), st.sampled_from(PROVS), st.sampled_from(list(ProviderStatus))),
    st.tuples(st.just("unlist"), st.sampled_from(PROVS)),  # gone from the config (back: "provider")
    st.tuples(st.just("same")),
)  # fmt: skip


def frames(steps: list[tuple]) -> Iterator[GroundTruth]:
    """The ground truth after each step (rows, orphans and providers changed as the step says)."""
    rows: dict[str, GroundTruthRow] = {}
    orphans: dict[str, OrphanRow] = {}
    health = {p: ProviderStatus.OK for p in PROVS}
    for i, s in enumerate(steps):
        if s[0] == "row":
            rows[s[1]] = _row(*s[1:])
        elif s[0] == "drop":
            rows.pop(s[1], None)
        elif s[0] == "orphan":
            orphans[f"{s[1]}/{s[2]}"] = _orphan(s[1], s[2], s[3])
        elif s[0] == "clear":
            orphans.pop(f"{s[1]}/{s[2]}", None)
        elif s[0] == "provider":
            health[s[1]] = s[2]
        elif s[0] == "unlist":
            health.pop(s[1], None)
        else:
            rows = {k: replace(r) for k, r in rows.items()}
        yield GroundTruth(
            generated_at=T0 + timedelta(seconds=i),
            providers=tuple(
                ProviderHealth(name=p, kind=p, status=v, error=None, listed_at=None, instance_count=None)
                for p, v in sorted(health.items())
            ),
            rows=tuple(rows[k] for k in sorted(rows)),
            orphans=tuple(orphans[k] for k in sorted(orphans)),
        )


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=40))
def test_tracked_picture_and_partial_diff_equal_the_full_ones(steps):
    tracker = PictureTracker()
    kept: dict | None = None
    for gt in frames(steps):
        upd = tracker.update(gt)
        full = picture_of(gt)
        if upd.exact:  # shared instance: the caller builds picture_of in full
            assert tracker.picture == full
        events, keep = diff_pictures(kept, full, gt.generated_at)
        if kept is not None and upd.exact:
            part = diff_changed(kept, full, upd.changed, gt.generated_at)
            if part is not None:
                p_events, sub = part
                assert p_events == events
                mine = dict(kept)
                for k, v in sub.items():
                    if v is None:
                        mine.pop(k, None)
                    else:
                        mine[k] = v
                assert mine == keep
        kept = keep


class _Frames:
    """A collector that returns prepared ground truths, one per refresh (what RecordingCollector wraps)."""

    def __init__(self, frames: list[GroundTruth]) -> None:
        self.frames = frames

    async def refresh(self) -> GroundTruth:
        return self.frames.pop(0)

    async def aclose(self) -> None:
        return None


async def test_a_failed_append_loses_nothing_when_only_changed_keys_are_diffed(tmp_path):
    """After a ledger failure the next round diffs in full against what was written, so a change
    seen while the ledger was locked is recorded once it is writable again (real SQLite ledger)."""
    import sqlite3

    from opcockpit.adapters.ledger.events import EventLog
    from opcockpit.domain.events import EventQuery
    from opcockpit.services.history import RecordingCollector

    health = (ProviderHealth(name="e2b", kind="e2b", status=ProviderStatus.OK, error=None,
                             listed_at=None, instance_count=None),)  # fmt: skip
    a = _row("lease-0", "e2b", "i-0", Convergence.CONVERGED, "running")
    b = _row("lease-1", "e2b", "i-1", Convergence.CONVERGED, "running")
    a2 = replace(a, convergence=Convergence.DIVERGED, provider_state="paused")
    b2 = replace(b, convergence=Convergence.DIVERGED, provider_state="paused")

    def gt(*rows: GroundTruthRow) -> GroundTruth:
        return GroundTruth(generated_at=T0, providers=health, rows=rows, orphans=())

    frames = [gt(a, b), gt(a2, b), gt(a2, b), gt(a2, b2)]
    path = tmp_path / "ledger.db"
    rec = RecordingCollector(_Frames(frames), EventLog(path))
    try:
        await rec.refresh()  # baseline
        lock = sqlite3.connect(path)
        lock.execute("BEGIN EXCLUSIVE")
        await rec.refresh()  # lease-0 diverges while the ledger is locked
        assert rec.ledger_error
        lock.rollback()
        lock.close()
        await rec.refresh()  # the same rows: the change not written yet is written now
        await rec.refresh()  # then lease-1, diffed by key
        assert rec.ledger_error is None
        got = [(e.type, e.lease_id) for e in rec.events.query(EventQuery()) if e.type.startswith("lease")]
        assert sorted(got) == [("lease.convergence_changed", f"lease-{i}") for i in (0, 1)]
    finally:
        await rec.aclose()
