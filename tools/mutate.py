"""Run mutmut 3 over one module at a time, each with only the tests that exercise it.

mutmut reads one `[tool.mutmut]` and keeps one `mutants/` per working directory, and a change of
test selection resets every cached verdict. So each module gets its own working directory,
mutants/<name>/, holding symlinks to the sources and tests plus a pyproject.toml that is the
repo's one with a per-module `[tool.mutmut]` (the shared settings + `only_mutate` + the module's
test files). mutmut then copies that into mutants/<name>/mutants/ and runs there. Re-runs are
incremental: only mutants of functions that changed are tested again.

Usage: python tools/mutate.py [--max-children N] [--timeout-s S] [--rev REV] [--survivors]
[--mutant GLOB ...] [MODULE ...] (MODULE is a key of MODULES; none = all). OPCOCKPIT_CI/CI are
dropped so podman tests skip. --rev HEAD tests a `git archive` of that commit instead of the
(shared, possibly half-edited) working tree. --survivors re-tests only the mutants that survived
the last run (after adding tests for them); --mutant re-tests the named ones (fnmatch globs on
mutmut's names, e.g. '*_backoff__mutmut_*'). A time-boxed or interrupted (Ctrl-C, SIGTERM) run
keeps every verdict recorded so far.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "mutants"


@dataclass(frozen=True)
class Module:
    path: str  # the file mutated, relative to the repo
    tests: tuple[str, ...]  # globs of test files/dirs, expanded at run time so new tests count


_OPS_TESTS = (
    "tests/test_operations*.py",
    "tests/test_ops_*.py",
    "tests/test_cli_ops.py",
    "tests/test_audit.py",
)

MODULES: dict[str, Module] = {
    "http": Module("opcockpit/adapters/providers/http.py", ("tests/providers/",)),
    "operations": Module("opcockpit/services/operations.py", _OPS_TESTS),
    # operations.py was split (issue 9): the gates/plan and the per-target steps moved out, and the
    # same tests drive them, so they are mutated too (each from its own mutants/<name>/).
    "ops_plan": Module("opcockpit/services/ops_plan.py", _OPS_TESTS),
    "ops_actions": Module("opcockpit/services/ops_actions.py", _OPS_TESTS),
    "alerts": Module("opcockpit/domain/alerts.py", ("tests/test_alerts_*.py",)),
}

# Environment that would change which tests run (podman tests fail instead of skipping in CI).
_DROP_ENV = ("OPCOCKPIT_CI", "CI", "MUTANT_UNDER_TEST")


def expand_tests(module: Module, root: Path = REPO) -> list[str]:
    found: list[str] = []
    for pattern in module.tests:
        if pattern.endswith("/"):
            if (root / pattern).is_dir():
                found.append(pattern)
        else:
            found += sorted(str(p.relative_to(root)) for p in root.glob(pattern))
    if not found:
        raise SystemExit(f"no tests match {module.tests}")
    return found


def _toml_value(value: object) -> str:
    # JSON strings/lists/numbers are valid TOML for the plain values mutmut reads.
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def shared_settings(root: Path) -> dict[str, object]:
    return tomllib.loads((root / "pyproject.toml").read_text()).get("tool", {}).get("mutmut", {})


def module_pyproject(module: Module, root: Path) -> str:
    """root's pyproject.toml with [tool.mutmut] replaced by this module's settings."""
    text = (root / "pyproject.toml").read_text()
    settings = {
        **shared_settings(root),
        "only_mutate": [module.path],
        "pytest_add_cli_args_test_selection": expand_tests(module, root),
    }
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        if line.startswith("["):
            skipping = re.match(r"\[tool\.mutmut[\].]", line) is not None
        if not skipping:
            kept.append(line)
    section = ["[tool.mutmut]"] + [f"{k} = {_toml_value(v)}" for k, v in settings.items()]
    return "\n".join(kept).rstrip() + "\n\n" + "\n".join(section) + "\n"


def _linked_paths(root: Path) -> list[str]:
    shared = shared_settings(root)
    return sorted({*shared.get("source_paths", ["opcockpit"]), *shared.get("also_copy", []), "tests"})


def export(rev: str, work: Path) -> Path:
    """Check out `rev`'s files into work/src (a clean snapshot: others' uncommitted edits stay out)."""
    src = work / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True).stdout
    # -m: files get the current mtime; mutmut skips regenerating mutants older than their source.
    subprocess.run(["tar", "-x", "-m", "-C", str(src)], input=archive, check=True)
    return src


def prepare(name: str, module: Module, rev: str | None) -> Path:
    work = WORK / name
    work.mkdir(parents=True, exist_ok=True)
    root = export(rev, work) if rev else REPO
    for rel in _linked_paths(root):
        link = work / rel
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(root / rel)
        # mutmut copies over an old copy without deleting: drop it so removed tests/docs go too.
        # (The mutated package is left alone: it holds the incremental results.)
        copied = work / "mutants" / rel
        if rel not in shared_settings(root).get("source_paths", ["opcockpit"]) and copied.is_dir():
            shutil.rmtree(copied)
    target = work / "pyproject.toml"
    content = module_pyproject(module, root)
    if not target.exists() or target.read_text() != content:
        target.write_text(content)
    if rev:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True
        )
        source = f"commit {commit.stdout.strip()}"
    else:
        source = "working tree (uncommitted edits included)"
    (work / "source.txt").write_text(source + "\n")  # for the report
    return work


def survivors(name: str, module: Module) -> list[str]:
    """The mutants of `module` whose last verdict was `survived` (mutmut exit code 0)."""
    meta = WORK / name / "mutants" / (module.path + ".meta")
    if not meta.exists():
        return []
    codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
    return sorted(k for k, v in codes.items() if v == 0)


def run(
    name: str,
    max_children: int,
    timeout_s: float | None,
    rev: str | None,
    only: list[str] | None = None,
) -> int:
    """Run mutmut for one module; `only` (mutant names or globs) re-tests just those."""
    module = MODULES[name]
    work = prepare(name, module, rev)
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    cmd = [mutmut, "run", "--max-children", str(max_children)]
    if only:
        # mutmut matches bare globs against its dotted names: qualify the module's own.
        dotted = module.path.removesuffix(".py").replace("/", ".")
        cmd += [m if m.startswith(dotted) or m.startswith("*") else f"{dotted}.{m}" for m in only]
        print(f"== {name}: re-testing {len(only)} named mutant(s)", flush=True)
    tests = (work / "pyproject.toml").read_text().rpartition("pytest_add_cli_args_test_selection = ")[2]
    print(f"== {name}: {module.path} ({(work / 'source.txt').read_text().strip()}) with {tests}", flush=True)
    shown = " ".join(cmd[1:5]) + (f" ... ({len(cmd) - 4} names)" if len(cmd) > 4 else "")
    print(f"   (cd {work.relative_to(REPO)} && {shown})", flush=True)
    # Own process group, so a time-boxed run can stop mutmut *and* its forked test workers.
    proc = subprocess.Popen(cmd, cwd=work, env=env, start_new_session=True)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop(proc)
        print(f"== {name}: stopped after {timeout_s:.0f}s (partial results kept)", flush=True)
        return 0
    except KeyboardInterrupt:
        _stop(proc)  # a new session does not see the terminal's Ctrl-C: pass it on
        raise


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # SIGINT first: mutmut stops its workers and keeps every verdict recorded so far. Then SIGTERM
    # (verdicts are saved per mutant, so at most the one in flight is lost), then SIGKILL.
    for sig, grace in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _interruptible() -> None:
    """Make Ctrl-C and SIGTERM stop the run cleanly, even when started in the background.

    A shell's background job inherits SIGINT as *ignored*, and an ignored signal stays ignored
    across exec, so mutmut would ignore it too: restore the default here (children then inherit
    the default) and turn SIGTERM into the same clean stop.
    """

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"any of {', '.join(MODULES)}")
    parser.add_argument("--max-children", type=int, default=1, help="parallel mutant workers")
    parser.add_argument("--timeout-s", type=float, default=None, help="stop each module after S seconds")
    parser.add_argument(
        "--rev", default=None, help="test this git revision (e.g. HEAD), not the working tree"
    )
    parser.add_argument(
        "--survivors", action="store_true", help="re-test only the mutants that survived the last run"
    )
    parser.add_argument(
        "--mutant", action="append", default=[], metavar="GLOB", help="re-test these mutants (repeatable)"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {list(MODULES)}")
    _interruptible()
    worst = 0
    try:
        for name in args.modules or list(MODULES):
            only: list[str] | None = list(args.mutant) or None
            if args.survivors:
                only = [*(only or []), *survivors(name, MODULES[name])]
                if not only:
                    print(f"== {name}: no survivors to re-test", flush=True)
                    continue
            worst = max(worst, run(name, args.max_children, args.timeout_s, args.rev or None, only))
    except KeyboardInterrupt:
        print("interrupted: verdicts so far are kept; the next run resumes", file=sys.stderr)
        return 130
    return worst


if __name__ == "__main__":
    sys.exit(main())
