"""Incremental reconcile: judge only the leases and instances that changed since the last step.

`IncrementalReconciler.step(db, listings, now)` returns the GroundTruth that `reconcile(db,
listings, now)` returns for the same inputs (tests/test_incremental_property.py checks this on
random sequences of LEON writes, provider changes, listing failures and resyncs), at a cost that
follows the change, not the fleet:

- sandbox.db side: records are compared by identity first (the change-detecting reader keeps the
  record objects of rows that did not change), then by value, so a from-scratch read costs one
  compare per record and recomputes nothing that is equal;
- provider side: a listing object seen before changes nothing; a new listing of the same shape
  (status, kind, pause facts) dirties only the leases whose instance id (or alias) changed; any
  other change dirties every lease of that provider. A stale provider's rows carry the listing's
  age: when nothing else about them changed, only their age and reason prefix are replaced;
- orphans are kept per provider by key and recomputed for a provider only when its listing, the
  instances its leases match, or a lease its instances claim changed.

Pure: no I/O, no clock. Rows are judged by the same walk as the full reconcile (`walk_leases`), so
the rules live in one place.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import fields
from datetime import datetime
from itertools import compress
from operator import attrgetter, is_not
from typing import Any

from opcockpit.domain.convergence import MODE_OK, Prov, build_index, missing_context, provider_context
from opcockpit.domain.fastbuild import fast_factory
from opcockpit.domain.gcpause import gc_paused
from opcockpit.domain.models import (
    ChatSessionRecord,
    DbState,
    GroundTruth,
    GroundTruthRow,
    Instance,
    LeaseRecord,
    OrphanRow,
    ProviderHealth,
    ProviderListing,
    ProviderStatus,
    TerminalRecord,
    problems_provider_unknown,
)
from opcockpit.domain.reconcile import _listings_by_name, _orphans, claimed_row, reconcile, walk_leases

__all__ = ["IncrementalReconciler"]


def _sort_key(row: GroundTruthRow) -> str:
    """The full reconcile's sort key of a row (walk_leases: provider, thread id, lease id), made
    again when needed instead of kept: one str and one (key, row) pair per lease were ~150 bytes a
    lease (issue 10, RSS), for a bisection over the few rows a step touches."""
    return f"{row.provider}\0{row.thread_id or ''}\0{row.lease_id}"


def _same_key(a: GroundTruthRow, b: GroundTruthRow) -> bool:
    """_sort_key(a) == _sort_key(b) for rows of one lease, without making either."""
    return a.provider == b.provider and (a.thread_id or "") == (b.thread_id or "")


# Above this many touched rows a step finds their places by a lease -> index map, not bisection.
_BISECT_MAX = 64


# A row rebuilt with two fields replaced (a stale row's age and reason): every field, positionally.
_ROW_FIELDS = tuple(f.name for f in fields(GroundTruthRow))
_row_values = attrgetter(*_ROW_FIELDS)
_build_row = fast_factory(GroundTruthRow, _ROW_FIELDS)
_REASON, _STALE_AGE = _ROW_FIELDS.index("reason"), _ROW_FIELDS.index("stale_age_s")


def _hold(by: dict[str, str | set[str]], key: str, lid: str) -> None:
    held = by.get(key)
    if held is None:
        by[key] = lid
    elif isinstance(held, str):
        if held != lid:
            by[key] = {held, lid}
    else:
        held.add(lid)


def _release(by: dict[str, str | set[str]], key: str, lid: str) -> None:
    held = by.get(key)
    if held is None:
        return
    if isinstance(held, str):
        if held == lid:
            del by[key]
        return
    held.discard(lid)
    if not held:
        del by[key]


def _shape(listing: ProviderListing) -> tuple[Any, ...]:
    """What every lease of a provider depends on besides its own instance."""
    return (listing.status, listing.kind, listing.pause_is_stop, listing.paused_hint, listing.has_api)


def _relisted_as_is(prev: ProviderListing, listing: ProviderListing) -> bool:
    """A new listing of the very same instances (the collector hands the last tuple back when
    every item is the same object) and the same in everything its leases and orphans are judged
    by (its status among them): only its time, counters or error text moved, which the provider's
    health line and a stale provider's restamp read at every step anyway.
    Such a relisting (every 15-30 s per provider on a quiet fleet) re-indexed, re-collected the
    claims and re-built the orphans of thousands of instances to find them unchanged (issue 10)."""
    return (
        prev.instances is listing.instances
        and _shape(prev) == _shape(listing)
        and prev.eventually_consistent == listing.eventually_consistent
        and prev.confirmed_orphans == listing.confirmed_orphans
    )


def _indexed(listing: ProviderListing) -> bool:
    return listing.status is ProviderStatus.OK or (
        listing.status is ProviderStatus.STALE and listing.listed_at is not None
    )


class IncrementalReconciler:
    """Keeps the last inputs and rows; `step()` == `reconcile()` of the same inputs."""

    def __init__(self) -> None:
        self.steps = 0
        self.judged = 0  # leases judged by the last step (diagnostics, tests)
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next step judges every lease (a resync)."""
        self._db: DbState | None = None
        self._leases: dict[str, LeaseRecord] = {}
        self._terms: tuple[TerminalRecord, ...] = ()
        self._sessions: tuple[ChatSessionRecord, ...] = ()
        # lease -> its records: the record itself when it is the only one (most leases have one
        # terminal), else a tuple (`_members` reads both): no list and item array per lease, and
        # no one-element tuple either (~1.5 MB, then ~0.5 MB at 10k leases; issue 10, RSS)
        self._terms_by: dict[str, Any] = {}
        self._sess_by: dict[str, Any] = {}
        self._snaps: Mapping[str, Any] = {}
        self._problems: Mapping[str, tuple[str, ...]] = {}
        self._listings: dict[str, ProviderListing] = {}
        self._index: dict[str, dict[str, Instance]] = {}
        self._claims_of: dict[str, frozenset[str]] = {}  # provider -> lease ids its instances claim
        # provider -> instance id -> the lease naming it, or a set when several do (rare): one str
        # per lease instead of a one-element set (~2 MB at 10k leases), and no (provider, id)
        # tuple key per lease (~0.6 MB).
        self._by_cid: dict[str, dict[str, str | set[str]]] = {}
        self._named: dict[str, int] = {}  # provider -> leases naming it usably (health of missing ones)
        # Leases judged but not counted in _named (provider_name unusable; rare). The others are
        # counted under their row's provider: no lease -> provider map (issue 10, RSS).
        self._uncounted: set[str] = set()
        # lease -> the instance id it matched at its row's provider (not a (provider, id) tuple)
        self._match: dict[str, str] = {}
        self._matched: dict[str, dict[str, int]] = {}  # provider -> instance id -> leases matching it
        self._base: dict[str, GroundTruthRow] = {}  # rows before claim notes
        # the rows with claim notes (an orphan claims their lease; rare): a row's final form is
        # this one, else _base's (no second lease -> row map, issue 10, RSS)
        self._claimed: dict[str, GroundTruthRow] = {}
        # _rows is in _sort_key order: a touched row's place by bisection (no lease -> index
        # map: a dict and an int per lease, ~0.6 MB at 10k; no list of keys either)
        self._rows: tuple[GroundTruthRow, ...] = ()
        self._orphans_by: dict[str, list[OrphanRow]] = {}
        self._prefix: dict[str, str] = {}  # stale provider -> its rows' reason prefix (last step)
        self._orphans: tuple[OrphanRow, ...] = ()
        self._claims: dict[str, list[OrphanRow]] = {}

    # ------------------------------------------------------------------ step

    def step(
        self,
        db: DbState,
        listings: Mapping[str, ProviderListing] | Iterable[ProviderListing],
        now: datetime,
    ) -> GroundTruth:
        with gc_paused():
            return self._step(db, listings, now)

    def _step(
        self,
        db: DbState,
        listings: Mapping[str, ProviderListing] | Iterable[ProviderListing],
        now: datetime,
    ) -> GroundTruth:
        self.steps += 1
        by_name = _listings_by_name(listings)
        if db is not self._db and len({lease.lease_id for lease in db.leases}) != len(db.leases):
            # Duplicate lease ids cannot come from sandbox.db's primary key; the full path has
            # the rules for them, and the next step starts afresh.
            self.reset()
            self.judged = len(db.leases)
            return reconcile(db, by_name, now)

        dirty: set[str] = set()
        orphan_dirty: set[str] = set()
        if db is not self._db:
            self._diff_db(db, dirty)
        self._diff_listings(by_name, dirty, orphan_dirty)

        provs: dict[str, Prov] = {}
        health: dict[str, ProviderHealth] = {}
        restamped: set[str] = set()
        prefixes: dict[str, str] = {}
        for name, listing in by_name.items():
            provs[name], health[name] = provider_context(listing, now, self._index.get(name))
            if listing.status is ProviderStatus.STALE:
                # Their reason and age follow `now`: moved in place when nothing else changed.
                ctx = provs[name]
                prefixes[name] = ctx.stale_prefix
                self._restamp(name, ctx, dirty, restamped)
        self._prefix = prefixes

        removed = [lid for lid in dirty if lid not in self._leases and lid in self._base]
        for lid in removed:
            self._forget(lid, orphan_dirty)
        todo = [self._leases[lid] for lid in dirty if lid in self._leases]
        self.judged = len(todo)
        if todo:
            self._judge(db, todo, provs, health, orphan_dirty)
        for name, claimed in self._claims_of.items():
            if name not in orphan_dirty and not claimed.isdisjoint(dirty):
                orphan_dirty.add(name)
        for name in list(self._named):
            if name not in by_name and name not in health:
                health[name] = missing_context(name)[1]

        orphans_changed = False
        for name in orphan_dirty:
            orphans_changed |= self._recompute_orphans(name, by_name, provs)
        if orphans_changed:
            self._orphans = tuple(o for name in sorted(self._orphans_by) for o in self._orphans_by[name])
        claims = self._claims
        if orphans_changed or dirty:
            claims = {}
            leases = self._leases
            for o in self._orphans:
                if o.claimed_lease_id in leases:
                    claims.setdefault(o.claimed_lease_id, []).append(o)  # type: ignore[arg-type]
        old_claims = self._claims
        touched = {lid for lid in dirty if lid in self._base}
        touched |= restamped
        for lid in claims.keys() | old_claims.keys():
            if claims.get(lid) != old_claims.get(lid) and lid in self._base:
                touched.add(lid)
        self._claims = claims
        claimed, rows_now = self._claimed, self._rows
        resort = bool(removed)
        places: list[tuple[int, GroundTruthRow]] = []
        # Many touched rows (a stale provider's, restamped each tick): their places from one
        # lease -> index map made for this step, not a bisection making keys per probe.
        where = {r.lease_id: i for i, r in enumerate(rows_now)} if len(touched) > _BISECT_MAX else None
        for lid in touched:
            row = self._base[lid]
            mine = claims.get(lid)
            if mine:
                claimed[lid] = row = claimed_row(row, mine)
            else:
                claimed.pop(lid, None)
            if not resort:  # on this lease's row, under the same sort key: the same place
                if where is not None:
                    i = where.get(lid, len(rows_now))
                else:
                    i = bisect_left(rows_now, _sort_key(row), key=_sort_key)
                if i < len(rows_now) and rows_now[i].lease_id == lid and _same_key(rows_now[i], row):
                    places.append((i, row))
                else:
                    resort = True  # a new lease or a new sort key
        if resort:
            self._rows = tuple(sorted((claimed.get(lid, r) for lid, r in self._base.items()), key=_sort_key))
        elif places:  # same leases, same sort keys: the changed rows in place, no re-sort
            rows = list(self._rows)
            for i, row in places:
                rows[i] = row
            self._rows = tuple(rows)
        self._db = db
        return GroundTruth(
            generated_at=now,
            providers=tuple(health[name] for name in sorted(health)),
            rows=self._rows,
            orphans=self._orphans,
            db_path=db.path,
            schema_variant=db.schema_variant,
            db_problems=db.problems,
        )

    # ------------------------------------------------------------------ sandbox.db side

    def _diff_db(self, db: DbState, dirty: set[str]) -> None:
        old = self._leases
        new: dict[str, LeaseRecord] = {}
        for lease in db.leases:
            lid = lease.lease_id
            new[lid] = lease
            prev = old.get(lid)
            if prev is not lease and prev != lease:
                dirty.add(lid)
        dirty.update(lid for lid in old if lid not in new)
        self._leases = new
        if db.terminals is not self._terms:
            _regroup(self._terms, db.terminals, self._terms_by, dirty)
            self._terms = db.terminals
        if db.chat_sessions is not self._sessions:
            _regroup(self._sessions, db.chat_sessions, self._sess_by, dirty)
            self._sessions = db.chat_sessions
        for attr, mapping in (("_snaps", db.resource_snapshots), ("_problems", db.lease_problems)):
            prev_map = getattr(self, attr)
            if mapping is not prev_map:
                for lid in mapping.keys() | prev_map.keys():
                    a, b = mapping.get(lid), prev_map.get(lid)
                    if a is not b and a != b:
                        dirty.add(lid)
                setattr(self, attr, mapping)

    def _judge(
        self,
        db: DbState,
        todo: list[LeaseRecord],
        provs: dict[str, Prov],
        health: dict[str, ProviderHealth],
        orphan_dirty: set[str],
    ) -> None:
        ids = [lease.lease_id for lease in todo]
        sub = DbState(
            path=db.path,
            schema_variant=db.schema_variant,
            read_at=db.read_at,
            leases=tuple(todo),
            terminals=tuple(t for lid in ids for t in _members(self._terms_by.get(lid))),
            chat_sessions=tuple(s for lid in ids for s in _members(self._sess_by.get(lid))),
            resource_snapshots=db.resource_snapshots,
            lease_problems=db.lease_problems,
        )
        matches: dict[str, str] = {}
        keyed, _, _ = walk_leases(sub, provs, health, matches)
        problems = db.lease_problems
        for lease, (_, row) in zip(todo, keyed, strict=True):
            lid = lease.lease_id
            self._forget(lid, orphan_dirty, keep_row=True)
            pname = lease.provider_name
            self._base[lid] = row
            cid = lease.current_instance_id
            if cid is not None:
                _hold(self._by_cid.setdefault(pname, {}), cid, lid)
            odd = problems.get(lid) if problems else None
            if not (odd and problems_provider_unknown(odd)):
                self._named[pname] = self._named.get(pname, 0) + 1
            else:
                self._uncounted.add(lid)
            iid = matches.get(lid)
            if iid is not None:
                self._match[lid] = iid
                counts = self._matched.setdefault(pname, {})
                counts[iid] = counts.get(iid, 0) + 1
                orphan_dirty.add(pname)

    def _forget(self, lid: str, orphan_dirty: set[str], *, keep_row: bool = False) -> None:
        """Drop what the last step knew about lease `lid` (its indexes; its row unless kept)."""
        row = self._base.get(lid)
        if row is None:
            return
        if not keep_row:
            del self._base[lid]
            self._claimed.pop(lid, None)
        pname = row.provider
        if row.instance_id is not None:
            held = self._by_cid.get(pname)
            if held is not None:
                _release(held, row.instance_id, lid)
                if not held:
                    del self._by_cid[pname]
        if lid in self._uncounted:
            self._uncounted.discard(lid)
        else:
            self._named[pname] -= 1
            if not self._named[pname]:
                del self._named[pname]
        iid = self._match.pop(lid, None)
        if iid is not None:
            counts = self._matched[pname]
            counts[iid] -= 1
            if not counts[iid]:
                del counts[iid]
            orphan_dirty.add(pname)

    def _leases_of(self, name: str) -> list[str]:
        """The leases whose row of the last step is at provider `name`: a range of `_rows`, which
        is in _sort_key order (provider first), found by bisection. Asked before a step judges
        anything (a listing's shape changed, a provider left or is stale), so the last step's rows
        are the leases judged at each provider; no set of lease ids per provider is kept (~0.5 MB
        at 10k leases, issue 10, RSS)."""
        rows = self._rows
        lo = bisect_left(rows, f"{name}\0", key=_sort_key)
        hi = bisect_left(rows, f"{name}\x01", lo=lo, key=_sort_key)
        return [r.lease_id for r in rows[lo:hi] if r.provider == name]

    def _restamp(self, name: str, ctx: Prov, dirty: set[str], restamped: set[str]) -> None:
        """A stale provider's rows at the new `now` without judging them again: only `stale_age_s`
        and the reason's prefix ("unreachable for 3m") follow the clock, so a row whose lease,
        records and listing did not change (not in `dirty`) gets those two replaced. At 10k leases
        an outage of one provider re-judged its ~2,500 leases every tick. A row whose reason does
        not start with the last step's prefix (a degraded, unjudgeable row) is judged again."""
        members = self._leases_of(name)
        if not members:
            return
        old = self._prefix.get(name)
        new, age = ctx.stale_prefix, ctx.stale_age
        if old is None or age is None:  # not stale last step (then its listing changed anyway)
            dirty.update(members)
            return
        base = self._base
        # One str per distinct new reason: the provider's rows mostly share one, and a new str per
        # row per tick was ~150 bytes a stale row in every generation of rows held (issue 10, RSS).
        reasons: dict[str, str] = {}
        for lid in members:
            if lid in dirty:
                continue
            row = base.get(lid)
            if row is None:
                dirty.add(lid)
                continue
            if row.stale_age_s is None:  # judged without a provider to match: no age in it
                continue
            reason = row.reason
            if new != old:
                if not reason.startswith(old):
                    dirty.add(lid)
                    continue
                reason = new + reason[len(old) :]
                reason = reasons.setdefault(reason, reason)
            if age == row.stale_age_s and reason is row.reason:
                continue
            values = list(_row_values(row))
            values[_REASON], values[_STALE_AGE] = reason, age
            base[lid] = _build_row(*values)
            restamped.add(lid)

    # ------------------------------------------------------------------ provider side

    def _diff_listings(
        self, by_name: dict[str, ProviderListing], dirty: set[str], orphan_dirty: set[str]
    ) -> None:
        old = self._listings
        for name in old.keys() - by_name.keys():
            dirty.update(self._leases_of(name))
            orphan_dirty.add(name)
            self._index.pop(name, None)
            self._claims_of.pop(name, None)
        for name, listing in by_name.items():
            prev = old.get(name)
            if prev is listing or (prev is not None and _relisted_as_is(prev, listing)):
                continue
            orphan_dirty.add(name)
            old_index = self._index.get(name)
            if not _indexed(listing):
                index = None
            elif prev is not None and prev.instances is listing.instances and old_index is not None:
                index = old_index
            else:
                index = build_index(listing.instances)
            if index is None:
                self._index.pop(name, None)
            else:
                self._index[name] = index
            self._claims_of[name] = frozenset(
                i.claimed_lease_id for i in listing.instances if i.claimed_lease_id is not None
            )
            if (
                prev is not None
                and _shape(prev) == _shape(listing)
                and listing.status is ProviderStatus.OK
                and old_index is not None
                and index is not None
            ):
                if index is not old_index:
                    for key in _changed_keys(old_index, index):
                        held = self._by_cid.get(name, {}).get(key)
                        if held.__class__ is str:
                            dirty.add(held)  # type: ignore[arg-type]
                        elif held:
                            dirty |= held  # type: ignore[operator]
            else:
                dirty.update(self._leases_of(name))
        self._listings = dict(by_name)

    def _recompute_orphans(
        self, name: str, by_name: dict[str, ProviderListing], provs: dict[str, Prov]
    ) -> bool:
        listing = by_name.get(name)
        ctx = provs.get(name)
        before = self._orphans_by.get(name)
        if listing is None or ctx is None or ctx.mode != MODE_OK:
            self._orphans_by.pop(name, None)
            return before is not None
        ctx.matched = set(self._matched.get(name, {}))
        found = sorted(_orphans(listing, ctx, self._leases), key=_iid)
        if found:
            self._orphans_by[name] = found
        else:
            self._orphans_by.pop(name, None)
        return (found or None) != before


def _iid(o: OrphanRow) -> str:
    return o.instance_id


def _changed_keys(old: dict[str, Instance], new: dict[str, Instance]) -> list[str]:
    out = [k for k, v in new.items() if (p := old.get(k)) is not v and p != v]
    out.extend(k for k in old if k not in new)
    return out


def _members(group: Any) -> tuple[Any, ...]:
    """A lease's records as `_regroup` keeps them (None, one record, or a tuple of several)."""
    if group is None:
        return ()
    return group if group.__class__ is tuple else (group,)


def _group(recs: tuple[Any, ...]) -> Any:
    return recs[0] if len(recs) == 1 else recs


def _moved_places(old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[list[Any], list[Any]] | None:
    """(records gone, records come) between `old` and `new` by place: the records at the places
    that hold another object, and the longer one's tail (a record that only moved is gone and
    come again, its lease judged again). None when many places differ (a record inserted or
    deleted before the end shifts the rest): compare by identity then."""
    n = min(len(old), len(new))
    places = list(compress(range(n), map(is_not, old, new)))  # map stops at the shorter
    if len(places) > max(64, n // 8):
        return None
    return [old[i] for i in places] + list(old[n:]), [new[i] for i in places] + list(new[n:])


def _regroup(old: tuple[Any, ...], new: tuple[Any, ...], by: dict[str, Any], dirty: set[str]) -> None:
    """Apply the records added/removed between `old` and `new` (by identity) to the per-lease
    groups in `by`; the leases of every such record are dirty. A refresh replaces a few records
    in place (the sandbox.db tracker keeps the others as the same objects, in rowid order): those
    are found by place, with no set of every record's id (two sets of ~22k ids, ~5.5 MB made and
    dropped per step at 10k leases, tracemalloc; issue 10, RSS)."""
    moved = _moved_places(old, new)
    if moved is None:
        old_ids = set(map(id, old))
        new_ids = set(map(id, new))
        moved = [r for r in old if id(r) not in new_ids], [r for r in new if id(r) not in old_ids]
    gone, came = moved
    for rec in gone:
        lid = rec.lease_id
        group = by.get(lid)
        if group is not None:
            kept = tuple([r for r in _members(group) if r is not rec])
            if kept:
                by[lid] = _group(kept)
            else:
                del by[lid]
        dirty.add(lid)
    added: dict[str, list[Any]] = {}  # collected first: one tuple per lease, not one per record
    for rec in came:
        added.setdefault(rec.lease_id, []).append(rec)
    for lid, recs in added.items():
        by[lid] = _group((*_members(by.get(lid)), *recs))
        dirty.add(lid)
