"""Exact dense search of a small index (`rag.exact`): the same ranking as a full cosine scan of the
store, in step with writers' commits, and Chroma's HNSW search above the size limit."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from readpath import indexed_settings

from ingest.indexer import index_folder
from ingest.state import PASSAGES_READY
from rag.exact import ExactSearch
from rag.retrieve import Retriever, cosine

QUESTIONS = ["How long is the dishwasher warranty?", "espresso grind size", "微调需要什么计算资源？",
             "检索增强生成需要重新训练模型吗？", "bicycle chain oil"]


@pytest.fixture
def retriever(ollama_server, tmp_path) -> Iterator[Retriever]:
    with Retriever.open(indexed_settings(ollama_server, tmp_path)) as opened:
        yield opened


def full_scan(retriever: Retriever, vector: np.ndarray, n: int, sources=None, kinds=None) -> list[str]:
    """The ``n`` nearest chunks by cosine over every chunk in the store, best first."""
    chunks = retriever.store.get(list(retriever.store.iter_ids()), with_embeddings=True)
    owners = dict(retriever.state.iter_docs())
    kept = [c for c in chunks if (sources is None or owners[c.id] in sources) and (kinds is None or c.kind in kinds)]
    scores = cosine(np.stack([c.embedding for c in kept]), vector)
    order = sorted(range(len(kept)), key=lambda i: (-scores[i], kept[i].id))
    return [kept[i].id for i in order[:n]]


def test_exact_search_ranks_like_a_full_scan_of_the_store(retriever: Retriever) -> None:
    assert retriever.exact is not None
    total = retriever.store.count()
    for question in QUESTIONS:
        vector = retriever.embedder.embed_query(question)
        for n in (1, 5, total + 3):
            assert retriever.exact.nearest(vector, n) == full_scan(retriever, vector, n)
        assert retriever.exact.nearest(vector, 4, sources=["zh/rag.md", "manual.pdf"]) == full_scan(
            retriever, vector, 4, sources={"zh/rag.md", "manual.pdf"})
        assert retriever.exact.nearest(vector, 4, kinds=["pdf"]) == full_scan(retriever, vector, 4, kinds={"pdf"})
        assert retriever.exact.nearest(vector, 4, sources=["nothing.md"]) == []


def test_exact_and_hnsw_search_return_the_same_hits_on_a_small_index(retriever: Retriever) -> None:
    through_chroma = dataclasses.replace(retriever, exact=None)
    for question in QUESTIONS:
        for mode in ("dense", "hybrid"):
            exact, hnsw = retriever.search(question, mode=mode), through_chroma.search(question, mode=mode)
            assert [(h.id, round(h.score, 5)) for h in exact] == [(h.id, round(h.score, 5)) for h in hnsw]


def test_exact_search_follows_a_writers_commits(retriever: Retriever, tmp_path: Path) -> None:
    """A reader opened before `rag index` added one file and deleted another finds the new one and never
    returns the deleted one's chunks."""
    question = "How should I store the kayak paddles over winter?"
    assert all(h.source != "kayak.md" for h in retriever.search(question, mode="dense"))
    docs = tmp_path / "docs"
    (docs / "kayak.md").write_text("# Kayak\n\nStore the kayak paddles indoors over winter, dry and upright.\n",
                                   encoding="utf-8")
    (docs / "notes.txt").unlink()
    index_folder(docs, retriever.settings.index)
    hits = retriever.search(question, mode="dense")
    assert hits[0].source == "kayak.md"
    vector = retriever.embedder.embed_query("Bicycle maintenance: oil the chain every month.")
    assert retriever.exact is not None
    nearest = retriever.exact.nearest(vector, retriever.store.count() + 10)
    assert nearest == full_scan(retriever, vector, len(nearest))
    assert not {cid for cid, source in retriever.state.iter_docs() if source == "notes.txt"}
    assert all(h.source != "notes.txt" for h in retriever.search("bicycle chain oil tyre pressure", mode="dense"))


def test_a_large_index_is_searched_through_chroma(retriever: Retriever) -> None:
    small_limit = ExactSearch(retriever.state, max_chunks=retriever.store.count() - 1)
    vector = retriever.embedder.embed_query(QUESTIONS[0])
    assert small_limit.nearest(vector, 5) is None
    limited = dataclasses.replace(retriever, exact=small_limit)
    hits = limited.search(QUESTIONS[0], mode="dense")
    assert (hits[0].source, hits[0].page) == ("manual.pdf", 2)


def test_a_state_without_a_complete_copy_is_searched_through_chroma(retriever: Retriever) -> None:
    with sqlite3.connect(retriever.state.path) as other:  # as a state from before the copy existed
        other.execute("DELETE FROM stats WHERE key = ?", (PASSAGES_READY,))
    exact = ExactSearch(retriever.state)
    assert exact.nearest(retriever.embedder.embed_query(QUESTIONS[0]), 5) is None
    hits = dataclasses.replace(retriever, exact=exact).search(QUESTIONS[0], mode="dense")
    assert (hits[0].source, hits[0].page) == ("manual.pdf", 2)


class _State:
    """Just what ExactSearch reads from an index state."""

    def __init__(self, vectors: list[list[float]]) -> None:
        self.vectors = np.array(vectors, dtype=np.float32)

    def data_version(self) -> int:
        return 1

    def all_vectors(self, limit: int):
        ids = [f"c{i}" for i in range(len(self.vectors))]
        return ids, ["a.md"] * len(ids), ["markdown"] * len(ids), self.vectors


def test_exact_search_ranks_by_cosine_not_by_dot_product() -> None:
    # Vectors from the legacy endpoint or another tool need not be unit length: the long vector c0
    # has the larger dot product with the query, c1 the larger cosine.
    exact = ExactSearch(_State([[10.0, 0.0], [0.6, 0.8], [0.0, -1.0]]))  # type: ignore[arg-type]
    assert exact.nearest(np.array([0.6, 0.8]), 2) == ["c1", "c0"]
    assert exact.nearest(np.array([3.0, 4.0]), 3) == ["c1", "c0", "c2"]


def test_an_index_whose_files_were_all_removed_finds_nothing(retriever: Retriever, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    for path in sorted(docs.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    index_folder(docs, retriever.settings.index)
    for mode in ("dense", "bm25", "hybrid"):
        assert retriever.search(QUESTIONS[0], mode=mode) == []


class _SlowState(_State):
    """A state whose copy takes a while to read, as a large one does: other searches arrive meanwhile."""

    def all_vectors(self, limit: int):
        time.sleep(0.2)
        return super().all_vectors(limit)


def test_searches_from_many_threads_all_see_the_whole_index() -> None:
    """`rag serve` searches from several threads at once; none may see a half-loaded index (it once
    crashed on a matrix whose rows were not yet there)."""
    exact = ExactSearch(_SlowState([[10.0, 0.0], [0.6, 0.8], [0.0, -1.0]]))  # type: ignore[arg-type]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: exact.nearest(np.array([0.6, 0.8]), 2), range(8)))
    assert answers == [["c1", "c0"]] * 8
