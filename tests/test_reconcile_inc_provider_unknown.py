"""The incremental reconciler with a lease whose provider_name was unusable (the reader's
lease_problems): it counts under no provider, and judging it again or dropping it keeps every
other provider's count right (issue 10 removed the lease -> provider map the count used).
Pure: DbState and listings in, compared with a full reconcile after every step."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from opcockpit.domain.models import DbState, Instance, LeaseRecord, NormalState, ProviderListing
from opcockpit.domain.reconcile import reconcile
from opcockpit.domain.reconcile_inc import IncrementalReconciler

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _lease(lid: str, provider: str, iid: str | None) -> LeaseRecord:
    return LeaseRecord(
        lease_id=lid, provider_name=provider, current_instance_id=iid, desired_state="running",
        observed_state="running", status="active", version=1, needs_refresh=False, last_error=None,
        instance_created_at=None, observed_at=None, refresh_hint_at=None, created_at=T0, updated_at=T0,
    )  # fmt: skip


def _db(leases: list[LeaseRecord], problems: dict[str, tuple[str, ...]]) -> DbState:
    return DbState(
        path="sandbox.db", schema_variant="leonai", read_at=T0, leases=tuple(leases), terminals=(),
        chat_sessions=(), lease_problems=problems,
    )  # fmt: skip


def _listing(iids: list[str]) -> ProviderListing:
    insts = tuple(Instance("e2b", i, "running", NormalState.RUNNING) for i in iids)
    return ProviderListing(provider="e2b", kind="e2b", ok=True, instances=insts, listed_at=T0)


def test_an_uncounted_lease_judged_again_and_dropped_equals_full() -> None:
    good = [_lease(f"lease-{i}", "e2b", f"i-{i}") for i in range(3)]
    odd = _lease("lease-odd", "", "i-9")
    unknown = {"lease-odd": ("provider_name NULL",)}
    steps = [
        (_db([*good, odd], unknown), [_listing(["i-0", "i-1", "i-2", "i-9"])]),
        (_db([*good, replace(odd, version=2)], unknown), [_listing(["i-0", "i-1", "i-9"])]),
        (_db([good[0], replace(odd, provider_name="e2b")], {}), [_listing(["i-0", "i-9"])]),
        (_db([good[0]], {}), [_listing(["i-0"])]),
        (_db([], {}), []),
    ]
    inc = IncrementalReconciler()
    for i, (db, listings) in enumerate(steps):
        now = T0 + timedelta(seconds=i)
        assert inc.step(db, listings, now) == reconcile(db, listings, now), f"step {i}"
