"""Config discovery, precedence, secrets and error messages (real files in a temp HOME)."""

from __future__ import annotations

import json
import os
import tomllib
from functools import partial
from pathlib import Path

import pytest

from opcockpit.adapters.providers.registry import KINDS
from opcockpit.cli.main import main
from opcockpit.cli.starter import STARTER_CONFIG
from opcockpit.settings.config import ConfigError, redact, scrub
from opcockpit.settings.config import load_config as _load_config
from tests.cli_support import REPO, clean_env

# The loader gets the provider kinds from its caller; the product passes the registry's.
load_config = partial(_load_config, kinds=KINDS)

SECRET = "e2b_9c1d6f0a4b7e2c8d5f3a1b6e9d0c47f"
SECRET_JSON = "dtn_leonjsonsecret_0123456789abcd"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp HOME with no LEON or opcockpit env leaking in from the developer's shell."""
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home)
    for key in list(os.environ):
        if key not in env:
            monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return home


def leon_json(home: Path, name: str, data: dict) -> Path:
    d = home / ".leon" / "sandboxes"
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{name}.json"
    p.write_text(json.dumps(data))
    return p


def write_toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- zero config


def test_zero_config_follows_leon_defaults(home: Path) -> None:
    leon_json(home, "docker", {"provider": "docker", "on_exit": "pause"})
    leon_json(home, "e2b", {"provider": "e2b", "e2b": {"api_key": SECRET, "timeout": 300}})
    leon_json(
        home,
        "daytona_selfhost",
        {"provider": "daytona", "daytona": {"api_key": SECRET_JSON, "api_url": "http://d.local/api",
                                            "target": "eu"}},
    )  # fmt: skip
    ab_cfg = {"api_key": "x" * 20, "region_id": "us-east-1"}
    leon_json(home, "agentbay", {"provider": "agentbay", "agentbay": ab_cfg})

    loaded = load_config()
    cfg = loaded.config
    assert cfg.sources.sandbox_db == home / ".leon" / "sandbox.db"
    assert cfg.sources.events_db == home / ".leon" / "events.db"
    assert set(cfg.providers) == {"docker", "e2b", "daytona_selfhost", "agentbay", "local"}
    assert cfg.providers["local"].kind == "local"
    assert cfg.providers["docker"].host == "unix:///var/run/docker.sock"
    e2b = cfg.providers["e2b"]
    assert (e2b.kind, e2b.api_url, e2b.api_key_env) == ("e2b", "https://api.e2b.app", "E2B_API_KEY")
    assert e2b.resolve_api_key() == SECRET  # from the LEON json: no env var set
    day = cfg.providers["daytona_selfhost"]
    assert (day.kind, day.api_url, day.target) == ("daytona", "http://d.local/api", "eu")
    ab = cfg.providers["agentbay"]
    assert (ab.region, ab.api_url) == ("us-east-1", "https://agentbay.us-east-1.aliyuncs.com")
    assert loaded.origin("providers.e2b.kind") == "~/.leon/sandboxes/e2b.json"
    assert loaded.origin("sources.sandbox_db") == "LEON default"
    assert loaded.paths.own_config is None


def test_leon_env_vars_pick_the_databases(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LEON_SANDBOX_DB_PATH", str(tmp_path / "s.db"))
    monkeypatch.setenv("LEON_DB_PATH", str(tmp_path / "data" / "leon.db"))
    loaded = load_config()
    assert loaded.config.sources.sandbox_db == tmp_path / "s.db"
    assert loaded.config.sources.events_db == tmp_path / "data" / "events.db"  # sibling of leon.db
    assert loaded.origin("sources.sandbox_db") == "$LEON_SANDBOX_DB_PATH"
    monkeypatch.setenv("LEON_RUN_EVENT_DB_PATH", str(tmp_path / "ev.db"))
    assert load_config().config.sources.events_db == tmp_path / "ev.db"


def test_broken_leon_json_is_a_warning_not_a_failure(home: Path) -> None:
    (home / ".leon" / "sandboxes").mkdir(parents=True)
    (home / ".leon" / "sandboxes" / "bad.json").write_text("{not json")
    leon_json(home, "weird", {"provider": "kubernetes"})
    loaded = load_config()
    assert "bad" not in loaded.config.providers and "weird" not in loaded.config.providers
    assert len(loaded.warnings) == 2
    assert any("bad.json" in w and "line 1" in w for w in loaded.warnings)
    assert any("'kubernetes' is not supported" in w for w in loaded.warnings)


# --------------------------------------------------------------------------- own TOML


ISSUE_TOML = """
[sources]
sandbox_db = "/path/sandbox.db"
events_db = "/path/events.db"        # optional
[providers.docker]                    # the table name is the provider name used in sandbox_leases
kind = "docker"
host = "unix:///run/docker.sock"      # or tcp://...; DOCKER_HOST respected
[providers.e2b]
kind = "e2b"
api_url = "https://api.e2b.app"
api_key_env = "E2B_API_KEY"
"""


def test_issue_toml_shape_at_xdg_path(home: Path) -> None:
    path = write_toml(home / ".config" / "opcockpit" / "config.toml", ISSUE_TOML)
    loaded = load_config()
    cfg = loaded.config
    assert loaded.paths.own_config == path and loaded.paths.own_config_origin == "default path"
    assert cfg.sources.sandbox_db == Path("/path/sandbox.db")
    assert cfg.sources.events_db == Path("/path/events.db")
    assert cfg.providers["docker"].host == "unix:///run/docker.sock"
    assert cfg.providers["e2b"].api_key_env == "E2B_API_KEY"
    assert loaded.origin("providers.docker.host") == str(path)


def test_precedence_flag_over_toml_over_leon(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEON_SANDBOX_DB_PATH", "/leon/sandbox.db")
    leon_json(home, "e2b", {"provider": "e2b", "e2b": {"api_key": SECRET}})
    cfg_path = write_toml(tmp_path / "custom.toml", '[sources]\nsandbox_db = "/toml/sandbox.db"\n'
                          '[providers.e2b]\napi_url = "http://127.0.0.1:9/"\n')  # fmt: skip
    # LEON only
    assert load_config().config.sources.sandbox_db == Path("/leon/sandbox.db")
    # TOML beats LEON; LEON's other keys for the same provider survive the key-by-key merge
    loaded = load_config(cfg_path)
    assert loaded.config.sources.sandbox_db == Path("/toml/sandbox.db")
    assert loaded.config.providers["e2b"].api_url == "http://127.0.0.1:9/"
    assert loaded.config.providers["e2b"].resolve_api_key() == SECRET
    # flag beats TOML
    loaded = load_config(cfg_path, db="/flag/sandbox.db", read_only=True)
    assert loaded.config.sources.sandbox_db == Path("/flag/sandbox.db")
    assert loaded.origin("sources.sandbox_db") == "--db flag"
    assert loaded.config.read_only is True
    # $OPCOCKPIT_CONFIG is used when no --config is given
    monkeypatch.setenv("OPCOCKPIT_CONFIG", str(cfg_path))
    assert load_config().paths.own_config_origin == "$OPCOCKPIT_CONFIG"


def test_env_secret_wins_and_docker_host_respected(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    leon_json(home, "e2b", {"provider": "e2b", "e2b": {"api_key": SECRET_JSON}})
    leon_json(home, "docker", {"provider": "docker"})
    monkeypatch.setenv("E2B_API_KEY", SECRET)
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2375")
    loaded = load_config()
    assert loaded.config.providers["e2b"].resolve_api_key() == SECRET
    assert loaded.config.providers["e2b"].key_source() == "$E2B_API_KEY"
    assert loaded.config.providers["docker"].host == "tcp://10.0.0.5:2375"
    assert loaded.origin("providers.docker.host") == "$DOCKER_HOST"


def test_extra_keys_and_disabled_provider(home: Path, tmp_path: Path) -> None:
    text = (
        "refresh_s = 5\nread_only = true\nlist_timeout_s = 3\n"
        '[providers.old]\nkind = "e2b"\nenabled = false\nlabel_filter = { team = "sre" }\n'
    )
    p = write_toml(tmp_path / "c.toml", text)
    cfg = load_config(p).config
    assert (cfg.refresh_s, cfg.read_only, cfg.list_timeout_s) == (5, True, 3)
    assert cfg.providers["old"].enabled is False
    assert cfg.providers["old"].label_filter == {"team": "sre"}


# --------------------------------------------------------------------------- invalid config


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_one_message_per_problem_with_file_and_key_path(home: Path, tmp_path: Path) -> None:
    p = write_toml(
        tmp_path / "bad.toml",
        f"""
refresh_s = 0.1
colour = "blue"
[sources]
sandbox_db = "/x.db"
[providers.e2b]
kind = "e3b"
api_key = "{SECRET}"
[providers.d]
host = "unix:///x"
[providers.dock]
kind = "docker"
timeout_s = "slow"
hots = "typo"
""",
    )
    problems = problems_of(p)
    assert all(line.startswith(str(p) + ": ") for line in problems), problems
    joined = "\n".join(problems)
    for needle in (
        "colour: unknown key",
        "refresh_s: Input should be greater than or equal to 0.5",
        "providers.e2b.kind: Input should be",
        "providers.d.kind: missing",
        "providers.dock.timeout_s: Input should be a valid number",
        "providers.dock.hots: unknown key (did you mean 'host'?)",
    ):
        assert sum(needle in line for line in problems) == 1, (needle, problems)
    assert len(problems) == 6
    assert SECRET not in joined and SECRET[-6:] not in joined


def test_toml_syntax_error_and_missing_file(home: Path, tmp_path: Path) -> None:
    p = write_toml(tmp_path / "syntax.toml", '[sources]\nsandbox_db = "unterminated\n')
    (problem,) = problems_of(p)
    assert problem.startswith(f"{p}: invalid TOML") and "line 2" in problem
    (problem,) = problems_of(tmp_path / "nope.toml")
    assert "config file not found" in problem and "--config" in problem


@pytest.mark.parametrize(
    ("toml", "code"),
    [(ISSUE_TOML, 0), ("[providers.x]\nkind = 1\n", 2), ("sources = 3\n", 2)],
)
def test_validate_exit_codes(home: Path, tmp_path: Path, capsys, toml: str, code: int) -> None:
    p = write_toml(tmp_path / "c.toml", toml)
    assert main(["config", "validate", "--config", str(p)]) == code
    out, err = capsys.readouterr()
    if code:
        assert out == "" and err.count("\n") >= 1 and "Traceback" not in err
        assert all(line.startswith("opcockpit: config error: ") for line in err.splitlines())
    else:
        assert out.startswith("ok: ")


# --------------------------------------------------------------------------- secrets


def test_secret_never_shown(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    leon_json(home, "daytona_saas", {"provider": "daytona", "daytona": {"api_key": SECRET_JSON}})
    monkeypatch.setenv("E2B_API_KEY", SECRET)
    p = write_toml(tmp_path / "c.toml", ISSUE_TOML)
    loaded = load_config(p)
    assert SECRET_JSON not in repr(loaded) and SECRET_JSON not in str(loaded.config)
    assert SECRET_JSON not in loaded.config.model_dump_json()
    for fmt in ("text", "json"):
        assert main(["config", "show", "--config", str(p), "--format", fmt]) == 0
        out, err = capsys.readouterr()
        assert SECRET not in out + err and SECRET_JSON not in out + err
        assert SECRET[-10:] not in out and SECRET_JSON[-10:] not in out
    main(["config", "show", "--config", str(p)])
    out = capsys.readouterr().out
    assert redact(SECRET) in out and "$E2B_API_KEY" in out  # shown redacted, with its origin
    assert redact(SECRET_JSON) in out and "daytona_saas.json" in out
    assert scrub(f"boom {SECRET} boom") == f"boom {redact(SECRET)} boom"


def test_redact_shapes() -> None:
    assert redact(SECRET) == "e2b_…7f"
    assert redact("short") == "***"
    assert redact(None) == "(unset)"


def test_missing_key_shows_how_to_set_it(home: Path, capsys) -> None:
    leon_json(home, "e2b", {"provider": "e2b"})
    assert main(["config", "show"]) == 0
    assert "missing: set $E2B_API_KEY" in capsys.readouterr().out


# --------------------------------------------------------------------------- init / paths


def test_init_writes_refuses_and_forces(home: Path, capsys) -> None:
    target = home / ".config" / "opcockpit" / "config.toml"
    assert main(["config", "init"]) == 0
    assert target.read_text() == STARTER_CONFIG
    tomllib.loads(target.read_text())
    load_config()  # the starter itself is valid
    capsys.readouterr()
    target.write_text("# mine\n")
    assert main(["config", "init"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert target.read_text() == "# mine\n"
    assert main(["config", "init", "--force"]) == 0
    assert target.read_text() == STARTER_CONFIG
    other = home / "elsewhere" / "c.toml"
    assert main(["config", "init", "--path", str(other)]) == 0 and other.exists()


def test_example_file_is_the_starter() -> None:
    assert (REPO / "config.example.toml").read_text() == STARTER_CONFIG


def test_paths_lists_everything(home: Path, capsys) -> None:
    assert main(["config", "paths"]) == 0
    out = capsys.readouterr().out
    assert str(home / ".config" / "opcockpit" / "config.toml") in out
    assert str(home / ".leon" / "sandboxes") in out and str(home / ".leon" / "sandbox.db") in out


def test_validate_warns_when_the_sandbox_db_does_not_exist(home: Path, tmp_path: Path, capsys) -> None:
    """Issue 15, bug 12: `config validate` said `ok` while the cockpit waited on a missing file."""
    missing = tmp_path / "no" / "sandbox.db"
    assert main(["config", "validate", "--db", str(missing)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: no config file (LEON defaults)")
    assert (
        err
        == f"opcockpit: warning: sandbox.db at {missing} does not exist (set [sources] sandbox_db or --db)\n"
    )
    missing.parent.mkdir()
    missing.write_bytes(b"")
    assert main(["config", "validate", "--db", str(missing)]) == 0
    assert capsys.readouterr().err == ""
