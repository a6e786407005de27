"""Operator action targets: what the operator saw (a lease row or an orphan) and how typed
references (lease id, thread id, instance id, unique prefixes, `provider/instance_id`) resolve to it.

Pure: resolution runs against a GroundTruth (the picture the operator is looking at), no I/O.
A `Target` carries the fingerprint the action is checked against at execution time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from opcockpit.domain.models import GroundTruth, GroundTruthRow, OrphanRow

__all__ = ["Action", "Target", "TargetError", "expand_leaks", "resolve_targets"]

_MAX_CANDIDATES = 10


class Action(StrEnum):
    """An operator action, and the one table of what each one intends (no copies elsewhere)."""

    PAUSE = "pause"
    RESUME = "resume"
    DESTROY = "destroy"
    ADOPT = "adopt"

    @property
    def provider_state(self) -> str | None:
        """The provider state the action aims for; None for adopt (it changes sandbox.db only)."""
        return _PROVIDER_STATE[self]

    @property
    def desired_state(self) -> str | None:
        """What LEON's `sandbox_leases.desired_state` becomes (its intent); None for adopt."""
        return _DESIRED_STATE[self]

    @property
    def observed_state(self) -> str | None:
        """What LEON's `observed_state` becomes once the action succeeded; None for adopt."""
        return _OBSERVED_STATE[self]

    @property
    def past_tense(self) -> str:
        return _PAST[self]

    @property
    def destructive(self) -> bool:
        return self is Action.DESTROY


#                 provider state  LEON desired_state  past tense
_TABLE: dict[Action, tuple[str | None, str | None, str]] = {
    Action.PAUSE: ("paused", "paused", "paused"),
    Action.RESUME: ("running", "running", "resumed"),
    Action.DESTROY: ("gone", "destroyed", "destroyed"),
    Action.ADOPT: (None, None, "adopted"),
}
_PROVIDER_STATE = {a: row[0] for a, row in _TABLE.items()}
_DESIRED_STATE = {a: row[1] for a, row in _TABLE.items()}
_PAST = {a: row[2] for a, row in _TABLE.items()}
# LEON's observed_state after a successful action (a destroyed lease's instance is detached).
_OBSERVED_STATE: dict[Action, str | None] = {
    Action.PAUSE: "paused",
    Action.RESUME: "running",
    Action.DESTROY: "detached",
    Action.ADOPT: None,
}


@dataclass(frozen=True, slots=True)
class Target:
    """One thing an action applies to, with what the operator saw of it.

    kind "lease": a sandbox_leases row (lease_id set; instance_id = its current_instance_id then).
    kind "orphan": an instance at a provider that no lease accounts for (lease_id None), or a
    leaked instance: one still alive whose labels claim a destroyed lease (lease_id/thread_id are
    that lease's, see `is_leak`; destroying it touches the provider only, the lease is destroyed).
    The `seen_*` fields are the fingerprint: execution refuses when the truth no longer matches.
    """

    kind: Literal["lease", "orphan"]
    provider: str
    instance_id: str | None
    lease_id: str | None = None
    thread_id: str | None = None
    seen_desired: str | None = None
    seen_observed: str | None = None
    seen_provider_state: str | None = None
    confirmed: bool | None = None  # orphan of an eventually consistent list: False = not yet confirmed
    listed: bool = True  # False: a typed provider/instance the listing did not show

    @property
    def key(self) -> str:
        """The row key the TUI uses (lease_id, or provider/instance_id for orphans)."""
        if self.kind == "lease":
            assert self.lease_id is not None
            return self.lease_id
        return f"{self.provider}/{self.instance_id}"

    @property
    def instance_key(self) -> str | None:
        return f"{self.provider}/{self.instance_id}" if self.instance_id else None

    @property
    def is_leak(self) -> bool:
        """A live instance labelled for a lease that is already destroyed (lease_id names it)."""
        return self.kind == "orphan" and self.lease_id is not None

    def describe(self) -> str:
        """One line naming provider, instance, lease and thread (confirmations, summaries)."""
        parts = [f"provider {self.provider}", f"instance {self.instance_id or '(none bound)'}"]
        if self.is_leak:
            parts.append(f"lease {self.lease_id} (destroyed; this instance leaked)")
        else:
            parts.append(f"lease {self.lease_id}" if self.lease_id else "lease (none: orphan)")
        parts.append(f"thread {self.thread_id}" if self.thread_id else "thread (none)")
        return ", ".join(parts)

    def seen(self) -> dict[str, str | None]:
        return {
            "desired_state": self.seen_desired,
            "observed_state": self.seen_observed,
            "provider_state": self.seen_provider_state,
        }

    @classmethod
    def of_row(cls, row: GroundTruthRow) -> Target:
        return cls(
            kind="lease",
            provider=row.provider,
            instance_id=row.instance_id,
            lease_id=row.lease_id,
            thread_id=row.thread_id,
            seen_desired=row.desired_state,
            seen_observed=row.observed_state,
            seen_provider_state=row.provider_state,
        )

    @classmethod
    def of_orphan(cls, orphan: OrphanRow) -> Target:
        return cls(
            kind="orphan",
            provider=orphan.provider,
            instance_id=orphan.instance_id,
            seen_provider_state=orphan.provider_state,
            confirmed=orphan.confirmed,
        )

    @classmethod
    def of_leak(cls, orphan: OrphanRow, lease: Target) -> Target:
        """`orphan` (labelled for `lease`, a destroyed lease) as what destroying that lease means."""
        return cls(
            kind="orphan",
            provider=orphan.provider,
            instance_id=orphan.instance_id,
            lease_id=lease.lease_id,
            thread_id=lease.thread_id,
            seen_desired=lease.seen_desired,
            seen_observed=lease.seen_observed,
            seen_provider_state=orphan.provider_state,
            confirmed=orphan.confirmed,
        )

    @classmethod
    def unlisted(cls, provider: str, instance_id: str) -> Target:
        """`provider/instance_id` typed by the operator but not in the listing (e.g. already gone)."""
        return cls(kind="orphan", provider=provider, instance_id=instance_id, listed=False)


class TargetError(ValueError):
    """A reference resolves to nothing or to more than one target."""

    def __init__(self, ref: str, message: str, candidates: tuple[Target, ...] = ()) -> None:
        super().__init__(message)
        self.ref = ref
        self.candidates = candidates


def _as_target(obj: object) -> Target:
    if isinstance(obj, Target):
        return obj
    if isinstance(obj, GroundTruthRow):
        return Target.of_row(obj)
    if isinstance(obj, OrphanRow):
        return Target.of_orphan(obj)
    raise TypeError(f"not a target: {type(obj).__name__}")


def _ambiguous(ref: str, found: list[Target]) -> TargetError:
    shown = "; ".join(t.describe() for t in found[:_MAX_CANDIDATES])
    more = f" (+{len(found) - _MAX_CANDIDATES} more)" if len(found) > _MAX_CANDIDATES else ""
    return TargetError(ref, f"{ref!r} is ambiguous: {len(found)} candidates: {shown}{more}", tuple(found))


def _resolve_one(ref: str, gt: GroundTruth) -> Target:
    ref = ref.strip()
    if not ref:
        raise TargetError(ref, "empty target")
    providers = (
        {p.name for p in gt.providers} | {r.provider for r in gt.rows} | {o.provider for o in gt.orphans}
    )
    head, sep, tail = ref.partition("/")
    if sep and head in providers and tail:
        # provider/instance_id: a lease bound to it, else an orphan (listed or not).
        rows = [r for r in gt.rows if r.provider == head and r.instance_id == tail]
        if rows:
            return Target.of_row(rows[0])
        orphans = [o for o in gt.orphans if o.provider == head and o.instance_id == tail]
        if orphans:
            return Target.of_orphan(orphans[0])
        pre = [
            Target.of_row(r) for r in gt.rows if r.provider == head and (r.instance_id or "").startswith(tail)
        ]
        pre += [
            Target.of_orphan(o) for o in gt.orphans if o.provider == head and o.instance_id.startswith(tail)
        ]
        if len(pre) == 1:
            return pre[0]
        if len(pre) > 1:
            raise _ambiguous(ref, pre)
        return Target.unlisted(head, tail)

    exact: dict[str, Target] = {}
    prefix: dict[str, Target] = {}
    for r in gt.rows:
        ids = (r.lease_id, r.instance_id, *r.thread_ids)
        if ref in ids:
            exact.setdefault(r.lease_id, Target.of_row(r))
        elif any(i and i.startswith(ref) for i in ids):
            prefix.setdefault(r.lease_id, Target.of_row(r))
    for o in gt.orphans:
        if o.instance_id == ref:
            exact.setdefault(o.key, Target.of_orphan(o))
        elif o.instance_id.startswith(ref):
            prefix.setdefault(o.key, Target.of_orphan(o))
    found = list(exact.values()) or list(prefix.values())
    if not found:
        raise TargetError(
            ref,
            f"{ref!r} matches no lease, thread or instance "
            "(for an instance not listed use provider/instance_id)",
        )
    if len(found) > 1:
        raise _ambiguous(ref, found)
    return found[0]


def resolve_targets(refs: list[object], gt: GroundTruth | None) -> list[Target]:
    """Targets for `refs` (strings, GroundTruthRow, OrphanRow or Target), duplicates dropped.

    Strings need `gt` (the picture the operator saw). Raises TargetError on the first reference
    that matches nothing or several things (the error lists the candidates).
    """
    out: dict[str, Target] = {}
    for ref in refs:
        if isinstance(ref, str):
            if gt is None:
                raise TargetError(ref, "a typed target needs the ground truth it was seen in (seen=...)")
            target = _resolve_one(ref, gt)
        else:
            target = _as_target(ref)
        out.setdefault(target.key, target)
    return list(out.values())


LEAK_CLAIMS = ("lease_exists", "lease_points_elsewhere")


def expand_leaks(targets: Sequence[Target], gt: GroundTruth | None) -> list[Target]:
    """Destroy targets with a destroyed lease's leaked instances resolved (pure, no I/O).

    A lease whose desired_state is destroyed but whose labelled instance still lives at the
    provider (reconcile: DIVERGED "leak"; the instance an orphan claiming it) is destroyed by
    destroying those instances. Such a lease with no instance bound is replaced by them (acting on
    the lease itself would only say "already"); one still bound keeps its own target too.
    Anything else passes through unchanged, duplicates dropped.
    """
    wanted = {
        t.lease_id for t in targets if t.kind == "lease" and t.seen_desired == "destroyed" and t.lease_id
    }
    claims: dict[str, list[OrphanRow]] = {}
    if wanted and gt is not None:
        for o in gt.orphans:
            if o.claimed_lease_id in wanted and o.claim in LEAK_CLAIMS and o.provider_state != "gone":
                claims.setdefault(o.claimed_lease_id, []).append(o)
    out: dict[str, Target] = {}
    for t in targets:
        # A lease's instances live at its own provider.
        leaks = [o for o in claims.get(t.lease_id or "", ()) if o.provider == t.provider]
        if not leaks or t.instance_id is not None:
            out.setdefault(t.key, t)
        for o in leaks:
            out.setdefault(o.key, Target.of_leak(o, t))
    return list(out.values())
