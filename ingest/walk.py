"""Find the files to index under a root: `.ragignore`, hidden names, symlinks and the size limit."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pathspec

from ingest.config import DEFAULT_MAX_FILE_BYTES
from ingest.records import Skip

IGNORE_FILE = ".ragignore"
# Never documents, even with include_hidden: the store itself and version-control internals
# (thousands of compressed objects that would each come back as a "binary file" skip).
ALWAYS_IGNORED = frozenset({".rag", ".git", ".hg", ".svn"})


def discover(
    root: Path, *, include_hidden: bool = False, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> Iterator[Path | Skip]:
    """Yield the files under root in sorted order, or a `Skip` for each file excluded for a reason."""
    shown = Path(os.path.abspath(root))
    real = shown.resolve()
    spec = _ignore_spec(real)
    yield from _walk(shown, real, "", spec, include_hidden, max_file_bytes, {real})


def human_size(n: int) -> str:
    """Bytes as a short human string: "512 B", "3.2 KB", "50.0 MB"."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _ignore_spec(root: Path) -> pathspec.PathSpec | None:
    path = root / IGNORE_FILE
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _walk(
    shown: Path,
    real_root: Path,
    rel_dir: str,
    spec: pathspec.PathSpec | None,
    include_hidden: bool,
    max_bytes: int,
    seen_dirs: set[Path],
) -> Iterator[Path | Skip]:
    folder = shown / rel_dir if rel_dir else shown
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except PermissionError:
        yield Skip(rel_dir or ".", "permission denied")
        return
    except OSError as e:
        yield Skip(rel_dir or ".", f"cannot list folder: {e.strerror or e}")
        return
    # A folder sorts as "name/" so the walk order equals sorting the relative paths as strings.
    keyed = sorted((e.name + ("/" if _is_dir(e) else ""), e) for e in entries)
    for key, entry in keyed:
        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
        if entry.name in ALWAYS_IGNORED or (not rel_dir and entry.name == IGNORE_FILE):
            continue
        if entry.name.startswith(".") and not include_hidden:
            continue
        is_dir = key.endswith("/")
        if spec is not None and spec.match_file(rel + "/" if is_dir else rel):
            continue
        if entry.is_symlink():
            target = Path(entry.path).resolve()
            if not target.exists():
                yield Skip(rel, "broken symlink")
                continue
            if not target.is_relative_to(real_root):
                yield Skip(rel, "symlink points outside the folder (not followed)")
                continue
            if is_dir and target in seen_dirs:
                continue  # a loop, or a second way into a folder already walked
        if is_dir:
            seen_dirs.add(Path(entry.path).resolve())
            yield from _walk(shown, real_root, rel, spec, include_hidden, max_bytes, seen_dirs)
            continue
        yield from _file(shown, rel, entry, max_bytes)


def _file(shown: Path, rel: str, entry: os.DirEntry[str], max_bytes: int) -> Iterator[Path | Skip]:
    try:
        st = entry.stat()  # follows an in-root symlink to its target
    except OSError as e:
        yield Skip(rel, f"cannot read: {e.strerror or e}")
        return
    if not entry.is_file():
        yield Skip(rel, "not a regular file")  # fifos and sockets would block a reader
    elif st.st_size > max_bytes:
        yield Skip(rel, f"too large: {human_size(st.st_size)} (limit {human_size(max_bytes)})")
    else:
        yield shown / rel


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks, so a linked folder sorts and walks as a folder
    except OSError:
        return False
