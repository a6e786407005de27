"""Vet the rows read from sandbox.db: one odd value must degrade one row, never the whole picture.

SQLite keeps whatever a writer stored: a BLOB in a TEXT column, text in an INTEGER column, a NULL
where LEON's DDL says NOT NULL (hand edits, foreign writers, older DDL). Downstream code (sorting,
JSON, reconcile) assumes the record types, so the reader runs every table through `vet` here:

- each column has a kind (below) and the set of Python types it may hold;
- the check is per *column* first (`str.join`, `set(map(type, column))` and None counts run in C), so a clean
  10k-lease table costs a few milliseconds; only columns that fail are looked at row by row;
- an odd row is rebuilt from cleaned values (BLOB text decoded, NULL ids replaced by a visible
  placeholder, unparseable numbers/timestamps -> None) and its problems are returned per row, for
  the caller to attach to the lease the row belongs to.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

# Column kinds.
KEY = "key"  # the row's own id: required text; NULL becomes a numbered placeholder
REQ = "req"  # required text; NULL becomes "?"
LINK = "link"  # the lease_id of a child row: required text, or the row cannot be tied to a lease
OPT = "opt"  # optional text
INT = "int"  # integer, NOT NULL
INT_OPT = "int?"  # integer or NULL
TS = "ts"  # timestamp (text or epoch number) or NULL; must parse
JSON = "json"  # JSON text or NULL; must parse
ABSENT = "absent"  # the column does not exist in this schema variant: selected as NULL

_NONE = type(None)
_ALLOWED: dict[str, frozenset[type]] = {
    KEY: frozenset((str,)),
    REQ: frozenset((str,)),
    LINK: frozenset((str,)),
    OPT: frozenset((str, _NONE)),
    INT: frozenset((int,)),
    INT_OPT: frozenset((int, _NONE)),
    TS: frozenset((str, int, float, _NONE)),
    JSON: frozenset((str, _NONE)),
    ABSENT: frozenset((_NONE,)),
}
_REQUIRED_TEXT = frozenset((KEY, REQ, LINK))
PLACEHOLDER = "?"
_SHOWN = 40  # characters of an odd value quoted in a problem text


def _show(v: object) -> str:
    text = repr(v)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _what(v: object) -> str:
    if v is None:
        return "is NULL"
    if isinstance(v, bytes):
        return "is a BLOB"
    return f"is {type(v).__name__} {_show(v)}"


def _text(v: object) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v if isinstance(v, str) else str(v)


def _int(v: object) -> int | None:
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if math.isfinite(v) and v.is_integer() else None
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            return None
    return None


def _json_ok(v: str) -> bool:
    try:
        json.loads(v)
    except ValueError:
        return False
    return True


def _all_text(col: Sequence[object]) -> bool:
    """A required text column holding only text: str.join checks each value's type in C and
    raises at the first that is not (NULL included), ~4x cheaper than the type set below, which
    still decides every column this cannot vouch for. (Drivers return exact str, never a
    subclass, which join would take.)"""
    try:
        "".join(col)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def _bad_rows(
    kind: str, col: Sequence[object], parsed: Callable[[], list[object]] | None
) -> list[int] | None:
    """Indices of the rows whose value in this column is odd (None: the column is clean)."""
    if kind in _REQUIRED_TEXT and _all_text(col):
        return None
    types = set(map(type, col))
    if types <= _ALLOWED[kind]:
        if kind == TS and parsed is not None:
            # The parser returns None for NULL and for anything it cannot read: more Nones after
            # parsing than before means unreadable values. Both counts run in C; the parsed
            # values are datetimes (always true) or None, so filter counts them without the
            # ~4x dearer == None of list.count, and a column without NULL needs no count at all.
            values = parsed()
            nulls = col.count(None) if _NONE in types else 0
            if len(values) - len(list(filter(None, values))) == nulls:
                return None
        elif kind == JSON:
            bad = {v for v in set(col) if v is not None and not _json_ok(v)}  # type: ignore[arg-type]
            if not bad:
                return None
            return [i for i, v in enumerate(col) if v in bad]
        else:
            return None
    allowed = _ALLOWED[kind]
    if kind == TS and parsed is not None:
        values = parsed()
        return [
            i
            for i, (v, p) in enumerate(zip(col, values, strict=True))
            if type(v) not in allowed or (v is not None and p is None)
        ]
    return [i for i, v in enumerate(col) if type(v) not in allowed]


def vet(
    rows: list[tuple],
    records: Sequence[Any],
    cols: Sequence[str],
    kinds: Sequence[str],
    build: Callable[[list[tuple]], list[Any]],
) -> tuple[list[Any], dict[int, list[str]]]:
    """(records with odd rows rebuilt from cleaned values, {row index: problem texts}).

    `records[i]` is `build([rows[i]])[0]`; record fields are named like `cols` (timestamps are
    compared parsed vs raw through those names, or through `records.parsed[j]` when the builder
    carries its parsed columns: sandbox_rows_once.Built).
    """
    if not rows:
        return list(records), {}
    # A one-shot builder hands its transposed rows and parsed time columns along (Built).
    columns = getattr(records, "columns", None) or list(zip(*rows, strict=True))
    known: dict[int, list[object]] = getattr(records, "parsed", None) or {}
    problems: dict[int, list[str]] = {}
    for j, (name, kind) in enumerate(zip(cols, kinds, strict=True)):
        parsed = None
        if kind == TS:
            parsed = (
                (lambda j=j: known[j]) if j in known else (lambda n=name: list(map(attrgetter(n), records)))
            )
        bad = _bad_rows(kind, columns[j], parsed)
        for i in bad or ():
            v = rows[i][j]
            if kind == TS and not isinstance(v, bytes):
                text = f"{name} {_show(v)} is not a timestamp"
            elif kind == JSON and isinstance(v, str):
                text = f"{name} is not valid JSON"
            else:
                text = f"{name} {_what(v)}"
            problems.setdefault(i, []).append(text)
    if not problems:
        return list(records), {}
    out = list(records)
    nulls = 0
    for i in sorted(problems):
        clean: list[object] = list(rows[i])
        for j, kind in enumerate(kinds):
            v = clean[j]
            allowed = _ALLOWED[kind]
            if type(v) in allowed and kind not in (TS, JSON):
                continue
            if kind == KEY and v is None:
                nulls += 1
                clean[j] = f"(NULL {cols[j]} #{nulls})"
            elif kind in (KEY, REQ, LINK):
                clean[j] = PLACEHOLDER if v is None else _text(v)
            elif kind == OPT:
                clean[j] = _text(v)
            elif kind in (INT, INT_OPT):
                clean[j] = _int(v)
            elif kind == TS:
                if isinstance(v, bytes) or any(p.startswith(f"{cols[j]} ") for p in problems[i]):
                    clean[j] = None
            elif kind == JSON and v is not None:
                clean[j] = _text(v)
        out[i] = build([tuple(clean)])[0]
    return out, problems
