"""Exact nearest neighbours for a small index: every chunk's vector in memory, one matrix product.

Chroma's HNSW search is approximate and, at the width rag needs to reach every chunk (`ef_search`
400 when this was measured, 200 now: `ingest.store.HNSW`), it is most of a dense query: 3.2 ms for
the 30 nearest of 4,749 chunks here, where a numpy product over all of them takes 0.15 ms and misses
nothing. Up to `EXACT_SEARCH_MAX_CHUNKS` chunks (about 30 MB of float32 at 768 dimensions) a search
ranks every chunk exactly, from the vectors in the index state's copy; above it, or while that copy
is incomplete, Chroma's HNSW search is used.

The matrix is read as of one commit and read again once another connection has committed since
(SQLite's ``data_version``), so it never holds a chunk the state does not own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ingest.state import IndexState

# Above this many chunks, dense candidates come from Chroma's HNSW search instead (see the docstring).
EXACT_SEARCH_MAX_CHUNKS = 10_000


@dataclass(frozen=True)
class _Rows:
    """One commit's chunks in id order (so that equal scores rank by id), replaced whole, never changed:
    a search that started on it finishes on it while another thread loads the next."""

    ids: list[str]
    matrix: np.ndarray  # unit vectors, one row per id
    sources: np.ndarray
    kinds: np.ndarray


class ExactSearch:
    """The committed chunks' unit vectors, ids, sources and kinds, kept in step with one index state.
    Safe to share between threads (`rag serve` searches from several)."""

    def __init__(self, state: IndexState, max_chunks: int = EXACT_SEARCH_MAX_CHUNKS) -> None:
        self._state = state
        self._max_chunks = max_chunks
        self._lock = threading.Lock()
        self._version: int | None = None
        self._rows: _Rows | None = None  # None: too large, or the copy is incomplete

    def nearest(self, vector: np.ndarray, n: int, sources: Sequence[str] | None = None,
                kinds: Sequence[str] | None = None) -> list[str] | None:
        """The ids of the ``n`` committed chunks most cosine-similar to ``vector``, best first, among
        ``sources`` and ``kinds`` when given; None when the index is too large to search here."""
        rows = self._current()
        if rows is None:
            return None
        if not rows.ids:
            return []
        scores = rows.matrix @ (np.asarray(vector, dtype=np.float32) / max(float(np.linalg.norm(vector)), 1e-12))
        if sources is not None or kinds is not None:
            eligible = np.ones(len(rows.ids), dtype=bool)
            if sources is not None:
                eligible &= np.isin(rows.sources, list(sources))
            if kinds is not None:
                eligible &= np.isin(rows.kinds, list(kinds))
            scores = np.where(eligible, scores, -np.inf)
            n = min(n, int(eligible.sum()))
        if n <= 0:
            return []
        if n < len(scores):  # every row that ties with the n-th best, so that ties rank by id
            best = np.flatnonzero(scores >= np.partition(scores, len(scores) - n)[len(scores) - n])
        else:
            best = np.arange(len(scores))
        best = best[np.lexsort((best, -scores[best]))][:n]
        return [rows.ids[i] for i in best]

    def covers_index(self) -> bool:
        """Whether `nearest` searches the index here (it is small enough and its copy complete)."""
        return self._current() is not None

    def _current(self) -> _Rows | None:
        with self._lock:
            version = self._state.data_version()
            if version != self._version:
                self._rows = self._load()
                self._version = version
            return self._rows

    def _load(self) -> _Rows | None:
        loaded = self._state.all_vectors(self._max_chunks)
        if loaded is None:
            return None
        ids, sources, kinds, matrix = loaded
        order = sorted(range(len(ids)), key=ids.__getitem__)
        matrix = matrix[order]
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return _Rows(ids=[ids[i] for i in order],
                     matrix=(matrix / np.maximum(norms, 1e-12)).astype(np.float32),
                     sources=np.array([sources[i] for i in order], dtype=object),
                     kinds=np.array([kinds[i] for i in order], dtype=object))
