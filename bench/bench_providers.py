"""Benchmark: one full provider refresh at fleet scale, real adapters against the loopback doubles.

Per size n: n instances in each of the E2B, Daytona and Docker doubles (Docker on a unix socket);
the three are listed concurrently with the real adapters, as FleetCollector does. Reported:

- wall time of a full refresh (target <= 1.5 s at 10k per provider on the 2-core dev machine),
- HTTP requests per refresh per provider (target O(pages): ceil(n/100) at 100 per page; Docker's
  list is one unpaginated request). LEON itself makes one status call per lease, i.e. n requests.
- AgentBay separately: ListSession carries no labels, so a listing is ceil(n/100) ListSession
  + n GetLabel calls (bounded concurrency). That cost is the API's, not ours; `fetch_labels=False`
  is measured too (pages only, but no orphan claims).
- where the time goes: the same refresh with the doubles served from a *separate process*
  (client alone in this process; client CPU via process_time) and the doubles' own handler time
  (summed wall time inside `dispatch`, threads included) when served in-process.

Run: `python bench/bench_providers.py [n ...]` (prints the rows), or via bench/run.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/bench_providers.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opcockpit.doubles.agentbay import AgentBayDouble
from opcockpit.doubles.base import FakeProvider

TARGET_REFRESH_S = 1.5
# Larger fleets are skipped: the target is defined at 10k, and today's E2B/Daytona doubles render
# the whole fleet for every page (O(n^2 / page)), so 50k would take tens of minutes per refresh.
MAX_SIZE = 10_000
SIZES_CAP = MAX_SIZE  # bench/run.py skips larger requested sizes for this module
PAGE = 100
REPEATS = 3
KEY = "bench-key-0000"
THREE = ("e2b", "daytona", "docker")


# --------------------------------------------------------------------------- doubles


def _doubles(sock_dir: str) -> dict[str, FakeProvider]:
    from opcockpit.doubles.daytona import DaytonaDouble
    from opcockpit.doubles.docker import DockerDouble
    from opcockpit.doubles.e2b import E2BDouble

    return {
        "e2b": E2BDouble(api_key=KEY),
        "daytona": DaytonaDouble(api_key=KEY),
        "docker": DockerDouble(unix_path=os.path.join(sock_dir, "docker.sock"), flavor="docker"),
        "agentbay": AgentBayDouble(api_key=KEY),
    }


def _populate(double: FakeProvider, n: int) -> None:
    for i in range(n):
        state = "paused" if i % 5 == 0 else "running"
        double.add(state=state, labels={"lease_id": f"lease-{i:06d}", "owner": "bench"})


def _urls(doubles: dict[str, FakeProvider]) -> dict[str, str]:
    out = {name: d.url for name, d in doubles.items()}
    out["docker"] = doubles["docker"].host  # type: ignore[attr-defined]
    out["daytona"] = doubles["daytona"].api_url  # type: ignore[attr-defined]
    return out


@contextlib.contextmanager
def _in_process(n: int) -> Iterator[tuple[dict[str, str], dict[str, FakeProvider]]]:
    with tempfile.TemporaryDirectory(prefix="ocb-") as tmp:
        doubles = _doubles(tmp)
        for d in doubles.values():
            _populate(d, n)
            d.start()
        try:
            yield _urls(doubles), doubles
        finally:
            for d in doubles.values():
                d.stop()


@contextlib.contextmanager
def _out_of_process(n: int) -> Iterator[dict[str, str]]:
    """The same doubles served by a child process, so this process runs the client alone."""
    with tempfile.TemporaryDirectory(prefix="ocb-") as tmp:
        child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(n), tmp],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            if not line:
                raise RuntimeError("double server process died")
            yield json.loads(line)
        finally:
            assert child.stdin is not None
            child.stdin.close()  # the child exits when its stdin closes
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _serve(n: int, sock_dir: str) -> None:
    doubles = _doubles(sock_dir)
    for d in doubles.values():
        _populate(d, n)
        d.start()
    print(json.dumps(_urls(doubles)), flush=True)
    sys.stdin.read()
    for d in doubles.values():
        d.stop()


class _HandlerClock:
    """Sums wall time spent inside each double's dispatch (server-side cost, GIL waits included)."""

    def __init__(self, doubles: dict[str, FakeProvider]) -> None:
        self.totals = dict.fromkeys(doubles, 0.0)
        self._lock = threading.Lock()
        for name, d in doubles.items():
            d.dispatch = self._wrap(name, d.dispatch)  # type: ignore[method-assign]

    def _wrap(self, name: str, inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def timed(request: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(request)
            finally:
                with self._lock:
                    self.totals[name] += time.perf_counter() - t0

        return timed

    def reset(self) -> None:
        with self._lock:
            self.totals = dict.fromkeys(self.totals, 0.0)


# --------------------------------------------------------------------------- adapters


def _adapters(urls: dict[str, str], names: tuple[str, ...], **agentbay_kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        if name == "e2b":
            from opcockpit.adapters.providers.e2b import E2BAdapter

            out[name] = E2BAdapter("e2b", base_url=urls["e2b"], api_key=KEY, page_size=PAGE)
        elif name == "daytona":
            from opcockpit.adapters.providers.daytona import DaytonaAdapter

            out[name] = DaytonaAdapter("daytona", base_url=urls["daytona"], api_key=KEY, page_size=PAGE)
        elif name == "docker":
            from opcockpit.adapters.providers.docker import DockerAdapter

            out[name] = DockerAdapter("docker", host=urls["docker"])
        elif name == "agentbay":
            from opcockpit.adapters.providers.agentbay import AgentBayAdapter

            out[name] = AgentBayAdapter(
                "agentbay", base_url=urls["agentbay"], api_key=KEY, page_size=PAGE, **agentbay_kw
            )
    return out


async def _timed_list(adapter: Any) -> tuple[float, int, int]:
    before = adapter.request_count
    t0 = time.perf_counter()
    listing = await adapter.list_instances()
    return time.perf_counter() - t0, adapter.request_count - before, len(listing)


async def _refresh(adapters: dict[str, Any]) -> tuple[float, dict[str, tuple[float, int, int]]]:
    t0 = time.perf_counter()
    results = await asyncio.gather(*(_timed_list(a) for a in adapters.values()))
    return time.perf_counter() - t0, dict(zip(adapters, results, strict=True))


async def _measure_three(
    urls: dict[str, str], n: int, names: tuple[str, ...], repeats: int
) -> dict[str, Any]:
    adapters = _adapters(urls, names)
    try:
        if repeats > 1:
            await _refresh(adapters)  # warm-up: connections, imports
        walls: list[float] = []
        cpu: list[float] = []
        per: dict[str, tuple[float, int, int]] = {}
        for _ in range(repeats):
            c0 = time.process_time()
            wall, per = await _refresh(adapters)
            cpu.append(time.process_time() - c0)
            walls.append(wall)
            for name, (_, _, count) in per.items():
                if count != n:
                    raise AssertionError(f"{name} listed {count} of {n}")
        return {"wall": statistics.median(walls), "cpu": statistics.median(cpu), "per": per}
    finally:
        for a in adapters.values():
            await a.aclose()


async def _measure_agentbay(urls: dict[str, str], n: int, **kw: Any) -> dict[str, Any]:
    """A cold listing (fresh adapter: GetLabel for every session), then a warm one (cache hit)."""
    adapter = _adapters(urls, ("agentbay",), **kw)["agentbay"]
    try:
        out: dict[str, Any] = {}
        for phase in ("cold", "warm"):
            before = dict(adapter.requests_by_action)
            wall, requests, count = await _timed_list(adapter)
            if count != n:
                raise AssertionError(f"agentbay listed {count} of {n}")
            out[f"{phase}_wall"], out[f"{phase}_requests"] = wall, requests
            out[f"{phase}_by_action"] = {
                k: v - before.get(k, 0) for k, v in adapter.requests_by_action.items() if v - before.get(k, 0)
            }
        return out
    finally:
        await adapter.aclose()


def _available(names: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    import importlib

    ok, missing = [], []
    for name in names:
        try:
            importlib.import_module(f"opcockpit.adapters.providers.{name}")
            importlib.import_module(f"opcockpit.doubles.{name}")
            ok.append(name)
        except ImportError:
            missing.append(name)
    return tuple(ok), missing


# --------------------------------------------------------------------------- proposed fix


@contextlib.contextmanager
def _tcp_nodelay() -> Iterator[None]:
    """Measure (not apply) a proposed doubles/base.py change: TCP_NODELAY on accepted sockets.

    http.server writes the status line + headers and the body in separate send()s; with Nagle on,
    the body waits for the ACK of the headers, which the client delays (~40 ms on Linux). Patched
    here on the server class for the duration of one measurement only, then restored.
    """
    from opcockpit.doubles import base

    cls = base._QuietThreadingHTTPServer
    original = cls.get_request

    def get_request(self: Any) -> Any:
        sock, addr = original(self)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr

    cls.get_request = get_request  # type: ignore[method-assign]
    try:
        yield
    finally:
        cls.get_request = original  # type: ignore[method-assign]


# --------------------------------------------------------------------------- entry point


def _row(name: str, n: int, value: Any, unit: str, target: str, notes: str) -> dict[str, Any]:
    return {"name": name, "size": n, "value": value, "unit": unit, "target": target, "notes": notes}


def run(sizes: list[int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    names, missing = _available(THREE)
    missing_note = f"; not measured (adapter/double missing): {', '.join(missing)}" if missing else ""
    for n in sizes:
        if n > MAX_SIZE:
            rows.append(
                _row(
                    "providers: full refresh (skipped)",
                    n,
                    None,
                    "s",
                    f"<= {TARGET_REFRESH_S} s at 10k",
                    f"sizes above {MAX_SIZE} are not run: the E2B/Daytona doubles' listing is "
                    "O(n^2/page) today (see the 10k row's double handler time)",
                )
            )
            continue
        pages = math.ceil(n / PAGE)
        target = f"<= {TARGET_REFRESH_S * n / 10_000:g} s"
        repeats = REPEATS if n <= 2_000 else 1  # the 10k run takes minutes with today's doubles
        with _in_process(n) as (urls, doubles):
            clock = _HandlerClock(doubles)
            three = asyncio.run(_measure_three(urls, n, names, repeats))
            runs = repeats + (1 if repeats > 1 else 0)
            server = {k: round(v / runs, 2) for k, v in clock.totals.items() if k in names}
            clock.reset()
            ab = asyncio.run(_measure_agentbay(urls, n))
            ab_server = clock.totals["agentbay"]
            abn = asyncio.run(_measure_agentbay(urls, n, fetch_labels=False))
            with _tcp_nodelay():
                three_nd = asyncio.run(_measure_three(urls, n, names, 1)) if n <= 2_000 else None
                ab_nd = asyncio.run(_measure_agentbay(urls, n))
        with _out_of_process(n) as urls_oop:
            oop = asyncio.run(_measure_three(urls_oop, n, names, repeats))

        per = ", ".join(f"{k} {v[0]:.2f}s" for k, v in three["per"].items())
        rows.append(
            _row(
                f"providers: full refresh, {'+'.join(names)} listed concurrently",
                n,
                round(three["wall"], 3),
                "s",
                target,
                f"median of {repeats}; per provider {per}; process CPU {three['cpu']:.2f}s; "
                f"double handler time per refresh (s) {server}" + missing_note,
            )
        )
        rows.append(
            _row(
                "providers: full refresh, doubles in a separate process (client alone here)",
                n,
                round(oop["wall"], 3),
                "s",
                target,
                f"client CPU {oop['cpu']:.2f}s of {oop['wall']:.2f}s wall; per provider "
                + ", ".join(f"{k} {v[0]:.2f}s" for k, v in oop["per"].items()),
            )
        )
        if three_nd is not None:  # at 10k the doubles' own listing cost hides it; see AgentBay rows
            rows.append(
                _row(
                    "providers: full refresh, proposed TCP_NODELAY in doubles/base.py (bench-local patch)",
                    n,
                    round(three_nd["wall"], 3),
                    "s",
                    target,
                    "per provider " + ", ".join(f"{k} {v[0]:.2f}s" for k, v in three_nd["per"].items()),
                )
            )
        for name, (_, requests, _) in three["per"].items():
            expected = 1 if name == "docker" else pages
            kind = "Docker's list is unpaginated" if name == "docker" else f"{PAGE} per page"
            rows.append(
                _row(
                    f"providers: HTTP requests per refresh, {name}",
                    n,
                    requests,
                    "requests",
                    f"O(pages) = {expected}",
                    f"{kind}; LEON's own status probing makes {n} calls (one per lease)",
                )
            )
        rows.append(
            _row(
                "providers: AgentBay cold listing (ListSession + GetLabel per session)",
                n,
                round(ab["cold_wall"], 3),
                "s",
                "n/a: cost is the API's (list items carry no labels)",
                f"{ab['cold_requests']} requests {ab['cold_by_action']} at max_concurrency 8; "
                f"with proposed TCP_NODELAY {ab_nd['cold_wall']:.2f}s; "
                f"double handler time {ab_server:.2f}s (the rest is transport + client)",
            )
        )
        rows.append(
            _row(
                "providers: AgentBay warm refresh (labels cached per session)",
                n,
                round(ab["warm_wall"], 3),
                "s",
                target,
                f"{ab['warm_requests']} requests (pages only); with proposed TCP_NODELAY "
                f"{ab_nd['warm_wall']:.2f}s",
            )
        )
        rows.append(
            _row(
                "providers: HTTP requests per refresh, agentbay (cold / warm)",
                n,
                f"{ab['cold_requests']} / {ab['warm_requests']}",
                "requests",
                f"cold {pages} + {n} GetLabel; warm O(pages) = {pages}",
                f"fetch_labels=False: {abn['cold_requests']} requests in {abn['cold_wall']:.2f}s "
                "(no labels, so no orphan claims)",
            )
        )
    return rows


def main(argv: list[str]) -> None:
    if argv[:1] == ["--serve"]:
        _serve(int(argv[1]), argv[2])
        return
    sizes = [int(a) for a in argv] or [1_000, 10_000]
    for row in run(sizes):
        print(json.dumps(row))


if __name__ == "__main__":
    main(sys.argv[1:])
