"""GroundTruth -> plain JSON-able dicts, JSON, NDJSON and CSV (the snapshot's public format).

Field order is the dataclass field order (stable; documented in docs/snapshot.schema.json).
Datetimes are ISO-8601 UTC with a 'Z'. Hand-rolled conversion, not dataclasses.asdict or pydantic:
this runs over 10k rows inside the 1 s `opcockpit snapshot` budget.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any

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


def dumps_json(gt: GroundTruth, *, indent: int | None = None) -> str:
    """Compact by default: with `indent` json falls back to its pure-Python encoder (~5x slower).

    The text is exactly `json.dumps(to_dict(gt), indent=indent, ensure_ascii=False)`; without
    indent the rows are written straight from the dataclasses (see `_row_json`), ~30% cheaper.
    """
    if indent is not None or _EXTRA_ROW or _EXTRA_RESOURCE:  # fields the row template lacks
        doc = to_dict(gt)
        with gc_paused():
            # check_circular=False: to_dict builds a fresh tree (no cycles); same text.
            return json.dumps(doc, indent=indent, ensure_ascii=False, check_circular=False)
    return "".join(
        (
            '{"version": ',
            _j(SNAPSHOT_VERSION),
            ', "generated_at": ',
            _j(iso(gt.generated_at)),
            ', "db": ',
            _dumps({"path": gt.db_path, "schema_variant": gt.schema_variant}),
            ', "providers": ',
            _dumps([provider_to_dict(p) for p in gt.providers]),
            ', "rows": [',
            ", ".join(map(_row_json, gt.rows)),
            '], "orphans": ',
            _dumps([orphan_to_dict(o) for o in gt.orphans]),
            _warnings_json(gt),
            "}",
        )
    )


def _warnings_json(gt: GroundTruth) -> str:
    warnings = snapshot_warnings(gt)
    return ', "warnings": ' + _dumps(list(warnings)) if warnings else ""


# --------------------------------------------------------------------------- direct JSON rows
# json.dumps over to_dict builds ~20 dicts per row and re-escapes every key of every row. The row
# template below writes the same text from the dataclass: keys are literals, values go through
# `_j`, which is json's own encoding for each value (tests compare the two on odd values).

_dumps = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(v, ensure_ascii=False)
_enc_str = json.encoder.encode_basestring  # what that encoder uses for str (C when available)
_float_repr = float.__repr__
_int_repr = int.__repr__
_INF = float("inf")


def _j(v: Any) -> str:
    """One JSON value as json.dumps(v, ensure_ascii=False) writes it."""
    c = v.__class__
    if c is str:
        return _enc_str(v)  # type: ignore[no-any-return]
    if v is None:
        return "null"
    if c is float and -_INF < v < _INF:  # NaN/inf take json's spelling via _dumps
        return _float_repr(v)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if c is int:
        return _int_repr(v)
    return _dumps(v)  # type: ignore[no-any-return]


_ROW_TEMPLATE = (
    '{"lease_id": %s, "provider": %s, "thread_id": %s, "thread_ids": %s, "chat_session_id": %s, '
    '"instance_id": %s, "desired_state": %s, "observed_state": %s, "provider_state": %s, '
    '"convergence": %s, "reason": %s, "last_active": %s, "source": %s, "lease_status": %s, '
    '"version": %s, "needs_refresh": %s, "last_error": %s, "resources": %s, "updated_at": %s, '
    '"stale_age_s": %s}'
)
_RESOURCES_TEMPLATE = (
    '{"cpu_used": %s, "memory_used_mb": %s, "memory_total_mb": %s, "disk_used_gb": %s, '
    '"disk_total_gb": %s, "probe_error": %s, "collected_at": %s, "cpu_count": %s, "memory_mb": %s}'
)


def _row_json(r: GroundTruthRow) -> str:
    """row_to_dict(r) as JSON text, value for value (see row_to_dict for the conversions).

    Text fields are encoded inline when they are plain str (the model's type) and through `_j`
    otherwise; an ISO time needs no escaping. ~200k calls fewer at 10k rows (issue 9)."""
    j, e = _j, _enc_str
    res, ps = r.resources, r.provider_state
    lease_id, provider, thread_id, session = r.lease_id, r.provider, r.thread_id, r.chat_session_id
    iid, desired, observed, reason = r.instance_id, r.desired_state, r.observed_state, r.reason
    source, status, last_error = r.source, r.lease_status, r.last_error
    active, updated = r.last_active, r.updated_at
    version, refresh, stale, conv = r.version, r.needs_refresh, r.stale_age_s, r.convergence._value_
    return _ROW_TEMPLATE % (
        e(lease_id) if lease_id.__class__ is str else j(lease_id),
        e(provider) if provider.__class__ is str else j(provider),
        "null" if thread_id is None else e(thread_id) if thread_id.__class__ is str else j(thread_id),
        "[" + ", ".join(map(j, r.thread_ids)) + "]",
        "null" if session is None else e(session) if session.__class__ is str else j(session),
        "null" if iid is None else e(iid) if iid.__class__ is str else j(iid),
        e(desired) if desired.__class__ is str else j(desired),
        e(observed) if observed.__class__ is str else j(observed),
        "null" if ps is None else e(str(ps)),
        e(conv) if conv.__class__ is str else j(conv),
        e(reason) if reason.__class__ is str else j(reason),
        "null" if active is None else _iso_json(active),
        e(source) if source.__class__ is str else j(source),
        "null" if status is None else e(status) if status.__class__ is str else j(status),
        _int_repr(version) if version.__class__ is int else j(version),
        "true" if refresh is True else "false" if refresh is False else j(refresh),
        "null" if last_error is None else e(last_error) if last_error.__class__ is str else j(last_error),
        "null" if res is None else _resources_json(res),
        "null" if updated is None else _iso_json(updated),
        "null" if stale is None else j(stale),
    )


def _iso_json(dt: datetime) -> str:
    """j(iso(dt)): an ISO-8601 time holds no character JSON escapes."""
    return '"' + iso(dt) + '"'  # type: ignore[operator]


def _resources_json(res: Resources) -> str:
    """j() of each value inlined for the common None and finite float (~9 calls fewer per row)."""
    j, fr, inf = _j, _float_repr, _INF
    a, b, c, d, e = res.cpu_used, res.memory_used_mb, res.memory_total_mb, res.disk_used_gb, res.disk_total_gb
    f, g, h, at = res.probe_error, res.cpu_count, res.memory_mb, res.collected_at
    return _RESOURCES_TEMPLATE % (
        "null" if a is None else fr(a) if a.__class__ is float and -inf < a < inf else j(a),
        "null" if b is None else fr(b) if b.__class__ is float and -inf < b < inf else j(b),
        "null" if c is None else fr(c) if c.__class__ is float and -inf < c < inf else j(c),
        "null" if d is None else fr(d) if d.__class__ is float and -inf < d < inf else j(d),
        "null" if e is None else fr(e) if e.__class__ is float and -inf < e < inf else j(e),
        "null" if f is None else j(f),
        "null" if at is None else _iso_json(at),
        "null" if g is None else j(g),
        "null" if h is None else j(h),
    )


def iter_ndjson(gt: GroundTruth) -> Iterator[str]:
    """One JSON object per line, each with a leading "type": meta, provider, row, orphan."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
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
