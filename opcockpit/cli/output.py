"""The snapshot's text formats (table, JSON, NDJSON, CSV) as the CLI prints them.

Shared by `snapshot` and the alert pieces of `snapshot --check` (alerts_cli), so neither imports
the other."""

from __future__ import annotations

import re
import sys

from opcockpit.domain.models import GroundTruth


def format_snapshot(gt: GroundTruth, fmt: str, *, width: int | None = None) -> str:
    if fmt == "json":
        return json_document(gt).decode("utf-8")
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


def json_document(gt: GroundTruth) -> bytes:
    """`snapshot --format json` as the UTF-8 bytes to write (C1 escaped, newline-terminated)."""
    from opcockpit.formats.serialize import json_bytes

    return escape_c1_bytes(json_bytes(gt)) + b"\n"


def write_out(data: bytes) -> None:
    """Write `data` to stdout as bytes (no decode/encode round trip), flushed."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stream (a caller's StringIO)
        sys.stdout.write(data.decode("utf-8"))
    else:
        sys.stdout.flush()
        buffer.write(data)
        buffer.flush()


_C1 = re.compile("[\x7f-\x9f]")
_C1_UTF8 = re.compile(b"\x7f|\xc2[\x80-\x9f]")


def escape_c1(text: str) -> str:
    """JSON text with DEL and C1 controls (8-bit CSI/OSC) written as \\u escapes.

    The encoder (ensure_ascii=False) escapes only U+0000..U+001F; U+007F..U+009F can only occur
    inside JSON strings, where the escape is lossless. Clean output is returned as is, found
    clean by byte scans rather than the regex (~40 ms over a 10k-lease document, issue 9): in
    UTF-8, DEL is the byte 7F and U+0080..U+00BF (C1 among them) start with the byte C2.
    """
    if text.isascii():
        if "\x7f" not in text:
            return text
    else:
        data = text.encode("utf-8", "surrogatepass")  # a lone surrogate is data here, not an error
        if b"\x7f" not in data and b"\xc2" not in data:
            return text
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def escape_c1_bytes(data: bytes) -> bytes:
    """escape_c1 over UTF-8 bytes: DEL is the byte 7F and U+0080..U+009F are C2 80..C2 9F (C2 is
    only ever a lead byte in UTF-8, so the scan cannot match inside another character)."""
    if b"\x7f" not in data and b"\xc2" not in data:
        return data
    return _C1_UTF8.sub(lambda m: b"\\u%04x" % ord(m.group().decode("utf-8")), data)


def _terminal_width() -> int:
    import shutil

    return max(80, shutil.get_terminal_size((160, 24)).columns)
