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

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opcockpit.domain.events import (
    _DOWN,
    _INST,
    _LEASE,
    _ORPH,
    _PROV,
    Event,
    Picture,
    _isoformats,
    diff_pictures,
)
from opcockpit.domain.models import GroundTruth, GroundTruthRow, OrphanRow

__all__ = ["KeptPicture", "PictureTracker", "PictureUpdate", "TrackedPicture", "diff_changed"]

_ABSENT: Any = object()  # in KeptPicture's differences: a key the tracker's picture has and it lacks


@dataclass(frozen=True, slots=True)
class PictureUpdate:
    changed: frozenset[str]  # picture keys whose entry was added, changed or removed
    exact: bool  # False: a case the keys cannot express (shared instance): diff in full
    # `picture`'s entries of the `changed` keys before this update (None: it had none), so a
    # caller keeping another picture as its differences from `picture` can follow it by change
    before: Mapping[str, tuple[Any, ...] | None] = field(default_factory=dict)


def _lease_entry(r: GroundTruthRow, updated: str | None = _ABSENT) -> tuple[Any, ...]:
    """picture_of's entry of a lease; `updated`: its updated_at as text, when made already."""
    if updated is _ABSENT:
        updated = r.updated_at.isoformat() if r.updated_at else None
    return (
        r.convergence.value, r.desired_state, r.observed_state, r.provider_state, r.instance_id,
        r.provider, r.thread_id, updated,
    )  # fmt: skip


def _orphan_entry(o: OrphanRow) -> tuple[Any, ...]:
    return (o.provider_state, o.claim, o.claimed_lease_id)


def _inst_key(r: GroundTruthRow) -> str | None:
    if r.instance_id and r.provider_state is not None:
        return f"{_INST}|{r.provider}|{r.instance_id}"
    return None


class PictureTracker:
    """`picture` == events.picture_of(gt) of the last `update(gt)`, maintained by change."""

    def __init__(self) -> None:
        self.picture = TrackedPicture(self)
        self._provs: dict[str, tuple[Any, ...]] = {}  # the provider keys' entries
        self._rows: dict[str, GroundTruthRow] = {}
        self._orphans: dict[str, OrphanRow] = {}
        self._row_seq: tuple[GroundTruthRow, ...] | None = None
        self._orphan_seq: tuple[OrphanRow, ...] | None = None
        # provider -> instance id (the row's own str) -> the lease whose row names it; a set only
        # when several do (rare: one set per instance was ~2 MB at 10k leases, issue 10's memory
        # budget). Not by instance key: a key text per instance was ~0.5 MB at 10k (tracemalloc).
        self._inst_rows: dict[str, dict[str, str | set[str]]] = {}
        self._inst_orphan: dict[str, str] = {}  # instance key -> orphan key naming it
        self._shared = 0  # instance keys named by more than one lease
        # Instance keys that became or stopped being shared this update: reported as changed
        # whatever the tracker's own entry says. While shared, `picture` may hold the other
        # lease's entry than picture_of's (the caller diffed in full and kept picture_of's), so
        # "same as my entry" does not mean "same as what the caller kept".
        self._reshared: set[str] = set()
        # this update's touched keys -> their entries before it (noted before the first change
        # that can move them: the entries are made from the rows, none is kept)
        self._was: dict[str, tuple[Any, ...] | None] = {}

    @property
    def provider_keys(self) -> frozenset[str]:
        """The provider keys in `picture` (the only ones: update() drops the others)."""
        return frozenset(self._provs)

    def update(self, gt: GroundTruth) -> PictureUpdate:
        self.picture.forget()
        provs = {f"{_PROV}|{p.name}": (p.status.value, p.error) for p in gt.providers}
        old_provs, self._provs = self._provs, provs
        before: dict[str, tuple[Any, ...] | None] = {
            k: old_provs.get(k) for k in old_provs.keys() | provs.keys() if old_provs.get(k) != provs.get(k)
        }
        was = self._was = {}
        if gt.rows is not self._row_seq:
            self._diff_rows(gt.rows)
            self._row_seq = gt.rows
        if gt.orphans is not self._orphan_seq:
            self._diff_orphans(gt.orphans)
            self._orphan_seq = gt.orphans
        reshared, self._reshared = self._reshared, set()
        self._was = {}
        for k, old in was.items():
            if old != self._entry(k) or k in reshared:
                before[k] = old
        return PictureUpdate(frozenset(before), exact=self._shared == 0, before=before)

    def _note(self, k: str) -> None:
        """Keep `k`'s entry as it was before this update (first call per update only)."""
        if k not in self._was:
            self._was[k] = self._entry(k)

    def _entry(self, k: str) -> tuple[Any, ...] | None:
        kind = k[:1]
        if kind == _LEASE:
            row = self._rows.get(k[2:])
            return _lease_entry(row) if row is not None else None
        if kind == _INST:
            provider, _, iid = k[2:].partition("|")
            held = self._inst_rows.get(provider)
            holders = held.get(iid) if held is not None else None
            if holders:
                return self._held_entry(holders)
            okey = self._inst_orphan.get(k)
            if okey is not None:
                return (self._orphans[okey].provider_state, None)
            return None
        if kind == _PROV:
            return self._provs.get(k)
        if kind != _ORPH:
            return None
        o = self._orphans.get(k[2:].replace("|", "/", 1))
        return _orphan_entry(o) if o is not None else None

    def _held_entry(self, holders: str | set[str]) -> tuple[Any, ...]:
        """An instance key's entry from the lease (one of the leases) whose row names it."""
        row = self._rows[holders if holders.__class__ is str else next(iter(holders))]  # type: ignore[index, arg-type]
        return (row.provider_state, row.lease_id)

    def whole(self) -> Picture:
        """Every entry, in one walk (no key parsed): what the full diffs read."""
        pic = dict(self._provs)
        rows = self._rows
        for (lid, row), updated in zip(
            rows.items(), _isoformats([r.updated_at for r in rows.values()]), strict=True
        ):
            pic[f"{_LEASE}|{lid}"] = _lease_entry(row, updated)
        for provider, held in self._inst_rows.items():
            for iid, holders in held.items():
                pic[f"{_INST}|{provider}|{iid}"] = self._held_entry(holders)
        for ik, okey in self._inst_orphan.items():
            if ik not in pic:
                pic[ik] = (self._orphans[okey].provider_state, None)
        for o in self._orphans.values():
            pic[f"{_ORPH}|{o.provider}|{o.instance_id}"] = _orphan_entry(o)
        return pic

    def _diff_rows(self, rows: Iterable[GroundTruthRow]) -> None:
        known, seen = self._rows, set()
        for r in rows:
            lid = r.lease_id
            seen.add(lid)
            prev = known.get(lid)
            if prev is r:
                continue
            self._note(f"{_LEASE}|{lid}")
            ik = _inst_key(r)
            if ik is not None:
                self._note(ik)
            if prev is not None:
                self._unbind(prev)
            known[lid] = r
            if ik is not None:
                self._hold(r)
        if len(seen) != len(known):
            for lid in [lid for lid in known if lid not in seen]:
                self._note(f"{_LEASE}|{lid}")
                self._unbind(known[lid])
                del known[lid]

    def _unbind(self, r: GroundTruthRow) -> None:
        ik = _inst_key(r)
        if ik is None:
            return
        self._note(ik)
        self._release(r)

    def _hold(self, r: GroundTruthRow) -> None:
        held = self._inst_rows.setdefault(r.provider, {})
        iid, lid = r.instance_id, r.lease_id
        have = held.get(iid)  # type: ignore[arg-type]
        if have is None:
            held[iid] = lid  # type: ignore[index]
        elif have.__class__ is str:
            if have != lid:
                held[iid] = {have, lid}  # type: ignore[index, arg-type]
                self._shared += 1
                self._reshared.add(_inst_key(r))  # type: ignore[arg-type]
        else:
            have.add(lid)  # type: ignore[union-attr]

    def _release(self, r: GroundTruthRow) -> None:
        held = self._inst_rows.get(r.provider)
        iid = r.instance_id
        have = held.get(iid) if held is not None else None  # type: ignore[arg-type]
        if have is None:
            return
        if have.__class__ is str:
            if have == r.lease_id:
                del held[iid]  # type: ignore[arg-type, union-attr]
                if not held:
                    del self._inst_rows[r.provider]
            return
        have.discard(r.lease_id)  # type: ignore[union-attr]
        if len(have) == 1:  # back to one holder: a str again, the instance no longer shared
            held[iid] = next(iter(have))  # type: ignore[index]
            self._shared -= 1
            self._reshared.add(_inst_key(r))  # type: ignore[arg-type]

    def _diff_orphans(self, orphans: Iterable[OrphanRow]) -> None:
        known, seen = self._orphans, set()
        for o in orphans:
            key = o.key
            seen.add(key)
            prev = known.get(key)
            if prev is o:
                continue
            ik = f"{_INST}|{o.provider}|{o.instance_id}"
            self._note(ik)
            self._note(f"{_ORPH}|{o.provider}|{o.instance_id}")
            known[key] = o
            self._inst_orphan[ik] = key
        if len(seen) != len(known):
            for key in [k for k in known if k not in seen]:
                o = known[key]
                ik = f"{_INST}|{o.provider}|{o.instance_id}"
                self._note(ik)
                self._note(f"{_ORPH}|{o.provider}|{o.instance_id}")
                del known[key]
                if self._inst_orphan.get(ik) == key:
                    del self._inst_orphan[ik]


class TrackedPicture(Mapping[str, tuple[Any, ...]]):
    """A tracker's picture: each entry is made from its rows when read, none is kept (a dict of
    a tuple per lease, instance and orphan, their keys and the leases' update times as text were
    ~3.3 MB at 10k leases, tracemalloc; issue 10, RSS). A round by change reads the changed keys
    and the providers (`provider_entries`); a walk (the full diffs after a provider went down or
    came back: several walks each) makes the whole picture once and keeps it until the tracker's
    next update."""

    __slots__ = ("_tracker", "_whole")

    def __init__(self, tracker: PictureTracker) -> None:
        self._tracker = tracker
        self._whole: Picture | None = None

    def forget(self) -> None:
        """The tracker moved: a whole picture made before is not this one any more."""
        self._whole = None

    def _all(self) -> Picture:
        if self._whole is None:
            self._whole = self._tracker.whole()
        return self._whole

    def __getitem__(self, key: str) -> tuple[Any, ...]:
        entry = self.get(key)
        if entry is None:
            raise KeyError(key)
        return entry  # type: ignore[no-any-return]

    def get(self, key: str, default: Any = None) -> Any:
        whole = self._whole
        entry = whole.get(key) if whole is not None else self._tracker._entry(key)
        return default if entry is None else entry

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def items(self) -> Any:
        return self._all().items()

    def values(self) -> Any:
        return self._all().values()

    def provider_entries(self) -> dict[str, tuple[Any, ...]]:
        return dict(self._tracker._provs)


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
        pic = dict(self._tracker.picture.items())
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
    prev: Mapping[str, Any], new: Mapping[str, Any], changed: Iterable[str], observed_at: datetime
) -> tuple[list[Event], dict[str, Any]] | None:
    """`diff_pictures(prev, new)` when only `changed` keys of `new` moved since `prev` was kept:
    (events, the kept entries of those keys, None for keys to drop). None when a provider went
    down or came back (what is kept then depends on every key of that provider: diff in full)."""
    keys = set(changed)
    if isinstance(new, TrackedPicture):  # not a walk making every entry
        provs = new.provider_entries()
    else:
        provs = {k: v for k, v in new.items() if k[0] == _PROV}
    prev_provs = {k: v for k, v in prev.items() if k[0] == _PROV}
    if _down(provs) != _down(prev_provs):
        return None
    sub_prev = {k: prev[k] for k in keys | prev_provs.keys() if k in prev}
    sub_new = {k: v for k in keys | provs.keys() if (v := new.get(k)) is not None}
    events, keep = diff_pictures(sub_prev, sub_new, observed_at)
    return events, {k: keep.get(k) for k in keys | provs.keys() | prev_provs.keys()}
