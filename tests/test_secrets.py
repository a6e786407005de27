"""Secrets in the edge cases: URLs without a scheme, static secret headers, the alert command's
environment, and text that carries a secret in another spelling or only by its shape.
One implementation (opcockpit.domain.secrets), re-exported by opcockpit.settings.config and used by notify."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.adapters.notify import Notifier
from opcockpit.adapters.providers.registry import KINDS
from opcockpit.domain import secrets
from opcockpit.domain.alerts import AlertsConfig, CommandConfig, WebhookConfig
from opcockpit.services.alert_engine import AlertEngine
from opcockpit.settings import config
from tests.alerts_support import T0, Clock, ground_truth, listing, naive, sandbox_db
from tests.cli_support import clean_env, run_cli
from tests.fixtures.leon_db import add_lease

URL_PW = "SECRETpw42x"
HEADER_TOKEN = "Bearer hdr-7a7a7a7a7a7a7a7a"
PROVIDER_KEY = "e2b_providerkeyproviderkey0042"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return clean_env(home)


def test_config_reexports_the_one_implementation() -> None:
    assert config.redact_url is secrets.redact_url
    assert config.scrub is secrets.scrub
    assert config.redact is secrets.redact
    assert config.url_secrets is secrets.url_secrets


def test_schemeless_userinfo_is_never_echoed_in_the_config_error(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[providers.x]\nkind = "e2b"\napi_url = "opuser:{URL_PW}@host/v1"\n')
    r = run_cli("config", "validate", "--config", str(cfg), env=env)
    assert r.code == 2 and r.out == ""
    assert URL_PW not in r.err and "providers.x.api_url" in r.err
    assert "opuser:***@host/v1" in r.err  # still recognisable


def test_webhook_url_without_scheme_is_a_config_error(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[alerts.webhook]\nurl = "hooks.slack.com/services/T0/B0/{URL_PW}"\n')
    r = run_cli("config", "validate", "--config", str(cfg), env=env)
    assert r.code == 2 and URL_PW not in r.err and "alerts.webhook.url" in r.err
    r = run_cli("config", "show", "--config", str(cfg), env=env)
    assert r.code == 2 and URL_PW not in r.out + r.err


def test_config_show_hides_static_secret_headers(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[alerts.webhook]\nurl = 'https://hooks.example.net/x'\n"
        f"headers = {{ authorization = '{HEADER_TOKEN}', x-api-key = 'k-{URL_PW}', x-team = 'sre' }}\n"
    )
    for fmt in ("text", "json"):
        r = run_cli("config", "show", "--format", fmt, "--config", str(cfg), env=env)
        assert r.code == 0, r.err
        assert "hdr-7a7a" not in r.out and URL_PW not in r.out
        assert "sre" in r.out  # non-secret headers still shown
    hook = json.loads(r.out)["alerts"]["webhook"]
    assert hook["headers"]["value"] == {"authorization": "***", "x-api-key": "***", "x-team": "sre"}
    loaded = config.load_config(cfg, env=env, kinds=KINDS)
    assert "hdr-7a7a" not in repr(loaded.config.alerts) and "hdr-7a7a" not in str(loaded.config)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"opuser:{URL_PW}@host/v1", "opuser:***@host/v1"),
        (f"https://h.example/x?access_token={URL_PW}&page=2", "https://h.example/x?access_token=***&page=2"),
        (f"hooks.slack.com/services/{URL_PW}", None),
    ],
)
def test_redact_url_edge_shapes(url: str, shown: str | None) -> None:
    if shown is not None:
        assert secrets.redact_url(url) == shown
    assert URL_PW not in secrets.redact_url(url, hide_path=True)


def test_scrub_catches_shapes_and_other_spellings() -> None:
    secrets.remember("s3cr3t/with+chars=")
    text = (
        "GET https://h.example/x?token=tok123456 failed; "
        "conn opuser:hunter2xx@db.internal/v1; "
        "Authorization: Bearer abc.def.ghi; "
        "key in url s3cr3t%2Fwith%2Bchars%3D; "
        "repr 's3cr3t/with+chars='"
    )
    out = secrets.scrub(text)
    for leaked in ("tok123456", "hunter2xx", "abc.def.ghi", "s3cr3t%2Fwith", "s3cr3t/with"):
        assert leaked not in out, (leaked, out)
    assert "opuser:***@db.internal" in out and "token=***" in out
    # and ordinary text is left alone
    assert secrets.scrub("lease lease-abc at 12:30 on host:2375") == "lease lease-abc at 12:30 on host:2375"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("authorization", True), ("X-Api-Key", True), ("token", True), ("client_secret", True),
        ("password", True), ("api_key", True), ("key", True), ("DAYTONA_API_KEY", True),
        ("x-team", False), ("region", False), ("content-type", False), ("PATH", False),
    ],
)  # fmt: skip
def test_secret_names(name: str, secret: bool) -> None:
    assert secrets.is_secret_name(name) is secret


def test_redact_mapping() -> None:
    assert secrets.redact_mapping({"authorization": "Bearer x", "x-team": "sre"}) == {
        "authorization": "***",
        "x-team": "sre",
    }


def test_alert_command_gets_a_minimal_environment(tmp_path: Path) -> None:
    db = sandbox_db(
        tmp_path / "sandbox.db",
        lambda c: add_lease(c, "lease-aaaaaaaaaaaa", "docker", status="recovering",
                            created_at=naive(T0), updated_at=naive(T0)),
    )  # fmt: skip
    out = tmp_path / "env.json"
    script = tmp_path / "hook.py"
    script.write_text(f"import json, os\nopen({str(out)!r}, 'w').write(json.dumps(dict(os.environ)))\n")
    parent_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "E2B_API_KEY": PROVIDER_KEY,
        "DAYTONA_API_KEY": PROVIDER_KEY,
        "OPCOCKPIT_WEBHOOK_AUTH": PROVIDER_KEY,
        "AWS_SECRET_ACCESS_KEY": PROVIDER_KEY,
    }
    clock = Clock()
    cfg = AlertsConfig(recovering_for_s=0, command=CommandConfig(argv=[sys.executable, str(script)]))
    eng = AlertEngine(
        AlertStore.open(tmp_path / "ledger.db"), cfg, clock, notifier=Notifier(cfg, env=parent_env)
    )
    snap = eng.evaluate(ground_truth(db, [listing("docker", "docker", listed_at=clock.now)], clock.now))
    assert [d.ok for d in snap.deliveries] == [True], snap.deliveries
    child = json.loads(out.read_text())
    assert PROVIDER_KEY not in json.dumps(child)
    alert_vars = {k for k in child if k.startswith("OPCOCKPIT_ALERT_")}
    assert alert_vars == {"OPCOCKPIT_ALERT_ID", "OPCOCKPIT_ALERT_KEY", "OPCOCKPIT_ALERT_RULE",
                          "OPCOCKPIT_ALERT_SEVERITY"}  # fmt: skip
    assert {k: child[k] for k in ("PATH", "HOME", "LANG", "TZ")} == {
        k: parent_env[k] for k in ("PATH", "HOME", "LANG", "TZ")
    }
    # nothing else from the parent (the interpreter may add a few of its own, e.g. LC_CTYPE)
    assert not (set(child) & (set(parent_env) - {"PATH", "HOME", "LANG", "TZ"}))


def test_notify_uses_the_shared_redactor() -> None:
    from opcockpit.adapters import notify

    assert notify.redact_url is secrets.redact_url
    hook = WebhookConfig(url=f"https://u:{URL_PW}@hooks.example.net/services/{URL_PW}")
    assert URL_PW not in repr(hook)
