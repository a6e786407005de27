"""The demo fleet's provider side (what the doubles hold, with planned drift) and the bulk
writing of sandbox.db / events.db rows.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from opcockpit.demo.fleet_sim import Builder, Lease
from opcockpit.demo.fleet_types import DriftItem, InstanceSpec, PlannedDrift
from opcockpit.demo.ids import Clock

# --------------------------------------------------------------------------- provider side


def _labels(kind: str, instance_id: str, lease_id: str | None) -> dict[str, str]:
    if kind == "docker":  # LEON's labels (§4.3); lease-bound containers carry the context id
        labels = {"leon.session_id": instance_id}
        if lease_id:
            labels["leon.context_id"] = f"leon-{lease_id}"
        return labels
    return {"lease_id": lease_id} if lease_id else {}


def _spec(b: Builder, lease: Lease, iid: str, state: str, role: str, claim: str | None) -> InstanceSpec:
    created = lease.instances[iid][1] if iid in lease.instances else b.now - 60
    extra = {"docker_id": b.ids.docker_id()} if lease.kind == "docker" else {}
    name = iid if lease.kind in ("docker", "daytona") else None
    return InstanceSpec(
        provider=lease.provider,
        kind=lease.kind,
        instance_id=iid,
        state=state,
        labels=_labels(lease.kind, iid, claim),
        created_at=b.clock.aware(created),
        name=name,
        lease_id=claim,
        role=role,
        extra=extra,
    )


def provider_side(b: Builder, n: int) -> tuple[dict[str, list[InstanceSpec]], PlannedDrift]:
    rng = b.rng
    instances: dict[str, list[InstanceSpec]] = {p: [] for p, k in b.providers.items() if k != "local"}
    drift = PlannedDrift()
    remote = [lease for lease in b.leases if lease.kind != "local"]
    steady = [
        lease
        for lease in remote
        if lease.current and b.scenario_of[lease.id] == "healthy" and lease.observed == "running"
    ]
    k_paused, k_killed = max(2, n // 60), max(1, n // 200)
    chosen = rng.sample(steady, min(len(steady), k_paused + k_killed))
    paused_ids = {lease.id for lease in chosen[:k_paused]}
    killed_ids = {lease.id for lease in chosen[k_paused:]}
    for lease in remote:
        if lease.current is None:
            continue
        iid = lease.current
        if lease.id in killed_ids:
            drift.killed.append(DriftItem(lease.provider, iid, lease.id))
            continue
        state = {"paused": "paused"}.get(lease.observed, "running")
        role = "bound"
        if lease.id in paused_ids:
            state, role = "paused", "paused_drift"
            drift.paused_at_provider.append(DriftItem(lease.provider, iid, lease.id))
        claim = None if b.scenario_of[lease.id] == "adopted" else lease.id
        instances[lease.provider].append(_spec(b, lease, iid, state, role, claim))
    # Orphan 1: an old instance of a replaced lease that never went away (exited container).
    replaced = [lease for lease in remote if b.scenario_of[lease.id] == "replaced"]
    replaced.sort(key=lambda lease: lease.kind != "docker")  # stable: generation order within kind
    for lease in replaced[: max(1, n // 500)]:
        old = next(i for i in lease.instances if i != lease.current)
        state = "stopped" if lease.kind == "docker" else "running"
        instances[lease.provider].append(_spec(b, lease, old, state, "orphan_replaced", lease.id))
        drift.orphans.append(DriftItem(lease.provider, old, lease.id))
    # Orphan 2: an instance nobody tracks (created by hand or by a crashed platform process).
    kinds = [p for p, k in b.providers.items() if k != "local"]
    pref = [p for p in kinds if b.providers[p] == "e2b"] or kinds
    for _ in range(max(1, n // 500) if pref else 0):
        provider = pref[0]
        kind = b.providers[provider]
        iid = b.ids.instance(kind, "untracked")
        extra = {"docker_id": b.ids.docker_id()} if kind == "docker" else {}
        spec = InstanceSpec(
            provider=provider,
            kind=kind,
            instance_id=iid,
            state="running",
            labels=_labels(kind, iid, None),
            created_at=b.clock.aware(b.now - rng.uniform(600, 86400)),
            name=iid if kind in ("docker", "daytona") else None,
            role="orphan_untracked",
            extra=extra,
        )
        instances[provider].append(spec)
        drift.orphans.append(DriftItem(provider, iid, None))
    # Leak: a destroyed lease whose instance still runs at the provider.
    destroyed = [lease for lease in remote if lease.desired == "destroyed" and lease.instances]
    for lease in destroyed[: max(1, n // 1000)]:
        iid = next(iter(lease.instances))
        instances[lease.provider].append(_spec(b, lease, iid, "running", "leak", lease.id))
        drift.leaks.append(DriftItem(lease.provider, iid, lease.id))
    return instances, drift


# --------------------------------------------------------------------------- writing


class _BulkDb:
    """Create a LEON DB for a bulk load: the verbatim DDL of opcockpit.adapters.leon.schema (what
    create_sandbox_db/create_events_db run), tables first and secondary indexes after the rows
    (a sort-based index build is several times faster than 1M random-key index inserts; building
    `uq_chat_sessions_active_thread` afterwards still enforces one live session per terminal).
    A fresh file nobody else has open skips the journal and fsyncs; it is switched to WAL with
    LEON's pragmas before anyone else opens it."""

    def __init__(self, path: Path, ddl: list[str]) -> None:
        self.conn = sqlite3.connect(str(path))
        self.indexes = [s for s in ddl if s.lstrip().upper().startswith("CREATE UNIQUE INDEX")
                        or s.lstrip().upper().startswith("CREATE INDEX")]  # fmt: skip
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA cache_size=-262144")
        for stmt in ddl:
            if stmt not in self.indexes:
                self.conn.execute(stmt)

    def finish(self) -> None:
        for stmt in self.indexes:
            self.conn.execute(stmt)
        self.conn.commit()
        self.conn.execute("PRAGMA journal_mode=WAL")  # LEON's connect_sqlite mode (persistent)
        self.conn.execute("PRAGMA synchronous=NORMAL")


def _lease_row(lease: Lease, clock: Clock, variant: str) -> tuple:
    loc = clock.local
    row = [
        lease.id, lease.provider, None, lease.current,
        loc(lease.inst_created) if lease.inst_created is not None else None,
        lease.desired, lease.observed, lease.observed, lease.version,
        loc(lease.observed_at) if lease.observed_at is not None else None,
        lease.last_error, lease.needs_refresh,
        loc(lease.refresh_hint) if lease.refresh_hint is not None else None,
        lease.status, loc(lease.created), loc(lease.updated),
    ]  # fmt: skip
    if variant == "older":
        del row[7]  # no instance_status column before the migration
    elif variant == "mycel":
        row += [None, None, None]  # recipe_id, recipe_json, volume_id
    return tuple(row)


Batch = tuple[str, list[tuple]]  # (INSERT statement, its rows)


def sandbox_batches(b: Builder, variant: str) -> list[Batch]:
    """Every sandbox.db row as (INSERT, rows), in LEON's table order."""
    cols = 16 - (variant == "older") + 3 * (variant == "mycel")
    clock = b.clock
    b.provider_events.sort(key=lambda r: r[0])  # AUTOINCREMENT ids follow arrival order
    return [
        (
            f"INSERT INTO sandbox_leases VALUES ({','.join('?' * cols)})",
            [_lease_row(lease, clock, variant) for lease in b.leases],
        ),
        (
            "INSERT INTO sandbox_instances VALUES (?,?,?,?,?,?)",
            [
                (iid, lease.id, iid, row[0], clock.local(row[1]), clock.local(row[2]))
                for lease in b.leases
                for iid, row in lease.instances.items()
            ],
        ),
        ("INSERT INTO lease_events VALUES (?,?,?,?,?,?,?)", b.lease_events),
        ("INSERT INTO abstract_terminals VALUES (?,?,?,?,?,?,?,?)", b.terminals),
        ("INSERT INTO thread_terminal_pointers VALUES (?,?,?,?)", b.pointers),
        ("INSERT INTO chat_sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", b.sessions),
        ("INSERT INTO terminal_commands VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", b.commands),
        (
            "INSERT INTO terminal_command_chunks (command_id, stream, content, created_at) VALUES (?,?,?,?)",
            b.chunks,
        ),
        (
            "INSERT INTO provider_events (provider_name, instance_id, event_type, payload_json, "
            "matched_lease_id, created_at) VALUES (?,?,?,?,?,?)",
            [(p, i, e, pl, m, clock.local(t)) for t, p, i, e, pl, m in b.provider_events],
        ),
        ("INSERT INTO lease_resource_snapshots VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", b.snapshots),
    ]


def sandbox_counts(b: Builder) -> dict[str, int]:
    return {
        "sandbox_leases": len(b.leases),
        "sandbox_instances": sum(len(lease.instances) for lease in b.leases),
        "lease_events": len(b.lease_events),
        "abstract_terminals": len(b.terminals),
        "thread_terminal_pointers": len(b.pointers),
        "chat_sessions": len(b.sessions),
        "terminal_commands": len(b.commands),
        "terminal_command_chunks": len(b.chunks),
        "provider_events": len(b.provider_events),
        "lease_resource_snapshots": len(b.snapshots),
    }


def events_batches(rows: list[tuple]) -> list[Batch]:
    return [
        (
            "INSERT INTO run_events (thread_id, run_id, event_type, data, message_id, created_at) "
            "VALUES (?,?,?,?,?,?)",
            rows,
        )
    ]


def write_db(path: Path, ddl: list[str], batches: list[Batch]) -> None:
    db = _BulkDb(path, ddl)
    conn = db.conn
    try:
        with conn:
            for sql, rows in batches:
                conn.executemany(sql, rows)
        db.finish()
    finally:
        conn.close()
