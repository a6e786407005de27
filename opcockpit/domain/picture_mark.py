"""A fingerprint of the fleet picture the event ledger last diffed, so an unchanged fleet skips it.

A cron `snapshot` records the fleet's changes into the ledger (services/history.py): it loads the
last stored picture (one entry per lease, instance, orphan and provider), builds the new one and
diffs them. At 10k leases loading and diffing cost ~0.15 s of the snapshot's 1 s budget (issue 9),
and most runs find nothing changed. The ledger therefore keeps, under `MARK_KEY` inside the stored
picture itself (written in the same transaction as the entries), the fingerprint of the new
picture whose diff against the stored picture finds nothing to record: the one a snapshot just
recorded (the kept picture is a fixed point of the diff: diffing the same new picture against it
again keeps it and finds no event, tests/test_snapshot_picture_mark.py), or one it diffed and
found nothing in. A later run fingerprints its new picture; when that is the mark, the diff is
skipped without loading anything. (The mark names the new picture, not the stored one: a stale
row or a failed listing keeps stored entries, so the two differ for as long as that lasts.)

The invariant the history service keeps: while the mark is present, the stored picture is the
one it was written with. Every append that changes the picture writes the new mark or deletes
it (the live cockpit, which diffs by change and never fingerprints the whole picture), so a stale
mark can only be left by a writer that predates the mark. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

__all__ = ["MARK_KEY", "fingerprint", "split_mark"]

# Not a subject key: subjects start with "L|", "I|", "O|" or "P|" (domain/events.py).
MARK_KEY = "#|mark"


def fingerprint(picture: Mapping[str, Any]) -> str:
    """A digest of `picture`'s entries, independent of their order (the ledger returns them by key).

    Over the repr of the sorted entries (one C-level pass: ~2x cheaper than JSON). Equal reprs
    mean equal entries for the values a picture holds (str, None, numbers, str enums), so a match
    is never wrong; a mismatch of equal pictures (a value read back from the ledger that reprs
    differently from the in-memory one, e.g. a str enum) costs one full diff, never an event."""
    entries = sorted(picture.items())
    if MARK_KEY in picture:
        entries = [e for e in entries if e[0] != MARK_KEY]
    return hashlib.blake2b(repr(entries).encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


def split_mark(picture: dict[str, Any]) -> str | None:
    """Remove the mark from a picture read back from the ledger (in place); return it (None: none)."""
    value = picture.pop(MARK_KEY, None)
    if not value:
        return None
    first = value[0]
    return first if isinstance(first, str) else None
