"""Projection: which fields a plan reads, and its filter split by what is cheap to compute.

A source whose fields cost differently (the runs dataset: status and counts come with the
GROUP BY, times and errors need a lookup per run) evaluates the cheap conjuncts first over cheap
rows, then builds only the fields the plan still needs for the rows that are left. The full
filter is applied again afterwards (run_plan), so the split only has to keep every match: a
conjunct is cheap when every field it reads is.
"""

from __future__ import annotations

from opcockpit.domain.query.evaluate import Plan, count_pushdown
from opcockpit.domain.query.filter import AnyText, Bool, Filter

__all__ = ["filter_fields", "needed_fields", "split_filter"]


def filter_fields(f: Filter | None) -> frozenset[str]:
    """Every field `f` reads (free text reads all of its text fields)."""
    if f is None:
        return frozenset()
    if isinstance(f, Bool):
        return frozenset().union(*(filter_fields(i) for i in f.items))
    if isinstance(f, AnyText):
        return frozenset(f.fields)
    return frozenset((f.field,))


def _conjuncts(f: Filter) -> list[Filter]:
    if isinstance(f, Bool) and f.op == "and":
        return [x for i in f.items for x in _conjuncts(i)]
    return [f]


def _all(parts: list[Filter]) -> Filter | None:
    return None if not parts else parts[0] if len(parts) == 1 else Bool("and", tuple(parts))


def split_filter(f: Filter | None, cheap: frozenset[str]) -> tuple[Filter | None, Filter | None]:
    """(the conjuncts that read only `cheap` fields, the others); their AND is `f`."""
    if f is None:
        return None, None
    parts = _conjuncts(f)
    return (
        _all([p for p in parts if filter_fields(p) <= cheap]),
        _all([p for p in parts if not filter_fields(p) <= cheap]),
    )


def needed_fields(plan: Plan, *, facets: bool) -> frozenset[str] | None:
    """The fields the plan's evaluation reads from a row, None for all of them: a plan that starts
    with a count reads the filter's, the count's and (with facets) the facets' fields only; any
    other plan shows or sorts its rows, so it reads them all."""
    push = count_pushdown(plan)
    if push is None:
        return None
    out = filter_fields(plan.filter) | frozenset(push.by)
    return out | frozenset(plan.dataset.facets) if facets else out
