"""OTLP export end to end: a LEON run in a real events.db -> spans and log records decoded by a
loopback OTLP/HTTP receiver; ledger events -> log records; an unreachable collector."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opcockpit.adapters.otlp import OtlpExporter, resolve_target
from opcockpit.services.export import ContinuousExporter, ledger_log, push_once, run_telemetry
from opcockpit.wiring import leon_access
from tests.fixtures.leon_db import add_run_event, create_events_db
from tests.fixtures.otlp import OtlpReceiver, closed_port_url

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
THREAD, RUN = "thread-a", "run-1"


def at(s: int) -> datetime:
    return T0 + timedelta(seconds=s)


def write_run(path: Path) -> None:
    """user_message, run_start, two tool calls (one sent twice, LEON-way), a task that fails, a
    retried error, then the final error and run_done."""
    conn = create_events_db(str(path))
    ev = lambda kind, data, s: add_run_event(conn, THREAD, RUN, kind, data, created_at=at(s))  # noqa: E731
    ev("user_message", {"content": "hi"}, 0)
    ev("run_start", {"thread_id": THREAD, "run_id": RUN, "source": "web"}, 1)
    ev("tool_call", {"id": "call_1", "name": "read_file", "args": {}}, 2)
    ev("tool_call", {"id": "call_1", "name": "read_file", "args": {"path": "/secret"}}, 3)
    ev("tool_result", {"tool_call_id": "call_1", "name": "read_file", "content": "SECRET-CONTENT"}, 7)
    ev("tool_call", {"id": "call_2", "name": "run_command", "args": {"cmd": "ls"}}, 8)
    ev("tool_result", {"tool_call_id": "call_2", "name": "run_command", "content": "x"}, 10)
    ev("task_start", {"task_id": "t1", "task_type": "bash"}, 11)
    ev("task_error", {"task_id": "t1", "error": "exit 1"}, 14)
    ev("error", {"error": "RateLimitError: slow down"}, 15)
    ev("retry", {"attempt": 1, "max_attempts": 3, "wait_seconds": 1}, 16)
    ev("tool_call", {"id": "call_3", "name": "write_file", "args": {}}, 17)
    ev("error", {"error": "TimeoutError: model did not answer"}, 20)
    ev("run_done", {"thread_id": THREAD, "run_id": RUN}, 21)
    conn.commit()
    conn.close()


@pytest.fixture
def receiver():
    with OtlpReceiver() as rx:
        yield rx


def exporter_for(url: str, **kw) -> OtlpExporter:
    return OtlpExporter(resolve_target(url, None, env={}), **kw)


LEDGER = [
    {
        "id": 41, "type": "instance.state_changed", "occurred_at": at(30), "observed_at": at(32),
        "source": "provider_list",
        "subject": {"lease_id": "lease-1", "instance_id": "i-9", "provider": "e2b"},
        "before": {"state": "running"}, "after": {"state": "paused"},
    },
    {
        "id": 42, "type": "provider.listing_failed", "occurred_at": None, "observed_at": at(40),
        "source": "cockpit", "provider": "e2b", "after": {"error": "timeout"},
    },
]  # fmt: skip


async def test_run_and_ledger_reach_the_collector(tmp_path: Path, receiver: OtlpReceiver) -> None:
    db = tmp_path / "events.db"
    write_run(db)
    sink = exporter_for(receiver.url)
    seen: list[tuple[int, datetime | None]] = []

    def feed(after: int, since: datetime | None, limit: int) -> list[dict]:
        seen.append((after, since))
        return list(LEDGER)

    rep = await push_once(
        sink, since=T0 - timedelta(days=3650), events_db=str(db),
        events_reader=leon_access().events_reader, ledger_feed=feed, timeout_s=10,
    )  # fmt: skip
    assert rep.delivered, rep
    assert (rep.runs, rep.spans) == (1, 5)
    assert receiver.wait(spans=5, logs=rep.logs, timeout=5)

    spans = {s.name: s for s in receiver.spans}
    assert set(spans) == {
        "invoke_agent", "execute_tool read_file", "execute_tool run_command",
        "execute_tool bash", "execute_tool write_file",
    }  # fmt: skip
    root = spans["invoke_agent"]
    assert root.parent_span_id == ""
    assert {s.trace_id for s in receiver.spans} == {root.trace_id}
    assert all(s.parent_span_id == root.span_id for s in receiver.spans if s is not root)
    # the run: run_start -> run_done, the final error (not the retried one) as status
    assert root.start_ns == int(at(1).timestamp()) * 10**9 and root.duration_s == 20
    assert root.status_code == 2 and root.status_message == "TimeoutError: model did not answer"
    assert root.attributes["error.type"] == "TimeoutError"
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["gen_ai.provider.name"] == "leon"
    assert root.attributes["gen_ai.conversation.id"] == THREAD
    assert root.attributes["leon.run.id"] == RUN and root.attributes["leon.run.source"] == "web"
    assert root.resource["service.name"] == "opcockpit"

    read = spans["execute_tool read_file"]
    assert read.attributes["gen_ai.operation.name"] == "execute_tool"
    assert read.attributes["gen_ai.tool.name"] == "read_file"
    assert read.attributes["gen_ai.tool.call.id"] == "call_1"
    assert read.duration_s == 5  # the first tool_call (the repeat is the same call) -> the result
    assert read.status_code == 0 and "error.type" not in read.attributes
    assert spans["execute_tool run_command"].duration_s == 2
    bash = spans["execute_tool bash"]
    assert bash.status_code == 2 and bash.status_message == "exit 1" and bash.duration_s == 3
    # a call with no result when the run failed: ended with the run, an error
    unfinished = spans["execute_tool write_file"]
    assert unfinished.status_code == 2 and unfinished.end_ns == root.end_ns
    # arguments and results are sensitive: never exported
    assert "SECRET" not in str(receiver.raw) and "/secret" not in str(receiver.raw)

    logs = {r.event_name: r for r in receiver.logs}
    assert {"leon.run.error", "leon.run.retry", "opcockpit.instance.state_changed",
            "opcockpit.provider.listing_failed"} <= set(logs)  # fmt: skip
    retry = logs["leon.run.retry"]
    assert retry.severity_text == "WARN" and (retry.trace_id, retry.span_id) == (root.trace_id, root.span_id)
    assert [r.body for r in receiver.logs if r.event_name == "leon.run.error"] == [
        "RateLimitError: slow down", "TimeoutError: model did not answer",
    ]  # fmt: skip
    inst = logs["opcockpit.instance.state_changed"]
    assert inst.time_ns == int(at(30).timestamp()) * 10**9
    assert inst.observed_ns == int(at(32).timestamp()) * 10**9
    assert inst.attributes == {
        "opcockpit.lease.id": "lease-1", "opcockpit.instance.id": "i-9", "opcockpit.provider.name": "e2b",
        "opcockpit.event.source": "provider_list", "log.record.uid": "opcockpit-ledger:41",
    }  # fmt: skip
    assert inst.body == {"before": {"state": "running"}, "after": {"state": "paused"}}
    failed = logs["opcockpit.provider.listing_failed"]
    assert failed.severity_text == "WARN" and failed.time_ns == int(at(40).timestamp()) * 10**9
    assert seen == [(0, T0 - timedelta(days=3650))]
    assert sink.stats().dropped == 0 and sink.stats().sent_spans == 5


async def test_unreachable_collector_is_bounded_and_counts_drops(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    write_run(db)
    before = db.read_bytes()
    sink = exporter_for(closed_port_url(), timeout_s=1.0)
    rep = await push_once(
        sink, since=T0 - timedelta(days=3650), events_db=str(db),
        events_reader=leon_access().events_reader, ledger_feed=lambda *a: list(LEDGER), timeout_s=2.0,
    )  # fmt: skip
    assert not rep.delivered
    stats = sink.stats()
    assert stats.dropped == rep.spans + rep.logs > 0
    assert stats.sent_spans == stats.sent_logs == 0 and stats.queued == 0
    assert stats.failures >= 1 and stats.last_error
    assert sink.submit(*run_telemetry([])) == 0  # closed: nothing more is accepted
    assert db.read_bytes() == before  # the export reads only: events.db untouched


def test_full_queue_drops_and_never_blocks() -> None:
    with OtlpReceiver() as rx:
        sink = exporter_for(rx.url, queue_size=3, batch_size=1)
        logs = [ledger_log(e) for e in LEDGER * 4]  # 8 records, room for 3 (+ 1 in flight)
        accepted = sink.submit((), logs)
        assert 3 <= accepted < 8
        assert sink.drops == 8 - accepted
        assert sink.flush(10)
        assert rx.wait(logs=accepted)
        assert sink.stats().sent_logs == accepted and sink.drops == 8 - accepted
        sink.close()


async def test_continuous_exporter_exports_only_new_finished_runs(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    db = tmp_path / "events.db"
    conn = create_events_db(str(db))
    now = datetime.now(UTC).replace(microsecond=0)
    add_run_event(conn, THREAD, "old", "run_start", {}, created_at=now - timedelta(hours=2))
    add_run_event(conn, THREAD, "old", "run_done", {}, created_at=now - timedelta(hours=2))
    add_run_event(conn, "t2", "live", "run_start", {}, created_at=now)
    add_run_event(conn, "t2", "live", "tool_call", {"id": "c", "name": "ls"}, created_at=now)
    conn.commit()
    ledger: list[dict] = []
    calls: list[int] = []

    def feed(after: int, since: datetime | None, limit: int) -> list[dict]:
        calls.append(after)
        return [e for e in ledger if e["id"] > after]

    exp = ContinuousExporter(
        exporter_for(receiver.url), events_db=str(db), events_reader=leon_access().events_reader,
        ledger_feed=feed, interval_s=0.5,
    )  # fmt: skip
    assert await exp.tick() == 0  # the old run predates the cockpit; the live one is not done
    add_run_event(conn, "t2", "live", "tool_result", {"tool_call_id": "c"}, created_at=now)
    add_run_event(conn, "t2", "live", "run_done", {}, created_at=now)
    conn.commit()
    ledger.append(dict(LEDGER[0]))
    assert await exp.tick() == 3  # run span + tool span + one ledger record
    assert await exp.tick() == 0  # nothing new: nothing re-sent
    assert calls == [0, 0, 41]
    assert exp.sink.flush(10) and receiver.wait(spans=2, logs=1)
    assert sorted(s.name for s in receiver.spans) == ["execute_tool ls", "invoke_agent"]
    assert {s.attributes["leon.run.id"] for s in receiver.spans if s.parent_span_id == ""} == {"live"}
    exp.start()
    await exp.stop(timeout_s=2)
    assert exp.drops == 0 and exp.source_error is None
    conn.close()


async def test_continuous_exporter_survives_a_missing_events_db(tmp_path: Path) -> None:
    sink = exporter_for(closed_port_url(), timeout_s=0.5)
    exp = ContinuousExporter(
        sink, events_db=str(tmp_path / "absent.db"), events_reader=leon_access().events_reader
    )
    assert await exp.tick() == 0
    assert exp.source_error and "absent.db" in exp.source_error
    await exp.stop(timeout_s=0)


async def test_wiring_builds_the_exporter_only_when_enabled(tmp_path: Path, receiver: OtlpReceiver) -> None:
    from opcockpit.settings.config import load_config
    from opcockpit.wiring import build_cockpit, build_exporter

    db = tmp_path / "events.db"
    write_run(db)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[sources]\nsandbox_db = "{tmp_path / "s.db"}"\nevents_db = "{db}"\n')
    off = build_cockpit(load_config(cfg, env={}).config, ledger_path=tmp_path / "l.db")
    assert build_exporter(off) is None
    cfg.write_text(cfg.read_text() + f'[export.otlp]\nenabled = true\nendpoint = "{receiver.url}"\n')
    on = build_cockpit(load_config(cfg, env={}).config, ledger_path=tmp_path / "l.db")
    exp = build_exporter(on)
    assert isinstance(exp, ContinuousExporter) and exp.stats().endpoint == receiver.url
    exp.start()
    await exp.stop(timeout_s=1)
    assert exp.drops == 0
    await off.aclose()
    await on.aclose()
