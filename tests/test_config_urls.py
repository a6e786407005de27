"""URL credentials in the config (api_url / host / alert webhooks) are never shown, URL shapes are
validated with one clear message, and `config show` includes the [alerts] table.

Real files in a temp HOME, `config show|validate` run as real subprocesses.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from opcockpit.adapters.providers.registry import KINDS
from opcockpit.settings.config import load_config as _load_config
from opcockpit.settings.config import redact_url, scrub
from tests.cli_support import build_leon_db, clean_env, run_cli

# The loader gets the provider kinds from its caller; the product passes the registry's.
load_config = partial(_load_config, kinds=KINDS)

PASSWORD = "PASSWORD"  # the audit's own example: short, so only URL-aware redaction catches it
DOCKER_PW = "dockerpw-7c1e"
QUERY_TOKEN = "qtok-9f8e7d6c5b4a"
HOOK_PW = "hookpass-5511"
HOOK_PATH_TOKEN = "XyZslackPathToken0123"
HOOK_ENV_URL = "https://hooks.example.net/services/T1/B1/envPathToken4567"
SECRETS = (PASSWORD, DOCKER_PW, QUERY_TOKEN, HOOK_PW, HOOK_PATH_TOKEN, "envPathToken4567")

CONFIG = f"""
[providers.x]
kind = "daytona"
api_url = "http://user:{PASSWORD}@127.0.0.1:1/api?token={QUERY_TOKEN}&region=eu"
retries = 0

[providers.dock]
kind = "docker"
host = "tcp://admin:{DOCKER_PW}@127.0.0.1:2375"

[alerts]
stuck_after_s = 900
disabled_rules = ["leak"]

[alerts.webhook]
url = "https://hook:{HOOK_PW}@hooks.slack.com/services/T0/B0/{HOOK_PATH_TOKEN}?token={QUERY_TOKEN}"

[alerts.command]
argv = ["notify-send", "opcockpit"]
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return clean_env(home)


def _write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (secret, text)


def test_config_show_text_redacts_url_credentials_and_shows_alerts(tmp_path: Path, env) -> None:
    cfg = _write(tmp_path, CONFIG)
    res = run_cli("config", "show", "--config", str(cfg), env=env)
    assert res.code == 0, res.err
    _assert_clean(res.out + res.err)
    assert 'api_url = "http://user:***@127.0.0.1:1/api?token=***&region=eu"' in res.out
    assert 'host = "tcp://admin:***@127.0.0.1:2375"' in res.out
    # the [alerts] table, with the values from the file and their origin
    assert "\n[alerts]\n" in res.out
    assert any(line.startswith("stuck_after_s = 900.0") and str(cfg) in line for line in res.out.splitlines())
    assert 'disabled_rules = ["leak"]' in res.out
    assert "\n[alerts.webhook]\n" in res.out
    assert 'url = "https://hook:***@hooks.slack.com/…"' in res.out  # path + query: the token lives there
    assert "\n[alerts.command]\n" in res.out and 'argv = ["notify-send", "opcockpit"]' in res.out


def test_config_show_json_redacts_and_has_alerts(tmp_path: Path, env) -> None:
    cfg = _write(tmp_path, CONFIG)
    res = run_cli("config", "show", "--config", str(cfg), "--format", "json", env={
        **env, "HOOK_URL": HOOK_ENV_URL,
    })  # fmt: skip
    assert res.code == 0, res.err
    _assert_clean(res.out + res.err)
    doc = json.loads(res.out)
    assert doc["providers"]["x"]["api_url"]["value"] == "http://user:***@127.0.0.1:1/api?token=***&region=eu"
    assert doc["providers"]["dock"]["host"]["value"] == "tcp://admin:***@127.0.0.1:2375"
    alerts = doc["alerts"]
    assert alerts["settings"]["stuck_after_s"] == {"value": 900.0, "origin": str(cfg)}
    assert alerts["settings"]["window_s"]["origin"] == "default"
    assert alerts["webhook"]["url"]["value"] == "https://hook:***@hooks.slack.com/…"
    assert alerts["command"]["argv"]["value"] == ["notify-send", "opcockpit"]

    # url_env: the env var's URL is what gets used, so that is what is shown (redacted)
    cfg2 = _write(tmp_path, '[alerts.webhook]\nurl_env = "HOOK_URL"\n', "c2.toml")
    res = run_cli("config", "show", "--config", str(cfg2), "--format", "json",
                  env={**env, "HOOK_URL": HOOK_ENV_URL})  # fmt: skip
    assert res.code == 0, res.err
    _assert_clean(res.out)
    hook = json.loads(res.out)["alerts"]["webhook"]
    assert hook["url"] == {"value": "https://hooks.example.net/…", "origin": "from $HOOK_URL"}


def test_reprs_and_scrubber_never_carry_url_passwords(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for key, value in clean_env(home).items():
        monkeypatch.setenv(key, value)
    loaded = load_config(_write(tmp_path, CONFIG))
    _assert_clean(repr(loaded))
    _assert_clean(str(loaded.config) + repr(loaded.config.providers["x"]) + repr(loaded.config.alerts))
    assert "user:***@127.0.0.1:1" in repr(loaded.config.providers["x"])
    # the loader registered the passwords: any text quoting them (an adapter error, a traceback)
    # is scrubbed, with or without the URL around them
    for secret in (PASSWORD, DOCKER_PW, QUERY_TOKEN, HOOK_PW):
        assert secret not in scrub(f"boom: {secret!r} in 'x' (while talking to a provider)")
    hook = f"https://hook:{HOOK_PW}@hooks.slack.com/services/T0/B0/{HOOK_PATH_TOKEN}?token={QUERY_TOKEN}"
    _assert_clean(scrub(f"POST {hook} -> 500"))
    # an unknown URL with credentials is still scrubbed by its shape
    assert scrub("GET http://bob:hunter2@10.0.0.1/x") == "GET http://bob:***@10.0.0.1/x"


def test_redact_url_shapes() -> None:
    assert redact_url("http://user:PASSWORD@127.0.0.1:1/api") == "http://user:***@127.0.0.1:1/api"
    assert redact_url("https://ghp_tokentokentoken@h.example/x") == "https://***@h.example/x"
    assert redact_url("https://h.example/x?sig=abc&page=2") == "https://h.example/x?sig=***&page=2"
    assert redact_url("https://h.example/a/b/c?x=1", hide_path=True) == "https://h.example/…"
    assert redact_url("unix:///var/run/docker.sock") == "unix:///var/run/docker.sock"
    assert redact_url("https://api.e2b.app") == "https://api.e2b.app"


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ('[providers.x]\nkind = "e2b"\napi_url = "not a url"\n',
         "providers.x.api_url: not an http(s) URL: 'not a url' (no scheme; scheme http or https required"),
        ('[providers.x]\nkind = "daytona"\napi_url = "ftp://u:secretpw1@h/api"\n',
         "providers.x.api_url: not an http(s) URL: 'ftp://u:***@h/api' (scheme 'ftp'; scheme http or https"),
        ('[providers.x]\nkind = "e2b"\napi_url = "https://"\n', "providers.x.api_url: not a valid URL"),
        ('[providers.d]\nkind = "docker"\nhost = "npipe:////./pipe/docker_engine"\n',
         "providers.d.host: not a docker host: 'npipe:////./pipe/docker_engine' (scheme 'npipe' is not"),
        ('[providers.d]\nkind = "docker"\nhost = "/var/run/docker.sock"\n',
         "providers.d.host: not a docker host: '/var/run/docker.sock' (no scheme; want unix:///"),
        ('[providers.d]\nkind = "docker"\nhost = "unix://"\n', "providers.d.host: unix socket path missing"),
    ],
)  # fmt: skip
def test_validate_rejects_bad_url_shapes_with_one_message(
    tmp_path: Path, env, table: str, needle: str
) -> None:
    cfg = _write(tmp_path, table)
    res = run_cli("config", "validate", "--config", str(cfg), env=env)
    assert res.code == 2 and res.out == ""
    (line,) = res.err.splitlines()
    assert line.startswith(f"opcockpit: config error: {cfg}: "), line
    assert needle in line, line
    assert "secretpw1" not in res.err and "Value error" not in line


@pytest.mark.parametrize(
    "table",
    [
        '[providers.x]\nkind = "e2b"\napi_url = "http://127.0.0.1:8080/api"\n',
        '[providers.x]\nkind = "e2b"\napi_url = "https://user:pw@api.e2b.app"\n',
        '[providers.d]\nkind = "docker"\nhost = "unix:///run/user/1000/podman/podman.sock"\n',
        '[providers.d]\nkind = "docker"\nhost = "tcp://127.0.0.1:2375"\n',
    ],
)
def test_validate_accepts_good_url_shapes(tmp_path: Path, env, table: str) -> None:
    res = run_cli("config", "validate", "--config", str(_write(tmp_path, table)), env=env)
    assert res.code == 0 and res.out.startswith("ok: "), res.err


def test_machine_and_leon_settings_with_bad_shapes_are_warnings(tmp_path: Path, env) -> None:
    """$DOCKER_HOST (ssh://) and LEON's own json are not our config: a warning, the provider fails
    alone at listing time (its rows stale), the cockpit still starts."""
    home = Path(env["HOME"])
    sandboxes = home / ".leon" / "sandboxes"
    sandboxes.mkdir(parents=True)
    (sandboxes / "docker.json").write_text(json.dumps({"provider": "docker"}))
    (sandboxes / "dayt.json").write_text(
        json.dumps({"provider": "daytona", "daytona": {"api_url": "daytona.local:3000"}})
    )
    env = {**env, "DOCKER_HOST": "ssh://me@build-box"}
    res = run_cli("config", "validate", env=env)
    assert res.code == 0, res.err
    warnings = res.err.splitlines()
    assert any("$DOCKER_HOST" in w and "scheme 'ssh' is not supported" in w for w in warnings), warnings
    assert any("dayt.json" in w and "api_url: not an http(s) URL" in w and "skipped" in w for w in warnings)
    db = build_leon_db(tmp_path / "sandbox.db")
    snap = run_cli("snapshot", "--db", str(db), "--format", "json", env=env)
    assert snap.code == 0, snap.err
    docker = next(p for p in json.loads(snap.out)["providers"] if p["name"] == "docker")
    assert docker["status"] == "error" and "ssh://" in docker["error"]


def test_snapshot_with_password_url_never_prints_it(tmp_path: Path, env) -> None:
    db = build_leon_db(tmp_path / "sandbox.db")
    cfg = _write(tmp_path, f'[providers.x]\nkind = "daytona"\n'
                           f'api_url = "http://user:{PASSWORD}@127.0.0.1:1/api"\nretries = 0\n')  # fmt: skip
    for extra in ((), ("--debug",)):
        res = run_cli("snapshot", "--config", str(cfg), "--db", str(db), "--format", "json", *extra,
                      env={**env, "DAYTONA_API_KEY": "dtn_0123456789abcdef0123"})  # fmt: skip
        assert res.code == 0, res.err
        assert PASSWORD not in res.out + res.err
        x = next(p for p in json.loads(res.out)["providers"] if p["name"] == "x")
        assert x["status"] == "error"  # nothing listens on port 1
