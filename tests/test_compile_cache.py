"""The compile cache (opcockpit/compile_cache.py): installed on CPython 3.11, dataclasses and
annotations made through it behave exactly like stdlib ones, and a second process reuses what the
first compiled instead of compiling it again."""

from __future__ import annotations

import dataclasses
import marshal
import os
import subprocess
import sys
import types
import typing
import uuid
from pathlib import Path

import pytest

import opcockpit  # noqa: F401 - installs the cache
from opcockpit import compile_cache

ROOT = Path(__file__).resolve().parent.parent
PY311 = sys.implementation.name == "cpython" and sys.version_info[:2] == (3, 11)


def test_installed_on_the_interpreter_it_mirrors() -> None:
    assert compile_cache.install() is PY311
    assert (dataclasses._create_fn is compile_cache._create_fn) is PY311  # type: ignore[attr-defined]
    assert (getattr(typing, "compile", None) is compile_cache._typing_compile) is PY311


def test_a_class_made_through_it_behaves_like_a_stdlib_dataclass() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Point:
        x: int
        y: int = 2
        tags: tuple[str, ...] = ()

    p = Point(1)
    assert (p.x, p.y, p.tags) == (1, 2, ())
    assert p == Point(1, 2) and p != Point(1, 3) and hash(p) == hash(Point(1, 2))
    assert (
        repr(p)
        == "test_a_class_made_through_it_behaves_like_a_stdlib_dataclass.<locals>.Point(x=1, y=2, tags=())"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 5  # type: ignore[misc]
    assert dataclasses.replace(p, y=7) == Point(1, 7)
    assert [f.name for f in dataclasses.fields(Point)] == ["x", "y", "tags"]
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]


def _make_class_in_a_new_process(field: str, env: dict[str, str]) -> str:
    """A dataclass and a string annotation no earlier process compiled; prints the count of new
    compiles the process made (0: both came from the cache)."""
    code = (
        "import dataclasses, typing, opcockpit.compile_cache as d\n"
        "d._new = 0\n"  # what importing opcockpit compiled is not this test's business
        f"C = dataclasses.make_dataclass('C', [('{field}', int)], frozen=True)\n"
        f"assert C(3).{field} == 3 and C(3) == C(3) and repr(C(3)) == 'C({field}=3)'\n"
        f"class T(typing.TypedDict):\n    x: 'dict[str, {field}]'\n"
        f"assert typing.ForwardRef('list[{field}]').__forward_code__.co_names == ('list', '{field}')\n"
        "print(d._new)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(not PY311, reason="the cache is installed on CPython 3.11 only")
def test_a_second_process_reuses_the_compiled_methods() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    field = f"f_{uuid.uuid4().hex}"  # a class no earlier process compiled
    assert int(_make_class_in_a_new_process(field, env)) > 0  # compiled, then written
    assert _make_class_in_a_new_process(field, env) == "0"  # loaded: nothing compiled


@pytest.mark.skipif(not PY311, reason="the cache is installed on CPython 3.11 only")
def test_an_unreadable_cache_file_is_ignored_and_replaced() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    path = Path(compile_cache._PATH)
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"not marshal data")
    field = f"f_{uuid.uuid4().hex}"
    assert int(_make_class_in_a_new_process(field, env)) > 0
    assert path.read_bytes().startswith(compile_cache._MAGIC)
    assert _make_class_in_a_new_process(field, env) == "0"


@pytest.mark.skipif(not PY311, reason="the cache is installed on CPython 3.11 only")
def test_nothing_is_written_when_bytecode_may_not_be() -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    field = f"f_{uuid.uuid4().hex}"
    assert int(_make_class_in_a_new_process(field, env)) > 0
    assert int(_make_class_in_a_new_process(field, env)) > 0  # compiled again: nothing was kept


def test_entries_read_from_the_file_are_unmarshalled_on_first_use_and_a_bad_one_is_recompiled() -> None:
    text = f"x_{uuid.uuid4().hex} = 1"
    good, bad = ("exec", text), ("exec", text + "\n")
    compile_cache._codes[good] = marshal.dumps(compile(text, "<string>", "exec", dont_inherit=True))
    compile_cache._codes[bad] = b"not marshal data"
    try:
        for key in (good, bad):
            code = compile_cache._cached(key[1], "exec")
            assert isinstance(code, types.CodeType) and code.co_names == (text.split()[0],)
            assert compile_cache._codes[key] is code  # kept unmarshalled (or recompiled) for the next use
    finally:
        for key in (good, bad):
            compile_cache._codes.pop(key, None)


def test_release_saves_then_drops_the_cache_and_later_compiles_are_plain() -> None:
    code = (
        "import dataclasses, opcockpit.compile_cache as d\n"
        "d.install()\n"
        "C = dataclasses.make_dataclass('C', [('x', int)])\n"
        "assert d._codes\n"
        "d.release()\n"
        "assert not d._codes and d._released\n"
        "D = dataclasses.make_dataclass('D', [('y', int)])\n"
        "assert D(2).y == 2 and not d._codes\n"  # compiled, not cached
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
