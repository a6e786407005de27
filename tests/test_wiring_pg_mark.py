# ruff: noqa: F811  (pytest fixtures imported by name)
"""wiring: a one-shot cockpit (the snapshot) on a PostgreSQL ledger reads the picture mark there,
so an unchanged fleet skips loading and diffing the stored picture as on SQLite (issue 12)."""

from __future__ import annotations

from pathlib import Path

from opcockpit.domain.events import picture_of
from opcockpit.domain.picture_mark import fingerprint
from opcockpit.services.history import RecordingCollector
from tests.fixtures.postgres import pg_server, pg_url  # noqa: F401


async def test_one_shot_cockpit_on_a_postgres_ledger_skips_an_unchanged_picture(
    tmp_path: Path, pg_url: str
) -> None:
    from opcockpit.settings.models import CockpitConfig, SourcesConfig
    from opcockpit.wiring import build_cockpit
    from tests.cli_support import build_leon_db

    config = CockpitConfig(sources=SourcesConfig(sandbox_db=build_leon_db(tmp_path / "sandbox.db")))
    first = build_cockpit(config, ledger_path=pg_url, read_only=True, one_shot=True)
    try:
        assert isinstance(first.collector, RecordingCollector)
        assert first.collector.mark_reader is not None
        gt = await first.collector.refresh()  # the baseline: the picture and its mark stored
        assert first.collector.mark_reader() == fingerprint(picture_of(gt))
    finally:
        await first.collector.aclose()
    again = build_cockpit(config, ledger_path=pg_url, read_only=True, one_shot=True)
    try:
        await again.collector.refresh()
        assert again.collector._loaded is False  # the mark matched: nothing loaded, nothing diffed
        assert again.collector.ledger_error is None
    finally:
        await again.collector.aclose()
