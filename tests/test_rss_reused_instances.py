"""Issue 10 (RSS): a provider listing's unchanged items hand back the previous Instance while the
reuse map keeps only each item's signature hash, not its raw values."""

from __future__ import annotations

from opcockpit.adapters.providers.wire import ReusedInstances
from opcockpit.domain.models import Instance, NormalState


def _listing(reuse: ReusedInstances, items: list[tuple[str, tuple]]) -> list[Instance]:
    reuse.start()
    out = [
        reuse.instance(key, sig, {}, lambda k=key, s=sig: Instance("e2b", k, str(s[0]), NormalState.RUNNING))
        for key, sig in items
    ]
    reuse.done()
    return out


def test_unchanged_items_are_reused_changed_and_malformed_ones_rebuilt():
    reuse = ReusedInstances()
    first = _listing(reuse, [("a", ("running", "2026-01-01T00:00:00Z")), ("b", ("paused", None))])
    again = _listing(reuse, [("a", ("running", "2026-01-01T00:00:00Z")), ("b", ("running", None))])
    assert again[0] is first[0]
    assert again[1] is not first[1] and again[1].raw_state == "running"
    assert all(type(entry[0]) is int for entry in reuse._prev.values())  # hashes, not raw tuples
    odd = _listing(reuse, [("a", (["running"], None))])  # an unhashable value: built, never cached
    assert odd[0] is not first[0] and odd[0].raw_state == "['running']"
    assert len(reuse) == 0
