"""`GET /api/files/{path}`: a cited source file, and nothing else.

A path is served only when every check passes; otherwise the answer is 404, whichever check failed
(a 403 would tell a prober which files exist). The checks:

- the raw URL holds no encoded dot, slash, backslash or NUL (``%2e``, ``%2f``, ``%5c``, ``%00``):
  a citation's path never needs them, and they are how traversal hides from naive checks;
- the decoded path is relative, with no empty, ``.`` or ``..`` segment, no backslash, no NUL, no drive;
- it is a file the index lists (the manifest), i.e. a source as it appears in citations;
- the real path, after resolving symlinks, is a regular file inside the indexed folder.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Collection
from pathlib import Path, PurePosixPath

_ENCODED_TRICKS = re.compile(rb"%(2e|2f|5c|00)", re.IGNORECASE)
_DRIVE = re.compile(r"^[A-Za-z]:")

# Text types the loaders index, served as UTF-8 text so the page can show and highlight them.
TEXT_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".rst": "text/x-rst",
    ".txt": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
}


def raw_path_is_clean(raw_path: bytes) -> bool:
    """False when the URL as sent encodes a dot, slash, backslash or NUL."""
    return _ENCODED_TRICKS.search(raw_path) is None


def safe_source(source: str) -> bool:
    """Whether a decoded source path is a plain relative POSIX path (no traversal, no absolute path)."""
    if not source or "\\" in source or "\x00" in source or source.startswith("/") or _DRIVE.match(source):
        return False
    return all(part not in ("", ".", "..") for part in source.split("/"))


def resolve_source(root: str | Path, source: str, indexed: Collection[str]) -> Path | None:
    """The file to serve for ``source``, or None when it must not be served."""
    if not root or not safe_source(source) or source not in indexed:
        return None
    base = Path(root).resolve()
    try:
        real = (base / PurePosixPath(source)).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    if not real.is_relative_to(base) or not real.is_file():
        return None
    return real


def media_type(path: Path) -> str:
    """The Content-Type to send: text types as UTF-8, PDFs as PDFs, anything else by extension."""
    suffix = path.suffix.lower()
    if suffix in TEXT_TYPES:
        return TEXT_TYPES[suffix] + "; charset=utf-8"
    guessed = mimetypes.guess_type(path.name)[0]
    if guessed and guessed.startswith("text/"):
        return guessed + "; charset=utf-8"
    return guessed or "application/octet-stream"
