"""LEON's sandbox.db / events.db DDL, verbatim from the domain brief (leonai HEAD 3751e9c, Mycel 9a39b22).

Used by the demo fleet generator, the tests and the benchmarks to write *real* LEON-schema files.
The cockpit itself never runs this DDL against a platform DB (reading must never write).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

# sandbox/lease.py LeaseStore._ensure_tables (leonai). `instance_status` was added by the one
# additive migration; "older" DBs predate it.
SANDBOX_LEASES = """
CREATE TABLE IF NOT EXISTS sandbox_leases (
    lease_id TEXT PRIMARY KEY,
    provider_name TEXT NOT NULL,
    workspace_key TEXT,
    current_instance_id TEXT,
    instance_created_at TIMESTAMP,
    desired_state TEXT NOT NULL DEFAULT 'running',
    observed_state TEXT NOT NULL DEFAULT 'detached',
    instance_status TEXT NOT NULL DEFAULT 'detached',
    version INTEGER NOT NULL DEFAULT 0,
    observed_at TIMESTAMP,
    last_error TEXT,
    needs_refresh INTEGER NOT NULL DEFAULT 0,
    refresh_hint_at TIMESTAMP,
    status TEXT DEFAULT 'active',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
)
"""

SANDBOX_LEASES_OLDER = SANDBOX_LEASES.replace("    instance_status TEXT NOT NULL DEFAULT 'detached',\n", "")

SANDBOX_INSTANCES = """
CREATE TABLE IF NOT EXISTS sandbox_instances (
    instance_id TEXT PRIMARY KEY,
    lease_id TEXT NOT NULL,
    provider_session_id TEXT NOT NULL,
    status TEXT DEFAULT 'running',
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL
)
"""

LEASE_EVENTS = """
CREATE TABLE IF NOT EXISTS lease_events (
    event_id TEXT PRIMARY KEY,
    lease_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    source TEXT NOT NULL,
    payload_json TEXT,
    error TEXT,
    created_at TIMESTAMP NOT NULL
)
"""
LEASE_EVENTS_INDEX = (
    "CREATE INDEX IF NOT EXISTS idx_lease_events_lease_created ON lease_events(lease_id, created_at DESC)"
)

ABSTRACT_TERMINALS = """
CREATE TABLE IF NOT EXISTS abstract_terminals (
    terminal_id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    lease_id TEXT NOT NULL,
    cwd TEXT NOT NULL,
    env_delta_json TEXT DEFAULT '{}',
    state_version INTEGER DEFAULT 0,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)
"""
ABSTRACT_TERMINALS_INDEX = (
    "CREATE INDEX IF NOT EXISTS idx_abstract_terminals_thread_created "
    "ON abstract_terminals(thread_id, created_at DESC)"
)

THREAD_TERMINAL_POINTERS = """
CREATE TABLE IF NOT EXISTS thread_terminal_pointers (
    thread_id TEXT PRIMARY KEY,
    active_terminal_id TEXT NOT NULL,
    default_terminal_id TEXT NOT NULL,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (active_terminal_id) REFERENCES abstract_terminals(terminal_id),
    FOREIGN KEY (default_terminal_id) REFERENCES abstract_terminals(terminal_id)
)
"""

CHAT_SESSIONS = """
CREATE TABLE IF NOT EXISTS chat_sessions (
    chat_session_id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    lease_id TEXT NOT NULL,
    runtime_id TEXT,
    status TEXT NOT NULL DEFAULT 'active',
    idle_ttl_sec INTEGER NOT NULL,
    max_duration_sec INTEGER NOT NULL,
    budget_json TEXT,
    started_at TIMESTAMP NOT NULL,
    last_active_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    close_reason TEXT,
    FOREIGN KEY (terminal_id) REFERENCES abstract_terminals(terminal_id),
    FOREIGN KEY (lease_id) REFERENCES sandbox_leases(lease_id)
)
"""
CHAT_SESSIONS_INDEXES = (
    "CREATE INDEX IF NOT EXISTS idx_chat_sessions_thread_status "
    "ON chat_sessions(thread_id, status, started_at DESC)",
    "CREATE UNIQUE INDEX IF NOT EXISTS uq_chat_sessions_active_thread "
    "ON chat_sessions(terminal_id) WHERE status IN ('active', 'idle', 'paused')",
)

TERMINAL_COMMANDS = """
CREATE TABLE IF NOT EXISTS terminal_commands (
    command_id TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    chat_session_id TEXT,
    command_line TEXT NOT NULL,
    cwd TEXT NOT NULL,
    status TEXT NOT NULL,
    stdout TEXT DEFAULT '',
    stderr TEXT DEFAULT '',
    exit_code INTEGER,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
)
"""
TERMINAL_COMMANDS_INDEX = (
    "CREATE INDEX IF NOT EXISTS idx_terminal_commands_terminal_created "
    "ON terminal_commands(terminal_id, created_at DESC)"
)

TERMINAL_COMMAND_CHUNKS = """
CREATE TABLE IF NOT EXISTS terminal_command_chunks (
    chunk_id INTEGER PRIMARY KEY AUTOINCREMENT,
    command_id TEXT NOT NULL,
    stream TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr')),
    content TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
)
"""
TERMINAL_COMMAND_CHUNKS_INDEX = (
    "CREATE INDEX IF NOT EXISTS idx_terminal_command_chunks_command_order "
    "ON terminal_command_chunks(command_id, chunk_id)"
)

PROVIDER_EVENTS = """
CREATE TABLE IF NOT EXISTS provider_events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_name TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload_json TEXT,
    matched_lease_id TEXT,
    created_at TIMESTAMP NOT NULL
)
"""
PROVIDER_EVENTS_INDEX = (
    "CREATE INDEX IF NOT EXISTS idx_provider_events_created ON provider_events(created_at DESC)"
)

LEASE_RESOURCE_SNAPSHOTS = """
CREATE TABLE IF NOT EXISTS lease_resource_snapshots (
    lease_id TEXT PRIMARY KEY,
    provider_name TEXT NOT NULL,
    observed_state TEXT NOT NULL,
    probe_mode TEXT NOT NULL,
    cpu_used REAL,
    cpu_limit REAL,
    memory_used_mb REAL,
    memory_total_mb REAL,
    disk_used_gb REAL,
    disk_total_gb REAL,
    network_rx_kbps REAL,
    network_tx_kbps REAL,
    probe_error TEXT,
    collected_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
)
"""

# Mycel (OpenDCAI/Mycel 9a39b22): three ALTERs on sandbox_leases plus two new tables.
MYCEL_LEASE_ALTERS = (
    "ALTER TABLE sandbox_leases ADD COLUMN recipe_id TEXT",
    "ALTER TABLE sandbox_leases ADD COLUMN recipe_json TEXT",
    "ALTER TABLE sandbox_leases ADD COLUMN volume_id TEXT",
)
SANDBOX_VOLUMES = """
CREATE TABLE IF NOT EXISTS sandbox_volumes (
    volume_id TEXT PRIMARY KEY,
    name TEXT,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""
SYNC_FILES = """
CREATE TABLE IF NOT EXISTS sync_files (
    thread_id TEXT NOT NULL,
    relative_path TEXT NOT NULL,
    checksum TEXT NOT NULL,
    last_synced INTEGER NOT NULL,
    PRIMARY KEY (thread_id, relative_path)
)
"""

# events.db: storage/providers/sqlite/run_event_repo.py
RUN_EVENTS = """
CREATE TABLE IF NOT EXISTS run_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    data TEXT NOT NULL,
    message_id TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)
"""
RUN_EVENTS_INDEX = (
    "CREATE INDEX IF NOT EXISTS idx_run_events_thread_run ON run_events(thread_id, run_id, seq)"
)

VARIANTS = ("leonai", "mycel", "older")

# Tables LEON creates lazily or only in some versions; the readers treat them as optional.
OPTIONAL_TABLES = (
    "sandbox_instances",
    "lease_events",
    "chat_sessions",
    "thread_terminal_pointers",
    "terminal_commands",
    "terminal_command_chunks",
    "provider_events",
    "lease_resource_snapshots",
)


def sandbox_ddl(variant: str = "leonai", *, optional: bool = True) -> list[str]:
    """Statements that create a sandbox.db of `variant` ("leonai", "mycel" or "older").

    `optional=False` leaves out the lazily created tables (`provider_events`,
    `lease_resource_snapshots`, terminal commands), as on a fresh or older install.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown schema variant {variant!r}; expected one of {VARIANTS}")
    stmts = [SANDBOX_LEASES_OLDER if variant == "older" else SANDBOX_LEASES]
    stmts += [SANDBOX_INSTANCES, LEASE_EVENTS, LEASE_EVENTS_INDEX]
    stmts += [ABSTRACT_TERMINALS, ABSTRACT_TERMINALS_INDEX, THREAD_TERMINAL_POINTERS]
    stmts += [CHAT_SESSIONS, *CHAT_SESSIONS_INDEXES]
    if optional:
        stmts += [TERMINAL_COMMANDS, TERMINAL_COMMANDS_INDEX, TERMINAL_COMMAND_CHUNKS]
        stmts += [TERMINAL_COMMAND_CHUNKS_INDEX, PROVIDER_EVENTS, PROVIDER_EVENTS_INDEX]
        stmts += [LEASE_RESOURCE_SNAPSHOTS]
    if variant == "mycel":
        stmts += [*MYCEL_LEASE_ALTERS, SANDBOX_VOLUMES, SYNC_FILES]
    return stmts


def events_ddl() -> list[str]:
    return [RUN_EVENTS, RUN_EVENTS_INDEX]


def _apply(conn: sqlite3.Connection, stmts: Iterable[str]) -> None:
    for stmt in stmts:
        conn.execute(stmt)


def create_sandbox_db(path: str, variant: str = "leonai", *, optional: bool = True) -> sqlite3.Connection:
    """Create (or open) a sandbox.db the way LEON's connect_sqlite does: WAL, busy timeout."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA synchronous=NORMAL")
    _apply(conn, sandbox_ddl(variant, optional=optional))
    conn.commit()
    return conn


def create_events_db(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    _apply(conn, events_ddl())
    conn.commit()
    return conn
