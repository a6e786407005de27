"""A provider's raw record made safe to show (k9s `y`): secrets masked, then YAML-ish text.

Pure: a JSON value in, a JSON value / text out. Masks by key name (`is_secret_name`: token,
password, api_key, ...), `NAME=value` strings whose NAME is secret-named (Docker's `Config.Env`),
and whatever `scrub` recognises in free text (remembered config secrets, credential shapes).
"""

from __future__ import annotations

import json
import re
from typing import Any

from opcockpit.domain.secrets import MASK, is_secret_name, scrub
from opcockpit.domain.text import safe_text

__all__ = ["redact_record", "render_record"]

_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*)=(.*)", re.DOTALL)


def redact_record(value: Any, *, key: str | None = None) -> Any:
    """A copy of `value` with every secret masked (structure and non-secret values unchanged)."""
    if isinstance(value, dict):
        return {
            str(k): MASK if _secret_key(str(k)) and _is_scalar(v) and v not in ("", None)
            else redact_record(v, key=str(k))
            for k, v in value.items()
        }  # fmt: skip
    if isinstance(value, list | tuple):
        return [redact_record(v, key=key) for v in value]
    if isinstance(value, str):
        m = _ASSIGN.fullmatch(value)
        if m and _secret_key(m.group(1)) and m.group(2):
            return f"{m.group(1)}={MASK}"
        return scrub(value)
    return value


def _secret_key(name: str) -> bool:
    # Identifiers are not credentials: `leon.session_id`, `SessionID` name a thing, they open nothing.
    if re.search(r"(?:[_.-]id|Id|ID)$", name):
        return False
    return is_secret_name(name)


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def render_record(value: Any, *, style: str = "yaml") -> str:
    """`value` as text: "yaml" (k9s-like, block style, one scalar per line) or "json" (indented).
    Terminal-unsafe characters are made visible either way."""
    if style == "json":
        return safe_text(json.dumps(value, indent=2, ensure_ascii=False, default=str), single_line=False)
    lines: list[str] = []
    _yaml(value, 0, lines)
    return "\n".join(lines)


def _scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    text = safe_text(str(v))
    # Quote what YAML would read as something else (empty, numbers, flow syntax, `key: value`).
    if (
        not text
        or text != text.strip()
        or re.fullmatch(r"[-+.\d]+|true|false|null|~", text)
        or any(c in text for c in ":#{}[],&*!|>'\"%@`")
    ):
        return json.dumps(text, ensure_ascii=False)
    return text


def _leaf(v: Any) -> str:
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return _scalar(v)


def _yaml(value: Any, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            out.append(pad + "{}")
        for k, v in value.items():
            key = _scalar(k)
            if isinstance(v, dict | list) and v:
                out.append(f"{pad}{key}:")
                _yaml(v, indent + 1, out)
            else:
                out.append(f"{pad}{key}: {_leaf(v)}")
        return
    if isinstance(value, list):
        if not value:
            out.append(pad + "[]")
        for v in value:
            if isinstance(v, dict | list) and v:
                sub: list[str] = []
                _yaml(v, indent + 1, sub)
                first = sub[0].lstrip()
                out.append(f"{pad}- {first}")
                out.extend(sub[1:])
            else:
                out.append(f"{pad}- {_leaf(v)}")
        return
    out.append(pad + _scalar(value))
