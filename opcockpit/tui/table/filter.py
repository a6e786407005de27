"""The keyed table's filter (k9s-like): whitespace-separated terms that must all match.

text          case-insensitive regex search in each of the row's displayed cells (`^`/`$`
              anchor at a cell's edges); an invalid regex falls back to a plain substring
field:value   the same, but only in the column whose key or label is `field`
!term         inverse: rows where `term` does NOT match
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Predicate", "Term", "parse_filter"]


@dataclass(frozen=True, slots=True)
class Term:
    pattern: re.Pattern[str]
    column: int | None  # None: any column
    negate: bool

    def matches(self, texts: Sequence[str], joined: str) -> bool:
        if self.column is None:
            # Cell by cell, not the joined row: `^lease-0` anchors at a cell's start (the help's
            # example), where the joined row starts with the first column's text.
            search = self.pattern.search
            hit = any(search(t) is not None for t in texts)
        else:
            hit = self.column < len(texts) and self.pattern.search(texts[self.column]) is not None
        return hit != self.negate


def _compile(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error:
        return re.compile(re.escape(text), re.IGNORECASE)


Predicate = Callable[[Sequence[str], str], bool]


def parse_filter(expr: str, columns: Sequence[tuple[str, str]]) -> Predicate | None:
    """Compile `expr` into a predicate over (cell texts, joined texts); None for an empty filter.

    `columns` is (key, label) per column, so `field:value` accepts either (case-insensitive).
    An unknown field is treated as plain text, so `a:b` still finds "a:b" in a cell.
    """
    names: dict[str, int] = {}
    for i, (key, label) in enumerate(columns):
        names.setdefault(key.lower(), i)
        names.setdefault(label.lower(), i)
    terms: list[Term] = []
    for raw in expr.split():
        negate = raw.startswith("!")
        body = raw[1:] if negate else raw
        if not body:
            continue
        column: int | None = None
        field, sep, value = body.partition(":")
        if sep and value and field.lower() in names:
            column = names[field.lower()]
            body = value
        terms.append(Term(_compile(body), column, negate))
    if not terms:
        return None

    def predicate(texts: Sequence[str], joined: str) -> bool:
        return all(t.matches(texts, joined) for t in terms)

    return predicate
