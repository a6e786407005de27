"""Webhook receiver under load, on loopback (issue 13): a real `opcockpit serve` process (the CLI,
Uvicorn, the real event ledger in a temp dir) fed by an async sender in this process.

    python -m bench.bench_webhooks [--rate 500] [--seconds 60] [--crash-seconds 20] [--compare e4b892a|none]

Three scenarios, each on a fresh ledger:
- signed: `rate` signed E2B deliveries/s for `seconds`, every 10th sent twice (a provider retry);
  a 503 or a lost connection is retried like a provider would. Target: 0 lost, 0 duplicated in the
  ledger, p99 <= 50 ms (the client's wall time per request, and the server's own histogram).
- flood: the same rate of unsigned, wrongly signed, malformed, wrong-type, oversized and
  unknown-provider requests. Target: all rejected, none stored, server RSS flat.
- crash: signed deliveries at `rate`; the server is killed with SIGKILL a third of the way in and
  restarted on the same ledger; every delivery is retried until answered 2xx, then the provider
  retries *every* delivery once more. Target: each stored exactly once.

Side by side: the previous main (BASELINE, a `git worktree`, default e4b892a: the start of this
session) and HEAD, the same sender, only the server's PYTHONPATH differs (its origin checked).
`bench/run.py` runs the short form (10 s each).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BASELINE = os.environ.get("BENCH_BASELINE_WEBHOOKS", "e4b892a")
OPT_IN = True  # bench/run.py: only with --only bench_webhooks (minutes, and a second server process)
SECONDS = float(os.environ.get("BENCH_WEBHOOKS_SECONDS", "10"))  # bench/run.py's form; the issue: 60
SECRET = "bench-e2b-signing-secret-0123456789"
SECRET_ENV = "BENCH_E2B_WEBHOOK_SECRET"
MAX_BODY = 4096
P99_TARGET_MS = 50.0


def sign(body: bytes) -> str:
    """E2B v1 (what the E2B double sends): base64(SHA-256(secret + body)), no padding."""
    return base64.b64encode(hashlib.sha256(SECRET.encode() + body).digest()).decode().rstrip("=")


def delivery(i: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"version": "v1", "id": f"ev-{i}", "type": "sandbox.lifecycle.updated",
                       "sandboxId": f"sbx{i % 500}", "timestamp": datetime.now(UTC).isoformat(),
                       "eventData": None}).encode()  # fmt: skip
    return body, {"content-type": "application/json", "e2b-webhook-id": "wh", "e2b-signature-version": "v1",
                  "e2b-delivery-id": str(uuid.uuid4()), "e2b-signature": sign(body)}  # fmt: skip


def bad_request(i: int) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of the i-th flood request: six ways to be refused."""
    body, headers = delivery(10**9 + i)
    kind = i % 6
    if kind == 0:
        headers.pop("e2b-signature")  # unsigned
    elif kind == 1:
        headers["e2b-signature"] = sign(body + b" ")  # wrongly signed
    elif kind == 2:
        body = b'{"id": "x", "type": '  # malformed JSON, correctly signed
        headers["e2b-signature"] = sign(body)
    elif kind == 3:
        headers["content-type"] = "text/plain"
    elif kind == 4:
        body = json.dumps({"id": f"big-{i}", "pad": "a" * MAX_BODY}).encode()
        headers["e2b-signature"] = sign(body)
    else:
        return "/webhooks/nobody", body, headers
    return "/webhooks/e2b", body, headers


# --------------------------------------------------------------------------- the server process


class Server:
    """`python -m opcockpit.cli serve` from `tree` (PYTHONPATH), on `port`, ledger in `work`."""

    def __init__(self, tree: Path, work: Path, port: int) -> None:
        self.tree, self.work, self.port = tree, work, port
        self.url = f"http://127.0.0.1:{port}"
        self.ledger = work / "ledger.db"
        self.proc: subprocess.Popen[bytes] | None = None
        db = work / "sandbox.db"
        if not db.exists():
            subprocess.run([sys.executable, "-c", "import sqlite3,sys; sqlite3.connect(sys.argv[1]).close()",
                            str(db)], check=True)  # fmt: skip
        (work / "cockpit.toml").write_text(
            f'[sources]\nsandbox_db = "{db}"\n\n[serve]\nqueue_max = 20000\n\n'
            f'[webhooks.e2b]\nkind = "e2b"\nsecret_env = "{SECRET_ENV}"\nrate_per_s = 100000\n'
            f"burst = 100000\nmax_body_bytes = {MAX_BODY}\n"
        )

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPCOCKPIT_", "LEON_"))}
        env.update(PYTHONPATH=str(self.tree), HOME=str(self.work), XDG_CONFIG_HOME=str(self.work / "cfg"))
        env[SECRET_ENV] = SECRET
        return env

    def origin(self) -> Path:
        code = "import opcockpit; print(opcockpit.__file__)"
        out = subprocess.run([sys.executable, "-c", code], env=self.env(), cwd=self.work, capture_output=True,
                             text=True, check=True, timeout=60).stdout.strip()  # fmt: skip
        return Path(out).resolve()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opcockpit.cli", "serve", "--config", str(self.work / "cockpit.toml"),
             "--listen", f"127.0.0.1:{self.port}", "--ledger", str(self.ledger)],
            env=self.env(), cwd=self.work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                tail = self.proc.stderr.read().decode()[-400:] if self.proc.stderr else ""
                raise RuntimeError(f"serve exited: {tail}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not come up in 60 s")
            time.sleep(0.05)

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_s(self) -> float:
        """User + system CPU seconds the server process has used."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: uvicorn drains the queue to the ledger, then exits
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    def stored_keys(self) -> list[str]:
        """Delivery keys of the ledger's provider.event rows, read from the file (any version)."""
        conn = sqlite3.connect(self.ledger, timeout=30)
        try:
            rows = conn.execute("SELECT body FROM events WHERE type = 'provider.event'").fetchall()
        except sqlite3.OperationalError:
            rows = []
        finally:
            conn.close()
        return [json.loads(r[0])["data"]["delivery_key"] for r in rows]


def server_p99_ms(metrics: str) -> float | None:
    """The upper bound of the histogram bucket holding the 99th percentile of handling time."""
    buckets: list[tuple[float, int]] = []
    for line in metrics.splitlines():
        if line.startswith("opcockpit_webhooks_request_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), int(float(line.rsplit(" ", 1)[1]))))
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    return next(le for le, n in buckets if n >= 0.99 * total) * 1000


# --------------------------------------------------------------------------- the sender


async def paced(rate: float, total: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Start `one(i)` for i < total at `rate` per second; returns the seconds it took."""
    start = time.perf_counter()
    tasks = []
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return time.perf_counter() - start


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: httpx costs ~1-2 ms of CPU per
    request, which at 500/s on a small machine would measure the sender, not the receiver."""

    def __init__(self, base: str, size: int = 32) -> None:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)
        self._idle: asyncio.LifoQueue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.LifoQueue()
        self._sem = asyncio.Semaphore(size)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """The response status (raises OSError / asyncio.IncompleteReadError without one)."""
        async with self._sem:
            try:
                reader, writer = self._idle.get_nowait()
            except asyncio.QueueEmpty:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            try:
                head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                writer.write(f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-length: {len(body)}\r\n"
                             f"{head}\r\n".encode() + body)  # fmt: skip
                status_line = await reader.readuntil(b"\r\n")
                length = 0
                while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
            except BaseException:
                writer.close()
                raise
            self._idle.put_nowait((reader, writer))
            return int(status_line.split()[1])

    async def aclose(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait()[1].close()


async def send_until_ok(client: RawClient, path: str, body: bytes, headers: dict[str, str],
                        lat: list[float], statuses: Counter[int]) -> int:  # fmt: skip
    """POST like a provider: a 5xx or no answer is retried (backing off) until 2xx or 200 tries.
    Returns the first attempt's status (0: no answer)."""
    first = -1
    for attempt in range(200):
        t0 = time.perf_counter()
        try:
            status = await client.post(path, body, headers)
            lat.append(time.perf_counter() - t0)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status = 0
        statuses[status] += 1
        first = status if first < 0 else first
        if 200 <= status < 300 or 400 <= status < 500:
            return first
        await asyncio.sleep(min(0.05 * (attempt + 1), 0.5))
    return first


def p(lat: list[float], q: float) -> float:
    s = sorted(lat)
    return s[min(len(s) - 1, int(len(s) * q))] * 1000 if s else 0.0


# --------------------------------------------------------------------------- scenarios


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def signed(tree: Path, rate: float, seconds: float, dup_every: int = 10) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(tree, Path(tmp), _port())
        srv.start()
        total, lat, statuses, refused = int(rate * seconds), [], Counter[int](), 0

        async def main() -> float:
            client = RawClient(srv.url)

            async def one(i: int) -> None:
                nonlocal refused
                body, headers = delivery(i)
                for _ in range(2 if dup_every and i % dup_every == 0 else 1):
                    if await send_until_ok(client, "/webhooks/e2b", body, headers, lat, statuses) >= 400:
                        refused += 1

            try:
                return await paced(rate, total, one)
            finally:
                await client.aclose()

        try:
            cpu0 = srv.cpu_s()
            elapsed = asyncio.run(main())
            cpu = srv.cpu_s() - cpu0
            server_p99 = server_p99_ms(srv.metrics())
        finally:
            srv.stop()
        keys = srv.stored_keys()
    return {"sent": total, "elapsed_s": elapsed, "p50_ms": p(lat, 0.5), "p99_ms": p(lat, 0.99),
            "server_p99_ms": server_p99, "statuses": dict(statuses), "refused": refused,
            "server_cpu_ms_per_request": cpu * 1000 / max(1, sum(statuses.values())),
            "lost": total - len(set(keys) & {f"ev-{i}" for i in range(total)}),
            "duplicated": len(keys) - len(set(keys))}  # fmt: skip


def flood(tree: Path, rate: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(tree, Path(tmp), _port())
        srv.start()
        total, statuses, rss = int(rate * seconds), Counter[int](), []

        async def main() -> float:
            client = RawClient(srv.url)

            async def sample() -> None:
                while True:
                    rss.append(srv.rss_mb())
                    await asyncio.sleep(1.0)

            sampler = asyncio.create_task(sample())

            async def one(i: int) -> None:
                path, body, headers = bad_request(i)
                try:
                    statuses[await client.post(path, body, headers)] += 1
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    statuses[0] += 1

            try:
                return await paced(rate, total, one)
            finally:
                sampler.cancel()
                await client.aclose()

        try:
            elapsed = asyncio.run(main())
            rss.append(srv.rss_mb())
        finally:
            srv.stop()
        stored = len(srv.stored_keys())
    accepted = sum(n for s, n in statuses.items() if 200 <= s < 300)  # 0: no answer (not accepted)
    settled = rss[len(rss) // 4 :] or rss  # after the first quarter: warm-up allocations are not growth
    return {"sent": total, "elapsed_s": elapsed, "statuses": dict(statuses), "accepted": accepted,
            "stored": stored, "rss_start_mb": rss[0], "rss_end_mb": rss[-1],
            "rss_growth_mb": settled[-1] - settled[0], "rss_max_mb": max(rss)}  # fmt: skip


def crash(tree: Path, rate: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(tree, Path(tmp), _port())
        srv.start()
        total, lat, statuses = int(rate * seconds), [], Counter[int]()
        first: dict[int, int] = {}
        url = "/webhooks/e2b"
        bodies = [delivery(i) for i in range(total)]

        async def main() -> tuple[float, list[int]]:
            client = RawClient(srv.url)

            async def killer() -> None:
                await asyncio.sleep(seconds / 3)
                await asyncio.to_thread(srv.kill9)
                await asyncio.sleep(0.5)
                await asyncio.to_thread(srv.start)  # same ledger, same port

            restart = asyncio.create_task(killer())

            async def one(i: int) -> None:
                first[i] = await send_until_ok(client, url, *bodies[i], lat, statuses)

            elapsed = await paced(rate, total, one)
            await restart
            # The provider retries every delivery once more (fresh delivery ids, same events).
            again: list[int] = []

            async def retry(i: int) -> None:
                body, headers = bodies[i]
                again.append(await send_until_ok(client, url, body, {**headers, "e2b-delivery-id": "r"},
                                                 [], Counter()))  # fmt: skip

            try:
                await paced(rate * 2, total, retry)
            finally:
                await client.aclose()
            return elapsed, again

        try:
            elapsed, again = asyncio.run(main())
        finally:
            srv.stop()
        keys = srv.stored_keys()
    unanswered = sum(1 for s in first.values() if not 200 <= s < 300)
    return {"sent": total, "elapsed_s": elapsed, "first_not_2xx": unanswered,
            "retry_all_not_2xx": sum(1 for s in again if not 200 <= s < 300), "stored": len(keys),
            "lost": total - len(set(keys)), "duplicated": len(keys) - len(set(keys)),
            "statuses": dict(statuses)}  # fmt: skip


# --------------------------------------------------------------------------- rows


def measure(tree: Path, rate: float, seconds: float, crash_seconds: float) -> dict[str, Any]:
    origin = Server(tree, Path(tempfile.mkdtemp()), 0).origin()
    if not origin.is_relative_to(tree.resolve()):
        raise RuntimeError(f"opcockpit imports from {origin}, not from {tree}")
    return {"signed": signed(tree, rate, seconds), "flood": flood(tree, rate, seconds),
            "crash": crash(tree, rate, crash_seconds), "rate": rate, "seconds": seconds}  # fmt: skip


def rows(r: dict[str, Any], label: str) -> list[dict[str, Any]]:
    s, f, c, rate = r["signed"], r["flood"], r["crash"], r["rate"]
    row = {"unit": "ms", "size": s["sent"]}
    return [
        {**row, "name": f"webhooks signed {rate:g}/s x {r['seconds']:g}s: client p99, {label}",
         "value": round(s["p99_ms"], 1), "target": P99_TARGET_MS,
         "notes": f"server p99 <= {s['server_p99_ms']} ms (histogram), CPU "
                  f"{s['server_cpu_ms_per_request']:.2f} ms/request; p50 {s['p50_ms']:.1f} ms; sent in "
                  f"{s['elapsed_s']:.1f}s; lost {s['lost']}, duplicated {s['duplicated']}, refused "
                  f"{s['refused']}; statuses {s['statuses']}"},
        {**row, "name": f"webhooks flood {rate:g}/s x {r['seconds']:g}s (bad requests): stored, {label}",
         "unit": "rows", "size": f["sent"], "value": f["stored"], "target": 0,
         "notes": f"answered 2xx {f['accepted']}; statuses {f['statuses']} (0: connection closed by the "
                  f"server after a refusal, e.g. 413 before the body); server RSS "
                  f"{f['rss_start_mb']:.0f} -> {f['rss_end_mb']:.0f} MB (growth after warm-up "
                  f"{f['rss_growth_mb']:+.1f} MB, max {f['rss_max_mb']:.0f})"},
        {**row, "name": f"webhooks kill -9 mid-stream, restart, all retried: duplicated, {label}",
         "unit": "rows", "size": c["sent"], "value": c["duplicated"], "target": 0,
         "notes": f"lost {c['lost']}; stored {c['stored']} of {c['sent']}; {c['first_not_2xx']} first "
                  f"attempts unanswered; retry-all not 2xx {c['retry_all_not_2xx']}"},
    ]  # fmt: skip


def compare(rate: float, seconds: float, crash_seconds: float, baseline: str | None) -> list[dict[str, Any]]:
    from bench.bench_steady import git, worktree

    out: list[dict[str, Any]] = []
    if baseline:
        with worktree(baseline) as prev:
            out += rows(measure(prev, rate, seconds, crash_seconds),
                        f"previous main {git('rev-parse', '--short', baseline)}")  # fmt: skip
    out += rows(measure(ROOT, rate, seconds, crash_seconds), f"HEAD {git('rev-parse', '--short', 'HEAD')}")
    return out


def run(sizes: list[int]) -> list[dict[str, Any]]:
    """bench/run.py hook (`--only bench_webhooks`): $BENCH_WEBHOOKS_SECONDS per scenario (default
    10; 60 for the issue's run; the crash run at most 20), previous main beside HEAD."""
    del sizes
    return compare(500, SECONDS, min(SECONDS, 20), BASELINE)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=SECONDS, help="signed and flood runs (the issue: 60)")
    ap.add_argument("--crash-seconds", type=float, default=10)
    ap.add_argument("--compare", default=BASELINE, help="previous main commit ('none': HEAD only)")
    a = ap.parse_args()
    load = os.getloadavg()
    for out in compare(a.rate, a.seconds, a.crash_seconds, None if a.compare in ("", "none") else a.compare):
        print(f"{out['name']}: {out['value']} {out['unit']} (target {out['target']}) {out['notes']}")
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; after: "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))  # fmt: skip
