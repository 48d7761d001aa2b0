"""The Chroma collection that holds the chunks, and the fingerprint that says how they were made.

All Chroma calls go through this module, which maps Chroma's exceptions to `StoreError`.
The fingerprint lives in the collection metadata under ``rag_*`` keys, so the index describes itself.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from ingest.config import collection_name_problem
from ingest.errors import (
    CollectionNotFound,
    ConfigError,
    IndexMismatch,
    RagError,
    StoreError,
    StoreUnreachable,
)
from ingest.records import Chunk

# What changes the vectors or the chunks. Not the endpoint: `/api/embed` and the legacy
# `/api/embeddings` give the same unit vectors once normalised, so an index built through one keeps
# working after Ollama is upgraded to the other.
FINGERPRINT_KEYS = (
    "embed_model",
    "dimension",
    "document_prefix",
    "query_prefix",
    "normalized",
    "chunk_tokens",
    "chunk_overlap",
    "tokenizer",
)
# Chroma's HNSW graph, for collections created from now on (an existing collection keeps its
# construction settings). A chunk must be found by its own vector (`ingest.verify`): on the synthetic
# folder of bench/reachability.py (near-duplicate vectors, the hard case) Chroma's defaults (16 / 100 /
# ef_search 100) missed 0.57% of chunks on a fresh build, 16 / 200 / 400 0.09%, 24 / 200 / 400
# 0.05%, and at most 0.01% after edits (bench/results/reliability.md). A denser graph costs every
# insert, more as it grows: 64 / 400 took 6.1 ms per vector at 40k vectors, 32 / 200 4.2 ms, 16 / 100 1.3 ms.
# ef_search is a search width, not part of the graph: on the same graphs, 200 left one chunk more
# unreachable than 400 (NFCorpus 2 of 4,749 against 1; the synthetic folder 3 of 7,516 against 2;
# 100: 2 and 13; bench/results/reachability-ef.json), and Chroma's search took 4.9 ms instead of 7.0
# at 100k vectors (bench/results/ef_search.json), the most of a query on a large index.
# sync_threshold: Chroma persists the graph every this many writes, and each process that opens the
# store replays the writes not yet persisted (up to 999 inserts at Chroma's 1000: seconds at 100k
# chunks, paid again by every `rag ask` until the next write).
HNSW = {"space": "cosine", "max_neighbors": 24, "ef_construction": 200, "ef_search": 200, "sync_threshold": 200}
# The search width rag gave new collections before it was 200. Unlike the graph's settings, the width
# can change after creation: the writer narrows it on its next run (`Store.open(create=True)`). Any
# other width was chosen by someone else and is left as it is.
PREVIOUS_EF_SEARCH = 400
# The chunk's text is a metadata value, not a Chroma document: Chroma indexes every document for its
# full-text search (FTS5 trigrams), which rag never uses (BM25 is `ingest.lexical`), and that index was
# 60% of the cost of a write (1.32 -> 0.77 ms per chunk on NFCorpus) and 40% of the file. Texts an
# older version stored as documents are still read (`_rows`).
TEXT_KEY = "text"
# Collection metadata keys: the fingerprint (rag_*) and the write generation readers sync to.
GENERATION_KEY = "rag__generation"
# How long a Chroma call waits out another process holding the embedded store's SQLite write lock
# (a busy writer can hold it for seconds under load: a test run saw 9 s of retries run out).
LOCKED_WAIT_SECONDS = 60.0
ROOT_KEY = "rag__root"
# What a mismatch in each key means for the user, in the error message.
_KEY_LABELS = {
    "embed_model": "embedding model",
    "dimension": "embedding dimension",
    "document_prefix": "document prefix",
    "query_prefix": "query prefix",
    "normalized": "vector normalisation",
    "chunk_tokens": "chunk size (--chunk-tokens)",
    "chunk_overlap": "chunk overlap (--chunk-overlap)",
    "tokenizer": "tokenizer",
}


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


def _chroma_client(db: Path, chroma_url: str | None = None, token: str | None = None) -> Any:
    import chromadb
    from chromadb.config import Settings

    # Telemetry off: nothing about the user's documents or usage leaves the machine.
    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if chroma_url:
        url = urlsplit(chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"Chroma URL {chroma_url!r} is invalid — use http://HOST:PORT (RAG_CHROMA_URL / --chroma)")
        port = url.port or (443 if url.scheme == "https" else 8000)
        headers = {"X-Chroma-Token": token} if token else None
        return chromadb.HttpClient(host=url.hostname, port=port, ssl=url.scheme == "https", headers=headers,
                                   settings=settings)
    return chromadb.PersistentClient(path=str(db), settings=settings)


def _narrow_search_width(col: Any) -> None:
    """Give a collection made at rag's previous search width today's (it applies to each process that
    opens the collection from then on): no re-embedding, unlike ``--rebuild``."""
    hnsw = (col.configuration or {}).get("hnsw") or {}
    if hnsw.get("ef_search") == PREVIOUS_EF_SEARCH != HNSW["ef_search"]:
        when_unlocked(lambda: col.modify(configuration={"hnsw": {"ef_search": HNSW["ef_search"]}}))


def chroma_files(db: Path) -> list[Path]:
    """Chroma's own files in a --db folder (for a --rebuild Chroma itself cannot open)."""
    db = Path(db)
    if not db.is_dir():
        return []
    out = [p for p in db.glob("chroma.sqlite3*")]
    # Segment folders are named by UUID and hold header.bin / data_level0.bin / link_lists.bin.
    out += [p for p in db.iterdir() if p.is_dir() and re.fullmatch(r"[0-9a-f-]{36}", p.name)]
    return out


def fingerprint_mismatch(stored: dict[str, Any], wanted: dict[str, Any], collection: str, db: Path | str) -> str:
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
    """One Chroma collection (cosine space) plus its fingerprint, embedded or on a Chroma server."""

    def __init__(self, db: Path, collection: str, client: Any, chroma_collection: Any, url: str | None = None) -> None:
        self.db = db
        self.name = collection
        self.url = url  # the Chroma server, or None for the embedded store in ``db``
        self._client = client
        self._col = chroma_collection
        self._max_batch: int | None = None

    def close(self) -> None:
        """Release a server client's HTTP connections. The embedded client is left open: chromadb shares
        one system per path in a process and tears it down on the last close, which races with another
        thread opening the same path (rag serve indexes while it answers)."""
        if not self.url:
            return
        try:
            # chromadb's HttpClient (and the admin client inside it) each keep an httpx pool that its
            # close() leaves open; HTTP clients are never shared, so close them here.
            for client in (self._client, getattr(self._client, "_admin_client", None)):
                session = getattr(getattr(client, "_server", None), "_session", None)
                if session is not None:
                    session.close()
            self._client.close()
        except Exception:  # noqa: BLE001 - closing twice, or a client of another chromadb version
            pass

    def make_private(self) -> None:
        """Owner-only modes on the embedded store's files (its folder is 0700 already; Chroma makes
        segment folders as it writes, so this runs again at the end of each index run)."""
        if not self.url:
            for path in chroma_files(self.db):
                _chmod_private(path)

    @property
    def where(self) -> str:
        """Where the collection lives, for messages."""
        return self.url or str(self.db)

    @classmethod
    def open(
        cls, db: Path, collection: str, *, create: bool = False, chroma_url: str | None = None,
        chroma_token: str | None = None,
    ) -> Store:
        """Open the collection; with ``create`` make it (and the folder) when missing."""
        db = Path(db)
        check_collection_name(collection)
        where = chroma_url or str(db)
        if not chroma_url and not create and not db.exists():
            raise StoreError(f"no index at {db} — run `rag index PATH` first (or pass --db)")
        try:
            if create and not chroma_url:
                make_private_dir(db)
            with _one_opener(None if chroma_url else db):
                client = _chroma_client(db, chroma_url, chroma_token)
                if create:
                    col = when_unlocked(lambda: client.get_or_create_collection(
                        collection, configuration={"hnsw": dict(HNSW)}, embedding_function=None
                    ))
                    _narrow_search_width(col)
                else:
                    col = when_unlocked(lambda: client.get_collection(collection, embedding_function=None))
        except RagError:
            raise
        except Exception as exc:  # chromadb raises NotFoundError / ValueError / sqlite / connection errors
            raise _translate(exc, where, collection) from None
        if create and not chroma_url:
            for path in chroma_files(db):
                _chmod_private(path)
        return cls(db, collection, client, col, chroma_url)

    # -- fingerprint and collection metadata ----------------------------------------------------

    def _metadata(self) -> dict[str, Any]:
        # Re-read: another process or machine may have written since this handle was opened.
        col = self._guard(lambda: self._client.get_collection(self.name, embedding_function=None))
        self._col = col
        return dict(col.metadata or {})

    def fingerprint(self) -> dict[str, Any] | None:
        """The stored index fingerprint, or None for a collection not yet fingerprinted."""
        meta = self._col.metadata or {}
        fp = {k[4:]: v for k, v in meta.items() if k.startswith("rag_") and not k.startswith("rag__")}
        return fp or None

    def set_fingerprint(self, fingerprint: dict[str, Any]) -> None:
        """Record the fingerprint (values must be str/int/float/bool); other keys are kept."""
        meta = {k: v for k, v in self._metadata().items() if k.startswith("rag__")}
        meta.update({f"rag_{k}": v for k, v in fingerprint.items() if v is not None})
        self._modify(meta)

    def generation(self) -> int:
        """The write generation: bumped after every committed batch, so readers know when to re-sync."""
        return int(self._metadata().get(GENERATION_KEY, 0))

    def bump_generation(self) -> int:
        meta = self._metadata()
        meta[GENERATION_KEY] = int(meta.get(GENERATION_KEY, 0)) + 1
        self._modify(meta)
        return int(meta[GENERATION_KEY])

    def root(self) -> str:
        """The folder this collection indexes (as "host:path"), "" before the first run."""
        return str(self._metadata().get(ROOT_KEY, ""))

    def set_root(self, root: str) -> None:
        meta = self._metadata()
        if meta.get(ROOT_KEY) != root:
            meta[ROOT_KEY] = root
            self._modify(meta)

    def _modify(self, meta: dict[str, Any]) -> None:
        # Chroma's modify replaces the whole metadata dict; callers pass every key to keep.
        meta.pop("hnsw:space", None)
        self._guard(lambda: self._col.modify(metadata=meta))

    def check_fingerprint(self, wanted: dict[str, Any]) -> None:
        """Raise IndexMismatch when the stored fingerprint disagrees with ``wanted``."""
        stored = self.fingerprint()
        if stored:
            problem = fingerprint_mismatch(stored, wanted, self.name, self.where)
            if problem:
                raise IndexMismatch(problem)

    # -- chunks --------------------------------------------------------------------------------

    def count(self) -> int:
        """Number of chunks stored."""
        return int(self._guard(self._col.count))

    def max_batch(self) -> int:
        if self._max_batch is None:
            self._max_batch = max(1, int(self._guard(self._client.get_max_batch_size)))
        return self._max_batch

    def add(
        self, chunks: Sequence[Chunk], embeddings: np.ndarray, file_meta: dict[str, dict[str, Any]] | None = None
    ) -> None:
        """Store (upsert) chunks with their embeddings; ids are deterministic so re-adding is safe.

        ``file_meta`` (source -> sha256/size/mtime) goes into each chunk's metadata, so that the
        index state can be rebuilt from the store alone (a second machine reading a Chroma server).
        """
        if not chunks:
            return
        file_meta = file_meta or {}
        step = self.max_batch()
        for i in range(0, len(chunks), step):
            part = chunks[i : i + step]
            self._guard(
                lambda part=part, i=i: self._col.upsert(
                    ids=[c.id for c in part],
                    embeddings=np.asarray(embeddings[i : i + len(part)], dtype=np.float32),
                    metadatas=[c.metadata() | file_meta.get(c.source, {}) | {TEXT_KEY: c.text} for c in part],
                )
            )

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id (unknown ids are ignored)."""
        ids = list(ids)
        for i in range(0, len(ids), 5000):
            self._guard(lambda i=i: self._col.delete(ids=ids[i : i + 5000]))

    def query(
        self, embedding: np.ndarray, n: int, where: dict[str, Any] | None = None, *, with_text: bool = True,
        with_embeddings: bool = True,
    ) -> list[StoredChunk]:
        """The ``n`` nearest chunks by Chroma's ANN index, with their embeddings for exact re-scoring.

        ``with_text=False`` leaves out texts and metadata (empty ``text`` and ``source``), and
        ``with_embeddings=False`` the embeddings: the read path takes both from the index state's copy
        (`ingest.state`), and reading them from Chroma was most of the cost of a query for 30 candidates.
        """
        if n <= 0:
            return []
        # No count() first: Chroma (1.5) returns fewer than ``n_results`` from a smaller (or empty)
        # collection, and the extra round trip was a fifth of a dense query.
        include = (["embeddings"] if with_embeddings else []) + ["distances"] + (
            ["documents", "metadatas"] if with_text else [])

        def ask() -> Any:
            return self._col.query(query_embeddings=[np.asarray(embedding, dtype=np.float32)], n_results=n,
                                   where=where or None, include=include)

        try:
            result = ask()
        except Exception as exc:
            if not self._stale_view(exc):
                raise _translate(exc, self.where, self.name) from None
            self._reopen()
            result = self._guard(ask)
        ids = result["ids"][0]
        docs = result["documents"][0] if with_text else [None] * len(ids)
        metas = result["metadatas"][0] if with_text else [None] * len(ids)
        embs = result["embeddings"][0] if with_embeddings else None
        return _rows(ids, docs, metas, embs, result["distances"][0])

    def _stale_view(self, exc: BaseException) -> bool:
        """This process's copy of the embedded HNSW graph still lists chunks another process (the
        writer) has since deleted: Chroma then fails the query with "Error finding id"."""
        return not self.url and "Error finding id" in str(exc)

    def _reopen(self) -> None:
        """A fresh view of the embedded store from disk. Handles already open keep the old one; only
        this handle and later opens in this process use the new system."""
        from chromadb.api.shared_system_client import SharedSystemClient

        identifier = getattr(self._client, "_identifier", None)
        if identifier is not None:
            SharedSystemClient._identifier_to_system.pop(identifier, None)
        self._client = _chroma_client(self.db)
        self._col = self._guard(lambda: self._client.get_collection(self.name, embedding_function=None))

    def nearest_ids(self, embeddings: np.ndarray, n: int) -> list[list[str]]:
        """For each vector, the ids of its ``n`` nearest chunks (the reachability check)."""
        if len(embeddings) == 0:
            return []
        total = self.count()
        result = self._guard(
            lambda: self._col.query(
                query_embeddings=np.asarray(embeddings, dtype=np.float32), n_results=min(n, total), include=[]
            )
        )
        return [list(row) for row in result["ids"]]

    def get(self, ids: Sequence[str], *, with_embeddings: bool = False, with_text: bool = True) -> list[StoredChunk]:
        """Chunks by id, in the order given (missing ids are left out). ``with_text=False`` leaves out
        texts and metadata (as in `query`): half the cost of reading 30 chunks with their vectors."""
        if not ids:
            return []
        include = (["documents", "metadatas"] if with_text else []) + (["embeddings"] if with_embeddings else [])
        rows: list[StoredChunk] = []
        try:
            rows = self._get_rows(list(ids), include)
        except Exception as exc:
            if not self._stale_view(exc):
                raise _translate(exc, self.where, self.name) from None
            # Another process is writing: reload from disk; chunks whose vectors this process still
            # cannot see (written since the writer last saved its graph) are left out, one by one.
            self._reopen()
            for chunk_id in ids:
                try:
                    rows += self._get_rows([chunk_id], include)
                except Exception as again:
                    if not self._stale_view(again):
                        raise _translate(again, self.where, self.name) from None
        by_id = {r.id: r for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def _get_rows(self, ids: list[str], include: list[str]) -> list[StoredChunk]:
        result = self._col.get(ids=ids, include=include)
        embs = result.get("embeddings") if "embeddings" in include else None
        none = [None] * len(result["ids"])
        docs, metas = (result["documents"], result["metadatas"]) if "documents" in include else (none, none)
        return _rows(result["ids"], docs, metas, embs, None)

    def raw(self, ids: Sequence[str]) -> dict[str, Any]:
        """Ids, vectors, texts and metadata exactly as stored (for `put_raw`)."""
        result = self._guard(
            lambda: self._col.get(ids=list(ids), include=["embeddings", "documents", "metadatas"])
        )
        return {key: list(result[key]) for key in ("ids", "embeddings", "documents", "metadatas")}

    def put_raw(self, rows: dict[str, Any]) -> None:
        """Write rows read by `raw` back; a text stored as a Chroma document (by earlier versions) moves to `TEXT_KEY`."""
        metadatas = [dict(meta or {}) | ({TEXT_KEY: doc} if doc is not None else {})
                     for doc, meta in zip(rows["documents"], rows["metadatas"], strict=True)]
        self._guard(lambda: self._col.upsert(
            ids=rows["ids"], embeddings=np.asarray(rows["embeddings"], dtype=np.float32), metadatas=metadatas,
        ))

    def iter_ids(self, batch: int = 5000) -> Iterator[str]:
        """Every stored chunk id, page by page."""
        offset = 0
        while True:
            result = self._guard(lambda offset=offset: self._col.get(include=[], limit=batch, offset=offset))
            if not result["ids"]:
                return
            yield from result["ids"]
            offset += len(result["ids"])

    def iter_chunks(
        self, batch: int = 1000, *, with_embeddings: bool = False
    ) -> Iterator[list[tuple[StoredChunk, dict[str, Any]]]]:
        """Every stored chunk (text and metadata, and the embedding if asked), a page at a time."""
        include = ["documents", "metadatas"] + (["embeddings"] if with_embeddings else [])
        offset = 0
        while True:
            result = self._guard(
                lambda offset=offset: self._col.get(include=include, limit=batch, offset=offset)
            )
            if not result["ids"]:
                return
            embs = result["embeddings"] if with_embeddings else None
            rows = _rows(result["ids"], result["documents"], result["metadatas"], embs, None)
            yield [(row, dict(meta or {})) for row, meta in zip(rows, result["metadatas"], strict=True)]
            offset += len(result["ids"])

    def iter_metadata(self, batch: int = 2000) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every (id, metadata) pair, page by page (used to rebuild the state from the store)."""
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

    # -- markers: small empty collections used as the writer lock --------------------------------

    def create_marker(self, name: str, metadata: dict[str, Any]) -> bool:
        """Create collection ``name``; False when it exists. Chroma's unique collection names make
        this atomic across processes and machines sharing the store."""
        try:
            when_unlocked(lambda: self._client.create_collection(name, metadata=metadata, embedding_function=None))
            return True
        except Exception as exc:
            if self.read_marker(name) is not None:
                return False
            raise _translate(exc, self.where, name) from None

    def read_marker(self, name: str) -> dict[str, Any] | None:
        """The marker's metadata, or None when there is none."""
        try:
            col = self._client.get_collection(name, embedding_function=None)
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise _translate(exc, self.where, name) from None
        return dict(col.metadata or {})

    def write_marker(self, name: str, metadata: dict[str, Any]) -> None:
        col = self._guard(lambda: self._client.get_collection(name, embedding_function=None))
        self._guard(lambda: col.modify(metadata=metadata))

    def delete_marker(self, name: str) -> None:
        try:
            self._client.delete_collection(name)
        except Exception as exc:
            if not _is_not_found(exc):
                raise _translate(exc, self.where, name) from None

    def _guard(self, fn: Any) -> Any:
        try:
            return when_unlocked(fn)
        except RagError:
            raise
        except Exception as exc:
            raise _translate(exc, self.where, self.name) from None


@contextlib.contextmanager
def _one_opener(db: Path | None) -> Iterator[None]:
    """Open an embedded store one process at a time. Chroma creates its SQLite schema on first open
    without a transaction around it, so two `rag index` runs starting together on a new --db both
    create tables and one fails ("table collections already exists"). An advisory lock on the folder
    itself (no extra file) serialises the opens; it is released by the OS if the process dies.
    Unguarded where there is no flock (Windows) or the folder cannot be opened for reading."""
    fd = None
    if fcntl is not None and db is not None and db.is_dir():
        with contextlib.suppress(OSError):
            fd = os.open(db, os.O_RDONLY)
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock


def when_unlocked(fn: Any, wait: float = LOCKED_WAIT_SECONDS) -> Any:
    """Run a Chroma call, retrying while another process holds the embedded store's SQLite write lock.
    Chroma does not wait for the lock itself: two processes opening one store at the same moment
    (a second `rag index` about to find the writer lock taken) fail with "database is locked"."""
    deadline = time.monotonic() + wait
    for attempt in itertools.count():
        try:
            return fn()
        except Exception as exc:
            if "database is locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(min(0.05 * 2**attempt, 0.5))
    raise AssertionError("unreachable")


def _is_not_found(exc: BaseException) -> bool:
    from chromadb.errors import NotFoundError

    return isinstance(exc, NotFoundError)


def _translate(exc: BaseException, where: str, collection: str) -> RagError:
    """Chroma's exceptions (this module is the one seam to chromadb) as `rag` errors."""
    if _is_not_found(exc):
        return CollectionNotFound(
            f"no collection '{collection}' in {where} — run `rag index PATH --collection {collection}`"
        )
    text = str(exc)
    if isinstance(exc, (ConnectionError, OSError)) or "Could not connect" in text or "Connect" in type(exc).__name__:
        return StoreUnreachable(
            f"the Chroma server at {where} is not reachable ({type(exc).__name__}) — start it (`chroma run`) "
            "or check --chroma / RAG_CHROMA_URL"
        )
    return StoreError(
        f"the index at {where} failed ({type(exc).__name__}: {text.splitlines()[0] if text else ''}) — if it is "
        "corrupt, rebuild it with `rag index PATH --rebuild`"
    )


def check_collection_name(name: str) -> None:
    """Chroma's naming rule, checked before Chroma sees the name (ConfigError, exit 2)."""
    problem = collection_name_problem(name)
    if problem:
        raise ConfigError(f"collection name {name!r} is invalid — {problem}")


def make_private_dir(path: Path) -> None:
    """Create the index folder readable by its owner only: it holds the text of private documents."""
    path = Path(path)
    existed = path.exists()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not existed:
        os.chmod(path, 0o700)


def _chmod_private(path: Path) -> None:
    try:
        if path.is_dir():
            os.chmod(path, 0o700)
            for child in path.iterdir():
                if child.is_file():
                    os.chmod(child, 0o600)
        else:
            os.chmod(path, 0o600)
    except OSError:
        pass  # not ours to change (a shared folder): the content is still written


def destroy_embedded(db: Path) -> None:
    """Remove Chroma's files from ``db`` (a --rebuild of a store Chroma cannot open)."""
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()  # this process may hold a client of the broken files
    for path in chroma_files(db):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _rows(ids: Any, docs: Any, metas: Any, embs: Any, dists: Any) -> list[StoredChunk]:
    rows = []
    for i, chunk_id in enumerate(ids):
        meta = metas[i] or {}
        rows.append(
            StoredChunk(
                id=chunk_id,
                text=docs[i] or str(meta.get(TEXT_KEY, "")),
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
