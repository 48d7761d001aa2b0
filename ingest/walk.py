"""Find the files to index under a root: `.ragignore`, hidden names, symlinks and the size limit.

No entry can stop the walk: anything wrong with one entry (a symlink loop, a FIFO, a folder that
cannot be listed, a path too long to open) becomes a `Skip`, and a `.ragignore` line that git would
ignore becomes a `Notice`. The walk keeps its own stack, so depth is not limited by recursion.
Symlinks: a file link inside the root is followed; a folder link inside the root is not (the folder
is walked under its own name); any link leading out of the root is a `Skip`.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pathspec

from ingest.config import DEFAULT_MAX_FILE_BYTES
from ingest.loaders import one_line
from ingest.paths import source_name
from ingest.records import Notice, Skip

IGNORE_FILE = ".ragignore"
# Never documents, even with include_hidden: the store itself and version-control internals
# (thousands of compressed objects that would each come back as a "binary file" skip).
ALWAYS_IGNORED = frozenset({".rag", ".git", ".hg", ".svn"})
_NOT_REGULAR = ((stat.S_ISFIFO, "named pipe"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                (stat.S_ISBLK, "block device"))


def discover(
    root: Path, *, include_hidden: bool = False, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> Iterator[Path | Skip | Notice]:
    """Yield the files under root in sorted order, a `Skip` for each entry excluded for a reason,
    and a `Notice` for each `.ragignore` line that matches nothing (git ignores those lines too).

    `Skip.path` and `Notice.path` are source names (`ingest.paths.source_name`): valid UTF-8.
    """
    shown = Path(os.path.abspath(root))
    real = Path(os.path.realpath(shown))
    spec, notices = _ignore_spec(real)
    yield from notices
    walk = _Walk(shown, real, spec, include_hidden, max_file_bytes)
    yield from walk.run()


def human_size(n: float) -> str:
    """Bytes in decimal units, as Ollama shows sizes: "512 B", "3.2 KB", "50.0 MB" (1 MB = 1,000,000 bytes).

    The one byte formatter: file limits here, model sizes and pull progress in `rag models`.
    """
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1000:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


# --- .ragignore ------------------------------------------------------------------------------------

def _ignore_spec(root: Path) -> tuple[pathspec.PathSpec | None, list[Notice]]:
    """The root's `.ragignore` as a spec, and a notice for each line that git would drop.

    git treats a pattern it cannot use (a reversed range `[z-a]`, a trailing `\\`, a lone `!`) as
    one that matches nothing; pathspec raises on them, so each line is compiled on its own first.
    """
    path = root / IGNORE_FILE
    try:
        st = os.stat(path)
    except OSError:
        return None, []  # no .ragignore (or one we cannot see): nothing to honour
    if not stat.S_ISREG(st.st_mode):
        return None, [Notice(IGNORE_FILE, "not a regular file; its rules were not read")]
    try:
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    except OSError as e:
        return None, [Notice(IGNORE_FILE, f"cannot read ({e.strerror or e}); its rules were not read")]
    kept: list[str] = []
    notices: list[Notice] = []
    for number, line in enumerate(lines, start=1):
        try:
            pathspec.GitIgnoreSpec.from_lines([line])
        except Exception as e:  # noqa: BLE001 - pathspec raises re.error, ValueError and its own errors
            shown = line.strip()
            notices.append(Notice(f"{IGNORE_FILE}:{number}",
                                  f"line {number} {shown!r} is not a valid pattern and matches nothing, "
                                  f"as in git ({one_line(e)})"))
            kept.append("")  # keep the line numbering of the rest
            continue
        kept.append(line)
    return pathspec.GitIgnoreSpec.from_lines(kept), notices


# --- the walk --------------------------------------------------------------------------------------

@dataclass
class _Folder:
    rel: str  # "" for the root
    entries: Iterator[tuple[str, os.DirEntry[str]]]


class _Walk:
    """A depth-first walk in sorted order with an explicit stack (a 2,000-level tree is fine)."""

    def __init__(self, shown: Path, real_root: Path, spec: pathspec.PathSpec | None,
                 include_hidden: bool, max_bytes: int) -> None:
        self.shown = shown
        self.real_root = real_root
        self.spec = spec
        self.include_hidden = include_hidden
        self.max_bytes = max_bytes
        self.seen_dirs: set[tuple[int, int]] = set()  # (device, inode): a loop cannot fool it

    def run(self) -> Iterator[Path | Skip | Notice]:
        try:
            st = os.stat(self.shown)
        except OSError as e:
            yield Skip(".", f"cannot list folder: {e.strerror or e}")
            return
        self.seen_dirs.add((st.st_dev, st.st_ino))
        stack: list[_Folder] = []
        opened = self._open("")
        if isinstance(opened, Skip):
            yield opened
            return
        stack.append(opened)
        while stack:
            folder = stack[-1]
            item = next(folder.entries, None)
            if item is None:
                stack.pop()
                continue
            key, entry = item
            rel = f"{folder.rel}/{entry.name}" if folder.rel else entry.name
            try:
                result = self._entry(rel, entry, is_dir=key.endswith("/"))
            except OSError as e:  # the entry vanished or cannot be examined
                result = Skip(source_name(rel), f"cannot read: {e.strerror or e}")
            if isinstance(result, _Folder):
                stack.append(result)
            elif result is not None:
                yield result

    def _open(self, rel: str) -> _Folder | Skip:
        folder = self.shown / rel if rel else self.shown
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except PermissionError:
            return Skip(source_name(rel or "."), "permission denied")
        except OSError as e:
            return Skip(source_name(rel or "."), f"cannot list folder: {e.strerror or e}")
        # A folder sorts as "name/" so the walk order equals sorting the relative paths as strings.
        keyed = sorted((e.name + ("/" if _is_dir(e) else ""), e) for e in entries)
        return _Folder(rel, iter(keyed))

    def _entry(self, rel: str, entry: os.DirEntry[str], *, is_dir: bool) -> Path | Skip | _Folder | None:
        """What one folder entry becomes: a file, a skip, a folder to walk, or nothing (ignored)."""
        top = "/" not in rel
        if entry.name in ALWAYS_IGNORED or (top and entry.name == IGNORE_FILE):
            return None
        if entry.name.startswith(".") and not self.include_hidden:
            return None
        if self.spec is not None and self.spec.match_file(rel + "/" if is_dir else rel):
            return None
        if entry.is_symlink():
            problem = self._link_problem(entry)
            if problem:
                return Skip(source_name(rel), problem)
            if is_dir:
                # Its target is inside the root, so the walk reaches it under its own name: a file
                # keeps one source name whichever way the links sort (and a link loop ends here).
                return None
        if is_dir:
            st = entry.stat()
            key = (st.st_dev, st.st_ino)
            if key in self.seen_dirs:
                return None  # a bind mount of a folder already walked
            self.seen_dirs.add(key)
            return self._open(rel)
        return self._file(rel, entry)

    def _link_problem(self, entry: os.DirEntry[str]) -> str:
        """Why a symlink is not followed, or "" when it points to something inside the root."""
        try:
            os.stat(entry.path)
        except OSError as e:
            if e.errno == errno.ELOOP:
                return "symlink loop (the link points back to itself)"
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                return "broken symlink"
            return f"cannot follow symlink: {e.strerror or e}"
        target = Path(os.path.realpath(entry.path))
        if not target.is_relative_to(self.real_root):
            return "symlink points outside the folder (not followed)"
        return ""

    def _file(self, rel: str, entry: os.DirEntry[str]) -> Path | Skip:
        st = entry.stat()  # follows an in-root symlink to its target
        for test, what in _NOT_REGULAR:
            if test(st.st_mode):
                return Skip(source_name(rel), f"not a regular file ({what})")  # a reader would block
        if not stat.S_ISREG(st.st_mode):
            return Skip(source_name(rel), "not a regular file")
        if st.st_size > self.max_bytes:
            return Skip(source_name(rel),
                        f"too large: {human_size(st.st_size)} (limit {human_size(self.max_bytes)})")
        return self.shown / rel


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks, so a linked folder sorts and walks as a folder
    except OSError:
        return False
