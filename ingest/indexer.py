"""Keep a collection in sync with a folder: embed new and changed files, drop deleted ones.

Files stream through the pipeline one at a time; chunks wait in a small buffer only until a batch
is full. After each batch is stored, the manifest is saved, so an interrupted run loses nothing
and the next run redoes only what was not yet recorded (chunk ids are deterministic, so redoing
is an idempotent upsert).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.chunking import chunk_document
from ingest.config import IndexSettings
from ingest.embedder import Embedder, max_chunk_tokens
from ingest.errors import ConfigError, IndexMismatch, LoadError
from ingest.lexical import LexicalIndex, lexical_path
from ingest.loaders import load
from ingest.manifest import FileEntry, Manifest, file_sha256, manifest_path
from ingest.records import Chunk, IndexReport, Skip
from ingest.store import Store
from ingest.walk import discover

TOKENIZER = "cl100k_base"
# Chunks wait for the embedder in groups of this many batches: big enough to fill batches
# across many small files, small enough that memory stays flat.
BUFFER_BATCHES = 4


@dataclass(frozen=True)
class Progress:
    """Where an index run is, for a progress bar."""

    files_done: int
    files_total: int
    chunks: int
    current: str
    elapsed: float


ProgressFn = Callable[[Progress], None]


@dataclass
class _Pending:
    """Files loaded and chunked, waiting for their embeddings."""

    files: list[tuple[str, FileEntry, list[Chunk], FileEntry | None]] = field(default_factory=list)
    chunks: int = 0


def wanted_fingerprint(settings: IndexSettings, embedder: Embedder) -> dict[str, Any]:
    """The fingerprint these settings would write (dimension and endpoint come from the server)."""
    return {
        "embed_model": embedder.model,
        "document_prefix": embedder.document_prefix,
        "query_prefix": embedder.query_prefix,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap": settings.chunk_overlap,
        "tokenizer": TOKENIZER,
    }


def embedding_text(chunk: Chunk) -> str:
    """What gets embedded: the heading path gives a chunk the context its text may lack."""
    return f"{chunk.heading}\n\n{chunk.text}" if chunk.heading else chunk.text


def reset_index(settings: IndexSettings) -> None:
    """Delete the collection, its manifest and its lexical index (for --rebuild)."""
    if settings.db.exists():
        try:
            Store.open(settings.db, settings.collection).drop()
        except Exception:  # nothing to drop
            pass
    manifest_path(settings.db, settings.collection).unlink(missing_ok=True)
    lexical_path(settings.db, settings.collection).unlink(missing_ok=True)


class Indexer:
    """One sync run of a folder into a collection."""

    def __init__(self, root: Path, settings: IndexSettings, progress: ProgressFn | None = None) -> None:
        self.root = root
        self.settings = settings
        self.progress = progress
        self.report = IndexReport()
        self.store = Store.open(settings.db, settings.collection, create=True)
        self.lexical = LexicalIndex.open(settings.db, settings.collection)
        self.manifest = Manifest.load(settings.db, settings.collection)
        self.embedder = Embedder(settings)
        self.pending = _Pending()
        self._chunk_limits: tuple[int, int] | None = None
        self._fingerprinted = False
        self._started = time.monotonic()

    def run(self) -> IndexReport:
        """Sync the folder; return what changed."""
        try:
            return self._run()
        finally:
            self.embedder.close()
            self.lexical.close()

    def _run(self) -> IndexReport:
        self._check_root()
        self.store.check_fingerprint(wanted_fingerprint(self.settings, self.embedder))
        if self.lexical.outdated or (self.lexical.count() == 0 and self.store.count() > 0):
            self._rebuild_lexical()  # older term rules, or the file was deleted
        self._recover_lost_manifest()
        self.manifest.root = str(self.root)
        files: list[Path] = []
        kept: set[str] = set()  # sources whose old chunks stay even though not re-read
        for item in discover(
            self.root, include_hidden=self.settings.include_hidden, max_file_bytes=self.settings.max_file_bytes
        ):
            if isinstance(item, Skip):
                self.report.skipped.append(item)
                kept.add(item.path)
            else:
                files.append(item)
        seen: set[str] = set(kept)
        for done, path in enumerate(files, 1):
            rel = path.relative_to(self.root).as_posix()
            seen.add(rel)
            self._visit(path, rel)
            if self.pending.chunks >= self.settings.batch_size * BUFFER_BATCHES:
                self._flush()
            self._tick(done, len(files), rel)
        self._flush()
        self._remove_missing(seen)
        self.manifest.save()
        self.report.embed_requests = self.embedder.requests
        self.report.seconds = time.monotonic() - self._started
        return self.report

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise ConfigError(f"{self.root} is not a folder — pass the folder of documents to index")
        if self.manifest.root and self.manifest.root != str(self.root) and self.manifest.files:
            raise IndexMismatch(
                f"collection '{self.settings.collection}' in {self.settings.db} indexes {self.manifest.root}, "
                f"not {self.root} — use another --collection, or --rebuild to replace it"
            )

    def _recover_lost_manifest(self) -> None:
        """Chunks without a manifest (it was deleted): adopt them so stale ones get cleaned up."""
        if self.manifest.files or self.store.count() == 0:
            return
        by_source: dict[str, list[str]] = defaultdict(list)
        for chunk_id, meta in self.store.iter_metadata():
            by_source[str(meta.get("source", ""))].append(chunk_id)
        for source, ids in by_source.items():
            self.manifest.files[source] = FileEntry("", -1, -1.0, tuple(ids))

    def _rebuild_lexical(self, batch: int = 500) -> None:
        """The lexical index is outdated or missing: re-add every stored chunk's text.

        Chroma holds each chunk's text, source and kind, so nothing is re-read or re-embedded.
        """
        self.lexical.reset()
        ids = [chunk_id for chunk_id, _ in self.store.iter_metadata()]
        for start in range(0, len(ids), batch):
            self.lexical.add(self.store.get(ids[start : start + batch]))
        self.lexical.commit()
        self.report.warnings.append(
            Skip(lexical_path(self.settings.db, self.settings.collection).name,
                 f"rebuilt the lexical index from {len(ids)} stored chunks")
        )

    def _visit(self, path: Path, rel: str) -> None:
        old = self.manifest.files.get(rel)
        try:
            stat = path.stat()
            if old and old.size == stat.st_size and old.mtime == stat.st_mtime:
                self.report.unchanged.append(rel)
                return
            digest = file_sha256(path)
        except OSError as exc:
            self.report.skipped.append(Skip(rel, f"unreadable: {exc.strerror or exc}"))
            return
        if old and old.sha256 == digest:  # touched, not changed
            self.manifest.files[rel] = FileEntry(digest, stat.st_size, stat.st_mtime, old.chunk_ids)
            self.report.unchanged.append(rel)
            return
        try:
            loaded = load(path, self.root)
        except LoadError as exc:
            # A file that broke keeps its old chunks: nothing already indexed is lost.
            self.report.skipped.append(Skip(rel, str(exc)))
            return
        self.report.warnings.extend(loaded.warnings)
        size, overlap = self._chunk_sizes()
        chunks = [c for doc in loaded.documents for c in chunk_document(doc, chunk_tokens=size, chunk_overlap=overlap)]
        if not chunks:
            self.report.skipped.append(Skip(rel, "no text to index"))
            return
        entry = FileEntry(digest, stat.st_size, stat.st_mtime, tuple(c.id for c in chunks))
        self.pending.files.append((rel, entry, chunks, old))
        self.pending.chunks += len(chunks)

    def _chunk_sizes(self) -> tuple[int, int]:
        """Chunk size clamped to the embedding model's window (asked once, only when there is work)."""
        if self._chunk_limits is None:
            size = self.settings.chunk_tokens
            limit = max_chunk_tokens(self.embedder.model, self.embedder.context_length())
            if limit:
                size = min(size, limit)
            self._chunk_limits = (size, min(self.settings.chunk_overlap, size // 3))
        return self._chunk_limits

    def _flush(self) -> None:
        if not self.pending.files:
            return
        chunks = [c for _, _, file_chunks, _ in self.pending.files for c in file_chunks]
        vectors = self.embedder.embed_documents([embedding_text(c) for c in chunks])
        self._fingerprint_once(int(vectors.shape[1]))
        self.store.add(chunks, vectors)
        self.lexical.add(chunks)
        for rel, entry, _, old in self.pending.files:
            if old:
                stale = sorted(set(old.chunk_ids) - set(entry.chunk_ids))
                self.store.delete(stale)
                self.lexical.delete(stale)
                self.report.updated.append(rel)
            else:
                self.report.added.append(rel)
            self.manifest.files[rel] = entry
        self.report.chunks += len(chunks)
        self.lexical.commit()
        self.manifest.save()
        self.pending = _Pending()

    def _fingerprint_once(self, dimension: int) -> None:
        """Check and record the full fingerprint at the first flush (dimension and endpoint are known now)."""
        if self._fingerprinted:
            return
        self._fingerprinted = True
        wanted = wanted_fingerprint(self.settings, self.embedder)
        wanted.update(dimension=dimension, endpoint=self.embedder.endpoint)
        self.store.check_fingerprint(wanted)
        if self.store.fingerprint() != wanted:
            self.store.set_fingerprint(wanted)

    def _remove_missing(self, seen: set[str]) -> None:
        for rel in sorted(set(self.manifest.files) - seen):
            ids = list(self.manifest.files.pop(rel).chunk_ids)
            self.store.delete(ids)
            self.lexical.delete(ids)
            self.report.removed.append(rel)
        self.lexical.commit()

    def _tick(self, done: int, total: int, current: str) -> None:
        if self.progress:
            chunks = self.report.chunks + self.pending.chunks
            self.progress(Progress(done, total, chunks, current, time.monotonic() - self._started))


def index_folder(
    root: str | Path, settings: IndexSettings, *, rebuild: bool = False, progress: ProgressFn | None = None
) -> IndexReport:
    """Sync ``root`` into the collection named by ``settings``; ``rebuild`` starts from empty."""
    root = Path(root).expanduser().resolve()
    if rebuild:
        reset_index(settings)
    return Indexer(root, settings, progress).run()
