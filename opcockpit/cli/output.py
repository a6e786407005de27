"""The snapshot's text formats (table, JSON, NDJSON, CSV) as the CLI prints them.

Shared by `snapshot` and the alert pieces of `snapshot --check` (alerts_cli), so neither imports
the other."""

from __future__ import annotations

import re

from opcockpit.domain.models import GroundTruth


def format_snapshot(gt: GroundTruth, fmt: str, *, width: int | None = None) -> str:
    if fmt == "json":
        from opcockpit.formats.serialize import dumps_json

        return escape_c1(dumps_json(gt)) + "\n"
    if fmt == "ndjson":
        from opcockpit.formats.serialize import iter_ndjson

        return escape_c1("".join(line + "\n" for line in iter_ndjson(gt)))
    if fmt == "csv":
        from opcockpit.formats.serialize import csv_text

        return csv_text(gt)
    import io

    from opcockpit.formats.table import render_table

    buf = io.StringIO()
    render_table(gt, buf, width=width or _terminal_width())
    return buf.getvalue()


_C1 = re.compile("[\x7f-\x9f]")


def escape_c1(text: str) -> str:
    """JSON text with DEL and C1 controls (8-bit CSI/OSC) written as \\u escapes.

    The encoder (ensure_ascii=False) escapes only U+0000..U+001F; U+007F..U+009F can only occur
    inside JSON strings, where the escape is lossless. The search runs in C; clean output is as is.
    """
    if _C1.search(text) is None:
        return text
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _terminal_width() -> int:
    import shutil

    return max(80, shutil.get_terminal_size((160, 24)).columns)
