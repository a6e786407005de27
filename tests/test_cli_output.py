"""cli/output.escape_c1: DEL and C1 controls in the JSON/NDJSON text become \\u escapes, exactly as
the one regex substitution would write them; its byte-scan shortcut (issue 9) never skips one, and
escape_c1_bytes (the JSON snapshot, written as bytes) writes the very same text."""

from __future__ import annotations

import json
import random
import re

from opcockpit.cli.output import escape_c1, escape_c1_bytes

_C1 = re.compile("[\x7f-\x9f]")


def _reference(text: str) -> str:
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


ALPHABET = ["a", '"', "\\", "\x00", "\n", "\x7f", "\x80", "\x85", "\x9b", "\x9f", "\xa0", "\xbf",
            "\xc0", "é", "…", "\ud800", "😀"]  # fmt: skip


def test_escape_c1_equals_the_regex_substitution() -> None:
    rng = random.Random(9)
    changed = 0
    for _ in range(20_000):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 10)))
        out = escape_c1(text)
        assert out == _reference(text), repr(text)
        changed += out != text
    assert changed > 1000  # the generator does produce controls to escape


def test_escaped_json_still_decodes_to_the_same_value() -> None:
    value = {"reason": "paused\x9b[31m … \x7f é \x85"}
    text = escape_c1(json.dumps(value, ensure_ascii=False))
    assert json.loads(text) == value
    assert not _C1.search(text)
    clean = json.dumps({"reason": "ok … é"}, ensure_ascii=False)
    assert escape_c1(clean) is clean  # clean output is returned as is


def test_escape_c1_bytes_writes_what_escape_c1_writes() -> None:
    rng = random.Random(10)
    encodable = [c for c in ALPHABET if c != "\ud800"]  # bytes are UTF-8: no lone surrogate
    changed = 0
    for _ in range(20_000):
        text = "".join(rng.choice(encodable) for _ in range(rng.randint(0, 10)))
        data = text.encode("utf-8")
        out = escape_c1_bytes(data)
        assert out == escape_c1(text).encode("utf-8"), repr(text)
        changed += out != data
    assert changed > 1000
    clean = "ok … é".encode()
    assert escape_c1_bytes(clean) is clean
