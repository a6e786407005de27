"""A demo fleet in its own process, for soak runs: `python -m bench.fleet_server CONFIG_PATH`.

Runs `demo_environment` (generated sandbox.db/events.db, provider doubles on loopback, drift on)
and writes a cockpit config TOML to CONFIG_PATH: sources (db paths) and one table per provider
with its api_url/host and the per-run literal api_key (loopback doubles only). Prints `ready` on
stdout once the file is in place, then serves until SIGTERM/SIGINT. The cockpit under test runs in
another process, so its RSS/CPU measure the cockpit alone, not the doubles and the drift.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from opcockpit.demo.runtime import demo_environment  # noqa: E402
from opcockpit.settings.config import CockpitConfig  # noqa: E402


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def config_toml(config: CockpitConfig, refresh_s: float) -> str:
    lines = [f"refresh_s = {refresh_s!r}", "", "[sources]"]
    lines.append(f"sandbox_db = {_toml_value(config.sources.sandbox_db)}")
    if config.sources.events_db is not None:
        lines.append(f"events_db = {_toml_value(config.sources.events_db)}")
    for name, prov in config.providers.items():
        lines += ["", f"[providers.{json.dumps(name)}]", f"kind = {_toml_value(prov.kind)}"]
        for key in ("host", "api_url", "timeout_s", "retries"):
            value = getattr(prov, key)
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
        if prov.api_key_env:  # the demo keeps keys in env vars of *this* process: write them out
            key = os.environ.get(prov.api_key_env)
            if key:
                lines.append(f"api_key = {_toml_value(key)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config_path", type=Path, help="where to write the cockpit config TOML")
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--refresh", type=float, default=0.5, help="refresh_s written to the config")
    ap.add_argument("--drift-interval", type=float, default=2.5)
    ap.add_argument("--workdir", type=Path, default=None, help="fleet files (default: a temp dir)")
    args = ap.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    with demo_environment(
        seed=args.seed,
        leases=args.leases,
        workdir=args.workdir,
        drift=True,
        drift_interval_s=args.drift_interval,
    ) as env:
        path: Path = args.config_path
        tmp = path.with_suffix(".tmp")
        tmp.write_text(config_toml(env.config, args.refresh))
        os.chmod(tmp, 0o600)  # it holds (loopback, per-run) keys
        tmp.replace(path)
        print("ready", flush=True)
        while not stop.wait(1.0):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
