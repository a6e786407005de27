"""Small helpers for decoding provider payloads (shared by the HTTP adapters)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Hashable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from opcockpit.domain.models import Instance, InstanceResources

# Labels/metadata keys that name the lease an instance belongs to (cockpit- or LEON-written).
LEASE_KEYS = ("lease_id", "leon.lease_id")


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def json_array_items(content: bytes) -> Iterator[Any] | None:
    """The items of a JSON array body one at a time, as `json.loads(content)` would give them
    (same encoding detection, same errors: JSONDecodeError, UnicodeDecodeError, raised while
    iterating); None when the body is not an array (decode it whole for the error). A listing of
    12k containers decoded whole was ~23 MB of Python objects at its peak, every listing, whose
    freed pymalloc arenas the instances built meanwhile kept (issue 10, RSS at 50k leases)."""
    text = content.decode(json.detect_encoding(content), "surrogatepass")
    at = _WS.match(text, 0).end()  # type: ignore[union-attr]
    if text[at : at + 1] != "[":
        return None

    def items() -> Iterator[Any]:
        i = _WS.match(text, at + 1).end()  # type: ignore[union-attr]
        if text[i : i + 1] == "]":
            return _end(text, i + 1)
        while True:
            item, i = _DECODER.raw_decode(text, i)
            yield item
            i = _WS.match(text, i).end()  # type: ignore[union-attr]
            sep = text[i : i + 1]
            if sep == "]":
                return _end(text, i + 1)
            if sep != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]

    return items()


def _end(text: str, i: int) -> None:
    i = _WS.match(text, i).end()  # type: ignore[union-attr]
    if i != len(text):
        raise json.JSONDecodeError("Extra data", text, i)


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


# One InstanceResources per distinct size (issue 10, RSS): sandboxes come in a few sizes, and an
# object and its three floats per listed instance were ~140 bytes each, kept for every instance.
# Bounded, cleared wholesale when full; a size with a zero is made apart (0.0 == -0.0 as a key).
_SIZES_CAP = 1024
_sizes: dict[tuple[float | None, float | None, float | None], InstanceResources] = {}


def shared_resources(
    cpu_count: float | None, memory_mb: float | None, disk_gb: float | None
) -> InstanceResources:
    """InstanceResources(cpu_count, memory_mb, disk_gb), the same object for the same size."""
    key = (cpu_count, memory_mb, disk_gb)
    res = _sizes.get(key)
    if res is None:
        res = InstanceResources(cpu_count=cpu_count, memory_mb=memory_mb, disk_gb=disk_gb)
        if 0 not in key:
            if len(_sizes) >= _SIZES_CAP:
                _sizes.clear()
            _sizes[key] = res
    return res


_Page = tuple[bytes, list[Instance], list[str], Any]


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

    A whole page whose body is byte-for-byte the previous listing's at the same position
    (`page(index, body)`: its SHA-1 digest) gives that page's Instances again without building
    any (issue 10, idle tick: a quiet fleet's listings were ~0.7 s of CPU a minute). The body
    alone decides: equal bytes are equal items, whatever cursor led there.
    """

    __slots__ = ("_next", "_next_pages", "_page", "_prev", "_prev_pages", "page_hits")

    def __init__(self) -> None:
        self._prev: dict[str, tuple[int, Instance]] = {}
        self._next: dict[str, tuple[int, Instance]] = {}
        # request key -> (body digest, the page's Instances, their keys, what else the body said)
        self._prev_pages: dict[Hashable, _Page] = {}
        self._next_pages: dict[Hashable, _Page] = {}
        self._page: tuple[Hashable, bytes, list[str]] | None = None  # the page being decoded
        self.page_hits = 0  # pages handed back undecoded (tests, diagnostics)

    def __len__(self) -> int:
        return len(self._prev)

    def start(self) -> None:
        self._next, self._next_pages, self._page = {}, {}, None

    def page(self, key: Hashable, body: bytes) -> tuple[list[Instance], Any] | None:
        """(the Instances, the `extra` given to `page_done`) of the previous listing's page for
        request `key` when `body` is the same bytes (they carry over to the next listing); None:
        decode it, build its items through `instance()`, then `page_done(items, extra)`."""
        digest = hashlib.sha1(body).digest()  # twice BLAKE2b's speed here (SHA-NI); no adversary
        hit = self._prev_pages.get(key)
        if hit is None or hit[0] != digest:
            self._page = (key, digest, [])
            return None
        self._page = None
        prev, nxt = self._prev, self._next
        for k in hit[2]:
            entry = prev.get(k)
            if entry is not None:
                nxt[k] = entry
        self._next_pages[key] = hit
        self.page_hits += 1
        return list(hit[1]), hit[3]

    def page_done(self, items: list[Instance], extra: Any = None) -> None:
        """The page opened by a `page()` miss was decoded into `items` (and `extra`: e.g. the
        cursor and total its body held)."""
        if self._page is not None:
            key, digest, keys = self._page
            self._next_pages[key] = (digest, list(items), keys, extra)
            self._page = None

    def skip_page(self) -> None:
        """The page opened by a `page()` miss is not to be handed back (its items are still kept)."""
        self._page = None

    def instance(self, key: Any, sig: tuple[Any, ...], labels: Any, make: Callable[[], Instance]) -> Instance:
        """The previous Instance for `key` if `sig` and `labels` are equal to its own, else `make()`."""
        if not isinstance(key, str):
            self._page = None  # a page with a malformed item is never handed back undecoded
            return make()  # make() reports the malformed item
        if self._page is not None:
            self._page[2].append(key)
        try:
            sig_hash = hash(sig)
        except TypeError:  # a malformed item (a list or map where a value belongs): never reused
            self._page = None
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
        self._prev_pages, self._next_pages, self._page = self._next_pages, {}, None


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
