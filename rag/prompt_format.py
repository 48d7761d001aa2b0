"""The passage markers of the answer prompt, written by `rag.answer` and read by the bundled engines.

Passages are data, not instructions: each one sits between an opening line
``<passage n="1" source="docs/guide.md — Setup">`` and a closing line ``</passage>``, and the question
follows the last closing line. A document cannot forge a marker, because `neutralise` escapes anything in
its text that a reader could take for one. (docs/ARCHITECTURE.md, "Prompt format".)

Standard library only: the bundled server imports this too.
"""

from __future__ import annotations

import re

PASSAGE_CLOSE = "</passage>"
QUESTION_LABEL = "Question:"
_OPEN_RE = re.compile(r'^<passage n="(\d{1,4})" source="(.*)">$')
# What a reader (human or model) might take for a marker: ASCII or full-width angle brackets, an optional
# slash, spaces or line breaks in between, any letter case.
_MARKER_LIKE_RE = re.compile(r"[<＜﹤‹〈]\s*[/／]?\s*passage", re.IGNORECASE)
# Invisible characters that could hide a marker from the escaping (`</pas\u200bsage>`).
_INVISIBLE_RE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def neutralise(text: str) -> str:
    """``text`` with every would-be passage marker escaped (its bracket becomes ``&lt;``)."""
    return _MARKER_LIKE_RE.sub(lambda m: "&lt;" + m.group()[1:], _INVISIBLE_RE.sub("", text))


def passage_open(number: int, label: str) -> str:
    """The opening marker line; the label (file, page, heading) is flattened to one line and escaped."""
    flat = " ".join(_CONTROL_RE.sub(" ", neutralise(label)).split()).replace('"', "'")
    return f'<passage n="{number}" source="{flat}">'


def parse_open(line: str) -> tuple[int, str] | None:
    """The number and label of an opening marker line, None for any other line."""
    match = _OPEN_RE.match(line.strip())
    return (int(match.group(1)), match.group(2)) if match else None
