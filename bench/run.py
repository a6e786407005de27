"""Run the benchmarks and (re)write docs/benchmarks.md.

    python -m bench.run [--sizes 1000,10000,50000] [--only NAME[,NAME]] [--no-write]

Discovers bench/bench_*.py, calls each module's `run(sizes) -> list[dict]`. A row is
`{name, size, value, unit, target, notes}` (`better: "higher"` flips the target comparison);
a module may set `SIZES_CAP = <int>` to skip requested sizes above what it can run in reasonable
time (it is then called with the sizes at or below the cap), and `OPT_IN = True` to run only when
named in `--only` (minutes-long end-to-end runs such as bench_steady);
rows of another shape are shown with their keys in the notes. Results are kept per module in
bench/results.json, so `--only` refreshes one module's section without dropping the others; each
section names the machine and date it was measured on.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"
STANDARD = ("name", "size", "value", "unit", "target", "notes", "better")


# --------------------------------------------------------------------------- machine


def _proc_field(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def machine() -> dict[str, Any]:
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=5, check=False).stdout.strip() or None  # fmt: skip
    except OSError:
        commit = None
    return {
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "ram_gb": round(int(mem_kb.split()[0]) / 1024 / 1024, 1) if mem_kb else None,
        "python": platform.python_version(),
        "os": platform.platform(),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_avg_at_start": [round(x, 2) for x in load] if load else None,
        "commit": commit,
    }


def describe(m: dict[str, Any]) -> str:
    parts = [f"{m.get('cpu')}", f"{m.get('cores')} cores", f"{m.get('ram_gb')} GB RAM",
             f"Python {m.get('python')}", f"{m.get('os')}"]  # fmt: skip
    text = ", ".join(parts) + f"; measured {m.get('date')}"
    if m.get("commit"):
        text += f" at {m['commit']}"
    if m.get("load_avg_at_start"):
        text += f"; load average at start {m['load_avg_at_start']}"
    if m.get("load_avg_at_end"):
        text += f", at end {m['load_avg_at_end']}"
    return text


def _load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# --------------------------------------------------------------------------- running


def discover(only: list[str] | None) -> list[str]:
    names = sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))
    if only:
        wanted = {o if o.startswith("bench_") else f"bench_{o}" for o in only}
        unknown = wanted - set(names)
        if unknown:
            raise SystemExit(f"bench.run: no such benchmark module(s): {', '.join(sorted(unknown))} "
                             f"(have: {', '.join(names)})")  # fmt: skip
        names = [n for n in names if n in wanted]
    return names


def normalise(module: str, row: dict[str, Any]) -> dict[str, Any]:
    """Coerce a module's row into the standard shape (unknown keys go to notes)."""
    out = {k: row.get(k) for k in STANDARD}
    if out["name"] is None:
        out["name"] = row.get("bench") or module
    if out["size"] is None:
        out["size"] = row.get("rows") or row.get("n")
    extra = {k: v for k, v in row.items() if k not in STANDARD and k not in ("bench", "rows", "n")}
    if extra:
        tail = ", ".join(f"{k}={v}" for k, v in extra.items())
        out["notes"] = f"{out['notes']}; {tail}" if out["notes"] else tail
    return out


def verdict(row: dict[str, Any]) -> str:
    value, target = row.get("value"), row.get("target")
    if not isinstance(value, int | float) or not isinstance(target, int | float):
        return "-" if value is not None else "skipped"
    ok = value >= target if row.get("better") == "higher" else value <= target
    return "ok" if ok else "MISS"


def run_module(name: str, sizes: list[int], asked: bool = False) -> tuple[list[dict[str, Any]], float] | None:
    """The module's rows and wall time; None when it is OPT_IN and was not named in --only."""
    t0 = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.{name}")
        if getattr(module, "OPT_IN", False) and not asked:
            return None
        cap = getattr(module, "SIZES_CAP", None)
        todo = [s for s in sizes if cap is None or s <= cap]
        rows = [normalise(name, r) for r in module.run(todo)] if todo else []
    except Exception as exc:  # one broken benchmark must not hide the others
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        rows = [{"name": name, "size": None, "value": None, "unit": None, "target": None,
                 "notes": f"failed: {detail}", "better": None}]  # fmt: skip
    return rows, time.perf_counter() - t0


# --------------------------------------------------------------------------- output


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["name"], _fmt(r["size"]), _fmt(r["value"]), r["unit"] or "", _fmt(r["target"]), verdict(r),
             r["notes"] or ""] for r in rows]  # fmt: skip


HEAD = ["benchmark", "size", "value", "unit", "target", "verdict", "notes"]


def print_table(module: str, rows: list[dict[str, Any]]) -> None:
    body = table(rows)
    widths = [min(60, max(len(h), *(len(r[i]) for r in body))) for i, h in enumerate(HEAD)] if body else []
    print(f"\n== {module}", flush=True)
    print("  ".join(h.ljust(w) for h, w in zip(HEAD, widths, strict=True)))
    for r in body:
        print("  ".join(c[:60].ljust(w) for c, w in zip(r, widths, strict=True)), flush=True)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_doc(results: dict[str, Any]) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m bench.run` (do not edit by hand). Benchmarks are measurements, not",
        "tests: targets come from the issues; a `MISS` is reported, never hidden. Each section names",
        "the machine it ran on; absolute numbers scale with that machine (and with whatever else ran",
        "on it: see the load average).",
        "",
    ]
    for module in sorted(results):
        entry = results[module]
        lines += [f"## {module}", "", f"Machine: {describe(entry['machine'])}.", "",
                  f"Sizes requested: {', '.join(str(s) for s in entry['sizes'])}; "
                  f"module wall time {entry['elapsed_s']:.1f} s.", ""]  # fmt: skip
        lines.append("| " + " | ".join(HEAD) + " |")
        lines.append("|" + "|".join("---" for _ in HEAD) + "|")
        for r in table(entry["rows"]):
            lines.append("| " + " | ".join(_md_cell(c) for c in r) + " |")
        lines.append("")
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(lines))


def _stored_results() -> dict[str, Any]:
    try:
        stored = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) else {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,50000", help="comma-separated fleet sizes")
    ap.add_argument("--only", default=None, help="module name(s), e.g. snapshot or bench_snapshot,reconcile")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--sizes: not a comma-separated list of integers: {args.sizes!r}")
    if not sizes or any(s <= 0 for s in sizes):
        ap.error("--sizes: need positive integers")
    modules = discover(args.only.split(",") if args.only else None)
    info = machine()
    print(f"machine: {describe(info)}", flush=True)
    results: dict[str, Any] = {}
    for name in modules:
        # Load is sampled per module, before and after: other work on the box moves the numbers.
        module_info = {**info, **machine()} if len(modules) > 1 else dict(info)
        ran = run_module(name, sizes, asked=args.only is not None)
        if ran is None:
            print(f"\n== {name}: skipped (opt-in: --only {name.removeprefix('bench_')})", flush=True)
            continue
        rows, elapsed = ran
        module_info["load_avg_at_end"] = _load_avg()
        print_table(name, rows)
        results[name] = {"machine": module_info, "sizes": sizes, "elapsed_s": round(elapsed, 1), "rows": rows}
    # The other modules' sections as they are now (not as they were when this run started: a
    # concurrent `--only` run may have written its own since); modules that no longer exist go.
    results = {**_stored_results(), **results}
    present = {p.stem for p in BENCH_DIR.glob("bench_*.py")}
    results = {k: v for k, v in results.items() if k in present}
    if not args.no_write:
        RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        write_doc(results)
        print(f"\nwrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    sys.exit(main())
