"""The detail records of sandbox.db that only the thread screen and its commands read (instance
history, terminal commands and their output, thread pointers, Mycel volumes and synced files).

Split from domain/models.py, which re-exports them (`from opcockpit.domain.models import
CommandOutput` keeps working, loading this module on first use): a dataclass costs ~1 ms of
interpreter start-up to create and `opcockpit snapshot` never builds one of these (issue 9).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "CommandChunk",
    "CommandOutput",
    "InstanceHistoryRecord",
    "SyncFileRecord",
    "TerminalCommandRecord",
    "ThreadPointerRecord",
    "VolumeRecord",
]


@dataclass(frozen=True, slots=True)
class InstanceHistoryRecord:
    """One `sandbox_instances` row (instance history of a lease)."""

    instance_id: str
    lease_id: str
    provider_session_id: str | None
    status: str | None
    created_at: datetime | None
    last_seen_at: datetime | None


@dataclass(frozen=True, slots=True)
class TerminalCommandRecord:
    """One `terminal_commands` row (stdout/stderr tails omitted unless asked for)."""

    command_id: str
    terminal_id: str
    chat_session_id: str | None
    command_line: str
    cwd: str
    status: str
    exit_code: int | None
    created_at: datetime | None
    updated_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class ThreadPointerRecord:
    """One `thread_terminal_pointers` row: the thread's active and default terminal."""

    thread_id: str
    active_terminal_id: str | None
    default_terminal_id: str | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class CommandChunk:
    """A piece of a command's output: a `terminal_command_chunks` row, or (chunk_id None) a tail
    from `terminal_commands.stdout/stderr` when the command has no chunks."""

    chunk_id: int | None
    stream: str  # stdout | stderr
    content: str
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CommandOutput:
    """The output of one command, in chunk order, limited to its last `tail_bytes`."""

    command_id: str
    command: TerminalCommandRecord | None  # None when the command row is gone (deleted terminal)
    chunks: tuple[CommandChunk, ...]
    source: str  # "chunks" | "tails" (terminal_commands.stdout/stderr) | "none"
    truncated: bool = False  # earlier output was left out to keep the tail

    @property
    def text(self) -> str:
        return "".join(c.content for c in self.chunks)


@dataclass(frozen=True, slots=True)
class VolumeRecord:
    """One Mycel `sandbox_volumes` row (a lease points at it through `volume_id`)."""

    volume_id: str
    name: str | None
    source: str
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class SyncFileRecord:
    """One Mycel `sync_files` row: a workspace file synced for a thread."""

    thread_id: str
    relative_path: str
    checksum: str | None
    last_synced: datetime | None
