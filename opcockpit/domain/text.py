"""One sanitizer for untrusted text on its way to a terminal.

sandbox.db fields (``last_error``, commands, payloads) and provider records are written by other
programs. A string holding ``ESC ]0;title BEL`` retitles the operator's terminal, OSC 52 writes
their clipboard, CSI sequences move the cursor. Everything that reaches a terminal (table output,
the TUI) passes through :func:`safe_text`; JSON output keeps the original, escaped by the encoder.
"""

from __future__ import annotations

import re

# C0 controls except TAB/LF, DEL, and the C1 range (U+0080..U+009F: 8-bit CSI/OSC/ST).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NEWLINES = re.compile(r"[\t\n]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return "^[" if char == "\x1b" else f"\\x{ord(char):02x}"


def safe_text(value: object, *, single_line: bool = True) -> str:
    """`value` as text with every control character made visible (ESC as ``^[``, others as ``\\xNN``).

    With `single_line` (table cells, one-line reasons) tabs and newlines become spaces too.
    """
    text = value if isinstance(value, str) else str(value)
    if single_line:
        text = _NEWLINES.sub(" ", text)
    return _CONTROL.sub(_escape, text)


# How much of an error message a one-line surface keeps (reasons, toasts, stderr lines, ledger
# notes). LEON's own last_error limit (500) is LEON's contract and lives with the LEON writer.
ERROR_CLIP = 240


def one_line(text: object, limit: int = ERROR_CLIP) -> str:
    """`text` on one terminal-safe line, cut to `limit` characters with an ellipsis.

    The one error clip: every place that shows an error message in one line uses this.
    """
    flat = " ".join(safe_text(text, single_line=False).split())
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)] + "…"


def error_line(exc: BaseException, limit: int = ERROR_CLIP) -> str:
    """'Type: message' for an exception (just the type when the message is empty), one line."""
    text = str(exc).strip()
    return one_line(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, limit)
