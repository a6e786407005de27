"""The demo fleet on PostgreSQL in its own process (issue 12 benches):
`python -m bench.fleet_server_pg CONFIG_PATH`.

bench/fleet_server.py's fleet (generated sandbox.db/events.db, provider doubles, drift), plus a
private PostgreSQL server started the way the tests start theirs (tests/fixtures/postgres.py) holding
two databases: the platform source (the fleet copied with Mycel's types, no lease_events, ANALYZEd;
kept in step with the drift by bench/pg_drift.py) and the cockpit's ledger (empty: migrations run on
the cockpit's start). The config written to CONFIG_PATH points `[sources] kind = "postgres"` and
`[ledger] url` at them (events.db stays the fleet's file, as on Mycel's bastions).

Beside it, CONFIG_PATH with suffix `.json`: {"postmaster_pid", "source_url", "ledger_url",
"load_s"} for the bench (the postmaster's and its backends' CPU are reported apart). Prints `ready`
once both are in place; serves until SIGTERM/SIGINT; stops and removes the server on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fleet_server import config_toml  # noqa: E402
from bench.pg_drift import PgMirror  # noqa: E402
from opcockpit.demo.runtime import demo_environment  # noqa: E402


def pg_config_toml(base: str, source_url: str, ledger_url: str | None) -> str:
    """fleet_server's config with its `[sources]` table pointed at PostgreSQL (events.db kept)."""
    out: list[str] = []
    in_sources = False
    for line in base.splitlines():
        if line.startswith("["):
            in_sources = line.strip() == "[sources]"
            out.append(line)
            if in_sources:
                out += ['kind = "postgres"', f"url = {json.dumps(source_url)}"]
            continue
        if in_sources and line.startswith("sandbox_db"):
            continue  # the PostgreSQL copy replaces it
        out.append(line)
    if ledger_url is not None:
        out += ["", "[ledger]", f"url = {json.dumps(ledger_url)}"]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    from tests.fixtures.postgres import start_server
    from tests.test_pg_source import copy_fleet

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config_path", type=Path)
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--refresh", type=float, default=2.0)
    ap.add_argument("--drift-interval", type=float, default=2.5)
    ap.add_argument("--mirror-interval", type=float, default=0.5)
    ap.add_argument("--sqlite-ledger", type=Path, default=None, help="ledger file instead of a PG database")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    server = start_server()
    try:
        with demo_environment(
            seed=args.seed,
            leases=args.leases,
            workdir=args.workdir,
            drift=True,
            drift_interval_s=args.drift_interval,
        ) as env:
            source_url = server.fresh_db()
            ledger_url = str(args.sqlite_ledger) if args.sqlite_ledger else server.fresh_db()
            t0 = time.perf_counter()
            sandbox_db = Path(str(env.config.sources.sandbox_db))
            mirror = PgMirror(sandbox_db, source_url, interval_s=args.mirror_interval)
            mirror.baseline()
            copy_fleet(sandbox_db, source_url)
            server.psql("ANALYZE", source_url.rsplit("/", 1)[1])
            load_s = time.perf_counter() - t0
            mirror.start()
            try:
                path: Path = args.config_path
                body = pg_config_toml(config_toml(env.config, args.refresh), source_url, ledger_url)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(body)
                os.chmod(tmp, 0o600)  # loopback keys and the test-only PG password
                tmp.replace(path)
                pid = int((server.data / "postmaster.pid").read_text().split()[0])
                side = {"postmaster_pid": pid, "source_url": source_url, "ledger_url": ledger_url}
                side_path = path.with_suffix(".json")
                side_path.write_text(json.dumps({**side, "load_s": round(load_s, 2)}))
                os.chmod(side_path, 0o600)
                print("ready", flush=True)
                while not stop.wait(1.0):
                    if mirror.error:
                        print(f"pg drift stopped: {mirror.error}", file=sys.stderr, flush=True)
                        mirror.error = None
            finally:
                mirror.stop()
                print(
                    f"pg drift: {mirror.ticks} ticks, {mirror.rows_written} rows", file=sys.stderr, flush=True
                )
    finally:
        server.stop("immediate")
        shutil.rmtree(server.root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
