"""tui.data.clean (issue 10, the alert round's CPU): every string anywhere in a record is made
terminal-safe, and a value with nothing to clean comes back as the same object."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from opcockpit.domain.alerts import Evidence, Severity
from opcockpit.domain.text import safe_text
from opcockpit.ports.alert_records import Alert, AlertSnapshot, Delivery
from opcockpit.tui.data import clean

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ESC = "title\x1b]52;c;cGF5bG9hZA==\x07tail"


def _alert(i: int, **over: Any) -> Alert:
    base = dict(
        id=i, fingerprint="abcd1234", key=f"lease_diverged:lease-{i}", rule="lease_diverged",
        severity=Severity.WARNING if hasattr(Severity, "WARNING") else next(iter(Severity)),
        summary=f"lease {i} diverged", threshold="5m", scope="docker",
        evidence=(Evidence("lease", f"lease-{i}", "note"), Evidence("orphan", "docker/x")),
        details={"n": i, "ratio": 0.5}, state="firing", first_seen=NOW, fired_at=NOW,
        last_seen=NOW, resolved_at=None, acked_by=None, acked_at=None, ack_comment=None,
        muted_until=None, mute_until_resolved=False, muted_by=None, muted_at=None,
        mute_comment=None, deliveries=(Delivery("webhook", "https://h/…", "ok", 1, 1, None, NOW, NOW),),
    )  # fmt: skip
    base.update(over)
    return Alert(**base)  # type: ignore[arg-type]


def _strings(value: Any) -> list[str]:
    """Every string reachable in `value` (the oracle walks it the slow, obvious way)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [s for f in dataclasses.fields(value) for s in _strings(getattr(value, f.name))]
    return []


def test_clean_values_come_back_as_the_same_objects() -> None:
    snap = AlertSnapshot(now=NOW, active=tuple(_alert(i) for i in range(50)), newly_firing=(),
                         newly_resolved=(), pending=0)  # fmt: skip
    assert clean(snap) is snap
    alert = _alert(1)
    assert clean(alert) is alert
    assert clean(alert.details) is alert.details
    assert clean(alert.evidence) is alert.evidence
    assert clean(()) == () and clean({}) == {} and clean([]) == []


def test_control_characters_are_cleaned_wherever_they_are() -> None:
    cases = [
        _alert(1, summary=ESC),
        _alert(2, evidence=(Evidence("lease", "l"), Evidence("lease", "m", ESC))),
        _alert(3, details={"n": 1, "text": ESC}),
        _alert(4, details={"nested": [1, {"deep": (ESC,)}]}),
        _alert(5, deliveries=(Delivery("webhook", "h", "failed", 2, 1, ESC, NOW, None),)),
        _alert(6, ack_comment=ESC, muted_until=NOW + timedelta(hours=1)),
    ]
    snap = AlertSnapshot(now=NOW, active=tuple(cases), newly_firing=(cases[0],), newly_resolved=(),
                         pending=0)  # fmt: skip
    out = clean(snap)
    assert out is not snap
    for before, after in zip(snap.active, out.active, strict=True):
        assert after is not before
        texts = _strings(after)
        assert all(s.isprintable() or "\n" in s for s in texts), texts
        assert safe_text(ESC, single_line=False) in texts
        # everything that was clean is untouched
        assert [s for s in _strings(before) if s.isprintable()] == [s for s in texts if s in _strings(before)]
    assert out.active[0].severity is snap.active[0].severity  # enums are constants, kept


def test_tuples_lists_and_str_subclasses() -> None:
    class Name(str):
        pass

    assert clean((1, "a", ESC, None)) == (1, "a", safe_text(ESC, single_line=False), None)
    assert clean(["ok", ESC]) == ["ok", safe_text(ESC, single_line=False)]
    assert clean(Name("fine")) == "fine"
    assert "\x1b" not in clean(Name(ESC))
    assert clean("line one\nline two") == "line one\nline two"  # newlines are kept
