"""A stale provider's restamped rows share one reason string when their reasons are the same
(issue 10, RSS: a new str per row per tick, in every generation of rows held), and still equal a
full reconcile. Pure: DbState and listings in."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from opcockpit.domain.reconcile import reconcile
from opcockpit.domain.reconcile_inc import IncrementalReconciler
from tests.test_reconcile_inc_provider_unknown import T0, _db, _lease, _listing


def test_restamped_rows_share_their_reason_and_equal_full() -> None:
    db = _db([_lease(f"lease-{i}", "e2b", f"i-{i}") for i in range(5)], {})
    ok = _listing([f"i-{i}" for i in range(5)])
    failed = replace(ok, ok=False, error="listing timed out")
    inc = IncrementalReconciler()
    inc.step(db, [ok], T0)
    for seconds in (10, 200, 4000):
        now = T0 + timedelta(seconds=seconds)
        gt = inc.step(db, [failed], now)
        assert gt == reconcile(db, [failed], now)
        assert {r.convergence.value for r in gt.rows} == {"stale"}
        if seconds > 10:  # restamped, not judged again
            assert inc.judged == 0
            assert len({id(r.reason) for r in gt.rows}) == 1
