"""A ground truth carried to a later time when nothing it was made from changed (issue 10).

A live cockpit whose sources are unchanged (sandbox.db not written, no provider listing due or
landed, no event) would reconcile the same inputs again at each tick; the result differs from the
last one only where `now` enters: `generated_at` and each provider's listing age. `carried` makes
exactly that picture without the pipeline. A stale provider's rows carry their age and an
"unreachable for" text, which follow the clock: then there is no carrying, the tick reconciles.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from opcockpit.domain.convergence import listing_age
from opcockpit.domain.models import GroundTruth, ProviderStatus

__all__ = ["carried"]


def carried(gt: GroundTruth, now: datetime) -> GroundTruth | None:
    """What reconciling `gt`'s unchanged inputs at `now` returns; None when a row would differ
    (a stale provider). Rows and orphans are the same objects: nothing downstream re-judges them."""
    if any(p.status is ProviderStatus.STALE for p in gt.providers):
        return None
    providers = tuple(
        p if p.listed_at is None else replace(p, age_s=listing_age(now, p.listed_at)) for p in gt.providers
    )
    return replace(gt, generated_at=now, providers=providers)
