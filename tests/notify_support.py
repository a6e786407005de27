"""Shared parts of the notification tests: a real webhook receiver on 127.0.0.1 and a sandbox.db
whose leases have been recovering since T0 (so `lease_recovering` fires at once)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.alerts_support import T0, naive, sandbox_db
from tests.fixtures.leon_db import add_lease

ALWAYS = 10**9  # `fail_first=ALWAYS`: every request fails


class Receiver:
    """POST receiver on 127.0.0.1 that answers `fail_status` (with `fail_headers`) to the first
    `fail_first` requests and 204 after that. `requests` holds every request, `accepted` the
    bodies of the answered ones."""

    def __init__(
        self,
        fail_first: int = 0,
        fail_status: int = 500,
        *,
        fail_headers: Mapping[str, str] | None = None,
        path: str = "/hooks/SECRET-TOKEN-123",
    ) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.fail_headers = dict(fail_headers or {})
        self.path = path
        self.requests: list[dict[str, Any]] = []
        self.accepted: list[Any] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with outer.lock:
                    outer.requests.append({"body": body, "headers": dict(self.headers), "path": self.path})
                    failing = len(outer.requests) <= outer.fail_first
                    if not failing:
                        outer.accepted.append(body)
                self.send_response(outer.fail_status if failing else 204)
                for name, value in (outer.fail_headers if failing else {}).items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def recovering_fleet(path: Path, lease_ids: Iterable[str]) -> Path:
    """A sandbox.db at `path` with docker leases `recovering` since T0."""

    def build(conn: Any) -> None:
        for lid in lease_ids:
            add_lease(conn, lid, "docker", status="recovering", created_at=naive(T0), updated_at=naive(T0))

    return sandbox_db(path, build)  # type: ignore[no-any-return]
