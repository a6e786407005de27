"""`python -m opcockpit.cli.ops ...` in a subprocess (real interpreter, real exit codes) against a
real LEON-schema DB and provider doubles on 127.0.0.1; destroy confirmation on a real pty."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from opcockpit.doubles.docker import DockerDouble
from opcockpit.doubles.e2b import E2BDouble
from tests.cli_support import REPO, clean_env
from tests.operations_support import LeaseSpec, assert_leon_invariants, build_db, lease_row, mutations, sha

KEY_ENV = "OPC_TEST_E2B_KEY"
KEY = "test-key"


class Env:
    def __init__(self, tmp: Path, e2b: E2BDouble, docker: DockerDouble) -> None:
        self.e2b, self.docker = e2b, docker
        self.running = e2b.add(state="running").instance_id
        self.second = e2b.add(state="running").instance_id
        self.orphan = docker.add(state="running").instance_id
        self.db = build_db(tmp / "sandbox.db", [
            LeaseSpec("lease-e2b000000001", "e2b", self.running, thread_id="t-one"),
            LeaseSpec("lease-e2b000000002", "e2b", self.second, thread_id="t-two"),
        ])  # fmt: skip
        self.config = tmp / "config.toml"
        self.config.write_text(
            f'refresh_s = 0.5\n[sources]\nsandbox_db = "{self.db}"\n'
            f'[providers.e2b]\nkind = "e2b"\napi_url = "{e2b.url}"\napi_key_env = "{KEY_ENV}"\nretries = 0\n'
            f'[providers.docker]\nkind = "docker"\nhost = "{docker.host}"\nretries = 0\n'
        )
        self.ledger = tmp / "ledger.db"
        self.env = clean_env(tmp / "home", OPCOCKPIT_LEDGER=str(self.ledger), **{KEY_ENV: KEY})

    def run(self, *args: str, stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opcockpit.cli.ops", *args, "--config", str(self.config)],
            capture_output=True, text=True, env=self.env, cwd=str(REPO), timeout=120, stdin=stdin,
        )  # fmt: skip

    def run_tty(self, *args: str, answer: str) -> tuple[int, str, str]:
        """Run with stdin on a pty (isatty() is true) and type `answer` at the prompt."""
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "opcockpit.cli.ops", *args, "--config", str(self.config)],
            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env,
            cwd=str(REPO),
        )  # fmt: skip
        os.close(slave)
        os.write(master, answer.encode() + b"\n")
        out, errs = proc.communicate(timeout=120)
        os.close(master)
        return proc.returncode, out, errs


@pytest.fixture
def env(tmp_path: Path):
    with E2BDouble(api_key=KEY) as e2b, DockerDouble(flavor="docker") as docker:
        yield Env(tmp_path, e2b, docker)


def test_pause_resume_converge_with_exit_0_and_json(env: Env) -> None:
    r = env.run("pause", "lease-e2b000000001", "--format", "json")
    assert r.returncode == 0, r.stderr + r.stdout
    doc = json.loads(r.stdout)
    (op,) = doc["operations"]
    assert (op["status"], op["outcome"], op["lease_id"]) == ("converged", "done", "lease-e2b000000001")
    assert env.e2b.instances[env.running].state == "paused"
    again = env.run("pause", "t-one")
    assert again.returncode == 0 and "already" in again.stdout and "1/1 converged" in again.stdout
    assert env.run("resume", "lease-e2b000000001").returncode == 0
    assert env.e2b.instances[env.running].state == "running"
    assert_leon_invariants(env.db)


def test_destroy_without_yes_and_without_a_tty_is_refused(env: Env) -> None:
    snapshot, n = sha(env.db), mutations(env.e2b)
    r = env.run("destroy", "lease-e2b000000001")
    assert r.returncode == 2 and "without --yes" in r.stderr and r.stdout == ""
    assert sha(env.db) == snapshot and mutations(env.e2b) == n


def test_destroy_with_yes_converges_and_orphan_needs_no_adopt(env: Env) -> None:
    r = env.run("destroy", "--yes", "lease-e2b000000001", f"docker/{env.orphan}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert env.running not in env.e2b.instances and env.orphan not in env.docker.instances
    assert lease_row(env.db, "lease-e2b000000001")["desired_state"] == "destroyed"
    assert "2/2 converged" in r.stdout


def test_bulk_destroy_on_a_tty_requires_typing_the_count(env: Env) -> None:
    code, out, errs = env.run_tty("destroy", "lease-e2b000000001", "lease-e2b000000002", answer="y")
    assert code == 5 and "Type the number of targets (2)" in errs and "nothing was destroyed" in errs
    for name in (env.running, env.second, "lease-e2b000000001", "lease-e2b000000002", "t-one", "t-two"):
        assert name in errs  # each target named: provider, instance, lease, thread
    assert env.running in env.e2b.instances and env.second in env.e2b.instances
    code, out, errs = env.run_tty("destroy", "lease-e2b000000001", "lease-e2b000000002", answer="2")
    assert code == 0, out + errs
    assert env.running not in env.e2b.instances and env.second not in env.e2b.instances


def test_single_destroy_on_a_tty_asks_yes_no(env: Env) -> None:
    code, _, errs = env.run_tty("destroy", "t-two", answer="n")
    assert code == 5 and "[y/N]" in errs and env.second in env.e2b.instances
    code, out, errs = env.run_tty("destroy", "t-two", answer="y")
    assert code == 0, out + errs
    assert env.second not in env.e2b.instances


def test_read_only_flag_refuses_with_exit_4_and_touches_nothing(env: Env) -> None:
    snapshot = sha(env.db)
    r = env.run("destroy", "--yes", "--read-only", "lease-e2b000000001", f"docker/{env.orphan}")
    assert r.returncode == 4 and r.stdout.count("refused") == 2 and "read-only" in r.stdout
    dry = env.run("pause", "--dry-run", "--read-only", "lease-e2b000000001")
    assert dry.returncode == 0 and "planned" in dry.stdout
    assert mutations(env.e2b) == 0 and mutations(env.docker) == 0 and sha(env.db) == snapshot


def test_ambiguous_and_unknown_targets_are_usage_errors(env: Env) -> None:
    r = env.run("pause", "lease-e2b")
    assert r.returncode == 2 and "ambiguous" in r.stderr and "lease-e2b000000002" in r.stderr
    r = env.run("resume", "no-such-thing")
    assert r.returncode == 2 and "matches no lease" in r.stderr


def test_adopt_with_thread_and_the_audit_command(env: Env) -> None:
    r = env.run("adopt", f"docker/{env.orphan}", "--thread", "t-new", "--format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    (op,) = json.loads(r.stdout)["operations"]
    assert op["new_lease_id"].startswith("lease-adopt-") and op["status"] == "converged"
    env.run("pause", "lease-e2b000000001")
    audit = env.run("audit", "--format", "json")
    assert audit.returncode == 0, audit.stderr
    entries = json.loads(audit.stdout)
    assert [e["action"] for e in entries] == ["pause", "adopt"]
    assert all(e["operator"].count("@") == 1 and e["convergence"] == "converged" for e in entries)
    table = env.run("audit", "--target", "lease-e2b000000001", "--since", "1h")
    assert table.returncode == 0 and "pause" in table.stdout and "adopt" not in table.stdout
    assert KEY not in audit.stdout
    assert_leon_invariants(env.db)


def test_repeated_adopt_reports_already_with_the_lease(env: Env) -> None:
    first = env.run("adopt", f"docker/{env.orphan}", "--thread", "t-new", "--format", "json")
    assert first.returncode == 0, first.stdout + first.stderr
    lease = json.loads(first.stdout)["operations"][0]["new_lease_id"]
    snapshot = sha(env.db)
    for extra in ((), ("--thread", "t-new")):
        r = env.run("adopt", f"docker/{env.orphan}", *extra, "--format", "json")
        assert r.returncode == 0, r.stdout + r.stderr
        (op,) = json.loads(r.stdout)["operations"]
        assert (op["status"], op["outcome"], op["lease_id"]) == ("converged", "already", lease)
        assert op["new_lease_id"] is None and lease in op["message"]
    table = env.run("adopt", f"docker/{env.orphan}")
    assert table.returncode == 0 and "already" in table.stdout and lease in table.stdout
    # a different thread than the lease's is a refusal, not a repeat
    r = env.run("adopt", f"docker/{env.orphan}", "--thread", "t-one")
    assert r.returncode == 4, r.stdout + r.stderr
    assert "refused" in r.stdout and f"already adopted as lease {lease} (on thread t-new)" in r.stdout
    assert sha(env.db) == snapshot
    assert_leon_invariants(env.db)


def test_missing_db_is_a_source_error(env: Env, tmp_path: Path) -> None:
    r = env.run("pause", "x", "--db", str(tmp_path / "nope.db"))
    assert r.returncode == 3 and "does not exist" in r.stderr and not (tmp_path / "nope.db").exists()


def test_action_commands_parse_into_the_ops_namespace() -> None:
    """The typer app hands cli.ops the namespace it reads (global flags before or after the command)."""
    from opcockpit.cli.app import _run_action, _run_audit, _run_snapshot, parse

    run, args = parse(["--read-only", "destroy", "--yes", "a", "b", "--timeout", "5"])
    assert (args.command, args.op_action, args.targets, args.wait_timeout, args.read_only) == (
        "destroy", "destroy", ["a", "b"], 5.0, True,
    )  # fmt: skip
    assert run is _run_action
    assert not hasattr(args, "timeout")  # cli.common.load_or_exit must not read it as a list timeout
    assert parse(["adopt", "docker/x", "--thread", "t"])[1].thread == "t"
    run, args = parse(["audit", "--limit", "3", "--read-only"])
    assert run is _run_audit and args.limit == 3 and args.read_only
    assert parse(["snapshot"])[0] is _run_snapshot  # the existing commands still parse
