"""The typed filter: what a query's filter means once names, types, parameters and relative
times are resolved. One tree, two executions: `predicate(f)` evaluates it over Python rows, and a
source may translate it to SQL (adapters/leon/explore_rows.py) so the rows never leave SQLite.
Every semantic rule lives here, so both paths agree by construction.

Atoms (`op`): `=` `!=` `<` `<=` `>` `>=` compare the row's typed value (a missing value matches
only `!=`; values that cannot be ordered against each other never match); `ieq` case-insensitive
text equality (value lowered); `glob` a case-insensitive `*`/`?` pattern (value lowered);
`re` a regex search in `str(value)`; `null` / `notnull` empty or not (None or "").
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["AnyText", "Atom", "Bool", "Filter", "glob_regex", "predicate"]

Row = dict[str, Any]
Pred = Callable[[Row], bool]


@dataclass(frozen=True, slots=True)
class Atom:
    field: str
    op: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class AnyText:
    """A case-insensitive substring (`needle`, lowered) of any of `fields`."""

    needle: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Bool:
    op: str  # and / or / not (not: one item)
    items: tuple[Filter, ...]


Filter = Atom | AnyText | Bool

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b, ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
}  # fmt: skip


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def ieq(x: Any, low: str) -> bool:
    return x is not None and x.lower() == low


def glob(x: Any, pattern: str) -> bool:
    return x is not None and glob_regex(pattern).match(x) is not None


def regex(x: Any, pattern: str) -> bool:
    return x is not None and _regex(pattern).search(str(x)) is not None


def has_text(needle: str, values: Any) -> bool:
    for v in values:  # noqa: SIM110  (a plain loop: cheaper than any() per row)
        if v and needle in v.lower():
            return True
    return False


def ordered(op: str, x: Any, want: Any) -> bool:
    if x is None:
        return False
    try:
        return _ORDER[op](x, want)
    except TypeError:
        return False


def predicate(f: Filter) -> Pred:
    """The Python evaluation of `f` over a row dict."""
    if isinstance(f, Bool):
        preds = [predicate(i) for i in f.items]
        if f.op == "not":
            inner = preds[0]
            return lambda r: not inner(r)
        if f.op == "and":
            return lambda r: all(p(r) for p in preds)
        return lambda r: any(p(r) for p in preds)
    if isinstance(f, AnyText):
        n, fields = f.needle, f.fields
        return lambda r: has_text(n, (r.get(k) for k in fields))
    name, op, want = f.field, f.op, f.value
    if op == "null":
        return lambda r: r.get(name) in (None, "")
    if op == "notnull":
        return lambda r: r.get(name) not in (None, "")
    if op == "=":
        return lambda r: r.get(name) == want
    if op == "!=":
        return lambda r: r.get(name) != want
    if op == "ieq":
        return lambda r: ieq(r.get(name), want)
    if op == "glob":
        glob_regex(want)
        return lambda r: glob(r.get(name), want)
    if op == "re":
        _regex(want)
        return lambda r: regex(r.get(name), want)
    return lambda r: ordered(op, r.get(name), want)
