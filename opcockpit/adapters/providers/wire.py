"""Small helpers for decoding provider payloads (shared by the HTTP adapters)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

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
