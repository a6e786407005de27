"""`opcockpit demo`: a generated fleet, provider doubles on loopback, drift, and the cockpit on top.

`demo_environment()` is the reusable part (tests, benchmarks, TUI tests): it generates the fleet,
starts one double per provider whose double exists (a provider without one is left unconfigured,
so the cockpit honestly reports its leases without a provider listing), loads the fleet's
instance specs into them, builds a CockpitConfig with per-run API keys held in in-process env
vars, and starts the drift simulator. Everything is torn down on exit, including on SIGINT,
SIGTERM and SIGHUP under `run_demo`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from opcockpit.demo.drift import DriftSimulator
from opcockpit.demo.fleet import DemoFleet, generate_fleet
from opcockpit.doubles.base import FakeProvider
from opcockpit.settings.config import CockpitConfig, ProviderConfig, SourcesConfig


class DemoEnvironment(NamedTuple):
    config: CockpitConfig
    fleet: DemoFleet
    doubles: dict[str, FakeProvider]  # provider name -> running double
    drift: DriftSimulator  # started only when drift=True; step()/tick() work either way


def key_env_var(provider: str) -> str:
    """In-process env var that carries a demo double's API key (never printed)."""
    safe = "".join(c if c.isalnum() else "_" for c in provider).upper()
    return f"OPCOCKPIT_DEMO_{safe}_KEY"


def _make_double(kind: str, name: str, workdir: Path, api_key: str) -> FakeProvider | None:
    """A started double for `kind`, or None when that double is not in this build."""
    try:
        if kind == "docker":
            from opcockpit.doubles.docker import DockerDouble

            return DockerDouble(unix_path=str(workdir / f"{name}.sock"), flavor="docker").start()
        if kind == "e2b":
            from opcockpit.doubles.e2b import E2BDouble

            return E2BDouble(api_key=api_key).start()
        if kind == "daytona":
            from opcockpit.doubles.daytona import DaytonaDouble

            return DaytonaDouble(api_key=api_key).start()
        if kind == "agentbay":
            from opcockpit.doubles.agentbay import AgentBayDouble

            return AgentBayDouble(api_key=api_key).start()
    except ImportError:
        return None
    return None


def _provider_config(name: str, kind: str, double: FakeProvider) -> ProviderConfig:
    common: dict[str, Any] = {"name": name, "kind": kind, "timeout_s": 5.0, "retries": 1}
    if kind == "docker":
        return ProviderConfig(host=getattr(double, "host", double.url), **common)
    url = getattr(double, "api_url", None) if kind == "daytona" else double.url  # Daytona: base ends /api
    return ProviderConfig(api_url=url or double.url, api_key_env=key_env_var(name), **common)


def load_specs(fleet: DemoFleet, provider: str, double: FakeProvider) -> int:
    """Put the fleet's instance specs for `provider` into its double; returns how many."""
    specs = fleet.specs(provider)
    for spec in specs:
        double.add(
            spec.instance_id,
            state=spec.state,
            name=spec.name,
            labels=dict(spec.labels),
            created_at=spec.created_at,
            **spec.extra,
        )
    return len(specs)


def _remember_secret(value: str) -> None:
    # The config loader scrubs every secret it has seen from error lines; demo keys included.
    remember = getattr(sys.modules.get("opcockpit.settings.config"), "_remember_secret", None)
    if callable(remember):
        remember(value)


@contextlib.contextmanager
def demo_environment(
    *,
    seed: int = 7,
    leases: int = 300,
    workdir: str | os.PathLike[str] | None = None,
    drift: bool = True,
    drift_interval_s: float = 2.5,
    providers: Mapping[str, str] | None = None,
    weights: Mapping[str, float] | None = None,
    now: datetime | None = None,
    refresh_s: float = 2.0,
) -> Iterator[DemoEnvironment]:
    """Generate a fleet, start the doubles and drift; tear everything down on exit.

    `workdir` (kept afterwards) defaults to a fresh temp dir (removed afterwards).
    """
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="opcockpit-demo-")) if own_dir else Path(workdir)  # type: ignore[arg-type]
    doubles: dict[str, FakeProvider] = {}
    env_vars: list[str] = []
    sim: DriftSimulator | None = None
    try:
        fleet = generate_fleet(root, leases=leases, seed=seed, providers=providers, weights=weights, now=now)
        configs: dict[str, ProviderConfig] = {}
        for name, kind in fleet.providers.items():
            if kind == "local":  # no API: the cockpit shows local leases from the DB alone
                configs[name] = ProviderConfig(name=name, kind="local")
                continue
            api_key = "ocdk_" + secrets.token_hex(16)  # fresh per run; recognisable in leak checks
            double = _make_double(kind, name, root, api_key)
            if double is None:
                continue  # no double in this build: leave it unconfigured rather than pretend
            doubles[name] = double
            load_specs(fleet, name, double)
            var = key_env_var(name)
            os.environ[var] = api_key
            env_vars.append(var)
            _remember_secret(api_key)
            configs[name] = _provider_config(name, kind, double)
        config = CockpitConfig(
            sources=SourcesConfig(sandbox_db=fleet.sandbox_db, events_db=fleet.events_db),
            providers=configs,
            refresh_s=refresh_s,
        )
        sim = DriftSimulator(fleet, doubles, seed=seed, interval_s=drift_interval_s)
        if drift:
            sim.start()
        yield DemoEnvironment(config, fleet, doubles, sim)
    finally:
        if sim is not None:
            sim.stop()
        for double in doubles.values():
            with contextlib.suppress(Exception):
                double.stop()
        for var in env_vars:
            os.environ.pop(var, None)
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)


class _Terminated(SystemExit):
    pass


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGTERM/SIGHUP raise SystemExit (SIGINT raises KeyboardInterrupt already), so the
    environment's `finally` runs: doubles stopped, temp dir removed. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise _Terminated(128 + signum)

    previous = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            previous[sig] = signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def banner(env: DemoEnvironment) -> str:
    fleet = env.fleet
    missing = [n for n, k in fleet.providers.items() if k != "local" and n not in env.doubles]
    text = (
        f"DEMO · seed {fleet.seed} · {fleet.lease_count} leases · "
        f"{len(env.doubles)} provider doubles on loopback · drift every {env.drift.interval_s:g}s"
    )
    if missing:
        text += f" · no double for: {', '.join(missing)}"
    return text


def in_demo(
    work: Callable[[DemoEnvironment], int],
    *,
    seed: int = 7,
    leases: int = 300,
    workdir: str | None = None,
    drift: bool = True,
) -> int:
    """`work(env)` inside a demo environment that is torn down on return, SIGINT, SIGTERM and
    SIGHUP; returns its exit code (130 / 128+signal when interrupted)."""
    try:
        with (
            _signals_unwind(),
            demo_environment(seed=seed, leases=leases, workdir=workdir, drift=drift) as env,
        ):
            return int(work(env) or 0)
    except KeyboardInterrupt:
        return 130
    except _Terminated as exc:
        return int(exc.code or 0)


def run_demo(
    seed: int = 7,
    leases: int = 300,
    workdir: str | None = None,
    drift: bool = True,
    refresh_s: float | None = None,
    read_only: bool = False,
) -> int:
    """The live cockpit on a demo fleet. (`opcockpit demo --snapshot` is the CLI's snapshot path
    on `demo_environment`'s config: see opcockpit.cli.demo_cmd.)"""

    def tui(env: DemoEnvironment) -> int:
        from opcockpit.tui.app import run_app

        return int(
            run_app(env.config, demo_banner=banner(env), read_only=read_only, refresh_s=refresh_s) or 0
        )

    return in_demo(tui, seed=seed, leases=leases, workdir=workdir, drift=drift)


__all__ = [
    "DemoEnvironment",
    "banner",
    "demo_environment",
    "in_demo",
    "key_env_var",
    "load_specs",
    "run_demo",
]
