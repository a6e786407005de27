"""Convergence rules: how one lease is judged against what its provider says (pure).

`reconcile` indexes the inputs and walks the leases; for each it asks these functions for a
(Convergence, reason) pair. Per-provider facts (listing status, stale age, pause semantics, the
paused hint) are gathered once per reconcile into a `Prov` context.
"""

from __future__ import annotations

from datetime import datetime

from opcockpit.domain.models import (
    Convergence,
    Instance,
    LeaseRecord,
    NormalState,
    ProviderHealth,
    ProviderListing,
    ProviderStatus,
    problems_unjudgeable,
)
from opcockpit.domain.text import one_line
from opcockpit.domain.timeutil import fmt_age

CONVERGED = Convergence.CONVERGED
DIVERGED = Convergence.DIVERGED
UNBOUND = Convergence.UNBOUND
TRANSITIONING = Convergence.TRANSITIONING
STALE = Convergence.STALE
UNKNOWN = Convergence.UNKNOWN

RUNNING = NormalState.RUNNING
PAUSED = NormalState.PAUSED
STOPPED = NormalState.STOPPED
GONE = NormalState.GONE

LIVE_SESSION = frozenset(("active", "idle", "paused"))
# Kind facts come with the listing (ProviderListing.pause_is_stop / paused_hint, copied by the
# collector from the adapter's Capabilities); a listing without them gets the plain defaults.
DEFAULT_PAUSED_HINT = "paused outside LEON?"
# An error quoted inside a reason sentence is cut shorter than the one clip's default: the
# snapshot's reason texts (JSON/CSV contract) were always cut at 120.
REASON_ERROR_CLIP = 120

MODE_OK = 0
MODE_STALE = 1
MODE_DB_ONLY = 2
MODE_MISSING = 3


class Prov:
    """Per-provider context, computed once per reconcile."""

    __slots__ = (
        "index", "kind", "matched", "mode", "name", "pause_is_stop", "paused_hint", "stale_age",
        "stale_prefix",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        kind: str,
        mode: int,
        *,
        pause_is_stop: bool | None = None,
        paused_hint: str | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.mode = mode
        self.index: dict[str, Instance] = {}
        self.matched: set[str] = set()
        self.stale_age: float | None = None
        self.stale_prefix = ""
        self.pause_is_stop = bool(pause_is_stop)
        self.paused_hint = paused_hint or DEFAULT_PAUSED_HINT

    @classmethod
    def of(cls, listing: ProviderListing, mode: int) -> Prov:
        return cls(
            listing.provider,
            listing.kind,
            mode,
            pause_is_stop=listing.pause_is_stop,
            paused_hint=listing.paused_hint,
        )


def listing_age(now: datetime, then: datetime | None) -> float | None:
    if then is None:
        return None
    # Clock skew between hosts can put listed_at slightly in the future; an age is never negative.
    return max(0.0, (now - then).total_seconds())


def build_index(instances: tuple[Instance, ...]) -> dict[str, Instance]:
    """id/alias -> instance. Primary ids beat aliases; collisions resolve deterministically, so
    the result never depends on listing order."""
    primary = {inst.instance_id: inst for inst in instances}
    if len(primary) != len(instances):  # the provider listed an id twice (a provider bug)
        primary = {}
        for inst in instances:
            prev = primary.get(inst.instance_id)
            if prev is None or dup_rank(inst) < dup_rank(prev):
                primary[inst.instance_id] = inst
    aliased = [inst for inst in instances if inst.aliases]
    if not aliased:
        return primary
    index = {alias: inst for inst in aliased for alias in inst.aliases}
    if len(index) != sum(len(inst.aliases) for inst in aliased):  # two instances share an alias
        index = {}
        for inst in aliased:
            for alias in inst.aliases:
                prev = index.get(alias)
                if prev is None or inst.instance_id < prev.instance_id:
                    index[alias] = inst
    index.update(primary)
    return index


def dup_rank(inst: Instance) -> tuple[str, str, str]:
    # Only used when a provider lists the same id twice (a provider bug): pick deterministically.
    return (inst.state.value, inst.raw_state, inst.name or "")


# --------------------------------------------------------------------------- convergence rules


def unbound_reason(lease: LeaseRecord, remote: bool) -> str:
    if lease.status == "expired":
        base = "no instance bound: previous instance gone (lease expired); LEON rebinds on next command"
    elif remote:
        base = "never bound: LEON binds remote instances on first command"
    else:
        base = "no instance bound (local binds on first use)"
    if lease.observed_state not in ("detached", "unknown"):
        base += f"; DB observed_state stale ({lease.observed_state})"
    return base


def judge_api(lease: LeaseRecord, inst: Instance | None, ctx: Prov) -> tuple[Convergence, str]:
    """Provider listed OK: judge desired_state against what the provider says."""
    desired = lease.desired_state
    cid = lease.current_instance_id
    observed = lease.observed_state

    if desired == "destroyed":
        if cid is None:
            if observed == "detached":
                return CONVERGED, "destroyed and detached"
            return CONVERGED, f"destroyed, no instance bound (DB observed_state stale: {observed})"
        if inst is None:
            return CONVERGED, f"destroyed; instance {cid} no longer at provider (DB still references it)"
        state = inst.state
        if state is GONE:
            return CONVERGED, "destroyed; provider reports instance gone"
        if state is RUNNING or state is PAUSED:
            return DIVERGED, (
                f"desired destroyed but instance {cid} still {state.value} at provider: leak (costs money)"
            )
        if state is STOPPED:
            return DIVERGED, (
                f"desired destroyed but instance {cid} still exists (stopped) at provider: leak (holds disk)"
            )
        return state_in_flux(inst)

    if desired not in ("running", "paused"):
        return UNKNOWN, f"unrecognised desired_state {desired!r}"

    if cid is None:
        return UNBOUND, unbound_reason(lease, remote=True)

    if inst is None:
        if desired == "running":
            return DIVERGED, (
                f"desired running, instance {cid} not listed by provider (LEON recreates it on next command)"
            )
        return DIVERGED, f"desired paused, instance {cid} not listed by provider (paused instance lost?)"

    state = inst.state
    if desired == "running":
        if state is RUNNING:
            if observed == "running":
                return CONVERGED, "running as desired"
            return CONVERGED, f"running as desired; DB observed_state stale ({observed})"
        if state is PAUSED:
            return DIVERGED, f"desired running, provider says paused ({ctx.paused_hint})"
        if state is STOPPED:
            return DIVERGED, f"desired running, provider says stopped (raw {inst.raw_state})"
        if state is GONE:
            return DIVERGED, "desired running, provider says gone (LEON recreates it on next command)"
        return state_in_flux(inst)

    # desired paused
    if state is PAUSED or (state is STOPPED and ctx.pause_is_stop):
        if observed == "paused":
            return CONVERGED, "paused as desired"
        return CONVERGED, f"paused as desired; DB observed_state stale ({observed})"
    if state is RUNNING:
        return DIVERGED, "desired paused, provider says running (pause failed or resumed outside LEON?)"
    if state is STOPPED:
        return DIVERGED, f"desired paused, provider says stopped (raw {inst.raw_state})"
    if state is GONE:
        return DIVERGED, "desired paused, provider says gone (paused instance lost?)"
    return state_in_flux(inst)


def state_in_flux(inst: Instance) -> tuple[Convergence, str]:
    if inst.state is NormalState.TRANSITIONING:
        return TRANSITIONING, f"provider reports a state change in flight ({inst.raw_state})"
    return UNKNOWN, f"provider reports unknown state ({inst.raw_state})"


def judge_db_only(lease: LeaseRecord) -> tuple[Convergence, str]:
    """No provider API (LEON `local`): the DB is all there is, judged with the same rules."""
    desired = lease.desired_state
    observed = lease.observed_state
    cid = lease.current_instance_id
    if desired == "destroyed":
        if cid is None:
            if observed == "detached":
                return CONVERGED, "destroyed and detached (DB only)"
            return CONVERGED, f"destroyed, no instance bound (DB only; observed_state stale: {observed})"
        return DIVERGED, f"desired destroyed but instance {cid} still bound (DB only; observed {observed})"
    if desired not in ("running", "paused"):
        return UNKNOWN, f"unrecognised desired_state {desired!r}"
    if cid is None:
        return UNBOUND, unbound_reason(lease, remote=False) + " (DB only)"
    if observed == desired:
        return CONVERGED, f"{desired} as desired (DB only: no provider API)"
    if observed == "unknown":
        return UNKNOWN, "DB observed_state unknown (DB only: no provider API)"
    if observed == "detached":
        return DIVERGED, f"desired {desired}, DB observed detached with instance {cid} still bound (DB only)"
    return DIVERGED, f"desired {desired}, DB observed {observed} (DB only: no provider API)"


def judge_stale(lease: LeaseRecord, last: Instance | None, ctx: Prov) -> str:
    if ctx.mode == MODE_MISSING:
        return ctx.stale_prefix
    if ctx.stale_age is None:
        return ctx.stale_prefix  # never listed: nothing known
    if lease.current_instance_id is None:
        return f"{ctx.stale_prefix}: last known state: no instance bound"
    if last is None:
        return f"{ctx.stale_prefix}: instance {lease.current_instance_id} was not in the last good listing"
    return f"{ctx.stale_prefix}: showing last known state ({last.state.value})"


def lease_notes(lease: LeaseRecord) -> str:
    """Things an SRE should know that do not change convergence on their own."""
    parts = []
    if lease.status == "recovering":
        parts.append("lease recovering (instance creation failed or hung?)")
    if lease.needs_refresh:
        parts.append("needs_refresh set")
    if lease.last_error:
        parts.append(f"last_error: {one_line(lease.last_error, REASON_ERROR_CLIP)}")
    return "; " + "; ".join(parts) if parts else ""


def degraded(problems: tuple[str, ...], conv: Convergence, reason: str) -> tuple[Convergence, str]:
    """A lease whose sandbox.db rows hold odd values (the reader cleaned them; see rowcheck).

    Identity/state columns unusable -> `unknown` (any verdict would be a guess); lesser oddities
    keep the verdict and say what is wrong in the reason.
    """
    what = "; ".join(problems)
    if problems_unjudgeable(problems):
        return UNKNOWN, f"bad sandbox.db row ({what}): cannot judge convergence"
    return conv, f"{reason}; bad sandbox.db data: {what}"


# --------------------------------------------------------------------------- providers


def provider_context(
    listing: ProviderListing, now: datetime, index: dict[str, Instance] | None = None
) -> tuple[Prov, ProviderHealth]:
    """The provider's context and health line at `now`. `index` (build_index of this listing's
    instances, kept by the incremental reconciler) saves re-indexing an unchanged listing."""
    status = listing.status
    age = listing_age(now, listing.listed_at)
    if status is ProviderStatus.DB_ONLY:
        ctx = Prov.of(listing, MODE_DB_ONLY)
        count = None
    elif status is ProviderStatus.OK:
        ctx = Prov.of(listing, MODE_OK)
        ctx.index = build_index(listing.instances) if index is None else index
        count = len(listing.instances)
    else:
        ctx = Prov.of(listing, MODE_STALE)
        err = one_line(listing.error or "listing failed", REASON_ERROR_CLIP)
        if age is None:
            ctx.stale_prefix = f"provider {listing.provider} has no listing yet ({err})"
            count = None
        else:
            ctx.index = build_index(listing.instances) if index is None else index
            ctx.stale_age = age
            ctx.stale_prefix = f"provider {listing.provider} unreachable for {fmt_age(age)} ({err})"
            count = len(listing.instances)
    health = ProviderHealth(
        name=listing.provider,
        kind=listing.kind,
        status=status,
        error=listing.error,
        listed_at=listing.listed_at,
        instance_count=count,
        age_s=age,
    )
    return ctx, health


def missing_context(name: str) -> tuple[Prov, ProviderHealth]:
    ctx = Prov(name, "unknown", MODE_MISSING)
    ctx.stale_prefix = f"provider {name} not configured"
    health = ProviderHealth(
        name=name,
        kind="unknown",
        status=ProviderStatus.ERROR,
        error=f"no provider configured named {name}",
        listed_at=None,
        instance_count=None,
        age_s=None,
    )
    return ctx, health
