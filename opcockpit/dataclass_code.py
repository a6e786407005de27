"""Compiled dataclass methods kept between processes, the way Python keeps a module's bytecode.

Python 3.11's dataclasses compile every method they generate (__init__, __repr__, __eq__,
__hash__, a frozen class's __setattr__/__delattr__) from source text, in every process: ~400
compiles before `opcockpit snapshot` has read a row, a fifth of a 100-lease snapshot's CPU
(issue 9; Python 3.13 batches them). A method's text is a pure function of its class definition,
so its code object can be cached like bytecode: `install()` puts a copy of dataclasses'
`_create_fn` in place whose only change is that it looks the text up in a marshal file in the
package's __pycache__ before compiling it.

- Same semantics: the code object is what `exec(text)` would compile there (file "<string>", no
  inherited __future__ flags) and it runs in the very globals and locals; the cache is keyed by
  the exact text, so a changed class gets new code.
- Written like bytecode: not under PYTHONDONTWRITEBYTECODE / `-B`, only when something new was
  compiled, atomically (a temp file and a rename: concurrent processes may only lose entries),
  never when the directory is not writable; a file from another interpreter (its magic number)
  or an unreadable one is ignored. It holds generated source only: field names and defaults'
  placeholder names, never a value.
- Installed only over the `_create_fn` it copies (CPython 3.11's, checked by its bytecode);
  anything else leaves dataclasses untouched.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import marshal
import os
import sys
from types import CodeType
from typing import Any

__all__ = ["install"]

# sha256 of (co_code, co_consts, co_names) of the CPython 3.11 `_create_fn` mirrored below.
_STDLIB_CREATE_FN = "1595a1ecdc44355d"
_MAX_ENTRIES = 4096  # dataclasses made on the fly (tests) must not grow the file without bound
_MAGIC: bytes = getattr(sys.modules.get("_frozen_importlib_external"), "MAGIC_NUMBER", b"")
_PATH = os.path.join(
    os.path.dirname(__file__), "__pycache__", f"dataclass_methods.{sys.implementation.cache_tag}.marshal"
)

_codes: dict[str, CodeType] = {}
_new = 0


def _fingerprint(fn: Any) -> str:
    return hashlib.sha256(repr(_shape(fn.__code__)).encode()).hexdigest()[:16]


def _shape(code: CodeType) -> tuple[object, ...]:
    """What a function's code does, without addresses (nested code objects by their shape)."""
    consts = tuple(_shape(c) if isinstance(c, CodeType) else c for c in code.co_consts)
    return (code.co_code, consts, code.co_names)


def _compiled(text: str) -> CodeType:
    global _new
    code = _codes.get(text)
    if code is None:
        code = compile(text, "<string>", "exec", dont_inherit=True)
        if len(_codes) >= _MAX_ENTRIES:
            _codes.clear()
        _codes[text] = code
        _new += 1
    return code


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
    exec(_compiled(txt), globals, ns)
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
        _codes.update((k, v) for k, v in codes.items() if isinstance(k, str) and isinstance(v, CodeType))


def _save() -> None:
    if not _new or sys.dont_write_bytecode or not _MAGIC:
        return
    tmp = f"{_PATH}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(_PATH), exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(_MAGIC + marshal.dumps(_codes))
        os.replace(tmp, _PATH)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def install() -> bool:
    """Route dataclasses' method compiles through the cache (True), or leave them (False)."""
    current = getattr(dataclasses, "_create_fn", None)
    if current is _create_fn:
        return True
    if current is None or sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 11):
        return False
    if _fingerprint(current) != _STDLIB_CREATE_FN:
        return False
    _load()
    dataclasses._create_fn = _create_fn  # type: ignore[attr-defined]
    atexit.register(_save)
    return True
