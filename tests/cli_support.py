"""Helpers for the CLI / config / snapshot tests: real LEON-schema DBs and a CLI runner.

Rows are written with LEON's own conventions (naive local ISO timestamps, CURRENT_TIMESTAMP
defaults left alone for terminals, UTC 'Z' for resource snapshots).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from opcockpit.adapters.leon.schema import create_sandbox_db

REPO = Path(__file__).resolve().parents[1]

# Environment variables that would leak the developer's real setup into a test.
_LEAKY = (
    "LEON_SANDBOX_DB_PATH", "LEON_DB_PATH", "LEON_RUN_EVENT_DB_PATH", "OPCOCKPIT_CONFIG",
    "E2B_API_KEY", "DAYTONA_API_KEY", "AGENTBAY_API_KEY", "DOCKER_HOST", "E2B_API_URL",
    "E2B_DOMAIN", "DAYTONA_API_URL", "DAYTONA_TARGET", "AGENTBAY_REGION_ID", "AGENTBAY_ENDPOINT",
)  # fmt: skip


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY}
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> Result:
    """Run `python -m opcockpit.cli ARGS` in a subprocess (real interpreter start, real exit code)."""
    proc = subprocess.run(
        [sys.executable, "-m", "opcockpit.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=str(REPO),
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_hashes(path: Path) -> dict[str, str]:
    """Hash of the DB and of its -wal/-shm side files (whichever exist)."""
    out = {}
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            out[suffix or "db"] = sha256(p)
    return out


def _ts(dt: datetime) -> str:
    return dt.isoformat()  # naive local ISO, as LEON writes it


def build_leon_db(
    path: Path,
    leases: list[tuple[str, str, str | None, str, str]] | None = None,
    *,
    variant: str = "leonai",
    checkpoint: bool = True,
) -> Path:
    """A sandbox.db in LEON's exact schema.

    leases: (lease_id, provider_name, current_instance_id, desired_state, observed_state); each
    gets a terminal (thread `thread-<n>`) and a chat session.
    """
    if leases is None:
        leases = [
            ("lease-000000000001", "docker", "leon-aaaaaaaaaaaa", "running", "running"),
            ("lease-000000000002", "e2b", "i4k7m2p9x1q8w3e5r6t0", "running", "paused"),
            ("lease-000000000003", "local", "leon-lease-000000000003", "running", "running"),
            ("lease-000000000004", "daytona_selfhost", None, "running", "detached"),
        ]
    conn = create_sandbox_db(str(path), variant)
    now = datetime.now().replace(microsecond=0)
    for n, (lid, prov, iid, desired, observed) in enumerate(leases, 1):
        created = now - timedelta(hours=2, minutes=n)
        updated = now - timedelta(minutes=n)
        cols = (
            "lease_id, provider_name, current_instance_id, instance_created_at, desired_state, "
            "observed_state, version, observed_at, last_error, needs_refresh, status, created_at, updated_at"
        )
        values = [lid, prov, iid, _ts(created) if iid else None, desired, observed, n, _ts(updated),
                  None, 0, "active", _ts(created), _ts(updated)]  # fmt: skip
        if variant != "older":
            cols += ", instance_status"
            values.append(observed)
        conn.execute(f"INSERT INTO sandbox_leases ({cols}) VALUES ({', '.join('?' * len(values))})", values)
        term = f"term-{n:012x}"
        thread = f"thread-{n}"
        conn.execute(
            "INSERT INTO abstract_terminals (terminal_id, thread_id, lease_id, cwd, created_at, updated_at)"
            " VALUES (?, ?, ?, '/workspace', ?, ?)",
            (term, thread, lid, _ts(created), _ts(updated)),
        )
        conn.execute(
            "INSERT INTO chat_sessions (chat_session_id, thread_id, terminal_id, lease_id, status,"
            " idle_ttl_sec, max_duration_sec, started_at, last_active_at) VALUES (?, ?, ?, ?, 'active',"
            " 600, 86400, ?, ?)",
            (f"chat-{n:012x}", thread, term, lid, _ts(created), _ts(updated)),
        )
    conn.commit()
    if checkpoint:
        # Fold the WAL into the main file so a copy of `path` alone is the whole database.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    return path
