"""The incremental reconciler finds a provider's leases as a range of its sorted rows (issue 10,
RSS: no set of lease ids per provider): with two providers whose names prefix one another, one
going stale (restamped every step), its listing changing shape and the provider leaving, every
step equals a full reconcile, and the range holds exactly that provider's leases."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from opcockpit.domain.models import DbState, Instance, NormalState, ProviderListing
from opcockpit.domain.reconcile import reconcile
from opcockpit.domain.reconcile_inc import IncrementalReconciler
from tests.test_reconcile_inc_provider_unknown import T0, _lease


def _listing(name: str, iids: list[str], *, ok: bool = True, kind: str = "e2b") -> ProviderListing:
    insts = tuple(Instance(name, i, "running", NormalState.RUNNING) for i in iids)
    return ProviderListing(provider=name, kind=kind, ok=ok, instances=insts, listed_at=T0)


def test_a_providers_leases_are_its_rows_range_and_every_step_equals_full() -> None:
    leases = [_lease(f"lease-{p}-{i}", p, f"{p}-i-{i}") for p in ("e2b", "e2b2", "e2") for i in range(3)]
    db = DbState(
        path="sandbox.db", schema_variant="leonai", read_at=T0, leases=tuple(leases), terminals=(),
        chat_sessions=(),
    )  # fmt: skip
    ids = {p: [f"{p}-i-{i}" for i in range(3)] for p in ("e2b", "e2b2", "e2")}
    ok = {p: _listing(p, ids[p]) for p in ids}
    steps = [
        dict(ok),
        {**ok, "e2b": _listing("e2b", ids["e2b"], ok=False)},  # stale: its rows restamped
        {**ok, "e2b": _listing("e2b", ids["e2b"], ok=False)},
        {**ok, "e2b": replace(_listing("e2b", ids["e2b"]), pause_is_stop=True)},  # another shape
        {k: v for k, v in ok.items() if k != "e2b"},  # the provider left the config
        dict(ok),
    ]
    inc = IncrementalReconciler()
    for i, listings in enumerate(steps):
        now = T0 + timedelta(seconds=30 * i)
        assert inc.step(db, listings, now) == reconcile(db, listings, now), f"step {i}"
        for p in ids:
            assert sorted(inc._leases_of(p)) == [f"lease-{p}-{k}" for k in range(3)]
    assert inc._leases_of("e") == [] and inc._leases_of("nowhere") == []
