"""sandbox.db reader: the §9 worked example read back exactly, on every schema variant."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opcockpit.adapters.leon.sandbox_db import SandboxDbReader, read_db_state
from opcockpit.adapters.leon.schema import LEASE_RESOURCE_SNAPSHOTS, OPTIONAL_TABLES, create_sandbox_db
from opcockpit.domain.models import (
    ChatSessionRecord,
    InstanceHistoryRecord,
    LeaseEventRecord,
    LeaseRecord,
    ProviderEventRecord,
    ResourceSnapshotRecord,
    TerminalCommandRecord,
    TerminalRecord,
)
from tests.fixtures import leon_db as fx
from tests.fixtures.leon_db import (
    CMD1,
    CMD2,
    CMD3,
    EXAMPLE_TZ,
    I1,
    I1_OLD,
    I2,
    I3,
    L1,
    L2,
    L3,
    L3_ERROR,
    ORPHAN,
    S1,
    S2,
    S3A,
    S3B,
    T1,
    T2,
    T3,
    TERM1,
    TERM2,
    TERM3A,
    TERM3B,
    utc_of,
    write_worked_example,
)

VARIANTS = ("leonai", "mycel", "older")
LAZY_TABLES = ("terminal_commands", "terminal_command_chunks", "provider_events", "lease_resource_snapshots")


def expected_leases(variant: str) -> list[LeaseRecord]:
    mirror = variant != "older"  # instance_status exists on leonai and Mycel

    def vol(lease_id: str) -> str | None:
        return f"vol-{lease_id[6:]}" if variant == "mycel" else None

    return [
        LeaseRecord(
            L1,
            "docker",
            I1,
            "running",
            "running",
            "active",
            4,
            False,
            None,
            utc_of("10:45:09"),
            utc_of("11:58:40.55"),
            None,
            utc_of("09:00:00.10"),
            utc_of("11:58:40.55"),
            "running" if mirror else None,
            None,
            None,
            vol(L1),
        ),
        LeaseRecord(
            L2,
            "e2b",
            I2,
            "running",
            "paused",
            "active",
            2,
            False,
            None,
            utc_of("10:05:30"),
            utc_of("10:15:05.77"),
            None,
            utc_of("10:02:11.03"),
            utc_of("10:15:05.77"),
            "paused" if mirror else None,
            None,
            None,
            vol(L2),
        ),
        LeaseRecord(
            L3,
            "docker",
            I3,
            "running",
            "running",
            "active",
            3,
            True,
            L3_ERROR,
            utc_of("11:10:04"),
            utc_of("11:50:12.90"),
            utc_of("11:50:12.90"),
            utc_of("11:10:00.42"),
            utc_of("11:50:12.90"),
            "running" if mirror else None,
            None,
            None,
            vol(L3),
        ),
    ]


EXPECTED_TERMINALS = [
    TerminalRecord(TERM1, T1, L1, "/workspace", 5, utc_of("09:00:00.20"), utc_of("11:58:30"), "{}"),
    TerminalRecord(TERM2, T2, L2, "/home/user", 2, utc_of("10:02:11.10"), utc_of("10:09:40"), "{}"),
    TerminalRecord(
        TERM3A,
        T3,
        L3,
        "/workspace",
        3,
        utc_of("11:10:00.50"),
        utc_of("11:34:00"),
        '{"NODE_ENV": "production"}',
    ),
    TerminalRecord(
        TERM3B,
        T3,
        L3,
        "/workspace/app",
        3,
        utc_of("11:35:01.90"),
        utc_of("11:35:02"),
        '{"NODE_ENV": "production"}',
    ),
]

EXPECTED_SESSIONS = [
    ChatSessionRecord(
        S1,
        T1,
        TERM1,
        L1,
        "active",
        utc_of("09:00:00.31"),
        utc_of("11:58:38"),
        None,
        None,
        "runtime-0a1b2c3d4e5f",
        300,
        86400,
    ),
    ChatSessionRecord(
        S2,
        T2,
        TERM2,
        L2,
        "closed",
        utc_of("10:02:11.20"),
        utc_of("10:09:40"),
        utc_of("10:15:05"),
        "idle_timeout",
        "runtime-1b2c3d4e5f60",
        300,
        86400,
    ),
    ChatSessionRecord(
        S3A,
        T3,
        TERM3A,
        L3,
        "active",
        utc_of("11:10:00.60"),
        utc_of("11:58:55"),
        None,
        None,
        "runtime-2c3d4e5f6071",
        300,
        86400,
    ),
    ChatSessionRecord(
        S3B,
        T3,
        TERM3B,
        L3,
        "active",
        utc_of("11:35:02"),
        utc_of("11:59:30"),
        None,
        None,
        "runtime-3d4e5f607182",
        300,
        86400,
    ),
]

Z = datetime(2026, 3, 20, 3, 58, 41, tzinfo=UTC)
EXPECTED_SNAPSHOTS = {
    L1: ResourceSnapshotRecord(
        L1, "docker", "running", "running_runtime", 3.2, None, 212.5, None, 1.0, None, None, None, None, Z
    ),
    L2: ResourceSnapshotRecord(
        L2,
        "e2b",
        "paused",
        "non_running_sdk",
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        "metrics unavailable",
        Z,
    ),
    L3: ResourceSnapshotRecord(
        L3, "docker", "running", "running_runtime", 87.0, None, 1480.0, None, 2.0, None, None, None, None, Z
    ),
}


@pytest.mark.parametrize("variant", VARIANTS)
async def test_worked_example_state_reads_back_exactly(tmp_path: Path, variant: str) -> None:
    ex = write_worked_example(tmp_path, variant=variant)
    now = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)
    state = await read_db_state(str(ex.sandbox_db), now=now, local_tz=EXAMPLE_TZ)
    assert state.schema_variant == variant
    assert state.missing_tables == ()
    assert state.read_at == now
    assert state.path == str(ex.sandbox_db)
    assert list(state.leases) == expected_leases(variant)
    assert list(state.terminals) == EXPECTED_TERMINALS
    assert list(state.chat_sessions) == EXPECTED_SESSIONS
    assert dict(state.resource_snapshots) == EXPECTED_SNAPSHOTS
    # The normalisation is what reconcile relies on: 12:00 local (UTC+8) is 04:00Z.
    assert state.leases[0].updated_at == datetime(2026, 3, 20, 3, 58, 40, 550000, tzinfo=UTC)


@pytest.mark.parametrize("variant", VARIANTS)
async def test_optional_tables_absent(tmp_path: Path, variant: str) -> None:
    ex = write_worked_example(tmp_path, variant=variant, optional=False)
    async with SandboxDbReader(str(ex.sandbox_db), local_tz=EXAMPLE_TZ) as r:
        state = await r.read_state()
        assert state.schema_variant == variant
        assert set(state.missing_tables) == set(LAZY_TABLES)
        assert state.resource_snapshots == {}
        assert list(state.leases) == expected_leases(variant)
        assert await r.provider_events() == []
        assert await r.terminal_commands([TERM1, TERM3B]) == []
        assert len(await r.lease_events()) == 9  # not optional here: still read


async def test_minimal_db_every_optional_table_missing(tmp_path: Path) -> None:
    # Only the two tables the reader insists on, with only the required columns.
    p = tmp_path / "sandbox.db"
    conn = sqlite3.connect(p)
    conn.execute(
        "CREATE TABLE sandbox_leases (lease_id TEXT PRIMARY KEY, provider_name TEXT, "
        "desired_state TEXT, observed_state TEXT)"
    )
    conn.execute("CREATE TABLE abstract_terminals (terminal_id TEXT, thread_id TEXT, lease_id TEXT)")
    conn.execute("INSERT INTO sandbox_leases VALUES ('lease-x', 'local', 'running', 'running')")
    conn.execute("INSERT INTO abstract_terminals VALUES ('term-x', 'thread-x', 'lease-x')")
    conn.commit()
    conn.close()
    async with SandboxDbReader(str(p)) as r:
        state = await r.read_state()
        assert state.schema_variant == "older"
        assert set(state.missing_tables) == set(OPTIONAL_TABLES)
        assert state.leases == (
            LeaseRecord(
                "lease-x",
                "local",
                None,
                "running",
                "running",
                None,
                0,
                False,
                None,
                None,
                None,
                None,
                None,
                None,
            ),
        )
        assert state.terminals == (TerminalRecord("term-x", "thread-x", "lease-x", "", 0, None, None),)
        assert state.chat_sessions == ()
        assert await r.thread_sessions("thread-x") == []
        assert await r.instance_history("lease-x") == []
        assert await r.lease_events() == []
        assert await r.threads_for_lease("lease-x") == ["thread-x"]


async def test_mycel_detected_by_volumes_table_alone(tmp_path: Path) -> None:
    p = tmp_path / "sandbox.db"
    create_sandbox_db(str(p), "leonai").close()
    conn = sqlite3.connect(p)
    conn.execute(
        "CREATE TABLE sandbox_volumes (volume_id TEXT PRIMARY KEY, name TEXT, source TEXT NOT NULL, "
        "created_at TEXT NOT NULL)"
    )
    conn.commit()
    conn.close()
    assert (await read_db_state(str(p))).schema_variant == "mycel"


async def test_detail_queries_on_worked_example(tmp_path: Path) -> None:
    ex = write_worked_example(tmp_path)
    async with SandboxDbReader(str(ex.sandbox_db), local_tz=EXAMPLE_TZ) as r:
        assert r.schema_variant == "leonai"
        assert await r.lease(L2) == expected_leases("leonai")[1]
        assert await r.lease("lease-nope") is None
        assert [x.lease_id for x in await r.leases_by_ids([L3, "nope", L1, L3])] == [L3, L1]
        assert await r.leases_by_ids([]) == []

        events = await r.lease_events()
        assert len(events) == 9
        assert [e.created_at for e in events] == sorted((e.created_at for e in events), reverse=True)
        assert events[1] == LeaseEventRecord(
            ex.lease_event_ids[8], L3, "intent.pause", "api", "{}", L3_ERROR, utc_of("11:50:12")
        )
        assert (events[0].lease_id, events[0].created_at) == (L1, utc_of("11:58:40"))
        l1 = await r.lease_events(L1)
        assert [(e.event_type, e.source) for e in l1] == [
            ("observe.status", "read.status"),
            ("intent.ensure_running", "run.create"),
            ("observe.status", "run.refresh"),
            ("intent.ensure_running", "run.create"),
        ]
        assert l1[-1].payload_json == f'{{"created": true, "instance_id": "{I1_OLD}"}}'
        assert [e.event_id for e in await r.lease_events(limit=2)] == [
            ex.lease_event_ids[3],
            ex.lease_event_ids[8],
        ]
        assert [e.event_type for e in await r.lease_events(L3, limit=1)] == ["intent.pause"]
        window = await r.lease_events(since=utc_of("10:45:00"), until=utc_of("11:10:04"))
        assert [e.created_at for e in window] == [utc_of("11:10:04"), utc_of("10:45:09"), utc_of("10:45:03")]

        pe = await r.provider_events()
        assert pe == [
            ProviderEventRecord(
                1,
                "e2b",
                ORPHAN,
                "sandbox.lifecycle.killed",
                f'{{"event": "sandbox.lifecycle.killed", "sandbox_id": "{ORPHAN}"}}',
                None,
                utc_of("11:40:00"),
            )
        ]
        assert await r.provider_events(provider="e2b", instance_id=ORPHAN) == pe
        assert await r.provider_events(provider="docker") == []
        assert await r.provider_events(lease_ids=[L2]) == []  # unmatched webhook
        assert await r.provider_events(since=utc_of("11:40:01")) == []

        assert await r.instance_history(L1) == [
            InstanceHistoryRecord(I1, L1, I1, "running", utc_of("10:45:09"), utc_of("11:58:40")),
            InstanceHistoryRecord(I1_OLD, L1, I1_OLD, "stopped", utc_of("09:00:02"), utc_of("10:45:03")),
        ]
        assert [t.terminal_id for t in await r.thread_terminals(T3)] == [TERM3B, TERM3A]
        assert await r.thread_sessions(T2) == [EXPECTED_SESSIONS[1]]  # closed, with close_reason
        assert [s.chat_session_id for s in await r.thread_sessions(T3)] == [S3B, S3A]

        cmds = await r.terminal_commands([TERM1, TERM2, TERM3A, TERM3B])
        assert [c.command_id for c in cmds] == [CMD1, CMD3, CMD2]  # newest first
        assert cmds[1] == TerminalCommandRecord(
            CMD3,
            TERM3B,
            S3B,
            "npm run build",
            "/workspace/app",
            "running",
            None,
            utc_of("11:35:02"),
            utc_of("11:59:30"),
            None,
        )
        assert [c.command_id for c in await r.terminal_commands(TERM2)] == [CMD2]  # a bare id works too
        assert [c.command_id for c in await r.terminal_commands([TERM1, TERM3B], limit=1)] == [CMD1]

        assert await r.threads_for_lease(L3) == [T3]
        assert await r.threads_for_lease("lease-nope") == []


async def test_find_leases_prefixes(tmp_path: Path) -> None:
    ex = write_worked_example(tmp_path)
    async with SandboxDbReader(str(ex.sandbox_db)) as r:
        ids = lambda rs: [x.lease_id for x in rs]  # noqa: E731
        assert ids(await r.find_leases("lease-7c")) == [L2]
        assert ids(await r.find_leases("lease-")) == sorted([L1, L2, L3])
        assert ids(await r.find_leases("leon-9d8")) == [L3]  # by current instance id
        assert ids(await r.find_leases("leon-")) == sorted([L1, L3])
        assert ids(await r.find_leases("i4k7")) == [L2]
        assert ids(await r.find_leases("m_k3v8p1x9q2z7")) == sorted([L1, L2])  # by thread id prefix
        assert ids(await r.find_leases(T3)) == [L3]
        assert ids(await r.find_leases("leon-1a2b")) == []  # old instance: no longer current
        assert await r.find_leases("") == []
        assert await r.find_leases("%") == []  # no LIKE wildcards
        assert await r.find_leases("_") == []


async def test_exact_match_wins_over_longer_prefix_matches(tmp_path: Path) -> None:
    p = tmp_path / "sandbox.db"
    conn = create_sandbox_db(str(p))
    fx.add_lease(conn, "lease-abc", "docker")
    fx.add_lease(conn, "lease-abcd", "docker")
    conn.commit()
    conn.close()
    async with SandboxDbReader(str(p)) as r:
        assert [x.lease_id for x in await r.find_leases("lease-abc")] == ["lease-abc"]
        assert [x.lease_id for x in await r.find_leases("lease-ab")] == ["lease-abc", "lease-abcd"]


async def test_reader_sees_tables_created_after_open(tmp_path: Path) -> None:
    # LEON creates lease_resource_snapshots lazily; a long-lived reader must notice.
    ex = write_worked_example(tmp_path, optional=False)
    async with SandboxDbReader(str(ex.sandbox_db), local_tz=EXAMPLE_TZ) as r:
        assert (await r.read_state()).resource_snapshots == {}
        conn = sqlite3.connect(ex.sandbox_db)
        conn.execute(LEASE_RESOURCE_SNAPSHOTS)
        fx.add_resource_snapshot(conn, L1, "docker", cpu_used=1.5, collected_at="2026-03-20T03:00:00Z")
        conn.commit()
        conn.close()
        state = await r.read_state()
        assert "lease_resource_snapshots" not in state.missing_tables
        assert state.resource_snapshots[L1].cpu_used == 1.5


async def test_mixed_conventions_in_one_db(tmp_path: Path) -> None:
    # CURRENT_TIMESTAMP defaults (UTC) in abstract_terminals next to local ISO: both normalised.
    p = tmp_path / "sandbox.db"
    conn = create_sandbox_db(str(p))
    fx.add_lease(
        conn, "lease-m", "docker", created_at="2026-03-20T09:00:00", updated_at="2026-03-20T01:00:00Z"
    )
    conn.execute(
        "INSERT INTO abstract_terminals (terminal_id, thread_id, lease_id, cwd) "
        "VALUES ('term-m', 'th-m', 'lease-m', '/w')"
    )
    conn.execute("UPDATE abstract_terminals SET created_at = '2026-03-20 01:00:00'")
    conn.commit()
    conn.close()
    state = await read_db_state(str(p), local_tz=EXAMPLE_TZ)
    instant = datetime(2026, 3, 20, 1, 0, tzinfo=UTC)
    assert state.leases[0].created_at == state.leases[0].updated_at == instant
    assert state.terminals[0].created_at == instant


async def test_non_numeric_garbage_in_numeric_columns_does_not_crash(tmp_path: Path) -> None:
    p = tmp_path / "sandbox.db"
    conn = create_sandbox_db(str(p))
    fx.add_lease(conn, "lease-g", "docker", version=0, created_at="not a time")
    conn.execute("UPDATE sandbox_leases SET version = 'x', needs_refresh = 'y', observed_at = 12")
    conn.commit()
    conn.close()
    (lease,) = (await read_db_state(str(p))).leases
    assert (lease.version, lease.needs_refresh, lease.created_at) == (0, False, None)
    assert lease.observed_at == datetime.fromtimestamp(12, UTC)


async def test_repeated_reads_reflect_updates_and_deletes(tmp_path: Path) -> None:
    # Records of unchanged rows are reused across reads; changed rows must never be served stale.
    ex = write_worked_example(tmp_path)
    async with SandboxDbReader(str(ex.sandbox_db), local_tz=EXAMPLE_TZ) as r:
        first = await r.read_state()
        again = await r.read_state()
        assert again.leases == first.leases and again.chat_sessions == first.chat_sessions
        conn = sqlite3.connect(ex.sandbox_db)
        conn.execute(
            "UPDATE sandbox_leases SET observed_state = 'paused', version = 5, "
            "updated_at = '2026-03-20T11:59:59' WHERE lease_id = ?",
            (L1,),
        )
        conn.execute("DELETE FROM chat_sessions WHERE chat_session_id = ?", (S2,))
        conn.commit()
        conn.close()
        later = await r.read_state()
    l1 = next(x for x in later.leases if x.lease_id == L1)
    assert (l1.observed_state, l1.version, l1.updated_at) == ("paused", 5, utc_of("11:59:59"))
    assert [s.chat_session_id for s in later.chat_sessions] == [S1, S3A, S3B]
    # a second reader with another zone must not get the first zone's records
    other = await read_db_state(str(ex.sandbox_db), local_tz=UTC)
    assert next(x for x in other.leases if x.lease_id == L2).created_at == datetime(
        2026, 3, 20, 10, 2, 11, 30000, tzinfo=UTC
    )


# --------------------------------------------------------------------------- pointers, output, Mycel tables


@pytest.mark.parametrize("variant", VARIANTS)
async def test_thread_pointer_and_command_output_on_worked_example(tmp_path: Path, variant: str) -> None:
    from opcockpit.domain.models import CommandChunk, ThreadPointerRecord

    ex = write_worked_example(tmp_path, variant=variant)
    async with SandboxDbReader(str(ex.sandbox_db), local_tz=EXAMPLE_TZ) as r:
        # T3 has two terminals; the pointer (inserted with the first) names term-1122 for both roles.
        assert await r.thread_pointer(T3) == ThreadPointerRecord(T3, TERM3A, TERM3A, utc_of("11:10:00.50"))
        assert (await r.thread_pointer(T1)).active_terminal_id == TERM1  # type: ignore[union-attr]
        assert await r.thread_pointer("m_nope") is None

        out = await r.command_output(CMD3)
        assert out.source == "chunks" and not out.truncated
        assert out.chunks == (
            CommandChunk(1, "stdout", "> build\n", utc_of("11:35:03")),
            CommandChunk(2, "stdout", "vite v5 building…\n", utc_of("11:35:04")),
        )
        assert out.text == "> build\nvite v5 building…\n"
        assert out.command is not None and out.command.status == "running" and out.command.exit_code is None

        # pytest -q has no chunks: its stored stdout tail is the output.
        tails = await r.command_output(CMD1)
        assert tails.source == "tails"
        assert tails.chunks == (CommandChunk(None, "stdout", "12 passed\n", None),)
        assert (await r.command_output(CMD2)).source == "none"  # no chunks, empty tails
        gone = await r.command_output("cmd_000000000000")
        assert (gone.command, gone.chunks, gone.source) == (None, (), "none")


async def test_command_output_keeps_the_tail_in_chunk_order_with_stderr(tmp_path: Path) -> None:
    ex = write_worked_example(tmp_path)
    conn = sqlite3.connect(ex.sandbox_db)
    fx.add_command(
        conn,
        "cmd_aaaaaaaaaaaa",
        TERM1,
        "make",
        status="done",
        exit_code=2,
        stdout="tail-out",
        stderr="tail-err",
    )
    # chunk ids out of insertion order: the reader must sort by chunk_id, not rowid or time
    for cid, stream, text in [(12, "stderr", "E: boom\n"), (10, "stdout", "a" * 10), (11, "stdout", "β" * 5)]:
        fx.add_chunk(conn, "cmd_aaaaaaaaaaaa", text, stream=stream, chunk_id=cid)
    conn.commit()
    conn.close()
    async with SandboxDbReader(str(ex.sandbox_db), local_tz=EXAMPLE_TZ) as r:
        full = await r.command_output("cmd_aaaaaaaaaaaa", tail_bytes=None)
        order = [(c.chunk_id, c.stream) for c in full.chunks]
        assert order == [(10, "stdout"), (11, "stdout"), (12, "stderr")]
        assert full.text == "a" * 10 + "β" * 5 + "E: boom\n" and not full.truncated
        assert full.command is not None and full.command.exit_code == 2
        # 8 bytes of stderr + 10 of "β"x5 (2 bytes each) = 18; 21 bytes reach 3 bytes into chunk 10.
        tail = await r.command_output("cmd_aaaaaaaaaaaa", tail_bytes=21)
        assert tail.truncated and tail.source == "chunks"
        assert [c.content for c in tail.chunks] == ["aaa", "β" * 5, "E: boom\n"]
        # a cut through a 2-byte character drops the half character
        cut = await r.command_output("cmd_aaaaaaaaaaaa", tail_bytes=13)
        assert [c.content for c in cut.chunks] == ["ββ", "E: boom\n"] and cut.truncated
        # the chunk-less fallback tails are cut the same way, per stream
        conn = sqlite3.connect(ex.sandbox_db)
        conn.execute("DELETE FROM terminal_command_chunks WHERE command_id = 'cmd_aaaaaaaaaaaa'")
        conn.commit()
        conn.close()
        tails = await r.command_output("cmd_aaaaaaaaaaaa", tail_bytes=4)
        assert tails.source == "tails" and tails.truncated
        assert [(c.stream, c.content) for c in tails.chunks] == [("stdout", "-out"), ("stderr", "-err")]


@pytest.mark.parametrize("variant", VARIANTS)
async def test_new_readers_on_absent_tables_return_empty(tmp_path: Path, variant: str) -> None:
    ex = write_worked_example(tmp_path, variant=variant, optional=False)
    conn = sqlite3.connect(ex.sandbox_db)
    conn.execute("DROP TABLE thread_terminal_pointers")
    conn.commit()
    conn.close()
    async with SandboxDbReader(str(ex.sandbox_db), local_tz=EXAMPLE_TZ) as r:
        assert await r.thread_pointer(T1) is None
        out = await r.command_output(CMD3)  # neither terminal_commands nor chunks exist
        assert (out.command, out.chunks, out.source) == (None, (), "none")
        if variant != "mycel":
            assert await r.volumes() == [] and await r.volumes(["vol-x"]) == []
            assert await r.sync_files(T1) == []


async def test_mycel_volumes_and_sync_files(tmp_path: Path) -> None:
    from opcockpit.domain.models import SyncFileRecord

    ex = write_worked_example(tmp_path, variant="mycel")
    conn = sqlite3.connect(ex.sandbox_db)
    fx.insert(
        conn,
        "sync_files",
        {"thread_id": T1, "relative_path": "src/b.py", "checksum": "sha256:bb", "last_synced": 1773979200},
    )  # 2026-03-20T04:00:00Z
    fx.insert(
        conn,
        "sync_files",
        {"thread_id": T1, "relative_path": "README.md", "checksum": "sha256:aa", "last_synced": 1773979100},
    )
    fx.insert(conn, "sync_files", {"thread_id": T2, "relative_path": "x", "checksum": "c", "last_synced": 0})
    conn.commit()
    conn.close()
    async with SandboxDbReader(str(ex.sandbox_db), local_tz=EXAMPLE_TZ) as r:
        vols = await r.volumes()
        assert sorted(v.volume_id for v in vols) == sorted(f"vol-{lease[6:]}" for lease in (L1, L2, L3))
        assert all(v.source == "docker_volume" and v.created_at is not None for v in vols)
        lease = await r.lease(L3)
        assert lease is not None and lease.volume_id == f"vol-{L3[6:]}"
        (v3,) = await r.volumes([lease.volume_id, "vol-missing"])
        assert (v3.volume_id, v3.name) == (lease.volume_id, f"leon-{L3}")
        assert await r.volumes([]) == []
        files = await r.sync_files(T1)
        assert files == [
            SyncFileRecord(T1, "README.md", "sha256:aa", datetime.fromtimestamp(1773979100, UTC)),
            SyncFileRecord(T1, "src/b.py", "sha256:bb", datetime(2026, 3, 20, 4, 0, tzinfo=UTC)),
        ]
        assert await r.sync_files(T3) == []


async def test_concurrent_reads_on_one_reader_take_turns(tmp_path: Path) -> None:
    """The TUI loads details while a refresh reads through the same reader: both get their
    answer (they used to collide: 'cannot start a transaction within a transaction')."""
    import asyncio

    ex = write_worked_example(tmp_path)
    async with SandboxDbReader(str(ex.sandbox_db), local_tz=EXAMPLE_TZ) as r:
        results = await asyncio.gather(
            r.read_state(), r.lease_events(), r.provider_events(), r.read_state(), r.lease_events()
        )
    assert list(results[0].leases) == list(results[3].leases) == expected_leases("leonai")
    assert len(results[1]) == len(results[4]) == 9


async def test_a_cancelled_read_never_wedges_the_reader(tmp_path: Path) -> None:
    """The TUI cancels a detail load when the cursor moves: whatever point the cancel hits (even
    a queued BEGIN with no COMMIT to follow), the next read on the same reader works."""
    import asyncio

    ex = write_worked_example(tmp_path)
    async with SandboxDbReader(str(ex.sandbox_db), local_tz=EXAMPLE_TZ) as r:
        for spins in range(6):
            task = asyncio.create_task(r.lease_events())
            for _ in range(spins):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert len(await r.lease_events()) == 9
