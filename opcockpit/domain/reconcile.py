"""Pure reconcile: sandbox.db (what should exist) x provider listings (what does exist) -> GroundTruth.

No I/O, no clock reads, no Textual. Everything is O(leases + terminals + sessions + instances):
the inputs are indexed once into dicts and each lease is then judged with constant-time lookups.
Output order is fully determined by the data (never by input order), so identical inputs produce
identical snapshots even when the sources return rows in a different order.

Convergence is judged against the provider, not LEON's `desired_state != observed_state` string
compare (which calls every destroyed lease, every never-used remote lease and every stale
observation "diverged"). The rules per lease are in domain/convergence.py.

Speed (bench/bench_reconcile.py: 10k leases + 10k instances + 15k terminals + 20k sessions in
~40-50 ms on the 2-core dev VM) comes from: per-lease DB maps seeded with the lease ids in lease
order and filled in C (dict.update over map/zip), walked in step with the leases instead of
looked up; rows built by `_fast_factory` (frozen-dataclass __init__ with 20 keyword fields was
the biggest single cost); one string sort key per row; the cyclic GC paused during the call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from datetime import datetime
from itertools import compress
from operator import attrgetter, is_not, itemgetter
from typing import TypeVar

from opcockpit.domain.convergence import (
    CONVERGED,
    DIVERGED,
    GONE,
    LIVE_SESSION,
    MODE_DB_ONLY,
    MODE_MISSING,
    MODE_OK,
    RUNNING,
    STALE,
    Prov,
    degraded,
    judge_api,
    judge_db_only,
    judge_stale,
    lease_notes,
    missing_context,
    provider_context,
)
from opcockpit.domain.fastbuild import fast_factory
from opcockpit.domain.gcpause import gc_paused
from opcockpit.domain.models import (
    ChatSessionRecord,
    DbState,
    GroundTruth,
    GroundTruthRow,
    LeaseRecord,
    OrphanRow,
    ProviderHealth,
    ProviderListing,
    Resources,
    TerminalRecord,
    problems_provider_unknown,
)

__all__ = ["reconcile"]

_R = TypeVar("_R", TerminalRecord, ChatSessionRecord)

SRC_PROVIDER = "lease+provider"
SRC_LEASE = "lease"
_LEASE_ID = attrgetter("lease_id")
_FIRST = itemgetter(0)  # sort (key, row) pairs by key only: rows are not orderable


# --------------------------------------------------------------------------- fast construction

_fast_factory = fast_factory  # kept under its old name (tests, callers)

_new_row = _fast_factory(
    GroundTruthRow,
    (
        "lease_id", "provider", "thread_id", "thread_ids", "chat_session_id", "instance_id",
        "desired_state", "observed_state", "provider_state", "convergence", "reason", "last_active",
        "source", "lease_status", "version", "needs_refresh", "last_error", "resources", "updated_at",
        "stale_age_s",
    ),
)  # fmt: skip
_new_resources = _fast_factory(
    Resources,
    (
        "cpu_used", "memory_used_mb", "memory_total_mb", "disk_used_gb", "disk_total_gb", "probe_error",
        "collected_at", "cpu_count", "memory_mb",
    ),
)  # fmt: skip
_new_orphan = _fast_factory(
    OrphanRow,
    (
        "provider", "instance_id", "name", "provider_state", "raw_state", "labels", "created_at",
        "claimed_lease_id", "claim", "confirmed", "resources",
    ),
)  # fmt: skip


# --------------------------------------------------------------------------- small helpers


def _listings_by_name(
    listings: Mapping[str, ProviderListing] | Iterable[ProviderListing],
) -> dict[str, ProviderListing]:
    items = listings.values() if isinstance(listings, Mapping) else listings
    out: dict[str, ProviderListing] = {}
    for listing in items:
        if listing.provider in out:
            raise ValueError(f"duplicate listing for provider {listing.provider!r}")
        out[listing.provider] = listing
    return out


# --------------------------------------------------------------------------- indexes over the DB


def _threads_by_lease(
    terminals: tuple[TerminalRecord, ...], lease_ids: list[str]
) -> dict[str, tuple[str, ...]]:
    """lease_id -> distinct thread ids, newest terminal first; keys start with `lease_ids` in order.

    The common one-terminal-per-lease case runs entirely in C (dict.update over map/zip); only the
    other terminals of leases with several are grouped and ordered in Python.
    """
    last: dict[str, TerminalRecord | None] = dict.fromkeys(lease_ids)
    last.update(zip(map(_LEASE_ID, terminals), terminals, strict=True))
    out = {lid: (() if t is None else (t.thread_id,)) for lid, t in last.items()}
    extras = _not_kept(terminals, last)
    if not extras:
        return out
    multi: dict[str, list[TerminalRecord]] = {}
    for t in extras:
        lst = multi.get(t.lease_id)
        if lst is None:
            multi[t.lease_id] = [last[t.lease_id], t]  # type: ignore[list-item]
        else:
            lst.append(t)
    for lid, lst in multi.items():
        if len(lst) == 2:
            a, b = lst
            if _term_newer(b, a):
                a, b = b, a
            out[lid] = (a.thread_id,) if a.thread_id == b.thread_id else (a.thread_id, b.thread_id)
        else:
            lst.sort(key=_term_key, reverse=True)
            out[lid] = tuple(dict.fromkeys([t.thread_id for t in lst]))
    return out


def _not_kept(records: tuple[_R, ...], kept: Mapping[str, object]) -> list[_R]:
    """The records that lost `dict.update`'s last-wins to another record of the same lease (in C)."""
    return list(compress(records, map(is_not, map(kept.__getitem__, map(_LEASE_ID, records)), records)))


def _term_key(t: TerminalRecord) -> tuple[bool, datetime | None, str]:
    # Undated terminals sort oldest; equal times break on terminal_id so input order never matters.
    return (t.created_at is not None, t.created_at, t.terminal_id)


def _term_newer(a: TerminalRecord, b: TerminalRecord) -> bool:
    ca, cb = a.created_at, b.created_at
    if ca is None:
        return cb is None and a.terminal_id > b.terminal_id
    if cb is None or ca > cb:
        return True
    return ca == cb and a.terminal_id > b.terminal_id


def _sessions_by_lease(
    sessions: tuple[ChatSessionRecord, ...], lease_ids: list[str]
) -> tuple[dict[str, ChatSessionRecord | None], dict[str, datetime | None]]:
    """(the session to show, max last_active_at) per lease; keys start with `lease_ids` in order.

    The session to show is the newest live one (active/idle/paused), else the newest of any status.
    One session per lease is seeded in C; only the other sessions of leases with several are
    compared one by one.
    """
    best: dict[str, ChatSessionRecord | None] = dict.fromkeys(lease_ids)
    best.update(zip(map(_LEASE_ID, sessions), sessions, strict=True))
    last_active = {lid: (None if s is None else s.last_active_at) for lid, s in best.items()}
    live_states = LIVE_SESSION
    for s in _not_kept(sessions, best):
        lid = s.lease_id
        la = s.last_active_at
        if la is not None:
            cur = last_active[lid]
            if cur is None or la > cur:
                last_active[lid] = la
        prev = best[lid]
        assert prev is not None
        s_live = s.status in live_states
        if s_live is not (prev.status in live_states):
            if s_live:
                best[lid] = s
        elif _newer(s, prev):
            best[lid] = s
    return best, last_active


def _newer(a: ChatSessionRecord, b: ChatSessionRecord) -> bool:
    """a started after b; undated sessions count as oldest; ties break on id (larger wins)."""
    sa, sb = a.started_at, b.started_at
    if sa is None:
        return sb is None and a.chat_session_id > b.chat_session_id
    if sb is None or sa > sb:
        return True
    return sa == sb and a.chat_session_id > b.chat_session_id


# --------------------------------------------------------------------------- orphans


def _orphans(listing: ProviderListing, ctx: Prov, leases_by_id: Mapping[str, LeaseRecord]) -> list[OrphanRow]:
    out: list[OrphanRow] = []
    matched = ctx.matched
    seen: set[str] = set()
    confirmed_ids = listing.confirmed_orphans or frozenset()
    eventual = listing.eventually_consistent
    index = ctx.index
    gone = GONE
    for inst in [i for i in listing.instances if i.instance_id not in matched and i.state is not gone]:
        iid = inst.instance_id
        if iid in seen or index.get(iid) is not inst:
            continue  # a duplicate id that lost the deterministic tie-break; the winner is reported
        seen.add(iid)
        claimed = inst.claimed_lease_id
        claim: str | None = None
        if claimed is not None:
            owner = leases_by_id.get(claimed)
            if owner is None:
                claim = "lease_missing"
            elif owner.current_instance_id is None:
                claim = "lease_exists"
            else:
                claim = "lease_points_elsewhere"
        out.append(
            _new_orphan(
                ctx.name,
                iid,
                inst.name,
                inst.state._value_,
                inst.raw_state,
                inst.labels,
                inst.created_at,
                claimed,
                claim,
                (iid in confirmed_ids) if eventual else None,
                inst.resources,
            )
        )
    return out


# --------------------------------------------------------------------------- entry point


def reconcile(
    db: DbState,
    listings: Mapping[str, ProviderListing] | Iterable[ProviderListing],
    now: datetime,
) -> GroundTruth:
    """Diff sandbox.db against provider listings into one row per lease plus orphans.

    `now` is the reconcile time (stale ages, `generated_at`); nothing here reads a clock or does I/O.
    """
    # A refresh allocates tens of thousands of small objects while the inputs (also tens of
    # thousands) are alive, which makes the cyclic GC rescan the whole fleet several times per
    # call. Nothing here creates cycles, so pause it for the call and restore the caller's setting.
    with gc_paused():
        return _reconcile(db, listings, now)


def _reconcile(
    db: DbState,
    listings: Mapping[str, ProviderListing] | Iterable[ProviderListing],
    now: datetime,
) -> GroundTruth:
    by_name = _listings_by_name(listings)
    provs: dict[str, Prov] = {}
    health: dict[str, ProviderHealth] = {}
    for name, listing in by_name.items():
        provs[name], health[name] = provider_context(listing, now)

    keyed, lease_ids, leases_by_id = walk_leases(db, provs, health)

    orphans: list[OrphanRow] = []
    for name in sorted(by_name):
        ctx = provs[name]
        if ctx.mode == MODE_OK:  # a failed or db-only provider never produces orphans
            orphans.extend(_orphans(by_name[name], ctx, leases_by_id))
    orphans.sort(key=_orphan_key)
    if any(o.claimed_lease_id in leases_by_id for o in orphans):
        # Before sorting, keyed[i] is the row of leases[i]: claimed rows are found by position.
        _note_claiming_orphans(keyed, lease_ids, orphans, leases_by_id)

    keyed.sort(key=_FIRST)
    rows = tuple([k[1] for k in keyed])

    return GroundTruth(
        generated_at=now,
        providers=tuple(health[name] for name in sorted(health)),
        rows=rows,
        orphans=tuple(orphans),
        db_path=db.path,
        schema_variant=db.schema_variant,
        db_problems=db.problems,
    )


def walk_leases(
    db: DbState,
    provs: dict[str, Prov],
    health: dict[str, ProviderHealth],
    matches: dict[str, str] | None = None,
) -> tuple[list[tuple[str, GroundTruthRow]], list[str], dict[str, LeaseRecord]]:
    """Judge every lease of `db` against `provs`: ((sort key, row) in lease order, lease ids,
    leases by id). Adds contexts/health for providers the leases name but nobody listed, marks
    matched instances in `ctx.matched`, and records lease_id -> matched instance id in `matches`
    when given (the incremental reconciler judges only changed leases through this same walk)."""
    leases = db.leases
    lease_ids = [lease.lease_id for lease in leases]
    threads = _threads_by_lease(db.terminals, lease_ids)
    shown_session, last_active = _sessions_by_lease(db.chat_sessions, lease_ids)
    snaps = list(map(db.resource_snapshots.get, lease_ids))
    leases_by_id = dict(zip(lease_ids, leases, strict=True))
    if len(leases_by_id) == len(leases):
        # The per-lease maps start with every lease id in lease order (dangling rows of deleted
        # leases come after), so walking their values in step with the leases replaces 30k+
        # scattered dict lookups with sequential reads.
        db_side: Iterable[tuple] = zip(
            threads.values(), shown_session.values(), last_active.values(), snaps, strict=False
        )
    else:  # duplicate lease ids (not possible from sandbox.db's primary key): look each one up
        db_side = (
            (threads[lid], shown_session[lid], last_active[lid], snap)
            for lid, snap in zip(lease_ids, snaps, strict=True)
        )
    new_row = _new_row
    new_resources = _new_resources
    lease_problems = db.lease_problems

    keyed: list[tuple[str, GroundTruthRow]] = []
    append = keyed.append
    for lease, (tids, sess, la, snap) in zip(leases, db_side, strict=False):
        lid = lease.lease_id
        pname = lease.provider_name
        ctx = provs.get(pname)
        odd = lease_problems.get(lid) if lease_problems else None
        if odd and problems_provider_unknown(odd):
            ctx = Prov(pname, "unknown", MODE_MISSING)  # no provider to match, no health line
        elif ctx is None:
            ctx, health[pname] = missing_context(pname)
            provs[pname] = ctx

        cid = lease.current_instance_id
        inst = ctx.index.get(cid) if cid is not None and ctx.index else None
        mode = ctx.mode
        stale_age: float | None = None
        if mode == MODE_OK:
            source = SRC_PROVIDER
            if inst is not None:
                ctx.matched.add(inst.instance_id)
                if matches is not None:
                    matches[lid] = inst.instance_id
                state = inst.state
                provider_state: str | None = state._value_
                if state is RUNNING and lease.desired_state == lease.observed_state == "running":
                    conv, reason = CONVERGED, "running as desired"  # the common case, as judge_api says
                else:
                    conv, reason = judge_api(lease, inst, ctx)
            else:
                provider_state = None
                conv, reason = judge_api(lease, inst, ctx)
        elif mode == MODE_DB_ONLY:
            source = SRC_LEASE
            provider_state = None
            conv, reason = judge_db_only(lease)
        else:  # stale or not configured: the last known picture with its age, never "gone"
            source = SRC_LEASE
            provider_state = inst.state._value_ if inst is not None else None
            stale_age = ctx.stale_age
            conv, reason = STALE, judge_stale(lease, inst, ctx)

        if lease.needs_refresh or lease.last_error or lease.status == "recovering":
            reason += lease_notes(lease)
        if odd:
            conv, reason = degraded(odd, conv, reason)

        tid = tids[0] if tids else None
        upd = lease.updated_at
        if upd is not None and (la is None or upd > la):
            la = upd
        alloc = inst.resources if inst is not None else None
        if snap is not None:
            res: Resources | None = new_resources(
                snap.cpu_used,
                snap.memory_used_mb,
                snap.memory_total_mb,
                snap.disk_used_gb,
                snap.disk_total_gb,
                snap.probe_error,
                snap.collected_at,
                alloc.cpu_count if alloc is not None else None,
                alloc.memory_mb if alloc is not None else None,
            )
        elif alloc is not None:
            res = new_resources(None, None, None, None, None, None, None, alloc.cpu_count, alloc.memory_mb)
        else:
            res = None

        append(
            (
                f"{pname}\0{tid or ''}\0{lid}",  # == (provider, thread_id or "", lease_id) order
                new_row(
                    lid,
                    pname,
                    tid,
                    tids,
                    sess.chat_session_id if sess is not None else None,
                    cid,
                    lease.desired_state,
                    lease.observed_state,
                    provider_state,
                    conv,
                    reason,
                    la,
                    source,
                    lease.status,
                    lease.version,
                    lease.needs_refresh,
                    lease.last_error,
                    res,
                    upd,
                    stale_age,
                ),
            )
        )
    return keyed, lease_ids, leases_by_id


def _orphan_key(o: OrphanRow) -> tuple[str, str]:
    return (o.provider, o.instance_id)


def _note_claiming_orphans(
    keyed: list[tuple[str, GroundTruthRow]],
    lease_ids: list[str],
    orphans: list[OrphanRow],
    leases_by_id: Mapping[str, LeaseRecord],
) -> None:
    """Tell a lease's row about live instances that claim it but that it does not point at.

    A destroyed lease whose instance still lives (its labels name the lease) is a leak even though
    the DB looks converged (destroyed + detached): the row says DIVERGED. Otherwise the row keeps its
    convergence and its reason names the orphan (a replaced container still alive, an instance
    LEON lost track of) so the operator sees both sides. Rare, so rows are copied only here.
    `keyed` holds (sort key, row) in lease order (keyed[i] belongs to lease_ids[i]); the claimed
    rows are replaced in place.
    """
    claims: dict[str, list[OrphanRow]] = {}
    for o in orphans:
        if o.claimed_lease_id in leases_by_id:
            claims.setdefault(o.claimed_lease_id, []).append(o)
    if len(leases_by_id) == len(lease_ids):  # unique ids (sandbox.db's primary key): index them
        position = dict(zip(lease_ids, range(len(lease_ids)), strict=True))
        claimed: Iterable[int] = [position[lid] for lid in claims]
    else:  # duplicate lease ids: every row of a claimed id
        claimed = compress(range(len(lease_ids)), map(claims.__contains__, lease_ids))
    for i in claimed:
        key, row = keyed[i]
        keyed[i] = (key, claimed_row(row, claims[row.lease_id]))


def claimed_row(row: GroundTruthRow, mine: list[OrphanRow]) -> GroundTruthRow:
    """`row` told about the orphans (in orphan order) whose labels claim its lease."""
    names = ", ".join(f"{o.instance_id} ({o.provider_state})" for o in mine)
    live = [o for o in mine if o.provider_state in ("running", "paused", "stopped")]
    if row.desired_state == "destroyed" and live and row.convergence is not STALE:
        what = "costs money" if any(o.provider_state != "stopped" for o in live) else "holds disk"
        return _replace_row(
            row,
            convergence=DIVERGED,
            reason=f"desired destroyed but {names} still at provider, labelled for this lease: leak ({what})",
        )
    return _replace_row(row, reason=f"{row.reason}; orphan instance claims this lease: {names}")


_ROW_FIELDS = tuple(f.name for f in fields(GroundTruthRow))
_set_slot = object.__setattr__


def _replace_row(row: GroundTruthRow, **changes: object) -> GroundTruthRow:
    """dataclasses.replace for rows, ~4x cheaper: slot copies instead of a 20-keyword __init__.

    object.__setattr__ is how the frozen dataclass's own __init__ stores its fields; every field
    (including ones added later) is copied, so the copy equals replace()'s.
    """
    new = object.__new__(GroundTruthRow)
    for name in _ROW_FIELDS:
        _set_slot(new, name, changes[name] if name in changes else getattr(row, name))
    return new
