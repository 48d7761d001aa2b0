"""File names as `source` strings: always valid UTF-8, safe to print, and reversible to the file.

A POSIX file name is bytes. Python hands an undecodable byte to us as a lone surrogate
(U+DC80-U+DCFF, "surrogateescape"), which cannot be written as UTF-8 (JSON, Chroma, SQLite) and
crashes `print`. So a source name escapes, and `source_path` undoes it exactly:

    byte that is not part of valid UTF-8   ->  \\xNN   (b"\\xe9\\xff.md" -> "\\xe9\\xff.md")
    control character U+0000-U+001F, U+007F ->  \\xNN   (a newline in a name -> "\\x0a")
    U+0080-U+009F, line/paragraph separators and bidi overrides -> \\uNNNN (they reorder or break a line)
    backslash                              ->  \\\\

Every other character stays as it is, so ordinary names (Chinese ones too) are their own source
name. `\\xNN` always means the raw byte NN, so the mapping is one-to-one and round-trips for any
name the file system can hold.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Characters that move or break a terminal line even though they are printable in Unicode terms.
_UNSAFE = frozenset("\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_ESCAPE = re.compile(r"\\(\\|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})")


def source_name(rel: str) -> str:
    """The source name of a path relative to the indexed root ("/"-separated, as the walker gives it)."""
    raw = os.fsencode(rel)
    if raw.isascii() and rel.isprintable() and "\\" not in rel:
        return rel  # the common case, unchanged
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        try:
            text = raw[pos:].decode("utf-8")
            bad = len(raw)
        except UnicodeDecodeError as e:
            text = raw[pos : pos + e.start].decode("utf-8")
            bad = pos + e.start
        out.extend(_escape_char(c) for c in text)
        if bad < len(raw):
            out.append(f"\\x{raw[bad]:02x}")  # one undecodable byte; decoding resumes after it
        pos = bad + 1
    return "".join(out)


def source_path(root: Path, source: str) -> Path:
    """The file a source name stands for: the exact inverse of `source_name` (below root)."""
    raw = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(source):
        raw += source[pos : m.start()].encode("utf-8")
        code = m.group(1)
        if code == "\\":
            raw += b"\\"
        elif code[0] == "x":
            raw.append(int(code[1:], 16))
        else:
            raw += chr(int(code[1:], 16)).encode("utf-8")
        pos = m.end()
    raw += source[pos:].encode("utf-8")
    return Path(root) / os.fsdecode(bytes(raw))


def _escape_char(c: str) -> str:
    if c == "\\":
        return "\\\\"
    code = ord(c)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if 0x80 <= code <= 0x9F or c in _UNSAFE:
        return f"\\u{code:04x}"
    return c
