"""Small helpers for decoding provider payloads (shared by the HTTP adapters)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from opcockpit.domain.models import Instance

# Labels/metadata keys that name the lease an instance belongs to (cockpit- or LEON-written).
LEASE_KEYS = ("lease_id", "leon.lease_id")


def parse_time(value: Any) -> datetime | None:
    """RFC3339 (with Z or offset) -> aware UTC datetime; anything unparseable -> None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Go emits nanoseconds; fromisoformat takes at most microseconds.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tail = rest[:digits], rest[digits:]
        text = f"{head}.{frac[:6].ljust(6, '0')}{tail}" if frac else head + tail
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def str_map(value: Any) -> dict[str, str]:
    """A provider's labels/metadata as str -> str (None and non-maps -> {})."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def claimed_lease(labels: Mapping[str, str]) -> str | None:
    for key in LEASE_KEYS:
        value = labels.get(key)
        if value:
            return value
    return None


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class ReusedInstances:
    """The previous complete listing's Instances, handed back for provider items that did not change.

    Why: at 50k leases every full listing rebuilt every Instance (time parsing, label maps) each
    list interval although almost none had changed; handing back the very same (frozen) object
    also lets the incremental reconcile skip it by identity instead of comparing it field by field.

    An item is unchanged when its key (the provider's id), its signature (every other raw field
    the Instance is made of, as sent) and its raw labels equal the previous ones; anything else is
    built afresh. A listing calls `start()`, `instance(...)` per item, and `done()` once complete:
    a listing that fails leaves the previous one in place.

    The signature is kept as its hash, not the tuple of raw values (issue 10, RSS: a tuple and
    the raw strings it pinned per instance, ~2 MB at 10k instances); like the sandbox.db tracker's
    row hashes, a 64-bit collision would hide one change until the item changes again.
    """

    __slots__ = ("_next", "_prev")

    def __init__(self) -> None:
        self._prev: dict[str, tuple[int, Instance]] = {}
        self._next: dict[str, tuple[int, Instance]] = {}

    def __len__(self) -> int:
        return len(self._prev)

    def start(self) -> None:
        self._next = {}

    def instance(self, key: Any, sig: tuple[Any, ...], labels: Any, make: Callable[[], Instance]) -> Instance:
        """The previous Instance for `key` if `sig` and `labels` are equal to its own, else `make()`."""
        if not isinstance(key, str):
            return make()  # make() reports the malformed item
        try:
            sig_hash = hash(sig)
        except TypeError:  # a malformed item (a list or map where a value belongs): never reused
            return make()
        hit = self._prev.get(key)
        # Labels as sent compare equal to the Instance's str map only when they were str -> str
        # already; anything else (None values, numbers) is rebuilt, never guessed.
        if hit is not None and hit[0] == sig_hash and hit[1].labels == labels:
            self._next[key] = hit
            return hit[1]
        made = make()
        self._next[key] = (sig_hash, made)
        return made

    def done(self) -> None:
        self._prev, self._next = self._next, {}


def leon_api_fields(block: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """The API-style block of LEON's ~/.leon/sandboxes/<name>.json -> our provider fields
    (api_key, api_url, target, region from region_id/region). `data` is the whole file."""
    del data
    fields: dict[str, Any] = {}
    for key in ("api_key", "api_url", "target"):
        if isinstance(block.get(key), str) and block[key]:
            fields[key] = block[key]
    region = block.get("region_id") or block.get("region")
    if isinstance(region, str) and region:
        fields["region"] = region
    return fields
