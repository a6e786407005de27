"""A provider relisted with the very same instance objects (the collector hands the last tuple
back: services/collect._same_or_new) is not re-indexed, its claims and orphans not re-built
(issue 10: every quiet listing did that for thousands of instances), unless what they are judged
by moved with it: its status and shape, or the orphans an eventually consistent list confirmed.
Every step equals a full reconcile."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from opcockpit.domain.models import DbState, Instance, NormalState, ProviderListing
from opcockpit.domain.reconcile import reconcile
from opcockpit.domain.reconcile_inc import IncrementalReconciler
from tests.test_reconcile_inc_provider_unknown import T0, _lease


def test_a_relisting_of_the_same_instances_is_skipped_unless_what_judges_them_moved() -> None:
    db = DbState(
        path="sandbox.db", schema_variant="leonai", read_at=T0,
        leases=(_lease("lease-1", "daytona", "i-1"), _lease("lease-2", "daytona", "i-9")), terminals=(),
        chat_sessions=(),
    )  # fmt: skip
    insts = (
        Instance("daytona", "i-1", "started", NormalState.RUNNING),
        Instance("daytona", "i-2", "started", NormalState.RUNNING, claimed_lease_id="lease-2"),  # an orphan
    )
    first = ProviderListing(
        provider="daytona", kind="daytona", ok=True, instances=insts, listed_at=T0,
        eventually_consistent=True, confirmed_orphans=frozenset(), pause_is_stop=True,
    )  # fmt: skip
    later = T0 + timedelta(seconds=30)
    quiet = replace(first, listed_at=later, requests=1)  # the same tuple: nothing to judge
    confirmed = replace(quiet, confirmed_orphans=frozenset({"i-2"}))  # a GET confirmed the orphan
    failed = replace(confirmed, ok=False, error="HTTP 503")  # stale, the last good instances kept
    recovered = replace(confirmed, listed_at=later + timedelta(seconds=30))
    consistent = replace(recovered, eventually_consistent=False)  # its orphans need no GET now
    reshaped = replace(consistent, pause_is_stop=False)
    inc = IncrementalReconciler()
    orphans_by = inc._orphans_by
    for i, listing in enumerate([first, quiet, confirmed, failed, recovered, consistent, reshaped]):
        now = T0 + timedelta(seconds=40 * i)
        made = inc.step(db, {"daytona": listing}, now)
        assert made == reconcile(db, {"daytona": listing}, now), f"step {i}"
        if listing is quiet:
            assert inc._orphans_by["daytona"] is orphans_by["daytona"]  # not re-built
            assert inc.judged == 0
        orphans_by = dict(inc._orphans_by)
    assert [o.confirmed for o in reconcile(db, {"daytona": confirmed}, T0).orphans] == [True]
