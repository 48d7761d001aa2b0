"""How the CLI talks: results on stdout (text or one JSON object), guidance and errors on stderr."""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ingest.errors import (
    ConfigError,
    IndexMismatch,
    ModelCapabilityError,
    ModelNotFound,
    OllamaError,
    OllamaTimeout,
    OllamaUnreachable,
    RagError,
    StoreError,
    StoreUnreachable,
)

F = TypeVar("F", bound=Callable[..., Any])

# Exit statuses a script can branch on (documented in the README).
EXIT_ERROR = 1  # any other RagError
EXIT_USAGE = 2  # click's own usage errors, and ConfigError
EXIT_UNREACHABLE = 3  # Ollama (or the Chroma server) not reachable / timed out
EXIT_MODEL = 4  # model missing or lacks the capability
EXIT_INDEX = 5  # index mismatch or store failure

_EXIT_BY_TYPE: list[tuple[type[RagError], int]] = [
    (ConfigError, EXIT_USAGE),
    (OllamaUnreachable, EXIT_UNREACHABLE),
    (OllamaTimeout, EXIT_UNREACHABLE),
    (StoreUnreachable, EXIT_UNREACHABLE),
    (ModelNotFound, EXIT_MODEL),
    (ModelCapabilityError, EXIT_MODEL),
    (IndexMismatch, EXIT_INDEX),
    (StoreError, EXIT_INDEX),
    (OllamaError, EXIT_ERROR),
]


def exit_code(err: RagError) -> int:
    """The exit status for an error type."""
    for kind, code in _EXIT_BY_TYPE:
        if isinstance(err, kind):
            return code
    return EXIT_ERROR


# Terminal control sequences a document (or a file name, or a model's answer) could carry: OSC (window
# title, OSC 52 clipboard writes, hyperlinks), CSI (clear screen, cursor moves, colours), DCS/SOS/PM/APC
# strings, and any other ESC-introduced pair. Their 8-bit C1 forms too.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"  # OSC ... BEL or ST
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c)"  # DCS, SOS, PM, APC ... ST
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b[ -/]*[0-~]"  # two-character escapes (ESC c resets the terminal)
)
# What is left after the sequences: C0 controls, DEL, C1 controls, and the bidi overrides that make
# text display in another order than it reads.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = str.maketrans(
    {"\n": "\\n", "\t": "\\t", "\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\x85"}
)


def safe_text(text: str, *, one_line: bool = False) -> str:
    """``text`` made safe to print on a terminal or into a pipe: control sequences and characters
    removed (ESC sequences, OSC 52, ``\\r``, bell), bytes that were not UTF-8 shown as ``\\xNN``.
    ``one_line`` (file names, headings): line breaks and tabs are shown as ``\\n`` / ``\\t``.

    >>> safe_text("a\\x1b]0;x\\x07b\\x1b[2Jc\\rd\\x07e")
    'abcde'
    >>> print(safe_text("notes\\nfinal.md", one_line=True))
    notes\\nfinal.md
    """
    if one_line:
        text = text.translate(_LINE_BREAKS)
    text = _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))
    if any("\udc80" <= ch <= "\udcff" for ch in text):  # a file name's undecodable bytes (surrogateescape)
        text = "".join(f"\\x{ord(ch) - 0xDC00:02x}" if "\udc80" <= ch <= "\udcff" else ch for ch in text)
    return text


def echo(text: str = "", *, nl: bool = True, err: bool = False) -> None:
    """Print plain text (a result on stdout, or guidance with ``err``), made safe first."""
    click.echo(safe_text(text), nl=nl, err=err)


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout (UTF-8, Chinese kept readable)."""
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def note(message: str) -> None:
    """Guidance for a human, on stderr."""
    echo(message, err=True)


def fail(err: RagError) -> None:
    """Print the one-line error and exit with its status (no traceback)."""
    echo(f"error: {safe_text(str(err), one_line=True)}", err=True)
    sys.exit(exit_code(err))


def handle_errors(fn: F) -> F:
    """Turn a RagError raised by a command into a one-line message and an exit status."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RagError as err:
            fail(err)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
