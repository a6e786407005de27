"""events.db `run_events` rows as LEON's streaming service writes them (domain doc §7.1).

No runs table and no status column: a run's fate is in its event sequence. Completed:
user_message, run_start, text/tool_call/tool_result/status..., run_done. Errored: ... error,
run_done. Cancelled: ... cancelled, run_done. Never finished ("stuck"): no run_done. LEON keeps
only the latest run per thread (cleanup_old_runs keep_latest=1); `activity_{thread}` streams are
never cleaned. `created_at` is UTC CURRENT_TIMESTAMP format.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from typing import Any

from opcockpit.demo.ids import Clock, IdGen, cumulative, weighted

_PROMPTS = [json.dumps(p) for p in (
    "run the test suite and fix what fails",
    "build the frontend",
    "why is the API returning 502?",
    "summarise the logs in /workspace/logs",
    "install pandas and plot sales.csv",
    "refactor utils.py into a package",
)]  # fmt: skip
_TEXT = [json.dumps(t) for t in ("Let me look at that.", "Running the command now.", "Done: all checks pass.",
                                 "I found the problem in ", "config.py", ".")]  # fmt: skip
_TOOLS = ("run_command", "read_file", "write_file", "list_dir")
_ERRORS = [json.dumps(e) for e in (
    "Error code: 429 - {'error': {'message': 'Rate limit reached', 'type': 'rate_limit_error'}}",
    "Connection error.",
    "Sandbox lease is paused. Resume before executing commands.",
    "Request timed out.",
    "boom",
)]  # fmt: skip

# Distribution of the retained run's fate per thread, by whether the thread is live.
_LIVE_FATES = cumulative(
    ("completed", 55), ("errored", 12), ("cancelled", 8), ("stuck", 5), ("in_progress", 5), ("none", 15),
)  # fmt: skip
_IDLE_FATES = cumulative(("completed", 55), ("errored", 15), ("cancelled", 8), ("stuck", 2), ("none", 20))


class RunWriter:
    def __init__(self, rng: random.Random, ids: IdGen, clock: Clock) -> None:
        self.rng, self.ids, self.clock = rng, ids, clock
        self.rows: list[tuple[float, int, tuple]] = []
        self._n = 0

    def _add(self, t: float, thread: str, run: str, etype: str, data: str, msg: str | None = None) -> None:
        self._n += 1  # tie-breaker keeps per-run order when timestamps collide
        self.rows.append((t, self._n, (thread, run, etype, data, msg, self.clock.utc_sql(t))))

    def build(self, threads: Iterable[tuple[str, Any, str, float]]) -> list[tuple]:
        """threads: (thread_id, lease, live, t_last_activity). Returns rows sorted by time, so the
        AUTOINCREMENT seq follows wall-clock order as it does in LEON."""
        rng = self.rng
        for thread, _lease, live, end in threads:
            fate = weighted(rng, _LIVE_FATES if live == "active" else _IDLE_FATES)
            if fate != "none":
                self.run(thread, str(fate), end)
            if rng.random() < 0.15:
                self.activity(thread, end)
        self.rows.sort()  # (time, counter) are unique, so the row tuple itself is never compared
        return [r[2] for r in self.rows]

    def run(self, thread: str, fate: str, end: float, start: float | None = None) -> str:
        """Write one run; `end` is when the last event happened (for completed runs)."""
        rng, now = self.rng, self.clock.now_ts
        run_id = self.ids.uuid4()
        n_steps = rng.randrange(1, 4)
        if start is None:
            if fate == "stuck":
                start = now - rng.uniform(700, 6 * 3600)
            elif fate == "in_progress":
                start = now - rng.uniform(3, 90)
            else:
                start = min(end, now - 5) - rng.uniform(5, 20 * n_steps + 10)
        t = start
        prompt = rng.choice(_PROMPTS)
        self._add(
            t, thread, run_id, "user_message", f'{{"content": {prompt}, "showing": true}}', self.ids.uuid4()
        )
        t += rng.uniform(0.01, 0.2)
        self._add(t, thread, run_id, "run_start",
                  f'{{"thread_id": "{thread}", "run_id": "{run_id}", "source": "owner", '
                  f'"sender_name": "owner", "showing": true}}')  # fmt: skip
        msg = self.ids.uuid4()
        stop_after = rng.randrange(1, n_steps + 1) if fate in ("stuck", "in_progress") else n_steps
        for step in range(n_steps):
            t += rng.uniform(0.3, 3)
            self._add(t, thread, run_id, "text", f'{{"content": {rng.choice(_TEXT)}}}', msg)
            call = "call_" + self.ids.hex(24)
            tool = rng.choice(_TOOLS)
            t += rng.uniform(0.1, 1)
            self._add(t, thread, run_id, "tool_call", f'{{"id": "{call}", "name": "{tool}", "args": {{}}}}')
            if fate in ("stuck", "in_progress") and step + 1 >= stop_after:
                return run_id  # never finished: the last event is a tool call in flight
            if fate == "cancelled" and step == n_steps - 1:
                t += rng.uniform(1, 30)
                data = f'{{"message": "Run cancelled by user", "cancelled_tool_call_ids": ["{call}"]}}'
                self._add(t, thread, run_id, "cancelled", data)
                break
            t += rng.uniform(0.2, 15)
            self._add(t, thread, run_id, "tool_result",
                      f'{{"tool_call_id": "{call}", "name": "{tool}", "content": "ok"}}')  # fmt: skip
        else:
            tokens = rng.randrange(500, 90000)  # the agent runtime status dict, once per run here
            t += 0.01
            self._add(t, thread, run_id, "status", f'{{"state": "active", "tokens": {{"total": {tokens}}}}}')
            if fate == "errored":
                if rng.random() < 0.4:
                    t += 0.5
                    data = '{"attempt": 1, "max_attempts": 3, "wait_seconds": 2.0}'
                    self._add(t, thread, run_id, "retry", data)
                t += rng.uniform(0.5, 5)
                self._add(t, thread, run_id, "error", f'{{"error": {rng.choice(_ERRORS)}}}')
            else:
                t += rng.uniform(0.2, 3)
                self._add(t, thread, run_id, "text", f'{{"content": {_TEXT[2]}}}', msg)
        self._add(t + rng.uniform(0.01, 0.1), thread, run_id, "run_done",
                  f'{{"thread_id": "{thread}", "run_id": "{run_id}"}}')  # fmt: skip
        return run_id

    def activity(self, thread: str, end: float) -> None:
        """Background task events, stored under run_id activity_{thread_id} and never cleaned."""
        rng = self.rng
        run_id = f"activity_{thread}"
        t = min(end, self.clock.now_ts - 5) - rng.uniform(60, 7200)
        for _ in range(rng.randrange(1, 4)):
            task = "task_" + self.ids.hex(8)
            data = f'{{"task_id": "{task}", "description": "background command"}}'
            self._add(t, thread, run_id, "task_start", data)
            t += rng.uniform(1, 300)
            if rng.random() < 0.8:
                self._add(t, thread, run_id, "task_done", f'{{"task_id": "{task}", "result": "exit 0"}}')
            else:
                self._add(t, thread, run_id, "task_error", f'{{"task_id": "{task}", "error": "exit 1"}}')
            t += rng.uniform(1, 600)
