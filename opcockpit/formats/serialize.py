"""GroundTruth -> plain JSON-able dicts, JSON, NDJSON and CSV (the snapshot's public format).

Field order is the dataclass field order (stable; documented in docs/snapshot.schema.json).
Datetimes are ISO-8601 UTC with a 'Z'. Hand-rolled conversion, not dataclasses.asdict or pydantic,
and JSON text by orjson from the dataclasses themselves: this runs over 10k rows inside the 1 s
`opcockpit snapshot` budget. JSON is compact (no spaces), as NDJSON always was.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import fields
from datetime import UTC, datetime
from enum import Enum
from operator import attrgetter
from typing import Any

import orjson

from opcockpit.domain.clock_skew import snapshot_warnings
from opcockpit.domain.gcpause import gc_paused
from opcockpit.domain.models import (
    GroundTruth,
    GroundTruthRow,
    InstanceResources,
    OrphanRow,
    ProviderHealth,
    Resources,
)
from opcockpit.domain.text import safe_text
from opcockpit.domain.timeutil import utc_or_naive

SNAPSHOT_VERSION = 1

ROW_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(GroundTruthRow))
ORPHAN_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(OrphanRow))
PROVIDER_FIELDS: tuple[str, ...] = ("name", "kind", "status", "error", "listed_at", "instance_count", "age_s")
RESOURCE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Resources))
INSTANCE_RESOURCE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(InstanceResources))


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is UTC:  # the common case (sources normalise to UTC): no tz arithmetic
        s = dt.isoformat()
        return s[:-6] + "Z"
    if dt.tzinfo is None:  # sources promise aware UTC; be defensive rather than emit a lie
        dt = dt.replace(tzinfo=UTC)
    elif dt.utcoffset():
        dt = dt.astimezone(UTC)
    s = dt.isoformat()
    return s[:-6] + "Z" if s.endswith("+00:00") else s


def _value(v: Any) -> Any:
    """Convert one field value; the common types are checked first (hot path)."""
    if v is None or isinstance(v, str | bool | int | float):
        if isinstance(v, Enum):
            return v.value
        return v
    if isinstance(v, datetime):
        return iso(v)
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, tuple | list | frozenset | set):
        items = [_value(x) for x in v]
        return sorted(items) if isinstance(v, frozenset | set) else items
    if isinstance(v, Mapping):
        return {str(k): _value(x) for k, x in v.items()}
    if isinstance(v, Resources):
        return {k: _value(getattr(v, k)) for k in RESOURCE_FIELDS}
    if isinstance(v, InstanceResources):
        return {k: _value(getattr(v, k)) for k in INSTANCE_RESOURCE_FIELDS}
    return str(v)


def _resources(res: Resources) -> dict[str, Any]:
    d = {
        "cpu_used": res.cpu_used,
        "memory_used_mb": res.memory_used_mb,
        "memory_total_mb": res.memory_total_mb,
        "disk_used_gb": res.disk_used_gb,
        "disk_total_gb": res.disk_total_gb,
        "probe_error": res.probe_error,
        "collected_at": iso(res.collected_at),
        "cpu_count": res.cpu_count,
        "memory_mb": res.memory_mb,
    }
    for k in _EXTRA_RESOURCE:
        d[k] = _value(getattr(res, k))
    return d


def row_to_dict(r: GroundTruthRow) -> dict[str, Any]:
    # Spelled out (not a loop over fields): this is the hot path of a 10k-row snapshot.
    # Fields added to GroundTruthRow later are appended generically (see _EXTRA_ROW).
    res = r.resources
    d = {
        "lease_id": r.lease_id,
        "provider": r.provider,
        "thread_id": r.thread_id,
        "thread_ids": list(r.thread_ids),
        "chat_session_id": r.chat_session_id,
        "instance_id": r.instance_id,
        "desired_state": r.desired_state,
        "observed_state": r.observed_state,
        "provider_state": None if r.provider_state is None else str(r.provider_state),
        "convergence": r.convergence._value_,  # not .value: an enum property call per row
        "reason": r.reason,
        "last_active": iso(r.last_active),
        "source": r.source,
        "lease_status": r.lease_status,
        "version": r.version,
        "needs_refresh": r.needs_refresh,
        "last_error": r.last_error,
        "resources": None if res is None else _resources(res),
        "updated_at": iso(r.updated_at),
        "stale_age_s": r.stale_age_s,
    }
    for k in _EXTRA_ROW:
        d[k] = _value(getattr(r, k))
    return d


_KNOWN_ROW = (
    "lease_id", "provider", "thread_id", "thread_ids", "chat_session_id", "instance_id", "desired_state",
    "observed_state", "provider_state", "convergence", "reason", "last_active", "source", "lease_status",
    "version", "needs_refresh", "last_error", "resources", "updated_at", "stale_age_s",
)  # fmt: skip
_EXTRA_ROW = tuple(f for f in ROW_FIELDS if f not in _KNOWN_ROW)
_EXTRA_RESOURCE = tuple(
    f for f in RESOURCE_FIELDS
    if f not in ("cpu_used", "memory_used_mb", "memory_total_mb", "disk_used_gb", "disk_total_gb",
                 "probe_error", "collected_at", "cpu_count", "memory_mb")
)  # fmt: skip


def orphan_to_dict(orphan: OrphanRow) -> dict[str, Any]:
    return {k: _value(getattr(orphan, k)) for k in ORPHAN_FIELDS}


def provider_to_dict(p: ProviderHealth) -> dict[str, Any]:
    age = p.age_s
    return {
        "name": p.name,
        "kind": p.kind,
        "status": _value(p.status),
        "error": p.error,
        "listed_at": iso(p.listed_at),
        "instance_count": p.instance_count,
        "age_s": round(age, 3) if age is not None else None,
    }


def to_dict(gt: GroundTruth) -> dict[str, Any]:
    with gc_paused():  # ~40k dicts and lists while the fleet is alive: see core/gcpause.py
        doc = {
            "version": SNAPSHOT_VERSION,
            "generated_at": iso(gt.generated_at),
            "db": {"path": gt.db_path, "schema_variant": gt.schema_variant},
            "providers": [provider_to_dict(p) for p in gt.providers],
            "rows": [row_to_dict(r) for r in gt.rows],
            "orphans": [orphan_to_dict(o) for o in gt.orphans],
        }
    warnings = snapshot_warnings(gt)
    if warnings:  # only when there is one: a clean snapshot's text does not change
        doc["warnings"] = list(warnings)
    return doc


def dumps_json(gt: GroundTruth, *, indent: int | None = None, extra: Mapping[str, Any] | None = None) -> str:
    """json_bytes(gt, extra) as text; with `indent`, json's indented text of the same document."""
    if indent is not None:
        return json.dumps(_finite(_document(gt, extra)), indent=indent, ensure_ascii=False)
    return json_bytes(gt, extra).decode("utf-8")


def json_bytes(gt: GroundTruth, extra: Mapping[str, Any] | None = None) -> bytes:
    """The snapshot document: `to_dict(gt)` (plus `extra` keys, e.g. `--check`'s alerts) as
    compact UTF-8 JSON, written by orjson (C) straight from the dataclasses (issue 9: ~3x cheaper
    than json over to_dict at 10k rows; bytes, because decoding and re-encoding a 10k-lease
    document that holds one non-ASCII character costs more than writing it).

    It parses to exactly to_dict's values; non-finite numbers are written as null (JSON has no
    NaN or Infinity: strict parsers reject json's spelling). What orjson cannot write as to_dict
    does (ints beyond 64 bits, lone surrogates, mapping keys that are not text) takes json's
    encoder for the whole document, with the same separators (a lone surrogate as its \\u escape)."""
    rows: Any = gt.rows if _utc_times(gt.rows) else [row_to_dict(r) for r in gt.rows]
    try:
        return orjson.dumps(_document(gt, extra, rows), default=_value, option=_ORJSON_OPTIONS)  # type: ignore[no-any-return]
    except TypeError:  # orjson.JSONEncodeError is one
        return _json_compact(_document(gt, extra)).encode("utf-8", "backslashreplace")


def encode_line(value: Any) -> str:
    """Compact JSON text of `value`: orjson's (dataclasses and enums as to_dict writes them, times
    as ISO-8601 UTC with a 'Z'), or json's where orjson cannot write it exactly."""
    try:
        return orjson.dumps(value, default=_value, option=_ORJSON_OPTIONS).decode()  # type: ignore[no-any-return]
    except TypeError:  # orjson.JSONEncodeError is one
        return _json_compact(value)


def _document(gt: GroundTruth, extra: Mapping[str, Any] | None, rows: Any = None) -> dict[str, Any]:
    """to_dict(gt) with `extra` appended; `rows` (the dataclasses, for orjson) instead of dicts."""
    if rows is None:
        doc = to_dict(gt)
    else:
        with gc_paused():
            doc = {
                "version": SNAPSHOT_VERSION,
                "generated_at": iso(gt.generated_at),
                "db": {"path": gt.db_path, "schema_variant": gt.schema_variant},
                "providers": [provider_to_dict(p) for p in gt.providers],
                "rows": rows,
                "orphans": [orphan_to_dict(o) for o in gt.orphans],
            }
        warnings = snapshot_warnings(gt)
        if warnings:
            doc["warnings"] = list(warnings)
    if extra:
        doc.update(extra)
    return doc


def _json_compact(doc: Any) -> str:
    with gc_paused():
        # check_circular=False: the document is a fresh tree (no cycles); same text.
        return json.dumps(_finite(doc), ensure_ascii=False, separators=(",", ":"), check_circular=False)


# orjson writes an aware UTC time as to_dict's iso() does ('Z'; microseconds only when set) and a
# naive one as UTC, which iso() assumes too. Another zone it would write with its offset: rows
# holding one take row_to_dict (sources normalise to UTC, so that is the odd case).
_ORJSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def _utc_times(rows: tuple[GroundTruthRow, ...]) -> bool:
    """Every time in `rows` is UTC or naive: orjson then writes each as iso() does."""
    return (
        utc_or_naive(map(_last_active, rows))
        and utc_or_naive(map(_updated_at, rows))
        and utc_or_naive(map(_collected_at, filter(None, map(_res_of, rows))))
    )


_last_active, _updated_at = attrgetter("last_active"), attrgetter("updated_at")
_res_of, _collected_at = attrgetter("resources"), attrgetter("collected_at")


def _finite(v: Any) -> Any:
    """`v` with non-finite floats as None, as orjson writes them (the json fallback's input)."""
    if v.__class__ is float:
        return v if -_INF < v < _INF else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


_INF = float("inf")


def iter_ndjson(gt: GroundTruth) -> Iterator[str]:
    """One JSON object per line, each with a leading "type": meta, provider, row, orphan."""
    dumps = encode_line
    meta: dict[str, Any] = {
        "type": "meta",
        "version": SNAPSHOT_VERSION,
        "generated_at": iso(gt.generated_at),
        "db": {"path": gt.db_path, "schema_variant": gt.schema_variant},
    }
    warnings = snapshot_warnings(gt)
    if warnings:  # only when there is one (the meta line of a clean snapshot is unchanged)
        meta["warnings"] = list(warnings)
    yield dumps(meta)
    for p in gt.providers:
        yield dumps({"type": "provider", **provider_to_dict(p)})
    for r in gt.rows:
        yield dumps({"type": "row", **row_to_dict(r)})
    for o in gt.orphans:
        yield dumps({"type": "orphan", **orphan_to_dict(o)})


# CSV: rows only (one header). Nested values are flattened so spreadsheets get plain columns.
CSV_COLUMNS: tuple[str, ...] = tuple(c for c in ROW_FIELDS if c != "resources") + tuple(
    f"resources.{k}" for k in RESOURCE_FIELDS
)


def csv_text(gt: GroundTruth) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    plain = [c for c in ROW_FIELDS if c != "resources"]
    for row in gt.rows:
        out: list[Any] = []
        for k in plain:
            v = _value(getattr(row, k))
            if isinstance(v, list):
                v = " ".join(str(x) for x in v)
            elif isinstance(v, bool):
                v = "true" if v else "false"
            out.append("" if v is None else v)
        res = row.resources
        for k in RESOURCE_FIELDS:
            v = _value(getattr(res, k)) if res is not None else None
            out.append("" if v is None else v)
        w.writerow(out)
    # CSV is read in terminals as often as in spreadsheets: control characters from sandbox.db or
    # provider text (ESC, BEL, C1) are made visible; tabs/newlines are data and stay (quoted). One
    # pass over the whole text equals one per cell: CSV's own syntax holds no control characters.
    return safe_text(buf.getvalue(), single_line=False)
