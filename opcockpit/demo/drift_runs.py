"""Drift actions in events.db and chat sessions: agent runs starting, finishing (LEON's
keep-latest-1 retention) or erroring, and session activity."""

from __future__ import annotations

from opcockpit.demo.drift_base import DriftBase, DriftEvent
from opcockpit.demo.ids import local_now_iso


class RunDrift(DriftBase):
    """The `run_*` and `session_touch` actions of DriftSimulator."""

    def _live_threads(self) -> list[tuple[str, str]]:
        conn = self._connect(self.fleet.sandbox_db)
        try:
            return conn.execute(
                "SELECT DISTINCT thread_id, lease_id FROM chat_sessions WHERE status='active' "
                "ORDER BY thread_id"
            ).fetchall()
        finally:
            conn.close()

    def _run_events(
        self, rows: list[tuple[str, str, str, str, str | None]], cleanup: str | None = None
    ) -> None:
        conn = self._connect(self.fleet.events_db)
        try:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                # created_at is left to its CURRENT_TIMESTAMP default, exactly as LEON does.
                conn.executemany(
                    "INSERT INTO run_events (thread_id, run_id, event_type, data, message_id) "
                    "VALUES (?,?,?,?,?)",
                    rows,
                )
                if cleanup is not None:  # cleanup_old_runs(thread_id, keep_latest=1)
                    thread = rows[0][0]
                    conn.execute(
                        "DELETE FROM run_events WHERE thread_id=? AND run_id != ? "
                        "AND run_id NOT LIKE 'activity_%'",
                        (thread, cleanup),
                    )
        finally:
            conn.close()

    def _a_run_start(self) -> DriftEvent | None:
        threads = [t for t in self._live_threads() if t[0] not in self.inflight_runs]
        if not threads:
            return None
        thread, lease_id = self.rng.choice(threads)
        run_id = self.ids.uuid4()
        self._run_events(
            [
                (thread, run_id, "user_message", '{"content": "check the build again", "showing": true}',
                 self.ids.uuid4()),
                (thread, run_id, "run_start", f'{{"thread_id": "{thread}", "run_id": "{run_id}", '
                 '"source": "owner", "sender_name": "owner", "showing": true}', None),
                (thread, run_id, "text", '{"content": "Running the command now."}', self.ids.uuid4()),
            ]
        )  # fmt: skip
        self.inflight_runs[thread] = run_id
        return DriftEvent("run_start", f"run {run_id[:8]} started on {thread}", None, lease_id, None)

    def _finish(self, error: bool) -> DriftEvent | None:
        if not self.inflight_runs:
            return None
        thread = self.rng.choice(sorted(self.inflight_runs))
        run_id = self.inflight_runs.pop(thread)
        call = "call_" + self.ids.hex(24)
        rows: list[tuple[str, str, str, str, str | None]] = [
            (thread, run_id, "tool_call", f'{{"id": "{call}", "name": "run_command", "args": {{}}}}', None),
        ]
        if error:
            rows.append((thread, run_id, "error", '{"error": "Connection error."}', None))
        else:
            result = f'{{"tool_call_id": "{call}", "name": "run_command", "content": "ok"}}'
            rows.append((thread, run_id, "tool_result", result, None))
            rows.append((thread, run_id, "text", '{"content": "Done: all checks pass."}', self.ids.uuid4()))
        rows.append((thread, run_id, "run_done", f'{{"thread_id": "{thread}", "run_id": "{run_id}"}}', None))
        self._run_events(rows, cleanup=run_id)
        what = "errored" if error else "finished"
        return DriftEvent("run_error" if error else "run_finish", f"run {run_id[:8]} {what} on {thread}")

    def _a_run_finish(self) -> DriftEvent | None:
        return self._finish(error=False)

    def _a_run_error(self) -> DriftEvent | None:
        return self._finish(error=True)

    def _a_session_touch(self) -> DriftEvent | None:
        conn = self._connect(self.fleet.sandbox_db)
        try:
            rows = conn.execute(
                "SELECT chat_session_id, lease_id FROM chat_sessions WHERE status='active' "
                "ORDER BY chat_session_id"
            ).fetchall()
            if not rows:
                return None
            sid, lease_id = self.rng.choice(rows)
            with conn:  # ChatSession.touch(): last_active_at only
                conn.execute(
                    "UPDATE chat_sessions SET last_active_at=? WHERE chat_session_id=?",
                    (local_now_iso(), sid),
                )
        finally:
            conn.close()
        return DriftEvent("session_touch", f"activity on {sid}", None, lease_id, None)
