"""diff_ground_truth / diverged_time over real LEON-schema DBs, the real reader and reconcile."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from opcockpit.domain.events import (
    EVENT_TYPES,
    LeaseConvergenceChanged,
    LeaseView,
    diff_ground_truth,
    diff_pictures,
    diverged_time,
    event_from_dict,
    picture_of,
)
from tests.alerts_support import T0, edit_db, ground_truth, inst, listing, naive, sandbox_db
from tests.fixtures.leon_db import add_lease, add_terminal

L1 = "lease-000000000001"
L2 = "lease-000000000002"


def _db(tmp_path: Path) -> Path:
    def build(conn) -> None:  # type: ignore[no-untyped-def]
        add_lease(conn, L1, "e2b", current_instance_id="sbx-1", desired_state="running",
                  observed_state="running", created_at=naive(T0 - timedelta(hours=1)))  # fmt: skip
        add_terminal(conn, "term-000000000001", "m_t-1", L1, pointer=True)
        add_lease(conn, L2, "e2b", current_instance_id="sbx-2", desired_state="running",
                  observed_state="running", created_at=naive(T0 - timedelta(hours=1)))  # fmt: skip

    return sandbox_db(tmp_path / "sandbox.db", build)


def _gt(db: Path, at, states: dict[str, str], *, ok: bool = True, extra=()):  # type: ignore[no-untyped-def]
    insts = [inst("e2b", iid, s) for iid, s in states.items()] + list(extra)
    lst = listing("e2b", "e2b", insts, ok=ok, listed_at=T0 if not ok else at,
                  error=None if ok else "connect timeout")  # fmt: skip
    return ground_truth(db, [lst], at)


def test_first_picture_is_a_baseline_without_events(tmp_path: Path) -> None:
    db = _db(tmp_path)
    gt = _gt(db, T0, {"sbx-1": "running", "sbx-2": "running"})
    assert diff_ground_truth(None, gt) == []
    assert diff_ground_truth(gt, gt) == []


def test_pause_at_provider_gives_state_and_convergence_events(tmp_path: Path) -> None:
    db = _db(tmp_path)
    a = _gt(db, T0, {"sbx-1": "running", "sbx-2": "running"})
    b = _gt(db, T0 + timedelta(seconds=2), {"sbx-1": "paused", "sbx-2": "running"})
    events = diff_ground_truth(a, b)
    types = sorted(e.type for e in events)
    assert types == ["instance.state_changed", "lease.convergence_changed"]
    conv = next(e for e in events if isinstance(e, LeaseConvergenceChanged))
    assert conv.lease_id == L1 and conv.thread_id == "m_t-1" and conv.provider == "e2b"
    assert conv.before.convergence == "converged" and conv.after.convergence == "diverged"
    assert conv.source.value == "provider_list" and conv.observed_at == b.generated_at
    st = next(e for e in events if e.type == "instance.state_changed")
    assert (st.before.state, st.after.state, st.instance_id) == ("running", "paused", "sbx-1")


def test_failed_listing_is_one_event_not_a_flood(tmp_path: Path) -> None:
    db = _db(tmp_path)
    a = _gt(db, T0, {"sbx-1": "running", "sbx-2": "running"}, extra=[inst("e2b", "stray")])
    down = _gt(db, T0 + timedelta(seconds=2), {"sbx-1": "running", "sbx-2": "running"}, ok=False)
    ev, kept = diff_pictures(picture_of(a), picture_of(down), down.generated_at)
    assert [e.type for e in ev] == ["provider.listing_failed"]
    assert ev[0].provider == "e2b" and ev[0].after.error == "connect timeout"
    # the stray instance and its orphan are carried, not cleared; rows keep their verdicts
    assert kept["O|e2b|stray"] == picture_of(a)["O|e2b|stray"]
    up = _gt(db, T0 + timedelta(seconds=4), {"sbx-1": "running", "sbx-2": "running"})
    ev2, _ = diff_pictures(kept, picture_of(up), up.generated_at)
    assert sorted(e.type for e in ev2) == [
        "instance.vanished",
        "orphan.cleared",
        "provider.listing_recovered",
    ]


def test_orphan_appears_and_deleted_lease_row(tmp_path: Path) -> None:
    db = _db(tmp_path)
    a = _gt(db, T0, {"sbx-1": "running", "sbx-2": "running"})
    edit_db(db, lambda c: c.execute("DELETE FROM sandbox_leases WHERE lease_id = ?", (L2,)))
    b = _gt(db, T0 + timedelta(seconds=2), {"sbx-1": "running", "sbx-2": "running"})
    events = diff_ground_truth(a, b)
    gone = [e for e in events if e.type == "lease.convergence_changed"]
    assert len(gone) == 1 and gone[0].lease_id == L2 and gone[0].after is None
    assert gone[0].source.value == "sandbox_db"
    assert [e.instance_id for e in events if e.type == "orphan.appeared"] == ["sbx-2"]


def test_diverged_time_sums_episodes_and_counts_open_one(tmp_path: Path) -> None:
    def change(at_s: float, before: str, after: str) -> LeaseConvergenceChanged:
        v = lambda c: LeaseView(convergence=c, desired_state="running", observed_state="running")  # noqa: E731
        return LeaseConvergenceChanged(observed_at=T0 + timedelta(seconds=at_s), source="provider_list",
                                       lease_id=L1, before=v(before), after=v(after))  # fmt: skip

    evs = [change(0, "converged", "diverged"), change(60, "diverged", "converged"),
           change(100, "converged", "diverged")]  # fmt: skip
    got = diverged_time(evs, T0 + timedelta(seconds=130))
    assert got == {L1: timedelta(seconds=90)}
    # a window opening while diverged counts from the window's start
    assert diverged_time(evs[1:], T0 + timedelta(seconds=130), since=T0 + timedelta(seconds=30)) == {
        L1: timedelta(seconds=60)
    }


def test_every_type_round_trips_through_its_dict() -> None:
    for name, cls in EVENT_TYPES.items():
        e = cls(observed_at=T0, source="cockpit", lease_id="x")
        assert e.type == name
        back = event_from_dict(e.as_dict())
        assert type(back) is cls and back == e
    unknown = event_from_dict({"type": "future.thing", "observed_at": T0.isoformat(), "source": "cockpit"})
    assert unknown.type == "future.thing"
