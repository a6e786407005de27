"""Write docs/mutation.md from the mutmut results of `make mutate` (mutants/<module>/mutants/).

Per module: mutant counts by verdict, measured time and the expected full-run time, and every
surviving mutant with a one-line diff. A survivor listed in tools/equivalent_mutants.toml (mutant
name = "why it cannot change behaviour") is reported as equivalent; any other is a test gap.

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
COLUMNS = ("killed", "survived", "timeout", "suspicious", "skipped", "no tests", "not checked")


@dataclass
class Result:
    name: str
    module: Module
    statuses: dict[str, str] = field(default_factory=dict)  # mutant name -> verdict
    durations: dict[str, float] = field(default_factory=dict)  # wall seconds per tested mutant
    estimates: dict[str, float] = field(default_factory=dict)  # seconds of its selected tests

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.statuses.values())


def load(name: str, module: Module) -> Result | None:
    meta = WORK / name / "mutants" / (module.path + ".meta")
    if not meta.exists():
        return None
    data = json.loads(meta.read_text())
    statuses = {k: status_by_exit_code[v] for k, v in data["exit_code_by_key"].items()}
    return Result(
        name, module, statuses, data.get("durations_by_key", {}), data.get("estimated_durations_by_key", {})
    )


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
    """opcockpit.providers.http.xǁHttpClientǁsend__mutmut_7 -> HttpClient.send #7"""
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
    done = [result.durations[k] for k in result.statuses if k in result.durations]
    if done:
        mean = sum(done) / len(done)
        out.append(
            f"Time: {len(done)} mutants tested in {fmt_s(sum(done))} (mean {mean:.1f} s per mutant, "
            f"one worker); a full run of all {total} takes about {fmt_s(mean * total)}."
        )
    else:
        out.append(f"Time: no mutant tested yet; {total} mutants generated.")
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
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit.stdout.strip() or '?'}",
        f"- Machine: {machine()}",
        "- Goal: no survivor that changes behaviour. Equivalent mutants (no observable difference) are",
        "  explained in `tools/equivalent_mutants.toml`.",
        "",
    ]
    for name, module in MODULES.items():
        lines += section(load(name, module), name, module, equivalent)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "mutation.md")
    args = parser.parse_args(argv)
    args.out.write_text(render())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
