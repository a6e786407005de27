"""Where the live cockpit's RSS goes: the real TUI on a demo fleet, previous main beside HEAD.

bench_steady says how much RSS the cockpit holds; this says what it is, so a change can be aimed
at the right part (issue 10's memory target: <= 150 MB at 10k leases). Same set-up as bench_steady
(one fleet from bench/fleet_server.py in its own process, each tree's cockpit in a real pty at
120x40, the tree checked on PYTHONPATH), but the cockpit is started through a small probe
(`python -c PROBE`, then opcockpit.cli.main.main as the console script would) whose daemon thread
waits `--seconds` and writes, from inside the process:

- RSS and anonymous memory (/proc/self/smaps_rollup);
- Python's small-object allocator (sys._debugmallocstats): arenas held, bytes in live blocks, free
  blocks inside used pools and empty pools (the arenas stay while any block in them lives);
- glibc's heap (mallinfo2): bytes held from the OS, in use and free;
- SQLite's own allocations (sqlite3_memory_used: page caches, statements; inside glibc's heap);
- the number of modules imported;
- with `--trace FRAMES`: tracemalloc from the first import on (PYTHONTRACEMALLOC; slow, RSS ~1.5x),
  the live Python blocks' top sites by file, by line and by stack, in `--out`'s JSON.

    python -m bench.bench_memory --leases 10000 --seconds 120 --compare ec3fb80
    python -m bench.bench_memory --clean --compare none      # HEAD's commit alone
    python -m bench.bench_memory --compare none --trace 8 --out /tmp/trace.json   # what holds it

Not in the default `python -m bench.run` (OPT_IN: minutes per tree).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/bench_memory.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_soak import start_fleet
from bench.bench_steady import (
    BASELINE,
    ROOT,
    _load,
    _Terminal,
    checked_tree_env,
    git,
    worktree,
)
from bench.pty_cockpit import start_in_pty, stop

SIZES_CAP = 10_000
OPT_IN = True
SECONDS = 120.0
RSS_TARGET_MB = 150.0

# Runs inside the cockpit: a daemon thread writes one JSON object to $BENCH_MEMORY_OUT after
# $BENCH_MEMORY_AT seconds. Kept to the standard library; glibc parts are skipped where absent.
PROBE = r"""
import ctypes, json, os, re, sys, threading, time

def _probe():
    late = float(os.environ.get("BENCH_MEMORY_TRACE_FROM") or 0)
    if late:  # --trace-from: only what is allocated after the warm-up (and still alive)
        import tracemalloc
        time.sleep(late)
        tracemalloc.start(int(os.environ.get("BENCH_MEMORY_TRACE_FRAMES") or 8))
    time.sleep(float(os.environ["BENCH_MEMORY_AT"]) - late)
    out = os.environ["BENCH_MEMORY_OUT"]
    rec = {"modules": len(sys.modules), "threads": threading.active_count()}
    with open("/proc/self/smaps_rollup") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 3 and parts[0] in ("Rss:", "Anonymous:"):
                rec[parts[0].rstrip(":").lower() + "_mb"] = round(int(parts[1]) / 1024, 1)
    try:
        class MallInfo2(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                        "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        m = libc.mallinfo2()
        mb = 1 << 20
        rec.update(glibc_heap_mb=round((m.arena + m.hblkhd) / mb, 1),
                   glibc_in_use_mb=round((m.uordblks + m.hblkhd) / mb, 1),
                   glibc_free_mb=round(m.fordblks / mb, 1))
    except (OSError, AttributeError):
        pass
    try:  # SQLite's own allocations (page caches, statements): part of the glibc heap
        lib = next(l.split()[-1] for l in open("/proc/self/maps") if "libsqlite3" in l)
        sq = ctypes.CDLL(lib)
        sq.sqlite3_memory_used.restype = sq.sqlite3_memory_highwater.restype = ctypes.c_int64
        rec.update(sqlite_mb=round(sq.sqlite3_memory_used() / (1 << 20), 1),
                   sqlite_highwater_mb=round(sq.sqlite3_memory_highwater(0) / (1 << 20), 1))
    except (OSError, AttributeError, StopIteration):
        pass
    stats = out + ".pymalloc"
    saved, fd = os.dup(2), os.open(stats, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)  # _debugmallocstats writes to C stderr (the pty): borrow fd 2 for a moment
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(fd)
        os.close(saved)
    rec["pymalloc_text"] = open(stats).read()
    os.unlink(stats)
    import tracemalloc
    if tracemalloc.is_tracing():  # --trace: where the live Python blocks were allocated
        # No filter_traces and no 'filename' grouping: each is another pass over millions of
        # traces (~20 s per million); the file totals are summed from the line statistics.
        snap = tracemalloc.take_snapshot()
        depth = int(os.environ.get("BENCH_MEMORY_TRACE_TOP", "40"))
        lines = snap.statistics("lineno")
        files = {}
        for st in lines:
            key = st.traceback[0].filename
            kb, n = files.get(key, (0, 0))
            files[key] = (kb + st.size, n + st.count)
        rec["trace_total_mb"] = round(sum(st.size for st in lines) / (1 << 20), 1)
        rec["trace_by_file"] = sorted(([f, round(b / 1024), n] for f, (b, n) in files.items()),
                                      key=lambda r: -r[1])[:depth]
        rec["trace_by_line"] = [[str(st.traceback[0]), round(st.size / 1024), st.count]
                                for st in lines[:depth]]
        rec["trace_by_stack"] = [[[str(f) for f in st.traceback], round(st.size / 1024), st.count]
                                 for st in snap.statistics("traceback")[:depth]]
    with open(out + ".tmp", "w") as fh:
        json.dump(rec, fh)
    os.replace(out + ".tmp", out)

threading.Thread(target=_probe, daemon=True).start()
from opcockpit.cli.main import main
sys.exit(main())
"""


def pymalloc(text: str) -> dict[str, Any]:
    """The totals of sys._debugmallocstats' report, in MB."""

    def num(pattern: str) -> float:
        m = re.search(pattern, text)
        return round(int(m.group(1).replace(",", "")) / (1 << 20), 1) if m else float("nan")

    # Free blocks per size class (in used pools): which sizes the holes are, e.g. the 80-byte
    # class of ids and timestamps or the class of one record type.
    classes = re.findall(r"^\s*\d+\s+(\d+)\s+\d+\s+\d+\s+(\d+)\s*$", text, re.M)
    free_by = sorted(((int(size) * int(avail), int(size)) for size, avail in classes), reverse=True)
    return {
        "pymalloc_free_by_size_kb": [[size, round(b / 1024)] for b, size in free_by[:8]],
        "pymalloc_arenas_mb": num(r"arenas \* \d+ bytes/arena\s*=\s*([\d,]+)"),
        "pymalloc_live_mb": num(r"# bytes in allocated blocks\s*=\s*([\d,]+)"),
        "pymalloc_free_blocks_mb": num(r"# bytes in available blocks\s*=\s*([\d,]+)"),
        "pymalloc_empty_pools_mb": num(r"unused pools \* \d+ bytes\s*=\s*([\d,]+)"),
    }


def measure(
    label: str, pythonpath: Path, cfg: Path, *, seconds: float, trace: int = 0, trace_from: float = 0.0
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"opcockpit-memory-{label.split()[0]}-"))
    out = tmp / "probe.json"
    env, origin = checked_tree_env(label, pythonpath, tmp)
    env.update(BENCH_MEMORY_OUT=str(out), BENCH_MEMORY_AT=str(seconds))
    if trace and trace_from:  # tracemalloc from `trace_from` s on: what the steady state adds
        env.update(BENCH_MEMORY_TRACE_FROM=str(trace_from), BENCH_MEMORY_TRACE_FRAMES=str(trace))
    elif trace:  # tracemalloc from the first import on, `trace` frames per allocation (slow, ~2x RSS)
        env["PYTHONTRACEMALLOC"] = str(trace)
    proc, primary = start_in_pty(["--config", str(cfg)], env, tmp, program=("-c", PROBE))
    term = _Terminal(primary)
    loads: list[float] = []
    grace = 900 if trace else 120  # grouping millions of traces takes minutes
    t0 = time.monotonic()
    try:
        while not out.exists():
            if proc.poll() is not None:
                screen = term.tail.decode("utf-8", "replace")[-600:]
                raise RuntimeError(f"{label}: cockpit exited early (rc {proc.poll()}): {screen!r}")
            if time.monotonic() - t0 > seconds + grace:
                raise RuntimeError(f"{label}: no probe output after {seconds + grace:.0f} s")
            loads.append(_load()[0])
            time.sleep(1.0)
        rec = json.loads(out.read_text())
    finally:
        stop(proc)
        term.close()
        with contextlib.suppress(OSError):
            out.unlink()
    rec.update(pymalloc(rec.pop("pymalloc_text")))
    return {
        "label": label,
        "imported": str(origin),
        "after_s": seconds,
        "load1_mean": round(sum(loads) / max(len(loads), 1), 2),
        **rec,
    }


def compare(
    *,
    leases: int,
    seconds: float,
    baseline: str | None,
    clean: bool,
    refresh: float = 2.0,
    trace: int = 0,
    trace_from: float = 0.0,
) -> dict[str, Any]:
    head = git("rev-parse", "--short", "HEAD")
    with contextlib.ExitStack() as stack:
        trees: list[tuple[str, Path]] = [
            (f"previous main {git('rev-parse', '--short', b)}", stack.enter_context(worktree(b)))
            for b in [b.strip() for b in (baseline or "").split(",") if b.strip()]
        ]
        if clean:
            trees.append((f"HEAD {head} (committed)", stack.enter_context(worktree(head))))
        else:
            trees.append((f"HEAD {head}", ROOT))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opcockpit-memory-fleet-")))
        fleet, cfg = start_fleet(tmp, leases, refresh)
        try:
            runs = [
                measure(label, path, cfg, seconds=seconds, trace=trace, trace_from=trace_from)
                for label, path in trees
            ]
        finally:
            fleet.terminate()
            try:
                fleet.wait(15)
            except subprocess.TimeoutExpired:
                fleet.kill()
    return {"leases": leases, "seconds": seconds, "refresh_s": refresh, "runs": runs}


FIELDS = (
    ("rss_mb", "RSS", RSS_TARGET_MB),
    ("pymalloc_arenas_mb", "pymalloc arenas held", None),
    ("pymalloc_live_mb", "pymalloc live blocks", None),
    ("glibc_heap_mb", "glibc heap held", None),
    ("glibc_free_mb", "glibc heap free", None),
    ("sqlite_mb", "SQLite's own allocations", None),
)


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in result["runs"]:
        notes = (
            f"{r['label']}; {r['after_s']:g} s after start; load1 mean {r['load1_mean']}; pymalloc free "
            f"blocks {r['pymalloc_free_blocks_mb']} MB + empty pools {r['pymalloc_empty_pools_mb']} MB; "
            f"{r['modules']} modules, {r['threads']} threads"
        )
        for key, name, target in FIELDS:
            if key in r:
                out.append({"name": f"tui memory: {name}, {r['label']}", "size": result["leases"],
                            "value": r[key], "unit": "MB", "target": target, "notes": notes})  # fmt: skip
    return out


def run(sizes: list[int]) -> list[dict[str, Any]]:
    """bench/run.py hook (OPT_IN): one comparison at the largest requested size <= SIZES_CAP."""
    return rows(compare(leases=max(sizes), seconds=SECONDS, baseline=BASELINE or None, clean=False))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=SECONDS, help="probe this long after start")
    ap.add_argument("--compare", default=BASELINE, help="commit(s) beside HEAD ('none': HEAD only)")
    ap.add_argument("--clean", action="store_true", help="HEAD's commit in a worktree, not this checkout")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument(
        "--trace", type=int, default=0, metavar="FRAMES",
        help="tracemalloc from start with FRAMES frames; top allocations by file/line/stack in --out",
    )  # fmt: skip
    ap.add_argument(
        "--trace-from", type=float, default=0.0, metavar="SECONDS",
        help="with --trace: start tracing this long after start (what the steady state adds and keeps)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    baseline = None if args.compare in ("", "none") else args.compare
    result = compare(
        leases=args.leases, seconds=args.seconds, baseline=baseline, clean=args.clean, trace=args.trace,
        trace_from=args.trace_from,
    )  # fmt: skip
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    for r in result["runs"]:
        print(
            f"{r['label']:28} rss {r['rss_mb']:6.1f}  pymalloc arenas {r['pymalloc_arenas_mb']:6.1f} "
            f"(live {r['pymalloc_live_mb']}, free blocks {r['pymalloc_free_blocks_mb']}, empty pools "
            f"{r['pymalloc_empty_pools_mb']})  glibc heap {r.get('glibc_heap_mb')} (free "
            f"{r.get('glibc_free_mb')})  sqlite {r.get('sqlite_mb')} (peak {r.get('sqlite_highwater_mb')})  "
            f"modules {r['modules']}  load1 {r['load1_mean']}  free KB by block size "
            f"{r['pymalloc_free_by_size_kb'][:4]}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
