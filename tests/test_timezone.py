"""Bug 3 of issue 15: LEON's naive local timestamps read in the wrong zone.

A real sandbox.db written "at UTC+8" (naive local ISO, LEON's way) read by `opcockpit snapshot` on a
UTC host: without `[sources] timezone` the snapshot carries a `warnings` entry (schema-valid) and
times sit 8 h ahead; with `timezone = "Asia/Shanghai"` the times are right and no `warnings` key is
written (a clean snapshot is byte-for-byte what it was). The header warning is a pilot test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from opcockpit.adapters.leon.schema import create_sandbox_db
from opcockpit.domain.clock_skew import future_timestamp_warning, snapshot_warnings
from opcockpit.domain.timeutil import local_zone
from opcockpit.formats.serialize import dumps_json, iter_ndjson, to_dict
from opcockpit.settings.config import CockpitConfig, SourcesConfig
from opcockpit.wiring import build_cockpit, run_main
from tests.cli_support import REPO, clean_env, run_cli
from tests.fixtures.leon_db import add_lease, add_session, add_terminal

SCHEMA = json.loads((REPO / "docs" / "snapshot.schema.json").read_text())
SHANGHAI = timedelta(hours=8)


def write_db_at_utc8(path: Path, now_utc: datetime) -> Path:
    """Three local leases whose LEON wrote `datetime.now()` on a UTC+8 host, minutes ago."""
    conn = create_sandbox_db(str(path), "leonai")
    local_now = (now_utc + SHANGHAI).replace(tzinfo=None)  # what LEON's datetime.now() wrote
    for n in range(1, 4):
        lid = f"lease-tz00000000{n:02d}"
        at = local_now - timedelta(minutes=n)
        add_lease(
            conn, lid, "local", current_instance_id=f"leon-{lid}", observed_state="running",
            created_at=at - timedelta(hours=1), updated_at=at, observed_at=at,
        )  # fmt: skip
        add_terminal(conn, f"term-{n}", f"thread-{n}", lid, created_at=at, pointer=True)
        add_session(conn, f"chat-{n}", f"thread-{n}", f"term-{n}", lid, started_at=at, last_active_at=at)
    conn.commit()
    conn.close()
    return path


def snapshot_json(db: Path, home: Path, config: str | None = None) -> tuple[dict, str]:
    args = ["snapshot", "--db", str(db), "--format", "json"]
    if config is not None:
        cfg = home / "opcockpit.toml"
        cfg.write_text(config)
        args[1:1] = ["--config", str(cfg)]
    res = run_cli(*args, env=clean_env(home, TZ="UTC"))
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)
    return doc, res.out


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


def test_db_from_utc8_read_on_utc_warns_and_the_zone_setting_fixes_it(tmp_path: Path, home: Path) -> None:
    db = write_db_at_utc8(tmp_path / "sandbox.db", datetime.now(UTC))

    doc, _ = snapshot_json(db, home)  # the host's zone (TZ=UTC): every time 8 h ahead
    generated = datetime.fromisoformat(doc["generated_at"])
    ahead = [datetime.fromisoformat(r["last_active"]) - generated for r in doc["rows"]]
    assert all(timedelta(hours=7, minutes=50) < a < timedelta(hours=8) for a in ahead), ahead
    assert list(doc)[-1] == "warnings" and len(doc["warnings"]) == 1
    assert "3 leases" in doc["warnings"][0] and "[sources] timezone" in doc["warnings"][0]

    doc, text = snapshot_json(db, home, '[sources]\ntimezone = "Asia/Shanghai"\n')
    generated = datetime.fromisoformat(doc["generated_at"])
    for r in doc["rows"]:
        age = generated - datetime.fromisoformat(r["last_active"])
        assert timedelta(0) < age < timedelta(minutes=10), (r["lease_id"], age)
    assert "warnings" not in doc and '"warnings"' not in text


def test_ndjson_meta_line_carries_the_warning(tmp_path: Path, home: Path) -> None:
    db = write_db_at_utc8(tmp_path / "sandbox.db", datetime.now(UTC))
    res = run_cli("snapshot", "--db", str(db), "--format", "ndjson", env=clean_env(home, TZ="UTC"))
    assert res.code == 0, res.err
    meta = json.loads(res.out.splitlines()[0])
    assert meta["type"] == "meta" and "in the future" in meta["warnings"][0]


def test_unknown_zone_is_one_clear_line(tmp_path: Path, home: Path) -> None:
    db = write_db_at_utc8(tmp_path / "sandbox.db", datetime.now(UTC))
    cfg = home / "bad.toml"
    cfg.write_text('[sources]\ntimezone = "Mars/Olympus"\n')
    res = run_cli("snapshot", "--config", str(cfg), "--db", str(db), env=clean_env(home, TZ="UTC"))
    assert res.code == 2 and res.out == ""
    assert "Mars/Olympus" in res.err and "Traceback" not in res.err


def test_pure_check_bounds_and_fast_path_equal_generic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    db = write_db_at_utc8(tmp_path / "sandbox.db", now)
    cfg = CockpitConfig(sources=SourcesConfig(sandbox_db=db))
    zoned = CockpitConfig(sources=SourcesConfig(sandbox_db=db, timezone="Asia/Shanghai"))

    async def collect(settings: CockpitConfig):  # type: ignore[no-untyped-def]
        cockpit = build_cockpit(settings, read_only=True, ledger_path=tmp_path / "ledger.db")
        try:
            return await cockpit.collector.refresh()
        finally:
            await cockpit.aclose()

    monkeypatch.setenv("TZ", "UTC")  # this process reads as the UTC host does
    local_zone.cache_clear()
    try:
        wrong = run_main(lambda: collect(cfg))
        right = run_main(lambda: collect(zoned))
    finally:
        monkeypatch.delenv("TZ")
        local_zone.cache_clear()
    assert snapshot_warnings(wrong) and not snapshot_warnings(right)
    # Within the skew is clock drift, not a zone: no warning at 4 minutes ahead, one at 6.
    row = right.rows[0]
    assert future_timestamp_warning([row], row.last_active - timedelta(minutes=4)) is None  # type: ignore[operator]
    assert future_timestamp_warning([row], row.last_active - timedelta(minutes=6)) is not None  # type: ignore[operator]
    # The direct JSON writer and the generic conversion agree, warnings included.
    assert json.loads(dumps_json(wrong)) == to_dict(wrong)
    assert json.loads(next(iter(iter_ndjson(wrong))))["warnings"] == list(snapshot_warnings(wrong))
