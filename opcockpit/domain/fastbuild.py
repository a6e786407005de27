"""Fast positional constructors for frozen slots dataclasses (records and rows built by the 10k).

Shared by the sandbox.db reader (tens of thousands of records per read) and reconcile (one row per
lease per refresh). See `fast_factory` for how and why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

__all__ = ["fast_factory", "fields_of"]

_T = TypeVar("_T")


def fields_of(cls: type) -> tuple[str, ...]:
    """The dataclass's field names in declaration order (the positional order of its __init__)."""
    return tuple(f.name for f in dataclasses.fields(cls))


def fast_factory(cls: type[_T], expected: tuple[str, ...]) -> Callable[..., _T]:
    """A positional constructor for a frozen slots dataclass that skips the frozen-__setattr__ dance.

    A frozen dataclass __init__ stores every field through object.__setattr__, and keyword calls
    with ~20 fields are slower still; together they were the largest cost of a 10k-lease refresh.
    Instead we fill a plain class with the identical slot layout (plain slot stores) and switch the
    object's __class__, which CPython allows between classes with identical layouts. The result is a
    genuine `cls` instance (type, ==, hash, repr, immutability). Anything unexpected (a base class,
    __post_init__, another interpreter) falls back to `cls` itself, checked once at import.

    Callers pass the fields of `expected` positionally. Fields appended later (additive contract
    changes) take their defaults; a reorder of `expected` fails loudly at import, never silently.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = tuple(f.name for f in fields)
    if names[: len(expected)] != expected:
        raise ImportError(f"{cls.__name__} fields changed: caller expects {expected} first, got {names}")
    rest = fields[len(expected) :]
    if any(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING for f in rest):
        raise ImportError(f"{cls.__name__} gained a required field; callers must fill it")
    defaults = {
        f"_d{i}": (f.default if f.default is not dataclasses.MISSING else f.default_factory)
        for i, f in enumerate(rest)
    }
    factories = {i for i, f in enumerate(rest) if f.default is dataclasses.MISSING}

    def generic(*args: object) -> _T:
        extra = [defaults[f"_d{i}"]() if i in factories else defaults[f"_d{i}"] for i in range(len(rest))]
        return cls(*args, *extra)

    if (
        cls.__bases__ != (object,)
        or getattr(cls, "__slots__", None) != names
        or hasattr(cls, "__post_init__")
        or factories
    ):
        return generic
    params = ", ".join(expected)
    body = "".join(f"    o.{n} = {n}\n" for n in expected)
    body += "".join(f"    o.{f.name} = _d{i}\n" for i, f in enumerate(rest))
    src = f"def build({params}):\n    o = _new(_twin)\n{body}    o.__class__ = _cls\n    return o\n"
    twin = type(f"_{cls.__name__}Twin", (), {"__slots__": names})
    ns: dict[str, object] = {"_new": object.__new__, "_twin": twin, "_cls": cls, **defaults}
    try:
        exec(src, ns)
        build = ns["build"]
        probe = [object() for _ in expected]
        made = build(*probe)  # type: ignore[operator]
        if type(made) is not cls or made != cls(*probe):
            return generic
    except Exception:  # pragma: no cover - depends on the interpreter
        return generic
    return build  # type: ignore[return-value]
