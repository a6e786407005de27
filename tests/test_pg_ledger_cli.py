"""Issue 12: cron's `snapshot --check` and a team mate's `opcockpit ack|mute|alerts` use the ledger
the config names (`[ledger] url`, a real PostgreSQL), not the local XDG file: an ack made from a
shell shows to every cockpit and to the next cron run."""

from __future__ import annotations

import json
from pathlib import Path

from opcockpit.adapters.ledger.alerts import AlertStore
from tests.cli_support import clean_env, run_cli
from tests.fixtures.postgres import pg_server, pg_url  # noqa: F401
from tests.test_alerts_cli import setup  # noqa: F401  # a firing lease_recovering and stuck_run


def test_check_ack_and_alerts_use_the_configured_postgres_ledger(
    setup: tuple[dict[str, str], Path, Path],  # noqa: F811
    pg_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    _, db, edb = setup
    home = tmp_path / "home2"
    home.mkdir()
    config = tmp_path / "cockpit.toml"
    config.write_text(
        f'[sources]\nsandbox_db = "{db}"\nevents_db = "{edb}"\n\n[ledger]\nurl = "{pg_url}"\n',
        encoding="utf-8",
    )
    env = clean_env(home)
    env.pop("OPCOCKPIT_LEDGER", None)
    check = run_cli("--config", str(config), "snapshot", "--check", "--format", "json", env=env)
    assert check.code == 1, check.err  # firing
    with AlertStore.open(pg_url) as store:
        firing = {a.rule: a for a in store.active()}
    assert {"lease_recovering", "stuck_run"} <= set(firing)
    alert_id = str(firing["lease_recovering"].id)

    ack = run_cli("--config", str(config), "ack", alert_id, "--who", "alice", env=env)
    assert ack.code == 0, ack.err
    with AlertStore.open(pg_url) as store:
        assert store.get(alert_id).acked_by == "alice"
    shown = run_cli("--config", str(config), "alerts", "--cached", "--format", "json", env=env)
    assert shown.code == 1, shown.err
    assert {a["rule"]: a["ack"] for a in json.loads(shown.out)}["lease_recovering"]["by"] == "alice"
    assert password_free(pg_url, check.err + ack.err + shown.err + shown.out)
    # nothing went to the machine's own ledger file
    assert not list(home.rglob("ledger.db"))


def password_free(url: str, text: str) -> bool:
    secret = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    return secret not in text
