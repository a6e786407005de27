"""Team ack (issue 12): an ack made by a second cockpit shows in the first one's Alerts tab <= 2 s.

Two real cockpit processes on one ledger: the TUI (`opcockpit --config CFG`, in a pty at 120x40
as bench_steady runs it, on the Alerts tab) and the CLI `opcockpit --config CFG ack ID --who bK`
(another process, another connection: what a team mate's cockpit or cron does). `ack` gets
`--ledger` too: today it ignores the config's `[ledger] url` (cli/alerts_cli.py opens
args.ledger / $OPCOCKPIT_LEDGER only). The fleet is
bench/fleet_server_pg.py's (10k generated leases on a private PostgreSQL source, doubles, drift);
the ledger is first a PostgreSQL database on that server (LISTEN/NOTIFY), then a SQLite file
(data_version), the same TUI code on the same fleet.

What is timed, per ack: from the `ack` process's return (the ack is committed) to the first pty
output chunk holding the text the Alerts tab draws for it. The ack targets the top row of the
Alerts tab (the same grouping and order as tui/widgets/alert_rows.py): a lone alert is re-acked
with a new operator each time (its cell reads "✓ack bK"); the lead group's next member is acked
when the top row is a group (it reads "✓ack K/n"). Median and max of N (default 7), plus the
ack command's own wall time (interpreter start-up included). The pty stream is searched as bytes:
Textual writes a cell's text in one run, so no terminal emulator is needed.

Run: `python -m bench.bench_team_ack [--leases 10000] [--acks 7]` or
`python -m bench.run --only bench_team_ack` (OPT_IN: ~3 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_steady import tree_env
from bench.pty_cockpit import start_in_pty, stop
from bench.steady_pg import start_fleet_pg

ROOT = Path(__file__).resolve().parent.parent
OPT_IN = True
SIZES_CAP = 10_000
TARGET_S = 2.0
ACKS = 7
SEEN_TIMEOUT_S = 15.0
START_TIMEOUT_S = 180.0


class _Screen:
    """The pty's output as (arrival time, offset) chunks; searchable for text drawn after a point."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buf = fd, bytearray()
        self.marks: list[tuple[float, int]] = []  # (time a chunk arrived, its end offset)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 1 << 16)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.buf += data
                self.marks.append((time.perf_counter(), len(self.buf)))

    def offset(self) -> int:
        with self.lock:
            return len(self.buf)

    def seen_at(self, probe: bytes | re.Pattern[bytes], start: int) -> float | None:
        """When the first chunk holding `probe` (bytes, or a pattern; wholly after `start`) arrived."""
        with self.lock:
            if isinstance(probe, bytes):
                at = self.buf.find(probe, start)
                end = at + len(probe)
            else:
                m = probe.search(self.buf, start)
                at, end = (m.start(), m.end()) if m else (-1, 0)
            if at < 0:
                return None
            return next(t for t, off in self.marks if off >= end)

    def wait(self, probe: bytes | re.Pattern[bytes], start: int, timeout: float) -> float | None:
        """seen_at(probe, start), polled for up to `timeout` seconds (None: never drawn)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.seen_at(probe, start)
            if seen is not None or time.monotonic() >= deadline:
                return seen
            time.sleep(0.005)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.fd)


def _top_row(ledger: str, now: datetime) -> tuple[list[int], bool]:
    """The Alerts tab's top row: (its alert ids, lone alert?) as tui/widgets/alert_rows sorts it."""
    from opcockpit.adapters.ledger.alerts import AlertStore
    from opcockpit.tui.widgets.alert_rows import _place, _sev, group_alerts

    store = AlertStore.open(ledger)
    try:
        groups = group_alerts(store.active(), now)
    finally:
        store.close()
    if not groups:
        return [], True
    top = min(groups, key=lambda g: _place(_sev(g.members[0], now)[1], g.key))
    return [a.id for a in top.members], len(top.members) == 1


def _ledger_config(cfg: Path, ledger: str, name: str) -> Path:
    """The fleet's config with its `[ledger]` table replaced by `ledger`."""
    lines, skip = [], False
    for line in cfg.read_text().splitlines():
        if line.startswith("["):
            skip = line.strip() == "[ledger]"
        if not skip:
            lines.append(line)
    out = cfg.with_name(name)
    out.write_text("\n".join([*lines, "", "[ledger]", f"url = {json.dumps(ledger)}"]) + "\n")
    os.chmod(out, 0o600)
    return out


def measure(label: str, cfg: Path, ledger: str, acks: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="opcockpit-team-ack-"))
    env = {**tree_env(ROOT, tmp), "USER": "bench"}
    tui, primary = start_in_pty(["--config", str(cfg)], env, tmp)
    screen = _Screen(primary)
    lags: list[float] = []
    from_start: list[float] = []  # from the ack command's start: an upper bound incl. its start-up
    ack_walls: list[float] = []
    missed = 0
    try:
        t0 = time.monotonic()
        while not _top_row(ledger, datetime.now(UTC))[0]:  # the TUI's first evaluation wrote them
            if tui.poll() is not None or time.monotonic() - t0 > START_TIMEOUT_S:
                tail = bytes(screen.buf[-400:]).decode("utf-8", "replace")
                raise RuntimeError(f"{label}: no alerts in the ledger (rc {tui.poll()}): {tail!r}")
            time.sleep(1.0)
        screen.write(b"4")  # the Alerts tab
        time.sleep(3.0)
        for k in range(1, acks + 1):
            ids, lone = _top_row(ledger, datetime.now(UTC))
            target = ids[0] if lone else ids[(k - 1) % len(ids)]
            text = f"✓ack b{k}" if lone else f"✓ack {min(k, len(ids))}/"
            start = screen.offset()
            a0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "opcockpit.cli", "--config", str(cfg), "ack", str(target),
                 "--who", f"b{k}@bench", "--ledger", ledger],
                env=env, cwd=tmp, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            done = time.perf_counter()
            if proc.returncode != 0:
                raise RuntimeError(f"{label}: ack exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
            ack_walls.append(done - a0)
            seen = screen.wait(text.encode(), start, SEEN_TIMEOUT_S)
            if seen is None:
                missed += 1
            else:
                lags.append(max(0.0, seen - done))
                from_start.append(seen - a0)
            print(json.dumps({"run": label, "ack": k, "lone": lone, "lag_s": lags[-1] if seen else None}),
                  file=sys.stderr, flush=True)  # fmt: skip
            time.sleep(1.5)
    finally:
        stop(tui)
        screen.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "label": label,
        "acks": acks,
        "missed": missed,
        "median_s": round(statistics.median(lags), 3) if lags else None,
        "max_s": round(max(lags), 3) if lags else None,
        "ack_cmd_median_s": round(statistics.median(ack_walls), 3),
        "from_start_median_s": round(statistics.median(from_start), 3) if from_start else None,
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def compare(leases: int, acks: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="opcockpit-team-ack-fleet-") as d:
        tmp = Path(d)
        fleet, cfg, side = start_fleet_pg(tmp, leases, 2.0)
        try:
            pg_cfg = _ledger_config(cfg, side["ledger_url"], "pg-ledger.toml")
            lite = str(tmp / "team-ledger.db")
            lite_cfg = _ledger_config(cfg, lite, "sqlite-ledger.toml")
            return [
                measure("PostgreSQL ledger", pg_cfg, side["ledger_url"], acks),
                measure("SQLite ledger", lite_cfg, lite, acks),
            ]
        finally:
            fleet.terminate()
            try:
                fleet.wait(30)
            except subprocess.TimeoutExpired:
                fleet.kill()


def rows(results: list[dict[str, Any]], leases: int) -> list[dict[str, Any]]:
    return [
        {
            "name": f"team ack: `opcockpit ack` return -> ✓ack on a running TUI, {r['label']}",
            "size": leases,
            "value": r["median_s"],
            "unit": "s",
            "target": TARGET_S,
            "notes": f"median of {r['acks'] - r['missed']} (missed {r['missed']}); max {r['max_s']} s; "
            f"ack command {r['ack_cmd_median_s']} s wall (from its start to ✓ack: median "
            f"{r['from_start_median_s']} s); 0 = drawn before the ack process had exited; "
            "PostgreSQL source, 2 s refresh; "
            f"load average {' '.join(map(str, r['load']))}",
        }
        for r in results
    ]


def run(sizes: list[int]) -> list[dict[str, Any]]:
    """bench/run.py hook (OPT_IN): at the largest requested size <= SIZES_CAP."""
    n = max([s for s in sizes if s <= SIZES_CAP] or [SIZES_CAP])
    return rows(compare(n, ACKS), n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument("--acks", type=int, default=ACKS)
    args = ap.parse_args(argv)
    for r in rows(compare(args.leases, args.acks), args.leases):
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
