"""The event ledger's fleet picture, kept by change (issue 10). Pure: no I/O, no clock.

`events.picture_of(gt)` builds one entry per lease, instance, orphan and provider; at 10k leases
building it and diffing it against the last one every refresh was ~15 % of the cockpit's CPU,
for the few subjects that changed. `PictureTracker.update(gt)` keeps the same picture
(`tracker.picture == picture_of(gt)`, checked by tests/test_picture_inc.py) and returns the keys
whose entry changed: rows and orphans are compared by identity (the incremental reconciler keeps
unchanged rows as the same objects), so the cost follows the change. `diff_changed` then diffs
only those keys and gives what `diff_pictures` gives over the whole picture.

One case is not tracked by key: two leases naming the same instance (picture_of keeps the later
row's instance entry, an order rule); `update` then says `exact=False`, `picture` may hold the
other lease for that instance, and the caller builds and diffs the picture in full.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opcockpit.domain.events import _DOWN, _INST, _LEASE, _ORPH, _PROV, Event, Picture, diff_pictures
from opcockpit.domain.models import GroundTruth, GroundTruthRow, OrphanRow

__all__ = ["KeptPicture", "PictureTracker", "PictureUpdate", "diff_changed"]


@dataclass(frozen=True, slots=True)
class PictureUpdate:
    changed: frozenset[str]  # picture keys whose entry was added, changed or removed
    exact: bool  # False: a case the keys cannot express (shared instance): diff in full
    # `picture`'s entries of the `changed` keys before this update (None: it had none), so a
    # caller keeping another picture as its differences from `picture` can follow it by change
    before: Mapping[str, tuple[Any, ...] | None] = field(default_factory=dict)


def _lease_entry(r: GroundTruthRow) -> tuple[Any, ...]:
    return (
        r.convergence.value, r.desired_state, r.observed_state, r.provider_state, r.instance_id,
        r.provider, r.thread_id, r.updated_at.isoformat() if r.updated_at else None,
    )  # fmt: skip


def _inst_key(r: GroundTruthRow) -> str | None:
    if r.instance_id and r.provider_state is not None:
        return f"{_INST}|{r.provider}|{r.instance_id}"
    return None


class PictureTracker:
    """`picture` == events.picture_of(gt) of the last `update(gt)`, maintained by change."""

    def __init__(self) -> None:
        self.picture: Picture = {}
        self._rows: dict[str, GroundTruthRow] = {}
        self._orphans: dict[str, OrphanRow] = {}
        self._row_seq: tuple[GroundTruthRow, ...] | None = None
        self._orphan_seq: tuple[OrphanRow, ...] | None = None
        # instance key -> the lease whose row names it; a set only when several do (rare: one
        # set per instance was ~2 MB at 10k leases, issue 10's memory budget)
        self._inst_rows: dict[str, str | set[str]] = {}
        self._inst_orphan: dict[str, str] = {}  # instance key -> orphan key naming it
        self._shared = 0  # instance keys named by more than one lease
        # Instance keys that became or stopped being shared this update: reported as changed
        # whatever the tracker's own entry says. While shared, `picture` may hold the other
        # lease's entry than picture_of's (the caller diffed in full and kept picture_of's), so
        # "same as my entry" does not mean "same as what the caller kept".
        self._reshared: set[str] = set()
        self._prov_keys: set[str] = set()  # the provider keys in `picture`

    @property
    def provider_keys(self) -> frozenset[str]:
        """The provider keys in `picture` (the only ones: update() drops the others)."""
        return frozenset(self._prov_keys)

    def update(self, gt: GroundTruth) -> PictureUpdate:
        touched: set[str] = set()
        pic = self.picture
        before: dict[str, tuple[Any, ...] | None] = {}
        provs = {f"{_PROV}|{p.name}": (p.status.value, p.error) for p in gt.providers}
        # The provider keys this tracker put in: not a walk over every key of the picture
        # (~17k at 10k leases, the largest part of a quiet refresh's record; issue 10).
        for k in [k for k in self._prov_keys if k not in provs and k in pic]:
            before[k] = pic.pop(k)
            touched.add(k)
        self._prov_keys = set(provs)
        for k, v in provs.items():
            old = pic.get(k)
            if old != v:
                before[k] = old
                pic[k] = v
                touched.add(k)
        if gt.rows is not self._row_seq:
            self._diff_rows(gt.rows, touched)
            self._row_seq = gt.rows
        if gt.orphans is not self._orphan_seq:
            self._diff_orphans(gt.orphans, touched)
            self._orphan_seq = gt.orphans
        changed = set()
        reshared, self._reshared = self._reshared, set()
        for k in touched:
            if k[0] == _PROV:
                changed.add(k)
                continue
            v = self._entry(k)
            old = pic.get(k)
            if old != v or (v is None) != (k not in pic) or k in reshared:
                changed.add(k)
                before[k] = old
            if v is None:
                pic.pop(k, None)
            else:
                pic[k] = v
        return PictureUpdate(frozenset(changed), exact=self._shared == 0, before=before)

    def _entry(self, k: str) -> tuple[Any, ...] | None:
        kind = k[0]
        if kind == _LEASE:
            row = self._rows.get(k[2:])
            return _lease_entry(row) if row is not None else None
        if kind == _INST:
            holders = self._inst_rows.get(k)
            if holders:
                row = self._rows[holders if holders.__class__ is str else next(iter(holders))]  # type: ignore[index, arg-type]
                return (row.provider_state, row.lease_id)
            okey = self._inst_orphan.get(k)
            if okey is not None:
                return (self._orphans[okey].provider_state, None)
            return None
        o = self._orphans.get(k[2:].replace("|", "/", 1))
        return (o.provider_state, o.claim, o.claimed_lease_id) if o is not None else None

    def _diff_rows(self, rows: Iterable[GroundTruthRow], touched: set[str]) -> None:
        known, seen = self._rows, set()
        for r in rows:
            lid = r.lease_id
            seen.add(lid)
            prev = known.get(lid)
            if prev is r:
                continue
            if prev is not None:
                self._unbind(prev, touched)
            known[lid] = r
            touched.add(f"{_LEASE}|{lid}")
            ik = _inst_key(r)
            if ik is not None:
                self._hold(ik, lid)
                touched.add(ik)
        if len(seen) != len(known):
            for lid in [lid for lid in known if lid not in seen]:
                self._unbind(known.pop(lid), touched)
                touched.add(f"{_LEASE}|{lid}")

    def _unbind(self, r: GroundTruthRow, touched: set[str]) -> None:
        ik = _inst_key(r)
        if ik is None:
            return
        self._release(ik, r.lease_id)
        touched.add(ik)

    def _hold(self, ik: str, lid: str) -> None:
        held = self._inst_rows.get(ik)
        if held is None:
            self._inst_rows[ik] = lid
        elif held.__class__ is str:
            if held != lid:
                self._inst_rows[ik] = {held, lid}  # type: ignore[arg-type]
                self._shared += 1
                self._reshared.add(ik)
        else:
            held.add(lid)  # type: ignore[union-attr]

    def _release(self, ik: str, lid: str) -> None:
        held = self._inst_rows.get(ik)
        if held is None:
            return
        if held.__class__ is str:
            if held == lid:
                del self._inst_rows[ik]
            return
        held.discard(lid)  # type: ignore[union-attr]
        if len(held) == 1:  # back to one holder: a str again, the instance no longer shared
            self._inst_rows[ik] = next(iter(held))
            self._shared -= 1
            self._reshared.add(ik)

    def _diff_orphans(self, orphans: Iterable[OrphanRow], touched: set[str]) -> None:
        known, seen = self._orphans, set()
        for o in orphans:
            key = o.key
            seen.add(key)
            if known.get(key) is o:
                continue
            prev = known.get(key)
            if prev is not None:
                touched.add(f"{_INST}|{prev.provider}|{prev.instance_id}")
            known[key] = o
            ik = f"{_INST}|{o.provider}|{o.instance_id}"
            self._inst_orphan[ik] = key
            touched.update((ik, f"{_ORPH}|{o.provider}|{o.instance_id}"))
        if len(seen) != len(known):
            for key in [k for k in known if k not in seen]:
                o = known.pop(key)
                ik = f"{_INST}|{o.provider}|{o.instance_id}"
                if self._inst_orphan.get(ik) == key:
                    del self._inst_orphan[ik]
                touched.update((ik, f"{_ORPH}|{o.provider}|{o.instance_id}"))


_ABSENT: Any = object()  # in KeptPicture's differences: a key the tracker's picture has and it lacks


class KeptPicture:
    """Another picture (the ledger's last recorded one) kept as its differences from a
    tracker's `picture`, which it equals but for stale rows and down providers' subjects
    (diff_pictures keeps their previous entries) and what a failed append did not record.

    Why: a second full picture was a dict and an entry per lease and instance (~0.4 MB at 10k
    leases, ~2 MB at 50k; issue 10, RSS) holding the same tuples as the tracker's. `follow(upd)`
    after every `tracker.update` keeps it the same picture (a changed key's old entry moves into
    the differences), so every read below gives what a full dict would."""

    __slots__ = ("_diff", "_tracker")

    def __init__(self, tracker: PictureTracker, picture: Mapping[str, Any]) -> None:
        self._tracker = tracker
        self._diff: dict[str, Any] = {}
        self.reset(picture)

    def reset(self, picture: Mapping[str, Any]) -> None:
        """Keep `picture` (one walk over both pictures)."""
        pic = self._tracker.picture
        diff = {k: v for k, v in picture.items() if pic.get(k) != v}
        diff.update((k, _ABSENT) for k in pic if k not in picture)
        self._diff = diff

    def follow(self, upd: PictureUpdate) -> None:
        """The tracker's picture moved by `upd`: this picture did not."""
        diff, pic = self._diff, self._tracker.picture
        for k, old in upd.before.items():
            mine = diff.setdefault(k, _ABSENT if old is None else old)
            cur = pic.get(k)
            if mine == (_ABSENT if cur is None else cur):
                del diff[k]

    def get(self, key: str) -> tuple[Any, ...] | None:
        mine = self._diff.get(key)
        if mine is None:
            return self._tracker.picture.get(key)
        return None if mine is _ABSENT else mine

    def put(self, key: str, value: tuple[Any, ...] | None) -> None:
        """Set `key`'s entry (None: drop it)."""
        cur = self._tracker.picture.get(key)
        if value == cur:
            self._diff.pop(key, None)
        else:
            self._diff[key] = _ABSENT if value is None else value

    def entries(self, keys: Iterable[str]) -> dict[str, Any]:
        """The entries of `keys` and of every provider key (what diff_changed reads of `prev`)."""
        provs = self._tracker.provider_keys | {k for k in self._diff if k[0] == _PROV}
        out = {}
        for k in set(keys) | provs:
            v = self.get(k)
            if v is not None:
                out[k] = v
        return out

    def full(self) -> Picture:
        """The whole picture as a dict (a walk over it: for the full diff only)."""
        pic = dict(self._tracker.picture)
        for k, v in self._diff.items():
            if v is _ABSENT:
                pic.pop(k, None)
            else:
                pic[k] = v
        return pic

    def __len__(self) -> int:  # differences held (tests, diagnostics)
        return len(self._diff)


def _down(entries: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(k for k, v in entries.items() if k[0] == _PROV and v is not None and v[0] in _DOWN)


def diff_changed(
    prev: Mapping[str, Any], new: Picture, changed: Iterable[str], observed_at: datetime
) -> tuple[list[Event], dict[str, Any]] | None:
    """`diff_pictures(prev, new)` when only `changed` keys of `new` moved since `prev` was kept:
    (events, the kept entries of those keys, None for keys to drop). None when a provider went
    down or came back (what is kept then depends on every key of that provider: diff in full)."""
    keys = set(changed)
    provs = {k: v for k, v in new.items() if k[0] == _PROV}
    prev_provs = {k: v for k, v in prev.items() if k[0] == _PROV}
    if _down(provs) != _down(prev_provs):
        return None
    sub_prev = {k: prev[k] for k in keys | prev_provs.keys() if k in prev}
    sub_new = {k: new[k] for k in keys | provs.keys() if k in new}
    events, keep = diff_pictures(sub_prev, sub_new, observed_at)
    return events, {k: keep.get(k) for k in keys | provs.keys() | prev_provs.keys()}
