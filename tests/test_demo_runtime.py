"""`opcockpit demo` runtime: doubles up and loaded, config honest, clean teardown on exit/signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from opcockpit.cli.main import main
from opcockpit.demo.runtime import demo_environment, key_env_var

ROOT = Path(__file__).resolve().parents[1]


def _reachable(url: str) -> bool:
    if url.startswith("unix://"):
        path = url.removeprefix("unix://")
        if not os.path.exists(path):
            return False
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(path)
            except OSError:
                return False
            return True
    try:
        httpx.get(url + "/", timeout=2.0)
    except httpx.TransportError:
        return False
    return True


def test_environment_starts_loads_and_cleans_up() -> None:
    with demo_environment(leases=60, seed=2, drift=False, drift_interval_s=0.05) as env:
        root = env.fleet.directory
        assert root.is_dir() and env.fleet.sandbox_db.exists()
        assert env.doubles, "no provider doubles were started"
        for name, double in env.doubles.items():
            assert _reachable(double.url), name
            assert set(double.instances) == {s.instance_id for s in env.fleet.specs(name)}
            cfg = env.config.providers[name]
            assert cfg.kind == env.fleet.providers[name]
            if cfg.kind != "docker":
                assert cfg.api_key_env == key_env_var(name) and os.environ.get(cfg.api_key_env)
                assert cfg.api_key is None  # the key lives only in the process env
        # a provider without a double is left unconfigured; `local` is db-only
        for name, kind in env.fleet.providers.items():
            assert (name in env.config.providers) == (kind == "local" or name in env.doubles)
        assert str(env.config.sources.sandbox_db) == str(env.fleet.sandbox_db)
        env.drift.start()
        deadline = time.monotonic() + 20
        while not env.drift.history and time.monotonic() < deadline:
            time.sleep(0.05)
        assert env.drift.running and env.drift.history
        urls, env_vars = {n: d.url for n, d in env.doubles.items()}, [key_env_var(n) for n in env.doubles]
    assert not env.drift.running
    assert not root.exists()
    for name, url in urls.items():
        assert not _reachable(url), f"{name} double still serving"
    assert all(v not in os.environ for v in env_vars)


def test_workdir_is_kept(tmp_path: Path) -> None:
    with demo_environment(leases=10, workdir=tmp_path, drift=False) as env:
        assert env.fleet.directory == tmp_path
        assert not env.drift.running
    assert (tmp_path / "sandbox.db").exists()


def test_demo_snapshot_json(capsys: pytest.CaptureFixture[str]) -> None:
    # `opcockpit demo --snapshot` is the snapshot command on the demo's config (cli.demo_cmd)
    code = main(["demo", "--snapshot", "--format", "json", "--leases", "40", "--seed", "9"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["rows"]) == 40
    statuses = {p["name"]: p["status"] for p in doc["providers"]}
    assert statuses.get("local") == "db_only"
    assert "ok" in statuses.values()
    assert doc["orphans"], "the planned orphans should be visible"
    assert "ocdk_" not in out + err  # API keys (ocdk_<random>) never printed


def test_sigterm_tears_everything_down(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from opcockpit.demo.runtime import _signals_unwind, demo_environment\n"
        "try:\n"
        "    with _signals_unwind(), demo_environment(leases=20, drift=True, drift_interval_s=0.05) as env:\n"
        "        print(env.fleet.directory, flush=True)\n"
        "        time.sleep(60)\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code, flush=True)\n"
        "    raise\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        directory = Path(proc.stdout.readline().strip())
        assert directory.is_dir()
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert "exit 143" in rest
    deadline = time.monotonic() + 5
    while directory.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not directory.exists()
