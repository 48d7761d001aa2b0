"""The manifest: what the index holds for each file, so a re-run embeds only what changed.

It lives beside the store (``<db>/<collection>.manifest.json``) and is replaced atomically
(write a temp file, fsync, rename), and only after the chunks it lists are stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ingest.errors import StoreError

VERSION = 1


@dataclass(frozen=True)
class FileEntry:
    """What was indexed from one file."""

    sha256: str
    size: int
    mtime: float
    chunk_ids: tuple[str, ...] = ()


@dataclass
class Manifest:
    """Source path (relative to ``root``) -> FileEntry."""

    path: Path
    root: str = ""
    files: dict[str, FileEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, db: Path, collection: str) -> Manifest:
        """Read the manifest, or an empty one when there is none yet."""
        path = manifest_path(db, collection)
        if not path.exists():
            return cls(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            files = {
                src: FileEntry(e["sha256"], int(e["size"]), float(e["mtime"]), tuple(e["chunk_ids"]))
                for src, e in raw.get("files", {}).items()
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"the manifest {path} is unreadable ({exc}) — delete it and re-run `rag index PATH`"
            ) from None
        return cls(path, str(raw.get("root", "")), files)

    def save(self) -> None:
        """Write atomically: readers see the old manifest or the new one, never half of one."""
        data = {
            "version": VERSION,
            "root": self.root,
            "files": {src: asdict(e) | {"chunk_ids": list(e.chunk_ids)} for src, e in sorted(self.files.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, ensure_ascii=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete_file(self) -> None:
        """Remove the manifest from disk (for --rebuild)."""
        self.path.unlink(missing_ok=True)
        self.files.clear()


def manifest_path(db: Path, collection: str) -> Path:
    """Where the manifest of a collection lives."""
    return Path(db) / f"{collection}.manifest.json"


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks so big files do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
