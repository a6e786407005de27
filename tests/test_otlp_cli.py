"""`opcockpit export otlp` as a real process: runs from events.db and events from the cockpit's
ledger reach a loopback OTLP/HTTP receiver; an unreachable collector exits 3 with one line and
the ledger keeps every event; header secrets never appear in output."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.events import EventLog
from opcockpit.adapters.leon.schema import create_sandbox_db
from opcockpit.domain.events import EventSource, InstanceStateChanged, InstanceView, ProviderListingFailed
from opcockpit.domain.events import ProviderView as PV
from tests.fixtures.leon_db import add_run_event, create_events_db
from tests.fixtures.otlp import OtlpReceiver, closed_port_url

SECRET = "Bearer otlp-secret-token-1234567890"


def _fleet(tmp_path: Path, endpoint: str) -> tuple[Path, Path, dict[str, str]]:
    now = datetime.now(UTC).replace(microsecond=0)
    create_sandbox_db(str(tmp_path / "sandbox.db"), "mycel")
    conn = create_events_db(str(tmp_path / "events.db"))
    for i, (kind, data) in enumerate([
        ("run_start", {"source": "web"}),
        ("tool_call", {"id": "c1", "name": "bash"}),
        ("tool_result", {"tool_call_id": "c1"}),
        ("run_done", {}),
    ]):  # fmt: skip
        add_run_event(
            conn, "th-1", "run-1", kind, data, created_at=now - timedelta(minutes=5) + timedelta(seconds=i)
        )
    conn.commit()
    conn.close()
    ledger = tmp_path / "ledger.db"
    log = EventLog(ledger)
    log.append([
        InstanceStateChanged(
            observed_at=now - timedelta(minutes=3), source=EventSource.PROVIDER_LIST, provider="e2b",
            instance_id="i-1", before=InstanceView(state="running"), after=InstanceView(state="paused"),
        ),
        ProviderListingFailed(
            observed_at=now - timedelta(minutes=2), source=EventSource.COCKPIT, provider="e2b",
            before=PV(status="ok"), after=PV(status="error", error="timeout"),
        ),
    ])  # fmt: skip
    log.close()
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[sources]\nsandbox_db = "{tmp_path / "sandbox.db"}"\nevents_db = "{tmp_path / "events.db"}"\n\n'
        f'[export.otlp]\nendpoint = "{endpoint}"\nheaders_env = "TEST_OTLP_HEADERS"\ntimeout_s = 1\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(TEST_OTLP_HEADERS=f"authorization={SECRET}", HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path))
    return cfg, ledger, env


def _cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opcockpit.cli", *argv], capture_output=True, text=True, env=env, timeout=60
    )


def test_export_pushes_runs_and_ledger_events(tmp_path: Path) -> None:
    with OtlpReceiver() as rx:
        cfg, ledger, env = _fleet(tmp_path, rx.url)
        out = _cli("export", "otlp", "--config", str(cfg), "--ledger", str(ledger), "--since", "1h", env=env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(
            "exported 1 run(s) as 2 span(s) and 2 log record(s) to http://127.0.0.1:"
        )
        assert sorted(s.name for s in rx.spans) == ["execute_tool bash", "invoke_agent"]
        assert sorted(r.event_name for r in rx.logs) == [
            "opcockpit.instance.state_changed", "opcockpit.provider.listing_failed",
        ]  # fmt: skip
        assert {h.get("authorization") for h in rx.headers} == {SECRET}  # the header went out...
        assert {p for p in rx.paths} == {"/v1/traces", "/v1/logs"}
    assert "otlp-secret" not in out.stdout + out.stderr  # ...and was never printed
    shown = _cli("config", "show", "--config", str(cfg), env=env)
    assert shown.returncode == 0 and "otlp-secret" not in shown.stdout + shown.stderr


def test_export_to_an_unreachable_collector_exits_3_and_loses_nothing(tmp_path: Path) -> None:
    cfg, ledger, env = _fleet(tmp_path, closed_port_url())
    before = EventLog(ledger).count()
    out = _cli("export", "otlp", "--config", str(cfg), "--ledger", str(ledger), "--since", "1h",
               "--timeout", "2", env=env)  # fmt: skip
    assert out.returncode == 3, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "unreachable or refusing" in lines[0]
    assert "4 of 4 records not delivered" in lines[0] and "nothing lost" in lines[0]
    assert "otlp-secret" not in out.stdout + out.stderr
    assert EventLog(ledger).count() == before == 2


@pytest.mark.parametrize("since", ["soon", "-1h"])
def test_bad_since_is_a_usage_error(tmp_path: Path, since: str) -> None:
    cfg, _ledger, env = _fleet(tmp_path, closed_port_url())
    out = _cli("export", "otlp", "--config", str(cfg), "--since", since, env=env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--since" in out.stderr


def test_config_endpoint_wins_over_the_env_and_headers_merge() -> None:
    from opcockpit.adapters.otlp import resolve_target

    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env-collector:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=a,authorization=env-token",
        "MY_HEADERS": "authorization=Bearer%20cfg-token",
    }
    t = resolve_target("http://cfg-collector:4318/", "MY_HEADERS", env)
    assert (t.traces_url, t.logs_url) == (
        "http://cfg-collector:4318/v1/traces",
        "http://cfg-collector:4318/v1/logs",
    )
    assert dict(t.headers) == {"x-tenant": "a", "authorization": "Bearer cfg-token"}
    assert "cfg-token" not in repr(t)
    from_env = resolve_target(None, None, env)
    assert from_env.traces_url == "http://env-collector:4318/v1/traces" and from_env.origin.startswith(
        "$OTEL"
    )
    per_signal = resolve_target(None, None, {**env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/x"})
    assert (
        per_signal.traces_url == "http://t:1/x" and per_signal.logs_url == "http://env-collector:4318/v1/logs"
    )


def test_enabled_defaults_to_the_env_endpoint() -> None:
    from opcockpit.settings.export import OtlpExportConfig

    assert not OtlpExportConfig().is_enabled({})
    assert OtlpExportConfig().is_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert not OtlpExportConfig(enabled=False).is_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    with pytest.raises(ValueError, match="not an http"):
        OtlpExportConfig(endpoint="ftp://c")
