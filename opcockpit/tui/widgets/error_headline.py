"""What an error group's row says first (issue 15, bug 11): the status and the cause in words.

Provider SDKs raise errors as `Error code: 529 - {'type': 'error', 'error': {'type':
'overloaded_error', 'message': 'Overloaded'}}`. The normalised signature keeps every word, but at 80
columns the Error column cuts it at `{'type': 'error', 'error': {'type': 'over…`: the cause is
what the cut hides. The headline puts `529 overloaded_error: Overloaded` in front of the text, so
the cause is on screen however narrow the column; the whole signature still follows it.
"""

from __future__ import annotations

import re

__all__ = ["error_headline"]

# `Error code: 529 - {…}` (Anthropic/OpenAI SDKs), also `529 - {…}`; the body is a Python dict repr.
_STATUS_BODY = re.compile(r"^\s*(?:error code:\s*)?(\d{3})\s*-\s*(\{.*\})\s*$", re.IGNORECASE | re.DOTALL)
# 'type': 'x' / 'message': 'y' pairs of that repr; the innermost (last) one is the specific cause.
_FIELD = re.compile(r"""['"](type|message|code)['"]\s*:\s*['"]([^'"]*)['"]""")
_GENERIC_TYPES = {"error", "<str>"}


def error_headline(text: str) -> str:
    """`529 overloaded_error: Overloaded · <text>` for a status + dict error; any other text as it is."""
    m = _STATUS_BODY.match(text)
    if m is None:
        return text
    status, body = m.groups()
    fields: dict[str, str] = {}
    for name, value in _FIELD.findall(body):
        if name == "type" and value in _GENERIC_TYPES:
            continue  # the outer envelope's type says nothing ('error')
        fields[name] = value  # later (inner) values win
    cause = fields.get("type") or fields.get("code") or ""
    message = fields.get("message", "")
    if message == "<str>" or message.lower() == cause.replace("_error", "").lower():
        message = ""  # a placeholder, or 'Overloaded' beside overloaded_error: nothing new
    words = " ".join(w for w in (status, cause) if w)
    if message:
        words = f"{words}: {message}" if cause else f"{words} {message}"
    return f"{words} · {text}" if words != status else text
