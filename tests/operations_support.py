"""Helpers for the operations tests: real LEON-schema sandbox.db files and a cockpit wired to real
provider doubles on 127.0.0.1 (no mocks of our own code)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opcockpit.adapters.ledger.audit import AuditLog
from opcockpit.adapters.leon.schema import create_sandbox_db
from opcockpit.adapters.leon.writer import check_invariants, lease_versions
from opcockpit.doubles.docker import DockerDouble
from opcockpit.doubles.e2b import E2BDouble
from opcockpit.services.collect import FleetCollector
from opcockpit.services.operations import Operations
from opcockpit.settings.config import CockpitConfig, ProviderConfig, SourcesConfig
from opcockpit.wiring import build_collector, build_operations
from tests.fixtures.leon_db import add_instance, add_lease, add_terminal

KEY = "test-key"
E2B_LEASE = "lease-e2b000000001"  # the bound e2b lease of `setup_e2b`


@dataclass(frozen=True)
class LeaseSpec:
    lease_id: str
    provider: str
    instance_id: str | None
    desired: str = "running"
    observed: str = "running"
    thread_id: str | None = None
    version: int = 3


def build_db(path: Path, leases: list[LeaseSpec], *, variant: str = "leonai") -> Path:
    """A sandbox.db in LEON's schema (WAL, like LEON's connect_sqlite) with these leases."""
    conn = create_sandbox_db(str(path), variant)
    try:
        for n, spec in enumerate(leases):
            extra: dict[str, Any] = {"volume_id": None, "recipe_id": None} if variant == "mycel" else {}
            add_lease(
                conn, spec.lease_id, spec.provider, current_instance_id=spec.instance_id,
                desired_state=spec.desired, observed_state=spec.observed, version=spec.version,
                observed_at="2026-03-20T09:00:00.000001", **extra,
            )  # fmt: skip
            if spec.instance_id:
                add_instance(conn, spec.instance_id, spec.lease_id, status=spec.observed)
            if spec.thread_id:
                add_terminal(conn, f"term-{n:012x}", spec.thread_id, spec.lease_id, pointer=True)
        conn.commit()
    finally:
        conn.close()
    return path


# Fixtures shared by the operations test modules (they import them by name).


@pytest.fixture
def e2b() -> Iterator[E2BDouble]:
    with E2BDouble() as d:
        yield d  # type: ignore[misc]


@pytest.fixture
def docker() -> Iterator[DockerDouble]:
    with DockerDouble(flavor="docker") as d:
        yield d  # type: ignore[misc]


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


def setup_e2b(
    tmp_path: Path, e2b: E2BDouble, *, state: str = "running", variant: str = "leonai", **cfg: Any
) -> tuple[str, Path, CockpitConfig]:
    """(instance id, sandbox.db, config): E2B_LEASE bound to a new `state` e2b sandbox, a local
    lease and an unbound e2b lease, each with a thread."""
    iid = e2b.add(state=state).instance_id
    observed = "paused" if state == "paused" else "running"
    db = build_db(tmp_path / "sandbox.db", [
        LeaseSpec(E2B_LEASE, "e2b", iid, desired=observed, observed=observed, thread_id="t-one"),
        LeaseSpec("lease-local0000001", "local", "leon-lease-local0000001", thread_id="t-local"),
        LeaseSpec("lease-e2bunbound01", "e2b", None, observed="detached", thread_id="t-unbound"),
    ], variant=variant)  # fmt: skip
    return iid, db, config_for(db, {"e2b": ("e2b", e2b)}, **cfg)


def sha(path: Path) -> str:
    """Hash of the DB *content* (a WAL DB keeps recent commits in -wal, so hash a dump)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    finally:
        conn.close()


def lease_row(path: Path, lease_id: str) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM sandbox_leases WHERE lease_id = ?", (lease_id,)).fetchone()
        return dict(row) if row else {}
    finally:
        conn.close()


def events(path: Path, lease_id: str | None = None) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        sql = "SELECT * FROM lease_events"
        args: tuple[Any, ...] = ()
        if lease_id is not None:
            sql += " WHERE lease_id = ?"
            args = (lease_id,)
        rows = [dict(r) for r in conn.execute(sql + " ORDER BY rowid", args)]
    finally:
        conn.close()
    for r in rows:
        r["payload"] = json.loads(r["payload_json"]) if r["payload_json"] else None
    return rows


def query(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def assert_leon_invariants(path: Path, versions_before: Mapping[str, int] | None = None) -> None:
    problems = check_invariants(str(path), versions_before=dict(versions_before or {}))
    assert problems == [], problems


def versions(path: Path) -> dict[str, int]:
    return lease_versions(str(path))


def mutations(double: Any) -> int:
    """Mutating requests the double served (POST/DELETE/PUT/PATCH on any route)."""
    return sum(n for key, n in double.requests_by_route.items() if key.split(" ", 1)[0] != "GET")


def config_for(db: Path, providers: Mapping[str, tuple[str, Any]], **extra: Any) -> CockpitConfig:
    """providers: name -> (kind, double). `local` is always there (no API)."""
    provs = {"local": ProviderConfig(name="local", kind="local")}
    for name, (kind, double) in providers.items():
        if kind == "docker":
            provs[name] = ProviderConfig(name=name, kind="docker", host=double.host, retries=0, timeout_s=5)
        else:
            provs[name] = ProviderConfig(
                name=name,
                kind=kind,
                api_url=getattr(double, "api_url", double.url),
                api_key=KEY,
                retries=0,
                timeout_s=5,
            )
    return CockpitConfig(sources=SourcesConfig(sandbox_db=db), providers=provs, refresh_s=0.5, **extra)


@dataclass
class Cockpit:
    config: CockpitConfig
    collector: FleetCollector
    ops: Operations
    audit: AuditLog

    async def close(self) -> None:
        await self.collector.aclose()
        self.audit.close()


def cockpit(config: CockpitConfig, ledger: Path, **kw: Any) -> Cockpit:
    collector = build_collector(config)
    audit = AuditLog(ledger)
    ops = build_operations(config, collector=collector, audit=audit, operator="alice@testhost", **kw)
    return Cockpit(config, collector, ops, audit)


@asynccontextmanager
async def opened(config: CockpitConfig, ledger: Path, **kw: Any) -> AsyncIterator[Cockpit]:
    """`cockpit(...)` for the length of an `async with`, closed however the block ends."""
    c = cockpit(config, ledger, **kw)
    try:
        yield c
    finally:
        await c.close()


@contextmanager
def db_locked(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding sandbox.db with BEGIN EXCLUSIVE until the block ends."""
    script = (
        "import sqlite3, sys\n"
        f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
        "c.execute(\"UPDATE sandbox_leases SET last_error = 'held' WHERE 0\")\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
        "c.execute('ROLLBACK')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.stdin is not None:
            proc.stdin.write("\n")
            proc.stdin.flush()
        proc.wait(timeout=10)
