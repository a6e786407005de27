"""Benchmark: the PostgreSQL platform source (issue 12) beside the sandbox.db path, in one run.

A private PostgreSQL server is started the way the tests start theirs (tests/fixtures/postgres.py:
Debian's initdb + pg_ctl as the `postgres` user, a private socket dir and a private port on
127.0.0.1, fsync off), a generated demo fleet is loaded into it with Mycel's column types and no
lease_events (tests/test_pg_source.copy_fleet), and the same fleet's sandbox.db is timed beside it:

- `opcockpit snapshot --format json` as a subprocess, interpreter start included, median of
  REPEATS (7) after one warm-up, every command line once per round in turn (`_time_interleaved`:
  HEAD and the previous main share the machine's minutes; budget <= 1.0 s at 10k leases, the
  sandbox.db path's), with
  `[sources] kind = "postgres"` (ledger: the default SQLite file), with the source AND the ledger
  on PostgreSQL (`[ledger] url`, a fresh ledger database per tree: the issue's configuration)
  and with `--db sandbox.db`; CPU is the child's user+sys; for HEAD and for the previous main
  (BENCH_PG_BASELINE, default e4b892a: ec3fb80 had no PostgreSQL source), each a
  `git worktree` on PYTHONPATH with its own HOME (its own default SQLite ledger);
- the incremental no-change refresh in process: the change-detecting reader's `read_state` when
  nothing changed (PostgreSQL: one signature query in a read-only snapshot; sandbox.db:
  `PRAGMA data_version`), and a whole `collector.refresh()` of a cockpit on that source with no
  provider configured; wall and CPU per call, median of 20 after warm-up;
- the same reader when one lease changed (a LEON-way stamped UPDATE before each call, timed with
  it): PostgreSQL reads the rows past its updated_at watermark, sandbox.db its marks;
- one full read of the reconcile input (`read_pg_state` / `read_db_state`), median of 3, and
  PostgreSQL's one-shot read (`read_pg_state(one_shot=True)`: records not interned, the read on a
  blocking connection in one worker thread, as `snapshot` reads);
- Explore queries on each source (EXPLORE_QUERIES), median of 3.

Run: `python -m bench.run --only pg` or `python bench/bench_pg.py [n ...]` (default 10000).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/bench_pg.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_snapshot import REPEATS, _cli, _isolated_env

SNAPSHOT_TARGET_S = {10_000: 1.0}
SIZES_CAP = 10_000  # loading 50k leases into PostgreSQL is minutes of COPY on a shared machine
ROOT = Path(__file__).resolve().parent.parent
BASELINE = os.environ.get("BENCH_PG_BASELINE", "e4b892a")
NOCHANGE_CALLS = 20


def _load() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average n/a"


def _config(work: Path, name: str, body: str) -> Path:
    path = work / f"{name}.toml"
    path.write_text(body)
    return path


@dataclass
class _Case:
    """One snapshot command line timed by `_time_interleaved`."""

    name: str
    cli: list[str]
    args: list[str]
    pythonpath: Path | None = None
    home: Path | None = None  # HOME (its own SQLite ledger); None: the run's
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    rows: int = 0
    error: str | None = None


def _run_case(case: _Case, home: Path) -> tuple[float, float] | None:
    """(wall s, CPU s) of one `snapshot --format json` of `case`; None (error noted) on failure."""
    home = case.home or home
    env = _isolated_env(home)
    if case.pythonpath is not None:
        env["PYTHONPATH"] = str(case.pythonpath)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # cwd=home: `python -m` puts the cwd first on sys.path, so it must hold no opcockpit.
    proc = subprocess.run(
        [*case.cli, *case.args, "snapshot", "--format", "json"], capture_output=True, text=True, env=env,
        cwd=home, timeout=120, check=False,
    )  # fmt: skip
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        case.error = f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
        return None
    case.rows = len(json.loads(proc.stdout)["rows"])
    return dt, r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime


def _time_interleaved(cases: list[_Case], home: Path) -> None:
    """Each case once to warm up, then REPEATS rounds running every case once, in turn (every
    other round in reverse order): HEAD and the previous main meet the same machine minutes,
    which on a shared VM drift by tens of percent within one run (session 9: measured one after
    the other, the same code was 0.84 s or 1.14 s)."""
    for case in cases:
        _run_case(case, home)
    for r in range(REPEATS):
        for case in cases if r % 2 == 0 else cases[::-1]:
            if case.error is None and (sample := _run_case(case, home)) is not None:
                case.walls.append(sample[0])
                case.cpus.append(sample[1])


def _case_row(case: _Case, n: int, target: float | None) -> dict[str, Any]:
    if case.error is not None or not case.walls:
        value, notes = None, case.error or "no sample"
    else:
        value = round(statistics.median(case.walls), 3)
        notes = (f"{case.rows} rows; cpu {statistics.median(case.cpus):.3f} s (client); median of "
                 f"{len(case.walls)}, interleaved with the other rows of this run")  # fmt: skip
    return {"name": case.name, "size": n, "value": value, "unit": "s", "target": target,
            "notes": f"{notes}; {_load()}"}  # fmt: skip


async def _per_call(fn: Callable[[], Awaitable[Any]], calls: int) -> tuple[float, float]:
    """(median wall ms, median CPU ms) of `calls` awaits of fn, after one warm-up."""
    await fn()
    walls, cpus = [], []
    for _ in range(calls):
        w, c = time.perf_counter(), time.process_time()
        await fn()
        walls.append((time.perf_counter() - w) * 1000)
        cpus.append((time.process_time() - c) * 1000)
    return statistics.median(walls), statistics.median(cpus)


async def _inprocess(pg_cfg: Path, lite_cfg: Path, pg_url: str, db: Path, n: int) -> list[dict[str, Any]]:
    from opcockpit.adapters.leon.sandbox_changes import SandboxDbTracker
    from opcockpit.adapters.leon.sandbox_db import read_db_state
    from opcockpit.adapters.pg_source import PgSourceSpec, read_pg_state
    from opcockpit.adapters.pg_source_track import PgSourceTracker
    from opcockpit.settings.config import load_config
    from opcockpit.wiring import build_cockpit

    rows: list[dict[str, Any]] = []
    spec = PgSourceSpec(pg_url)
    for label, tracker, full in (
        ("PostgreSQL", PgSourceTracker(spec), lambda: read_pg_state(spec)),
        ("sandbox.db", SandboxDbTracker(str(db)), lambda: read_db_state(str(db))),
    ):
        try:
            wall, cpu = await _per_call(tracker.read_state, NOCHANGE_CALLS)
            stats = tracker.stats
            rows.append({
                "name": f"no-change read_state of the change-detecting reader, {label}", "size": n,
                "value": round(wall, 2), "unit": "ms", "target": None,
                "notes": f"cpu {cpu:.2f} ms; full reads {stats.full_reads}, unchanged {stats.unchanged}; "
                f"median of {NOCHANGE_CALLS}",
            })  # fmt: skip
            touch = _touch_pg(pg_url) if label == "PostgreSQL" else _touch_sqlite(db)

            async def changed(tracker: Any = tracker, touch: Callable[[], None] = touch) -> Any:
                touch()  # the write is timed too (~1 ms, alike for both sources): simpler than pausing
                return await tracker.read_state()

            wall, cpu = await _per_call(changed, NOCHANGE_CALLS)
            rows.append({
                "name": f"one-lease-changed read_state of the change-detecting reader, {label}", "size": n,
                "value": round(wall, 2), "unit": "ms", "target": None,
                "notes": f"cpu {cpu:.2f} ms (the write included); {_tracker_stats(tracker)}; "
                f"median of {NOCHANGE_CALLS}; {_load()}",
            })  # fmt: skip
        finally:
            await tracker.aclose()
        fulls = [("", full)]
        if label == "PostgreSQL":  # what `snapshot` reads with (one_shot: see read_pg_state)
            fulls.append((" (one-shot)", lambda: read_pg_state(spec, one_shot=True)))
        for how, read in fulls:
            wall_full, cpu_full = await _per_call(read, 3)
            rows.append({
                "name": f"full read of the reconcile input, {label}{how}", "size": n,
                "value": round(wall_full / 1000, 3), "unit": "s", "target": None,
                "notes": f"cpu {cpu_full / 1000:.3f} s; median of 3; {_load()}",
            })  # fmt: skip
    for label, cfg in (("PostgreSQL", pg_cfg), ("sandbox.db", lite_cfg)):
        cockpit = build_cockpit(load_config(cfg, env={}).config)
        try:
            wall, cpu = await _per_call(cockpit.collector.refresh, NOCHANGE_CALLS)
        finally:
            await cockpit.aclose()
        rows.append({
            "name": f"no-change collector.refresh() (no provider configured), {label}", "size": n,
            "value": round(wall, 2), "unit": "ms", "target": None,
            "notes": f"cpu {cpu:.2f} ms; median of {NOCHANGE_CALLS}",
        })  # fmt: skip
    return rows


def _touch_pg(url: str) -> Callable[[], None]:
    """A LEON-way write to one lease (a new observed state, stamped), on its own connection."""
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    lid = conn.execute("SELECT lease_id FROM sandbox_leases ORDER BY lease_id LIMIT 1").fetchone()[0]

    def touch() -> None:
        conn.execute(
            "UPDATE sandbox_leases SET version = version + 1, updated_at = localtimestamp"
            " WHERE lease_id = %s",
            (lid,),
        )

    return touch


def _touch_sqlite(db: Path) -> Callable[[], None]:
    import sqlite3

    conn = sqlite3.connect(db, isolation_level=None)
    lid = conn.execute("SELECT lease_id FROM sandbox_leases ORDER BY lease_id LIMIT 1").fetchone()[0]

    def touch() -> None:
        conn.execute(
            "UPDATE sandbox_leases SET version = version + 1,"
            " updated_at = strftime('%Y-%m-%dT%H:%M:%f', 'now', 'localtime') WHERE lease_id = ?",
            (lid,),
        )

    return touch


def _tracker_stats(tracker: Any) -> str:
    st = tracker.stats
    parts = [f"full reads {st.full_reads}"]
    for name in ("incremental", "rows_reread"):
        if hasattr(st, name):
            parts.append(f"{name.replace('_', ' ')} {getattr(st, name)}")
    return ", ".join(parts)


EXPLORE_QUERIES = ("commands exit_code!=0 | count", "sessions since:-1h | count", "lease_events | count")


def _explore_rows(work: Path, pg_cfg: Path, lite_cfg: Path, n: int) -> list[dict[str, Any]]:
    """Explore queries over each source (the PostgreSQL rows are filtered and counted by the
    evaluator; sandbox.db counts in SQL): wall and CPU, median of 3 after one warm-up."""
    from opcockpit.settings.config import load_config
    from opcockpit.wiring import build_explore

    rows: list[dict[str, Any]] = []
    for label, cfg in (("PostgreSQL", pg_cfg), ("sandbox.db", lite_cfg)):
        explore = build_explore(load_config(cfg, env={}).config, ledger_path=work / f"explore-{label}.db")
        for text in EXPLORE_QUERIES:
            wall, cpu = asyncio.run(_per_call(lambda t=text, ex=explore: ex.run(t, timeout_s=60), 3))
            rows.append({
                "name": f"explore `{text}`, {label}", "size": n, "value": round(wall / 1000, 3), "unit": "s",
                "target": None, "notes": f"cpu {cpu / 1000:.3f} s; median of 3; {_load()}",
            })  # fmt: skip
    return rows


def _snapshot_rows(
    work: Path, pg_cfg: Path, db: Path, n: int, fresh_ledger: Callable[[], str] | None = None
) -> list[dict[str, Any]]:
    from bench.bench_steady import git, imported_from, worktree

    home = work / "home"
    home.mkdir(exist_ok=True)
    target = SNAPSHOT_TARGET_S.get(n)
    py = [sys.executable, "-m", "opcockpit.cli"]
    trees: list[tuple[str, Path | None]] = [(f"HEAD {git('rev-parse', '--short', 'HEAD')}", ROOT)]
    cases: list[_Case] = []
    with worktree(BASELINE) if BASELINE else contextlib.nullcontext() as prev:
        if prev is not None:
            trees.append((f"previous main {git('rev-parse', '--short', BASELINE)}", prev))
        for i, (label, tree) in enumerate(trees):
            tree_home = home / f"tree{i}"  # each tree its own default SQLite ledger (its own schema)
            tree_home.mkdir(exist_ok=True)
            env = {**_isolated_env(tree_home), "PYTHONPATH": str(tree)}
            if not imported_from(env, tree_home).is_relative_to(Path(str(tree)).resolve()):
                raise RuntimeError(f"{label}: opcockpit does not import from {tree}")
            sources = [("PostgreSQL", ["--config", str(pg_cfg)]), ("sandbox.db", ["--db", str(db)])]
            if fresh_ledger is not None:  # issue 12's own configuration; a ledger per tree (migrations)
                body = pg_cfg.read_text() + f'[ledger]\nurl = "{fresh_ledger()}"\n'
                both = _config(work, f"pg-ledger-{len(cases)}", body)
                sources.insert(1, ("PostgreSQL source + PostgreSQL ledger", ["--config", str(both)]))
            cases += [
                _Case(f"snapshot --format json, {src}, {label}", py, args, tree, tree_home)
                for src, args in sources
            ]
        cli = _cli()
        if cli is not None and cli[0] != sys.executable:  # the console script users run
            name = "opcockpit snapshot --format json, PostgreSQL (console script, HEAD)"
            cases.append(_Case(name, cli, ["--config", str(pg_cfg)], None, home / "tree0"))
        _time_interleaved(cases, home)
    return [_case_row(c, n, target) for c in cases]


def run(sizes: list[int]) -> list[dict[str, Any]]:
    from opcockpit.demo.fleet import generate_fleet
    from tests.fixtures.postgres import PostgresUnavailable, start_server
    from tests.test_pg_source import copy_fleet

    work = Path(tempfile.mkdtemp(prefix="opcockpit-bench-pg-"))
    rows: list[dict[str, Any]] = []
    try:
        try:
            server = start_server()
        except (PostgresUnavailable, OSError) as exc:
            return [{"name": "PostgreSQL source", "size": 0, "value": None, "unit": "s", "target": None,
                     "notes": f"skipped: PostgreSQL unavailable ({exc})"}]  # fmt: skip
        try:
            # one size: the largest asked for up to the cap (the budget is set at 10k leases)
            for n in [max([s for s in sizes if s <= SIZES_CAP] or [SIZES_CAP])]:
                fleet = generate_fleet(work / f"f{n}", leases=n, seed=1)
                url = server.fresh_db()
                t0 = time.perf_counter()
                copy_fleet(fleet.sandbox_db, url)
                server.psql("ANALYZE", url.rsplit("/", 1)[1])  # what autovacuum does after a bulk load
                load_s = time.perf_counter() - t0
                pg_cfg = _config(work, f"pg{n}", f'[sources]\nkind = "postgres"\nurl = "{url}"\n')
                lite_cfg = _config(work, f"lite{n}", f'[sources]\nsandbox_db = "{fleet.sandbox_db}"\n')
                rows.append({
                    "name": "load the fleet into PostgreSQL (COPY, Mycel types, no lease_events; ANALYZE)",
                    "size": n, "value": round(load_s, 2), "unit": "s", "target": None,
                    "notes": f"{sum(fleet.counts.values()):,} rows; {_load()}",
                })  # fmt: skip
                rows += _snapshot_rows(work, pg_cfg, fleet.sandbox_db, n, server.fresh_db)
                rows += asyncio.run(_inprocess(pg_cfg, lite_cfg, url, fleet.sandbox_db, n))
                lite_cfg = _config(
                    work,
                    f"lite-ev{n}",
                    f'[sources]\nsandbox_db = "{fleet.sandbox_db}"\nevents_db = "{fleet.events_db}"\n',
                )
                pg_cfg = _config(
                    work,
                    f"pg-ev{n}",
                    f'[sources]\nkind = "postgres"\nurl = "{url}"\nevents_db = "{fleet.events_db}"\n',
                )
                rows += _explore_rows(work, pg_cfg, lite_cfg, n)
        finally:
            server.stop("immediate")
            shutil.rmtree(server.root, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    for r in run([int(a) for a in sys.argv[1:]] or [10_000]):
        print(r)
