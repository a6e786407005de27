"""Code that Python 3.11 compiles from text at every start, kept between processes like bytecode.

Two kinds of run-time compiles made up about a third of a 100-lease `opcockpit snapshot`'s
instructions (issue 9: <= 0.3 s including start-up), every time, for the same text:
- dataclasses compile every method they generate (__init__, __repr__, __eq__, __hash__, a frozen
  class's __setattr__/__delattr__): ~400 before the snapshot has read a row (3.13 batches them);
- typing compiles every string annotation into a ForwardRef: ~850, mostly the TypedDicts of
  pydantic_core's schema module and our config models' annotations.
The text is a pure function of the class definition, so the code can be cached like bytecode.
`install()` routes both through a cache kept in a marshal file in the package's __pycache__:
dataclasses' `_create_fn` is replaced by a copy whose only change is how it compiles, and
typing's module-level name `compile` (used by ForwardRef alone) by the caching compile.

- Same semantics: each code object is what the original call compiles (file "<string>", no
  inherited __future__ flags, the same mode) and runs in the very globals and locals; the cache
  is keyed by the mode and the exact text.
- Written like bytecode: not under PYTHONDONTWRITEBYTECODE / `-B`, only when something new was
  compiled, atomically (a temp file and a rename: concurrent processes may only lose entries),
  never when the directory is not writable; a file from another interpreter (its magic number) or
  an unreadable one is ignored. It holds source text of generated methods and annotations only:
  names, never values.
- Installed only on CPython 3.11, over the `_create_fn` it copies (checked by its bytecode);
  anywhere else nothing is touched.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import marshal
import os
import sys
import typing
from types import CodeType
from typing import Any

__all__ = ["install", "release"]

# sha256 of the shape (_shape) of the CPython 3.11 `dataclasses._create_fn` mirrored below.
_STDLIB_CREATE_FN = "1595a1ecdc44355d"
_MAX_ENTRIES = 8192  # classes and annotations made on the fly (tests) must not grow it unbounded
_MAGIC: bytes = getattr(sys.modules.get("_frozen_importlib_external"), "MAGIC_NUMBER", b"")
_OPT = f".opt-{sys.flags.optimize}" if sys.flags.optimize else ""  # as .pyc names: -O strips asserts
_PATH = os.path.join(
    os.path.dirname(__file__), "__pycache__", f"compiled_text.{sys.implementation.cache_tag}{_OPT}.marshal"
)

# (mode, text) -> code, or its marshal bytes as read from the file: each entry is unmarshalled on
# its first use, so a process pays only for the classes it defines (the file also holds the
# TUI's, the tests' and other commands': ~1,400 entries, 1.2 MB, ~10 ms to unmarshal at once).
_codes: dict[tuple[str, str], CodeType | bytes] = {}
_new = 0  # entries compiled by this process (tests read it)
_released = False  # release(): nothing is cached or saved any more
_builtin_compile = compile


def _fingerprint(fn: Any) -> str:
    return hashlib.sha256(repr(_shape(fn.__code__)).encode()).hexdigest()[:16]


def _shape(code: CodeType) -> tuple[object, ...]:
    """What a function's code does, without addresses (nested code objects by their shape)."""
    consts = tuple(_shape(c) if isinstance(c, CodeType) else c for c in code.co_consts)
    return (code.co_code, consts, code.co_names)


def _cached(text: str, mode: str) -> CodeType:
    global _new
    if _released:
        return _builtin_compile(text, "<string>", mode, dont_inherit=True)
    key = (mode, text)
    code = _codes.get(key)
    if code.__class__ is bytes:
        try:
            code = _codes[key] = marshal.loads(code)  # type: ignore[arg-type]
        except (EOFError, ValueError, TypeError):
            code = None
    if code.__class__ is not CodeType:
        code = _builtin_compile(text, "<string>", mode, dont_inherit=True)
        if len(_codes) >= _MAX_ENTRIES:
            _codes.clear()
        _codes[key] = code
        _new += 1
    return code  # type: ignore[return-value]


def _typing_compile(source: Any, filename: Any, mode: str, *args: Any, **kwargs: Any) -> Any:
    """typing's `compile` (ForwardRef: `compile(text, '<string>', 'eval')`), through the cache."""
    if args or kwargs or filename != "<string>" or mode != "eval" or source.__class__ is not str:
        return _builtin_compile(source, filename, mode, *args, **kwargs)
    return _cached(source, "eval")


def _create_fn(name, args, body, *, globals=None, locals=None, return_type=dataclasses.MISSING):  # type: ignore[no-untyped-def]
    # CPython 3.11's dataclasses._create_fn, line for line, with `exec(txt, ...)` compiling
    # through the cache. (Its parameter names are the stdlib's: callers pass them by keyword.)
    if locals is None:
        locals = {}
    return_annotation = ""
    if return_type is not dataclasses.MISSING:
        locals["_return_type"] = return_type
        return_annotation = "->_return_type"
    args = ",".join(args)
    body = "\n".join(f"  {b}" for b in body)
    txt = f" def {name}({args}){return_annotation}:\n{body}"
    local_vars = ", ".join(locals.keys())
    txt = f"def __create_fn__({local_vars}):\n{txt}\n return {name}"
    ns: dict[str, Any] = {}
    exec(_cached(txt, "exec"), globals, ns)
    return ns["__create_fn__"](**locals)


def _load() -> None:
    try:
        with open(_PATH, "rb") as fh:
            data = fh.read()
    except OSError:
        return
    if not _MAGIC or not data.startswith(_MAGIC):
        return
    try:
        codes = marshal.loads(data[len(_MAGIC) :])
    except (EOFError, ValueError, TypeError):
        return
    if isinstance(codes, dict):
        _codes.update((k, v) for k, v in codes.items() if isinstance(v, (bytes, CodeType)) and _is_key(k))


def _is_key(key: object) -> bool:
    return isinstance(key, tuple) and len(key) == 2 and key[0] in ("exec", "eval") and isinstance(key[1], str)


def release() -> None:
    """Save what this process compiled, then drop the cache: a long-lived process (the TUI, once
    started) would otherwise keep every entry's text and code, ~1.5 MB (issue 10, RSS). Later
    compiles (a screen's module imported on first use) are plain compiles."""
    global _released
    _save()
    _codes.clear()
    _released = True


def _save() -> None:
    if not _new or _released or sys.dont_write_bytecode or not _MAGIC:
        return
    tmp = f"{_PATH}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(_PATH), exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(_MAGIC + marshal.dumps({k: _as_bytes(v) for k, v in _codes.items()}))
        os.replace(tmp, _PATH)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _as_bytes(code: CodeType | bytes) -> bytes:
    return code if code.__class__ is bytes else marshal.dumps(code)  # type: ignore[return-value]


def install() -> bool:
    """Route those compiles through the cache (True), or leave everything as it is (False)."""
    current = getattr(dataclasses, "_create_fn", None)
    if current is _create_fn:
        return True
    if current is None or sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 11):
        return False
    if _fingerprint(current) != _STDLIB_CREATE_FN or "compile" in vars(typing):
        return False
    _load()
    dataclasses._create_fn = _create_fn  # type: ignore[attr-defined]
    typing.compile = _typing_compile  # type: ignore[attr-defined]
    atexit.register(_save)
    return True
