"""Retrieval: dense candidates -> exact numpy cosine -> (BM25 + RRF) -> relevance floor -> MMR with a per-file cap.

A small index (up to `rag.exact.EXACT_SEARCH_MAX_CHUNKS` chunks) is ranked exactly in memory; on a
larger one Chroma's HNSW search is approximate, so we over-fetch a candidate pool and re-score it
exactly. BM25 catches exact terms (names, numbers, rare Chinese words) that embeddings
blur; the two rankings are fused by reciprocal rank, which needs no score calibration. MMR then
picks passages that are relevant but not near-duplicates, and the per-file cap keeps one long file
from filling every slot.

`Hit.score` is always the exact cosine similarity of the passage to the query (comparable across
queries, unlike rank-fused scores); the order of the list is the final retrieval order.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from ingest.embedder import Embedder
from ingest.errors import ConfigError, StoreError
from ingest.indexer import cache_dir, open_store, sync_cache
from ingest.lexical import LexicalIndex, terms
from ingest.state import IndexState
from ingest.store import Store, StoredChunk
from rag.config import Settings
from rag.exact import ExactSearch
from rag.types import Hit

Mode = Literal["dense", "bm25", "hybrid"]

# File types a user may name, mapped to the `kind` the loaders record.
KIND_ALIASES = {
    "pdf": "pdf",
    "md": "markdown",
    "markdown": "markdown",
    "rst": "rst",
    "html": "html",
    "htm": "html",
    "txt": "text",
    "text": "text",
    "code": "code",
}


# A search that a writer's commit overlapped is run again, at most this many times in all (`search`).
SEARCH_ATTEMPTS = 3
# Queries are embedded and their nearest chunks found here while BM25 runs (`search`); threads start
# on first use.
_DENSE_WORKERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rag-dense")


# -- numpy ranking functions -------------------------------------------------------------------


def cosine(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Exact cosine similarity of each row of ``matrix`` to ``vector``."""
    m = np.asarray(matrix, dtype=np.float32)
    v = np.asarray(vector, dtype=np.float32)
    if m.size == 0:
        return np.zeros(len(m), dtype=np.float32)
    norms = np.linalg.norm(m, axis=1) * max(float(np.linalg.norm(v)), 1e-12)
    return (m @ v) / np.maximum(norms, 1e-12)


def mmr(
    relevance: np.ndarray,
    embeddings: np.ndarray,
    k: int,
    lam: float,
    *,
    groups: Sequence[str] | None = None,
    cap: int | None = None,
) -> list[int]:
    """Maximal marginal relevance: pick ``k`` indices greedily by ``lam*rel - (1-lam)*max sim to picked``.

    With ``groups`` and ``cap``, at most ``cap`` picks share a group (the per-file cap).
    Ties go to the earlier index, so the input order is the tie-breaker.
    """
    n = len(relevance)
    if n == 0 or k <= 0:
        return []
    e = np.asarray(embeddings, dtype=np.float32)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    rel = np.asarray(relevance, dtype=np.float64)
    picked: list[int] = []
    taken: dict[str, int] = {}
    redundancy = np.full(n, -np.inf)  # max similarity to anything picked so far
    available = np.ones(n, dtype=bool)
    while len(picked) < k and available.any():
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        score = np.where(available, lam * rel - (1.0 - lam) * penalty, -np.inf)
        best = int(np.argmax(score))
        available[best] = False
        if groups is not None and cap is not None:
            group = groups[best]
            if taken.get(group, 0) >= cap:
                continue
            taken[group] = taken.get(group, 0) + 1
        picked.append(best)
        # One row of similarities per pick (k matrix-vector products), not the whole n x n matrix:
        # OpenBLAS runs a matrix product on threads, which cost ~10 ms per query beside Chroma's.
        redundancy = np.maximum(redundancy, e @ e[best])
    return picked


def rrf(rankings: Sequence[Sequence[str]], k: int = 60, weights: Sequence[float] | None = None) -> dict[str, float]:
    """Reciprocal rank fusion: each id scores the sum of weight/(k + rank) over the rankings it appears in
    (every weight 1 unless ``weights`` are given)."""
    scores: dict[str, float] = {}
    for i, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else weights[i]
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return scores


# -- filters -----------------------------------------------------------------------------------


def normalize_kinds(kinds: Collection[str] | None) -> list[str] | None:
    """File types as the loaders name them (``md`` -> ``markdown``, ``.pdf`` -> ``pdf``)."""
    if kinds is None:
        return None
    out = []
    for raw in kinds:
        key = raw.strip().lower().lstrip(".")
        if key not in KIND_ALIASES:
            raise ConfigError(f"unknown file type {raw!r} — use one of {', '.join(sorted(KIND_ALIASES))}")
        out.append(KIND_ALIASES[key])
    return sorted(set(out))


def match_sources(sources: Sequence[str], pattern: str) -> list[str]:
    """Sources matching a glob (``docs/*.md``, ``**/*.pdf``); a pattern without wildcards matches a file or folder."""
    pattern = pattern.strip()
    if pattern.startswith("./"):
        pattern = pattern[2:]
    if not any(ch in pattern for ch in "*?["):
        folder = pattern.rstrip("/") + "/"
        return [s for s in sources if s == pattern or s.startswith(folder)]
    # fnmatch's * already crosses "/", so "**/" is only needed to also match at the top level.
    alt = pattern[3:] if pattern.startswith("**/") else None
    return [s for s in sources if fnmatch.fnmatchcase(s, pattern) or (alt and fnmatch.fnmatchcase(s, alt))]


def chroma_where(sources: list[str] | None, kinds: list[str] | None) -> dict[str, Any] | None:
    """The Chroma metadata filter for the allowed sources and kinds."""
    clauses: list[dict[str, Any]] = []
    if sources is not None:
        clauses.append({"source": {"$in": sources}})
    if kinds is not None:
        clauses.append({"kind": {"$in": kinds}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


# -- search ------------------------------------------------------------------------------------


def search(
    store: Store,
    state: IndexState,
    embedder: Embedder,
    query: str,
    *,
    settings: Settings,
    k: int | None = None,
    where_glob: str | None = None,
    kinds: Collection[str] | None = None,
    mode: Mode | None = None,
    exact: ExactSearch | None = None,
) -> list[Hit]:
    """The ``k`` best passages for ``query``; ``mode`` defaults to hybrid or dense per ``settings.hybrid``.
    ``exact``, when given and the index is small enough, ranks the dense candidates exactly.

    A search reads the index state and Chroma in several steps. When a writer commits in between, the
    chunks it replaced may be gone by the time their vectors or texts are read (a search could then come
    back short, or empty): such a search is run again, on the state as of that commit.
    """
    hits: list[Hit] = []
    for _ in range(SEARCH_ATTEMPTS):
        version = state.data_version()
        hits = _search_once(store, state, embedder, query, settings=settings, k=k, where_glob=where_glob,
                            kinds=kinds, mode=mode, exact=exact)
        if state.data_version() == version:
            break
    return hits


def _search_once(
    store: Store,
    state: IndexState,
    embedder: Embedder,
    query: str,
    *,
    settings: Settings,
    k: int | None,
    where_glob: str | None,
    kinds: Collection[str] | None,
    mode: Mode | None,
    exact: ExactSearch | None,
) -> list[Hit]:
    k = k or settings.k
    lexical: LexicalIndex | None = None if state.lexical.outdated else state.lexical
    mode = mode or ("hybrid" if settings.hybrid and lexical is not None else "dense")
    kind_list = normalize_kinds(kinds)
    sources = match_sources(state.indexed_sources(), where_glob) if where_glob else None
    if sources is not None and not sources:
        return []
    pool = max(settings.pool, k)
    def embed_and_find() -> tuple[np.ndarray, list[str]]:
        qvec = embedder.embed_query(query)
        return qvec, [] if mode == "bm25" else _nearest_ids(store, exact, qvec, pool, sources, kind_list)

    lex: list[tuple[str, float]] = []
    known: dict[str, StoredChunk] = {}
    if mode != "dense" and lexical is not None and not (exact is not None and exact.covers_index()):
        # On a large index, BM25 needs no embedding: this thread runs it while a worker embeds the query
        # and runs Chroma's search, an HTTP round trip and HNSW, neither holding the GIL (95k chunks:
        # p95 26 ms this way, 31 ms one after the other). BM25 on the worker instead fought this thread
        # for the GIL (6.8 ms against 4.7).
        dense_run = _DENSE_WORKERS.submit(embed_and_find)
        lex = lexical.search(query, pool, sources=sources, kinds=kind_list)
        # BM25 is done before the dense side: read its candidates meanwhile (SQLite lets go of the GIL).
        known = state.passages([cid for cid, _ in lex])
        qvec, dense_ids = dense_run.result()
    else:
        # On an index the exact search covers, the dense side is the round trip and a 0.2 ms product:
        # overlapped, the two sides only fought for the GIL and the cores with the embedding server, and
        # one after the other was faster (NFCorpus: p50 6.4 -> 5.5 ms, p95 12.4 -> 8.5 ms).
        if mode != "dense" and lexical is not None:
            lex = lexical.search(query, pool, sources=sources, kinds=kind_list)
        qvec, dense_ids = embed_and_find()

    by_id = _candidates(store, state, dense_ids + [cid for cid, _ in lex], known)
    dense = [by_id[cid] for cid in dense_ids if cid in by_id]
    cands = list(by_id.values())
    if not cands:
        return []
    cos = cosine(np.stack([c.embedding for c in cands]), qvec)  # type: ignore[misc]
    cos_by_id = {c.id: float(s) for c, s in zip(cands, cos, strict=True)}

    if mode == "dense":
        relevance = cos_by_id
    elif mode == "bm25":
        relevance = _scaled({cid: s for cid, s in lex if cid in cos_by_id})
    else:
        dense_rank = sorted((c.id for c in dense if c.id in cos_by_id), key=lambda cid: (-cos_by_id[cid], cid))
        relevance = _scaled(rrf([dense_rank, [cid for cid, _ in lex if cid in cos_by_id]], settings.rrf_k,
                                [settings.dense_weight, 1.0 - settings.dense_weight]))

    ranked = sorted(relevance, key=lambda cid: (-relevance[cid], cid))
    chosen = [by_id[cid] for cid in ranked]
    order = mmr(
        np.array([relevance[c.id] for c in chosen]),
        np.stack([c.embedding for c in chosen]),  # type: ignore[misc]
        k,
        settings.mmr_lambda,
        groups=[c.source for c in chosen],
        cap=settings.per_file_cap,
    )
    picked = [chosen[i] for i in order]
    top = chosen[:k]
    # The floor gates the question, not each passage: if the best candidates are not relevant
    # enough, the documents do not hold the answer; otherwise weaker passages may still add context.
    best_cos = max(cos_by_id[c.id] for c in top)
    if not passes_floor(best_cos, lambda: top_overlap(query, top, lexical), settings):
        return []
    return [to_hit(c, cos_by_id[c.id]) for c in picked]


def _nearest_ids(store: Store, exact: ExactSearch | None, qvec: np.ndarray, n: int, sources: list[str] | None,
                 kinds: list[str] | None) -> list[str]:
    """The ids of the ``n`` chunks nearest ``qvec``: exactly, in memory, on a small index (`rag.exact`);
    by Chroma's HNSW search on a large one, which is asked for ids only (texts and vectors come from the
    index state's copy)."""
    nearest = exact.nearest(qvec, n, sources, kinds) if exact is not None else None
    if nearest is not None:
        return nearest
    return [c.id for c in store.query(qvec, n, chroma_where(sources, kinds), with_text=False, with_embeddings=False)]


def _candidates(store: Store, state: IndexState, ids: Sequence[str],
                known: dict[str, StoredChunk] | None = None) -> dict[str, StoredChunk]:
    """The committed chunks among ``ids``, with text and vector, in the order given (``known``: some of
    them already read from the state in this search).

    Only chunks that committed file records own: a batch being written, or chunks it replaced, are
    never returned, so a reader sees each file whole, as of one commit. They come from the state's
    copy; a state written before the copy existed (until the next `rag index` rebuilds it) has none,
    and those chunks are read from Chroma. A chunk a writer replaced meanwhile is gone from both: it is
    left out, and `search` runs again, since the writer's commit changed the state.
    """
    ids = list(dict.fromkeys(ids))
    found = dict(known or {})
    found.update(state.passages([cid for cid in ids if cid not in found]))
    rest = [cid for cid in ids if cid not in found]
    if rest:
        owners = state.lexical.owners(rest)
        for c in store.get([cid for cid in rest if cid in owners], with_embeddings=True):
            if c.embedding is not None:
                found[c.id] = replace(c, source=owners[c.id])
    return {cid: found[cid] for cid in ids if cid in found}


def top_overlap(query: str, top: Sequence[StoredChunk], lexical: LexicalIndex | None) -> float:
    """The share of the query's terms found in the top passages: from their postings when the index has
    them (a lookup of a few keys), else by splitting their texts (stemming ~2,000 words, 1 ms)."""
    query_terms = set(terms(query))
    if lexical is None or not query_terms:
        return overlap(query_terms, "\n".join(c.text for c in top))
    return len(lexical.terms_in([c.id for c in top], query_terms)) / len(query_terms)


def overlap(query_terms: set[str], text: str) -> float:
    """The share of the query's terms (words, Han bigrams) that occur in ``text``."""
    if not query_terms:
        return 0.0
    return len(query_terms & set(terms(text))) / len(query_terms)


def passes_floor(cos: float, term_overlap: Callable[[], float], settings: Settings) -> bool:
    """The relevance floor: the best passage is close in meaning (cosine), or the top passages
    together hold enough of the query's terms.

    Two signals because neither suffices alone: a paraphrase shares no words but is close in
    meaning, while a weak embedder can put an off-topic question near anything sharing its
    function words, where the term overlap (stop words excluded) stays near zero. The overlap is
    computed only when the cosine alone does not pass: stemming the top passages is a tenth of a query.
    """
    return cos >= settings.min_score or term_overlap() >= settings.min_overlap


def _scaled(scores: dict[str, float]) -> dict[str, float]:
    """Scores divided by the best one, so MMR weighs rank-based scores on the same 0..1 scale as cosine."""
    top = max(scores.values(), default=0.0)
    return {cid: s / top for cid, s in scores.items()} if top > 0 else dict(scores)


def to_hit(chunk: StoredChunk, score: float) -> Hit:
    """A stored chunk as a public `Hit`."""
    return Hit(source=chunk.source, page=chunk.page, heading=chunk.heading, score=round(score, 4),
               text=chunk.text, id=chunk.id)


@dataclass(frozen=True)
class Retriever:
    """An opened index for the read path: store, lexical index, the index's own embedder, and settings."""

    store: Store
    state: IndexState
    embedder: Embedder
    settings: Settings
    exact: ExactSearch | None = None  # None: dense candidates always come from Chroma

    @classmethod
    def open(cls, settings: Settings) -> Retriever:
        """Open the index named by ``settings``; the embedder comes from the index fingerprint."""
        store = open_store(settings.index)
        fingerprint = store.fingerprint()
        if not fingerprint or "embed_model" not in fingerprint:
            raise StoreError(
                f"collection '{settings.collection}' in {settings.db} has no fingerprint (empty or unfinished) "
                "— run `rag index PATH` first"
            )
        embedder = Embedder.from_fingerprint(fingerprint, settings.index)
        # Postings written under older term rules are `outdated`: dense only until the next
        # `rag index`, which rebuilds them.
        state = open_read_state(settings, store)
        return cls(store, state, embedder, settings, ExactSearch(state))

    @property
    def lexical(self) -> LexicalIndex | None:
        return None if self.state.lexical.outdated else self.state.lexical

    def close(self) -> None:
        """Close the embedder's HTTP connections and the index state."""
        self.embedder.close()
        self.state.close()
        self.store.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def search(
        self,
        query: str,
        *,
        k: int | None = None,
        where_glob: str | None = None,
        kinds: Collection[str] | None = None,
        mode: Mode | None = None,
    ) -> list[Hit]:
        """`search` over this index."""
        return search(self.store, self.state, self.embedder, query, settings=self.settings, k=k,
                      where_glob=where_glob, kinds=kinds, mode=mode, exact=self.exact)


def open_read_state(settings: Settings, store: Store) -> IndexState:
    """The state a reader uses: the file beside the embedded store, or this machine's cache of a
    Chroma server's index, brought up to date first when another client has written since."""
    if not settings.index.chroma_url:
        state = IndexState.open(cache_dir(settings.index), settings.collection, create=False)
        if state.chunk_count() > 0 or store.count() == 0:
            return state
        state.close()  # lost or never written (an index from an older version): rebuild it from the store
    return sync_cache(settings.index, store)
