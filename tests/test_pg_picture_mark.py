# ruff: noqa: F811  (pytest fixtures imported by name)
"""The picture mark on a PostgreSQL ledger (issue 12): one short read-only session reads the one
entry, so a one-shot snapshot of an unchanged fleet neither loads nor diffs the stored picture
(real PostgreSQL, the real EventLog and history service; the ground truths are domain values)."""

from __future__ import annotations

import time
from dataclasses import replace

import psycopg
import pytest

from opcockpit.adapters.ledger.events import EventLog
from opcockpit.adapters.ledger.pg_picture_mark import PrefetchedMarkReader, read_mark_pg
from opcockpit.domain.events import picture_of
from opcockpit.domain.models import Convergence
from opcockpit.domain.picture_mark import MARK_KEY, fingerprint
from opcockpit.services.history import RecordingCollector
from tests.fixtures.postgres import PASSWORD, pg_server, pg_url  # noqa: F401
from tests.test_snapshot_picture_mark import _gt, _row


def _once(url: str, gt: object) -> tuple[int, RecordingCollector]:
    """One snapshot process's recording on the PostgreSQL ledger, the mark read by read_mark_pg."""
    rec = RecordingCollector(None, EventLog(url), mark_reader=lambda: read_mark_pg(url))
    try:
        return rec._record(gt), rec  # type: ignore[arg-type]
    finally:
        rec.events.close()


def test_mark_written_by_the_event_log_is_read_back(pg_url: str) -> None:
    log = EventLog(pg_url)
    try:
        log.append([], picture={MARK_KEY: ("f00d",)})
    finally:
        log.close()
    assert read_mark_pg(pg_url) == "f00d"


def test_unchanged_fleet_skips_the_picture_and_a_change_is_recorded(pg_url: str) -> None:
    a, b = _row("a"), _row("b")
    first, rec = _once(pg_url, _gt(a, b))
    assert first == 0 and rec._loaded and rec.ledger_error is None  # the baseline, its mark with it
    assert read_mark_pg(pg_url) == fingerprint(picture_of(_gt(a, b)))
    again, rec = _once(pg_url, _gt(a, b))
    assert again == 0 and rec._loaded is False  # the mark matched: the stored picture was not loaded
    moved, rec = _once(pg_url, _gt(replace(a, convergence=Convergence.DIVERGED, provider_state="paused"), b))
    assert moved >= 1 and rec._loaded  # a changed fleet never hides behind the old mark
    assert read_mark_pg(pg_url) != fingerprint(picture_of(_gt(a, b)))


@pytest.mark.parametrize("case", ["no table", "wrong password", "no server", "not a mark", "none"])
def test_anything_unexpected_reads_as_no_mark(pg_server: object, pg_url: str, case: str) -> None:
    url: str | None = pg_url
    if case == "wrong password":
        url = pg_url.replace(PASSWORD, "not-the-password-9")
    elif case == "no server":
        url = "postgresql://cockpit:pw@127.0.0.1:9/none?connect_timeout=1"
    elif case == "not a mark":
        with psycopg.connect(pg_url, autocommit=True) as pg:
            pg.execute("CREATE TABLE event_picture (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            pg.execute("INSERT INTO event_picture VALUES (%s, %s)", (MARK_KEY, "{not json"))
    elif case == "none":
        url = None
    assert read_mark_pg(url) is None
    if url is not None:
        assert PrefetchedMarkReader(url)() is None


def _store_mark(url: str, mark: str) -> None:
    log = EventLog(url)
    try:
        log.append([], picture={MARK_KEY: (mark,)})
    finally:
        log.close()


def test_prefetched_reader_reads_the_mark_when_asked_not_when_built(pg_url: str) -> None:
    """Only the session is opened ahead: a mark written after the reader was built (another
    cockpit recording meanwhile) is the one it returns, on the first call and on later ones."""
    _store_mark(pg_url, "before")
    reader = PrefetchedMarkReader(pg_url)
    assert reader._thread is not None
    reader._thread.join()  # the session is open now, the mark not yet read
    _store_mark(pg_url, "after")
    assert reader() == "after"
    _store_mark(pg_url, "later")
    assert reader() == "later"  # a later call: a session of its own
    with psycopg.connect(pg_url, autocommit=True) as pg:
        for _ in range(100):  # a closed session's backend leaves pg_stat_activity as it exits
            left = pg.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'opcockpit-mark'"
            ).fetchone()[0]
            if left == 0:
                break
            time.sleep(0.05)
    assert left == 0  # each session closed once read


def test_the_mark_session_is_read_only(pg_url: str) -> None:
    """The reader's session refuses writes whatever the role may: it can never touch the ledger."""
    log = EventLog(pg_url)
    try:
        log.append([], picture={MARK_KEY: ("cafe",)})
    finally:
        log.close()
    assert read_mark_pg(pg_url) == "cafe"
    with psycopg.connect(pg_url, autocommit=True) as pg:
        count = pg.execute("SELECT count(*) FROM event_picture").fetchone()[0]
    assert count == 1  # read_mark_pg created, migrated and wrote nothing
