"""The Chroma collection that holds the chunks, and the fingerprint that says how they were made.

All Chroma calls go through this module, which maps Chroma's exceptions to `StoreError`.
The fingerprint lives in the collection metadata under ``rag_*`` keys, so the index describes itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.errors import ConfigError, IndexMismatch, RagError, StoreError
from ingest.records import Chunk

FINGERPRINT_KEYS = (
    "embed_model",
    "dimension",
    "document_prefix",
    "query_prefix",
    "endpoint",
    "chunk_tokens",
    "chunk_overlap",
    "tokenizer",
)
# What a mismatch in each key means for the user, in the error message.
_KEY_LABELS = {
    "embed_model": "embedding model",
    "dimension": "embedding dimension",
    "document_prefix": "document prefix",
    "query_prefix": "query prefix",
    "endpoint": "embedding endpoint",
    "chunk_tokens": "chunk size (--chunk-tokens)",
    "chunk_overlap": "chunk overlap (--chunk-overlap)",
    "tokenizer": "tokenizer",
}
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$")


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as read back from Chroma."""

    id: str
    text: str
    source: str
    page: int | None
    heading: str
    kind: str
    tokens: int
    embedding: np.ndarray | None = None
    distance: float | None = None


def _chroma_client(db: Path) -> Any:
    import chromadb
    from chromadb.config import Settings

    # Telemetry off: nothing about the user's documents or usage leaves the machine.
    return chromadb.PersistentClient(
        path=str(db), settings=Settings(anonymized_telemetry=False, allow_reset=False)
    )


def fingerprint_mismatch(stored: dict[str, Any], wanted: dict[str, Any], collection: str, db: Path) -> str:
    """A one-line explanation of how two fingerprints differ, or "" when they agree."""
    for key in FINGERPRINT_KEYS:
        if key in wanted and wanted[key] is not None and key in stored and stored[key] != wanted[key]:
            label = _KEY_LABELS[key]
            return (
                f"collection '{collection}' in {db} was built with {label} {stored[key]!r}, not "
                f"{wanted[key]!r} — rebuild it with `rag index PATH --rebuild` (re-embeds everything), "
                f"or use the original setting"
                + (f" (--embed-model {stored[key]})" if key == "embed_model" else "")
            )
    return ""


class Store:
    """One Chroma collection (cosine space) plus its fingerprint."""

    def __init__(self, db: Path, collection: str, client: Any, chroma_collection: Any) -> None:
        self.db = db
        self.name = collection
        self._client = client
        self._col = chroma_collection

    @classmethod
    def open(cls, db: Path, collection: str, *, create: bool = False) -> Store:
        """Open the collection; with ``create`` make it (and the folder) when missing."""
        db = Path(db)
        if not _COLLECTION_NAME.match(collection):
            raise ConfigError(
                f"collection name {collection!r} is invalid — use 3-63 letters, digits, '.', '_' or '-'"
            )
        if not create and not db.exists():
            raise StoreError(f"no index at {db} — run `rag index PATH` first (or pass --db)")
        try:
            if create:
                db.mkdir(parents=True, exist_ok=True)
            client = _chroma_client(db)
            if create:
                col = client.get_or_create_collection(
                    collection, metadata={"hnsw:space": "cosine"}, embedding_function=None
                )
            else:
                col = client.get_collection(collection, embedding_function=None)
        except RagError:
            raise
        except Exception as exc:  # chromadb raises bare ValueError/NotFoundError/sqlite errors
            if not create and ("does not exist" in str(exc) or "NotFound" in type(exc).__name__):
                raise StoreError(
                    f"no collection '{collection}' in {db} — run `rag index PATH --collection {collection}`"
                ) from None
            raise StoreError(f"cannot open the index at {db}: {exc} — check the path, or rebuild it") from None
        return cls(db, collection, client, col)

    # -- fingerprint ---------------------------------------------------------------------------

    def fingerprint(self) -> dict[str, Any] | None:
        """The stored index fingerprint, or None for a collection not yet fingerprinted."""
        meta = self._col.metadata or {}
        fp = {k[4:]: v for k, v in meta.items() if k.startswith("rag_")}
        return fp or None

    def set_fingerprint(self, fingerprint: dict[str, Any]) -> None:
        """Record the fingerprint (values must be str/int/float/bool)."""
        meta = {f"rag_{k}": v for k, v in fingerprint.items() if v is not None}
        self._guard(lambda: self._col.modify(metadata=meta))

    def check_fingerprint(self, wanted: dict[str, Any]) -> None:
        """Raise IndexMismatch when the stored fingerprint disagrees with ``wanted``."""
        stored = self.fingerprint()
        if stored:
            problem = fingerprint_mismatch(stored, wanted, self.name, self.db)
            if problem:
                raise IndexMismatch(problem)

    # -- chunks --------------------------------------------------------------------------------

    def count(self) -> int:
        """Number of chunks stored."""
        return int(self._guard(self._col.count))

    def add(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        """Store (upsert) chunks with their embeddings; ids are deterministic so re-adding is safe."""
        if not chunks:
            return
        step = max(1, int(self._guard(self._client.get_max_batch_size)))
        for i in range(0, len(chunks), step):
            part = chunks[i : i + step]
            self._guard(
                lambda part=part, i=i: self._col.upsert(
                    ids=[c.id for c in part],
                    embeddings=np.asarray(embeddings[i : i + len(part)], dtype=np.float32),
                    documents=[c.text for c in part],
                    metadatas=[c.metadata() for c in part],
                )
            )

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id (unknown ids are ignored)."""
        ids = list(ids)
        for i in range(0, len(ids), 5000):
            self._guard(lambda i=i: self._col.delete(ids=ids[i : i + 5000]))

    def query(self, embedding: np.ndarray, n: int, where: dict[str, Any] | None = None) -> list[StoredChunk]:
        """The ``n`` nearest chunks by Chroma's ANN index, with their embeddings for exact re-scoring."""
        total = self.count()
        if total == 0 or n <= 0:
            return []
        result = self._guard(
            lambda: self._col.query(
                query_embeddings=[np.asarray(embedding, dtype=np.float32)],
                n_results=min(n, total),
                where=where or None,
                include=["documents", "metadatas", "embeddings", "distances"],
            )
        )
        return _rows(result["ids"][0], result["documents"][0], result["metadatas"][0],
                     result["embeddings"][0], result["distances"][0])

    def get(self, ids: Sequence[str], *, with_embeddings: bool = False) -> list[StoredChunk]:
        """Chunks by id, in the order given (missing ids are left out)."""
        if not ids:
            return []
        include = ["documents", "metadatas"] + (["embeddings"] if with_embeddings else [])
        result = self._guard(lambda: self._col.get(ids=list(ids), include=include))
        embs = result.get("embeddings") if with_embeddings else None
        rows = _rows(result["ids"], result["documents"], result["metadatas"], embs, None)
        by_id = {r.id: r for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def iter_metadata(self, batch: int = 2000) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every (id, metadata) pair, page by page (used to recover from a lost manifest)."""
        offset = 0
        while True:
            result = self._guard(
                lambda offset=offset: self._col.get(include=["metadatas"], limit=batch, offset=offset)
            )
            if not result["ids"]:
                return
            yield from zip(result["ids"], result["metadatas"], strict=True)
            offset += len(result["ids"])

    def sources(self) -> list[str]:
        """The distinct source paths in the collection."""
        return sorted({str(meta.get("source", "")) for _, meta in self.iter_metadata()})

    def drop(self) -> None:
        """Delete the whole collection (for --rebuild)."""
        self._guard(lambda: self._client.delete_collection(self.name))

    def _guard(self, fn: Any) -> Any:
        try:
            return fn()
        except RagError:
            raise
        except Exception as exc:
            raise StoreError(
                f"the index at {self.db} failed ({type(exc).__name__}: {exc}) — if it is corrupt, "
                "rebuild it with `rag index PATH --rebuild`"
            ) from None


def _rows(ids: Any, docs: Any, metas: Any, embs: Any, dists: Any) -> list[StoredChunk]:
    rows = []
    for i, chunk_id in enumerate(ids):
        meta = metas[i] or {}
        rows.append(
            StoredChunk(
                id=chunk_id,
                text=docs[i] or "",
                source=str(meta.get("source", "")),
                page=int(meta.get("page", 0)) or None,
                heading=str(meta.get("heading", "")),
                kind=str(meta.get("kind", "text")),
                tokens=int(meta.get("tokens", 0)),
                embedding=None if embs is None else np.asarray(embs[i], dtype=np.float32),
                distance=None if dists is None else float(dists[i]),
            )
        )
    return rows
