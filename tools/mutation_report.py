"""Write docs/mutation.md from the mutmut results of `make mutate` (mutants/<module>/mutants/).

Per module: mutant counts by verdict, measured time and the expected full-run time, and every
surviving mutant with a one-line diff. A survivor listed in tools/equivalent_mutants.toml (mutant
name = "why it cannot change behaviour") is reported as equivalent; any other is a test gap.
tools/mutation_notes.md (what the last round ran, its time boxes, what it found) is included as is.

Usage: python tools/mutation_report.py [--out docs/mutation.md]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from mutate import MODULES, REPO, WORK, Module
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code

EQUIVALENT = Path(__file__).with_name("equivalent_mutants.toml")
ROUND_NOTES = Path(__file__).with_name("mutation_notes.md")
COLUMNS = ("killed", "survived", "timeout", "suspicious", "skipped", "no tests", "not checked")


@dataclass
class Result:
    name: str
    module: Module
    statuses: dict[str, str] = field(default_factory=dict)  # mutant name -> verdict
    durations: dict[str, float] = field(default_factory=dict)  # wall seconds per tested mutant
    test_time: dict[str, float] = field(default_factory=dict)  # seconds of the tests that reach it

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.statuses.values())


def load(name: str, module: Module) -> Result | None:
    meta = WORK / name / "mutants" / (module.path + ".meta")
    if not meta.exists():
        return None
    data = json.loads(meta.read_text())
    statuses = {k: status_by_exit_code[v] for k, v in data["exit_code_by_key"].items()}
    # mutmut's stats run maps each function to the tests that reach it, with each test's duration:
    # a surviving mutant runs all of them, so their sum bounds the mutant's test time.
    test_time: dict[str, float] = {}
    with contextlib.suppress(OSError, ValueError, KeyError):
        stats = json.loads((WORK / name / "mutants" / "mutmut-stats.json").read_text())
        by_function, duration = stats["tests_by_mangled_function_name"], stats["duration_by_test"]
        for key in statuses:
            tests = by_function.get(key.partition("__mutmut_")[0], [])
            test_time[key] = sum(duration.get(t, 0.0) for t in tests)
    return Result(name, module, statuses, data.get("durations_by_key", {}), test_time)


def _short(code: str) -> str:
    return code if len(code) <= 90 else code[:87] + "..."


def one_line_diff(name: str, mutant: str, module: Module) -> str:
    """`old` → `new` for the first changed line pair of the mutant's diff."""
    with contextlib.chdir(WORK / name):  # mutmut reads mutants/<path> relative to the cwd
        try:
            diff = get_diff_for_mutant(mutant, path=module.path)
        except (FileNotFoundError, KeyError, ValueError) as exc:  # mutated file regenerated since
            return f"(diff unavailable: {exc})"
    old = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    new = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    return f"`{_short(old[0]) if old else ''}` → `{_short(new[0]) if new else ''}`"


def readable(mutant: str) -> str:
    """opcockpit.adapters.providers.http.xǁHttpClientǁsend__mutmut_7 -> HttpClient.send #7"""
    func, _, number = mutant.rpartition(".")[2].partition("__mutmut_")
    func = func.removeprefix("x_").removeprefix("xǁ").replace("ǁ", ".")
    return f"{func} #{number}"


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load1, load5, _ = os.getloadavg()
    return (
        f"{len(os.sched_getaffinity(0))} cores (nproc), {model}; load {load1:.1f}/{load5:.1f} (1/5 min) "
        f"when the report was written; Python {platform.python_version()}, mutmut {version('mutmut')}"
    )


def fmt_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def timing(result: Result) -> list[str]:
    """Measured time, and the expected full run: per mutant, its tests' time (all run if it
    survives; a kill stops at the first failure, so this is an upper bound) plus the per-mutant
    overhead (fork, pytest session) measured so far, or 1 s before anything ran."""
    done = [k for k in result.statuses if k in result.durations]
    spent = sum(result.durations[k] for k in done)
    overheads = [result.durations[k] - result.test_time.get(k, 0.0) for k in done]
    overhead = max(0.0, sum(overheads) / len(overheads)) if overheads else 1.0
    bound = sum(result.test_time.get(k, 0.0) + overhead for k in result.statuses)
    lines = [f"Time (one worker): {len(done)} mutants tested in {fmt_s(spent)}"]
    if done:
        lines[0] += f" (mean {spent / len(done):.1f} s, overhead ~{overhead:.1f} s per mutant)"
    if result.test_time:
        mean_tests = sum(result.test_time.values()) / len(result.test_time)
        lines.append(
            f"Expected full run of all {len(result.statuses)}: at most {fmt_s(bound)} "
            f"(mean test time per mutant {mean_tests:.1f} s + overhead)."
        )
    return lines


def section(result: Result | None, name: str, module: Module, equivalent: dict[str, str]) -> list[str]:
    work = WORK / name
    tests = module.tests
    with contextlib.suppress(OSError, KeyError):
        tests = tomllib.loads((work / "pyproject.toml").read_text())["tool"]["mutmut"][
            "pytest_add_cli_args_test_selection"
        ]
    out = [f"## `{module.path}`", "", f"Tests: `{' '.join(tests)}` (each mutant runs those that reach it)"]
    if result is None:
        return [*out, "", f"Not run yet: `make mutate MODULES={name}`.", ""]
    with contextlib.suppress(OSError):
        out.append(f"Source: {(work / 'source.txt').read_text().strip()}")
    out.append("")
    counts = result.counts
    total = len(result.statuses)
    out += [
        "| total | " + " | ".join(COLUMNS) + " |",
        "|---:|" + "---:|" * len(COLUMNS),
        f"| {total} | " + " | ".join(str(counts.get(c, 0)) for c in COLUMNS) + " |",
        "",
    ]
    out += timing(result)
    if counts.get("not checked"):
        out.append(f"**Partial run**: {counts['not checked']} mutants not checked yet.")
    survivors = sorted(k for k, v in result.statuses.items() if v == "survived")
    unexplained = [k for k in survivors if k not in equivalent]
    out += ["", f"Surviving mutants: {len(survivors)} ({len(survivors) - len(unexplained)} equivalent, "
            f"{len(unexplained)} not yet explained).", ""]  # fmt: skip
    if survivors:
        out += ["| mutant | function | change | equivalent because |", "|---|---|---|---|"]
        for key in survivors:
            why = equivalent.get(key, "—").replace("|", "\\|")
            diff = one_line_diff(name, key, module).replace("|", "\\|")
            out.append(f"| `{key.rpartition('.')[2]}` | {readable(key)} | {diff} | {why} |")
        out.append("")
    return out


def render() -> str:
    equivalent: dict[str, str] = {}
    if EQUIVALENT.exists():
        equivalent = tomllib.loads(EQUIVALENT.read_text()).get("mutants", {})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    lines = [
        "# Mutation testing",
        "",
        "Written by `tools/mutation_report.py` at the end of `make mutate` (mutmut 3, one worker:",
        "`python tools/mutate.py --max-children 1 [MODULE ...]`, each module from its own",
        "`mutants/<module>/` with only its tests; `make mutate MODULES=http` runs one). Re-runs are",
        "incremental. Show a mutant: `cd mutants/<module> && ../../.venv/bin/mutmut show NAME`",
        "(NAME = the module's dotted path + `.` + the mutant column).",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; repo HEAD {commit.stdout.strip() or '?'}"
        " (each module names the source it tested)",
        f"- Machine: {machine()}",
        "- Goal: no survivor that changes behaviour. Equivalent mutants (no observable difference) are",
        "  explained in `tools/equivalent_mutants.toml`.",
        "",
    ]
    results = {name: load(name, module) for name, module in MODULES.items()}
    lines += summary(results, equivalent)
    lines += NOTES
    if ROUND_NOTES.exists():  # what the last round ran and found, written by whoever ran it
        lines += [ROUND_NOTES.read_text().rstrip(), ""]
    for name, module in MODULES.items():
        lines += section(results[name], name, module, equivalent)
    return "\n".join(lines).rstrip() + "\n"


# Scope decisions that belong next to the numbers (the report is regenerated, so they live here).
NOTES = [
    "Scope: issue 16 named `services/operations.py`; it has since been split into `operations.py`",
    "(orchestration: execute/run, locks, audit), `ops_plan.py` (gates, plan, refusal signals, message",
    "helpers) and `ops_actions.py` (the per-target steps: lease/orphan actions, adopt, provider calls).",
    "All three carry the behaviour the issue asked about and the same tests drive them, so all three are",
    "mutated, each as its own module (`make mutate MODULES=ops_plan` etc.).",
    "",
]


def summary(results: dict[str, Result | None], equivalent: dict[str, str]) -> list[str]:
    """One row per module: how much of it was run, and what survived."""
    out = [
        "| module | source tested | mutants | tested | run | survivors | of which equivalent | gaps |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for name, result in results.items():
        module = MODULES[name]
        if result is None:
            out.append(f"| `{module.path}` | — | — | 0 | not run | — | — | — |")
            continue
        source = "?"
        with contextlib.suppress(OSError):
            source = (WORK / name / "source.txt").read_text().strip()
        counts = result.counts
        total = len(result.statuses)
        tested = total - counts.get("not checked", 0)
        survived = [k for k, v in result.statuses.items() if v == "survived"]
        eq = sum(1 for k in survived if k in equivalent)
        run = "**full**" if tested == total else f"**partial** ({100 * tested / max(total, 1):.0f}%)"
        out.append(
            f"| `{module.path}` | {source} | {total} | {tested} | {run} | {len(survived)} | {eq} "
            f"| {len(survived) - eq} |"
        )
    return [*out, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "mutation.md")
    args = parser.parse_args(argv)
    args.out.write_text(render())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
