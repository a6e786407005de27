"""`opcockpit snapshot` end to end: every format parsed back, JSON validated against the documented
schema, the DB untouched, provider failures reported in the output with exit 0."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema
import pytest

from opcockpit.doubles.e2b import E2BDouble
from opcockpit.formats.serialize import CSV_COLUMNS, ORPHAN_FIELDS, ROW_FIELDS
from tests.cli_support import REPO, build_leon_db, clean_env, file_hashes, run_cli

SCHEMA = json.loads((REPO / "docs" / "snapshot.schema.json").read_text())
KEY = "e2b_snapshot_format_key_abcdef0123"


@pytest.fixture
def fleet(tmp_path: Path):
    """A real LEON DB with leases on e2b (a live double), docker (unconfigured), local, daytona."""
    home = tmp_path / "home"
    home.mkdir()
    with E2BDouble(api_key=KEY) as double:
        bound = double.add(state="running").instance_id
        double.add(state="paused", instance_id="orphan00000000000001")
        db = build_leon_db(
            tmp_path / "sandbox.db",
            [
                ("lease-000000000001", "docker", "leon-aaaaaaaaaaaa", "running", "running"),
                ("lease-000000000002", "e2b", bound, "running", "running"),
                ("lease-000000000003", "local", "leon-lease-000000000003", "running", "running"),
                ("lease-000000000004", "daytona_selfhost", None, "running", "detached"),
            ],
        )
        cfg = tmp_path / "opcockpit.toml"
        cfg.write_text(f'[providers.e2b]\nkind = "e2b"\napi_url = "{double.url}"\nretries = 0\n')
        env = clean_env(home, E2B_API_KEY=KEY)
        yield db, cfg, env, bound


def snapshot(fleet, fmt: str, *extra: str):
    db, cfg, env, _ = fleet
    return run_cli("snapshot", "--config", str(cfg), "--db", str(db), "--format", fmt, *extra, env=env)


def test_json_matches_schema_and_field_order(fleet) -> None:
    before = file_hashes(fleet[0])
    res = snapshot(fleet, "json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)
    assert list(doc) == ["version", "generated_at", "db", "providers", "rows", "orphans"]
    assert doc["generated_at"].endswith("Z")
    assert doc["db"] == {"path": str(fleet[0]), "schema_variant": "leonai"}
    assert [list(r) for r in doc["rows"]] == [list(ROW_FIELDS)] * 4
    assert set(SCHEMA["$defs"]["row"]["properties"]) == set(ROW_FIELDS)  # schema documents every field
    assert set(SCHEMA["$defs"]["orphan"]["properties"]) == set(ORPHAN_FIELDS)
    providers = {p["name"]: p for p in doc["providers"]}
    assert providers["e2b"]["status"] == "ok" and providers["e2b"]["instance_count"] == 2
    assert providers["docker"]["status"] == "error"
    assert "not configured" in providers["docker"]["error"]
    assert providers["local"]["status"] == "db_only"
    rows = {r["lease_id"]: r for r in doc["rows"]}
    assert rows["lease-000000000002"]["convergence"] == "converged"
    assert rows["lease-000000000001"]["convergence"] == "stale"
    assert rows["lease-000000000004"]["convergence"] == "stale"  # daytona_selfhost not configured
    assert [o["instance_id"] for o in doc["orphans"]] == ["orphan00000000000001"]
    assert KEY not in res.out + res.err
    assert file_hashes(fleet[0]) == before  # reading never writes


def test_ndjson_lines_carry_types(fleet) -> None:
    res = snapshot(fleet, "ndjson")
    assert res.code == 0, res.err
    objs = [json.loads(line) for line in res.out.splitlines()]
    types = [o["type"] for o in objs]
    assert types[0] == "meta"
    assert types.count("row") == 4 and types.count("orphan") == 1 and types.count("provider") >= 4
    # grouped in order: meta, providers, rows, orphans
    assert types == sorted(types, key=["meta", "provider", "row", "orphan"].index)
    row = next(o for o in objs if o["type"] == "row")
    assert list(row)[1:] == list(ROW_FIELDS)
    defs = SCHEMA["$defs"]
    for o in objs:
        if o["type"] in ("provider", "row", "orphan"):
            body = {k: v for k, v in o.items() if k != "type"}
            jsonschema.validate(body, {**defs[o["type"]], "$defs": defs})


def test_csv_has_one_header_and_all_rows(fleet) -> None:
    res = snapshot(fleet, "csv")
    assert res.code == 0, res.err
    table = list(csv.reader(io.StringIO(res.out)))
    assert table[0] == list(CSV_COLUMNS)
    assert len(table) == 5 and all(len(r) == len(CSV_COLUMNS) for r in table)
    assert sum(r == table[0] for r in table) == 1
    leases = [r[CSV_COLUMNS.index("lease_id")] for r in table[1:]]
    assert sorted(leases) == [f"lease-00000000000{i}" for i in range(1, 5)]


def test_table_shows_rows_and_provider_health(fleet) -> None:
    res = snapshot(fleet, "table", "--width", "220")
    assert res.code == 0, res.err
    for needle in ("lease-000000000001", "lease-000000000004", "e2b (e2b): ok", "docker (unknown): error",
                   "orphan00000000000001", "4 leases, 1 orphans"):  # fmt: skip
        assert needle in res.out, needle


def test_provider_filter(fleet) -> None:
    res = snapshot(fleet, "json", "--provider", "e2b", "--provider", "local")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert {r["provider"] for r in doc["rows"]} == {"e2b", "local"}
    assert {p["name"] for p in doc["providers"]} == {"e2b", "local"}


@pytest.mark.parametrize("fmt", ["json", "table", "ndjson", "csv", "prometheus"])
def test_unknown_provider_is_a_usage_error(fleet, fmt: str) -> None:
    """A typo in --provider must not print an empty fleet with exit 0 ("nothing there")."""
    res = snapshot(fleet, fmt, "--provider", "nosuch")
    assert res.code == 2 and res.out == ""
    assert res.err.splitlines() == [
        "opcockpit: unknown provider 'nosuch' (configured: e2b, local; in sandbox.db only: "
        "daytona_selfhost, docker)"
    ]
    res = snapshot(fleet, fmt, "--provider", "e2b", "--provider", "nosuch", "--check")
    assert res.code == 2 and res.out == "" and "unknown provider 'nosuch'" in res.err
    # a provider only sandbox.db names is known: its rows show, as 'not configured'
    res = snapshot(fleet, "json", "--provider", "docker")
    assert res.code == 0, res.err
    assert [r["lease_id"] for r in json.loads(res.out)["rows"]] == ["lease-000000000001"]


def test_failed_provider_is_output_not_exit_code(fleet) -> None:
    db, cfg, env, _ = fleet
    env = {k: v for k, v in env.items() if k != "E2B_API_KEY"}  # the key is gone
    res = run_cli("snapshot", "--config", str(cfg), "--db", str(db), "--format", "json", env=env)
    assert res.code == 0, res.err
    e2b = next(p for p in json.loads(res.out)["providers"] if p["name"] == "e2b")
    assert e2b["status"] == "error" and "$E2B_API_KEY" in e2b["error"]


def test_config_error_exits_2_and_writes_nothing(fleet, tmp_path: Path) -> None:
    db, _, env, _ = fleet
    bad = tmp_path / "bad.toml"
    bad.write_text('[providers.e2b]\nkind = "e2c"\n')
    res = run_cli("snapshot", "--config", str(bad), "--db", str(db), env=env)
    assert res.code == 2 and res.out == ""
    assert res.err.splitlines() == [
        f"opcockpit: config error: {bad}: providers.e2b.kind: "
        "Input should be 'docker', 'e2b', 'daytona', 'agentbay' or 'local'"
    ]


def test_spelled_out_row_serializer_matches_generic_conversion(tmp_path: Path) -> None:
    """row_to_dict is hand-unrolled for speed; it must equal the field-by-field generic conversion."""
    import asyncio
    from datetime import UTC, datetime

    from opcockpit.adapters.leon.sandbox_db import read_db_state
    from opcockpit.domain.models import ProviderListing
    from opcockpit.domain.reconcile import reconcile
    from opcockpit.formats.serialize import _value, row_to_dict

    db = asyncio.run(read_db_state(str(build_leon_db(tmp_path / "s.db"))))
    listings = [ProviderListing(provider="local", kind="local", ok=True, has_api=False)]
    gt = reconcile(db, listings, datetime.now(UTC))
    assert gt.rows
    for row in gt.rows:
        assert row_to_dict(row) == {k: _value(getattr(row, k)) for k in ROW_FIELDS}


@pytest.mark.parametrize("variant", ["leonai", "mycel", "older"])
def test_schema_holds_on_a_messy_generated_fleet(variant: str, tmp_path: Path) -> None:
    """The demo generator's realistic mess (several terminals per thread, closed sessions, resource
    snapshots, adopted leases...) in every LEON schema variant, through the real CLI."""
    from opcockpit.demo.fleet import generate_fleet

    generate_fleet(tmp_path / "fleet", leases=150, seed=3, variant=variant, runs=False)
    home = tmp_path / "home"
    home.mkdir()
    db = tmp_path / "fleet" / "sandbox.db"
    before = file_hashes(db)
    res = run_cli("snapshot", "--db", str(db), "--format", "json", env=clean_env(home))
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)
    assert len(doc["rows"]) == 150 and doc["db"]["schema_variant"] == variant
    assert any(r["resources"] for r in doc["rows"]) or variant == "older"
    assert file_hashes(db)["db"] == before["db"]


def test_check_json_and_ndjson_alerts_match_schema(fleet, tmp_path: Path) -> None:
    """`snapshot --check` adds "alerts" and "check" to the document: both are in the schema, fully
    specified, including an acked, muted alert with a notification delivery on record."""
    import sys

    db, cfg, env, _ = fleet
    check_cfg = tmp_path / "check.toml"
    argv = json.dumps([sys.executable, "-c", "import sys; sys.stdin.read()"])
    check_cfg.write_text(
        cfg.read_text() + f"[alerts]\nprovider_down_for_s = 0\n[alerts.command]\nargv = {argv}\n"
    )
    env = {**env, "OPCOCKPIT_LEDGER": str(tmp_path / "ledger.db")}
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())

    def check(fmt: str):  # type: ignore[no-untyped-def]
        return run_cli("snapshot", "--config", str(check_cfg), "--db", str(db), "--format", fmt, "--check",
                       env=env)  # fmt: skip

    res = check("json")
    assert res.code == 1, res.err  # unmuted firing alerts
    doc = json.loads(res.out)
    validator.validate(doc)
    assert list(doc)[-2:] == ["alerts", "check"]
    unreachable = [a for a in doc["alerts"] if a["rule"] == "provider_unreachable"]
    assert {a["key"] for a in unreachable} >= {"provider_unreachable:docker"}
    assert doc["check"] == {"exit_code": 1, "firing": len(doc["alerts"]), "unmuted": len(doc["alerts"])}

    # ack + mute every alert, then look again: the nested ack/mute/deliveries objects validate too
    for a in doc["alerts"]:
        assert run_cli("ack", str(a["id"]), "--comment", "on it", "--who", "alice", env=env).code == 0
        assert run_cli("mute", str(a["id"]), "--until-resolved", env=env).code == 0
    res = check("json")
    assert res.code == 0, res.err  # everything firing is muted
    doc = json.loads(res.out)
    validator.validate(doc)
    first = doc["alerts"][0]
    assert first["ack"]["by"] == "alice" and first["mute"]["until_resolved"] is True and first["muted"]
    assert [d["status"] for d in first["deliveries"]] == ["ok"]
    assert doc["check"] == {"exit_code": 0, "firing": len(doc["alerts"]), "unmuted": 0}

    # ndjson: the {"type": "alert"} records are the same objects
    res = check("ndjson")
    assert res.code == 0, res.err
    records = [json.loads(line) for line in res.out.splitlines()]
    alerts = [r for r in records if r["type"] == "alert"]
    assert len(alerts) == len(doc["alerts"])
    defs = SCHEMA["$defs"]
    for rec in records:
        if rec["type"] in ("provider", "row", "orphan", "alert"):
            body = {k: v for k, v in rec.items() if k != "type"}
            jsonschema.Draft202012Validator(
                {**defs[rec["type"]], "$defs": defs}, format_checker=jsonschema.FormatChecker()
            ).validate(body)
