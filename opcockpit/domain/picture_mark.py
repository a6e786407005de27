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

import orjson

__all__ = ["MARK_KEY", "fingerprint", "split_mark"]

# Not a subject key: subjects start with "L|", "I|", "O|" or "P|" (domain/events.py).
MARK_KEY = "#|mark"


def fingerprint(picture: Mapping[str, Any]) -> str:
    """A digest of `picture`'s entries, independent of their order (the ledger returns them by key).

    Over orjson's text of the picture with its keys sorted (C: ~3x cheaper than the repr of the
    sorted entries it replaces, which a run with an older mark then diffs once, finding nothing).
    Equal texts mean equal entries for the values a picture holds (str, None, numbers, str enums
    as their value), so a match is never wrong; a value orjson cannot write takes the repr of the
    sorted entries (the same picture always takes the same way)."""
    if MARK_KEY in picture:
        picture = {k: v for k, v in picture.items() if k != MARK_KEY}
    try:
        text = orjson.dumps(picture, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError: an int beyond 64 bits, a lone surrogate
        text = repr(sorted(picture.items())).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(text, digest_size=20).hexdigest()


def split_mark(picture: dict[str, Any]) -> str | None:
    """Remove the mark from a picture read back from the ledger (in place); return it (None: none)."""
    value = picture.pop(MARK_KEY, None)
    if not value:
        return None
    first = value[0]
    return first if isinstance(first, str) else None
