"""Container logs and the raw record through DockerAdapter, against the loopback DockerDouble in
both flavors: stdout/stderr demultiplexing (frames split anywhere), TTY containers, tail, follow,
the label lookup, redaction in the inspect service, NotFound as one line."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from opcockpit.adapters.providers.docker import DockerAdapter, demux_frames, split_lines
from opcockpit.doubles.docker import DockerDouble
from opcockpit.ports.provider import LogLine, LogSource, NotFound, RawRecordSource
from opcockpit.services.inspect import InspectError, InspectService


@pytest.fixture(scope="module")
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="opc-dl-"))  # unix socket paths are limited to 108 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["docker", "podman"])
def double(request: pytest.FixtureRequest, sock_dir: Path) -> Iterator[DockerDouble]:
    path = sock_dir / f"{abs(hash(request.node.nodeid)) % 10**8}.sock"
    with DockerDouble(unix_path=str(path), flavor=request.param) as d:
        yield d


@pytest.fixture
async def adapter(double: DockerDouble) -> AsyncIterator[DockerAdapter]:
    a = DockerAdapter("docker", host=double.host, retries=0, timeout=5)
    yield a
    await a.aclose()


async def collect(it: AsyncIterator[LogLine]) -> list[tuple[str, str]]:
    return [(line.stream, line.text) async for line in it]


async def test_logs_demultiplex_stdout_and_stderr(double: DockerDouble, adapter: DockerAdapter) -> None:
    assert isinstance(adapter, LogSource) and adapter.capabilities.has_logs
    iid = double.add(state="running").instance_id
    double.write_log(iid, "booting\nready ")
    double.write_log(iid, "kept waiting\n", "stdout")  # one line across two writes
    double.write_log(iid, "warn: disk 91%\n", "stderr")
    lines = await collect(adapter.logs(iid, tail=None))
    assert lines == [("stdout", "booting"), ("stdout", "ready kept waiting"), ("stderr", "warn: disk 91%")]


async def test_tail_keeps_the_last_lines(double: DockerDouble, adapter: DockerAdapter) -> None:
    iid = double.add(state="running").instance_id
    double.write_log(iid, "".join(f"line {n}\n" for n in range(10)))
    assert [t for _, t in await collect(adapter.logs(iid, tail=3))] == ["line 7", "line 8", "line 9"]
    assert await collect(adapter.logs(iid, tail=0)) == []


async def test_tty_container_is_not_multiplexed(double: DockerDouble, adapter: DockerAdapter) -> None:
    iid = double.add(state="running", tty=True).instance_id
    double.write_log(iid, "$ ls\r\nworkspace\r\n")
    assert await collect(adapter.logs(iid)) == [("tty", "$ ls"), ("tty", "workspace")]


async def test_follow_delivers_new_lines(double: DockerDouble, adapter: DockerAdapter) -> None:
    iid = double.add(state="running").instance_id
    double.write_log(iid, "old\n")
    got: list[str] = []
    stream = adapter.logs(iid, tail=10, follow=True)

    async def reader() -> None:
        async for line in stream:
            got.append(line.text)
            if len(got) == 2:
                return

    task = asyncio.create_task(reader())
    for _ in range(200):
        if got:
            break
        await asyncio.sleep(0.01)
    double.write_log(iid, "new\n")
    await asyncio.wait_for(task, 10)
    await stream.aclose()  # type: ignore[attr-defined]
    assert got == ["old", "new"]


async def test_logs_and_record_by_label_and_missing(double: DockerDouble, adapter: DockerAdapter) -> None:
    # LEON's session id as a label on a container named otherwise: found through the label.
    inst = double.add("sess-1", state="running", name="web-1")
    double.write_log(inst.instance_id, "hello\n")
    assert await collect(adapter.logs("sess-1")) == [("stdout", "hello")]
    record = await adapter.raw_record("sess-1")
    assert record["Name"] == "/web-1" and record["Config"]["Labels"]["leon.session_id"] == "sess-1"
    with pytest.raises(NotFound):
        await adapter.raw_record("nope-404")
    with pytest.raises(NotFound):
        await collect(adapter.logs("nope-404"))


async def test_inspect_service_redacts_and_says_one_line(
    double: DockerDouble, adapter: DockerAdapter
) -> None:
    assert isinstance(adapter, RawRecordSource)
    iid = double.add(state="running", env=["PATH=/usr/bin", "E2B_API_KEY=e2b_live_SECRETvalue42"]).instance_id
    double.write_log(iid, "token=e2b_live_SECRETvalue42\n")
    service = InspectService({"docker": adapter}.get)
    text = await service.raw_text("docker", iid)
    assert "PATH=/usr/bin" in text and "E2B_API_KEY=***" in text
    assert "SECRETvalue42" not in text
    assert f"leon.session_id: {iid}" in text  # an identifier, not a credential
    assert service.can_logs("docker") and service.can_inspect("docker")
    assert not service.can_logs("e2b")
    with pytest.raises(InspectError, match="not found"):
        await service.raw_text("docker", "nope-404")
    with pytest.raises(InspectError, match="not configured"):
        await service.raw_text("e2b", iid)


async def test_demux_survives_frames_split_anywhere() -> None:
    frames = b"".join(
        bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data
        for stream, data in [(1, b"a1\na2\n"), (2, b"e1\n"), (1, b"a3")]
    )

    async def chunks(size: int) -> AsyncIterator[bytes]:
        for i in range(0, len(frames), size):
            yield frames[i : i + size]

    for size in (1, 3, 7, len(frames)):
        lines = await collect(split_lines(demux_frames(chunks(size))))
        assert lines == [("stdout", "a1"), ("stdout", "a2"), ("stderr", "e1"), ("stdout", "a3")], size
