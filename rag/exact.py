"""Exact nearest neighbours for a small index: every chunk's vector in memory, one matrix product.

Chroma's HNSW search is approximate and, at the width rag needs to reach every chunk (`ef_search`
400), it is most of a dense query: 3.2 ms for the 30 nearest of 4,749 chunks here, where a numpy
product over all of them takes 0.15 ms and misses nothing. Up to `EXACT_SEARCH_MAX_CHUNKS` chunks
(about 30 MB of float32 at 768 dimensions) a search ranks every chunk exactly, from the vectors in the
index state's copy; above it, or while that copy is incomplete, Chroma's HNSW search is used.

The matrix is read as of one commit and read again once another connection has committed since
(SQLite's ``data_version``), so it never holds a chunk the state does not own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ingest.state import IndexState

# Above this many chunks, dense candidates come from Chroma's HNSW search instead (see the docstring).
EXACT_SEARCH_MAX_CHUNKS = 10_000


class ExactSearch:
    """The committed chunks' unit vectors, ids, sources and kinds, kept in step with one index state."""

    def __init__(self, state: IndexState, max_chunks: int = EXACT_SEARCH_MAX_CHUNKS) -> None:
        self._state = state
        self._max_chunks = max_chunks
        self._version: int | None = None
        self._ids: list[str] = []
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._sources = np.zeros(0, dtype=object)
        self._kinds = np.zeros(0, dtype=object)
        self._usable = False

    def nearest(self, vector: np.ndarray, n: int, sources: Sequence[str] | None = None,
                kinds: Sequence[str] | None = None) -> list[str] | None:
        """The ids of the ``n`` committed chunks most cosine-similar to ``vector``, best first, among
        ``sources`` and ``kinds`` when given; None when the index is too large to search here."""
        self._refresh()
        if not self._usable:
            return None
        scores = self._matrix @ (np.asarray(vector, dtype=np.float32) / max(float(np.linalg.norm(vector)), 1e-12))
        if sources is not None or kinds is not None:
            eligible = np.ones(len(self._ids), dtype=bool)
            if sources is not None:
                eligible &= np.isin(self._sources, list(sources))
            if kinds is not None:
                eligible &= np.isin(self._kinds, list(kinds))
            scores = np.where(eligible, scores, -np.inf)
            n = min(n, int(eligible.sum()))
        if n <= 0:
            return []
        if n < len(scores):  # every row that ties with the n-th best, so that ties rank by id
            rows = np.flatnonzero(scores >= np.partition(scores, len(scores) - n)[len(scores) - n])
        else:
            rows = np.arange(len(scores))
        rows = rows[np.lexsort((rows, -scores[rows]))][:n]
        return [self._ids[i] for i in rows]

    def _refresh(self) -> None:
        version = self._state.data_version()
        if version == self._version:
            return
        self._version = version
        loaded = self._state.all_vectors(self._max_chunks)
        self._usable = loaded is not None
        if loaded is None:
            self._ids, self._matrix = [], np.zeros((0, 0), dtype=np.float32)
            return
        ids, sources, kinds, matrix = loaded
        order = sorted(range(len(ids)), key=ids.__getitem__)  # rows in id order: equal scores rank by id
        matrix = matrix[order]
        norms = np.linalg.norm(matrix, axis=1, keepdims=True) if len(ids) else np.ones((0, 1))
        self._ids = [ids[i] for i in order]
        self._matrix = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
        self._sources = np.array([sources[i] for i in order], dtype=object)
        self._kinds = np.array([kinds[i] for i in order], dtype=object)
