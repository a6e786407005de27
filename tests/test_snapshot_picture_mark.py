"""The stored picture's fingerprint (issue 9): a one-shot snapshot whose fleet did not change skips
loading and diffing the ledger's picture, and the mark never lets a change go unrecorded (real
SQLite ledger files, the real history service; the ground truths are domain values)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from opcockpit.adapters.ledger.events import EventLog
from opcockpit.adapters.ledger.picture_mark import read_mark
from opcockpit.domain.events import EventQuery, _isoformats, picture_of
from opcockpit.domain.models import (
    Convergence,
    GroundTruth,
    GroundTruthRow,
    ProviderHealth,
    ProviderStatus,
)
from opcockpit.domain.picture_mark import MARK_KEY, fingerprint, split_mark
from opcockpit.services.history import RecordingCollector
from tests.test_picture_inc import _orphan
from tests.test_picture_inc import _row as _prow

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HEALTH = (
    ProviderHealth(name="e2b", kind="e2b", status=ProviderStatus.OK, error=None, listed_at=None,
                   instance_count=None),
)  # fmt: skip


def _row(lid: str, conv: Convergence = Convergence.CONVERGED, state: str = "running") -> GroundTruthRow:
    return GroundTruthRow(
        lease_id=lid, provider="e2b", thread_id=None, thread_ids=(), chat_session_id=None,
        instance_id=f"i-{lid}", desired_state="running", observed_state="running",
        provider_state=state, convergence=conv, reason="r", last_active=None, source="lease",
        lease_status="active", version=1, needs_refresh=False, last_error=None, resources=None,
        updated_at=T0,
    )  # fmt: skip


def _gt(*rows: GroundTruthRow) -> GroundTruth:
    return GroundTruth(generated_at=T0, providers=HEALTH, rows=rows, orphans=())


def _once(path: Path, gt: GroundTruth) -> tuple[int, RecordingCollector]:
    """One snapshot process's recording: a fresh collector in one-shot mode."""
    rec = RecordingCollector(None, EventLog(path), mark_reader=lambda: read_mark(path))
    try:
        return rec._record(gt), rec
    finally:
        rec.events.close()


def _live(path: Path, *gts: GroundTruth) -> None:
    """A live cockpit's rounds (no mark reader: diffs by change)."""
    rec = RecordingCollector(None, EventLog(path))
    try:
        for gt in gts:
            rec._record(gt)
            assert rec.ledger_error is None
    finally:
        rec.events.close()


def _stored(path: Path) -> tuple[dict, str | None]:
    pic = EventLog(path).last_picture()
    assert pic is not None
    return pic, split_mark(pic)


def _lease_events(path: Path) -> list[tuple[str | None, str | None]]:
    got = EventLog(path).query(EventQuery(oldest_first=True))
    return [(e.lease_id, e.after.convergence if e.after else None) for e in got if e.type.startswith("lease")]


def test_unchanged_fleet_skips_the_ledger_and_the_mark_is_the_stored_picture(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    a, b = _row("a"), _row("b")
    assert _once(path, _gt(a, b))[0] == 0  # baseline
    pic, mark = _stored(path)
    assert pic == picture_of(_gt(a, b)) and mark == fingerprint(pic)
    count, rec = _once(path, _gt(a, b))
    assert count == 0 and rec.ledger_error is None
    assert rec._loaded is False  # recognised by its mark: the picture was never loaded
    # a change is recorded, and the mark follows the stored picture
    count, _ = _once(path, _gt(replace(a, convergence=Convergence.DIVERGED, provider_state="paused"), b))
    assert count >= 1
    pic, mark = _stored(path)
    assert mark == fingerprint(pic) and pic["L|a"][0] == "diverged"
    assert _lease_events(path) == [("a", "diverged")]


def test_a_live_round_that_writes_drops_the_mark_so_no_change_is_missed(tmp_path: Path) -> None:
    """The live cockpit never fingerprints the whole picture: whenever it writes, the mark goes,
    so a snapshot that sees the fleet as it was before the live round diffs in full."""
    path = tmp_path / "ledger.db"
    a, b = _row("a"), _row("b")
    _once(path, _gt(a, b))
    a2 = replace(a, convergence=Convergence.DIVERGED, provider_state="paused")
    _live(path, _gt(a, b), _gt(a2, b))  # lease a diverged while the cockpit ran
    assert _stored(path)[1] is None
    count, rec = _once(path, _gt(a, b))  # back as the old mark described it
    assert count == 2 and rec._loaded  # the lease and its instance
    assert _lease_events(path) == [("a", "diverged"), ("a", "converged")]
    pic, mark = _stored(path)
    assert mark == fingerprint(pic)


def test_an_unchanged_fleet_without_a_mark_gets_one_without_events(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    a, b = _row("a"), _row("b")
    _live(path, _gt(a, b), _gt(replace(a, convergence=Convergence.DIVERGED), b), _gt(a, b))
    assert _stored(path)[1] is None
    before = len(EventLog(path).query(EventQuery()))
    assert _once(path, _gt(a, b))[0] == 0
    assert len(EventLog(path).query(EventQuery())) == before
    pic, mark = _stored(path)
    assert mark == fingerprint(pic) == fingerprint(picture_of(_gt(a, b)))
    assert _once(path, _gt(a, b))[1]._loaded is False  # and the next run is the fast one


def test_the_mark_is_not_a_subject(tmp_path: Path) -> None:
    """A live cockpit loading a picture with a mark never diffs the mark into an event."""
    path = tmp_path / "ledger.db"
    a = _row("a")
    _once(path, _gt(a))
    _live(path, _gt(a), _gt(a, _row("b")))
    kinds = {e.type for e in EventLog(path).query(EventQuery())}
    assert kinds == {"lease.convergence_changed", "instance.appeared"}  # lease b, nothing for the mark
    assert _stored(path)[1] is None  # the live write dropped the mark


def test_fingerprint_ignores_the_mark_and_sees_every_entry() -> None:
    pic = picture_of(_gt(_row("a"), _row("b")))
    assert fingerprint({**pic, MARK_KEY: ("x",)}) == fingerprint(pic)
    for key in pic:
        other = dict(pic)
        other[key] = (*other[key][:-1], "changed")
        assert fingerprint(other) != fingerprint(pic)
    assert fingerprint({k: v for k, v in pic.items() if k != "L|a"}) != fingerprint(pic)


def test_read_mark_reads_nothing_it_cannot_trust(tmp_path: Path) -> None:
    assert read_mark(None) is None
    assert read_mark(tmp_path / "missing.db") is None
    assert not (tmp_path / "missing.db").exists()  # never created
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    assert read_mark(junk) is None
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert read_mark(empty) is None  # no event_picture table yet
    odd = tmp_path / "odd.db"
    with sqlite3.connect(odd) as conn:
        conn.execute("CREATE TABLE event_picture (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO event_picture VALUES (?, 'not json')", (MARK_KEY,))
    assert read_mark(odd) is None


def test_snapshot_command_records_through_the_mark(tmp_path: Path) -> None:
    """`opcockpit snapshot` end to end (subprocess): the first run stores the baseline with its
    mark, a second run leaves the ledger as it was, a changed sandbox.db is recorded."""
    from tests.cli_support import build_leon_db, clean_env, run_cli

    db = build_leon_db(tmp_path / "sandbox.db")
    ledger = tmp_path / "ledger.db"
    env = clean_env(tmp_path / "home", OPCOCKPIT_LEDGER=str(ledger))
    first = run_cli("snapshot", "--format", "json", "--db", str(db), env=env)
    assert first.code == 0, first.err
    pic, mark = _stored(ledger)
    assert mark is not None and mark == fingerprint(pic)
    second = run_cli("snapshot", "--format", "json", "--db", str(db), env=env)
    assert second.code == 0 and second.err == ""
    assert _stored(ledger) == (pic, mark)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM sandbox_leases WHERE lease_id = 'lease-000000000001'")
    third = run_cli("snapshot", "--format", "json", "--db", str(db), env=env)
    assert third.code == 0, third.err
    assert _lease_events(ledger) == [("lease-000000000001", None)]  # the row was deleted
    pic3, mark3 = _stored(ledger)
    assert mark3 is not None and mark3 != mark and pic3 != pic
    # nothing listed (no provider configured): stored entries are kept, the mark names the new
    # picture, and the next run skips all the same
    fourth = run_cli("snapshot", "--format", "json", "--db", str(db), env=env)
    assert fourth.code == 0 and fourth.err == ""
    assert _stored(ledger) == (pic3, mark3)
    assert len(_lease_events(ledger)) == 1


def _random_gt(draw_rows: list, draw_orphans: list, health: dict) -> GroundTruth:
    return GroundTruth(
        generated_at=T0,
        providers=tuple(
            ProviderHealth(name=p, kind=p, status=v, error=None, listed_at=None, instance_count=None)
            for p, v in sorted(health.items())
        ),
        rows=tuple(_prow(*r) for r in draw_rows),
        orphans=tuple(_orphan(*o) for o in draw_orphans),
    )


_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["lease-0", "lease-1", "lease-2"]), st.sampled_from(["docker", "e2b"]),
        st.sampled_from([None, "i-0", "i-1"]),
        st.sampled_from([Convergence.CONVERGED, Convergence.DIVERGED, Convergence.STALE]),
        st.sampled_from([None, "running", "paused"]),
    ),
    max_size=4, unique_by=lambda r: r[0],
)  # fmt: skip
_ORPHANS = st.lists(
    st.tuples(st.sampled_from(["docker", "e2b"]), st.sampled_from(["i-1", "i-2"]),
              st.sampled_from(["running", "paused"])),
    max_size=3, unique_by=lambda o: (o[0], o[1]),
)  # fmt: skip
_HEALTH = st.fixed_dictionaries({p: st.sampled_from(list(ProviderStatus)) for p in ("docker", "e2b")})


@settings(max_examples=300, deadline=None)
@given(_ROWS, _ORPHANS, _HEALTH, _ROWS, _ORPHANS, _HEALTH, st.booleans())
def test_the_kept_picture_is_a_fixed_point_of_the_diff(r1, o1, h1, r2, o2, h2, gone) -> None:
    """What the mark relies on: after recording new picture X over any stored picture, diffing X
    again against what was kept finds no event and keeps exactly that (stale rows, failed
    listings and providers that left the config included)."""
    from opcockpit.domain.events import diff_pictures

    prev = picture_of(_random_gt(r1, o1, h1))
    if gone:
        prev["P|left"] = ("ok", None)  # a provider no longer configured keeps its last word
    new = picture_of(_random_gt(r2, o2, h2))
    _, keep = diff_pictures(prev, new, T0)
    again, keep2 = diff_pictures(keep, new, T0)
    assert again == [] and keep2 == keep


async def test_only_the_one_shot_cockpit_reads_the_mark(tmp_path: Path) -> None:
    """wiring.build_cockpit(one_shot=True) (the snapshot) trusts the mark and reads sandbox.db
    once; the live cockpit never skips on the mark (it must diff every refresh)."""
    from opcockpit.settings.models import CockpitConfig, SourcesConfig
    from opcockpit.wiring import build_cockpit
    from tests.cli_support import build_leon_db

    db = build_leon_db(tmp_path / "sandbox.db")
    config = CockpitConfig(sources=SourcesConfig(sandbox_db=db))
    ledger = tmp_path / "ledger.db"
    once = build_cockpit(config, ledger_path=ledger, read_only=True, one_shot=True)
    live = build_cockpit(config, ledger_path=ledger, live=True)
    try:
        assert isinstance(once.collector, RecordingCollector)
        assert isinstance(live.collector, RecordingCollector)
        assert live.collector.mark_reader is None
        first = await once.collector.refresh()
        assert once.collector.mark_reader is not None
        assert once.collector.mark_reader() == fingerprint(_stored(ledger)[0])
        assert [r.lease_id for r in (await live.collector.refresh()).rows] == [r.lease_id for r in first.rows]
    finally:
        await once.collector.aclose()
        await live.collector.aclose()


def test_fingerprint_is_order_free_and_writes_what_orjson_cannot_by_repr() -> None:
    pic = picture_of(_gt(_row("a"), _row("b")))
    assert fingerprint(dict(reversed(list(pic.items())))) == fingerprint(pic)
    huge = {**pic, "L|z": ("converged", 2**70)}  # beyond orjson's 64 bits: the repr way, stable
    assert fingerprint(huge) == fingerprint(dict(reversed(list(huge.items())))) != fingerprint(pic)
    assert fingerprint({**huge, "L|z": ("converged", 2**70 + 1)}) != fingerprint(huge)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))])),
            st.datetimes(),  # naive
        ),
        max_size=12,
    )
)
def test_picture_times_are_isoformat_texts(times: list[datetime | None]) -> None:

    assert _isoformats(times) == [t.isoformat() if t else None for t in times]
