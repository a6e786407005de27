"""The speed-ups must not change results: each fast path against the plain one it replaces."""

from __future__ import annotations

import dataclasses
import gc
import json
import random
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from opcockpit.adapters.leon import sandbox_db
from opcockpit.demo.fleet_sim import _FastClock
from opcockpit.demo.ids import Clock
from opcockpit.domain.gcpause import gc_paused
from opcockpit.domain.models import (
    ChatSessionRecord,
    Convergence,
    GroundTruthRow,
    LeaseRecord,
    NormalState,
    Resources,
    ResourceSnapshotRecord,
    TerminalRecord,
)
from opcockpit.domain.reconcile import reconcile
from opcockpit.formats import serialize
from tests.test_snapshot_json_values import same_values

NOW = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize("offset_s", [0.0, 8 * 3600.0, -(3 * 3600.0 + 1800.0), 5 * 3600.0 + 2700.0])
def test_fast_clock_formats_exactly_like_clock(offset_s: float) -> None:
    plain, fast = Clock(NOW), _FastClock(NOW)
    plain._offset = fast._offset = offset_s  # as if the machine were in another zone
    rng = random.Random(offset_s)
    base = NOW.timestamp()
    values = [base - rng.uniform(0, 40 * 86400) for _ in range(20_000)]
    values += [float(int(base) - rng.randrange(10**7)) for _ in range(2_000)]  # whole seconds
    values += [base, base - 0.5, 0.0, 86399.999999, 1e-7]
    for ts in values:
        assert fast.local(ts) == plain.local(ts), ts
        assert fast.utc_z(ts) == plain.utc_z(ts), ts
        assert fast.utc_sql(ts) == plain.utc_sql(ts), ts


def test_gc_pause_nests_restores_and_respects_a_disabled_collector() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()
    with pytest.raises(KeyError), gc_paused():
        raise KeyError("x")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # the caller's own gc.disable() is left alone
    finally:
        gc.enable()


def test_gc_pause_overlapping_threads_end_enabled() -> None:
    inside = threading.Barrier(2)
    leave = threading.Event()

    def worker() -> None:
        with gc_paused():
            inside.wait()
            leave.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    with gc_paused():
        inside.wait()
    assert not gc.isenabled()  # the worker is still inside its pause
    leave.set()
    t.join()
    assert gc.isenabled()


@pytest.mark.parametrize(
    ("cls", "cols"),
    [
        (LeaseRecord, sandbox_db._LEASE_COLS),
        (TerminalRecord, sandbox_db._TERMINAL_COLS),
        (ChatSessionRecord, sandbox_db._SESSION_COLS),
        (ResourceSnapshotRecord, sandbox_db._SNAPSHOT_COLS),
    ],
)
def test_reader_records_are_genuine_frozen_dataclasses(cls: type, cols: tuple[str, ...]) -> None:
    assert tuple(f.name for f in dataclasses.fields(cls)) == cols
    new = {
        LeaseRecord: sandbox_db._new_lease,
        TerminalRecord: sandbox_db._new_terminal,
        ChatSessionRecord: sandbox_db._new_session,
        ResourceSnapshotRecord: sandbox_db._new_snapshot,
    }[cls]
    args = [f"v{i}" for i in range(len(cols))]
    made = new(*args)
    assert type(made) is cls and made == cls(*args) and hash(made) == hash(cls(*args))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, cols[0], "edited")


# --------------------------------------------------------------------------- direct JSON rows


def _odd_rows() -> list[GroundTruthRow]:
    """Rows with every value shape the template must encode the way json.dumps does."""
    t = datetime(2026, 3, 20, 4, 0, 1, 250000, tzinfo=UTC)
    res = Resources(
        cpu_used=float("nan"),
        memory_used_mb=float("inf"),
        memory_total_mb=-float("inf"),
        disk_used_gb=3,  # an int where a float is typed
        disk_total_gb=1e-7,
        probe_error='quote " backslash \\ newline \n tab \t nul \x00 ü 漢 \u2028',
        collected_at=t,
        cpu_count=2.0,
        memory_mb=None,
    )
    base = GroundTruthRow(
        lease_id="lease-1",
        provider="docker",
        thread_id=None,
        thread_ids=(),
        chat_session_id=None,
        instance_id=None,
        desired_state="running",
        observed_state="detached",
        provider_state=None,
        convergence=Convergence.UNBOUND,
        reason="never bound",
        last_active=None,
        source="lease",
        lease_status=None,
        version=0,
        needs_refresh=False,
        last_error=None,
        resources=None,
        updated_at=None,
    )
    return [
        base,
        dataclasses.replace(
            base,
            lease_id="lease-ü\x7f",
            thread_id="t1",
            thread_ids=("t1", 't2 "x"'),
            chat_session_id="sess-1",
            instance_id="leon-1",
            provider_state=NormalState.PAUSED,
            convergence=Convergence.DIVERGED,
            reason="desired running, provider says paused (E2B auto-pause?) — 漢",
            last_active=t,
            lease_status="active",
            version=7,
            needs_refresh=True,
            last_error="boom\nline 2",
            resources=res,
            updated_at=datetime(2026, 3, 20, 4, 0, tzinfo=UTC),
            stale_age_s=12.5,
        ),
        # Raw values LEON may have stored with an unexpected type pass through as json would.
        dataclasses.replace(base, desired_state=5, lease_status=1.5, version=True, stale_age_s=3),  # type: ignore[arg-type]
        dataclasses.replace(base, **_OTHER_TYPES),
    ]


# Every text field of a row with a value of another type: each takes json's path, not the str one.
_OTHER_TYPES: dict[str, object] = {
    "lease_id": 1, "provider": 2.5, "thread_id": 3, "chat_session_id": False, "instance_id": 4,
    "observed_state": None, "reason": 6, "source": 7, "lease_status": 8, "last_error": 9,
}  # fmt: skip


def test_json_rows_hold_to_dicts_values() -> None:
    from tests.test_reconcile import random_fleet

    state, listings = random_fleet(random.Random(11), 400)
    gt = reconcile(state, listings, NOW)
    odd = dataclasses.replace(gt, rows=gt.rows + tuple(_odd_rows()), db_path="/tmp/ü/sandbox.db")
    for g in (gt, odd, dataclasses.replace(gt, rows=(), orphans=(), providers=())):
        indented = json.dumps(json.loads(same_values(g)), indent=2, ensure_ascii=False)
        assert serialize.dumps_json(g, indent=2) == indented


def test_row_copy_equals_dataclasses_replace() -> None:
    from opcockpit.domain.reconcile import _replace_row

    row = _odd_rows()[1]
    made = _replace_row(row, reason="x", convergence=Convergence.DIVERGED)
    plain = dataclasses.replace(row, reason="x", convergence=Convergence.DIVERGED)
    assert made == plain and type(made) is GroundTruthRow and hash(made) == hash(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.reason = "edited"  # type: ignore[misc]


def _provider_sandboxes_per_row(gt: Any) -> tuple[Any, ...]:
    """provider_sandboxes as it was: one dict update per row (the reference for the C fold)."""
    from opcockpit.domain.runs import ProviderSandboxes

    by_conv: dict[str, dict[str, int]] = {}
    by_state: dict[str, dict[str, int]] = {}
    leases: dict[str, int] = {}
    for r in gt.rows:
        c = by_conv.setdefault(r.provider, {})
        c[r.convergence.value] = c.get(r.convergence.value, 0) + 1
        s = by_state.setdefault(r.provider, {})
        ps = r.provider_state or "-"
        s[ps] = s.get(ps, 0) + 1
        leases[r.provider] = leases.get(r.provider, 0) + 1
    orphans: dict[str, int] = {}
    for o in gt.orphans:
        orphans[o.provider] = orphans.get(o.provider, 0) + 1
    return tuple(
        ProviderSandboxes(
            name=p.name, kind=p.kind, status=p.status.value, error=p.error, age_s=p.age_s,
            leases=leases.get(p.name, 0), orphans=orphans.get(p.name, 0),
            by_convergence=dict(sorted(by_conv.get(p.name, {}).items())),
            by_provider_state=dict(sorted(by_state.get(p.name, {}).items())),
        )
        for p in sorted(gt.providers, key=lambda p: p.name)
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(8))
def test_provider_sandboxes_counts_as_the_per_row_fold(seed: int) -> None:
    from opcockpit.domain.runs import provider_sandboxes
    from opcockpit.tui.synthetic import make_ground_truth

    gt = make_ground_truth(300, seed=seed, orphans=seed * 3)
    rng = random.Random(seed)
    rows = [  # '' and None both count as "-"; a state as str or as NormalState is one key
        dataclasses.replace(
            r, provider_state=rng.choice([None, "", r.provider_state, NormalState.RUNNING, "running"])
        )
        for r in gt.rows
    ]
    gt = dataclasses.replace(gt, rows=tuple(rows))
    assert provider_sandboxes(gt) == _provider_sandboxes_per_row(gt)
